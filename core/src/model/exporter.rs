//! Exporters: where events go, as configuration (an admin API entity,
//! exported, imported and synced like the others, live at once).

use serde::{Deserialize, Serialize};

use super::validate::{id_message, is_valid_id, Checker};
use crate::events::filter::check_pattern;

/// Where an exporter sends events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum ExporterKind {
    /// JSON lines appended to a file (`path`; `-` is the standard output).
    File,
    /// Batches POSTed to a URL as `application/cloudevents-batch+json`.
    Webhook,
    /// `XADD` to a Redis stream (`url`, `stream`, `maxLen`).
    RedisStream,
}

impl ExporterKind {
    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Webhook => "webhook",
            Self::RedisStream => "redis-stream",
        }
    }
}

/// An exporter: a kind, its destination, which events, and how it queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exporter {
    /// Unique id.
    #[cfg_attr(test, schemars(regex(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")))]
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// `file`, `webhook` or `redis-stream`.
    pub kind: ExporterKind,
    /// A disabled exporter keeps its configuration and sends nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Event types sent (patterns: a type, a prefix ending in `*`, or a
    /// family `request`, `audit`, `alert`); empty: every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Event types never sent (same patterns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// `file`: the file to append to; `-` for the standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `webhook`: the `http(s)://` URL; `redis-stream`: the
    /// `redis(s)://` URL of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`: a secret (16–512 characters) that signs each delivery
    /// (`Komainu-Signature`); write-only, stored sealed.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(length(min = 16, max = 512)))]
    pub secret: Option<String>,
    /// `webhook`: the signing secret, sealed with the deployment key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sealed: Option<String>,
    /// `redis-stream`: the stream's key (default `komainu:events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// `redis-stream`: keep about this many entries (`MAXLEN ~`).
    #[serde(default = "default_max_len")]
    #[cfg_attr(test, schemars(range(min = 1)))]
    pub max_len: u64,
    /// Most events in one delivery (1–1000).
    #[serde(default = "default_batch_size")]
    #[cfg_attr(test, schemars(range(min = 1, max = 1000)))]
    pub batch_size: u32,
    /// Most events waiting (1–1000000); when full, the oldest are dropped.
    #[serde(default = "default_max_queue")]
    #[cfg_attr(test, schemars(range(min = 1, max = 1_000_000)))]
    pub max_queue: u32,
    /// Longest wait before a partial batch leaves, in ms (10–60000).
    #[serde(default = "default_flush_interval_ms")]
    #[cfg_attr(test, schemars(range(min = 10, max = 60_000)))]
    pub flush_interval_ms: u64,
    /// How long a failing delivery is retried (with backoff) before its
    /// events are dropped, in ms (0–86400000).
    #[serde(default = "default_retry_limit_ms")]
    #[cfg_attr(test, schemars(range(max = 86_400_000)))]
    pub retry_limit_ms: u64,
    /// Time allowed for one delivery, in ms (100–60000).
    #[serde(default = "default_timeout_ms")]
    #[cfg_attr(test, schemars(range(min = 100, max = 60_000)))]
    pub timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_max_len() -> u64 {
    100_000
}
fn default_batch_size() -> u32 {
    100
}
fn default_max_queue() -> u32 {
    10_000
}
fn default_flush_interval_ms() -> u64 {
    1_000
}
fn default_retry_limit_ms() -> u64 {
    60_000
}
fn default_timeout_ms() -> u64 {
    5_000
}

impl Exporter {
    /// The context a sealed secret of this exporter is bound to.
    pub fn seal_context(&self) -> String {
        format!("exporter:{}", self.id)
    }

    /// The stream's key (`redis-stream`).
    pub fn stream_key(&self) -> &str {
        self.stream.as_deref().unwrap_or("komainu:events")
    }
}

