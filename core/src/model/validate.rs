//! Validation of a configuration document, naming the field at fault.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;

use super::{ApiKey, Document, Group, Route, FORMAT};
use crate::secret::{check_sealed_syntax, SecretHash, Verifier};
use crate::time::parse_rfc3339;

/// One problem in a document: the field (`routes[2].paths[0]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field at fault, e.g. `apikeys[0].quotas.perDay`.
    pub field: String,
    /// What is wrong with it, and how to fix it.
    pub message: String,
}

/// Every problem found in a document (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single error.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// A serde error, located: the path of the field at fault, or of the
    /// missing field itself (`missing field \`id\`` → field `id`).
    pub fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (missing, path.is_empty()) {
            (Some(name), true) => name.to_owned(),
            (Some(name), false) => format!("{path}.{name}"),
            (None, _) => path,
        };
        Self::one(field, message)
    }

    /// The first error (there is always one).
    pub fn first(&self) -> Option<&FieldError> {
        self.0.first()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if e.field.is_empty() {
                write!(f, "{}", e.message)?;
            } else {
                write!(f, "{}: {}", e.field, e.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects errors while walking a document.
#[derive(Default)]
pub(crate) struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub(crate) fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

/// Longest id accepted, in bytes.
const MAX_ID_LEN: usize = 128;

/// Whether `id` is a valid entity id: 1 to 128 of `A-Z a-z 0-9 . _ ~ @ + -`.
/// The set needs no escaping in URLs, JSON or HTTP headers.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'~' | b'@' | b'+' | b'-')
        })
}

pub(crate) fn check_document(doc: &Document) -> Result<(), ValidationErrors> {
    let mut c = Checker::default();
    if doc.format != FORMAT {
        c.fail(
            "format",
            format!(
                "unsupported format {}; this gateway reads format {FORMAT}",
                doc.format
            ),
        );
    }
    let groups = check_groups(&mut c, &doc.groups);
    let mut route_ids = HashSet::new();
    for (i, route) in doc.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !route_ids.insert(route.id.as_str()) {
            c.fail(
                format!("{at}.id"),
                format!("duplicate route id \"{}\"", route.id),
            );
        }
        check_route(&mut c, &at, route, &groups);
    }
    let mut client_ids = HashSet::new();
    for (i, key) in doc.apikeys.iter().enumerate() {
        let at = format!("apikeys[{i}]");
        if !client_ids.insert(key.client_id.as_str()) {
            c.fail(
                format!("{at}.clientId"),
                format!("duplicate clientId \"{}\"", key.client_id),
            );
        }
        check_apikey(&mut c, &at, key, &groups);
    }
    let mut exporter_ids = HashSet::new();
    for (i, exporter) in doc.exporters.iter().enumerate() {
        let at = format!("exporters[{i}]");
        if !exporter_ids.insert(exporter.id.as_str()) {
            c.fail(
                format!("{at}.id"),
                format!("duplicate exporter id \"{}\"", exporter.id),
            );
        }
        super::exporter::check_exporter(&mut c, &at, exporter);
    }
    for (i, route) in doc.routes.iter().enumerate() {
        let Some(auth) = &route.auth else { continue };
        let at = format!("routes[{i}].auth");
        if !doc.auth_modules.iter().any(|m| m.id == auth.module) {
            c.fail(
                format!("{at}.module"),
                format!(
                    "no auth module \"{}\": create it first (/api/auth-modules)",
                    auth.module
                ),
            );
        }
        if route.public {
            c.fail(
                format!("routes[{i}].public"),
                "a private route (auth) is not public: remove one of them",
            );
        }
        for (j, r) in auth.roles.iter().enumerate() {
            if r.is_empty() || r.len() > 256 || r.chars().any(char::is_control) {
                c.fail(
                    format!("{at}.roles[{j}]"),
                    "a role is 1 to 256 visible characters",
                );
            }
        }
    }
    let mut module_ids = HashSet::new();
    for (i, module) in doc.auth_modules.iter().enumerate() {
        let at = format!("authModules[{i}]");
        if !module_ids.insert(module.id.as_str()) {
            c.fail(
                format!("{at}.id"),
                format!("duplicate auth module id \"{}\"", module.id),
            );
        }
        super::auth_module::check_auth_module(&mut c, &at, module);
    }
    for (field, list) in [
        ("ipAllow", &doc.settings.ip_allow),
        ("ipBlock", &doc.settings.ip_block),
        ("trustedProxies", &doc.settings.trusted_proxies),
    ] {
        if let Err((j, why)) = crate::access::IpList::parse(list) {
            c.fail(format!("settings.{field}[{j}]"), why);
        }
    }
    check_timeouts(&mut c, "settings.timeouts", &doc.settings.timeouts);
    let otoroshi = &doc.settings.otoroshi;
    let signs = otoroshi.profile.as_ref().is_some_and(|p| p.signs())
        || doc
            .routes
            .iter()
            .any(|r| r.otoroshi.as_ref().is_some_and(|p| p.signs()));
    super::otoroshi::check_settings(&mut c, otoroshi, signs);
    let maintenance = &doc.settings.maintenance;
    if !(1..=604_800).contains(&maintenance.retry_after_seconds) {
        c.fail(
            "settings.maintenance.retryAfterSeconds",
            "must be between 1 and 604800 (a week)",
        );
    }
    if maintenance.message.chars().count() > 1000
        || maintenance.message.chars().any(char::is_control)
    {
        c.fail(
            "settings.maintenance.message",
            "must be at most 1000 characters, without control characters",
        );
    }
    if doc.settings.alerts.quota_almost_spent_percent > 99 {
        c.fail(
            "settings.alerts.quotaAlmostSpentPercent",
            "must be between 1 and 99 (0 turns the alert off)",
        );
    }
    if doc.settings.claim_ttl_seconds == 0 || doc.settings.claim_ttl_seconds > 86_400 {
        c.fail("settings.claimTtlSeconds", "must be between 1 and 86400");
    }
    if !(1024..=1024 * 1024).contains(&doc.settings.max_request_header_bytes) {
        c.fail(
            "settings.maxRequestHeaderBytes",
            "must be between 1024 and 1048576",
        );
    }
    if doc.settings.claim_issuer.is_empty() || doc.settings.claim_issuer.contains(['"', '\\']) {
        c.fail(
            "settings.claimIssuer",
            "must be non-empty, without quotes or backslashes",
        );
    }
    c.finish()
}

