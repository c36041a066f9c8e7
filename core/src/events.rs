//! Events: what the gateway reports, and the sink adapters implement.
//!
//! Every accepted admin change is an [`AuditEvent`]. A sink receives
//! events synchronously and must not block: an adapter queues or writes
//! them (the native binary writes JSON lines to its log; other exporters
//! plug in here).

use serde::Serialize;

/// An event, as exported (JSON, camelCase).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Event {
    /// An accepted admin change.
    Admin(AuditEvent),
}

/// One accepted change made through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who: the admin key's client id.
    pub actor: String,
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

/// Where events go. Implementations must return quickly.
pub trait EventSink {
    /// Takes one event.
    fn emit(&self, event: &Event);
}

/// A sink that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}
