//! The request event: what happened to one request, built by the log phase.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;

use super::json;
use crate::gateway::{RequestId, TraceContext};
use crate::quota::QuotaState;
use crate::time::format_rfc3339;

/// What happened to one request (`io.komainu.request.v1`'s `data`).
///
/// Built on the request path from values the context already holds (shared
/// strings, copies). Its JSON is written by hand ([`RequestEvent::write_json`]):
/// the field names are the camelCase of these, a `None` is `null`, except
/// `routeName`, `identity`, `error`, `blame` and `quotas`, left out when
/// absent, and `quotaUnchecked`, left out when false.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvent {
    /// The request id (`Komainu-Request-Id`).
    pub request_id: RequestId,
    /// The matched route's id (null when no route matched).
    pub route_id: Option<Arc<str>>,
    /// The matched route's name.
    pub route_name: Option<Arc<str>>,
    /// Who called: an API key, or nobody on a public route; absent when the
    /// call was refused before that was known.
    pub identity: Option<Identity>,
    /// The request method (null when the head could not be read).
    pub method: Option<Method>,
    /// The host asked for.
    pub host: String,
    /// The path, without the query (which may carry credentials).
    pub path: String,
    /// The status answered to the client.
    pub status: u16,
    /// The error code, when the gateway answered itself.
    pub error: Option<&'static str>,
    /// Who is to blame for an error (`client`, `backend`, `gateway`).
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
    pub quotas: Option<QuotaState>,
    /// The call was admitted without its quotas counted (the counter
    /// store failed and the route's policy is `open`).
    pub quota_unchecked: bool,
    /// The W3C trace: `traceId`, the gateway's `spanId`, the caller's
    /// `parentSpanId` when the trace was continued.
    pub trace: TraceContext,
}

/// Who called (`identity`: `{"type": "key" | "public" | "person" |
/// "refused", …the variant's fields in camelCase}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// An API key.
    Key {
        /// Its client id.
        client_id: Arc<str>,
        /// Its name.
        name: Arc<str>,
    },
    /// Nobody: a public route.
    Public,
    /// A person, on a private route (their session).
    Person {
        /// The auth module that logged them in.
        module: String,
        /// Who they are for it.
        subject: String,
        /// Their email, if known.
        email: Option<String>,
    },
    /// Credentials that were refused, claiming this client id (unverified:
    /// whatever the caller sent).
    Refused {
        /// The client id claimed.
        client_id: String,
    },
}

/// How long a request took, in microseconds (written in milliseconds:
/// `totalMs`, `backendMs`, `overheadMs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durations {
    /// From arrival to the last byte of the answer.
    pub total_us: u64,
    /// The backend's time to its response head (none when not forwarded).
    pub backend_us: Option<u64>,
    /// The gateway's own time: to the response head, less the backend's.
    pub overhead_us: u64,
}

