//! The log phase: the one place a request's event is built, its counters
//! moved and its alerts raised, once the answer has left.
//!
//! The adapter hands in what only it knows (the status sent, bytes, the
//! attempts, the timings it measured) as an [`Exchange`]; everything else
//! comes from the request's context. Adapters never assemble events.

use std::net::IpAddr;

use http::Method;

use super::context::RequestContext;
use super::health::HealthChange;
use super::Gateway;
use crate::error::Blame;
use crate::events::alert::Severity;
use crate::events::{AlertEvent, Durations, Event, EventData, EventSink, Identity, RequestEvent};
use crate::quota::Window;
use crate::stats::{method_index, status_class_index, METHODS};
use crate::GatewayError;

/// What the adapter measured, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// From the request's arrival to the last byte of the answer.
    pub total_us: u64,
    /// From the request's arrival to the answer's head leaving.
    pub head_us: u64,
    /// The backend's time: from sending the request to its response head
    /// (none when nothing was forwarded).
    pub backend_us: Option<u64>,
}

/// What happened to a request, as only the adapter knows it.
#[derive(Debug, Clone)]
pub struct Exchange<'a> {
    /// The request method (none when the head could not be read).
    pub method: Option<&'a Method>,
    /// The host asked for (the event takes it; empty when the sink wants
    /// no request events: see [`EventSink::wants_request_events`]).
    pub host: String,
    /// The path, without the query (taken likewise).
    pub path: String,
    /// The status sent to the client.
    pub status: u16,
    /// The error the gateway answered with, if it did.
    pub error: Option<&'a GatewayError>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Body bytes received from the client.
    pub bytes_in: u64,
    /// Body bytes sent to the client.
    pub bytes_out: u64,
    /// Connections tried to reach the backend.
    pub attempts: u32,
    /// Timings.
    pub timings: Timings,
}

impl Gateway {
    /// **log**: counts the request, raises its alerts and emits its event
    /// into `sink`. Called once per request, after the answer, with the
    /// context the request phases filled (of this revision).
    pub fn log(&self, ctx: &RequestContext, exchange: Exchange<'_>, sink: &impl EventSink) {
        let route = ctx.route.and_then(|i| self.routes.get(i));
        if let (Some(route), Some(target)) = (route, ctx.target) {
            route.balancer.finished(target);
            let failed = match exchange.error {
                Some(e) => e.blame() == Blame::Backend,
                None => super::retry::is_failure_status(exchange.status),
            };
            let change = route
                .balancer
                .report(target, failed, ctx.picked_ms, ctx.received_ms);
            if change.is_some() || !ctx.health_changes.is_empty() {
                for change in ctx.health_changes.iter().chain(&change) {
                    self.health_alert(route, change, ctx, sink);
                }
            }
        } else if let (Some(route), false) = (route, ctx.health_changes.is_empty()) {
            for change in &ctx.health_changes {
                self.health_alert(route, change, ctx, sink);
            }
        }
        let stats = match route {
            Some(route) => &*route.stats,
            None => &self.stats.unrouted,
        };
        let outcome = match exchange.error.map(GatewayError::blame) {
            None if ctx.answered => 4,
            None => 0,
            Some(Blame::Client) => 1,
            Some(Blame::Backend) => 2,
            Some(Blame::Gateway) => 3,
        };
        let t = exchange.timings;
        let overhead_us = t.head_us.saturating_sub(t.backend_us.unwrap_or(0));
        let class = status_class_index(exchange.status);
        stats.count(
            exchange.method.map_or(METHODS.len() - 1, method_index),
            class,
            outcome,
            exchange.error.map(GatewayError::code_index),
        );
        if let Some(key) = &ctx.key_stats {
            key.count(class, outcome);
        }
        stats.total.observe(t.total_us);
        stats.overhead.observe(overhead_us);
        if let Some(backend) = t.backend_us {
            stats.backend.observe(backend);
        }
        stats.add_bytes(exchange.bytes_in, exchange.bytes_out);

        if exchange.error.is_none() {
            self.quota_alerts(ctx, sink);
        }
        if !sink.wants_request_events() {
            return;
        }
        let identity = match (&ctx.client_id, &ctx.key_name) {
            _ if ctx.person.is_some() => ctx.person.as_ref().map(|p| Identity::Person {
                module: p.module.clone(),
                subject: p.subject.clone(),
                email: p.email.clone(),
            }),
            (Some(client_id), Some(name)) => Some(Identity::Key {
                client_id: client_id.clone(),
                name: name.clone(),
            }),
            _ => match &ctx.claimed_client_id {
                Some(claimed) => Some(Identity::Refused {
                    client_id: claimed.clone(),
                }),
                None => ctx
                    .route
                    .and_then(|i| self.routes.get(i))
                    .filter(|r| r.public)
                    .map(|_| Identity::Public),
            },
        };
        let route_name = ctx
            .route
            .and_then(|i| self.routes.get(i))
            .map(|r| r.name.clone());
        sink.emit(Event {
            id: ctx.request_id,
            time_ms: ctx.received_ms,
            data: EventData::Request(Box::new(RequestEvent {
                request_id: ctx.request_id,
                route_id: ctx.route_id.clone(),
                route_name,
                identity,
                method: exchange.method.cloned(),
                host: exchange.host,
                path: exchange.path,
                status: exchange.status,
                error: exchange.error.map(GatewayError::code),
                blame: exchange.error.map(|e| e.blame().name()),
                client_ip: ctx.client_ip.or(exchange.client_ip),
                bytes_in: exchange.bytes_in,
                bytes_out: exchange.bytes_out,
                attempts: exchange.attempts,
                durations: Durations {
                    total_us: t.total_us,
                    backend_us: t.backend_us,
                    overhead_us,
                },
                quotas: ctx.quota,
                quota_unchecked: ctx.quota_unchecked.is_some(),
                trace: ctx.trace,
            })),
        });
    }

