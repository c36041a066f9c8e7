//! A real backend on 127.0.0.1 for the gateway to forward to.
//!
//! - `/stream…`: streams the request body back unchanged;
//! - `/big/{n}`: answers `n` bytes of a known pattern ([`pattern`]);
//! - `/slow/{ms}`: waits, then answers 200;
//! - anything else: JSON with the method, URI and headers it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// Its address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `n` bytes of a recognizable, non-repeating-at-small-scale pattern.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + i / 4096) % 251) as u8).collect()
}

impl Upstream {
    /// Starts an upstream on a free loopback port.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts an https upstream with this certificate chain and key (PEM).
    pub async fn start_tls(cert_pem: &[u8], key_pem: &[u8]) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .expect("a PEM certificate");
        let key = PrivateKeyDer::from_pem_slice(key_pem).expect("a PEM private key");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("a usable certificate");
        Self::start_with(Some(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(
            config,
        ))))
        .await
    }

    /// Starts an upstream on `addr` (a port used before: a backend
    /// coming back).
    pub async fn start_at(addr: SocketAddr) -> Self {
        Self::serve(TcpListener::bind(addr).await.expect("bind upstream"), None)
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        Self::serve(listener, tls)
    }

    /// Serves `listener`; dropping the upstream closes its listener and
    /// every connection it has open (a backend killed).
    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = listener.local_addr().expect("upstream address");
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let tls = tls.clone();
                connections.spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service_fn(handle))
                                .await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, task }
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type Body = Either<Incoming, Full<Bytes>>;

async fn handle(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/stream") {
        return Ok(Response::new(Either::Left(req.into_body())));
    }
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        return Ok(Response::new(Either::Right(Full::new(Bytes::from(
            pattern(n),
        )))));
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|n| n.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Ok(Response::new(Either::Right(Full::new(Bytes::from_static(
            b"slow done",
        )))));
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
    });
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
    response.headers_mut().insert(
        "x-upstream",
        http::HeaderValue::from_static("test-upstream"),
    );
    Ok(response)
}
