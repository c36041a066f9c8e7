//! An Otoroshi export (`GET /api/otoroshi.json`, its back office's
//! "export" button) mapped onto a Komainu document, with a report of what
//! was mapped, approximated (and how) or dropped (and why).
//!
//! Read: `serviceGroups` → groups; legacy `serviceDescriptors` and the new
//! engine's `routes` (with the `backends` they reference) → routes, each
//! with the `otoroshi` profile so that clients and backends keep working;
//! `apiKeys` → API keys (secrets sealed when saved, never kept in clear);
//! the global `config`'s maintenance and IP lists → settings. Otoroshi
//! paths given as regular expressions (`publicPatterns`, a plugin's
//! `include`) become routes of their own when they are a path or a path
//! prefix. The rules kept are Otoroshi's own (see the README's "Coming
//! from Otoroshi" for the table).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::{EntityReport, Report};
use crate::model::{
    ApiKey, Backend, Challenge, CircuitBreaker, Cors, Document, Group, HealthCheck, HmacAlg,
    InfoToken, LoadBalancing, OtoroshiProfile, Quotas, Redirect, Retries, Rotation, Route,
    StaticResponse, Strategy, Target, Timeouts,
};

/// Otoroshi's "unlimited" quota (`RemainingQuotas.MaxValue`).
pub const UNLIMITED: u64 = 10_000_000;

/// Otoroshi's `app.claim.sharedKey` when its configuration does not set one.
pub const OTOROSHI_DEFAULT_SHARED_KEY: &str = "secret";

/// The placeholder of Otoroshi's configured shared key.
const SHARED_KEY_PLACEHOLDER: &str = "${config.app.claim.sharedKey}";

/// The collections of an export Komainu has nothing for, and what to do
/// instead.
const UNMAPPED: [(&str, &str); 12] = [
    ("certificates", "certificates are not part of the configuration: give them to `komainu serve --tls-cert/--tls-key`"),
    ("authConfigs", "login modules hold secrets an export may not carry: create an auth module (/api/auth-modules) and set the routes' `auth`"),
    ("jwtVerifiers", "JWT verifiers have no equivalent: callers' JWTs are checked against their API key (secret or jwks)"),
    ("scripts", "scripts (plugins written for Otoroshi) have no equivalent"),
    ("wasmPlugins", "WASM plugins have no equivalent"),
    ("tcpServices", "TCP services: Komainu proxies HTTP only"),
    ("dataExporters", "data exporters: create Komainu exporters (/api/exporters: file, webhook, redis-stream)"),
    ("errorTemplates", "error templates: Komainu answers errors as JSON"),
    ("clientValidators", "client validators have no equivalent"),
    ("admins", "admins (WebAuthn/U2F): create people in a local auth module"),
    ("simpleAdmins", "back-office admins (bcrypt hashes Komainu does not read): create people in a local auth module"),
    ("services", "the new engine's services: export their routes instead"),
];

/// Why bytes are not an Otoroshi export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotAnExport(pub String);

/// An export mapped onto a document.
#[derive(Debug, Clone)]
pub struct Migration {
    /// The configuration made (validated when imported).
    pub document: Document,
    /// What became of each entity.
    pub report: Report,
}

/// Maps an Otoroshi export. `shared_key` is Otoroshi's
/// `app.claim.sharedKey` (the export does not carry it): needed when some
/// route sends the info token or the state challenge.
pub fn from_export(bytes: &[u8], shared_key: Option<&str>) -> Result<Migration, NotAnExport> {
    let export: Value = serde_json::from_slice(bytes)
        .map_err(|e| NotAnExport(format!("the file is not JSON ({e})")))?;
    let Some(obj) = export.as_object() else {
        return Err(NotAnExport(
            "an Otoroshi export is a JSON object (GET /api/otoroshi.json)".into(),
        ));
    };
    if obj.contains_key("format") && obj.contains_key("apikeys") {
        return Err(NotAnExport(
            "this is a Komainu configuration document: import it without from=otoroshi".into(),
        ));
    }
    let known = ["serviceGroups", "serviceDescriptors", "apiKeys", "routes"];
    if !known
        .iter()
        .any(|k| obj.get(*k).is_some_and(Value::is_array))
    {
        return Err(NotAnExport(
            "not an Otoroshi export: it has none of serviceGroups, serviceDescriptors, apiKeys, routes (export it with GET /api/otoroshi.json or the back office's export button)".into(),
        ));
    }
    for k in known {
        if obj.get(k).is_some_and(|v| !v.is_array() && !v.is_null()) {
            return Err(NotAnExport(format!("{k} must be an array")));
        }
    }
    let mut m = Mapper {
        doc: Document::default(),
        report: Report {
            source: "otoroshi".into(),
            ..Report::default()
        },
        origins: HashMap::new(),
        route_ids: HashSet::new(),
        backends: HashMap::new(),
    };
    m.config(obj.get("config"));
    for g in array(&export, "serviceGroups") {
        m.group(g);
    }
    for b in array(&export, "backends") {
        if let Some(id) = b.get("id").and_then(Value::as_str) {
            m.backends.insert(id.to_owned(), b.clone());
        }
    }
    for d in array(&export, "serviceDescriptors") {
        m.descriptor(d);
    }
    for r in array(&export, "routes") {
        m.route(r);
    }
    for k in array(&export, "apiKeys") {
        m.apikey(k);
    }
    for b in array(&export, "backends") {
        let id = text(b, "id");
        let mut e = EntityReport::new("backends", id, text(b, "name"));
        if m.backends.contains_key(id) {
            e.drop_all("a stored backend is not an entity of its own: copied into each route that references it (backend_ref)");
        }
        m.report.entities.push(e);
    }
    for (kind, why) in UNMAPPED {
        for item in array(&export, kind) {
            let id = ["id", "clientId", "username", "name"]
                .iter()
                .find_map(|f| item.get(*f).and_then(Value::as_str))
                .unwrap_or("?");
            let mut e = EntityReport::new(kind, id, text(item, "name"));
            e.drop_all(why);
            m.report.entities.push(e);
        }
    }
    let signs = m
        .doc
        .routes
        .iter()
        .any(|r| r.otoroshi.as_ref().is_some_and(OtoroshiProfile::signs));
    match shared_key {
        Some(key) => m.doc.settings.otoroshi.shared_key = Some(key.to_owned()),
        None if signs => {
            // What Otoroshi signs with unless it was configured otherwise.
            m.doc.settings.otoroshi.shared_key = Some(OTOROSHI_DEFAULT_SHARED_KEY.to_owned());
            let mut e = EntityReport::new("config", "app.claim.sharedKey", "");
            e.approximated(format!("routes send Otoroshi-Claim or the state challenge, signed with Otoroshi's shared key (app.claim.sharedKey, CLAIM_SHAREDKEY), which an export does not carry and was not given: Otoroshi's default \"{OTOROSHI_DEFAULT_SHARED_KEY}\" is used. If your Otoroshi set another (its backends verify with it), give it: komainu import --otoroshi-shared-key, the Komainu-Otoroshi-Shared-Key header of POST /api/import?from=otoroshi, or settings.otoroshi.sharedKey later"));
            m.report.entities.push(e);
        }
        None => {}
    }
    m.report.finish();
    Ok(Migration {
        document: m.doc,
        report: m.report,
    })
}

