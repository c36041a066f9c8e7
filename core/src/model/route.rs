//! Routes: which requests go to which backend.

use serde::{Deserialize, Serialize};

/// A route: hosts × paths × methods, forwarded to a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    /// Unique id; the `aud` of the claim sent to the backend.
    #[cfg_attr(test, schemars(regex(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")))]
    pub id: String,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// A disabled route matches nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hosts served (exact, or `*.example.com`); empty means any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path patterns in matchit syntax (`/users/{id}`, `/users/{*rest}`).
    #[cfg_attr(test, schemars(length(min = 1), inner(regex(pattern = "^/"))))]
    pub paths: Vec<String>,
    /// Methods served; empty means any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Where matching requests go.
    #[serde(default)]
    pub backend: Backend,
    /// `true`: no API key needed.
    #[serde(default)]
    pub public: bool,
    /// A route for people: they log in through this auth module first
    /// (see the README's private routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<RouteAuth>,
    /// Groups this route belongs to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Overrides `settings.quotaFailure` for this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_failure: Option<super::QuotaFailure>,
    /// `true`: a client's `Authorization` header reaches the backend when
    /// it did not carry the gateway's credentials (a public route in front
    /// of a backend that authenticates callers itself). By default any
    /// Basic or Bearer `Authorization` is removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_authorization: bool,
    /// Maintenance: every call gets 503 `maintenance` with `Retry-After`
    /// (`settings.maintenance` says how long and what), nothing is forwarded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance: bool,
    /// When not empty, only clients from these networks may call (CIDR or
    /// addresses, IPv4 and IPv6), on top of `settings.ipAllow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    /// Clients from these networks are refused (403 `ip_forbidden`), on top
    /// of `settings.ipBlock`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_block: Vec<String>,
    /// Largest request body, in bytes (413 `payload_too_large` beyond it);
    /// unset: `settings.maxRequestBodyBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Answer with a redirect instead of forwarding (after the key and
    /// quota checks, when the route is not public).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Answer with this response instead of forwarding (likewise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respond: Option<StaticResponse>,
    /// Protocols a client may switch to on this route (`Upgrade`, then a
    /// tunnel after the backend's `101`), case-insensitive; `[]` allows
    /// none. Another upgrade is forwarded as a plain request.
    #[serde(default = "websocket_only", skip_serializing_if = "is_websocket_only")]
    pub upgrades: Vec<String>,
    /// A path prefix taken off before forwarding, at a segment boundary
    /// (`/api`: `/api/orders` goes to the backend as `/orders`, `/api` as `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// The path sent to the backend, from a template: the route's path
    /// parameters (`{id}` of `/users/{id}`, `{rest}` of `/files/{*rest}`)
    /// and `{path}` (the whole request path); the query is kept. Not with
    /// `stripPrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_path: Option<String>,
    /// The `Host` sent to the backend instead of the target's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_override: Option<String>,
    /// CORS: the gateway answers preflights and adds the
    /// `Access-Control-*` headers for the origins it allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Headers changed on the request sent to the backend.
    #[serde(default, skip_serializing_if = "HeaderChanges::is_empty")]
    pub request_headers: HeaderChanges,
    /// Headers changed on the backend's response sent to the client.
    #[serde(default, skip_serializing_if = "HeaderChanges::is_empty")]
    pub response_headers: HeaderChanges,
    /// Speak Otoroshi's protocol on this route (its credential headers,
    /// info token, state challenge): clients and backends written for
    /// Otoroshi keep working. Overrides `settings.otoroshi.profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otoroshi: Option<super::OtoroshiProfile>,
}

/// Cross-origin resource sharing for a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed: exact (`https://app.example.com`), or `*` for any.
    pub allow_origins: Vec<String>,
    /// Methods a page may use (default GET, HEAD, POST, PUT, PATCH, DELETE).
    #[serde(default = "cors_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a page may send (default `Authorization`,
    /// `Content-Type` and the gateway's key headers).
    #[serde(default = "cors_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers a page may read beyond the simple ones (default
    /// the request id and the quota headers).
    #[serde(default = "cors_exposed")]
    pub expose_headers: Vec<String>,
    /// Whether a page may send cookies or credentials with its calls (not
    /// with `*`).
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may keep a preflight's answer (default 600 s).
    #[serde(default = "cors_max_age")]
    pub max_age_seconds: u32,
}

fn cors_methods() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn cors_headers() -> Vec<String> {
    [
        "authorization",
        "content-type",
        "komainu-client-id",
        "komainu-client-secret",
    ]
    .map(String::from)
    .to_vec()
}

fn cors_exposed() -> Vec<String> {
    [
        "komainu-request-id",
        "komainu-daily-calls-remaining",
        "komainu-monthly-calls-remaining",
        "ratelimit",
        "ratelimit-policy",
        "retry-after",
    ]
    .map(String::from)
    .to_vec()
}

