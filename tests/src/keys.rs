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
