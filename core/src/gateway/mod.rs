//! The compiled gateway and its request pipeline.
//!
//! A [`Gateway`] is compiled from a [`Document`] once per revision
//! ([`Gateway::compile`]) and then only read: adapters keep it behind an
//! `Arc`, swap in a new one when the configuration changes, and call, for
//! each request:
//!
//! 1. [`Gateway::handle_request`] with the request head: it runs the
//!    request phases (route → authenticate → authorize → quota → forward,
//!    see [`phases`]) and answers an [`Outcome`]: respond with this error,
//!    or forward the (rewritten) head to the backend;
//! 2. after forwarding, [`Gateway::handle_response`] with the backend's
//!    response head (the respond phase: hop-by-hop headers removed, request
//!    id and quota headers added), or [`Gateway::error_response`] when the
//!    backend failed (502, 504).
//!
//! The adapter streams bodies; the core never sees them.

pub(crate) mod answer;
mod balance;
mod claim;
mod context;
pub mod cors;
mod head;
pub mod health;
mod log;
pub mod login;
pub mod otoroshi;
mod phases;
mod reply;
mod retry;
pub mod rewrite;
pub mod timeouts;
mod trace;
pub mod transform;
mod upstream;

use std::collections::HashMap;

pub use claim::ClaimSigner;
pub use context::{ClientInfo, Decision, Forward, Outcome, RequestContext, RequestId};
pub use head::{HeaderLookup, RequestHead};
pub use log::{health_event, Exchange, Timings};
pub use login::LoginStep;
pub use reply::{response_headers, varies_by_origin};
pub use retry::{HealthProbe, Retry, RouteHealth, TargetHealthEntry};
pub use timeouts::{Timeout, Timeouts};
pub use trace::TraceContext;
pub use upstream::{
    connection_names, is_hop_by_hop, is_idempotent, without_gateway_cookies, Forwarding,
};

use crate::auth::KeyIndex;
use crate::model::{
    Document, Exporter, FieldError, QuotaFailure, Route, Settings, ValidationErrors,
};
use crate::routing::RouteTable;
use crate::secret::stored::open_sealed_bytes;
use crate::secret::SealingKey;
use crate::stats::{KeyStats, RouteStats, Stats};

/// A configuration revision compiled for the request path.
pub struct Gateway {
    revision: u64,
    routes: Vec<CompiledRoute>,
    table: RouteTable,
    keys: KeyIndex,
    claim: ClaimSigner,
    max_header_bytes: usize,
    /// Counters of requests no route took, and the exporters' ones.
    stats: std::sync::Arc<Stats>,
    /// Add the latency headers to proxied responses.
    latency_headers: bool,
    /// What a route in maintenance answers.
    maintenance: crate::model::MaintenanceSettings,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: crate::access::IpList,
    /// Count requests per key (`settings.metrics.perKey`).
    per_key_metrics: bool,
    /// Quota alerts: the share of a window (percent) that raises
    /// "almost spent".
    quota_alert_percent: u8,
    /// The enabled exporters, their secrets opened.
    exporters: Vec<CompiledExporter>,
    /// The auth modules (people's logins).
    logins: crate::login::Directory,
    /// Signs people's sessions on private routes.
    route_sessions: crate::admin::SessionKey,
    /// Some route is private: the gateway's login paths answer.
    private_routes: bool,
    /// Failed logins on private routes' hosts (carried across revisions).
    login_throttle: std::sync::Arc<crate::login::LoginThrottle>,
    /// Signs Otoroshi's tokens (the shared key), when it is set.
    otoroshi_signer: Option<otoroshi::Signer>,
    /// The document compiled (secrets in their stored forms): what an
    /// instance writes back to a shared store that lost it.
    source: std::sync::Arc<Document>,
}

/// A route ready for the request path.
pub(crate) struct CompiledRoute {
    id: std::sync::Arc<str>,
    name: std::sync::Arc<str>,
    /// The route's counters (carried from revision to revision).
    stats: std::sync::Arc<RouteStats>,
    public: bool,
    /// A private route: people log in first.
    login: Option<login::RouteLogin>,
    /// Sorted group indexes.
    groups: Vec<usize>,
    /// The targets and how one is chosen.
    balancer: balance::Balancer,
    /// Retries on another target, and their budget.
    retries: retry::RetryPolicy,
    /// Active health checks (natively).
    health_check: Option<crate::model::HealthCheck>,
    timeouts: Timeouts,
    quota_failure: QuotaFailure,
    pass_authorization: bool,
    /// In maintenance (the route's flag or the gateway's).
    maintenance: bool,
    /// IP rules (the gateway's and the route's).
    access: crate::access::Access,
    /// What the route answers itself (redirect, static response), if it does.
    answer: Option<answer::Answer>,
    /// Largest request body (the route's, else the settings').
    max_body_bytes: Option<u64>,
    /// Protocols a client may switch to (lower case).
    upgrades: Vec<Box<str>>,
    /// A path prefix taken off before forwarding.
    strip_prefix: Option<Box<str>>,
    /// The path sent on, from a template.
    rewrite: Option<rewrite::PathRewrite>,
    /// The `Host` sent to the backend instead of the target's.
    host_override: Option<Box<str>>,
    /// CORS, when the route has it.
    cors: Option<cors::CorsRules>,
    /// Header changes on the request and on the response.
    request_rules: Option<transform::HeaderRules>,
    response_rules: Option<transform::HeaderRules>,
    /// The Otoroshi profile (the route's, else the settings').
    otoroshi: Option<otoroshi::Profile>,
}

