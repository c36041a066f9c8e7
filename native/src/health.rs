//! Active health checks: each target of a route with `healthCheck` is
//! polled by its own task (`GET` on the check's path every interval). The
//! results go to the target's health, which the request path reads; each
//! change of state is an alert (`target_down`, `target_up`). The tasks
//! follow the configuration: an unchanged check keeps running across
//! revisions, a changed one restarts, a removed one stops.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use komainu_core::events::EventSink as _;
use komainu_core::gateway::{health_event, HealthProbe};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin_client::{http_client, HttpClient};
use crate::state::{now_ms, State};

/// How often the configuration is looked at for new or changed checks.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Runs the health checks of the live configuration until shutdown.
pub async fn run(
    state: Weak<State>,
    tls: Arc<rustls::ClientConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let client = http_client(tls);
    let mut running: Vec<(HealthProbe, JoinHandle<()>)> = Vec::new();
    let mut revision = u64::MAX;
    let mut tick = tokio::time::interval(FOLLOW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let Some(gateway) = state.upgrade().map(|s| s.gateway.load_full()) else {
            break;
        };
        if gateway.revision() == revision {
            continue;
        }
        revision = gateway.revision();
        let wanted = gateway.health_probes();
        running.retain(|(probe, task)| {
            let keep = wanted.iter().any(|w| w.same_as(probe));
            if !keep {
                task.abort();
                // No check watches this target any more: the checks'
                // verdict no longer keeps it out.
                if !wanted.iter().any(|w| Arc::ptr_eq(&w.health, &probe.health)) {
                    probe.health.forget_checks();
                }
            }
            keep
        });
        for probe in wanted {
            if !running.iter().any(|(p, _)| p.same_as(&probe)) {
                let task = tokio::spawn(check(probe.clone(), client.clone(), state.clone()));
                running.push((probe, task));
            }
        }
    }
    for (_, task) in running {
        task.abort();
    }
}

/// Checks one target, forever.
async fn check(probe: HealthProbe, client: HttpClient, state: Weak<State>) {
    let interval = Duration::from_millis(probe.check.interval_ms);
    let timeout = Duration::from_millis(probe.check.timeout_ms);
    let Some(uri) = probe.uri() else {
        return;
    };
    loop {
        let request = http::Request::get(uri.clone())
            .header(http::header::HOST, probe.target.authority.as_str())
            .header(http::header::USER_AGENT, "komainu-health-check")
            .body(Full::new(Bytes::new()));
        let (status, error) = match request {
            Err(e) => (None, Some(e.to_string())),
            Ok(request) => match tokio::time::timeout(timeout, client.request(request)).await {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    // Read (a little of) the body so the connection can be reused.
                    let _ = tokio::time::timeout(timeout, response.into_body().collect()).await;
                    (Some(status), None)
                }
                Ok(Err(e)) => (None, Some(crate::upstream::root_cause(&e))),
                Err(_) => (
                    None,
                    Some(format!("no answer within {} ms", probe.check.timeout_ms)),
                ),
            },
        };
        let now = now_ms();
        if let Some(change) =
            probe
                .health
                .record_check(probe.index, &probe.check, status, error, now)
        {
            let Some(state) = state.upgrade() else {
                return;
            };
            tracing::warn!(
                route = %probe.route_id,
                target = %probe.target,
                up = change.up,
                reason = %change.reason,
                "target health changed"
            );
            state.events.emit(health_event(
                &probe.route_id,
                &probe.target,
                &change,
                now,
                crate::random::request_id().bits(),
            ));
        }
        tokio::time::sleep(interval).await;
    }
}
