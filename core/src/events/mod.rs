//! Events: what the gateway reports, in one envelope (CloudEvents 1.0), and
//! the sink adapters implement.
//!
//! Three families, each a CloudEvents `type`:
//!
//! - `io.komainu.request.v1`: every request, built once by the log phase
//!   ([`crate::Gateway::log`]) from the request's context and the numbers the
//!   adapter hands in;
//! - `io.komainu.audit.<action>.v1`: every accepted admin change
//!   (`route.create`, `apikey.rotate`, `config.import`…);
//! - `io.komainu.alert.<name>.v1`: something an operator should hear about
//!   ([`alert`] lists them).
//!
//! No event carries a secret, a credential header, a query string or a
//! body. A sink takes events synchronously and must not block: adapters
//! queue them for their exporters, and drop (and count) when a queue is full.

pub mod alert;
pub mod filter;
mod json;
mod request;
pub mod webhook;

use std::borrow::Cow;

use serde::Serialize;

pub use alert::AlertEvent;
pub use filter::{EventQuery, TypeFilter};
pub use request::{Durations, Identity, RequestEvent};

use crate::time::format_rfc3339;

/// The CloudEvents `type` of request events.
pub const REQUEST_TYPE: &str = "io.komainu.request.v1";

/// One event: an id, a time and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id (a UUID; a request event's is the request id).
    pub id: crate::gateway::RequestId,
    /// When it happened (Unix milliseconds).
    pub time_ms: u64,
    /// What happened.
    pub data: EventData,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// A request went through the gateway.
    Request(Box<RequestEvent>),
    /// An accepted admin change.
    Audit(AuditEvent),
    /// An alert.
    Alert(AlertEvent),
    /// A test event sent on demand through one exporter
    /// (`io.komainu.test.v1`).
    Test(TestEvent),
}

/// What a test event carries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEvent {
    /// The exporter tested.
    pub exporter: String,
    /// Who asked.
    pub actor: String,
    /// A sentence for whoever receives it.
    pub message: String,
}

/// One accepted change made through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Who: the admin key's client id, a person's email (else
    /// `module/subject`), or `komainu` for the gateway itself.
    pub actor: String,
    /// The person who made the change, when a person logged in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<crate::login::Person>,
    /// What: `route.create`, `apikey.rotate`, `config.import`…
    pub action: String,
    /// The entity's id, when the change is about one entity.
    pub target: Option<String>,
    /// The configuration revision the change produced.
    pub revision: u64,
    /// The entity before the change (secrets removed).
    pub before: Option<serde_json::Value>,
    /// The entity after the change (secrets removed).
    pub after: Option<serde_json::Value>,
}

impl Event {
    /// An event with an id made from 128 random bits.
    pub fn new(random: u128, time_ms: u64, data: EventData) -> Self {
        Self {
            id: crate::gateway::RequestId::from_random(random),
            time_ms,
            data,
        }
    }

