//! TLS termination for the proxy: HTTPS on its own listener, HTTP/2 or
//! HTTP/1.1 chosen by ALPN, the certificate chosen by SNI among those
//! given, reloaded when their files change (connections open keep theirs:
//! nothing restarts, nothing is dropped); and an optional listener that
//! sends plain-HTTP clients to HTTPS (308).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::h1::Pool;
use crate::http_server::accept;
use crate::state::State;

/// How often the certificate files are looked at for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// The longest a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One certificate chain and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificates served, chosen by SNI; the first one for a client
/// that names no server or a name no certificate covers.
#[derive(Debug)]
pub struct Certificates {
    files: Vec<CertFiles>,
    loaded: ArcSwap<Vec<Loaded>>,
    /// The files' modification times when last loaded.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
}

impl Certificates {
    /// Loads every pair; an unreadable or mismatched one is an error that
    /// names the file.
    pub fn load(files: Vec<CertFiles>) -> Result<Arc<Self>, String> {
        if files.is_empty() {
            return Err("give at least one --tls-cert with its --tls-key".into());
        }
        let loaded = load_all(&files)?;
        let stamps = stamps(&files);
        Ok(Arc::new(Self {
            files,
            loaded: ArcSwap::from_pointee(loaded),
            stamps: Mutex::new(stamps),
        }))
    }

    /// Reloads when a file changed. A pair that no longer loads leaves the
    /// certificates served as they were (and says why).
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let now = stamps(&self.files);
        {
            let mut seen = self.stamps.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        let loaded = load_all(&self.files)?;
        self.loaded.store(Arc::new(loaded));
        Ok(true)
    }

    /// The certificate for server name `name`.
    fn for_name(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.load();
        let fits = |l: &&Loaded| {
            let (Some(name), Some(leaf)) = (name, l.key.cert.first()) else {
                return false;
            };
            let (Ok(server), Ok(cert)) = (
                ServerName::try_from(name),
                webpki::EndEntityCert::try_from(leaf),
            ) else {
                return false;
            };
            cert.verify_is_valid_for_subject_name(&server).is_ok()
        };
        loaded
            .iter()
            .find(fits)
            .or_else(|| loaded.first())
            .map(|l| l.key.clone())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.for_name(hello.server_name())
    }
}

fn stamps(files: &[CertFiles]) -> Vec<Option<SystemTime>> {
    files
        .iter()
        .flat_map(|f| [&f.cert, &f.key])
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn load_all(files: &[CertFiles]) -> Result<Vec<Loaded>, String> {
    let provider = rustls::crypto::ring::default_provider();
    files
        .iter()
        .map(|f| {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.cert)
                .and_then(|i| i.collect::<Result<_, _>>())
                .map_err(|e| format!("--tls-cert {}: {e}", f.cert.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--tls-cert {}: no PEM certificate in the file",
                    f.cert.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_file(&f.key)
                .map_err(|e| format!("--tls-key {}: {e}", f.key.display()))?;
            let signing = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| format!("--tls-key {}: {e}", f.key.display()))?;
            let key = CertifiedKey::new(certs, signing);
            key.keys_match().map_err(|e| {
                format!(
                    "--tls-key {} does not match --tls-cert {}: {e}",
                    f.key.display(),
                    f.cert.display()
                )
            })?;
            Ok(Loaded { key: Arc::new(key) })
        })
        .collect()
}

/// The server configuration: the certificates by SNI, ALPN h2 then
/// HTTP/1.1.
pub fn server_config(certs: Arc<Certificates>) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves HTTPS on `listener` until `shutdown`: each connection's
/// requests go through the same pipeline as the clear-text listener's.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    certs: Arc<Certificates>,
    config: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let pool = Pool::new(state.backend_tls.clone());
    let reloader = tokio::spawn(watch_files(certs));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = shutdown.changed() => break,
        };
        let (acceptor, state, pool) = (acceptor.clone(), state.clone(), pool.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = service_fn(move |req| {
                crate::proxy::handle_secure(state.clone(), pool.clone(), req, peer)
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            builder.http2().timer(TokioTimer::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, %peer, "https connection ended with an error");
            }
        });
    }
    reloader.abort();
    drop(listener);
    graceful.shutdown().await;
}

/// Reloads the certificates when their files change.
async fn watch_files(certs: Arc<Certificates>) {
    let mut every = tokio::time::interval(RELOAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match certs.reload_if_changed() {
            Ok(true) => tracing::info!("TLS certificates reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS certificates not reloaded: still serving the previous ones")
            }
        }
    }
}

/// Answers every request on `listener` with a permanent redirect (308) to
/// the same host and path over HTTPS on `https_port`.
pub async fn redirect(listener: TcpListener, https_port: u16, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = accept(&listener) => accepted,
            _ = shutdown.changed() => break,
        };
        tokio::spawn(async move {
            let service = service_fn(
                move |req: hyper::Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(redirect_response(&req, https_port))
                },
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn redirect_response<B>(req: &hyper::Request<B>, https_port: u16) -> hyper::Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    let Some(host) = host else {
        let mut response = hyper::Response::new(Full::new(Bytes::from_static(
            br#"{"error":"bad_request","message":"a Host header is needed to redirect to https"}"#,
        )));
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        return response;
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{}{port}{path}", host.host());
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = http::StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_keeps_host_and_path_and_names_the_port() {
        let req = hyper::Request::builder()
            .uri("/a/b?c=1")
            .header("host", "shop.example.com:8080")
            .body(())
            .unwrap();
        let r = redirect_response(&req, 8443);
        assert_eq!(r.status(), 308);
        assert_eq!(
            r.headers()["location"],
            "https://shop.example.com:8443/a/b?c=1"
        );
        let r = redirect_response(&req, 443);
        assert_eq!(r.headers()["location"], "https://shop.example.com/a/b?c=1");
        let no_host = hyper::Request::builder().uri("/").body(()).unwrap();
        assert_eq!(redirect_response(&no_host, 443).status(), 400);
    }
}
