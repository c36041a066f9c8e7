//! A backend written for Otoroshi, on 127.0.0.1: it verifies the
//! `Otoroshi-Claim` info token with the shared key (HS512) and answers the
//! state challenge (`Otoroshi-State` → `Otoroshi-State-Resp`, V1 and V2),
//! as Otoroshi's documentation asks of backends; then it answers JSON with
//! the method, URI, headers it received and the claim it decoded.
//!
//! A request header `x-challenge` makes it misbehave: `none` (no answer),
//! `wrong` (another state), `long` (a V2 token living an hour).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::Sha512;
use tokio::net::TcpListener;

/// A running Otoroshi-style backend; stops when dropped.
pub struct OtoroshiBackend {
    /// Its address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtoroshiBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Signs `payload` HS512 with `key`, as Otoroshi and its backends do.
pub fn sign_hs512(key: &[u8], payload: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS512"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload.to_string());
    let input = format!("{header}.{body}");
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

/// The payload of an HS512 token signed with `key`, or why not.
pub fn verify_hs512(key: &[u8], token: &str) -> Result<serde_json::Value, String> {
    let (input, sig) = token.rsplit_once('.').ok_or("not a JWT")?;
    let (header, payload) = input.split_once('.').ok_or("not a JWT")?;
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    if header["alg"] != "HS512" {
        return Err(format!("alg {}", header["alg"]));
    }
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|e| e.to_string())?;
    mac.verify_slice(&sig)
        .map_err(|_| "bad signature".to_owned())?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl OtoroshiBackend {
    /// Starts a backend that trusts `shared_key`.
    pub async fn start(shared_key: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let key: Arc<[u8]> = Arc::from(shared_key.as_bytes());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let key = key.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(key.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, task }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

async fn handle(
    key: Arc<[u8]>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let claim = header("otoroshi-claim").map(|t| match verify_hs512(&key, &t) {
        Ok(payload) => payload,
        Err(why) => serde_json::json!({ "invalid": why }),
    });
    let misbehave = header("x-challenge").unwrap_or_default();
    let state_resp = header("otoroshi-state").and_then(|state| {
        if misbehave == "none" {
            return None;
        }
        if state.split('.').count() != 3 {
            // V1: the state itself.
            return Some(if misbehave == "wrong" {
                "not-the-state".to_owned()
            } else {
                state
            });
        }
        // V2: read the state from the signed token, answer a signed one.
        let payload = verify_hs512(&key, &state).ok()?;
        let value = payload["state"].as_str()?.to_owned();
        let iat = now_s();
        let exp = if misbehave == "long" {
            iat + 3600
        } else {
            iat + 10
        };
        let value = if misbehave == "wrong" {
            "another-state".to_owned()
        } else {
            value
        };
        Some(sign_hs512(
            &key,
            &serde_json::json!({ "aud": "Otoroshi", "state-resp": value, "iat": iat, "exp": exp }),
        ))
    });
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "headers": headers,
        "claim": claim,
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    if let Some(resp) = state_resp {
        if let Ok(v) = http::HeaderValue::from_str(&resp) {
            response.headers_mut().insert("otoroshi-state-resp", v);
        }
    }
    Ok(response)
}
