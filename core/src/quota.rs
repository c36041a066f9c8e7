//! Per-key quotas: per second, per UTC day, per UTC month.
//!
//! The core decides which counters a call bumps (one per limited window,
//! identified by the key, the window and the period number), when each
//! expires, and, from the counts the store returns, the verdict and the
//! headers. The store only performs the atomic conditional increment
//! described on [`crate::store::CounterStore::acquire`].

use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::model::Quotas;
use crate::text::{push_u64, with_scratch};
use crate::time::{next_month_start_ms, DAY_MS};

/// A quota window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// One second.
    Second,
    /// One UTC calendar day.
    Day,
    /// One UTC calendar month.
    Month,
}

impl Window {
    /// All windows, shortest first.
    pub const ALL: [Window; 3] = [Window::Second, Window::Day, Window::Month];

    /// Short name, used in counter keys and `RateLimit` headers.
    pub fn name(self) -> &'static str {
        match self {
            Window::Second => "second",
            Window::Day => "day",
            Window::Month => "month",
        }
    }

    /// Adjective for messages ("daily quota of …").
    pub fn adjective(self) -> &'static str {
        match self {
            Window::Second => "per-second",
            Window::Day => "daily",
            Window::Month => "monthly",
        }
    }

    /// Position of the window in [`Window::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The period holding `now_ms`: seconds, days or months since the epoch.
    pub fn period(self, now_ms: u64) -> u64 {
        match self {
            Window::Second => now_ms / 1000,
            Window::Day => now_ms / DAY_MS,
            Window::Month => {
                let d = crate::time::date_of(now_ms);
                (d.year as u64).saturating_sub(1970) * 12 + u64::from(d.month) - 1
            }
        }
    }

    /// When the period holding `now_ms` ends (Unix milliseconds).
    pub fn reset_ms(self, now_ms: u64) -> u64 {
        match self {
            Window::Second => (now_ms / 1000 + 1) * 1000,
            Window::Day => (now_ms / DAY_MS + 1) * DAY_MS,
            Window::Month => next_month_start_ms(now_ms),
        }
    }

    fn limit(self, quotas: &Quotas) -> Option<u64> {
        match self {
            Window::Second => quotas.per_second,
            Window::Day => quotas.per_day,
            Window::Month => quotas.per_month,
        }
    }
}

/// One counter to bump: a window of one key, its limit and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bump {
    /// The window.
    pub window: Window,
    /// The period number within the window ([`Window::period`]).
    pub period: u64,
    /// Calls allowed in the period.
    pub limit: u64,
    /// When the period ends (Unix ms); a store may drop the counter after it.
    pub resets_at_ms: u64,
}

impl Bump {
    /// The counter's name in a shared store: `{clientId}:{window}:{period}`
    /// (the braces are literal: a Redis Cluster hash tag, so all the
    /// counters of one key live on one shard and one script can bump them).
    pub fn counter_name(&self, client_id: &str) -> String {
        format!("{{{client_id}}}:{}:{}", self.window.name(), self.period)
    }

    /// The same counter stamped at `now_ms` instead (the store's clock,
    /// when it is the one that counts).
    pub fn at(&self, now_ms: u64) -> Self {
        Self {
            period: self.window.period(now_ms),
            resets_at_ms: self.window.reset_ms(now_ms),
            ..*self
        }
    }
}

/// The counters one call bumps, at most one per window, shortest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    bumps: [Bump; 3],
    len: usize,
}

impl Plan {
    /// The counters a call at `now_ms` bumps for these quotas.
    pub fn new(quotas: &Quotas, now_ms: u64) -> Self {
        let empty = Bump {
            window: Window::Second,
            period: 0,
            limit: 0,
            resets_at_ms: 0,
        };
        let mut plan = Plan {
            bumps: [empty; 3],
            len: 0,
        };
        for window in Window::ALL {
            if let Some(limit) = window.limit(quotas) {
                plan.bumps[plan.len] = Bump {
                    window,
                    period: window.period(now_ms),
                    limit,
                    resets_at_ms: window.reset_ms(now_ms),
                };
                plan.len += 1;
            }
        }
        plan
    }

