//! Alerts the dispatcher raises from what it sees: refused keys that keep
//! coming, the stores going away and coming back, rotation grace periods
//! about to end. All of it runs on the dispatcher's task, off the request
//! path, from the events it handles and from counters it reads each second.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use komainu_core::events::alert::Severity;
use komainu_core::events::{AlertEvent, Event, EventData, Identity};
use komainu_core::Gateway;

use crate::random;
use crate::state::now_ms;
use crate::store::STORE_STATS;

/// Refusals of one claimed client id within [`WINDOW`] that raise
/// `key_refused_repeatedly`.
pub const REFUSALS: u32 = 10;
/// The window refusals are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Distinct claimed ids counted per window (more are not tracked).
const TRACKED: usize = 1_000;
/// How long before its end a rotation grace period is announced.
pub const GRACE_NOTICE_MS: u64 = 15 * 60 * 1000;

/// The dispatcher's alert state.
pub struct Watch {
    window_start: Instant,
    refused: HashMap<String, (u32, Option<String>)>,
    stores_healthy: bool,
    store_errors: u64,
    store_ok: u64,
    grace_announced: HashSet<(String, u64)>,
}

impl Default for Watch {
    fn default() -> Self {
        Self {
            window_start: Instant::now(),
            refused: HashMap::new(),
            stores_healthy: true,
            store_errors: STORE_STATS.errors(0) + STORE_STATS.errors(1),
            store_ok: STORE_STATS.ok(0) + STORE_STATS.ok(1),
            grace_announced: HashSet::new(),
        }
    }
}

impl Watch {
    /// Looks at one event: a refused credential counts against its
    /// claimed client id.
    pub fn see(&mut self, event: &Event) -> Option<Event> {
        let EventData::Request(r) = &event.data else {
            return None;
        };
        let Some(Identity::Refused { client_id }) = &r.identity else {
            return None;
        };
        if self.window_start.elapsed() >= WINDOW {
            self.window_start = Instant::now();
            self.refused.clear();
        }
        if !self.refused.contains_key(client_id) && self.refused.len() >= TRACKED {
            return None;
        }
        let entry = self.refused.entry(client_id.clone()).or_insert((0, None));
        entry.0 += 1;
        entry.1 = r.route_id.as_deref().map(str::to_owned);
        if entry.0 != REFUSALS {
            return None;
        }
        let mut alert = AlertEvent::new(
            "key_refused_repeatedly",
            Severity::Warning,
            format!(
                "{REFUSALS} calls refused in under {} s with credentials for client id \"{client_id}\" (unknown, disabled, expired or wrong secret)",
                WINDOW.as_secs()
            ),
        );
        alert.key = Some(client_id.clone());
        alert.route = entry.1.clone();
        alert.details = serde_json::json!({
            "refusals": REFUSALS,
            "windowSeconds": WINDOW.as_secs(),
            "lastRequestId": r.request_id.as_str(),
            "lastClientIp": r.client_ip,
        });
        Some(alert_event(alert))
    }

    /// Each second: the stores' health and rotation grace periods ending.
    pub fn tick(&mut self, gateway: &Gateway) -> Vec<Event> {
        let mut alerts = Vec::new();
        let errors = STORE_STATS.errors(0) + STORE_STATS.errors(1);
        let ok = STORE_STATS.ok(0) + STORE_STATS.ok(1);
        let failed = errors > self.store_errors;
        let succeeded = ok > self.store_ok;
        if self.stores_healthy && failed {
            self.stores_healthy = false;
            let why = STORE_STATS.last_error().unwrap_or_default();
            let mut alert = AlertEvent::new(
                "store_unavailable",
                Severity::Critical,
                format!("the store cannot be reached: {why}"),
            );
            alert.details =
                serde_json::json!({ "error": why, "failures": errors - self.store_errors });
            alerts.push(alert_event(alert));
        } else if !self.stores_healthy && succeeded && !failed {
            self.stores_healthy = true;
            let alert =
                AlertEvent::new("store_recovered", Severity::Info, "the store answers again");
            alerts.push(alert_event(alert));
        }
        self.store_errors = errors;
        self.store_ok = ok;

        for (client_id, at) in gateway
            .document()
            .rotations_ending(now_ms(), GRACE_NOTICE_MS)
        {
            if self.grace_announced.insert((client_id.to_owned(), at)) {
                let until = komainu_core::time::format_rfc3339(at);
                let mut alert = AlertEvent::new(
                    "rotation_grace_ending",
                    Severity::Info,
                    format!(
                        "the previous secret of API key \"{client_id}\" stops working at {until}: clients still using it will be refused"
                    ),
                );
                alert.key = Some(client_id.to_owned());
                alert.details = serde_json::json!({ "previousSecretExpiresAt": until });
                alerts.push(alert_event(alert));
            }
        }
        alerts
    }
}

fn alert_event(alert: AlertEvent) -> Event {
    Event::new(
        random::request_id().bits(),
        now_ms(),
        EventData::Alert(alert),
    )
}
