//! Request counters and latency histograms, kept per route.
//!
//! Every label has a fixed, small set of values (the route, the method
//! among eight, the status class, the outcome, the error code): nothing a
//! client sends becomes a label. Counters are plain atomics resolved once
//! per configuration change (each compiled route holds its own), so the
//! log phase adds a few relaxed increments to a request and takes no lock.
//! Adapters read them when scraped and render them (the native binary in
//! the Prometheus text format).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use http::Method;

/// The method label's values.
pub const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// The status class label's values.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The outcome label's values: the backend answered (`forwarded`), the
/// gateway refused the call (`refused`, the caller's fault), the backend
/// failed (`backend_error`) or the gateway did (`gateway_error`), or the
/// route answered itself (`answered`: a redirect, a static response).
pub const OUTCOMES: [&str; 5] = [
    "forwarded",
    "refused",
    "backend_error",
    "gateway_error",
    "answered",
];

/// Upper bounds of the latency histograms' buckets, in microseconds
/// (0.5 ms to 10 s); a last bucket takes the rest.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The index of `method` in [`METHODS`].
pub fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// The index of `status`'s class in [`STATUS_CLASSES`] (out-of-range
/// codes count as `5xx`).
pub fn status_class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// A latency histogram: per-bucket counts (not cumulative), sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts one observation of `us` microseconds.
    pub fn observe(&self, us: u64) {
        let i = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// Per-bucket counts (not cumulative), aligned with
    /// [`LATENCY_BOUNDS_US`] and a last, unbounded bucket.
    pub fn buckets(&self) -> [u64; LATENCY_BOUNDS_US.len() + 1] {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
    }

    /// The sum of the observations, in microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Relaxed)
    }
}

/// The counters of one route (or of the requests no route took).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// By method, status class and outcome.
    requests: [[[AtomicU64; OUTCOMES.len()]; STATUS_CLASSES.len()]; METHODS.len()],
    /// Answers the gateway gave itself, by error code
    /// ([`crate::GatewayError::CODES`]).
    errors: [AtomicU64; crate::GatewayError::CODES.len()],
    /// From arrival to the last byte of the answer.
    pub total: Histogram,
    /// The backend's time to its response head.
    pub backend: Histogram,
    /// The gateway's own time: total to the response head, less the
    /// backend's.
    pub overhead: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl RouteStats {
    /// Counts one request.
    pub(crate) fn count(&self, method: usize, class: usize, outcome: usize, error: Option<usize>) {
        self.requests[method][class][outcome].fetch_add(1, Relaxed);
        if let Some(code) = error {
            self.errors[code].fetch_add(1, Relaxed);
        }
    }

    /// Requests counted so far.
    pub(crate) fn requests_total(&self) -> u64 {
        self.requests
            .iter()
            .flatten()
            .flatten()
            .map(|n| n.load(Relaxed))
            .sum()
    }

    /// Adds body bytes received from the client and sent to it.
    pub(crate) fn add_bytes(&self, bytes_in: u64, bytes_out: u64) {
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Relaxed);
        }
    }

    /// Requests counted with these label indexes.
    pub fn requests(&self, method: usize, class: usize, outcome: usize) -> u64 {
        self.requests[method][class][outcome].load(Relaxed)
    }

    /// Answers given with the error code at `code`.
    pub fn errors(&self, code: usize) -> u64 {
        self.errors[code].load(Relaxed)
    }

    /// Body bytes received from clients.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Relaxed)
    }

    /// Body bytes sent to clients.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Relaxed)
    }
}

/// The counters of one API key (kept when `settings.metrics.perKey` is on).
#[derive(Debug, Default)]
pub struct KeyStats {
    /// By status class and outcome.
    requests: [[AtomicU64; OUTCOMES.len()]; STATUS_CLASSES.len()],
}

impl KeyStats {
    /// Counts one request.
    pub(crate) fn count(&self, class: usize, outcome: usize) {
        self.requests[class][outcome].fetch_add(1, Relaxed);
    }

    /// Requests counted with these label indexes.
    pub fn requests(&self, class: usize, outcome: usize) -> u64 {
        self.requests[class][outcome].load(Relaxed)
    }
}

/// Every route's counters, kept across configuration revisions (a route
/// keeps its counters while its id stays), and those of requests no
/// route took; likewise every key's.
#[derive(Debug, Default)]
pub struct Stats {
    /// By route id; looked up only when a revision is compiled.
    routes: Mutex<Vec<(Arc<str>, Arc<RouteStats>)>>,
    /// By client id; likewise.
    keys: Mutex<std::collections::HashMap<Arc<str>, Arc<KeyStats>>>,
    /// Requests answered before a route was found.
    pub unrouted: RouteStats,
}

impl Stats {
    /// The counters of route `id`: those kept, else `existing()`'s, else new.
    pub(crate) fn route(
        &self,
        id: &Arc<str>,
        existing: impl FnOnce() -> Option<Arc<RouteStats>>,
    ) -> Arc<RouteStats> {
        let mut routes = match self.routes.lock() {
            Ok(routes) => routes,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, stats)) = routes.iter().find(|(r, _)| r == id) {
            return stats.clone();
        }
        let stats = existing().unwrap_or_default();
        routes.push((id.clone(), stats.clone()));
        stats
    }

    /// The counters of key `id`: those kept, else `existing()`'s, else new.
    pub(crate) fn key(
        &self,
        id: &Arc<str>,
        existing: impl FnOnce() -> Option<Arc<KeyStats>>,
    ) -> Arc<KeyStats> {
        let mut keys = match self.keys.lock() {
            Ok(keys) => keys,
            Err(poisoned) => poisoned.into_inner(),
        };
        keys.entry(id.clone())
            .or_insert_with(|| existing().unwrap_or_default())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(0);
        h.observe(500);
        h.observe(501);
        h.observe(20_000_000);
        let b = h.buckets();
        assert_eq!(b[0], 2);
        assert_eq!(b[1], 1);
        assert_eq!(b[LATENCY_BOUNDS_US.len()], 1);
        assert_eq!(h.sum_us(), 20_001_001);
    }

    #[test]
    fn a_route_keeps_its_counters_by_id() {
        let stats = Stats::default();
        let id: Arc<str> = Arc::from("r1");
        let a = stats.route(&id, || None);
        a.count(0, 1, 0, None);
        let b = stats.route(&id, || None);
        assert_eq!(b.requests(0, 1, 0), 1);
    }
}
