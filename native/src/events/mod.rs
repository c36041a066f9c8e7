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

use komainu_core::events::{
    Event, EventData, EventQuery, EventSink, ExporterStatus, LogEntry, NotOffered,
};
use komainu_core::store::ConfigStore as _;
use komainu_core::Gateway;
use tokio::sync::{broadcast, mpsc};

use exporters::Exporters;

/// Batches waiting between the emitters and the dispatcher.
const CHANNEL: usize = 1_024;

/// Events a proxy worker gathers before handing them over (it also hands
/// over what it has every [`FLUSH_EVERY`]).
const BATCH: usize = 128;

/// How long an event may wait in a proxy worker's batch.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

thread_local! {
    /// A proxy worker's batch (`None` on other threads: they send at once).
    static PENDING: std::cell::RefCell<Option<Vec<Event>>> = const { std::cell::RefCell::new(None) };
}

/// Entries waiting to be written to the store's event log.
const ARCHIVE: usize = 4_096;

/// What reaches the dispatcher.
pub enum Batch {
    /// Events to keep, log, archive and export.
    Events(Vec<Event>),
    /// Events already kept (readable at once): to log, archive and export.
    Kept(Vec<Arc<Stored>>),
}

/// What the event tasks read.
pub struct Receivers {
    /// Every event, in batches, for [`dispatch`].
    pub events: mpsc::Receiver<Batch>,
    /// Audit events and alerts as log entries, for [`archive`].
    pub archive: mpsc::Receiver<String>,
}

/// Events a live stream reader may fall behind before it is dropped.
const LIVE_LAG: usize = 4_096;

/// The event sink of a running gateway (what the request path and the
/// admin API emit into).
pub struct Events {
    tx: mpsc::Sender<Batch>,
    /// Request events are built and dispatched (`--no-request-events` off).
    requests: bool,
    /// Events lost because the channel was full.
    dropped: AtomicU64,
    /// What the dispatcher feeds.
    pub hub: Arc<Hub>,
}

impl Events {
    /// A sink, and the receiving ends its tasks read: [`dispatch`] (every
    /// event) and [`archive`] (the entries for the store's event log).
    /// `source` names this instance in every event; `keep` recent events
    /// are kept in memory; `requests`: request events are built.
    pub fn new(
        source: String,
        keep: usize,
        exporters: Exporters,
        requests: bool,
    ) -> (Self, Receivers) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (archive_tx, archive_rx) = mpsc::channel(ARCHIVE);
        let (live, _) = broadcast::channel(LIVE_LAG);
        let hub = Arc::new(Hub {
            source,
            keep: keep.max(1),
            ring: Mutex::new(Ring::default()),
            live,
            exporters,
            emitted: Default::default(),
            archive: archive_tx,
            archive_dropped: AtomicU64::new(0),
        });
        let events = Self {
            tx,
            requests,
            dropped: AtomicU64::new(0),
            hub,
        };
        (
            events,
            Receivers {
                events: rx,
                archive: archive_rx,
            },
        )
    }

    /// Events lost because the dispatcher could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Makes the calling thread (a proxy worker) gather its events in
    /// batches: one hand-over per [`BATCH`] events instead of one per
    /// request. The thread must then call [`Events::flush`] every
    /// [`FLUSH_EVERY`].
    pub fn batch_on_this_thread() {
        PENDING.with(|p| *p.borrow_mut() = Some(Vec::with_capacity(BATCH)));
    }

    /// Hands over what this thread gathered.
    pub fn flush(&self) {
        let batch = PENDING.with(|p| {
            p.borrow_mut()
                .as_mut()
                .filter(|b| !b.is_empty())
                .map(|b| std::mem::replace(b, Vec::with_capacity(BATCH)))
        });
        if let Some(batch) = batch {
            self.send(batch);
        }
    }

    fn send(&self, batch: Vec<Event>) {
        let n = batch.len() as u64;
        if self.tx.try_send(Batch::Events(batch)).is_err() {
            self.dropped.fetch_add(n, Relaxed);
        }
    }
}