    /// The bumps, shortest window first.
    pub fn bumps(&self) -> &[Bump] {
        &self.bumps[..self.len]
    }

    /// Whether no window is limited.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a counter store answers to an acquire: whether the call was
/// admitted, and each counter's count afterwards (aligned with the bumps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Acquired {
    /// `true`: every counter was below its limit and all were incremented.
    pub admitted: bool,
    /// Counts after the operation, in the order of the plan's bumps.
    pub counts: [u64; 3],
}

/// The counters of one key in a store that keeps them itself (memory, a
/// Durable Object): `(period, count)` per window, indexed by
/// [`Window::index`]. The one counter-window step every such store runs.
///
/// Counters never go back in time: a call stamped with a period older
/// than the one counted (clocks of two instances apart, or two calls
/// racing across a boundary) counts in the newer period, never replacing
/// it (which would let the window start over and admit past the limit).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterSlots(pub [(u64, u64); 3]);

impl CounterSlots {
    /// The period a bump counts in, and the count there so far.
    fn slot(&self, b: &Bump) -> (u64, u64) {
        let (period, count) = self.0[b.window.index()];
        match b.period.cmp(&period) {
            std::cmp::Ordering::Greater => (b.period, 0),
            std::cmp::Ordering::Equal | std::cmp::Ordering::Less => (period, count),
        }
    }

    /// The counts the bumps would see, without counting.
    pub fn peek(&self, bumps: &[Bump]) -> [u64; 3] {
        let mut counts = [0; 3];
        for (i, b) in bumps.iter().enumerate().take(3) {
            counts[i] = self.slot(b).1;
        }
        counts
    }

    /// Starts the bumps' windows over: their counts in the current
    /// periods go back to zero (a period itself never goes back).
    pub fn reset(&mut self, bumps: &[Bump]) {
        for b in bumps.iter().take(3) {
            let (period, _) = self.slot(b);
            self.0[b.window.index()] = (period, 0);
        }
    }

    /// Counts a call in every window, or in none when one is spent.
    pub fn acquire(&mut self, bumps: &[Bump]) -> Acquired {
        let mut acquired = Acquired::default();
        let mut admitted = true;
        for (i, b) in bumps.iter().enumerate().take(3) {
            let (_, count) = self.slot(b);
            acquired.counts[i] = count;
            admitted &= count < b.limit;
        }
        if admitted {
            for (i, b) in bumps.iter().enumerate().take(3) {
                let (period, _) = self.slot(b);
                acquired.counts[i] += 1;
                self.0[b.window.index()] = (period, acquired.counts[i]);
            }
        }
        acquired.admitted = admitted;
        acquired
    }
}

/// The quota state of one call: the verdict and what the headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaState {
    plan: Plan,
    counts: [u64; 3],
    admitted: bool,
    now_ms: u64,
}

impl QuotaState {
    /// Combines a plan with the store's answer.
    pub fn new(plan: Plan, acquired: Acquired, now_ms: u64) -> Self {
        Self {
            plan,
            counts: acquired.counts,
            admitted: acquired.admitted,
            now_ms,
        }
    }

    /// Whether the call may go on.
    pub fn admitted(&self) -> bool {
        self.admitted
    }