struct Mapper {
    doc: Document,
    report: Report,
    /// (`service` | `route`, Otoroshi id) → the Komainu routes made of it.
    origins: HashMap<(&'static str, String), Vec<String>>,
    route_ids: HashSet<String>,
    /// Stored backends by id (`backend_ref`).
    backends: HashMap<String, Value>,
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn flag(v: &Value, key: &str, default: bool) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(default)
}

fn number(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(|n| {
        n.as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    array(v, key)
        .iter()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn string_map(v: &Value, key: &str) -> BTreeMap<String, String> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_enabled(v: Option<&Value>) -> bool {
    v.is_some_and(|v| flag(v, "enabled", false))
}

/// An id Komainu accepts, from an Otoroshi id (invalid characters become
/// `-`).
fn komainu_id(id: &str) -> String {
    let mapped: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '@' | '+' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(120)
        .collect();
    if mapped.is_empty() {
        "imported".into()
    } else {
        mapped
    }
}

/// Which paths an Otoroshi path pattern (a regular expression matched
/// against the whole path) covers, as route path patterns: `All`, a list
/// of patterns (a path, or a prefix ending in `.*`), or none Komainu can
/// express.
#[derive(Debug, PartialEq, Eq)]
enum Paths {
    All,
    Some(Vec<String>, bool),
    Unsupported,
}

fn pattern_paths(pattern: &str) -> Paths {
    let p = pattern.trim();
    let p = p.strip_prefix('^').unwrap_or(p);
    let p = p.strip_suffix('$').unwrap_or(p);
    if matches!(p, "/.*" | ".*" | "/*" | "*" | "/.+" | "/(.*)") {
        return Paths::All;
    }
    let (literal, prefix) = match p.strip_suffix(".*") {
        Some(head) => (head, true),
        None => (p, false),
    };
    let literal = literal
        .replace("\\.", ".")
        .replace("\\/", "/")
        .replace("\\-", "-");
    let meta = |c: char| "\\[](){}*+?|^$".contains(c);
    if !literal.starts_with('/') || literal.chars().any(meta) || literal.contains(".*") {
        return Paths::Unsupported;
    }
    // `.` in a regex is any character: kept literally (paths rarely mean
    // otherwise), noted as an approximation.
    let exact = !p.replace("\\.", "").replace(".*", "").contains('.');
    if !prefix {
        return Paths::Some(vec![literal], exact);
    }
    match literal.strip_suffix('/') {
        Some("") => Paths::All,
        Some(dir) => Paths::Some(vec![format!("{dir}/{{*rest}}")], exact),
        None => Paths::Some(vec![literal.clone(), format!("{literal}/{{*rest}}")], false),
    }
}

/// The route patterns of a path prefix (`/` → every path).
fn prefix_paths(prefix: &str, exact: bool) -> Vec<String> {
    let prefix = prefix.trim_end_matches('/');
    match (prefix.is_empty(), exact) {
        (true, true) => vec!["/".into()],
        (true, false) => vec!["/".into(), "/{*rest}".into()],
        (false, true) => vec![prefix.to_owned()],
        (false, false) => vec![prefix.to_owned(), format!("{prefix}/{{*rest}}")],
    }
}

/// A host Komainu accepts, or why not.
fn host_of(raw: &str) -> Result<String, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let host = match lower.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_owned(),
        _ => lower,
    };
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "host \"{raw}\" is not a host name Komainu serves (exact, or *.domain)"
        ));
    }
    Ok(host)
}

/// Otoroshi's load balancing type onto a strategy, and a note when it is
/// approximated.
fn balancing(lb: Option<&Value>) -> (LoadBalancing, Option<String>) {
    let kind = lb.map(|v| text(v, "type")).unwrap_or("RoundRobin");
    let plain = |strategy| LoadBalancing {
        strategy,
        header: None,
        cookie: None,
    };
    match kind {
        "" | "RoundRobin" => (LoadBalancing::default(), None),
        "Random" => (plain(Strategy::Random), None),
        "PowerOfTwoRandomChoices" | "LeastConnections" => (plain(Strategy::LeastRequests), None),
        "BestResponseTime" | "WeightedBestResponseTime" => (
            plain(Strategy::LeastRequests),
            Some(format!("load balancing {kind} became leastRequests (requests in flight, not response times)")),
        ),
        "IpAddressHash" => (plain(Strategy::Hash), None),
        "Sticky" => (
            plain(Strategy::Hash),
            Some("load balancing Sticky became a hash of the client's address (no sticky cookie is set)".into()),
        ),
        "HeaderHash" => (
            LoadBalancing {
                strategy: Strategy::Hash,
                header: Some(
                    lb.map(|v| text(v, "header_name"))
                        .filter(|h| !h.is_empty())
                        .unwrap_or("session-id")
                        .to_owned(),
                ),
                cookie: None,
            },
            None,
        ),
        "CookieHash" => (
            LoadBalancing {
                strategy: Strategy::Hash,
                header: None,
                cookie: Some(
                    lb.map(|v| text(v, "cookie_name"))
                        .filter(|h| !h.is_empty())
                        .unwrap_or("session-id")
                        .to_owned(),
                ),
            },
            None,
        ),
        "NaiveFailover" => (
            LoadBalancing::default(),
            Some("load balancing NaiveFailover became round robin (mark the fallback targets as backup)".into()),
        ),
        other => (
            LoadBalancing::default(),
            Some(format!("load balancing {other} has no equivalent: round robin")),
        ),
    }
}

/// A timeout in milliseconds within Komainu's bounds.
fn timeout(v: &Value, keys: &[&str], max: u64) -> Option<u64> {
    keys.iter()
        .find_map(|k| number(v, k))
        .filter(|ms| *ms > 0)
        .map(|ms| ms.min(max))
}

