//! The timeouts of an exchange with a backend: one definition for every
//! path (HTTP/1, HTTP/2 and the Worker), resolved per route once per
//! configuration (the route's `backend.timeouts`, else its `timeoutMs`
//! for the head and idle waits (the one timeout of earlier versions),
//! else `settings.timeouts`, else the defaults); each adapter enforces
//! them where it waits.
//!
//! - **connect**: opening a connection to a target (TCP, then TLS);
//! - **head**: from the request sent to the response head;
//! - **idle**: the longest gap while a body moves, either way;
//! - **total**: the whole exchange, from the request's arrival to the last
//!   byte of the answer. Every other wait is cut short by it.

use std::time::Duration;

use crate::model::{Backend, Settings};
use crate::GatewayError;

/// Default `connectMs`.
pub const DEFAULT_CONNECT_MS: u64 = 5_000;
/// Default `headMs`.
pub const DEFAULT_HEAD_MS: u64 = 30_000;
/// Default `idleMs`.
pub const DEFAULT_IDLE_MS: u64 = 30_000;

/// A route's timeouts, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect_ms: u64,
    /// Waiting for the response head.
    pub head_ms: u64,
    /// The longest gap in a body, either way.
    pub idle_ms: u64,
    /// The whole exchange, if bounded.
    pub total_ms: Option<u64>,
    /// The configuration names `idleMs` (or `timeoutMs`) or `totalMs` for
    /// this route: an adapter that otherwise hands a backend's body to its
    /// platform unwatched (the Worker) watches it then, chunk by chunk.
    pub body_watched: bool,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect_ms: DEFAULT_CONNECT_MS,
            head_ms: DEFAULT_HEAD_MS,
            idle_ms: DEFAULT_IDLE_MS,
            total_ms: None,
            body_watched: false,
        }
    }
}

/// Which timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// `connectMs`.
    Connect,
    /// `headMs`.
    Head,
    /// `idleMs`.
    Idle,
    /// `totalMs`.
    Total,
}

impl Timeout {
    /// Its field in `timeouts`.
    pub fn field(self) -> &'static str {
        match self {
            Timeout::Connect => "connectMs",
            Timeout::Head => "headMs",
            Timeout::Idle => "idleMs",
            Timeout::Total => "totalMs",
        }
    }

    /// What did not happen in time.
    pub fn what(self) -> &'static str {
        match self {
            Timeout::Connect => "no connection to the backend could be opened",
            Timeout::Head => "the backend sent no response head",
            Timeout::Idle => "the exchange with the backend stalled (no body byte moved)",
            Timeout::Total => "the exchange with the backend did not finish",
        }
    }
}

impl Timeouts {
    /// A route's timeouts.
    pub(crate) fn of(backend: &Backend, settings: &Settings) -> Self {
        let (route, shared) = (&backend.timeouts, &settings.timeouts);
        Self {
            connect_ms: route
                .connect_ms
                .or(shared.connect_ms)
                .unwrap_or(DEFAULT_CONNECT_MS),
            head_ms: route
                .head_ms
                .or(backend.timeout_ms)
                .or(shared.head_ms)
                .unwrap_or(DEFAULT_HEAD_MS),
            idle_ms: route
                .idle_ms
                .or(backend.timeout_ms)
                .or(shared.idle_ms)
                .unwrap_or(DEFAULT_IDLE_MS),
            total_ms: route.total_ms.or(shared.total_ms),
            body_watched: route.idle_ms.is_some()
                || backend.timeout_ms.is_some()
                || shared.idle_ms.is_some()
                || route.total_ms.is_some()
                || shared.total_ms.is_some(),
        }
    }

    /// The time a wait of kind `kind` may take, `elapsed` after the
    /// request arrived, and the timeout that decides it (`Total` when the
    /// whole exchange's end comes first).
    pub fn limit(&self, kind: Timeout, elapsed: Duration) -> (Duration, Timeout) {
        let own = Duration::from_millis(match kind {
            Timeout::Connect => self.connect_ms,
            Timeout::Head => self.head_ms,
            Timeout::Idle => self.idle_ms,
            Timeout::Total => return (self.remaining(elapsed), Timeout::Total),
        });
        match self.total_ms {
            Some(_) if self.remaining(elapsed) < own => (self.remaining(elapsed), Timeout::Total),
            _ => (own, kind),
        }
    }

    /// What is left of the whole exchange (a very long time when unbounded).
    pub fn remaining(&self, elapsed: Duration) -> Duration {
        match self.total_ms {
            Some(ms) => Duration::from_millis(ms).saturating_sub(elapsed),
            None => Duration::from_secs(86_400 * 365),
        }
    }

    /// The answer when `which` ran out (504 `gateway_timeout`).
    pub fn error(&self, which: Timeout) -> GatewayError {
        GatewayError::GatewayTimeout {
            timeout: which,
            timeout_ms: match which {
                Timeout::Connect => self.connect_ms,
                Timeout::Head => self.head_ms,
                Timeout::Idle => self.idle_ms,
                Timeout::Total => self.total_ms.unwrap_or(0),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_wins_over_settings_and_the_old_name_over_settings() {
        let backend: Backend = serde_json::from_value(serde_json::json!({
            "timeoutMs": 700, "timeouts": { "idleMs": 50 }
        }))
        .expect("a backend");
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "timeouts": { "connectMs": 200, "headMs": 9000, "idleMs": 9000, "totalMs": 1000 }
        }))
        .expect("settings");
        let t = Timeouts::of(&backend, &settings);
        assert_eq!(
            t,
            Timeouts {
                connect_ms: 200,
                head_ms: 700,
                idle_ms: 50,
                total_ms: Some(1000),
                body_watched: true,
            }
        );
        assert_eq!(
            Timeouts::of(&Backend::default(), &Settings::default()),
            Timeouts::default()
        );
        assert!(
            !Timeouts::default().body_watched,
            "the defaults are not named"
        );
        // The earlier single timeout bounds the head and the idle waits.
        let old: Backend =
            serde_json::from_value(serde_json::json!({ "timeoutMs": 700 })).expect("a backend");
        let t = Timeouts::of(&old, &settings);
        assert_eq!((t.head_ms, t.idle_ms), (700, 700));
    }

    #[test]
    fn the_total_cuts_other_waits_short_and_is_named_then() {
        let t = Timeouts {
            connect_ms: 100,
            head_ms: 500,
            idle_ms: 500,
            total_ms: Some(800),
            body_watched: true,
        };
        assert_eq!(
            t.limit(Timeout::Head, Duration::ZERO),
            (Duration::from_millis(500), Timeout::Head)
        );
        assert_eq!(
            t.limit(Timeout::Idle, Duration::from_millis(600)),
            (Duration::from_millis(200), Timeout::Total)
        );
        let e = t.error(Timeout::Idle).to_string();
        assert!(
            e.contains("stalled") && e.contains("500 ms") && e.contains("idleMs"),
            "{e}"
        );
    }
}
