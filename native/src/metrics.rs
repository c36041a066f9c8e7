//! `GET /metrics`: the Prometheus text format, rendered by the
//! `prometheus-client` crate from counters kept elsewhere (the core's
//! per-route [`komainu_core::stats`], the event hub, the exporters, the
//! stores). Nothing is computed per request here: a scrape reads atomics.
//!
//! Labels come only from the configuration (route ids, exporter ids) and
//! from fixed sets (method, status class, outcome, error code): a client
//! cannot add a series.

use std::sync::Arc;

use komainu_core::stats::{
    Histogram, KeyStats, RouteStats, LATENCY_BOUNDS_US, METHODS, OUTCOMES, STATUS_CLASSES,
};
use komainu_core::GatewayError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::events::FAMILIES;
use crate::state::State;
use crate::store::{STORES, STORE_STATS};

/// A scrape's text and its content type: OpenMetrics when the scraper
/// accepts it (Prometheus does), else the Prometheus text format 0.0.4.
pub fn render(
    state: &Arc<State>,
    accept: Option<&str>,
) -> Result<(String, &'static str), std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(state.clone())));
    let mut text = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        return Ok((text, OPENMETRICS));
    }
    Ok((to_text_format(&text), TEXT_FORMAT))
}

/// OpenMetrics 1.0.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text as the Prometheus text format 0.0.4: a counter's
/// `HELP` and `TYPE` name its samples (`x_total`), and there is no `# EOF`.
/// The samples themselves are the same.
fn to_text_format(openmetrics: &str) -> String {
    let mut counters: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            counters.push(name);
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

struct Scrape(Arc<State>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Route<'a> = (&'a str, &'a RouteStats);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let gateway = state.gateway.load_full();
        let mut routes: Vec<Route<'_>> = Vec::new();
        gateway.for_each_route_stats(|id, stats| routes.push((id, stats)));
        let unrouted: Route<'_> = ("", &gateway.stats().unrouted);
        let all: Vec<Route<'_>> = routes.iter().copied().chain([unrouted]).collect();

        requests(&mut encoder, &all)?;
        errors(&mut encoder, &all)?;
        for (name, help, pick) in [
            (
                "komainu_request_duration_seconds",
                "Time from a request's arrival to the last byte of its answer",
                (|s: &RouteStats| &s.total) as fn(&RouteStats) -> &Histogram,
            ),
            (
                "komainu_backend_duration_seconds",
                "Time from sending a request to the backend to its response head",
                |s: &RouteStats| &s.backend,
            ),
            (
                "komainu_gateway_overhead_seconds",
                "The gateway's own time per request: to the answer's head, less the backend's",
                |s: &RouteStats| &s.overhead,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (route, stats) in &all {
                let labels = [("route", route_label(route))];
                histogram(family.encode_family(&labels)?, pick(stats))?;
            }
        }
        for (name, help, pick) in [
            (
                "komainu_request_body_bytes",
                "Body bytes received from clients",
                (|s: &RouteStats| s.bytes_in()) as fn(&RouteStats) -> u64,
            ),
            (
                "komainu_response_body_bytes",
                "Body bytes sent to clients",
                |s: &RouteStats| s.bytes_out(),
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (route, stats) in &all {
                let labels = [("route", route_label(route))];
                ConstCounter::new(pick(stats)).encode(family.encode_family(&labels)?)?;
            }
        }

        {
            let mut family = encoder.encode_descriptor(
                "komainu_key_requests",
                "Requests per API key, by status class and outcome (settings.metrics.perKey)",
                None,
                MetricType::Counter,
            )?;
            let mut keys: Vec<(&str, &KeyStats)> = Vec::new();
            gateway.for_each_key_stats(|id, stats| keys.push((id, stats)));
            keys.sort_by(|a, b| a.0.cmp(b.0));
            for (key, stats) in keys {
                for (c, class) in STATUS_CLASSES.iter().enumerate() {
                    for (o, outcome) in OUTCOMES.iter().enumerate() {
                        let n = stats.requests(c, o);
                        if n > 0 {
                            let labels =
                                [("key", key), ("status_class", class), ("outcome", outcome)];
                            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                        }
                    }
                }
            }
        }
        events(&mut encoder, state)?;
        stores(&mut encoder)?;

        gauge(
            &mut encoder,
            "komainu_config_revision",
            "The configuration revision this instance serves",
            gateway.revision() as i64,
        )?;
        let mut info = encoder.encode_descriptor(
            "komainu_build_info",
            "The running build (always 1)",
            None,
            MetricType::Gauge,
        )?;
        let labels = [
            ("version", env!("CARGO_PKG_VERSION")),
            ("deployment", "native"),
        ];
        ConstGauge::new(1i64).encode(info.encode_family(&labels)?)?;
        Ok(())
    }
}

fn route_label(id: &str) -> &str {
    if id.is_empty() {
        "(none)"
    } else {
        id
    }
}

fn requests(encoder: &mut DescriptorEncoder<'_>, all: &[Route<'_>]) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "komainu_requests",
        "Requests, by route (\"(none)\" when no route took them), method, status class and outcome",
        None,
        MetricType::Counter,
    )?;
    for (route, stats) in all {
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                for (o, outcome) in OUTCOMES.iter().enumerate() {
                    let n = stats.requests(m, c, o);
                    if n == 0 {
                        continue;
                    }
                    let labels = [
                        ("route", route_label(route)),
                        ("method", method),
                        ("status_class", class),
                        ("outcome", outcome),
                    ];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
    }
    Ok(())
}