fn check_groups<'a>(c: &mut Checker, groups: &'a [Group]) -> HashSet<&'a str> {
    let mut ids = HashSet::new();
    for (i, g) in groups.iter().enumerate() {
        if !is_valid_id(&g.id) {
            c.fail(format!("groups[{i}].id"), id_message(&g.id));
        } else if !ids.insert(g.id.as_str()) {
            c.fail(
                format!("groups[{i}].id"),
                format!("duplicate group id \"{}\"", g.id),
            );
        }
    }
    ids
}

fn check_route(c: &mut Checker, at: &str, route: &Route, groups: &HashSet<&str>) {
    if !is_valid_id(&route.id) {
        c.fail(format!("{at}.id"), id_message(&route.id));
    }
    for (j, host) in route.hosts.iter().enumerate() {
        if let Err(why) = check_host(host) {
            c.fail(format!("{at}.hosts[{j}]"), why);
        }
    }
    if let Some(r) = &route.redirect {
        if let Err((field, why)) = crate::gateway::answer::check_redirect(r) {
            c.fail(format!("{at}.redirect.{field}"), why);
        }
        if route.respond.is_some() {
            c.fail(
                format!("{at}.respond"),
                "a route either redirects or responds: remove one",
            );
        }
    }
    if let Some(r) = &route.respond {
        if let Err((field, why)) = crate::gateway::answer::check_static(r) {
            c.fail(format!("{at}.respond.{field}"), why);
        }
    }
    if let Some(p) = &route.otoroshi {
        super::otoroshi::check_profile(c, &format!("{at}.otoroshi"), p);
    }
    for (field, changes) in [
        ("requestHeaders", &route.request_headers),
        ("responseHeaders", &route.response_headers),
    ] {
        if let Err((at_field, why)) = crate::gateway::transform::check_changes(changes) {
            c.fail(format!("{at}.{field}.{at_field}"), why);
        }
    }
    let lb = &route.backend.load_balancing;
    if lb.header.is_some() && lb.cookie.is_some() {
        c.fail(
            format!("{at}.backend.loadBalancing.cookie"),
            "hash on a header or on a cookie, not both",
        );
    }
    if (lb.header.is_some() || lb.cookie.is_some()) && lb.strategy != crate::model::Strategy::Hash {
        c.fail(
            format!("{at}.backend.loadBalancing.strategy"),
            "a header or cookie to hash on needs \"strategy\": \"hash\"",
        );
    }
    if let Some(header) = &lb.header {
        if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
            c.fail(
                format!("{at}.backend.loadBalancing.header"),
                format!("\"{header}\" is not a header name"),
            );
        }
    }
    if let Some(cookie) = &lb.cookie {
        if cookie.is_empty() || cookie.contains([';', '=', ' ', ',']) {
            c.fail(
                format!("{at}.backend.loadBalancing.cookie"),
                format!("\"{cookie}\" is not a cookie name"),
            );
        }
    }
    check_health(c, &format!("{at}.backend"), &route.backend);
    if let Some(cors) = &route.cors {
        if let Err((field, why)) = crate::gateway::cors::check(cors) {
            c.fail(format!("{at}.cors.{field}"), why);
        }
    }
    if let Some(template) = &route.rewrite_path {
        if route.strip_prefix.is_some() {
            c.fail(
                format!("{at}.rewritePath"),
                "give stripPrefix or rewritePath, not both ({path} in the template is the whole path)",
            );
        } else if let Err(why) =
            crate::gateway::rewrite::PathRewrite::compile(template, &route.paths)
        {
            c.fail(format!("{at}.rewritePath"), why);
        }
    }
    if let Some(prefix) = &route.strip_prefix {
        if let Err(why) = crate::gateway::transform::check_prefix(prefix) {
            c.fail(format!("{at}.stripPrefix"), why);
        }
    }
    if let Some(host) = &route.host_override {
        let authority = host.parse::<http::uri::Authority>();
        if authority.is_err() || host.contains(['@', '*']) || host.is_empty() {
            c.fail(
                format!("{at}.hostOverride"),
                format!(
                    "\"{host}\" is not a host (e.g. \"api.internal\" or \"api.internal:8443\")"
                ),
            );
        }
    }
    for (field, list) in [("ipAllow", &route.ip_allow), ("ipBlock", &route.ip_block)] {
        if let Err((j, why)) = crate::access::IpList::parse(list) {
            c.fail(format!("{at}.{field}[{j}]"), why);
        }
    }
    for (j, protocol) in route.upgrades.iter().enumerate() {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b);
        if protocol.is_empty() || !protocol.bytes().all(token) {
            c.fail(
                format!("{at}.upgrades[{j}]"),
                format!("\"{protocol}\" is not a protocol name (e.g. \"websocket\")"),
            );
        }
    }
    if route.paths.is_empty() {
        c.fail(
            format!("{at}.paths"),
            "give at least one path pattern, e.g. \"/{*rest}\" for every path",
        );
    }
    for (j, path) in route.paths.iter().enumerate() {
        if !path.starts_with('/') {
            c.fail(
                format!("{at}.paths[{j}]"),
                format!("\"{path}\" must start with '/'"),
            );
        } else if path.contains(['?', '#'])
            || path.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            c.fail(
                format!("{at}.paths[{j}]"),
                format!("\"{path}\" must be a path pattern, without query, fragment, spaces or control characters"),
            );
        }
    }
    for (j, method) in route.methods.iter().enumerate() {
        let token = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase());
        if !token {
            c.fail(
                format!("{at}.methods[{j}]"),
                format!("\"{method}\" is not an HTTP method in capitals, e.g. \"GET\""),
            );
        }
    }
    for (j, target) in route.backend.targets.iter().enumerate() {
        if let Err(why) = crate::routing::TargetUrl::parse(&target.url) {
            c.fail(format!("{at}.backend.targets[{j}].url"), why);
        }
    }
    if route
        .backend
        .timeout_ms
        .is_some_and(|ms| ms == 0 || ms > 3_600_000)
    {
        c.fail(
            format!("{at}.backend.timeoutMs"),
            "must be between 1 and 3600000 milliseconds",
        );
    }
    check_timeouts(
        c,
        &format!("{at}.backend.timeouts"),
        &route.backend.timeouts,
    );
    check_group_refs(c, at, &route.groups, groups);
}

