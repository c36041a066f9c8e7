//! TLS termination on the real binary: two certificates chosen by SNI,
//! HTTP/2 by ALPN, a certificate swapped on disk while a client stays
//! connected (its connection goes on; new ones get the new certificate),
//! the HTTP→HTTPS redirect listener, and start-up errors that name the
//! file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use komainu_e2e::gateway::{run_to_exit, temp_dir, ADMIN_KEY, CLAIM_SECRET};
use komainu_e2e::{Komainu, Upstream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A self-signed certificate for `name`, written to `dir/name.pem` and
/// `dir/name.key`; its DER.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert, key) = komainu_e2e::keys::self_signed(dir, name, &format!("DNS:{name}"));
    let der = CertificateDer::from_pem_file(&cert).unwrap().to_vec();
    (cert, key, der)
}

/// A TLS client trusting `trusted` (self-signed certificates), offering
/// `alpn`.
fn client(trusted: &[&[u8]], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for der in trusted {
        roots.add(CertificateDer::from(der.to_vec())).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// An HTTPS connection to `addr` naming `sni`: the certificate presented,
/// the protocol agreed, and a sender of requests.
struct Conn {
    cert: Vec<u8>,
    alpn: Option<Vec<u8>>,
    h1: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>>,
    h2: Option<hyper::client::conn::http2::SendRequest<Empty<Bytes>>>,
}

async fn connect(addr: SocketAddr, sni: &str, tls: &tokio_rustls::TlsConnector) -> Conn {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tls
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS with {sni}: {e}"));
    let (_, session) = stream.get_ref();
    let cert = session.peer_certificates().unwrap()[0].to_vec();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let io = TokioIo::new(stream);
    if alpn.as_deref() == Some(b"h2") {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Conn {
            cert,
            alpn,
            h1: None,
            h2: Some(send),
        }
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Conn {
            cert,
            alpn,
            h1: Some(send),
            h2: None,
        }
    }
}

impl Conn {
    async fn get(&mut self, host: &str, path: &str) -> (StatusCode, serde_json::Value) {
        let request = |uri: String| {
            http::Request::get(uri)
                .header("host", host)
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        let response = match (&mut self.h1, &mut self.h2) {
            (Some(h1), _) => h1.send_request(request(path.to_owned())).await.unwrap(),
            (_, Some(h2)) => h2
                .send_request(request(format!("https://{host}{path}")))
                .await
                .unwrap(),
            _ => unreachable!(),
        };
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }
}

fn listening(k: &Komainu, what: &str) -> SocketAddr {
    let out = k.wait_for_output(what);
    out.lines()
        .find_map(|l| l.split(what).nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no \"{what}\" in: {out}"))
}

/// A backend that switches to whatever protocol is asked, then echoes.
async fn switching_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if s.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                    .await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_by_sni_alpn_reload_and_redirect() {
    let dir = temp_dir();
    let (a_cert, a_key, a_der) = certificate(&dir, "a.test");
    let (b_cert, b_key, b_der) = certificate(&dir, "b.test");
    let up = Upstream::start().await;
    let echo = switching_echo().await;
    std::fs::write(
        dir.join("data.json"),
        serde_json::json!({ "format": 1, "routes": [
            { "id": "r", "paths": ["/{*rest}"], "public": true,
              "backend": { "targets": [{ "url": up.url() }] } },
            { "id": "ws", "paths": ["/ws"], "public": true,
              "backend": { "targets": [{ "url": format!("http://{echo}") }] } }
        ] })
        .to_string(),
    )
    .unwrap();
    let paths = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let (a_cert_s, a_key_s, b_cert_s, b_key_s) =
        (paths(&a_cert), paths(&a_key), paths(&b_cert), paths(&b_key));
    let k = Komainu::start_in(
        dir.clone(),
        &[
            "--claim-secret",
            CLAIM_SECRET,
            "--admin-key",
            ADMIN_KEY,
            "--tls-addr",
            "127.0.0.1:0",
            "--tls-cert",
            &a_cert_s,
            "--tls-key",
            &a_key_s,
            "--tls-cert",
            &b_cert_s,
            "--tls-key",
            &b_key_s,
            "--https-redirect-addr",
            "127.0.0.1:0",
        ],
    );
    let https = listening(&k, "proxy listening on https://");
    let redirect = listening(&k, "redirect to https listening on http://");
    let both = client(&[&a_der, &b_der], &[b"http/1.1"]);

    // SNI picks the certificate; the backend learns the scheme was https.
    let mut a = connect(https, "a.test", &both).await;
    assert_eq!(a.cert, a_der);
    let (status, echo) = a.get("a.test", "/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    let mut b = connect(https, "b.test", &both).await;
    assert_eq!(b.cert, b_der);
    assert_eq!(b.get("b.test", "/x").await.0, StatusCode::OK);

    // HTTP/2 by ALPN.
    let h2 = client(&[&a_der], &[b"h2", b"http/1.1"]);
    let mut two = connect(https, "a.test", &h2).await;
    assert_eq!(two.alpn.as_deref(), Some(&b"h2"[..]));
    let (status, echo) = two.get("a.test", "/over-h2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echo["uri"], "/over-h2");

    // A WebSocket over TLS: switched, then bytes both ways.
    let tcp = tokio::net::TcpStream::connect(https).await.unwrap();
    let mut ws = both
        .connect(ServerName::try_from("a.test").unwrap(), tcp)
        .await
        .unwrap();
    ws.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        ws.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    ws.write_all(b"ping over tls").await.unwrap();
    let mut back = [0u8; 13];
    ws.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping over tls");

    // The certificate of a.test swapped on disk while `a` stays connected.
    let new_dir = dir.join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    let (new_cert, new_key, new_der) = certificate(&new_dir, "a.test");
    assert_ne!(new_der, a_der);
    std::fs::copy(&new_key, &a_key).unwrap();
    std::fs::copy(&new_cert, &a_cert).unwrap();
    // (Trusting both: until the reload, the old one is served.)
    let trusting_new = client(&[&a_der, &new_der, &b_der], &[b"http/1.1"]);
    let mut seen = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = connect(https, "a.test", &trusting_new).await.cert;
        if seen == new_der {
            break;
        }
    }
    assert_eq!(seen, new_der, "new connections get the new certificate");
    // The connection opened before goes on, with its certificate.
    assert_eq!(a.get("a.test", "/still").await.0, StatusCode::OK);
    assert_eq!(two.get("a.test", "/still").await.0, StatusCode::OK);
    // A broken file is not taken: the certificates served stay.
    std::fs::write(&b_cert, "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(connect(https, "b.test", &both).await.cert, b_der);

    // Plain HTTP on the redirect listener: 308 to https, same host and path.
    let reply = komainu_e2e::Client::default()
        .get(
            &format!("http://{redirect}/a/b?c=1"),
            &[("host", "shop.test:8080")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.header("location"),
        format!("https://shop.test:{}/a/b?c=1", https.port())
    );
}

#[test]
fn tls_start_up_errors_name_the_file() {
    let dir = temp_dir();
    let (a_cert, _a_key, _) = certificate(&dir, "a.test");
    let (_b_cert, b_key, _) = certificate(&dir, "b.test");
    let store = format!("file:{}", dir.join("data.json").display());
    let base = [
        "serve",
        "--store",
        &store,
        "--proxy-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    let a = a_cert.to_str().unwrap();
    let bk = b_key.to_str().unwrap();
    for (extra, expected) in [
        (vec!["--tls-cert", a], "--tls-key"),
        (vec!["--tls-cert", a, "--tls-key", bk], "does not match"),
        (
            vec!["--tls-cert", "/nonexistent.pem", "--tls-key", bk],
            "/nonexistent.pem",
        ),
        (vec!["--https-redirect-addr", "127.0.0.1:0"], "--tls-cert"),
    ] {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(&extra);
        let (status, out, err) = run_to_exit(&args);
        assert!(!status.success(), "{extra:?} started");
        assert!(
            err.contains(expected) || out.contains(expected),
            "{extra:?}: {err}{out}"
        );
    }
}