/// `clientConfig` (legacy) / `client` (new engine): timeouts, retries,
/// breaker.
fn client_settings(backend: &mut Backend, client: Option<&Value>, legacy: bool) {
    let Some(c) = client else { return };
    let k = |legacy_name: &'static str, new_name: &'static str| {
        if legacy {
            legacy_name
        } else {
            new_name
        }
    };
    backend.timeouts = Timeouts {
        connect_ms: timeout(
            c,
            &[k("connectionTimeout", "connection_timeout")],
            3_600_000,
        ),
        head_ms: timeout(c, &[k("callTimeout", "call_timeout")], 3_600_000),
        idle_ms: timeout(c, &[k("idleTimeout", "idle_timeout")], 3_600_000),
        total_ms: timeout(
            c,
            &[k("callAndStreamTimeout", "call_and_stream_timeout")],
            86_400_000,
        ),
    };
    backend.retries = Retries {
        attempts: number(c, "retries").map_or(1, |r| r.min(10) as u32),
        backoff_ms: number(c, k("retryInitialDelay", "retry_initial_delay"))
            .unwrap_or(0)
            .min(60_000),
        ..Retries::default()
    };
    if !legacy || flag(c, "useCircuitBreaker", true) {
        let max_errors = number(c, k("maxErrors", "max_errors")).unwrap_or(20);
        backend.circuit_breaker = Some(CircuitBreaker {
            consecutive_failures: max_errors.clamp(1, 1000) as u32,
            error_rate_percent: None,
            minimum_requests: 20,
            window_seconds: 10,
            open_seconds: 10,
        });
    }
}

/// A backend of these targets, with Otoroshi's load balancing, client
/// settings (`legacy`: the descriptor's camelCase names) and health check.
fn backend_of(
    targets: Vec<Target>,
    load_balancing: Option<&Value>,
    client: Option<&Value>,
    health: Option<&Value>,
    legacy: bool,
    report: &mut EntityReport,
) -> Backend {
    let mut backend = Backend {
        targets,
        ..Backend::default()
    };
    let (lb, note) = balancing(load_balancing);
    backend.load_balancing = lb;
    if let Some(n) = note {
        report.approximated(n);
    }
    client_settings(&mut backend, client, legacy);
    backend.health_check = health_check(health, report);
    backend
}

/// A target at `url` (checked) with Otoroshi's `weight` and `backup`.
fn push_target(
    targets: &mut Vec<Target>,
    url: String,
    t: &Value,
    host: &str,
    report: &mut EntityReport,
) {
    match crate::routing::TargetUrl::parse(&url) {
        Ok(_) => targets.push(Target {
            url,
            weight: number(t, "weight").map_or(1, |w| w.min(1000) as u32),
            backup: flag(t, "backup", false),
        }),
        Err(why) => report.error(format!("target {host}: {why}")),
    }
}

fn health_check(v: Option<&Value>, report: &mut EntityReport) -> Option<HealthCheck> {
    let v = v?;
    if !flag(v, "enabled", false) {
        return None;
    }
    let url = text(v, "url");
    let path = if url.starts_with('/') {
        url.to_owned()
    } else if let Some((_, rest)) = url.split_once("://") {
        report.approximated(format!(
            "the health check URL {url} became the path on each target"
        ));
        rest.find('/')
            .map_or("/".to_owned(), |i| rest[i..].to_owned())
    } else {
        "/".to_owned()
    };
    Some(HealthCheck {
        path,
        interval_ms: 5_000,
        timeout_ms: 2_000,
        expected_statuses: Vec::new(),
        healthy_threshold: 2,
        unhealthy_threshold: 3,
    })
}

/// Header changes a route may make; those it may not are noted.
fn header_set(
    into: &mut BTreeMap<String, String>,
    from: BTreeMap<String, String>,
    host_override: Option<&mut Option<String>>,
    report: &mut EntityReport,
) {
    let mut host_override = host_override;
    for (name, value) in from {
        if name.eq_ignore_ascii_case("host") {
            if let Some(slot) = host_override.as_deref_mut() {
                *slot = Some(value);
                continue;
            }
        }
        let mut probe = crate::model::HeaderChanges::default();
        probe.set.insert(name.clone(), value.clone());
        match crate::gateway::transform::check_changes(&probe) {
            Ok(()) => {
                into.insert(name, value);
            }
            Err((_, why)) => report.dropped_part(format!("header {name}: {why}")),
        }
    }
}

fn header_remove(into: &mut Vec<String>, from: Vec<String>, report: &mut EntityReport) {
    for name in from {
        let mut probe = crate::model::HeaderChanges::default();
        probe.remove.push(name.clone());
        match crate::gateway::transform::check_changes(&probe) {
            Ok(()) => into.push(name),
            Err((_, why)) => report.dropped_part(format!("removing header {name}: {why}")),
        }
    }
}

fn ip_list(list: Vec<String>, what: &str, report: &mut EntityReport) -> Vec<String> {
    let mut kept = Vec::new();
    for entry in list {
        match crate::access::IpList::parse(std::slice::from_ref(&entry)) {
            Ok(_) => kept.push(entry),
            Err((_, why)) => report.dropped_part(format!("{what} entry \"{entry}\": {why}")),
        }
    }
    kept
}

/// Where a route's access differs from its default: the patterns whose
/// paths are public on a private route, or private on a public one.
#[derive(Clone)]
struct Access {
    public: bool,
    exceptions: Vec<String>,
}

/// The Otoroshi state that the shared key's placeholder is replaced by.
fn algo_note(algo: Option<&Value>, what: &str, report: &mut EntityReport) {
    let Some(a) = algo else { return };
    if text(a, "type") != "HSAlgoSettings" && !text(a, "type").is_empty() {
        report.approximated(format!(
            "{what} is signed with {} in Otoroshi: Komainu signs it HS512 with settings.otoroshi.sharedKey",
            text(a, "type")
        ));
    } else if !text(a, "secret").is_empty() && text(a, "secret") != SHARED_KEY_PLACEHOLDER {
        report.approximated(format!(
            "{what} is signed with a secret of its own in Otoroshi: Komainu signs every Otoroshi token with settings.otoroshi.sharedKey (set it to that secret if all services share it)"
        ));
    }
    if number(a, "size").is_some_and(|s| s != 512) {
        report.approximated(format!("{what}: HS512 (Otoroshi used another size)"));
    }
}

impl Mapper {
    fn config(&mut self, config: Option<&Value>) {
        let Some(c) = config else { return };
        let mut e = EntityReport::new("config", "global", "");
        if flag(c, "maintenanceMode", false) {
            self.doc.settings.maintenance.enabled = true;
        }
        if let Some(ipf) = c.get("ipFiltering") {
            self.doc.settings.ip_allow =
                ip_list(strings(ipf, "whitelist"), "ipFiltering.whitelist", &mut e);
            self.doc.settings.ip_block =
                ip_list(strings(ipf, "blacklist"), "ipFiltering.blacklist", &mut e);
        }
        if flag(c, "trustXForwarded", false) {
            e.approximated("trustXForwarded: list the proxies in front of the gateway in settings.trustedProxies (X-Forwarded-For is believed from them only)");
        }
        if number(c, "throttlingQuota").is_some_and(|q| q < UNLIMITED) {
            e.dropped_part("the global throttlingQuota has no equivalent: quotas are per key");
        }
        if flag(c, "useCircuitBreakers", true) {
            // Mapped per route (clientConfig).
        }
        self.report.entities.push(e);
    }