/// Named timeouts (a route's or the settings').
pub(crate) fn check_timeouts(c: &mut Checker, at: &str, t: &crate::model::Timeouts) {
    for (name, value, max) in [
        ("connectMs", t.connect_ms, 3_600_000),
        ("headMs", t.head_ms, 3_600_000),
        ("idleMs", t.idle_ms, 3_600_000),
        ("totalMs", t.total_ms, 86_400_000),
    ] {
        if value.is_some_and(|ms| ms == 0 || ms > max) {
            c.fail(
                format!("{at}.{name}"),
                format!("must be between 1 and {max} milliseconds"),
            );
        }
    }
}

/// The circuit breaker, health checks and retries of a backend.
fn check_health(c: &mut Checker, at: &str, backend: &crate::model::Backend) {
    if backend.targets.len() > crate::model::MAX_TARGETS {
        c.fail(
            format!("{at}.targets"),
            format!("at most {} targets", crate::model::MAX_TARGETS),
        );
    }
    if let Some(b) = &backend.circuit_breaker {
        let at = format!("{at}.circuitBreaker");
        if b.consecutive_failures > 1000 {
            c.fail(
                format!("{at}.consecutiveFailures"),
                "must be between 0 and 1000",
            );
        }
        match b.error_rate_percent {
            Some(p) if !(1..=100).contains(&p) => c.fail(
                format!("{at}.errorRatePercent"),
                "must be between 1 and 100",
            ),
            None if b.consecutive_failures == 0 => c.fail(
                format!("{at}.consecutiveFailures"),
                "with 0 here, give errorRatePercent: a breaker needs a rule that opens it",
            ),
            _ => {}
        }
        if !(1..=1_000_000).contains(&b.minimum_requests) {
            c.fail(
                format!("{at}.minimumRequests"),
                "must be between 1 and 1000000",
            );
        }
        if !(1..=3600).contains(&b.window_seconds) {
            c.fail(format!("{at}.windowSeconds"), "must be between 1 and 3600");
        }
        if !(1..=3600).contains(&b.open_seconds) {
            c.fail(format!("{at}.openSeconds"), "must be between 1 and 3600");
        }
    }
    if let Some(h) = &backend.health_check {
        let at = format!("{at}.healthCheck");
        if !h.path.starts_with('/') || h.path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
            c.fail(
                format!("{at}.path"),
                format!(
                    "\"{}\" must be a path starting with \"/\" (a query may follow)",
                    h.path
                ),
            );
        }
        if !(100..=3_600_000).contains(&h.interval_ms) {
            c.fail(
                format!("{at}.intervalMs"),
                "must be between 100 and 3600000 milliseconds",
            );
        }
        if h.timeout_ms == 0 || h.timeout_ms > h.interval_ms {
            c.fail(
                format!("{at}.timeoutMs"),
                "must be at least 1 millisecond and at most intervalMs",
            );
        }
        for (j, status) in h.expected_statuses.iter().enumerate() {
            if !(100..=599).contains(status) {
                c.fail(
                    format!("{at}.expectedStatuses[{j}]"),
                    "must be a status between 100 and 599",
                );
            }
        }
        if !(1..=100).contains(&h.healthy_threshold) {
            c.fail(
                format!("{at}.healthyThreshold"),
                "must be between 1 and 100",
            );
        }
        if !(1..=100).contains(&h.unhealthy_threshold) {
            c.fail(
                format!("{at}.unhealthyThreshold"),
                "must be between 1 and 100",
            );
        }
    }
    let r = &backend.retries;
    if r.attempts > 5 {
        c.fail(format!("{at}.retries.attempts"), "must be between 0 and 5");
    }
    if r.backoff_ms > 10_000 {
        c.fail(
            format!("{at}.retries.backoffMs"),
            "must be between 0 and 10000 milliseconds",
        );
    }
    if r.budget_percent > 100 {
        c.fail(
            format!("{at}.retries.budgetPercent"),
            "must be between 0 and 100",
        );
    }
}

