//! What travels with one request through the phases.

use std::net::IpAddr;
use std::sync::Arc;

use super::trace::TraceContext;
use crate::quota::QuotaState;

/// A request id: a random UUID (version 4), from randomness the adapter supplies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    text: [u8; 36],
    bits: u128,
}

impl RequestId {
    /// Formats 128 random bits as a version-4 UUID.
    pub fn from_random(random: u128) -> Self {
        const HEX: &[u8; 16] = crate::text::HEX_LOWER;
        let bits = (random & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
        let mut out = [b'-'; 36];
        let mut nibble = 0;
        for (i, slot) in out.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                continue;
            }
            *slot = HEX[((bits >> (124 - 4 * nibble)) & 0xf) as usize];
            nibble += 1;
        }
        Self { text: out, bits }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("00000000-0000-4000-8000-000000000000")
    }

    /// The id's 128 bits (a new trace takes them as its trace id).
    pub fn bits(&self) -> u128 {
        self.bits
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the adapter knows about the connection a request came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientInfo {
    /// The peer's address, if known (added to `X-Forwarded-For`).
    pub addr: Option<IpAddr>,
    /// Whether the client connection is TLS (`X-Forwarded-Proto`).
    pub tls: bool,
}

/// The per-request context, filled phase by phase and handed back to the
/// respond phase.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The request id (sent both ways as `Komainu-Request-Id`).
    pub request_id: RequestId,
    /// When the request arrived (Unix ms, from the adapter).
    pub received_ms: u64,
    /// The W3C trace this request belongs to (continued from the client's
    /// `traceparent`, or started here).
    pub trace: TraceContext,
    /// The matched route's index in the revision that decided.
    pub route: Option<usize>,
    /// The matched route's id.
    pub route_id: Option<Arc<str>>,
    /// The authenticated client id.
    pub client_id: Option<Arc<str>>,
    /// The authenticated key's name.
    pub key_name: Option<Arc<str>>,
    /// The client id claimed by credentials that were refused (unverified).
    pub claimed_client_id: Option<String>,
    /// The client's address, as the gateway determined it (the peer, or
    /// what trusted proxies say in `X-Forwarded-For`).
    pub client_ip: Option<IpAddr>,
    /// The route answered itself (a redirect, a static response).
    pub answered: bool,
    /// The caller's counters, when metrics are kept per key.
    pub key_stats: Option<Arc<crate::stats::KeyStats>>,
    /// The quota state after counting this call.
    pub quota: Option<QuotaState>,
    /// Why the call was admitted without its quotas being counted (the
    /// counter store failed and the route's policy is `open`).
    pub quota_unchecked: Option<String>,
    /// The error [`crate::Gateway::handle_request`] answered with, when it
    /// refused the request (for the log phase).
    pub refusal: Option<crate::GatewayError>,
    /// The CORS headers the answer carries (an allowed origin on a route
    /// with CORS).
    pub cors: Option<super::cors::CorsReply>,
    /// The index of the route's target the request was sent to.
    pub target: Option<usize>,
    /// When the target was chosen (Unix ms): whether the request is its
    /// circuit's half-open probe is judged from it.
    pub picked_ms: u64,
    /// The targets tried before (a bit per target index), for retries.
    pub tried: u64,
    /// Retries made.
    pub retries: u32,
    /// Targets that went down or came back while this request ran (their
    /// alerts are raised by the log phase).
    pub health_changes: Vec<super::health::HealthChange>,
    /// The person calling a private route (their session).
    pub person: Option<Box<crate::login::Person>>,
    /// On a route with the Otoroshi profile: the state challenge to check
    /// and the headers to send back.
    pub otoroshi: Option<Box<super::otoroshi::Exchange>>,
}

impl RequestContext {
    /// A fresh context.
    pub fn new(request_id: RequestId, received_ms: u64) -> Self {
        Self {
            request_id,
            received_ms,
            trace: TraceContext::continue_or_start(None, request_id.bits()),
            route: None,
            route_id: None,
            client_id: None,
            key_name: None,
            claimed_client_id: None,
            key_stats: None,
            answered: false,
            client_ip: None,
            quota: None,
            quota_unchecked: None,
            refusal: None,
            cors: None,
            target: None,
            picked_ms: 0,
            tried: 0,
            retries: 0,
            health_changes: Vec::new(),
            person: None,
            otoroshi: None,
        }
    }
}

/// What [`crate::Gateway::decide`] decided for a request it admits.
pub enum Decision<'g> {
    /// Forward it.
    Forward(super::Forwarding<'g>),
    /// The route answers itself (a redirect, a static response): send this.
    Answer(http::Response<String>),
    /// One of the gateway's login paths (private routes): run it with
    /// [`crate::Gateway::login_step`] and send its answer.
    Login(super::LoginStep),
}

impl std::fmt::Debug for Decision<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Forward(forwarding) => {
                write!(f, "Forward({})", forwarding.target.authority)
            }
            Decision::Answer(response) => write!(f, "Answer({})", response.status()),
            Decision::Login(step) => write!(f, "Login({step:?})"),
        }
    }
}

/// What the request phases decided.
#[derive(Debug)]
pub enum Outcome {
    /// Answer the client with this response (an error); nothing is forwarded.
    Respond(http::Response<String>),
    /// Send the rewritten request head (uri, headers) to the backend.
    Forward(Forward),
    /// One of the gateway's login paths (private routes): run it with
    /// [`crate::Gateway::login_step`] and send its answer.
    Login(super::LoginStep),
}

/// How to forward: the request head itself was rewritten in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The route's timeouts.
    pub timeouts: super::Timeouts,
    /// Largest request body: stop streaming past it, answer 413.
    pub max_body_bytes: Option<u64>,
    /// The client asks to switch to a protocol the route allows (its
    /// `Upgrade` header, taken out of the rewritten head, goes on).
    pub upgrade: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = RequestId::from_random(u128::MAX);
        assert_eq!(id.as_str(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let id = RequestId::from_random(0);
        assert_eq!(id.as_str(), "00000000-0000-4000-8000-000000000000");
    }
}