impl CompiledRoute {
    fn new(route: &Route, group_index: &HashMap<&str, usize>, settings: &Settings) -> Self {
        let mut groups: Vec<usize> = route
            .groups
            .iter()
            .filter_map(|g| group_index.get(g.as_str()).copied())
            .collect();
        groups.sort_unstable();
        Self {
            id: std::sync::Arc::from(route.id.as_str()),
            name: std::sync::Arc::from(route.name.as_str()),
            stats: std::sync::Arc::default(),
            public: route.public,
            login: route.auth.as_ref().map(|a| login::RouteLogin {
                module: a.module.as_str().into(),
                api_keys: a.api_keys,
                roles: a.roles.clone(),
            }),
            groups,
            balancer: balance::Balancer::new(&route.backend),
            retries: retry::RetryPolicy::new(&route.backend.retries),
            health_check: route.backend.health_check.clone(),
            timeouts: Timeouts::of(&route.backend, settings),
            quota_failure: route.quota_failure.unwrap_or(settings.quota_failure),
            pass_authorization: route.pass_authorization,
            maintenance: route.maintenance || settings.maintenance.enabled,
            access: access_of(route, settings),
            answer: answer::Answer::of(route.redirect.as_ref(), route.respond.as_ref()),
            max_body_bytes: route.max_body_bytes.or(settings.max_request_body_bytes),
            upgrades: route
                .upgrades
                .iter()
                .map(|p| p.to_ascii_lowercase().into_boxed_str())
                .collect(),
            cors: route.cors.as_ref().map(cors::CorsRules::of),
            strip_prefix: route.strip_prefix.as_deref().map(Box::from),
            rewrite: route
                .rewrite_path
                .as_deref()
                .and_then(|t| rewrite::PathRewrite::compile(t, &route.paths).ok()),
            host_override: route.host_override.as_deref().map(Box::from),
            request_rules: transform::HeaderRules::of(&route.request_headers),
            response_rules: transform::HeaderRules::of(&route.response_headers),
            otoroshi: otoroshi::Profile::compile(route, settings),
        }
    }
}

impl Gateway {
    /// Validates and compiles a document. `claim_secret` signs the
    /// `Komainu-Claim` JWTs sent to backends; `sealing`, the deployment
    /// key, opens the keys' sealed HMAC keys (HS256): a document sealed
    /// with another deployment key is refused, naming the field.
    pub fn compile(
        doc: &Document,
        claim_secret: &[u8],
        sealing: Option<&SealingKey>,
    ) -> Result<Self, ValidationErrors> {
        doc.validate()?;
        let table = RouteTable::build(&doc.routes)?;
        let group_index: HashMap<&str, usize> = doc
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.as_str(), i))
            .collect();
        let route_index: HashMap<&str, usize> = doc
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        Ok(Self {
            revision: doc.revision,
            routes: doc
                .routes
                .iter()
                .map(|r| CompiledRoute::new(r, &group_index, &doc.settings))
                .collect(),
            table,
            keys: KeyIndex::build(&doc.apikeys, &route_index, &group_index, sealing)?,
            claim: ClaimSigner::new(claim_secret, &doc.settings),
            max_header_bytes: doc.settings.max_request_header_bytes,
            stats: std::sync::Arc::default(),
            quota_alert_percent: doc.settings.alerts.quota_almost_spent_percent,
            latency_headers: doc.settings.latency_headers,
            maintenance: doc.settings.maintenance.clone(),
            trusted_proxies: crate::access::IpList::parse(&doc.settings.trusted_proxies)
                .unwrap_or_default(),
            per_key_metrics: doc.settings.metrics.per_key,
            exporters: compile_exporters(&doc.exporters, sealing)?,
            logins: crate::login::Directory::compile(doc, sealing),
            route_sessions: login::session_key(claim_secret),
            private_routes: doc.routes.iter().any(|r| r.enabled && r.auth.is_some()),
            login_throttle: std::sync::Arc::default(),
            otoroshi_signer: otoroshi_signer(&doc.settings.otoroshi, sealing)?,
            source: std::sync::Arc::new(doc.clone()),
        })
    }

    /// The document this gateway was compiled from.
    pub fn document(&self) -> &Document {
        &self.source
    }

    /// The configuration revision this gateway was compiled from.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The compiled API keys.
    pub fn keys(&self) -> &KeyIndex {
        &self.keys
    }

    /// The compiled auth modules (how people log in).
    pub fn logins(&self) -> &crate::login::Directory {
        &self.logins
    }

    /// Takes over the counters of `previous` (the revision this one
    /// replaces) and the health of the targets the two share: metrics are
    /// cumulative across configuration changes, and a target that is down
    /// stays down. Adapters call it once per change, before swapping the
    /// new revision in.
    pub fn carry_stats_from(&mut self, previous: &Gateway) {
        self.stats = previous.stats.clone();
        self.login_throttle = previous.login_throttle.clone();
        for route in &mut self.routes {
            if let Some(old) = previous.routes.iter().find(|r| r.id == route.id) {
                route.balancer.carry_health_from(&old.balancer);
            }
        }
        for route in &mut self.routes {
            route.stats = self.stats.route(&route.id, || {
                previous
                    .routes
                    .iter()
                    .find(|r| r.id == route.id)
                    .map(|r| r.stats.clone())
            });
        }
        for key in self.keys.iter_mut() {
            key.stats = self.stats.key(&key.client_id, || {
                previous.keys.get(&key.client_id).map(|k| k.stats.clone())
            });
        }
    }

    /// When `settings.metrics.perKey` is on: calls `visit` with each key's
    /// client id and counters (in no particular order).
    pub fn for_each_key_stats<'a>(&'a self, mut visit: impl FnMut(&'a str, &'a KeyStats)) {
        if !self.per_key_metrics {
            return;
        }
        for key in self.keys.iter() {
            visit(&key.client_id, &key.stats);
        }
    }

    /// The enabled exporters, ready to run.
    pub fn exporters(&self) -> &[CompiledExporter] {
        &self.exporters
    }

    /// Calls `visit` with each route's id and counters, in order.
    pub fn for_each_route_stats<'a>(&'a self, mut visit: impl FnMut(&'a str, &'a RouteStats)) {
        for route in &self.routes {
            visit(&route.id, &route.stats);
        }
    }

    /// The counters: every route's, and those of requests no route took.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

