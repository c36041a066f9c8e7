//! The proxy's connections to backends: one pool per worker thread, over
//! hyper's HTTP/1 connections (plain or rustls), kept alive and reused.
//!
//! A request takes a ready idle connection for its backend (or opens one),
//! hands its head and body to it, and puts the connection straight back:
//! it becomes ready again when the exchange ends. A reused connection that
//! the backend had closed is detected before anything is written, and the
//! request goes out on a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

/// Idle connections kept per backend, at most.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// Time allowed to open a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request could not be exchanged with a backend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, TLS refused).
    #[error("{0}")]
    Connect(String),
    /// The connection broke during the exchange.
    #[error("{0}")]
    Exchange(String),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Backend {
    https: bool,
    authority: Authority,
}

/// One worker's pool of backend connections (cheap to clone).
#[derive(Clone)]
pub struct UpstreamPool {
    tls: tokio_rustls::TlsConnector,
    idle: Arc<Mutex<HashMap<Backend, Vec<SendRequest<Incoming>>>>>,
}

impl UpstreamPool {
    /// A pool verifying https backends with `tls`.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            tls: tokio_rustls::TlsConnector::from(tls),
            idle: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Sends a request whose URI is absolute (`http://host:port/path`);
    /// the backend gets it in origin form (`/path`).
    pub async fn request(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let backend = Backend {
            https: req.uri().scheme() == Some(&Scheme::HTTPS),
            authority: req
                .uri()
                .authority()
                .cloned()
                .ok_or_else(|| UpstreamError::Connect("the target has no host".into()))?,
        };
        *req.uri_mut() = req
            .uri()
            .path_and_query()
            .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
        loop {
            let (mut sender, reused) = match self.checkout(&backend) {
                Some(sender) => (sender, true),
                None => (self.connect(&backend).await?, false),
            };
            let exchange = sender.try_send_request(req);
            self.checkin(&backend, sender);
            match exchange.await {
                Ok(response) => return Ok(response),
                Err(mut e) => match e.take_message() {
                    // Not written at all: the reused connection was closed; retry.
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(UpstreamError::Exchange(root_cause(e.error()))),
                },
            }
        }
    }

    fn checkout(&self, backend: &Backend) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.get_mut(backend)?;
        senders.retain(|s| !s.is_closed());
        let ready = senders.iter().rposition(SendRequest::is_ready)?;
        Some(senders.swap_remove(ready))
    }

    fn checkin(&self, backend: &Backend, sender: SendRequest<Incoming>) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.entry(backend.clone()).or_default();
        if senders.len() < MAX_IDLE_PER_BACKEND {
            senders.push(sender);
        }
    }

    async fn connect(&self, backend: &Backend) -> Result<SendRequest<Incoming>, UpstreamError> {
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, self.open(backend)).await;
        opened.unwrap_or_else(|_| Err(UpstreamError::Connect("connection timed out".into())))
    }

    async fn open(&self, backend: &Backend) -> Result<SendRequest<Incoming>, UpstreamError> {
        let stream = crate::h1::open_stream(&self.tls, &backend.authority, backend.https).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(root_cause(&e)))?;
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// The innermost cause of an error ("connection refused", "invalid peer
/// certificate: UnknownIssuer"…): what tells the user what to fix.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
