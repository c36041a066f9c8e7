//! Alerts: events an operator should hear about, each with a name
//! (`io.komainu.alert.<name>.v1`) and a severity.
//!
//! | name | severity | raised when |
//! |---|---|---|
//! | `quota_almost_spent` | warning | a key's call uses the share of a window set by `settings.alerts.quotaAlmostSpentPercent` (once per window) |
//! | `quota_spent` | warning | a key's call takes the last call of a window (once per window) |
//! | `key_refused_repeatedly` | warning | calls with a disabled, expired, unknown or wrong key keep coming |
//! | `secret_rotated` | info | a key's secret was rotated (its grace period is in `details`) |
//! | `rotation_grace_ending` | info | a rotated key's previous secret stops working soon |
//! | `store_unavailable` | critical | the configuration or counter store cannot be reached |
//! | `store_recovered` | info | it can again |
//! | `revision_applied` | info | a configuration revision went live on this instance |
//!
//! Backend health and circuit-breaker changes come through the same type.

use serde::Serialize;

/// The severity of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    Warning,
    /// Service is degraded.
    Critical,
}

/// An alert (`io.komainu.alert.<name>.v1`'s `data`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertEvent {
    /// What it is about (`quota_spent`, `store_unavailable`…).
    pub name: &'static str,
    /// How urgent.
    pub severity: Severity,
    /// A sentence for people.
    pub message: String,
    /// The route concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The API key concerned (its client id), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Numbers and names that go with it.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl AlertEvent {
    /// An alert without route, key or details.
    pub fn new(name: &'static str, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            name,
            severity,
            message: message.into(),
            route: None,
            key: None,
            details: serde_json::Value::Null,
        }
    }

    /// What the alert is about, as the event's subject.
    pub fn subject(&self) -> Option<&str> {
        self.key.as_deref().or(self.route.as_deref())
    }
}
