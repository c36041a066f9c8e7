//! The native event pipeline.
//!
//! ```text
//! request path, admin API ──emit──▶ bounded channel ──▶ dispatcher task ──▶ ring of recent events (GET /api/events)
//!        (try_send: a full channel                       (CloudEvents JSON,  ├─▶ live stream readers (SSE)
//!         is a counted drop)                              once per event)    └─▶ each exporter's bounded queue ──▶ its task
//! ```
//!
//! The proxy never waits on any of it: emitting is a `try_send`, and
//! everything after the channel runs on the admin runtime. A full channel,
//! a full exporter queue or a stream reader that falls behind costs the
//! proxy nothing but a counted drop.

pub mod exporters;
pub mod stream;
pub mod watch;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use komainu_core::events::{Event, EventData, EventQuery, EventSink, ExporterStatus, NotOffered};
use komainu_core::Gateway;
use tokio::sync::{broadcast, mpsc};

use exporters::Exporters;

/// Events waiting between the emitters and the dispatcher.
const CHANNEL: usize = 65_536;

/// Events a live stream reader may fall behind before it is dropped.
const LIVE_LAG: usize = 4_096;

/// The event sink of a running gateway (what the request path and the
/// admin API emit into).
pub struct Events {
    tx: mpsc::Sender<Event>,
    /// Request events are built and dispatched (`--no-request-events` off).
    requests: bool,
    /// Events lost because the channel was full.
    dropped: AtomicU64,
    /// What the dispatcher feeds.
    pub hub: Arc<Hub>,
}

impl Events {
    /// A sink, and the receiving end its dispatcher ([`dispatch`]) reads.
    /// `source` names this instance in every event; `keep` recent events
    /// are kept in memory.
    pub fn new(
        source: String,
        keep: usize,
        exporters: Exporters,
        requests: bool,
    ) -> (Self, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (live, _) = broadcast::channel(LIVE_LAG);
        let hub = Arc::new(Hub {
            source,
            keep: keep.max(1),
            ring: Mutex::new(Ring::default()),
            live,
            exporters,
            emitted: Default::default(),
        });
        let events = Self {
            tx,
            requests,
            dropped: AtomicU64::new(0),
            hub,
        };
        (events, rx)
    }

    /// Events lost because the dispatcher could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

impl EventSink for Events {
    fn emit(&self, event: Event) {
        if self.tx.try_send(event).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    fn wants_request_events(&self) -> bool {
        self.requests
    }

    fn recent(&self, query: &EventQuery) -> Result<Vec<String>, NotOffered> {
        Ok(self.hub.recent(query))
    }

    fn exporter_status(&self, id: &str) -> Result<Option<ExporterStatus>, NotOffered> {
        Ok(self.hub.exporters.status(id))
    }

    fn test_exporter(&self, id: &str, event: Event) -> Result<bool, NotOffered> {
        if !self.hub.exporters.is_running(id) {
            return Ok(false);
        }
        let stored = self.hub.store(event);
        Ok(self.hub.exporters.offer_to(id, stored))
    }
}

/// One event as kept and sent: the event, its type, its CloudEvents JSON
/// (made once), and its place in this instance's sequence.
#[derive(Debug)]
pub struct Stored {
    /// Position in this instance's sequence (1, 2, …).
    pub seq: u64,
    /// The event.
    pub event: Event,
    /// Its CloudEvents type.
    pub kind: String,
    /// Its CloudEvents JSON.
    pub json: String,
}

#[derive(Default)]
struct Ring {
    items: VecDeque<Arc<Stored>>,
    next_seq: u64,
}

/// Recent events, live readers and exporters.
pub struct Hub {
    source: String,
    keep: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<Stored>>,
    /// The exporters running on this instance.
    pub exporters: Exporters,
    /// Events dispatched, by family (request, audit, alert, test).
    emitted: [AtomicU64; 4],
}

/// The event families, in the order of [`Hub::emitted`].
pub const FAMILIES: [&str; 4] = ["request", "audit", "alert", "test"];

impl Hub {
    /// The `source` of this instance's events.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Events dispatched so far in `family` (an index in [`FAMILIES`]).
    pub fn emitted(&self, family: usize) -> u64 {
        self.emitted[family].load(Relaxed)
    }