    /// The family: `request`, `audit` or `alert`.
    pub fn family(&self) -> &'static str {
        match self.data {
            EventData::Request(_) => "request",
            EventData::Audit(_) => "audit",
            EventData::Alert(_) => "alert",
            EventData::Test(_) => "test",
        }
    }

    /// The CloudEvents `type`.
    pub fn type_name(&self) -> Cow<'static, str> {
        match &self.data {
            EventData::Request(_) => Cow::Borrowed(REQUEST_TYPE),
            EventData::Audit(a) => Cow::Owned(format!("io.komainu.audit.{}.v1", a.action)),
            EventData::Alert(a) => Cow::Owned(format!("io.komainu.alert.{}.v1", a.name)),
            EventData::Test(_) => Cow::Borrowed("io.komainu.test.v1"),
        }
    }

    /// The CloudEvents `subject`: the route of a request, the entity an
    /// admin change is about, what an alert is about.
    pub fn subject(&self) -> Option<&str> {
        match &self.data {
            EventData::Request(r) => r.route_id.as_deref(),
            EventData::Audit(a) => a.target.as_deref(),
            EventData::Alert(a) => a.subject(),
            EventData::Test(t) => Some(&t.exporter),
        }
    }

    /// The route the event concerns, if any (for filters).
    pub fn route(&self) -> Option<&str> {
        match &self.data {
            EventData::Request(r) => r.route_id.as_deref(),
            EventData::Audit(a) if a.action.starts_with("route.") => a.target.as_deref(),
            EventData::Audit(_) => None,
            EventData::Alert(a) => a.route.as_deref(),
            EventData::Test(_) => None,
        }
    }

    /// The API key the event concerns, if any (for filters).
    pub fn key(&self) -> Option<&str> {
        match &self.data {
            EventData::Request(r) => match &r.identity {
                Some(Identity::Key { client_id, .. }) => Some(client_id),
                Some(Identity::Refused { client_id }) => Some(client_id),
                _ => None,
            },
            EventData::Audit(a) if a.action.starts_with("apikey.") => a.target.as_deref(),
            EventData::Audit(_) => None,
            EventData::Alert(a) => a.key.as_deref(),
            EventData::Test(_) => None,
        }
    }

    /// The event as one CloudEvents 1.0 JSON object (structured mode).
    /// `source` names the emitter: the instance, or the Worker.
    pub fn to_cloudevent(&self, source: &str) -> String {
        let mut out = String::with_capacity(1024);
        self.write_cloudevent(source, &mut out);
        out
    }

    /// Appends [`Event::to_cloudevent`] to `out`: `specversion`, `id`,
    /// `source`, `type`, `time` (RFC 3339, milliseconds), `subject` (left
    /// out when there is none), `datacontenttype` and `data`. Written by
    /// hand, request events' `data` too (they come with every request);
    /// the other events' `data` through serde.
    pub fn write_cloudevent(&self, source: &str, out: &mut String) {
        out.push_str("{\"specversion\":\"1.0\",\"id\":\"");
        out.push_str(self.id.as_str());
        out.push_str("\",\"source\":");
        json::string(out, source);
        out.push_str(",\"type\":");
        json::string(out, &self.type_name());
        out.push_str(",\"time\":\"");
        write_rfc3339_ms(self.time_ms, out);
        out.push('"');
        if let Some(subject) = self.subject() {
            out.push_str(",\"subject\":");
            json::string(out, subject);
        }
        out.push_str(",\"datacontenttype\":\"application/json\",\"data\":");
        let data = match &self.data {
            EventData::Request(r) => {
                r.write_json(out);
                Ok(())
            }
            EventData::Audit(a) => serde_json::to_string(a).map(|j| out.push_str(&j)),
            EventData::Alert(a) => serde_json::to_string(a).map(|j| out.push_str(&j)),
            EventData::Test(t) => serde_json::to_string(t).map(|j| out.push_str(&j)),
        };
        // These types serialize without fail (string keys, no custom
        // serializer that errs): null would stand for what cannot be.
        if data.is_err() {
            out.push_str("null");
        }
        out.push('}');
    }
}

/// An event as a store's event log keeps it: the CloudEvent, and what the
/// event endpoints filter on (so that reading the log needs no knowledge of
/// each event type's data).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// The route the event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The API key the event concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The CloudEvent.
    pub event: serde_json::Value,
}

impl LogEntry {
    /// The entry of `event`, emitted by `source`, as JSON text.
    pub fn of(event: &Event, source: &str) -> String {
        Self::with_json(event, &event.to_cloudevent(source))
    }

    /// The entry of `event` whose CloudEvent JSON is `cloudevent`.
    pub fn with_json(event: &Event, cloudevent: &str) -> String {
        let entry = Self {
            route: event.route().map(str::to_owned),
            key: event.key().map(str::to_owned),
            event: serde_json::from_str(cloudevent).unwrap_or(serde_json::Value::Null),
        };
        serde_json::to_string(&entry).unwrap_or_default()
    }

    /// The event's CloudEvents type.
    pub fn kind(&self) -> &str {
        self.event["type"].as_str().unwrap_or("")
    }

    /// Whether a store keeps events like `event` (audit events and alerts:
    /// the few that matter across instances and restarts).
    pub fn is_kept(event: &Event) -> bool {
        matches!(event.data, EventData::Audit(_) | EventData::Alert(_))
    }
}

/// Appends RFC 3339 with milliseconds (`2026-12-03T10:00:00.123Z`). The
/// date and time of the second are remembered: events come many per second.
fn write_rfc3339_ms(ms: u64, out: &mut String) {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        let second = ms / 1000;
        if last.0 != second {
            let mut prefix = format_rfc3339(second * 1000);
            prefix.pop(); // the 'Z'
            *last = (second, prefix);
        }
        out.push_str(&last.1);
        let millis = (ms % 1000) as u16;
        out.push('.');
        out.push(char::from(b'0' + (millis / 100) as u8));
        out.push(char::from(b'0' + (millis / 10 % 10) as u8));
        out.push(char::from(b'0' + (millis % 10) as u8));
        out.push('Z');
    })
}

/// Where events go. Implementations must return quickly (queue, never wait).
///
/// Beyond taking events, a sink may keep recent ones and run exporters; the
/// admin API reads them through the other methods, whose defaults say the
/// deployment does not offer them.
pub trait EventSink {
    /// Takes one event.
    fn emit(&self, event: Event);

