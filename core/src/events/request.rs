//! The request event: what happened to one request, built by the log phase.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::gateway::{RequestId, TraceContext};
use crate::quota::QuotaState;
use crate::time::format_rfc3339;

/// What happened to one request (`io.komainu.request.v1`'s `data`).
///
/// Built on the request path from values the context already holds (shared
/// strings, copies); turned into JSON only by whoever reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestEvent {
    /// The request id (`Komainu-Request-Id`).
    #[serde(serialize_with = "request_id")]
    pub request_id: RequestId,
    /// The matched route's id (null when no route matched).
    pub route_id: Option<Arc<str>>,
    /// The matched route's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route_name: Option<Arc<str>>,
    /// Who called: an API key, or nobody on a public route; absent when the
    /// call was refused before that was known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The request method (null when the head could not be read).
    #[serde(serialize_with = "method")]
    pub method: Option<Method>,
    /// The host asked for.
    pub host: String,
    /// The path, without the query (which may carry credentials).
    pub path: String,
    /// The status answered to the client.
    pub status: u16,
    /// The error code, when the gateway answered itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Who is to blame for an error (`client`, `backend`, `gateway`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blame: Option<&'static str>,
    /// The client's address (the connection's peer).
    pub client_ip: Option<IpAddr>,
    /// Body bytes received from the client.
    pub bytes_in: u64,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// Connections tried to reach the backend (0 when not forwarded).
    pub attempts: u32,
    /// How long it took.
    pub durations: Durations,
    /// The key's quota windows after this call.
    #[serde(serialize_with = "quotas", skip_serializing_if = "Option::is_none")]
    pub quotas: Option<QuotaState>,
    /// The call was admitted without its quotas counted (the counter
    /// store failed and the route's policy is `open`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub quota_unchecked: bool,
    /// The W3C trace: `traceId`, the gateway's `spanId`, the caller's
    /// `parentSpanId` when the trace was continued.
    #[serde(serialize_with = "trace")]
    pub trace: TraceContext,
}

/// Who called.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Identity {
    /// An API key.
    #[serde(rename_all = "camelCase")]
    Key {
        /// Its client id.
        client_id: Arc<str>,
        /// Its name.
        name: Arc<str>,
    },
    /// Nobody: a public route.
    Public,
    /// A person, on a private route (their session).
    #[serde(rename_all = "camelCase")]
    Person {
        /// The auth module that logged them in.
        module: String,
        /// Who they are for it.
        subject: String,
        /// Their email, if known.
        #[serde(skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
    /// Credentials that were refused, claiming this client id (unverified:
    /// whatever the caller sent).
    #[serde(rename_all = "camelCase")]
    Refused {
        /// The client id claimed.
        client_id: String,
    },
}

/// How long a request took, in microseconds (rendered in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Durations {
    /// From arrival to the last byte of the answer.
    #[serde(rename = "totalMs", serialize_with = "ms")]
    pub total_us: u64,
    /// The backend's time to its response head (none when not forwarded).
    #[serde(rename = "backendMs", serialize_with = "opt_ms")]
    pub backend_us: Option<u64>,
    /// The gateway's own time: to the response head, less the backend's.
    #[serde(rename = "overheadMs", serialize_with = "ms")]
    pub overhead_us: u64,
}

fn request_id<S: Serializer>(id: &RequestId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_str())
}

fn method<S: Serializer>(m: &Option<Method>, s: S) -> Result<S::Ok, S::Error> {
    match m {
        Some(m) => s.serialize_str(m.as_str()),
        None => s.serialize_none(),
    }
}

fn ms<S: Serializer>(us: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(*us as f64 / 1000.0)
}

fn opt_ms<S: Serializer>(us: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match us {
        Some(us) => ms(us, s),
        None => s.serialize_none(),
    }
}

fn quotas<S: Serializer>(state: &Option<QuotaState>, s: S) -> Result<S::Ok, S::Error> {
    let Some(state) = state else {
        return s.serialize_none();
    };
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Window<'a> {
        window: &'static str,
        limit: u64,
        remaining: u64,
        resets_at: &'a str,
    }
    // A window's reset time is the same for every call in it: formatted once.
    thread_local! {
        static RESETS: std::cell::RefCell<[(u64, String); 3]> = Default::default();
    }
    RESETS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let mut seq = s.serialize_seq(None)?;
        for (w, limit, remaining, reset) in state.windows() {
            let slot = &mut cache[w.index()];
            if slot.0 != reset || slot.1.is_empty() {
                *slot = (reset, format_rfc3339(reset));
            }
            seq.serialize_element(&Window {
                window: w.name(),
                limit,
                remaining,
                resets_at: &slot.1,
            })?;
        }
        seq.end()
    })
}

fn trace<S: Serializer>(t: &TraceContext, s: S) -> Result<S::Ok, S::Error> {
    // The header value holds both ids in hex: no allocation.
    let value = t.header_value();
    let text = std::str::from_utf8(&value).unwrap_or("");
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("traceId", text.get(3..35).unwrap_or(""))?;
    map.serialize_entry("spanId", text.get(36..52).unwrap_or(""))?;
    if let Some(parent) = t.parent_id_hex() {
        map.serialize_entry("parentSpanId", &parent)?;
    }
    map.serialize_entry("sampled", &(t.flags & 1 == 1))?;
    map.end()
}