    /// Serializes an event, keeps it and sends it to live readers.
    fn store(&self, event: Event) -> Arc<Stored> {
        let family = match event.data {
            EventData::Request(_) => 0,
            EventData::Audit(_) => 1,
            EventData::Alert(_) => 2,
            EventData::Test(_) => 3,
        };
        self.emitted[family].fetch_add(1, Relaxed);
        let kind = event.type_name().into_owned();
        let json = event.to_cloudevent(&self.source);
        let mut ring = lock(&self.ring);
        ring.next_seq += 1;
        let stored = Arc::new(Stored {
            seq: ring.next_seq,
            event,
            kind,
            json,
        });
        if ring.items.len() >= self.keep {
            ring.items.pop_front();
        }
        ring.items.push_back(stored.clone());
        // No reader is not an error.
        let _ = self.live.send(stored.clone());
        drop(ring);
        stored
    }

    /// Keeps, logs and exports one event.
    fn dispatch(&self, event: Event) {
        let is_request = matches!(event.data, EventData::Request(_));
        let stored = self.store(event);
        if !is_request {
            log(&stored);
        }
        self.exporters.offer(&stored);
    }

    /// The most recent events the query asks for, oldest first, as JSON.
    pub fn recent(&self, query: &EventQuery) -> Vec<String> {
        let ring = lock(&self.ring);
        let mut found: Vec<String> = ring
            .items
            .iter()
            .rev()
            .filter(|s| query.accepts(&s.event, &s.kind))
            .take(query.limit)
            .map(|s| s.json.clone())
            .collect();
        found.reverse();
        found
    }

    /// Subscribes to live events, and returns those kept after the event
    /// `last_id` (all kept ones when it is no longer kept; none without it).
    pub fn resume(
        &self,
        last_id: Option<&str>,
    ) -> (Vec<Arc<Stored>>, broadcast::Receiver<Arc<Stored>>) {
        let ring = lock(&self.ring);
        // Subscribed under the lock: nothing falls between the two.
        let live = self.live.subscribe();
        let backlog = match last_id {
            None => Vec::new(),
            Some(id) => {
                let after = ring
                    .items
                    .iter()
                    .position(|s| s.event.id == id)
                    .map_or(0, |i| i + 1);
                ring.items.iter().skip(after).cloned().collect()
            }
        };
        (backlog, live)
    }
}

/// Runs until every sender is gone: serializes each event once, keeps it,
/// sends it to live readers and to the exporters that want it; logs audit
/// events and alerts. Follows the configuration's exporters (checked on
/// every batch and every second).
pub async fn dispatch(
    hub: Arc<Hub>,
    mut rx: mpsc::Receiver<Event>,
    gateway: impl Fn() -> Option<Arc<Gateway>> + Send + 'static,
) {
    let mut batch = Vec::with_capacity(256);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = watch::Watch::default();
    loop {
        let ticked = tokio::select! {
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    break;
                }
                false
            }
            _ = tick.tick() => true,
        };
        if let Some(gateway) = gateway() {
            hub.exporters.follow(&gateway);
            if ticked {
                batch.extend(watch.tick(&gateway));
            }
        }
        for event in batch.drain(..) {
            let raised = watch.see(&event);
            hub.dispatch(event);
            if let Some(alert) = raised {
                hub.dispatch(alert);
            }
        }
    }
    hub.exporters.stop_all();
}

/// Audit events and alerts also go to the log, one JSON line each.
fn log(stored: &Stored) {
    match stored.event.data {
        EventData::Audit(_) => tracing::info!(target: "komainu::audit", "{}", stored.json),
        EventData::Alert(ref a) => match a.severity {
            komainu_core::events::alert::Severity::Info => {
                tracing::info!(target: "komainu::alert", "{}", stored.json)
            }
            _ => tracing::warn!(target: "komainu::alert", "{}", stored.json),
        },
        _ => {}
    }
}

/// Locks a mutex, going on with the data when a holder panicked (every
/// critical section here leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `source` of this instance's events: `/komainu/{name}`, the name
/// given or the host's.
pub fn source(name: Option<&str>) -> String {
    let name = name.map(str::to_owned).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "native".into())
    });
    format!("/komainu/{name}")
}