fn check_apikey(c: &mut Checker, at: &str, key: &ApiKey, groups: &HashSet<&str>) {
    if !is_valid_id(&key.client_id) {
        c.fail(format!("{at}.clientId"), id_message(&key.client_id));
    }
    match (&key.client_secret, &key.client_secret_hash) {
        (Some(_), Some(_)) => c.fail(
            format!("{at}.clientSecret"),
            "give either clientSecret or clientSecretHash, not both",
        ),
        (None, None) if !key.jwks.is_empty() => {}
        (None, None) => c.fail(
            format!("{at}.clientSecret"),
            "a key needs a secret: give clientSecret (hashed when loaded) or clientSecretHash, or public keys in jwks",
        ),
        (Some(secret), None) => {
            if let Err(rule) = check_secret(secret) {
                c.fail(format!("{at}.clientSecret"), rule);
            }
        }
        (None, Some(hash)) => {
            if let Err(e) = check_stored_hash(hash) {
                c.fail(format!("{at}.clientSecretHash"), e);
            }
        }
    }
    check_sealed(
        c,
        &format!("{at}.clientSecretSealed"),
        key.client_secret_sealed.as_deref(),
        key.client_secret_hash.is_some() && key.client_secret.is_none(),
    );
    check_sealed(
        c,
        &format!("{at}.rotation.previousSecretSealed"),
        key.rotation.previous_secret_sealed.as_deref(),
        key.rotation.previous_secret_hash.is_some(),
    );
    for (j, jwk) in key.jwks.iter().enumerate() {
        if let Err(e) = crate::auth::jwk::VerifyingKey::from_jwk(jwk) {
            c.fail(format!("{at}.jwks[{j}]"), e);
        }
    }
    if let Some(expires) = &key.expires_at {
        if parse_rfc3339(expires).is_none() {
            c.fail(
                format!("{at}.expiresAt"),
                format!("\"{expires}\" is not an RFC 3339 UTC timestamp such as \"2027-01-31T23:59:59Z\""),
            );
        }
    }
    if key.rotation.grace_seconds > 30 * 86_400 {
        c.fail(
            format!("{at}.rotation.graceSeconds"),
            "must be at most 2592000 (30 days)",
        );
    }
    if let Some(hash) = &key.rotation.previous_secret_hash {
        if let Err(e) = check_stored_hash(hash) {
            c.fail(format!("{at}.rotation.previousSecretHash"), e);
        }
    }
    if let Some(at_text) = &key.rotation.previous_expires_at {
        if parse_rfc3339(at_text).is_none() {
            c.fail(
                format!("{at}.rotation.previousExpiresAt"),
                format!("\"{at_text}\" is not an RFC 3339 UTC timestamp"),
            );
        }
    }
    for (j, tag) in key.tags.iter().enumerate() {
        if tag.is_empty() || tag.len() > 256 || tag.chars().any(char::is_control) {
            c.fail(
                format!("{at}.tags[{j}]"),
                "a tag is 1 to 256 characters, without control characters",
            );
        }
    }
    if key.metadata.len() > 100 {
        c.fail(format!("{at}.metadata"), "at most 100 entries");
    }
    for (name, value) in &key.metadata {
        if name.is_empty() || name.len() > 256 || value.len() > 4096 {
            c.fail(
                format!("{at}.metadata.{name}"),
                "names are 1 to 256 characters, values at most 4096",
            );
        }
    }
    for (j, route) in key.routes.iter().enumerate() {
        if !is_valid_id(route) {
            c.fail(format!("{at}.routes[{j}]"), id_message(route));
        }
    }
    check_group_refs(c, at, &key.groups, groups);
}

