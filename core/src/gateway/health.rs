//! The health of a route's targets: the passive circuit breaker (fed by
//! the outcomes of real requests, on both deployments) and the verdict of
//! active checks (natively). A target's [`TargetHealth`] outlives
//! configuration revisions: a target that is down stays down when an
//! unrelated route changes.
//!
//! On the request path a healthy target costs one relaxed atomic load
//! ([`TargetHealth::available`]); the rest runs only when a target fails,
//! recovers, or is out.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

use crate::model::{CircuitBreaker, HealthCheck};

/// A breaker's rules, in the units the request path uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerRules {
    consecutive: u32,
    error_rate_percent: Option<u8>,
    minimum_requests: u32,
    window_ms: u64,
    pub(crate) open_ms: u64,
}

impl BreakerRules {
    pub(crate) fn of(b: &CircuitBreaker) -> Self {
        Self {
            consecutive: b.consecutive_failures,
            error_rate_percent: b.error_rate_percent,
            minimum_requests: b.minimum_requests,
            window_ms: u64::from(b.window_seconds) * 1000,
            open_ms: u64::from(b.open_seconds) * 1000,
        }
    }
}

/// A probe that never reported back (its request lost) stops blocking
/// others after this long.
const PROBE_LOST_MS: u64 = 60_000;

/// One target's health on this instance (or Worker isolate).
#[derive(Debug, Default)]
pub struct TargetHealth {
    /// When the circuit opened (Unix ms); 0 while it is closed.
    opened_at: AtomicU64,
    /// When the half-open probe left (Unix ms); 0 when none is out.
    probe_at: AtomicU64,
    /// Failed requests in a row.
    failures: AtomicU32,
    /// The error-rate window: its start (Unix ms), calls and failures.
    window_start: AtomicU64,
    window_calls: AtomicU32,
    window_failures: AtomicU32,
    /// Active checks say it is down.
    check_down: AtomicBool,
    /// What the health endpoint shows beyond the counters.
    record: Mutex<Record>,
}

/// The last things that happened to a target, for people.
#[derive(Debug, Default, Clone)]
struct Record {
    /// Why the circuit last opened.
    opened_because: Option<String>,
    /// Checks: good and failed in a row, the last one's time, status, error.
    check_passes: u32,
    check_failures: u32,
    last_check_ms: Option<u64>,
    last_check_status: Option<u16>,
    last_check_error: Option<String>,
    /// When the last change of state happened (Unix ms).
    changed_at: Option<u64>,
}

/// A change of a target's state: the alert to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthChange {
    /// The target's index in its route's backend.
    pub target: usize,
    /// Up again (`target_up`) or out (`target_down`).
    pub up: bool,
    /// What decided it, for the alert's message.
    pub reason: String,
}

impl TargetHealth {
    /// Whether the target takes traffic: its circuit is closed and the
    /// active checks (if any) pass.
    #[inline]
    pub fn available(&self) -> bool {
        self.opened_at.load(Relaxed) == 0 && !self.check_down.load(Relaxed)
    }

    /// For an open circuit whose cool-down is over: whether this request
    /// is the one half-open probe (only one is out at a time).
    pub(crate) fn try_probe(&self, now_ms: u64, open_ms: u64) -> bool {
        let opened = self.opened_at.load(Relaxed);
        if opened == 0 || self.check_down.load(Relaxed) || now_ms < opened + open_ms {
            return false;
        }
        let out = self.probe_at.load(Relaxed);
        if out != 0 && now_ms < out + PROBE_LOST_MS {
            return false;
        }
        self.probe_at
            .compare_exchange(out, now_ms.max(1), Relaxed, Relaxed)
            .is_ok()
    }

    /// Counts a request's outcome against the breaker: the change of
    /// state it caused, if any. `picked_ms`: when the request chose this
    /// target. Only the half-open probe (chosen once the probe left) ends
    /// the half-open state: a late answer to a request that left before
    /// the circuit opened neither closes nor reopens it.
    pub(crate) fn report(
        &self,
        index: usize,
        failed: bool,
        rules: &BreakerRules,
        picked_ms: u64,
        now_ms: u64,
    ) -> Option<HealthChange> {
        let probe_at = self.probe_at.load(Relaxed);
        let opened = self.opened_at.load(Relaxed);
        let was_probe = probe_at != 0 && opened != 0 && picked_ms.max(1) >= probe_at;
        if opened != 0 && !was_probe {
            // Out already: a request that left before it opened (or before
            // the probe) changes nothing.
            return None;
        }
        if !failed {
            if self.failures.load(Relaxed) != 0 {
                self.failures.store(0, Relaxed);
            }
            self.count_in_window(false, rules, now_ms);
            if was_probe {
                self.probe_at.store(0, Relaxed);
                self.opened_at.store(0, Relaxed);
                self.reset_window(now_ms);
                self.note(now_ms, |r| r.opened_because = None);
                return Some(HealthChange {
                    target: index,
                    up: true,
                    reason: "the half-open probe succeeded: the circuit is closed".into(),
                });
            }
            return None;
        }
        if was_probe {
            // Open again for another cool-down.
            self.opened_at.store(now_ms.max(1), Relaxed);
            self.probe_at.store(0, Relaxed);
            self.note(now_ms, |_| {});
            return None;
        }
        if self.opened_at.load(Relaxed) != 0 {
            return None; // already out (a request that left before it opened)
        }
        let in_a_row = self.failures.fetch_add(1, Relaxed) + 1;
        let rate = self.count_in_window(true, rules, now_ms);
        let reason = if rules.consecutive > 0 && in_a_row >= rules.consecutive {
            format!("{in_a_row} failures in a row")
        } else {
            rate?
        };
        if self
            .opened_at
            .compare_exchange(0, now_ms.max(1), Relaxed, Relaxed)
            .is_err()
        {
            return None; // another request opened it
        }
        self.failures.store(0, Relaxed);
        let reason = format!(
            "{reason}: the circuit is open for {} s",
            rules.open_ms / 1000
        );
        self.note(now_ms, |r| r.opened_because = Some(reason.clone()));
        Some(HealthChange {
            target: index,
            up: false,
            reason,
        })
    }