    fn group(&mut self, g: &Value) {
        let id = text(g, "id");
        let mut e = EntityReport::new("serviceGroups", id, text(g, "name"));
        let kid = komainu_id(id);
        if kid != id {
            e.approximated(format!("id \"{id}\" became \"{kid}\""));
        }
        if self.doc.groups.iter().any(|x| x.id == kid) {
            e.error(format!("two groups have the id \"{kid}\""));
        } else {
            self.doc.groups.push(Group {
                id: kid.clone(),
                name: text(g, "name").to_owned(),
                description: text(g, "description").to_owned(),
            });
            e.became.push(format!("groups/{kid}"));
        }
        self.report.entities.push(e);
    }

    fn group_refs(&self, ids: &[String], report: &mut EntityReport) -> Vec<String> {
        let mut out = Vec::new();
        for id in ids {
            let kid = komainu_id(id);
            if self.doc.groups.iter().any(|g| g.id == kid) {
                if !out.contains(&kid) {
                    out.push(kid);
                }
            } else {
                report.dropped_part(format!("group \"{id}\" is not in the export"));
            }
        }
        out
    }

    fn unique_route_id(&mut self, wanted: &str) -> String {
        let base = komainu_id(wanted);
        let mut id = base.clone();
        let mut n = 2;
        while self.route_ids.contains(&id) {
            id = format!("{base}~{n}");
            n += 1;
        }
        self.route_ids.insert(id.clone());
        id
    }

