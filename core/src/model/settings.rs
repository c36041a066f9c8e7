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
        }
    }
}