    /// Counts a call in the error-rate window (when the breaker has that
    /// rule); the reason to open when the rate is reached.
    fn count_in_window(&self, failed: bool, rules: &BreakerRules, now_ms: u64) -> Option<String> {
        let percent = rules.error_rate_percent?;
        if now_ms >= self.window_start.load(Relaxed) + rules.window_ms {
            self.reset_window(now_ms);
        }
        let calls = self.window_calls.fetch_add(1, Relaxed) + 1;
        let failures = if failed {
            self.window_failures.fetch_add(1, Relaxed) + 1
        } else {
            self.window_failures.load(Relaxed)
        };
        (failed
            && calls >= rules.minimum_requests
            && u64::from(failures) * 100 >= u64::from(percent) * u64::from(calls))
        .then(|| format!("{failures} of the last {calls} calls failed"))
    }

    fn reset_window(&self, now_ms: u64) {
        self.window_start.store(now_ms, Relaxed);
        self.window_calls.store(0, Relaxed);
        self.window_failures.store(0, Relaxed);
    }

    fn note(&self, now_ms: u64, change: impl FnOnce(&mut Record)) {
        if let Ok(mut r) = self.record.lock() {
            change(&mut r);
            r.changed_at = Some(now_ms);
        }
    }

    /// Records an active check's result (`status` when the target
    /// answered, else `error`): the change of state it caused, if any.
    pub fn record_check(
        &self,
        index: usize,
        check: &HealthCheck,
        status: Option<u16>,
        error: Option<String>,
        now_ms: u64,
    ) -> Option<HealthChange> {
        let passed = status.is_some_and(|s| {
            if check.expected_statuses.is_empty() {
                (200..400).contains(&s)
            } else {
                check.expected_statuses.contains(&s)
            }
        });
        let mut r = self.record.lock().ok()?;
        r.last_check_ms = Some(now_ms);
        r.last_check_status = status;
        r.last_check_error = match (&error, status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(s)) if !passed => Some(format!("answered {s}")),
            _ => None,
        };
        let down = self.check_down.load(Relaxed);
        if passed {
            r.check_failures = 0;
            r.check_passes = r.check_passes.saturating_add(1);
            if down && r.check_passes >= check.healthy_threshold {
                self.check_down.store(false, Relaxed);
                r.changed_at = Some(now_ms);
                return Some(HealthChange {
                    target: index,
                    up: true,
                    reason: format!("{} health checks passed in a row", r.check_passes),
                });
            }
        } else {
            r.check_passes = 0;
            r.check_failures = r.check_failures.saturating_add(1);
            if !down && r.check_failures >= check.unhealthy_threshold {
                self.check_down.store(true, Relaxed);
                r.changed_at = Some(now_ms);
                let why = r.last_check_error.clone().unwrap_or_default();
                return Some(HealthChange {
                    target: index,
                    up: false,
                    reason: format!(
                        "{} health checks failed in a row (last: {why})",
                        r.check_failures
                    ),
                });
            }
        }
        None
    }

    /// No check watches this target any more: their verdict is dropped.
    pub fn forget_checks(&self) {
        self.check_down.store(false, Relaxed);
        if let Ok(mut r) = self.record.lock() {
            r.check_passes = 0;
            r.check_failures = 0;
            r.last_check_ms = None;
            r.last_check_status = None;
            r.last_check_error = None;
        }
    }

    /// What the health endpoint shows of this target.
    pub(crate) fn report_view(&self, now_ms: u64, open_ms: u64) -> TargetHealthView {
        let opened = self.opened_at.load(Relaxed);
        let check_down = self.check_down.load(Relaxed);
        let r = self.record.lock().map(|r| r.clone()).unwrap_or_default();
        let breaker = if opened == 0 {
            "closed"
        } else if self.probe_at.load(Relaxed) != 0 || now_ms >= opened + open_ms {
            "halfOpen"
        } else {
            "open"
        };
        TargetHealthView {
            status: if check_down || opened != 0 {
                "down"
            } else {
                "up"
            },
            breaker,
            consecutive_failures: self.failures.load(Relaxed),
            opened_at: (opened != 0).then(|| crate::time::format_rfc3339(opened)),
            opened_because: r.opened_because,
            check: r.last_check_ms.map(|at| CheckView {
                passing: !check_down,
                last_at: crate::time::format_rfc3339(at),
                last_status: r.last_check_status,
                last_error: r.last_check_error,
            }),
            changed_at: r.changed_at.map(crate::time::format_rfc3339),
        }
    }
}

