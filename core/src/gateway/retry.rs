//! After a failed attempt: whether to try another target (retries and
//! their budget), and the route's health as people and health checkers
//! see it. The adapter knows when a retry is safe (nothing sent, or an
//! idempotent request without a body and no response byte); the core
//! decides whether one is made and where it goes.

use std::sync::{Arc, Mutex};

use http::header::HOST;
use http::request::Parts;
use http::{HeaderValue, Uri};
use serde::Serialize;

use super::health::{TargetHealth, TargetHealthView};
use super::{Gateway, RequestContext};
use crate::model::{HealthCheck, Retries};
use crate::routing::TargetUrl;

/// The length of the window a retry budget is counted over.
const BUDGET_WINDOW_MS: u64 = 10_000;
/// Retries a route may always make in a window, however few its requests.
const BUDGET_FLOOR: u64 = 10;
/// The longest wait before a retry.
const MAX_BACKOFF_MS: u64 = 10_000;

/// A route's retry rules and budget.
pub(crate) struct RetryPolicy {
    attempts: u32,
    backoff_ms: u64,
    budget_percent: u64,
    budget: Mutex<Budget>,
}

/// The retries made in the current window against the route's requests.
#[derive(Default)]
struct Budget {
    window_start_ms: u64,
    requests_at_start: u64,
    previous_requests: u64,
    retries: u64,
}

impl RetryPolicy {
    pub(crate) fn new(r: &Retries) -> Self {
        Self {
            attempts: r.attempts,
            backoff_ms: r.backoff_ms,
            budget_percent: u64::from(r.budget_percent),
            budget: Mutex::default(),
        }
    }

    /// Takes one retry from the budget, given the route's request count.
    fn spend(&self, requests: u64, now_ms: u64) -> bool {
        let Ok(mut b) = self.budget.lock() else {
            return false;
        };
        if now_ms >= b.window_start_ms + BUDGET_WINDOW_MS {
            // The requests since the last window began (all of them, the
            // first time): the recent traffic retries are a share of.
            let previous = requests.saturating_sub(b.requests_at_start);
            *b = Budget {
                window_start_ms: now_ms,
                requests_at_start: requests,
                previous_requests: previous,
                retries: 0,
            };
        }
        let current = requests.saturating_sub(b.requests_at_start);
        let allowed = BUDGET_FLOOR + self.budget_percent * current.max(b.previous_requests) / 100;
        if b.retries >= allowed {
            return false;
        }
        b.retries += 1;
        true
    }
}

/// Where a retry goes, and how long to wait before it.
#[derive(Debug)]
pub struct Retry<'g> {
    /// The target that failed.
    pub from: &'g TargetUrl,
    /// The target to try now.
    pub target: &'g TargetUrl,
    /// Milliseconds to wait first (the backoff, with full jitter).
    pub wait_ms: u64,
}

impl Gateway {
    /// The attempt on the request's target failed (could not connect,
    /// broke, or timed out) in a way that is safe to retry: the failure
    /// counts against that target's circuit breaker, and when the route's
    /// retries and their budget allow, another target not tried yet is
    /// chosen. `None`: answer with the failure.
    pub fn retry(&self, ctx: &mut RequestContext, now_ms: u64) -> Option<Retry<'_>> {
        let route = &self.routes[ctx.route?];
        let failed = ctx.target.take()?;
        route.balancer.finished(failed);
        if let Some(change) = route.balancer.report(failed, true, ctx.picked_ms, now_ms) {
            ctx.health_changes.push(change);
        }
        if failed < 64 {
            ctx.tried |= 1 << failed;
        }
        let policy = &route.retries;
        if ctx.retries >= policy.attempts {
            return None;
        }
        let random = ctx.request_id.bits().rotate_left(17 * (ctx.retries + 1));
        let next = route.balancer.pick_other(ctx.tried, random, now_ms)?;
        if !policy.spend(route.stats.requests_total(), now_ms) {
            route.balancer.finished(next);
            return None;
        }
        ctx.retries += 1;
        ctx.target = Some(next);
        ctx.picked_ms = now_ms;
        let ceiling = policy
            .backoff_ms
            .saturating_mul(1 << (ctx.retries - 1).min(10))
            .min(MAX_BACKOFF_MS);
        Some(Retry {
            from: route.balancer.target(failed),
            target: route.balancer.target(next),
            wait_ms: if ceiling == 0 {
                0
            } else {
                (random >> 64) as u64 % (ceiling + 1)
            },
        })
    }

    /// [`Gateway::retry`] for a request already rewritten for its target
    /// (`parts`, as [`Gateway::handle_request`] leaves it): pointed at the
    /// next target. The answer is how long to wait before sending it;
    /// `None`: answer with the failure.
    pub fn retry_request(
        &self,
        ctx: &mut RequestContext,
        parts: &mut Parts,
        now_ms: u64,
    ) -> Option<u64> {
        let retry = self.retry(ctx, now_ms)?;
        retarget(parts, retry.from, retry.target);
        Some(retry.wait_ms)
    }

    /// The health of route `id`'s targets on this instance, as of `now_ms`.
    pub fn route_health(&self, id: &str, now_ms: u64) -> Option<RouteHealth> {
        let route = self.routes.iter().find(|r| &*r.id == id)?;
        let open_ms = route.balancer.open_ms();
        let targets: Vec<TargetHealthEntry> = route
            .balancer
            .targets()
            .map(|(url, backup, weight, health)| TargetHealthEntry {
                url: url.to_string(),
                backup,
                weight,
                health: health.report_view(now_ms, open_ms),
            })
            .collect();
        let up = |t: &&TargetHealthEntry| t.health.status == "up" && t.weight > 0;
        let primaries_up = targets.iter().filter(|t| !t.backup).filter(up).count();
        let backups_up = targets.iter().filter(|t| t.backup).filter(up).count();
        Some(RouteHealth {
            route: id.to_owned(),
            status: if primaries_up > 0 {
                "healthy"
            } else if backups_up > 0 {
                "degraded"
            } else {
                "down"
            },
            circuit_breaker: open_ms > 0,
            health_check: route.health_check.is_some(),
            targets,
        })
    }

    /// The targets active health checks poll: one per target of every
    /// route with `healthCheck`, its state shared with the request path.
    pub fn health_probes(&self) -> Vec<HealthProbe> {
        let mut probes = Vec::new();
        for route in &self.routes {
            let Some(check) = &route.health_check else {
                continue;
            };
            for (index, (url, _, _, health)) in route.balancer.targets().enumerate() {
                probes.push(HealthProbe {
                    route_id: route.id.clone(),
                    index,
                    target: url.clone(),
                    check: check.clone(),
                    health: health.clone(),
                });
            }
        }
        probes
    }
}