    /// Whether request events are wanted (the log phase builds none
    /// otherwise; counters and alerts are kept either way).
    fn wants_request_events(&self) -> bool {
        true
    }

    /// The most recent events `query` asks for, oldest first, as
    /// CloudEvents JSON objects.
    fn recent(&self, _query: &EventQuery) -> Result<Vec<String>, NotOffered> {
        Err(NotOffered("recent events are not kept by this deployment"))
    }

    /// The health of the exporter `id` (configured and enabled) on this instance.
    fn exporter_status(&self, _id: &str) -> Result<Option<ExporterStatus>, NotOffered> {
        Err(NotOffered("exporters do not run on this deployment"))
    }

    /// Queues `event` on the exporter `id` alone, past its type filters:
    /// whether it was queued (false: the exporter is not running here).
    fn test_exporter(&self, _id: &str, _event: Event) -> Result<bool, NotOffered> {
        Err(NotOffered("exporters do not run on this deployment"))
    }
}

/// What a deployment does not offer, and why (the admin API answers 501).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOffered(pub &'static str);

/// An exporter's health on one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExporterStatus {
    /// Events waiting (including a batch being delivered).
    pub queued: u64,
    /// Events delivered.
    pub sent: u64,
    /// Events dropped: the queue was full, or delivery failed past the
    /// retry limit.
    pub dropped: u64,
    /// A delivery is failing and being retried.
    pub retrying: bool,
    /// Failed delivery attempts.
    pub failures: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// When events were last delivered (RFC 3339).
    pub last_sent_at: Option<String>,
}

/// A sink that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

