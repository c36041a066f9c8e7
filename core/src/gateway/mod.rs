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

mod claim;
mod context;
mod head;
mod phases;
mod reply;
mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub use claim::ClaimSigner;
pub use context::{ClientInfo, Forward, Outcome, RequestContext, RequestId};
pub use head::{HeaderLookup, RequestHead};
pub use reply::response_headers;
pub use upstream::{connection_names, is_hop_by_hop, is_idempotent, Forwarding};

use crate::auth::KeyIndex;
use crate::model::{Document, QuotaFailure, Route, Settings, ValidationErrors};
use crate::routing::{RouteTable, TargetUrl};
use crate::secret::SealingKey;

/// A configuration revision compiled for the request path.
pub struct Gateway {
    revision: u64,
    routes: Vec<CompiledRoute>,
    table: RouteTable,
    keys: KeyIndex,
    claim: ClaimSigner,
    max_header_bytes: usize,
    /// The document compiled (secrets in their stored forms): what an
    /// instance writes back to a shared store that lost it.
    source: std::sync::Arc<Document>,
}

/// A route ready for the request path.
pub(crate) struct CompiledRoute {
    id: std::sync::Arc<str>,
    public: bool,
    /// Sorted group indexes.
    groups: Vec<usize>,
    targets: Vec<(TargetUrl, u32)>,
    total_weight: u64,
    /// Round-robin position (the only mutable state, and lock-free).
    next: AtomicU64,
    timeout_ms: u64,
    quota_failure: QuotaFailure,
    pass_authorization: bool,
    /// Protocols a client may switch to (lower case).
    upgrades: Vec<Box<str>>,
}

impl CompiledRoute {
    fn new(route: &Route, group_index: &HashMap<&str, usize>, settings: &Settings) -> Self {
        let targets: Vec<(TargetUrl, u32)> = route
            .backend
            .targets
            .iter()
            .filter_map(|t| TargetUrl::parse(&t.url).ok().map(|u| (u, t.weight)))
            .collect();
        let mut groups: Vec<usize> = route
            .groups
            .iter()
            .filter_map(|g| group_index.get(g.as_str()).copied())
            .collect();
        groups.sort_unstable();
        Self {
            id: std::sync::Arc::from(route.id.as_str()),
            public: route.public,
            groups,
            total_weight: targets.iter().map(|(_, w)| u64::from(*w)).sum(),
            targets,
            next: AtomicU64::new(0),
            timeout_ms: route.backend.timeout_ms,
            quota_failure: route.quota_failure.unwrap_or(settings.quota_failure),
            pass_authorization: route.pass_authorization,
            upgrades: route
                .upgrades
                .iter()
                .map(|p| p.to_ascii_lowercase().into_boxed_str())
                .collect(),
        }
    }

    /// The next target by weighted round robin; `None` when all weights are 0.
    fn pick_target(&self) -> Option<&TargetUrl> {
        if self.total_weight == 0 {
            return None;
        }
        let mut n = self.next.fetch_add(1, Ordering::Relaxed) % self.total_weight;
        for (url, weight) in &self.targets {
            let w = u64::from(*weight);
            if n < w {
                return Some(url);
            }
            n -= w;
        }
        None
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
}

#[cfg(test)]
mod tests;