/// A target's health as `GET /api/routes/{id}/health` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealthView {
    /// `up` or `down`.
    pub status: &'static str,
    /// `closed`, `open` or `halfOpen`.
    pub breaker: &'static str,
    /// Failed requests in a row.
    pub consecutive_failures: u32,
    /// When the circuit opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<String>,
    /// Why it opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_because: Option<String>,
    /// The active checks, when they run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckView>,
    /// When the state last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<String>,
}

/// The last active check of a target.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    /// Whether the checks pass (the target is not down by them).
    pub passing: bool,
    /// When the last check ran.
    pub last_at: String,
    /// The status it got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(consecutive: u32, rate: Option<u8>) -> BreakerRules {
        BreakerRules {
            consecutive,
            error_rate_percent: rate,
            minimum_requests: 10,
            window_ms: 10_000,
            open_ms: 5_000,
        }
    }

    #[test]
    fn failures_in_a_row_open_the_circuit_and_one_probe_closes_it() {
        let h = TargetHealth::default();
        let r = rules(3, None);
        assert_eq!(h.report(0, true, &r, 1000, 1000), None);
        assert_eq!(h.report(0, false, &r, 1001, 1001), None, "a success resets");
        assert_eq!(h.report(0, true, &r, 1002, 1002), None);
        assert_eq!(h.report(0, true, &r, 1003, 1003), None);
        let opened = h.report(0, true, &r, 1004, 1004).expect("opens");
        assert!(!opened.up && opened.reason.contains("3 failures in a row"));
        assert!(!h.available());
        assert!(!h.try_probe(3000, r.open_ms), "cooling down");
        assert!(h.try_probe(6004, r.open_ms), "one probe");
        assert!(!h.try_probe(6005, r.open_ms), "only one");
        // The probe fails: open again, for another cool-down.
        assert_eq!(h.report(0, true, &r, 6010, 6010), None);
        assert!(!h.try_probe(8000, r.open_ms));
        assert!(h.try_probe(11_010, r.open_ms));
        let closed = h.report(0, false, &r, 11_020, 11_020).expect("closes");
        assert!(closed.up);
        assert!(h.available());
    }

    #[test]
    fn a_late_answer_from_before_the_circuit_opened_changes_nothing() {
        let h = TargetHealth::default();
        let r = rules(2, None);
        assert_eq!(h.report(0, true, &r, 1000, 1000), None);
        assert!(h.report(0, true, &r, 1001, 1001).is_some(), "opens");
        assert!(h.try_probe(6001, r.open_ms), "the probe leaves");
        // A request chosen before the circuit opened answers now: the
        // circuit stays half-open, waiting for its probe.
        assert_eq!(h.report(0, false, &r, 999, 6002), None);
        assert!(!h.available());
        assert_eq!(h.report(0, true, &r, 999, 6003), None, "nor reopens it");
        assert!(!h.try_probe(6004, r.open_ms), "the probe is still out");
        // The probe's own answer closes it.
        assert!(h.report(0, false, &r, 6001, 6005).expect("closes").up);
        assert!(h.available());
    }

    #[test]
    fn an_error_rate_opens_the_circuit_after_enough_calls() {
        let h = TargetHealth::default();
        let r = rules(0, Some(50));
        for i in 0..8 {
            assert_eq!(
                h.report(0, i % 2 == 0, &r, 100 + i, 100 + i),
                None,
                "call {i}"
            );
        }
        assert_eq!(h.report(0, false, &r, 110, 110), None);
        let opened = h.report(0, true, &r, 111, 111).expect("5 of 10 failed");
        assert!(
            opened.reason.contains("5 of the last 10"),
            "{}",
            opened.reason
        );
    }

    #[test]
    fn checks_take_a_target_down_and_back_after_their_thresholds() {
        let h = TargetHealth::default();
        let check: HealthCheck = serde_json::from_value(serde_json::json!({
            "healthyThreshold": 2, "unhealthyThreshold": 2, "expectedStatuses": [200]
        }))
        .expect("a check");
        assert_eq!(h.record_check(1, &check, Some(500), None, 1), None);
        let down = h
            .record_check(1, &check, None, Some("refused".into()), 2)
            .expect("down");
        assert!(!down.up && down.reason.contains("refused"));
        assert!(!h.available());
        assert_eq!(h.record_check(1, &check, Some(200), None, 3), None);
        assert!(
            h.record_check(1, &check, Some(200), None, 4)
                .expect("up")
                .up
        );
        assert!(h.available());
        let view = h.report_view(5, 1000);
        assert_eq!(view.status, "up");
        assert_eq!(view.check.expect("checked").last_status, Some(200));
    }
}
