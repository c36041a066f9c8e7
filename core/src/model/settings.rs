//! Gateway-wide settings carried in the configuration document.

use serde::{Deserialize, Serialize};

/// Settings that apply to every route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Lifetime in seconds of the `Komainu-Claim` JWT sent to backends.
    #[serde(default = "default_claim_ttl")]
    pub claim_ttl_seconds: u64,
    /// The `iss` of the `Komainu-Claim` JWT.
    #[serde(default = "default_claim_issuer")]
    pub claim_issuer: String,
    /// Largest total size of a request's header names and values, in bytes
    /// (431 `headers_too_large` beyond it).
    #[serde(default = "default_max_header_bytes")]
    pub max_request_header_bytes: usize,
    /// What to do with a call when the counter store cannot be reached
    /// (a route may override it).
    #[serde(default)]
    pub quota_failure: QuotaFailure,
    /// Add `Komainu-Proxy-Latency` and `Komainu-Upstream-Latency` (ms) to
    /// proxied responses.
    #[serde(default)]
    pub latency_headers: bool,
    /// When alert events are raised.
    #[serde(default)]
    pub alerts: AlertSettings,
    /// What the metrics count.
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// Maintenance of the whole gateway, and what every route in
    /// maintenance answers.
    #[serde(default)]
    pub maintenance: MaintenanceSettings,
    /// When not empty, only clients from these networks may call any route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    /// Clients from these networks may call no route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_block: Vec<String>,
    /// The timeouts of routes that do not set them (`backend.timeouts`).
    #[serde(default, skip_serializing_if = "super::Timeouts::is_empty")]
    pub timeouts: super::Timeouts,
    /// Largest request body, in bytes, for routes that set none (413
    /// `payload_too_large` beyond it); unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body_bytes: Option<u64>,
    /// The proxies (load balancers, CDNs) in front of the gateway whose
    /// `X-Forwarded-For` is believed: the client is the last address in it
    /// that is not one of them. Empty: the connection's peer is the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Otoroshi compatibility: the shared key of its tokens, and the
    /// profile of every route.
    #[serde(default, skip_serializing_if = "super::OtoroshiSettings::is_empty")]
    pub otoroshi: super::OtoroshiSettings,
}

/// Maintenance: on for every route, or what routes in maintenance answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceSettings {
    /// Every route is in maintenance.
    #[serde(default)]
    pub enabled: bool,
    /// The `Retry-After` sent, in seconds (1–604800).
    #[serde(default = "default_retry_after")]
    #[cfg_attr(test, schemars(range(min = 1, max = 604_800)))]
    pub retry_after_seconds: u64,
    /// The message of the 503 (at most 1000 characters).
    #[serde(default = "default_maintenance_message")]
    pub message: String,
}

impl Default for MaintenanceSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            retry_after_seconds: default_retry_after(),
            message: default_maintenance_message(),
        }
    }
}

fn default_retry_after() -> u64 {
    300
}

fn default_maintenance_message() -> String {
    "this service is under maintenance: retry later".to_owned()
}

/// What the metrics count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsSettings {
    /// Count requests per API key too (`komainu_key_requests_total`, one
    /// series per key, status class and outcome): off by default, since
    /// every key adds series.
    #[serde(default)]
    pub per_key: bool,
}

/// When alert events are raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertSettings {
    /// The share of a quota window (percent, 1–99) whose use raises
    /// `quota_almost_spent`, once per window and key; 0 turns it off.
    #[serde(default = "default_quota_alert_percent")]
    pub quota_almost_spent_percent: u8,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            quota_almost_spent_percent: default_quota_alert_percent(),
        }
    }
}

fn default_quota_alert_percent() -> u8 {
    80
}

/// The policy when quotas cannot be checked (counter store unavailable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum QuotaFailure {
    /// Admit the call, uncounted (the adapter logs it).
    #[default]
    Open,
    /// Refuse the call: 503 `store_unavailable`.
    Closed,
}

fn default_max_header_bytes() -> usize {
    32 * 1024
}

fn default_claim_ttl() -> u64 {
    30
}

fn default_claim_issuer() -> String {
    "komainu".to_owned()
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            claim_ttl_seconds: default_claim_ttl(),
            claim_issuer: default_claim_issuer(),
            max_request_header_bytes: default_max_header_bytes(),
            quota_failure: QuotaFailure::default(),
            latency_headers: false,
            alerts: AlertSettings::default(),
            metrics: MetricsSettings::default(),
            maintenance: MaintenanceSettings::default(),
            ip_allow: Vec::new(),
            ip_block: Vec::new(),
            max_request_body_bytes: None,
            timeouts: super::Timeouts::default(),
            trusted_proxies: Vec::new(),
            otoroshi: super::OtoroshiSettings::default(),
        }
    }
}