/// One target an active checker polls.
#[derive(Clone)]
pub struct HealthProbe {
    /// The route.
    pub route_id: Arc<str>,
    /// The target's index in the route's backend.
    pub index: usize,
    /// The target.
    pub target: TargetUrl,
    /// How to check it.
    pub check: HealthCheck,
    /// Its state (where the results go).
    pub health: Arc<TargetHealth>,
}

impl HealthProbe {
    /// The URI a check asks: the check's path under the target's base path.
    pub fn uri(&self) -> Option<Uri> {
        Uri::builder()
            .scheme(self.target.scheme.clone())
            .authority(self.target.authority.clone())
            .path_and_query(format!("{}{}", self.target.base_path, self.check.path))
            .build()
            .ok()
    }

    /// The same target and state in another revision (unchanged checks
    /// keep running).
    pub fn same_as(&self, other: &HealthProbe) -> bool {
        self.route_id == other.route_id
            && self.target == other.target
            && self.check == other.check
            && Arc::ptr_eq(&self.health, &other.health)
    }
}

/// `GET /api/routes/{id}/health`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteHealth {
    /// The route's id.
    pub route: String,
    /// `healthy` (a primary takes traffic), `degraded` (only backups do)
    /// or `down` (nothing: `no_healthy_target`).
    pub status: &'static str,
    /// Whether the route has a circuit breaker.
    pub circuit_breaker: bool,
    /// Whether its targets are checked actively.
    pub health_check: bool,
    /// Each target.
    pub targets: Vec<TargetHealthEntry>,
}

/// A target in [`RouteHealth`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealthEntry {
    /// Its URL.
    pub url: String,
    /// A backup target.
    pub backup: bool,
    /// Its weight.
    pub weight: u32,
    /// Its state.
    #[serde(flatten)]
    pub health: TargetHealthView,
}

/// Points a request already rewritten for target `from` at target `to`:
/// its URI (the path moved from one base path to the other) and its
/// `Host`, when that was the target's.
fn retarget(parts: &mut Parts, from: &TargetUrl, to: &TargetUrl) {
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let rest = pq.strip_prefix(from.base_path.as_str()).unwrap_or(pq);
    let uri = Uri::builder()
        .scheme(to.scheme.clone())
        .authority(to.authority.clone())
        .path_and_query(format!("{}{rest}", to.base_path))
        .build();
    if let Ok(uri) = uri {
        parts.uri = uri;
    }
    if parts
        .headers
        .get(HOST)
        .is_some_and(|h| h.as_bytes() == from.authority.as_str().as_bytes())
    {
        if let Ok(v) = HeaderValue::from_str(to.authority.as_str()) {
            parts.headers.insert(HOST, v);
        }
    }
}

/// Whether an attempt that got `status` from the backend failed in the
/// circuit breaker's eyes (502, 503, 504).
pub(crate) fn is_failure_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_share_of_recent_requests_with_a_floor() {
        let p = RetryPolicy::new(&Retries {
            attempts: 1,
            backoff_ms: 0,
            budget_percent: 20,
        });
        // 100 requests before the first retry: 10 + 20 allowed.
        let allowed = (0..100).filter(|_| p.spend(100, 1_000)).count();
        assert_eq!(allowed, 30);
        // The next window: the 150 requests of the one before count.
        let allowed = (0..100).filter(|_| p.spend(150, 11_000)).count();
        assert_eq!(allowed, 40);
        // And the one after: the 50 of the window before.
        let allowed = (0..100).filter(|_| p.spend(200, 21_000)).count();
        assert_eq!(allowed, 20);
        // A quiet route still retries a little.
        let quiet = RetryPolicy::new(&Retries::default());
        assert_eq!((0..50).filter(|_| quiet.spend(0, 5)).count(), 10);
    }
}