fn cors_max_age() -> u32 {
    600
}

/// Headers a route changes: `set` replaces (the incoming value is dropped),
/// `append` adds a value after the incoming ones, `remove` drops. Names are
/// case-insensitive; the hop-by-hop and framing headers, and those the
/// gateway sets itself, cannot be changed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderChanges {
    /// Name → value, replacing what came.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub set: std::collections::BTreeMap<String, String>,
    /// Name → value, added after what came.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub append: std::collections::BTreeMap<String, String>,
    /// Names dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderChanges {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

impl Default for Route {
    /// A route as a document that names only its id and paths gets it:
    /// every other field at its default (enabled, websocket upgrades, no
    /// targets); for code that builds routes (`Route { id, paths, ..Default::default() }`).
    fn default() -> Self {
        Self {
            id: String::new(),
            name: String::new(),
            enabled: true,
            hosts: Vec::new(),
            paths: Vec::new(),
            methods: Vec::new(),
            backend: Backend::default(),
            public: false,
            auth: None,
            groups: Vec::new(),
            quota_failure: None,
            pass_authorization: false,
            maintenance: false,
            ip_allow: Vec::new(),
            ip_block: Vec::new(),
            max_body_bytes: None,
            redirect: None,
            respond: None,
            upgrades: websocket_only(),
            cors: None,
            strip_prefix: None,
            rewrite_path: None,
            host_override: None,
            request_headers: HeaderChanges::default(),
            response_headers: HeaderChanges::default(),
            otoroshi: None,
        }
    }
}

fn websocket_only() -> Vec<String> {
    vec!["websocket".into()]
}

fn is_websocket_only(upgrades: &[String]) -> bool {
    upgrades.len() == 1 && upgrades[0].eq_ignore_ascii_case("websocket")
}

/// A redirect: where to, and with which status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    /// The `Location`, a template: `{scheme}`, `{host}`, `{path}` and
    /// `{query}` (with its `?`, empty when none) are the request's, e.g.
    /// `https://new.example.com{path}{query}`.
    pub to: String,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default = "found")]
    pub status: u16,
}

fn found() -> u16 {
    302
}

/// A response the gateway sends itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticResponse {
    /// The status (200–599; default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// Headers (`Content-Type` defaults to `text/plain; charset=utf-8`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body (at most 64 KiB).
    #[serde(default)]
    pub body: String,
}

fn ok() -> u16 {
    200
}

/// The timeouts of an exchange with a backend, in milliseconds (each
/// between 1 and 3600000; `totalMs` up to 86400000). One definition for
/// every path (HTTP/1, HTTP/2, the Worker); 504 `gateway_timeout` naming
/// the one that ran out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timeouts {
    /// Opening a connection to a target (TCP, and TLS for https; default
    /// 5000). Nothing was sent: another target may be tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<u64>,
    /// From the request sent to the backend's response head (default
    /// 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_ms: Option<u64>,
    /// The longest gap while a body moves, either way: the backend not
    /// reading the request's body, or not sending its response's (default
    /// 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    /// The whole exchange, from the request's arrival to the last byte of
    /// the answer (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_ms: Option<u64>,
}

impl Timeouts {
    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The most targets a backend may have.
pub const MAX_TARGETS: usize = 64;

/// The backend of a route: its targets and how to reach them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Target base URLs, chosen by weighted round robin. A route whose
    /// targets all have weight 0 (or that has none) answers 503.
    #[serde(default)]
    pub targets: Vec<Target>,
    /// The one timeout of earlier versions, in milliseconds: the response
    /// head and the gaps in a body (`timeouts.headMs` and `idleMs`, which
    /// win when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Named timeouts; those left out come from `settings.timeouts`, then
    /// the defaults.
    #[serde(default, skip_serializing_if = "Timeouts::is_empty")]
    pub timeouts: Timeouts,
    /// How a target is chosen for each request (default: weighted round
    /// robin).
    #[serde(default, skip_serializing_if = "LoadBalancing::is_default")]
    pub load_balancing: LoadBalancing,
    /// Passive health: a target that keeps failing is taken out of the
    /// rotation for a cool-down, then tried again by one request. Off when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Active health: each target polled on a path (native deployment;
    /// the Worker relies on the circuit breaker). Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Another target is tried when one cannot be reached (default: one
    /// retry, within a budget of 20 % of the route's requests).
    #[serde(default, skip_serializing_if = "Retries::is_default")]
    pub retries: Retries,
}