impl<T: EventSink + ?Sized> EventSink for &T {
    fn emit(&self, event: Event) {
        (**self).emit(event);
    }
    fn wants_request_events(&self) -> bool {
        (**self).wants_request_events()
    }
    fn recent(&self, query: &EventQuery) -> Result<Vec<String>, NotOffered> {
        (**self).recent(query)
    }
    fn exporter_status(&self, id: &str) -> Result<Option<ExporterStatus>, NotOffered> {
        (**self).exporter_status(id)
    }
    fn test_exporter(&self, id: &str, event: Event) -> Result<bool, NotOffered> {
        (**self).test_exporter(id, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_event_is_a_cloudevent() {
        let event = Event::new(
            7,
            1_764_756_000_123,
            EventData::Audit(AuditEvent {
                actor: "ops".into(),
                user: None,
                action: "route.create".into(),
                target: Some("orders".into()),
                revision: 4,
                before: None,
                after: Some(serde_json::json!({"id": "orders"})),
            }),
        );
        let v: serde_json::Value = serde_json::from_str(&event.to_cloudevent("komainu/a")).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "io.komainu.audit.route.create.v1");
        assert_eq!(v["source"], "komainu/a");
        assert_eq!(v["subject"], "orders");
        assert_eq!(v["time"], "2025-12-03T10:00:00.123Z");
        assert_eq!(v["id"], event.id.as_str());
        for (ms, text) in [
            (1_764_756_000_007, "2025-12-03T10:00:00.007Z"),
            (1_764_756_001_999, "2025-12-03T10:00:01.999Z"),
            (1_764_756_001_000, "2025-12-03T10:00:01.000Z"),
        ] {
            let mut out = String::new();
            write_rfc3339_ms(ms, &mut out);
            assert_eq!(out, text);
        }
        assert_eq!(v["data"]["actor"], "ops");
        assert_eq!(v["data"]["revision"], 4);
    }

    fn request(event: RequestEvent) -> serde_json::Value {
        let e = Event {
            id: event.request_id,
            time_ms: 1_764_756_000_123,
            data: EventData::Request(Box::new(event)),
        };
        let text = e.to_cloudevent("/komainu/\"a\"");
        assert!(!text.contains('\n'), "one line: {text}");
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn a_request_event_with_every_field_is_written_as_documented() {
        use crate::gateway::{RequestId, TraceContext};
        use crate::model::Quotas;
        use crate::quota::{Acquired, Plan, QuotaState};
        use http::Method;
        let now = 1_764_756_000_123;
        let plan = Plan::new(
            &Quotas {
                per_second: Some(10),
                per_day: Some(1000),
                per_month: None,
            },
            now,
        );
        let quotas = QuotaState::new(
            plan,
            Acquired {
                admitted: true,
                counts: [3, 999, 0],
            },
            now,
        );
        let mut trace = TraceContext::continue_or_start(
            Some(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            5,
        );
        trace.span_id = [1, 2, 3, 4, 5, 6, 7, 0xab];
        let id = RequestId::from_random(5);
        let v = request(RequestEvent {
            request_id: id,
            route_id: Some("orders".into()),
            route_name: Some("Orders \"v2\"\n".into()),
            identity: Some(Identity::Key {
                client_id: "shop\\1".into(),
                name: "Shop \u{1}é".into(),
            }),
            method: Some(Method::POST),
            host: "api.example.com".into(),
            path: "/orders/é\"x".into(),
            status: 502,
            error: Some("backend_unreachable"),
            blame: Some("backend"),
            client_ip: Some("2001:db8::7".parse().unwrap()),
            bytes_in: 12,
            bytes_out: 345,
            attempts: 2,
            durations: Durations {
                total_us: 12_345,
                backend_us: Some(10_000),
                overhead_us: 50,
            },
            quotas: Some(quotas),
            quota_unchecked: true,
            trace,
        });
        assert_eq!(
            v,
            serde_json::json!({
                "specversion": "1.0",
                "id": id.as_str(),
                "source": "/komainu/\"a\"",
                "type": "io.komainu.request.v1",
                "time": "2025-12-03T10:00:00.123Z",
                "subject": "orders",
                "datacontenttype": "application/json",
                "data": {
                    "requestId": id.as_str(),
                    "routeId": "orders",
                    "routeName": "Orders \"v2\"\n",
                    "identity": {"type": "key", "clientId": "shop\\1", "name": "Shop \u{1}é"},
                    "method": "POST",
                    "host": "api.example.com",
                    "path": "/orders/é\"x",
                    "status": 502,
                    "error": "backend_unreachable",
                    "blame": "backend",
                    "clientIp": "2001:db8::7",
                    "bytesIn": 12,
                    "bytesOut": 345,
                    "attempts": 2,
                    "durations": {"totalMs": 12.345, "backendMs": 10.0, "overheadMs": 0.05},
                    "quotas": [
                        {"window": "second", "limit": 10, "remaining": 7, "resetsAt": "2025-12-03T10:00:01Z"},
                        {"window": "day", "limit": 1000, "remaining": 1, "resetsAt": "2025-12-04T00:00:00Z"},
                    ],
                    "quotaUnchecked": true,
                    "trace": {
                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                        "spanId": "01020304050607ab",
                        "parentSpanId": "b7ad6b7169203331",
                        "sampled": true,
                    },
                },
            })
        );
    }

    #[test]
    fn a_request_event_knowing_little_says_null_or_leaves_out() {
        use crate::gateway::{RequestId, TraceContext};
        let id = RequestId::from_random(9);
        let mut trace = TraceContext::continue_or_start(None, 9);
        trace.flags = 0;
        for identity in [
            None,
            Some(Identity::Public),
            Some(Identity::Refused {
                client_id: "who\"".into(),
            }),
            Some(Identity::Person {
                module: "sso".into(),
                subject: "u1".into(),
                email: None,
            }),
            Some(Identity::Person {
                module: "sso".into(),
                subject: "u1".into(),
                email: Some("a@b.c".into()),
            }),
        ] {
            let v = request(RequestEvent {
                request_id: id,
                route_id: None,
                route_name: None,
                identity: identity.clone(),
                method: None,
                host: String::new(),
                path: String::new(),
                status: 400,
                error: None,
                blame: None,
                client_ip: None,
                bytes_in: 0,
                bytes_out: 0,
                attempts: 0,
                durations: Durations::default(),
                quotas: None,
                quota_unchecked: false,
                trace,
            });
            assert!(v.get("subject").is_none());
            let mut data = serde_json::json!({
                "requestId": id.as_str(),
                "routeId": null,
                "method": null,
                "host": "",
                "path": "",
                "status": 400,
                "clientIp": null,
                "bytesIn": 0,
                "bytesOut": 0,
                "attempts": 0,
                "durations": {"totalMs": 0.0, "backendMs": null, "overheadMs": 0.0},
                "trace": {
                    "traceId": format!("{:032x}", u128::from_be_bytes(trace.trace_id)),
                    "spanId": format!("{:016x}", u64::from_be_bytes(trace.span_id)),
                    "sampled": false,
                },
            });
            data["identity"] = match identity {
                None => serde_json::Value::Null,
                Some(Identity::Public) => serde_json::json!({"type": "public"}),
                Some(Identity::Refused { .. }) => {
                    serde_json::json!({"type": "refused", "clientId": "who\""})
                }
                Some(Identity::Person { email: None, .. }) => {
                    serde_json::json!({"type": "person", "module": "sso", "subject": "u1"})
                }
                Some(_) => serde_json::json!({
                    "type": "person", "module": "sso", "subject": "u1", "email": "a@b.c"
                }),
            };
            if data["identity"].is_null() {
                data.as_object_mut().unwrap().remove("identity");
            }
            assert_eq!(v["data"], data);
        }
    }
}