    /// `target_down` / `target_up`: a route's target went out of service
    /// or came back.
    fn health_alert(
        &self,
        route: &super::CompiledRoute,
        change: &HealthChange,
        ctx: &RequestContext,
        sink: &impl EventSink,
    ) {
        let random = ctx.request_id.bits().rotate_left(32) ^ (change.target as u128 + 0x100);
        let target = route.balancer.target(change.target);
        sink.emit(health_event(
            &route.id,
            target,
            change,
            ctx.received_ms,
            random,
        ));
    }

    /// `quota_almost_spent` and `quota_spent` for the daily and monthly
    /// windows (a per-second window is throttling, not news). Counters are
    /// exact, so exactly one call per window sees each threshold: no state
    /// is needed to raise each alert once.
    fn quota_alerts(&self, ctx: &RequestContext, sink: &impl EventSink) {
        let (Some(quota), Some(client_id)) = (&ctx.quota, &ctx.client_id) else {
            return;
        };
        if !quota.admitted() {
            return;
        }
        for (window, limit, remaining, resets_at) in quota.windows() {
            if window == Window::Second {
                continue;
            }
            let used = limit - remaining;
            let almost = almost_spent_at(limit, self.quota_alert_percent);
            let (name, message) = if used == limit {
                (
                    "quota_spent",
                    format!(
                        "API key \"{client_id}\" has used all {limit} calls of its {} quota",
                        window.adjective()
                    ),
                )
            } else if Some(used) == almost {
                (
                    "quota_almost_spent",
                    format!(
                        "API key \"{client_id}\" has used {used} of the {limit} calls of its {} quota",
                        window.adjective()
                    ),
                )
            } else {
                continue;
            };
            let mut alert = AlertEvent::new(name, Severity::Warning, message);
            alert.key = Some(client_id.to_string());
            alert.route = ctx.route_id.as_deref().map(str::to_owned);
            alert.details = serde_json::json!({
                "window": window.name(),
                "limit": limit,
                "used": used,
                "resetsAt": crate::time::format_rfc3339(resets_at),
                "requestId": ctx.request_id.as_str(),
            });
            let random = ctx.request_id.bits().rotate_left(64) ^ (window.index() as u128 + 1);
            sink.emit(Event::new(random, ctx.received_ms, EventData::Alert(alert)));
        }
    }
}

/// The alert event of a change of a target's health (`target_down` or
/// `target_up`), for the log phase and the active checkers alike.
pub fn health_event(
    route_id: &str,
    target: &crate::routing::TargetUrl,
    change: &HealthChange,
    now_ms: u64,
    random: u128,
) -> Event {
    let (name, severity, verb) = if change.up {
        ("target_up", Severity::Info, "is back in service")
    } else {
        ("target_down", Severity::Critical, "is out of service")
    };
    let mut alert = AlertEvent::new(
        name,
        severity,
        format!(
            "target {target} of route \"{route_id}\" {verb}: {}",
            change.reason
        ),
    );
    alert.route = Some(route_id.to_owned());
    alert.details = serde_json::json!({
        "target": target.to_string(),
        "index": change.target,
        "reason": change.reason,
    });
    Event::new(random, now_ms, EventData::Alert(alert))
}

/// The count that raises `quota_almost_spent` for a window of `limit`
/// calls: `percent` of it, rounded up; none when off (0) or when it would
/// be the limit itself (`quota_spent` says it then).
fn almost_spent_at(limit: u64, percent: u8) -> Option<u64> {
    if percent == 0 {
        return None;
    }
    let at = (limit * u64::from(percent)).div_ceil(100).max(1);
    (at < limit).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::almost_spent_at;

    #[test]
    fn the_almost_spent_threshold_rounds_up_and_stays_below_the_limit() {
        assert_eq!(almost_spent_at(10, 80), Some(8));
        assert_eq!(almost_spent_at(3, 80), None);
        assert_eq!(almost_spent_at(5, 80), Some(4));
        assert_eq!(almost_spent_at(1000, 1), Some(10));
        assert_eq!(almost_spent_at(1, 50), None);
        assert_eq!(almost_spent_at(100, 0), None);
    }
}