/// When a target's circuit opens: after `consecutiveFailures` failures in a
/// row, or when `errorRatePercent` of at least `minimumRequests` calls in a
/// `windowSeconds` window failed. Open, it takes no traffic for
/// `openSeconds`; then one request goes to it (half-open): success closes
/// the circuit, failure opens it again. A failure is a target that could
/// not be reached, broke the exchange or timed out, or answered 502, 503 or
/// 504.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Failures in a row that open the circuit (default 5; 0 turns this
    /// rule off).
    #[serde(default = "five")]
    pub consecutive_failures: u32,
    /// Share of failed calls (percent) that opens the circuit; none by
    /// default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_percent: Option<u8>,
    /// Calls a window needs before its error rate counts (default 20).
    #[serde(default = "twenty")]
    pub minimum_requests: u32,
    /// Length of the error-rate window (default 10 s).
    #[serde(default = "ten")]
    pub window_seconds: u32,
    /// How long an open circuit keeps the target out (default 10 s).
    #[serde(default = "ten")]
    pub open_seconds: u32,
}

/// Polling each target: `GET path` every `intervalMs`; a target is down
/// after `unhealthyThreshold` failed checks in a row and up again after
/// `healthyThreshold` good ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// The path asked, under the target's base path (default `/`).
    #[serde(default = "slash")]
    pub path: String,
    /// Time between two checks of a target (default 5000 ms).
    #[serde(default = "five_seconds")]
    pub interval_ms: u64,
    /// Time a check may take (default 2000 ms; at most the interval).
    #[serde(default = "two_seconds")]
    pub timeout_ms: u64,
    /// Statuses that mean healthy (default: any 2xx or 3xx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<u16>,
    /// Good checks in a row that bring a down target back (default 2).
    #[serde(default = "two")]
    pub healthy_threshold: u32,
    /// Failed checks in a row that take a target down (default 3).
    #[serde(default = "three")]
    pub unhealthy_threshold: u32,
}

/// Retrying a request on another target. Only when it is safe: the
/// target could not be reached (nothing was sent), or the method is
/// idempotent, the gateway still holds the whole request (natively: on
/// HTTP/1, a body that came with the head; on HTTP/2, a body of a declared
/// length up to 64 KiB, read whole first; at the edge, no body) and no
/// byte of a response came.
/// Each retry waits up to `backoffMs` (doubling with each retry of a
/// request, full jitter). In any 10 s, a route makes at most 10 retries
/// plus `budgetPercent` of its requests of the 10 s before, so that
/// retries cannot multiply an outage. (At the edge, where `fetch` does not
/// say whether anything was sent, only idempotent requests without a body
/// are retried.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    /// Retries after the first attempt (default 1; 0 turns retries off).
    #[serde(default = "one")]
    pub attempts: u32,
    /// Longest wait before a retry, in milliseconds (default 0: at once).
    #[serde(default)]
    pub backoff_ms: u64,
    /// Retries allowed, as a share of the route's requests (default 20).
    #[serde(default = "twenty_percent")]
    pub budget_percent: u8,
}

impl Default for Retries {
    fn default() -> Self {
        Self {
            attempts: 1,
            backoff_ms: 0,
            budget_percent: 20,
        }
    }
}

impl Retries {
    /// Whether it is the default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn five() -> u32 {
    5
}
fn twenty() -> u32 {
    20
}
fn twenty_percent() -> u8 {
    20
}
fn ten() -> u32 {
    10
}
fn two() -> u32 {
    2
}
fn three() -> u32 {
    3
}
fn slash() -> String {
    "/".to_owned()
}
fn five_seconds() -> u64 {
    5_000
}
fn two_seconds() -> u64 {
    2_000
}

/// How a route's target is chosen: among the primary targets that take
/// traffic (weight above 0); the backup targets only when none does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancing {
    /// `roundRobin` (default, weighted), `random` (weighted),
    /// `leastRequests` (the less busy of two targets drawn at random:
    /// requests in flight on this instance), or `hash` (the same key goes
    /// to the same target while the targets stay: the client's address,
    /// or the `header` or `cookie` named).
    #[serde(default)]
    pub strategy: Strategy,
    /// `hash`: the request header whose value is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `hash`: the cookie whose value is the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

impl LoadBalancing {
    /// Whether it is the default (weighted round robin).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A load-balancing strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub enum Strategy {
    /// Weighted round robin.
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
    /// Power of two choices on the requests in flight.
    LeastRequests,
    /// Consistent (rendezvous) hashing on a key of the request.
    Hash,
}

/// One target of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// Base URL (`http://` or `https://`); the request path is appended to its path.
    pub url: String,
    /// Share of the traffic relative to the other targets; 0 drains the target.
    #[serde(default = "one")]
    pub weight: u32,
    /// A backup target takes traffic only when no primary target does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backup: bool,
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

/// What a private route asks of its callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteAuth {
    /// The auth module people log in with (an `oidc` module).
    pub module: String,
    /// Callers with an API key are let in too, as on an ordinary route.
    #[serde(default)]
    pub api_keys: bool,
    /// Only people with one of these roles (empty: anyone the module lets in).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}