impl RequestEvent {
    /// Appends this event's JSON (the CloudEvent's `data`). Written by
    /// hand: one is made for every request.
    pub fn write_json(&self, out: &mut String) {
        // Room for the whole event at once (most are under a kilobyte).
        out.reserve(1024);
        out.push_str("{\"requestId\":\"");
        out.push_str(self.request_id.as_str());
        out.push_str("\",\"routeId\":");
        json::opt_string(out, self.route_id.as_deref());
        if let Some(name) = &self.route_name {
            out.push_str(",\"routeName\":");
            json::string(out, name);
        }
        if let Some(identity) = &self.identity {
            out.push_str(",\"identity\":");
            identity.write_json(out);
        }
        out.push_str(",\"method\":");
        json::opt_string(out, self.method.as_ref().map(Method::as_str));
        out.push_str(",\"host\":");
        json::string(out, &self.host);
        out.push_str(",\"path\":");
        json::string(out, &self.path);
        out.push_str(",\"status\":");
        json::uint(out, self.status.into());
        if let Some(error) = self.error {
            out.push_str(",\"error\":");
            json::string(out, error);
        }
        if let Some(blame) = self.blame {
            out.push_str(",\"blame\":");
            json::string(out, blame);
        }
        out.push_str(",\"clientIp\":");
        match self.client_ip {
            Some(ip) => json::ip(out, ip),
            None => out.push_str("null"),
        }
        out.push_str(",\"bytesIn\":");
        json::uint(out, self.bytes_in);
        out.push_str(",\"bytesOut\":");
        json::uint(out, self.bytes_out);
        out.push_str(",\"attempts\":");
        json::uint(out, self.attempts.into());
        out.push_str(",\"durations\":{\"totalMs\":");
        json::millis(out, self.durations.total_us);
        out.push_str(",\"backendMs\":");
        match self.durations.backend_us {
            Some(us) => json::millis(out, us),
            None => out.push_str("null"),
        }
        out.push_str(",\"overheadMs\":");
        json::millis(out, self.durations.overhead_us);
        out.push('}');
        if let Some(state) = &self.quotas {
            out.push_str(",\"quotas\":[");
            write_windows(state, out);
            out.push(']');
        }
        if self.quota_unchecked {
            out.push_str(",\"quotaUnchecked\":true");
        }
        // The header value holds both ids in hex (ASCII: read as text at once).
        let value = self.trace.header_value();
        let value = std::str::from_utf8(&value).unwrap_or_default();
        out.push_str(",\"trace\":{\"traceId\":\"");
        out.push_str(value.get(3..35).unwrap_or_default());
        out.push_str("\",\"spanId\":\"");
        out.push_str(value.get(36..52).unwrap_or_default());
        out.push('"');
        if let Some(parent) = &self.trace.parent_id {
            out.push_str(",\"parentSpanId\":\"");
            json::hex(out, parent);
            out.push('"');
        }
        out.push_str(if self.trace.flags & 1 == 1 {
            ",\"sampled\":true}}"
        } else {
            ",\"sampled\":false}}"
        });
    }
}

impl Identity {
    fn write_json(&self, out: &mut String) {
        match self {
            Identity::Key { client_id, name } => {
                out.push_str("{\"type\":\"key\",\"clientId\":");
                json::string(out, client_id);
                out.push_str(",\"name\":");
                json::string(out, name);
            }
            Identity::Public => out.push_str("{\"type\":\"public\""),
            Identity::Person {
                module,
                subject,
                email,
            } => {
                out.push_str("{\"type\":\"person\",\"module\":");
                json::string(out, module);
                out.push_str(",\"subject\":");
                json::string(out, subject);
                if let Some(email) = email {
                    out.push_str(",\"email\":");
                    json::string(out, email);
                }
            }
            Identity::Refused { client_id } => {
                out.push_str("{\"type\":\"refused\",\"clientId\":");
                json::string(out, client_id);
            }
        }
        out.push('}');
    }
}

/// The quota windows: `{"window","limit","remaining","resetsAt"}` each.
/// All but `remaining` is the same for every call of a key in a window:
/// written once per window and limit, around the count.
fn write_windows(state: &QuotaState, out: &mut String) {
    /// A window's text before and after its remaining count, for a limit
    /// and a reset time.
    #[derive(Default)]
    struct Around {
        limit: u64,
        reset: u64,
        before: String,
        after: String,
    }
    thread_local! {
        static WINDOWS: std::cell::RefCell<[Around; 3]> = Default::default();
    }
    WINDOWS.with(|cache| {
        let mut cache = cache.borrow_mut();
        for (i, (w, limit, remaining, reset)) in state.windows().enumerate() {
            let slot = &mut cache[w.index()];
            if slot.before.is_empty() || slot.limit != limit || slot.reset != reset {
                slot.limit = limit;
                slot.reset = reset;
                slot.before.clear();
                slot.before.push_str("{\"window\":\"");
                slot.before.push_str(w.name());
                slot.before.push_str("\",\"limit\":");
                json::uint(&mut slot.before, limit);
                slot.before.push_str(",\"remaining\":");
                slot.after.clear();
                slot.after.push_str(",\"resetsAt\":\"");
                slot.after.push_str(&format_rfc3339(reset));
                slot.after.push_str("\"}");
            }
            if i > 0 {
                out.push(',');
            }
            out.push_str(&slot.before);
            json::uint(out, remaining);
            out.push_str(&slot.after);
        }
    });
}