    /// Each limited window: the window, its limit, the calls left and when
    /// it resets (Unix ms).
    pub fn windows(&self) -> impl Iterator<Item = (Window, u64, u64, u64)> + '_ {
        self.plan.bumps().iter().zip(self.counts).map(|(b, count)| {
            (
                b.window,
                b.limit,
                b.limit.saturating_sub(count),
                b.resets_at_ms,
            )
        })
    }

    /// Calls left in `window`, if it is limited.
    pub fn remaining(&self, window: Window) -> Option<u64> {
        self.plan
            .bumps()
            .iter()
            .zip(self.counts)
            .find(|(b, _)| b.window == window)
            .map(|(b, count)| b.limit.saturating_sub(count))
    }

    /// For a refused call: the spent window that resets last (the real wait),
    /// its limit and the whole seconds until it resets (at least 1).
    pub fn exceeded(&self) -> Option<(Window, u64, u64)> {
        if self.admitted {
            return None;
        }
        self.plan
            .bumps()
            .iter()
            .zip(self.counts)
            .filter(|(b, count)| *count >= b.limit)
            .max_by_key(|(b, _)| b.resets_at_ms)
            .map(|(b, _)| (b.window, b.limit, self.seconds_until(b.resets_at_ms)))
    }

    fn seconds_until(&self, at_ms: u64) -> u64 {
        at_ms.saturating_sub(self.now_ms).div_ceil(1000).max(1)
    }

    /// Adds `Komainu-Daily-Calls-Remaining`, `Komainu-Monthly-Calls-Remaining`
    /// and the IETF `RateLimit-Policy` / `RateLimit` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        self.for_each_header(|name, value| {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.insert(name, v);
            }
        });
    }

    /// The headers of [`QuotaState::write_headers`], one by one (names in
    /// lower case), for adapters that write heads themselves.
    pub fn for_each_header(&self, emit: impl FnMut(&'static str, &[u8])) {
        with_scratch(|text| self.write_each_header(text, emit));
    }

    fn write_each_header(&self, text: &mut Vec<u8>, mut emit: impl FnMut(&'static str, &[u8])) {
        if let Some(r) = self.remaining(Window::Day) {
            push_u64(text, r);
            emit("komainu-daily-calls-remaining", text);
        }
        if let Some(r) = self.remaining(Window::Month) {
            text.clear();
            push_u64(text, r);
            emit("komainu-monthly-calls-remaining", text);
        }
        text.clear();
        for (i, b) in self.plan.bumps().iter().enumerate() {
            let period_s = match b.window {
                Window::Second => 1,
                Window::Day => 86_400,
                Window::Month => b.resets_at_ms.saturating_sub(month_start_ms(b)) / 1000,
            };
            push_item(text, i, b.window, ";q=", b.limit);
            text.extend_from_slice(b";w=");
            push_u64(text, period_s);
        }
        if !text.is_empty() {
            emit("ratelimit-policy", text);
        }
        text.clear();
        for (i, (b, count)) in self.plan.bumps().iter().zip(self.counts).enumerate() {
            push_item(text, i, b.window, ";r=", b.limit.saturating_sub(count));
            text.extend_from_slice(b";t=");
            push_u64(text, self.seconds_until(b.resets_at_ms));
        }
        if !text.is_empty() {
            emit("ratelimit", text);
        }
    }
}

/// Appends `, "window";key=value` (no comma for the first item).
fn push_item(text: &mut Vec<u8>, index: usize, window: Window, key: &str, value: u64) {
    if index > 0 {
        text.extend_from_slice(b", ");
    }
    text.push(b'"');
    text.extend_from_slice(window.name().as_bytes());
    text.push(b'"');
    text.extend_from_slice(key.as_bytes());
    push_u64(text, value);
}

fn month_start_ms(b: &Bump) -> u64 {
    let months = b.period;
    let (year, month) = (1970 + (months / 12) as i64, (months % 12) as u32 + 1);
    crate::time::days_from_civil(year, month, 1).max(0) as u64 * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn at(t: &str) -> u64 {
        parse_rfc3339(t).unwrap()
    }

    fn quotas(s: Option<u64>, d: Option<u64>, m: Option<u64>) -> Quotas {
        Quotas {
            per_second: s,
            per_day: d,
            per_month: m,
        }
    }

    #[test]
    fn day_window_rolls_over_at_utc_midnight() {
        let q = quotas(None, Some(10), None);
        let before = Plan::new(&q, at("2026-11-26T23:59:59.999Z"));
        let after = Plan::new(&q, at("2026-11-27T00:00:00Z"));
        assert_ne!(before.bumps()[0].period, after.bumps()[0].period);
        assert_eq!(before.bumps()[0].resets_at_ms, at("2026-11-27T00:00:00Z"));
        let same = Plan::new(&q, at("2026-11-27T00:30:00+01:00"));
        assert_eq!(same.bumps()[0].period, before.bumps()[0].period);
    }

    #[test]
    fn month_window_rolls_over_at_month_end() {
        let q = quotas(None, None, Some(10));
        let jan = Plan::new(&q, at("2027-01-31T23:59:59Z"));
        let feb = Plan::new(&q, at("2027-02-01T00:00:00Z"));
        assert_eq!(feb.bumps()[0].period, jan.bumps()[0].period + 1);
        assert_eq!(jan.bumps()[0].resets_at_ms, at("2027-02-01T00:00:00Z"));
        let dec = Plan::new(&q, at("2026-12-31T23:59:59Z"));
        assert_eq!(jan.bumps()[0].period, dec.bumps()[0].period + 1);
    }

    #[test]
    fn unlimited_windows_are_not_counted() {
        assert!(Plan::new(&Quotas::default(), 0).is_empty());
        let plan = Plan::new(&quotas(Some(1), None, Some(3)), 0);
        let windows: Vec<Window> = plan.bumps().iter().map(|b| b.window).collect();
        assert_eq!(windows, [Window::Second, Window::Month]);
    }

    #[test]
    fn verdict_and_headers() {
        let now = at("2026-11-26T23:59:30Z");
        let plan = Plan::new(&quotas(Some(5), Some(100), Some(1000)), now);
        let ok = QuotaState::new(
            plan,
            Acquired {
                admitted: true,
                counts: [1, 40, 400],
            },
            now,
        );
        let mut h = HeaderMap::new();
        ok.write_headers(&mut h);
        assert_eq!(h["komainu-daily-calls-remaining"], "60");
        assert_eq!(h["komainu-monthly-calls-remaining"], "600");
        assert_eq!(
            h["ratelimit-policy"],
            "\"second\";q=5;w=1, \"day\";q=100;w=86400, \"month\";q=1000;w=2592000"
        );
        assert_eq!(
            h["ratelimit"],
            "\"second\";r=4;t=1, \"day\";r=60;t=30, \"month\";r=600;t=345630"
        );
        assert_eq!(ok.exceeded(), None);

        let spent = QuotaState::new(
            plan,
            Acquired {
                admitted: false,
                counts: [5, 100, 400],
            },
            now,
        );
        // Both the second and the day are spent: the day resets last.
        assert_eq!(spent.exceeded(), Some((Window::Day, 100, 30)));
    }

    #[test]
    fn counters_never_go_back_in_time() {
        let q = quotas(None, Some(2), None);
        let mut slots = CounterSlots::default();
        let today = Plan::new(&q, at("2026-03-02T00:00:01Z"));
        let yesterday = Plan::new(&q, at("2026-03-01T23:59:59Z"));
        assert!(slots.acquire(today.bumps()).admitted);
        // A late call of yesterday counts today: it does not restart the day.
        assert!(slots.acquire(yesterday.bumps()).admitted);
        assert!(!slots.acquire(today.bumps()).admitted);
        assert!(!slots.acquire(yesterday.bumps()).admitted);
        assert_eq!(slots.peek(today.bumps())[0], 2);
        // A new day starts from zero.
        let tomorrow = Plan::new(&q, at("2026-03-03T00:00:00Z"));
        assert!(slots.acquire(tomorrow.bumps()).admitted);
        assert_eq!(slots.peek(tomorrow.bumps())[0], 1);
    }
}
