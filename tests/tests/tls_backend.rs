//! https backends: trusted through `--backend-ca`, refused (502) otherwise.

use http::StatusCode;
use komainu_e2e::gateway::{temp_dir, ADMIN_KEY, CLAIM_SECRET};
use komainu_e2e::{Client, Komainu, Upstream};

/// A self-signed certificate for 127.0.0.1 / localhost: PEM chain and key.
fn self_signed(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (cert, key) = komainu_e2e::keys::self_signed(dir, "cert", "DNS:localhost,IP:127.0.0.1");
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

fn document(up: &Upstream) -> String {
    serde_json::json!({
        "format": 1,
        "routes": [{ "id": "secure", "paths": ["/secure", "/secure/{*rest}"], "public": true,
                     "backend": { "targets": [{ "url": format!("https://127.0.0.1:{}", up.addr.port()) }] } }]
    })
    .to_string()
}

#[tokio::test]
async fn https_backends_are_verified() {
    let dir = temp_dir();
    let (cert, key) = self_signed(&dir);
    let up = Upstream::start_tls(&cert, &key).await;

    // Not trusted: the gateway refuses the backend's certificate.
    let untrusted = Komainu::start(&document(&up));
    let r = Client::default()
        .get(&untrusted.url("/secure/x"), &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["error"], "bad_gateway");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "the message says why: {}",
        r.json()
    );

    // Trusted with --backend-ca: proxied over TLS, connections reused.
    let gw_dir = temp_dir();
    std::fs::write(gw_dir.join("data.json"), document(&up)).unwrap();
    let ca = dir.join("cert.pem").display().to_string();
    let trusted = Komainu::start_in(
        gw_dir,
        &[
            "--claim-secret",
            CLAIM_SECRET,
            "--admin-key",
            ADMIN_KEY,
            "--backend-ca",
            &ca,
        ],
    );
    for _ in 0..3 {
        let r = Client::default()
            .get(&trusted.url("/secure/x?y=1"), &[])
            .await;
        r.expect_status(StatusCode::OK);
        assert_eq!(r.json()["uri"], "/secure/x?y=1");
    }
    let _ = std::fs::remove_dir_all(dir);
}
