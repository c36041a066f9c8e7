//! Key material for tests, made when needed, never committed.

use std::process::Command;
use std::sync::OnceLock;

/// An RSA private key (2048 bits) made once per test run by `openssl`.
pub fn rsa_private_key() -> rsa::RsaPrivateKey {
    static PEM: OnceLock<String> = OnceLock::new();
    let pem = PEM.get_or_init(|| {
        let out = Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("run openssl (./scripts/test.sh installs it)");
        assert!(out.status.success(), "openssl genpkey failed");
        String::from_utf8(out.stdout).expect("PEM text")
    });
    use rsa::pkcs8::DecodePrivateKey as _;
    rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("a PKCS#8 RSA key")
}

/// A self-signed certificate (EC P-256, one day, not a CA) for the
/// subject alternative names `sans` (e.g. `DNS:localhost,IP:127.0.0.1`),
/// made with openssl as `dir/{name}.pem` and `dir/{name}.key`: their paths.
pub fn self_signed(
    dir: &std::path::Path,
    name: &str,
    sans: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName={sans}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}