/// A stored secret hash: a verifier, or the legacy form of older documents.
fn check_stored_hash(hash: &str) -> Result<(), String> {
    if hash.starts_with(crate::secret::HASH_PREFIX) {
        return SecretHash::parse(hash)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    Verifier::parse(hash).map(|_| ()).map_err(|e| e.to_string())
}

/// A sealed value: well formed, and only beside the hash it belongs to.
fn check_sealed(c: &mut Checker, field: &str, sealed: Option<&str>, has_hash: bool) {
    let Some(sealed) = sealed else { return };
    if !has_hash {
        c.fail(
            field,
            "a sealed secret goes with the clientSecretHash it was made with; leave it out when giving a new secret",
        );
    } else if let Err(e) = check_sealed_syntax(sealed) {
        c.fail(field, e.to_string());
    }
}

/// Fewest characters in a secret given by hand (generated ones have 43).
pub const MIN_SECRET_CHARS: usize = 16;
/// Most characters in a secret.
pub const MAX_SECRET_CHARS: usize = 512;

/// Whether a secret given by hand is acceptable: 16 to 512 characters,
/// no control characters. The error says the rule and what to do instead.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let chars = secret.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Err(format!(
            "a secret must be at least {MIN_SECRET_CHARS} characters ({} given): short secrets can be guessed; leave clientSecret out to have a 256-bit one generated",
            chars
        ));
    }
    if chars > MAX_SECRET_CHARS || secret.chars().any(char::is_control) {
        return Err(format!(
            "a secret must be at most {MAX_SECRET_CHARS} characters, without control characters"
        ));
    }
    Ok(())
}

fn check_group_refs(c: &mut Checker, at: &str, refs: &[String], groups: &HashSet<&str>) {
    for (j, g) in refs.iter().enumerate() {
        if !groups.contains(g.as_str()) {
            c.fail(
                format!("{at}.groups[{j}]"),
                format!("group \"{g}\" does not exist; create it first"),
            );
        }
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let name = host.strip_prefix("*.").unwrap_or(host);
    let valid_label = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "\"{host}\" is not a host name: give e.g. \"api.example.com\" or \"*.example.com\", without port or scheme"
        ));
    }
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("\"{host}\" must be lower case"));
    }
    Ok(())
}

pub(crate) fn id_message(id: &str) -> String {
    format!("\"{id}\" is not a valid id: use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ ~ @ + -")
}