/// The IP rules of a route: the gateway's lists and its own (validated
/// already: an entry that does not parse cannot be here).
fn access_of(route: &Route, settings: &Settings) -> crate::access::Access {
    use crate::access::IpList;
    let parse = |l: &[String]| IpList::parse(l).unwrap_or_default();
    let block: Vec<String> = settings
        .ip_block
        .iter()
        .chain(&route.ip_block)
        .cloned()
        .collect();
    crate::access::Access {
        block: parse(&block),
        allow_global: parse(&settings.ip_allow),
        allow_route: parse(&route.ip_allow),
    }
}

/// Opens the Otoroshi shared key. A key still in clear means there is no
/// deployment key to seal it with: refused, since it could not be kept.
fn otoroshi_signer(
    settings: &crate::model::OtoroshiSettings,
    sealing: Option<&SealingKey>,
) -> Result<Option<otoroshi::Signer>, ValidationErrors> {
    match (&settings.shared_key, &settings.shared_key_sealed) {
        (Some(_), _) => Err(ValidationErrors::one(
            "settings.otoroshi.sharedKey",
            "keeping Otoroshi's shared key needs a deployment key to seal it: start with --secret-key / KOMAINU_SECRET_KEY",
        )),
        (None, Some(sealed)) => open_sealed_bytes(
            sealing,
            crate::model::OtoroshiSettings::SEAL_CONTEXT,
            sealed,
        )
        .map(|key| Some(otoroshi::Signer::new(&key)))
        .map_err(|why| ValidationErrors::one("settings.otoroshi.sharedKeySealed", why.to_string())),
        (None, None) => Ok(None),
    }
}

/// An exporter ready to run: its configuration and its signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct CompiledExporter {
    /// As configured.
    pub config: Exporter,
    /// The webhook signing secret, opened.
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for CompiledExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledExporter")
            .field("id", &self.config.id)
            .field("kind", &self.config.kind)
            .field("signed", &self.secret.is_some())
            .finish()
    }
}

/// Opens the enabled exporters' secrets. A secret still in clear means
/// there is no deployment key to seal it with: refused, since it could
/// not be kept.
fn compile_exporters(
    exporters: &[Exporter],
    sealing: Option<&SealingKey>,
) -> Result<Vec<CompiledExporter>, ValidationErrors> {
    let mut errors = Vec::new();
    let mut compiled = Vec::new();
    for (i, e) in exporters.iter().enumerate() {
        let secret = match (&e.secret, &e.secret_sealed) {
            (Some(_), _) => {
                errors.push(FieldError {
                    field: format!("exporters[{i}].secret"),
                    message: "signing deliveries needs a deployment key to keep the secret sealed: start with --secret-key / KOMAINU_SECRET_KEY, or leave the secret out".into(),
                });
                continue;
            }
            (None, Some(sealed)) => match open_sealed_bytes(sealing, &e.seal_context(), sealed) {
                Ok(secret) => Some(secret),
                Err(why) => {
                    errors.push(FieldError {
                        field: format!("exporters[{i}].secretSealed"),
                        message: why.to_string(),
                    });
                    continue;
                }
            },
            (None, None) => None,
        };
        if e.enabled {
            compiled.push(CompiledExporter {
                config: e.clone(),
                secret,
            });
        }
    }
    if errors.is_empty() {
        Ok(compiled)
    } else {
        Err(ValidationErrors(errors))
    }
}

#[cfg(test)]
mod tests;