impl EventSink for Events {
    fn emit(&self, event: Event) {
        let mut event = Some(event);
        let full = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let batch = p.as_mut()?;
            batch.extend(event.take());
            (batch.len() >= BATCH).then(|| std::mem::replace(batch, Vec::with_capacity(BATCH)))
        });
        if let Some(batch) = full {
            self.send(batch);
        }
        // Not a proxy worker: at once. An audit event or an alert is kept
        // here, so that whoever made a change reads it in the very next
        // call; the dispatcher exports it (after following the change's
        // exporters).
        if let Some(event) = event {
            if matches!(event.data, EventData::Request(_)) {
                self.send(vec![event]);
            } else {
                let kept = self.hub.store(vec![event]);
                if self.tx.try_send(Batch::Kept(kept)).is_err() {
                    self.dropped.fetch_add(1, Relaxed);
                }
            }
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
        let stored = self.hub.store(vec![event]);
        Ok(stored
            .into_iter()
            .next()
            .is_some_and(|s| self.hub.exporters.offer_to(id, s)))
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
    pub kind: std::borrow::Cow<'static, str>,
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
    /// Audit events and alerts on their way to the store's event log.
    archive: mpsc::Sender<String>,
    /// Entries the store's event log could not take in time.
    archive_dropped: AtomicU64,
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

    /// Serializes events, keeps them and sends them to live readers.
    fn store(&self, events: Vec<Event>) -> Vec<Arc<Stored>> {
        let made: Vec<(Event, std::borrow::Cow<'static, str>, String)> = events
            .into_iter()
            .map(|event| {
                let family = match event.data {
                    EventData::Request(_) => 0,
                    EventData::Audit(_) => 1,
                    EventData::Alert(_) => 2,
                    EventData::Test(_) => 3,
                };
                self.emitted[family].fetch_add(1, Relaxed);
                let kind = event.type_name();
                let json = event.to_cloudevent(&self.source);
                (event, kind, json)
            })
            .collect();
        let live = self.live.receiver_count() > 0;
        let mut ring = lock(&self.ring);
        let mut stored = Vec::with_capacity(made.len());
        for (event, kind, json) in made {
            ring.next_seq += 1;
            let s = Arc::new(Stored {
                seq: ring.next_seq,
                event,
                kind,
                json,
            });
            if ring.items.len() >= self.keep {
                ring.items.pop_front();
            }
            ring.items.push_back(s.clone());
            if live {
                // A reader gone meanwhile is not an error.
                let _ = self.live.send(s.clone());
            }
            stored.push(s);
        }
        drop(ring);
        stored
    }

    /// Keeps, logs, archives and exports events.
    fn dispatch(&self, events: Vec<Event>) {
        let stored = self.store(events);
        self.deliver(&stored);
    }

    /// Logs, archives and exports events already kept.
    fn deliver(&self, stored: &[Arc<Stored>]) {
        for s in stored {
            match s.event.data {
                EventData::Request(_) => {}
                _ => log(s),
            }
            if LogEntry::is_kept(&s.event) {
                let entry = LogEntry::with_json(&s.event, &s.json);
                if self.archive.try_send(entry).is_err() {
                    self.archive_dropped.fetch_add(1, Relaxed);
                }
            }
        }
        self.exporters.offer(stored);
    }

    /// Audit events and alerts the store's event log could not take.
    pub fn archive_dropped(&self) -> u64 {
        self.archive_dropped.load(Relaxed)
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
                    .position(|s| s.event.id.as_str() == id)
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
    mut rx: mpsc::Receiver<Batch>,
    gateway: impl Fn() -> Option<Arc<Gateway>> + Send + 'static,
) {
    let mut batches = Vec::with_capacity(64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watch = watch::Watch::default();
    loop {
        let ticked = tokio::select! {
            n = rx.recv_many(&mut batches, 64) => {
                if n == 0 {
                    break;
                }
                false
            }
            _ = tick.tick() => true,
        };
        let mut events: Vec<Event> = Vec::new();
        let mut kept: Vec<Arc<Stored>> = Vec::new();
        for batch in batches.drain(..) {
            match batch {
                Batch::Events(e) => events.extend(e),
                Batch::Kept(k) => kept.extend(k),
            }
        }
        if let Some(gateway) = gateway() {
            hub.exporters.follow(&gateway);
            if ticked {
                events.extend(watch.tick(&gateway));
            }
        }
        if !kept.is_empty() {
            hub.deliver(&kept);
        }
        let raised: Vec<Event> = events.iter().filter_map(|e| watch.see(e)).collect();
        events.extend(raised);
        if !events.is_empty() {
            hub.dispatch(events);
        }
    }
    hub.exporters.stop_all();
}

/// Runs until the dispatcher is gone: writes audit events and alerts to
/// the configuration store's event log (shared by the instances on the
/// store, kept across restarts), in batches, off the dispatcher's way.
pub async fn archive(mut rx: mpsc::Receiver<String>, state: std::sync::Weak<crate::state::State>) {
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        let Some(state) = state.upgrade() else { return };
        if let Err(e) = state.config.append_events(&batch).await {
            tracing::warn!(
                error = %e,
                events = batch.len(),
                "audit events and alerts could not be written to the store's event log"
            );
        }
        batch.clear();
    }
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