    /// Adds `route` and, for each exception pattern, a copy serving those
    /// paths with the opposite access.
    fn push_routes(
        &mut self,
        origin: (&'static str, String),
        route: Route,
        access: Access,
        report: &mut EntityReport,
    ) {
        let mut made = Vec::new();
        let mut exceptions: Vec<Vec<String>> = Vec::new();
        let mut public = access.public;
        for pattern in &access.exceptions {
            match pattern_paths(pattern) {
                Paths::All => {
                    // Every path is the exception: the route flips.
                    public = !access.public;
                    exceptions.clear();
                    break;
                }
                Paths::Some(paths, exact) => {
                    if !exact {
                        report.approximated(format!(
                            "the pattern \"{pattern}\" became the paths {}",
                            paths.join(", ")
                        ));
                    }
                    let within = |p: &String| {
                        route
                            .strip_prefix
                            .as_deref()
                            .is_none_or(|s| p.starts_with(s))
                    };
                    if paths.iter().all(within) {
                        exceptions.push(paths);
                    } else {
                        report.dropped_part(format!(
                            "the pattern \"{pattern}\" is outside the route's path"
                        ));
                    }
                }
                Paths::Unsupported => {
                    report.approximated(format!(
                    "the pattern \"{pattern}\" is not a path or a path prefix: its paths stay {}",
                    if access.public { "public" } else { "behind an API key" }
                ))
                }
            }
        }
        let mut main = route;
        main.public = public;
        let main_id = self.unique_route_id(&main.id);
        main.id = main_id.clone();
        for paths in exceptions {
            let mut sub = main.clone();
            sub.id = self.unique_route_id(&format!("{main_id}~path"));
            sub.public = !public;
            sub.paths = paths;
            sub.name = format!("{} ({})", main.name, sub.paths.join(" "));
            made.push(sub);
        }
        let mut all = vec![main];
        all.extend(made);
        let ids: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
        report
            .became
            .extend(ids.iter().map(|id| format!("routes/{id}")));
        self.origins.entry(origin).or_default().extend(ids);
        self.doc.routes.extend(all);
    }

    /// One route per path prefix (Otoroshi strips whichever matched),
    /// each serving the hosts that have it.
    #[allow(clippy::too_many_arguments)]
    fn push_per_path(
        &mut self,
        origin: (&'static str, String),
        route: Route,
        by_path: Vec<(Option<String>, Vec<String>)>,
        strip: bool,
        exact: bool,
        access: &Access,
        report: &mut EntityReport,
    ) {
        for (path, hosts) in by_path {
            let mut r = route.clone();
            r.hosts = hosts;
            r.paths = prefix_paths(path.as_deref().unwrap_or("/"), exact);
            r.strip_prefix = path
                .filter(|p| {
                    strip && r.rewrite_path.is_none() && !p.trim_end_matches('/').is_empty()
                })
                .map(|p| p.trim_end_matches('/').to_owned());
            self.push_routes(origin.clone(), r, access.clone(), report);
        }
    }

    fn descriptor(&mut self, d: &Value) {
        let id = text(d, "id");
        let name = text(d, "name");
        let mut e = EntityReport::new("serviceDescriptors", id, name);
        // Hosts: `hosts`, and the legacy domain (Otoroshi's `toHost`).
        let mut raw_hosts = strings(d, "hosts");
        let (sub, env, domain) = (text(d, "subdomain"), text(d, "env"), text(d, "domain"));
        if flag(d, "handleLegacyDomain", true) && !domain.is_empty() {
            let legacy = match (sub, env) {
                ("", "prod" | "") => domain.to_owned(),
                ("", env) => format!("{env}.{domain}"),
                (sub, "prod" | "") => format!("{sub}.{domain}"),
                (sub, env) => format!("{sub}.{env}.{domain}"),
            };
            if !raw_hosts.contains(&legacy) {
                raw_hosts.push(legacy);
            }
        }
        let mut hosts = Vec::new();
        for h in raw_hosts {
            match host_of(&h) {
                Ok(host) if !hosts.contains(&host) => hosts.push(host),
                Ok(_) => {}
                Err(why) => e.dropped_part(why),
            }
        }
        if hosts.is_empty() {
            e.error("no host Komainu can serve (hosts, or subdomain.env.domain)");
        }
        let root = text(d, "root").trim_end_matches('/').to_owned();
        // Otoroshi's `allPaths`: `paths`, and `matchingRoot` with the
        // legacy domain; each stripped when matched (`stripPath`).
        let mut prefixes: Vec<String> = strings(d, "paths");
        if flag(d, "handleLegacyDomain", true) {
            if let Some(m) = d
                .get("matchingRoot")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                prefixes.push(m.to_owned());
            }
        }
        let mut seen = HashSet::new();
        prefixes.retain(|p| seen.insert(p.trim_end_matches('/').to_owned()));
        let strip = flag(d, "stripPath", true);
        let mut targets = Vec::new();
        for t in array(d, "targets") {
            let host = text(t, "host");
            let scheme = match text(t, "scheme") {
                "" => "https",
                s => s,
            };
            let url = format!("{scheme}://{host}{root}");
            push_target(&mut targets, url, t, host, &mut e);
            if t.get("ipAddress").is_some_and(|ip| !ip.is_null()) {
                e.approximated(format!(
                    "target {host}: its ipAddress is not used, the host name is resolved"
                ));
            }
            if t.get("mtlsConfig").is_some_and(|m| flag(m, "mtls", false)) {
                e.dropped_part(format!(
                    "target {host}: client certificates (mTLS) to backends are not supported"
                ));
            }
        }
        let backend = backend_of(
            targets,
            d.get("targetsLoadBalancing"),
            d.get("clientConfig"),
            d.get("healthCheck"),
            true,
            &mut e,
        );
        let mut route = Route {
            id: id.to_owned(),
            name: name.to_owned(),
            enabled: flag(d, "enabled", true),
            hosts,
            paths: prefix_paths("/", false),
            backend,
            maintenance: flag(d, "maintenanceMode", false) || flag(d, "buildMode", false),
            ..Route::default()
        };
        let mut groups = strings(d, "groups");
        let legacy_group = text(d, "groupId");
        if !legacy_group.is_empty() && !groups.iter().any(|g| g == legacy_group) {
            groups.push(legacy_group.to_owned());
        }
        route.groups = self.group_refs(&groups, &mut e);
        if flag(d, "readOnly", false) {
            route.methods = vec!["GET".into(), "HEAD".into(), "OPTIONS".into()];
        }
        let mut host_override = None;
        header_set(
            &mut route.request_headers.set,
            string_map(d, "additionalHeaders"),
            Some(&mut host_override),
            &mut e,
        );
        let missing_in = string_map(d, "missingOnlyHeadersIn");
        if !missing_in.is_empty() {
            e.approximated("missingOnlyHeadersIn became headers set on every request");
            header_set(&mut route.request_headers.set, missing_in, None, &mut e);
        }
        header_set(
            &mut route.response_headers.set,
            string_map(d, "additionalHeadersOut"),
            None,
            &mut e,
        );
        let missing_out = string_map(d, "missingOnlyHeadersOut");
        if !missing_out.is_empty() {
            e.approximated("missingOnlyHeadersOut became headers set on every response");
            header_set(&mut route.response_headers.set, missing_out, None, &mut e);
        }
        header_remove(
            &mut route.request_headers.remove,
            strings(d, "removeHeadersIn"),
            &mut e,
        );
        header_remove(
            &mut route.response_headers.remove,
            strings(d, "removeHeadersOut"),
            &mut e,
        );
        route.host_override = host_override;
        if !flag(d, "overrideHost", true) && route.host_override.is_none() {
            e.approximated("overrideHost false: the backend gets the target's host (set hostOverride to send another)");
        }
        if let Some(ipf) = d.get("ipFiltering") {
            route.ip_allow = ip_list(strings(ipf, "whitelist"), "ipFiltering.whitelist", &mut e);
            route.ip_block = ip_list(strings(ipf, "blacklist"), "ipFiltering.blacklist", &mut e);
        }
        if let Some(c) = d.get("cors").filter(|c| flag(c, "enabled", false)) {
            route.cors = Some(cors(c, true, &mut e));
        }
        if let Some(r) = d.get("redirection").filter(|r| flag(r, "enabled", false)) {
            route.redirect = Some(Redirect {
                to: text(r, "to").to_owned(),
                status: number(r, "code").map_or(303, |c| c as u16),
            });
        }
        // The profile: Otoroshi's credential forms, its headers both ways,
        // and, under enforceSecureCommunication, its info token and challenge.
        let constraints = d.get("apiKeyConstraints");
        let custom = constraints.and_then(|c| c.get("customHeadersAuth"));
        let mut profile = OtoroshiProfile {
            client_id_header: custom
                .and_then(|c| c.get("clientIdHeaderName"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            client_secret_header: custom
                .and_then(|c| c.get("clientSecretHeaderName"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            headers_in: true,
            headers_back: flag(d, "sendOtoroshiHeadersBack", true),
            ttl_seconds: number(d, "secComTtl").map_or(30, |ms| (ms / 1000).clamp(1, 3600)),
            audience: Some(name.to_owned()).filter(|n| !n.is_empty()),
            ..OtoroshiProfile::default()
        };
        if flag(d, "enforceSecureCommunication", true) {
            if flag(d, "sendInfoToken", true) {
                profile.info_token = Some(match text(d, "secComInfoTokenVersion") {
                    "Latest" | "latest" => InfoToken::Latest,
                    "Url" | "url" => {
                        e.approximated("secComInfoTokenVersion Url became Legacy (Komainu serves no consumer URL)");
                        InfoToken::Legacy
                    }
                    _ => InfoToken::Legacy,
                });
            }
            if flag(d, "sendStateChallenge", true) {
                let v2 = d.get("secComVersion").is_some_and(|v| {
                    v.as_u64() == Some(2)
                        || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("v2"))
                });
                profile.challenge = Some(if v2 { Challenge::V2 } else { Challenge::V1 });
            }
            if let Some(h) = d.get("secComHeaders") {
                for field in ["claimRequestName", "stateRequestName", "stateResponseName"] {
                    if !text(h, field).is_empty() {
                        e.approximated(format!(
                            "secComHeaders.{field} \"{}\": Komainu uses Otoroshi's default header names",
                            text(h, field)
                        ));
                    }
                }
            }
            if !strings(d, "secComExcludedPatterns").is_empty() {
                e.approximated(
                    "secComExcludedPatterns: the info token and the challenge apply to every path",
                );
            }
            if flag(d, "secComUseSameAlgo", true) {
                algo_note(
                    d.get("secComSettings"),
                    "the info token and the challenge",
                    &mut e,
                );
            } else {
                algo_note(d.get("secComAlgoInfoToken"), "the info token", &mut e);
                algo_note(
                    d.get("secComAlgoChallengeOtoToBack"),
                    "the challenge",
                    &mut e,
                );
            }
        }
        route.otoroshi = Some(profile);
        // Access: private unless public patterns say otherwise.
        let public_patterns = strings(d, "publicPatterns");
        let private_patterns = strings(d, "privatePatterns");
        let all = |list: &[String]| list.iter().any(|p| pattern_paths(p) == Paths::All);
        let access = if all(&public_patterns) && !all(&private_patterns) {
            Access {
                public: true,
                exceptions: private_patterns,
            }
        } else {
            Access {
                public: false,
                exceptions: public_patterns
                    .into_iter()
                    .filter(|p| pattern_paths(p) != Paths::All)
                    .collect(),
            }
        };
        if flag(d, "privateApp", false) || !text(d, "authConfigRef").is_empty() {
            e.dropped_part("a private app (login module): create an auth module and set the route's auth; the route is imported behind API keys");
        }
        for (field, what) in [
            ("canary", "canary releases"),
            ("gzip", "gzip"),
            ("chaosConfig", "chaos engineering"),
            ("jwtVerifier", "JWT verifiers"),
            ("restrictions", "API restrictions"),
            ("accessValidator", "access validators"),
            ("preRouting", "pre-routing plugins"),
            ("plugins", "plugins"),
        ] {
            if is_enabled(d.get(field)) {
                e.dropped_part(format!("{what} ({field}) have no equivalent"));
            }
        }
        for (field, default, what) in [
            ("forceHttps", true, "forceHttps: run an HTTPS listener with its redirect listener (--tls-cert, --https-redirect-addr)"),
            ("tcpUdpTunneling", false, "TCP/UDP tunneling"),
            ("redirectToLocal", false, "redirectToLocal"),
        ] {
            if flag(d, field, default) {
                e.dropped_part(format!("{what} has no equivalent"));
            }
        }
        if !strings(d, "transformerRefs").is_empty() || !text(d, "transformerRef").is_empty() {
            e.dropped_part("transformers (scripts) have no equivalent");
        }
        for field in ["matchingHeaders", "headersVerification"] {
            if !string_map(d, field).is_empty() {
                e.dropped_part(format!("{field}: routes do not match or verify on headers"));
            }
        }
        if e.status == super::Status::Error {
            self.report.entities.push(e);
            return;
        }
        let by_path: Vec<(Option<String>, Vec<String>)> = if prefixes.is_empty() {
            vec![(None, route.hosts.clone())]
        } else {
            prefixes
                .into_iter()
                .map(|p| (Some(p), route.hosts.clone()))
                .collect()
        };
        self.push_per_path(
            ("service", id.to_owned()),
            route,
            by_path,
            strip,
            false,
            &access,
            &mut e,
        );
        self.report.entities.push(e);
    }

    fn route(&mut self, r: &Value) {
        let id = text(r, "id");
        let name = text(r, "name");
        let mut e = EntityReport::new("routes", id, name);
        let frontend = r.get("frontend").cloned().unwrap_or(Value::Null);
        // Domains: `host` or `host/path`, grouped by path.
        let mut hosts: Vec<String> = Vec::new();
        let mut by_path: Vec<(Option<String>, Vec<String>)> = Vec::new();
        for d in strings(&frontend, "domains") {
            let (host, path) = match d.find('/') {
                Some(i) => (&d[..i], Some(d[i..].trim_end_matches('/').to_owned())),
                None => (d.as_str(), None),
            };
            let path = path.filter(|p| !p.is_empty());
            let host = match host_of(host) {
                Ok(h) => h,
                Err(why) => {
                    e.dropped_part(why);
                    continue;
                }
            };
            if !hosts.contains(&host) {
                hosts.push(host.clone());
            }
            match by_path.iter_mut().find(|(p, _)| *p == path) {
                Some((_, list)) if !list.contains(&host) => list.push(host),
                Some(_) => {}
                None => by_path.push((path, vec![host])),
            }
        }
        if hosts.is_empty() {
            e.error("no domain Komainu can serve (frontend.domains)");
        }
        let exact = flag(&frontend, "exact", false);
        let strip = flag(&frontend, "strip_path", true);
        for field in ["headers", "query"] {
            if !string_map(&frontend, field).is_empty() {
                e.dropped_part(format!("frontend.{field}: routes do not match on {field}"));
            }
        }
        // The backend: inline, or a stored one (backend_ref).
        let inline = r.get("backend").cloned().unwrap_or(Value::Null);
        let backend_value = match r.get("backend_ref").and_then(Value::as_str) {
            Some(reference) => match self.backends.get(reference) {
                Some(b) => b.get("backend").cloned().unwrap_or(Value::Null),
                None => {
                    e.error(format!(
                        "backend_ref \"{reference}\" is not in the export's backends"
                    ));
                    Value::Null
                }
            },
            None => inline,
        };
        let root = text(&backend_value, "root")
            .trim_end_matches('/')
            .to_owned();
        let rewrite = flag(&backend_value, "rewrite", false);
        let mut targets = Vec::new();
        for t in array(&backend_value, "targets") {
            let host = text(t, "hostname");
            let scheme = if flag(t, "tls", false) {
                "https"
            } else {
                "http"
            };
            let url = match number(t, "port") {
                Some(port) => format!(
                    "{scheme}://{host}:{port}{}",
                    if rewrite { "" } else { &root }
                ),
                None => format!("{scheme}://{host}{}", if rewrite { "" } else { &root }),
            };
            push_target(&mut targets, url, t, host, &mut e);
            if t.get("ip_address").is_some_and(|ip| !ip.is_null()) {
                e.approximated(format!(
                    "target {host}: its ip_address is not used, the host name is resolved"
                ));
            }
            if t.get("tls_config")
                .is_some_and(|c| flag(c, "enabled", false))
            {
                e.dropped_part(format!(
                    "target {host}: its TLS settings (client certificates, trust) are not kept: backends are trusted by the public roots and --backend-ca"
                ));
            }
            if text(t, "protocol").starts_with("HTTP/2")
                || text(t, "protocol").starts_with("HTTP/3")
            {
                e.approximated(format!("target {host}: HTTP/1.1 to the backend"));
            }
        }
        if !array(&backend_value, "target_refs").is_empty() {
            e.dropped_part(
                "target_refs: stored targets are not in an export; only inline targets were kept",
            );
        }
        let backend = backend_of(
            targets,
            backend_value.get("load_balancing"),
            backend_value.get("client"),
            backend_value.get("health_check"),
            false,
            &mut e,
        );
        let mut route = Route {
            id: id.to_owned(),
            name: name.to_owned(),
            enabled: flag(r, "enabled", true),
            hosts,
            paths: prefix_paths("/", exact),
            methods: strings(&frontend, "methods")
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            backend,
            rewrite_path: (rewrite && !root.is_empty()).then(|| root.clone()),
            ..Route::default()
        };
        if route.rewrite_path.is_some() {
            e.approximated(
                "backend.rewrite: every request goes to the root path (the query is kept)",
            );
        }
        route.groups = self.group_refs(&strings(r, "groups"), &mut e);
        let mut profile = OtoroshiProfile {
            audience: Some(name.to_owned()).filter(|n| !n.is_empty()),
            ..OtoroshiProfile::default()
        };
        let mut access = Access {
            public: true,
            exceptions: Vec::new(),
        };
        let mut host_override = None;
        for plugin in array(r, "plugins") {
            if !flag(plugin, "enabled", true) {
                continue;
            }
            let full = text(plugin, "plugin");
            let short = full.rsplit('.').next().unwrap_or(full);
            let config = plugin.get("config").cloned().unwrap_or(Value::Null);
            let include = strings(plugin, "include");
            let exclude = strings(plugin, "exclude");
            if short != "ApikeyCalls" && (!include.is_empty() || !exclude.is_empty()) {
                e.approximated(format!(
                    "plugin {short}: its include/exclude paths are not kept, it applies to every path"
                ));
            }
            match short {
                "OverrideHost" => {}
                "ApikeyCalls" => {
                    let mandatory = flag(&config, "mandatory", true);
                    if !mandatory {
                        e.approximated("ApikeyCalls mandatory false: the route is public (a key sent is not counted)");
                        continue;
                    }
                    if !include.is_empty() {
                        access = Access {
                            public: true,
                            exceptions: include,
                        };
                    } else {
                        access = Access {
                            public: false,
                            exceptions: exclude,
                        };
                    }
                    let custom = config
                        .get("extractors")
                        .and_then(|x| x.get("custom_headers"));
                    let named = |field: &str| {
                        custom
                            .and_then(|c| c.get(field))
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                    };
                    profile.client_id_header = named("client_id_header_name");
                    profile.client_secret_header = named("client_secret_header_name");
                    if !flag(&config, "update_quotas", true) {
                        e.approximated("ApikeyCalls update_quotas false: calls are counted against the key's quotas");
                    }
                }
                "AdditionalHeadersIn" => header_set(
                    &mut route.request_headers.set,
                    string_map(&config, "headers"),
                    Some(&mut host_override),
                    &mut e,
                ),
                "AdditionalHeadersOut" => header_set(
                    &mut route.response_headers.set,
                    string_map(&config, "headers"),
                    None,
                    &mut e,
                ),
                "MissingHeadersIn" => {
                    e.approximated("MissingHeadersIn became headers set on every request");
                    header_set(
                        &mut route.request_headers.set,
                        string_map(&config, "headers"),
                        None,
                        &mut e,
                    );
                }
                "MissingHeadersOut" => {
                    e.approximated("MissingHeadersOut became headers set on every response");
                    header_set(
                        &mut route.response_headers.set,
                        string_map(&config, "headers"),
                        None,
                        &mut e,
                    );
                }
                "RemoveHeadersIn" => header_remove(
                    &mut route.request_headers.remove,
                    strings(&config, "header_names"),
                    &mut e,
                ),
                "RemoveHeadersOut" => header_remove(
                    &mut route.response_headers.remove,
                    strings(&config, "header_names"),
                    &mut e,
                ),
                "OtoroshiHeadersIn" => profile.headers_in = true,
                "SendOtoroshiHeadersBack" => profile.headers_back = true,
                "OtoroshiInfos" => {
                    profile.info_token = Some(match text(&config, "version") {
                        "Latest" | "latest" => InfoToken::Latest,
                        "Legacy" | "legacy" | "" => InfoToken::Legacy,
                        other => {
                            e.approximated(format!("OtoroshiInfos version {other} became Legacy"));
                            InfoToken::Legacy
                        }
                    });
                    if let Some(ttl) = number(&config, "ttl") {
                        profile.ttl_seconds = ttl.clamp(1, 3600);
                    }
                    if !text(&config, "header_name").is_empty() {
                        e.approximated(format!(
                            "OtoroshiInfos header_name \"{}\": sent as Otoroshi-Claim",
                            text(&config, "header_name")
                        ));
                    }
                    if config.get("add_fields").is_some_and(|f| !f.is_null())
                        || config
                            .get("projection")
                            .and_then(Value::as_object)
                            .is_some_and(|p| !p.is_empty())
                    {
                        e.approximated("OtoroshiInfos add_fields/projection: the token has Otoroshi's default fields");
                    }
                    algo_note(config.get("algo"), "the info token", &mut e);
                }
                "OtoroshiChallenge" => {
                    profile.challenge = Some(match text(&config, "version") {
                        "V1" | "v1" => Challenge::V1,
                        _ => Challenge::V2,
                    });
                    if let Some(ttl) = number(&config, "ttl") {
                        profile.ttl_seconds = ttl.clamp(1, 3600);
                    }
                    for field in ["request_header_name", "response_header_name"] {
                        if !text(&config, field).is_empty() {
                            e.approximated(format!(
                                "OtoroshiChallenge {field} \"{}\": Komainu uses Otoroshi's default header names",
                                text(&config, field)
                            ));
                        }
                    }
                    algo_note(config.get("algo_to_backend"), "the challenge", &mut e);
                    algo_note(config.get("algo_from_backend"), "the challenge's answer", &mut e);
                }
                "Cors" => route.cors = Some(cors(&config, false, &mut e)),
                "MaintenanceMode" | "BuildMode" => route.maintenance = true,
                "IpAddressAllowedList" => {
                    route.ip_allow = ip_list(strings(&config, "addresses"), "IpAddressAllowedList", &mut e)
                }
                "IpAddressBlockList" => {
                    route.ip_block = ip_list(strings(&config, "addresses"), "IpAddressBlockList", &mut e)
                }
                "Redirection" => {
                    route.redirect = Some(Redirect {
                        to: text(&config, "to").to_owned(),
                        status: number(&config, "code").map_or(303, |c| c as u16),
                    })
                }
                "StaticResponse" => {
                    route.respond = Some(StaticResponse {
                        status: number(&config, "status").map_or(200, |s| s as u16),
                        headers: string_map(&config, "headers"),
                        body: text(&config, "body").to_owned(),
                    })
                }
                "ReadOnlyCalls" => {
                    route.methods = vec!["GET".into(), "HEAD".into(), "OPTIONS".into()];
                }
                "AllowHttpMethods" => {
                    route.methods = strings(&config, "allowed")
                        .iter()
                        .map(|m| m.to_ascii_uppercase())
                        .collect();
                }
                "AuthModule" | "MultiAuthModule" => e.dropped_part(format!(
                    "plugin {short}: create an auth module and set the route's auth (login modules hold secrets an export may not carry)"
                )),
                "ForceHttpsTraffic" => e.dropped_part(
                    "plugin ForceHttpsTraffic: run an HTTPS listener with its redirect listener (--tls-cert, --https-redirect-addr)",
                ),
                other => e.dropped_part(format!("plugin {other} has no equivalent")),
            }
        }
        route.host_override = host_override;
        route.otoroshi = Some(profile);
        if e.status == super::Status::Error {
            self.report.entities.push(e);
            return;
        }
        self.push_per_path(
            ("route", id.to_owned()),
            route,
            by_path,
            strip,
            exact,
            &access,
            &mut e,
        );
        self.report.entities.push(e);
    }

    fn apikey(&mut self, k: &Value) {
        let client_id = text(k, "clientId");
        let mut e = EntityReport::new("apiKeys", client_id, text(k, "clientName"));
        if !crate::model::is_valid_id(client_id) {
            e.error(format!(
                "clientId \"{client_id}\" has characters Komainu does not accept in a client id (A-Z a-z 0-9 . _ ~ @ + -)"
            ));
        }
        let secret = text(k, "clientSecret");
        if let Err(rule) = crate::model::check_secret(secret) {
            e.error(format!(
                "clientSecret: {rule} (give the key a longer secret in Otoroshi, or leave this key out of the export)"
            ));
        }
        let mut routes = Vec::new();
        let mut groups = Vec::new();
        let mut entities = strings(k, "authorizedEntities");
        let legacy_group = text(k, "authorizedGroup");
        if !legacy_group.is_empty() {
            let g = format!("group_{legacy_group}");
            if !entities.contains(&g) {
                entities.push(g);
            }
        }
        for entity in &entities {
            if let Some(g) = entity.strip_prefix("group_") {
                let kid = komainu_id(g);
                if self.doc.groups.iter().any(|x| x.id == kid) {
                    if !groups.contains(&kid) {
                        groups.push(kid);
                    }
                } else {
                    e.dropped_part(format!(
                        "authorized entity {entity}: no group \"{g}\" in the export"
                    ));
                }
                continue;
            }
            let origin = if let Some(r) = entity.strip_prefix("route_") {
                ("route", r.to_owned())
            } else if let Some(s) = entity.strip_prefix("service_") {
                ("service", s.to_owned())
            } else {
                e.dropped_part(format!(
                    "authorized entity {entity}: not a group_, route_ or service_ reference"
                ));
                continue;
            };
            // A new-engine route converted from a descriptor keeps its id:
            // look in both.
            let found = self.origins.get(&origin).or_else(|| {
                let other = if origin.0 == "route" {
                    "service"
                } else {
                    "route"
                };
                self.origins.get(&(other, origin.1.clone()))
            });
            match found {
                Some(ids) => {
                    for id in ids {
                        if !routes.contains(id) {
                            routes.push(id.clone());
                        }
                    }
                }
                None => e.dropped_part(format!(
                    "authorized entity {entity}: no such route or service in the export"
                )),
            }
        }
        if routes.is_empty() && groups.is_empty() {
            e.approximated("the key may call no route");
        }
        let quota = |field: &str| number(k, field).filter(|q| *q < UNLIMITED);
        let quotas = Quotas {
            per_second: quota("throttlingQuota"),
            per_day: quota("dailyQuota"),
            per_month: quota("monthlyQuota"),
        };
        let expires_at = number(k, "validUntil").map(|ms| {
            let text = crate::time::format_rfc3339(ms);
            if ms % 1000 != 0 {
                e.approximated("validUntil rounded down to the second");
            }
            text
        });
        let mut rotation = Rotation::default();
        if let Some(r) = k.get("rotation").filter(|r| flag(r, "enabled", false)) {
            let grace_h = number(r, "gracePeriod").unwrap_or(168);
            rotation.grace_seconds = (grace_h * 3600).min(30 * 86_400);
            e.approximated(format!(
                "rotation every {} h: Komainu rotates on request (POST /api/apikeys/{{id}}/rotate, or the UI) with a grace of {} h{}",
                number(r, "rotationEvery").unwrap_or(744),
                rotation.grace_seconds / 3600,
                if grace_h * 3600 > 30 * 86_400 { " (30 days at most)" } else { "" }
            ));
            if r.get("nextSecret").is_some_and(|s| !s.is_null()) {
                e.dropped_part("rotation.nextSecret: the rotation under way is not kept (the current secret stays)");
            }
        }
        if is_enabled(k.get("restrictions")) {
            e.dropped_part("restrictions (allowed/forbidden paths per key) have no equivalent");
        }
        if flag(k, "constrainedServicesOnly", false) {
            e.dropped_part("constrainedServicesOnly has no equivalent");
        }
        if k.get("metadata")
            .and_then(|m| m.get("jwt-sign-keypair"))
            .is_some()
        {
            e.dropped_part("metadata jwt-sign-keypair: give the key's public keys (jwks) for JWTs signed with a key pair");
        }
        if e.status == super::Status::Error {
            self.report.entities.push(e);
            return;
        }
        if self.doc.apikeys.iter().any(|x| x.client_id == client_id) {
            e.error(format!("two keys have the client id \"{client_id}\""));
            self.report.entities.push(e);
            return;
        }
        self.doc.apikeys.push(ApiKey {
            client_id: client_id.to_owned(),
            client_secret: Some(secret.to_owned()),
            client_secret_hash: None,
            client_secret_sealed: None,
            jwks: Vec::new(),
            jwt_algorithms: vec![HmacAlg::Hs256, HmacAlg::Hs384, HmacAlg::Hs512],
            name: text(k, "clientName").to_owned(),
            description: text(k, "description").to_owned(),
            tags: strings(k, "tags"),
            metadata: string_map(k, "metadata"),
            read_only: flag(k, "readOnly", false),
            allow_client_id_only: flag(k, "allowClientIdOnly", false),
            enabled: flag(k, "enabled", true),
            expires_at,
            routes,
            groups,
            quotas,
            rotation,
        });
        e.became.push(format!("apikeys/{client_id}"));
        self.report.entities.push(e);
    }
}

/// Otoroshi's CORS settings (`legacy`: the descriptor's camelCase form).
fn cors(c: &Value, legacy: bool, report: &mut EntityReport) -> Cors {
    let k = |legacy_name: &'static str, new_name: &'static str| {
        if legacy {
            legacy_name
        } else {
            new_name
        }
    };
    let origin = text(c, k("allowOrigin", "allow_origin"));
    let list = |field: &str, default: Vec<String>| {
        let v = strings(c, field);
        if v.is_empty() {
            default
        } else {
            v
        }
    };
    let defaults: Cors = serde_json::from_value(serde_json::json!({ "allowOrigins": ["*"] }))
        .unwrap_or(Cors {
            allow_origins: vec!["*".into()],
            allow_methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age_seconds: 600,
        });
    let origins: Vec<String> = if origin.is_empty() {
        vec!["*".into()]
    } else {
        origin.split(',').map(|o| o.trim().to_owned()).collect()
    };
    let mut allow_credentials = flag(c, k("allowCredentials", "allow_credentials"), false);
    if allow_credentials && origins.iter().any(|o| o == "*") {
        allow_credentials = false;
        report.approximated("CORS: credentials are not allowed with the origin *");
    }
    if !strings(c, k("excludedPatterns", "excluded_patterns")).is_empty() {
        report.approximated("CORS excludedPatterns: CORS applies to every path of the route");
    }
    Cors {
        allow_origins: origins,
        allow_methods: list(k("allowMethods", "allow_methods"), defaults.allow_methods),
        allow_headers: list(k("allowHeaders", "allow_headers"), defaults.allow_headers),
        expose_headers: list(
            k("exposeHeaders", "expose_headers"),
            defaults.expose_headers,
        ),
        allow_credentials,
        max_age_seconds: c
            .get(k("maxAge", "max_age"))
            .and_then(Value::as_u64)
            .map_or(defaults.max_age_seconds, |s| s.min(86_400) as u32),
    }
}

#[cfg(test)]
mod tests;