/// Checks one exporter (at `at`, e.g. `exporters[0]`).
pub(crate) fn check_exporter(c: &mut Checker, at: &str, e: &Exporter) {
    if !is_valid_id(&e.id) {
        c.fail(format!("{at}.id"), id_message(&e.id));
    }
    let kind = e.kind.name();
    let mut not_for = |field: &str, present: bool| {
        if present {
            c.fail(
                format!("{at}.{field}"),
                format!("is not used by a {kind} exporter: remove it"),
            );
        }
    };
    match e.kind {
        ExporterKind::File => {
            not_for("url", e.url.is_some());
            not_for("secret", e.secret.is_some() || e.secret_sealed.is_some());
            not_for("stream", e.stream.is_some());
        }
        ExporterKind::Webhook => {
            not_for("path", e.path.is_some());
            not_for("stream", e.stream.is_some());
        }
        ExporterKind::RedisStream => {
            not_for("path", e.path.is_some());
            not_for("secret", e.secret.is_some() || e.secret_sealed.is_some());
        }
    }
    match e.kind {
        ExporterKind::File => match e.path.as_deref() {
            None | Some("") => c.fail(
                format!("{at}.path"),
                "a file exporter needs the file to append to (\"-\" for the standard output)",
            ),
            Some(p) if p.contains('\0') => c.fail(format!("{at}.path"), "must not hold NUL"),
            Some(_) => {}
        },
        ExporterKind::Webhook => {
            if let Err(why) = check_url(e.url.as_deref(), &["http", "https"]) {
                c.fail(format!("{at}.url"), why);
            }
            if let Some(secret) = &e.secret {
                if let Err(rule) = super::check_secret(secret) {
                    c.fail(format!("{at}.secret"), rule);
                }
            }
        }
        ExporterKind::RedisStream => {
            if let Err(why) = check_url(e.url.as_deref(), &["redis", "rediss"]) {
                c.fail(format!("{at}.url"), why);
            }
            if let Some(stream) = &e.stream {
                if stream.is_empty() || stream.len() > 256 || stream.bytes().any(|b| b <= b' ') {
                    c.fail(
                        format!("{at}.stream"),
                        "must be 1 to 256 characters without spaces or control characters",
                    );
                }
            }
        }
    }
    for (field, patterns) in [("include", &e.include), ("exclude", &e.exclude)] {
        for (j, p) in patterns.iter().enumerate() {
            if let Err(why) = check_pattern(p) {
                c.fail(format!("{at}.{field}[{j}]"), format!("\"{p}\" {why}"));
            }
        }
    }
    if e.max_len == 0 {
        c.fail(format!("{at}.maxLen"), "must be at least 1");
    }
    if !(1..=1000).contains(&e.batch_size) {
        c.fail(format!("{at}.batchSize"), "must be between 1 and 1000");
    }
    if !(1..=1_000_000).contains(&e.max_queue) {
        c.fail(format!("{at}.maxQueue"), "must be between 1 and 1000000");
    }
    if !(10..=60_000).contains(&e.flush_interval_ms) {
        c.fail(
            format!("{at}.flushIntervalMs"),
            "must be between 10 and 60000",
        );
    }
    if e.retry_limit_ms > 86_400_000 {
        c.fail(
            format!("{at}.retryLimitMs"),
            "must be at most 86400000 (a day)",
        );
    }
    if !(100..=60_000).contains(&e.timeout_ms) {
        c.fail(format!("{at}.timeoutMs"), "must be between 100 and 60000");
    }
}

/// Checks a destination URL: one of `schemes`, a host, no credentials in
/// the clear beyond Redis's own `user:password@`.
fn check_url(url: Option<&str>, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some(url) = url else {
        return Err(format!("required: a {expected} URL"));
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("\"{url}\" is not a URL ({e}); expected {expected}…"))?;
    match uri.scheme_str() {
        Some(s) if schemes.contains(&s) => {}
        _ => return Err(format!("\"{url}\" must start with {expected}")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(format!("\"{url}\" has no host")),
    }
}