fn errors(encoder: &mut DescriptorEncoder<'_>, all: &[Route<'_>]) -> Result<(), std::fmt::Error> {
    let code = |name: &str| GatewayError::CODES.iter().position(|c| *c == name);
    {
        let mut family = encoder.encode_descriptor(
            "komainu_gateway_errors",
            "Answers the gateway gave itself, by route and error code",
            None,
            MetricType::Counter,
        )?;
        for (route, stats) in all {
            for (i, c) in GatewayError::CODES.iter().enumerate() {
                let n = stats.errors(i);
                if n > 0 {
                    let labels = [("route", route_label(route)), ("code", c)];
                    ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
                }
            }
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "komainu_quota_rejections",
            "Calls refused because a key's quota window was spent (429), by route",
            None,
            MetricType::Counter,
        )?;
        let spent = code("quota_exceeded").unwrap_or(0);
        for (route, stats) in all {
            let labels = [("route", route_label(route))];
            ConstCounter::new(stats.errors(spent)).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "komainu_auth_failures",
        "Calls refused for their credentials (401) or their key's rights (403), by route and reason",
        None,
        MetricType::Counter,
    )?;
    for (route, stats) in all {
        for reason in ["missing_credentials", "invalid_credentials", "forbidden"] {
            let n = code(reason).map_or(0, |i| stats.errors(i));
            let labels = [("route", route_label(route)), ("reason", reason)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn events(encoder: &mut DescriptorEncoder<'_>, state: &State) -> Result<(), std::fmt::Error> {
    let hub = &state.events.hub;
    {
        let mut family = encoder.encode_descriptor(
            "komainu_events",
            "Events dispatched, by family",
            None,
            MetricType::Counter,
        )?;
        for (i, f) in FAMILIES.iter().enumerate() {
            let labels = [("family", *f)];
            ConstCounter::new(hub.emitted(i)).encode(family.encode_family(&labels)?)?;
        }
    }
    let dropped = encoder.encode_descriptor(
        "komainu_events_dropped",
        "Events lost before dispatch (the dispatcher could not keep up)",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(state.events.dropped()).encode(dropped)?;
    let unkept = encoder.encode_descriptor(
        "komainu_event_log_dropped",
        "Audit events and alerts the store's event log could not take in time (they are still in the log and the exporters)",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(hub.archive_dropped()).encode(unkept)?;

    let statuses = hub.exporters.statuses();
    type Pick = fn(&komainu_core::events::ExporterStatus) -> u64;
    for (name, help, kind, pick) in [
        (
            "komainu_exporter_queued",
            "Events waiting in an exporter's queue",
            MetricType::Gauge,
            (|s| s.queued) as Pick,
        ),
        (
            "komainu_exporter_sent",
            "Events an exporter delivered",
            MetricType::Counter,
            |s| s.sent,
        ),
        (
            "komainu_exporter_dropped",
            "Events an exporter dropped (queue full, or retries past the limit)",
            MetricType::Counter,
            |s| s.dropped,
        ),
        (
            "komainu_exporter_failures",
            "Failed delivery attempts",
            MetricType::Counter,
            |s| s.failures,
        ),
        (
            "komainu_exporter_retrying",
            "1 while an exporter retries a failing delivery",
            MetricType::Gauge,
            |s| u64::from(s.retrying),
        ),
    ] {
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for (id, exporter_kind, status) in &statuses {
            let labels = [("exporter", id.as_str()), ("kind", exporter_kind)];
            let value = pick(status);
            match kind {
                MetricType::Gauge => {
                    ConstGauge::new(value as i64).encode(family.encode_family(&labels)?)?
                }
                _ => ConstCounter::new(value).encode(family.encode_family(&labels)?)?,
            }
        }
    }
    Ok(())
}

fn stores(encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    {
        let mut family = encoder.encode_descriptor(
            "komainu_store_operations",
            "Operations on stores outside the process (a file, Redis), by store and result",
            None,
            MetricType::Counter,
        )?;
        for (i, store) in STORES.iter().enumerate() {
            for (result, n) in [("ok", STORE_STATS.ok(i)), ("error", STORE_STATS.errors(i))] {
                let labels = [("store", *store), ("result", result)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let mut family = encoder.encode_descriptor(
        "komainu_store_duration_seconds",
        "Time of operations on stores outside the process",
        None,
        MetricType::Histogram,
    )?;
    for (i, store) in STORES.iter().enumerate() {
        let labels = [("store", *store)];
        histogram(family.encode_family(&labels)?, &STORE_STATS.latency[i])?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

fn histogram(
    mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    h: &Histogram,
) -> Result<(), std::fmt::Error> {
    let counts = h.buckets();
    let buckets: Vec<(f64, u64)> = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let bound = LATENCY_BOUNDS_US
                .get(i)
                .map_or(f64::MAX, |&us| us as f64 / 1e6);
            (bound, n)
        })
        .collect();
    let count = counts.iter().sum();
    encoder.encode_histogram::<NoLabelSet>(h.sum_us() as f64 / 1e6, count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::to_text_format;

    #[test]
    fn counters_are_named_by_their_samples_in_the_text_format() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            to_text_format(om),
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 2\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
