//! A real HTTP receiver on 127.0.0.1 for webhook exporters: records every
//! delivery (headers and body) and answers as told: 200, 500, or never.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// 200 OK: the delivery is recorded.
    Accept = 0,
    /// 500: the delivery is refused (and counted as an attempt).
    Fail = 1,
    /// Never answers.
    Hang = 2,
}

/// One delivery received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Delivery {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON delivery")
    }

    /// Checks `Komainu-Signature: t=<t>,v1=<hex>` as a receiver would: the
    /// HMAC-SHA256 of `"<t>.<body>"` with `secret` (the `hmac` crate, not
    /// the gateway's code).
    pub fn assert_signed_with(&self, secret: &str) {
        use hmac::Mac as _;
        let signature = self.headers["komainu-signature"]
            .to_str()
            .expect("a text signature");
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .expect("t=…,v1=…");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("a key");
        mac.update(format!("{t}.").as_bytes());
        mac.update(&self.body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v1, expected, "the delivery's signature");
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    accepted: Arc<Mutex<Vec<Delivery>>>,
    attempts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver on a free loopback port, in `mode`.
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(AtomicU8::new(mode as u8));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (m, a, n) = (mode.clone(), accepted.clone(), attempts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (m, a, n) = (m.clone(), a.clone(), n.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (m, a, n) = (m.clone(), a.clone(), n.clone());
                        async move {
                            n.fetch_add(1, Ordering::SeqCst);
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let status = match m.load(Ordering::SeqCst) {
                                0 => {
                                    a.lock().unwrap().push(Delivery {
                                        headers: parts.headers,
                                        body,
                                    });
                                    StatusCode::OK
                                }
                                1 => StatusCode::INTERNAL_SERVER_ERROR,
                                _ => {
                                    std::future::pending::<()>().await;
                                    StatusCode::OK
                                }
                            };
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = status;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            mode,
            accepted,
            attempts,
            task,
        }
    }

    /// The URL deliveries go to.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Changes how it answers from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Deliveries accepted so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.accepted.lock().unwrap().clone()
    }

    /// Requests received so far, answered or not.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Waits until `done(deliveries)` holds, up to `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.deliveries();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the receiver did not get what was expected within {within:?}: {} deliveries, {} attempts",
                got.len(),
                self.attempts()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
