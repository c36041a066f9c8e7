//! The native event pipeline.
//!
//! ```text
//! request path ──write──▶ its worker's chunk ─┐
//!   (CloudEvents JSON, one line each)         ├─▶ bounded channel ──▶ dispatcher task ──▶ ring of recent events (GET /api/events)
//! admin API, alerts ─────▶ a chunk of one ────┘   (try_send: a full           ├─▶ live stream readers (SSE)
//!                                                  channel is a counted drop)  └─▶ each exporter's bounded queue ──▶ its task
//! ```
//!
//! A proxy worker writes each request event's JSON once, by hand, at the
//! end of its buffer (a [`Chunk`]), and hands the chunk over every
//! [`BATCH`] events or [`FLUSH_EVERY`]. From there on, events are never
//! copied or serialized again: the ring, the live readers and the
//! exporters' queues hold references into shared chunks, and a file
//! exporter writes a chunk's lines as they lie.
//!
//! The proxy never waits on any of it: handing over is a `try_send`, and
//! everything after the channel runs on the admin runtime. A full channel,
//! a full exporter queue or a stream reader that falls behind costs the
//! proxy nothing but a counted drop.

pub mod exporters;
pub mod stream;
pub mod watch;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use komainu_core::events::{
    Event, EventData, EventQuery, EventSink, ExporterStatus, Identity, LogEntry, NotOffered,
};
use komainu_core::gateway::RequestId;
use komainu_core::store::ConfigStore as _;
use komainu_core::Gateway;
use tokio::sync::{broadcast, mpsc};

use exporters::Exporters;

/// Batches waiting between the emitters and the dispatcher.
const CHANNEL: usize = 1_024;

/// Events a proxy worker gathers before handing them over (it also hands
/// over what it has every [`FLUSH_EVERY`]).
const BATCH: usize = 512;

/// How long an event may wait in a proxy worker's batch.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// Bytes a chunk's lines are given room for at first (request events
/// are about a kilobyte each).
const CHUNK_BYTES: usize = BATCH * 1_024;

thread_local! {
    /// A proxy worker's chunk in the making (`None` on other threads: they
    /// send at once).
    static PENDING: std::cell::RefCell<Option<Chunk>> = const { std::cell::RefCell::new(None) };
}

/// Entries waiting to be written to the store's event log.
const ARCHIVE: usize = 4_096;

/// What reaches the dispatcher.
pub enum Batch {
    /// Events to keep, log, archive and export.
    Chunk(Chunk),
    /// Events already kept (readable at once): to log, archive and export.
    Kept(Vec<Stored>),
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
    /// chunks: one hand-over per [`BATCH`] events instead of one per
    /// request. The thread must then call [`Events::flush`] every
    /// [`FLUSH_EVERY`].
    pub fn batch_on_this_thread() {
        PENDING.with(|p| *p.borrow_mut() = Some(Chunk::with_capacity(BATCH, CHUNK_BYTES)));
    }

    /// Hands over what this thread gathered.
    pub fn flush(&self) {
        let chunk = PENDING.with(|p| {
            p.borrow_mut().as_mut().filter(|c| !c.is_empty()).map(|c| {
                let next = c.next();
                std::mem::replace(c, next)
            })
        });
        if let Some(chunk) = chunk {
            self.send(chunk);
        }
    }

    fn send(&self, chunk: Chunk) {
        let n = chunk.len() as u64;
        if self.tx.try_send(Batch::Chunk(chunk.fitted())).is_err() {
            self.dropped.fetch_add(n, Relaxed);
        }
    }
}

impl EventSink for Events {
    fn emit(&self, event: Event) {
        let mut event = Some(event);
        let full = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            let chunk = p.as_mut()?;
            chunk.push(event.take()?, &self.hub.source);
            (chunk.len() >= BATCH).then(|| {
                let next = chunk.next();
                std::mem::replace(chunk, next)
            })
        });
        if let Some(chunk) = full {
            self.send(chunk);
        }
        // Not a proxy worker: at once. An audit event or an alert is kept
        // here, so that whoever made a change reads it in the very next
        // call; the dispatcher exports it (after following the change's
        // exporters).
        if let Some(event) = event {
            let chunk = Chunk::of(vec![event], &self.hub.source);
            if chunk.entries.iter().any(|e| e.family == Family::Request) {
                self.send(chunk);
            } else {
                let kept = self.hub.keep(chunk);
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
        let stored = self.hub.keep(Chunk::of(vec![event], &self.hub.source));
        Ok(stored
            .into_iter()
            .next()
            .is_some_and(|s| self.hub.exporters.offer_to(id, s)))
    }
}

/// The event families, in the order of [`Hub::emitted`] and [`FAMILIES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Request = 0,
    Audit = 1,
    Alert = 2,
    Test = 3,
}

/// Events written together: a proxy worker's request events of a few
/// milliseconds, or the events emitted at once elsewhere.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Their CloudEvents JSON, one line each (`\n` after each).
    lines: String,
    /// Each event's place in `lines`, and what filters read.
    entries: Vec<Entry>,
    /// The route ids and client ids the entries name.
    names: String,
}

#[derive(Debug)]
struct Entry {
    id: RequestId,
    family: Family,
    kind: Cow<'static, str>,
    /// Its JSON in `lines` (without the newline).
    line: Range<usize>,
    /// The route it is about, in `names`.
    route: Option<Range<usize>>,
    /// The API key it is about, in `names`.
    key: Option<Range<usize>>,
    /// The event itself, kept when more than its JSON is read: audit
    /// events and alerts (logged, archived), refused calls (watched).
    event: Option<Box<Event>>,
}

impl Chunk {
    fn with_capacity(events: usize, bytes: usize) -> Self {
        Self {
            lines: String::with_capacity(bytes),
            entries: Vec::with_capacity(events),
            names: String::new(),
        }
    }

    /// The events, written.
    fn of(events: Vec<Event>, source: &str) -> Self {
        let mut chunk = Self::with_capacity(events.len(), events.len() * 1_024);
        for event in events {
            chunk.push(event, source);
        }
        chunk
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes one event at the end.
    fn push(&mut self, event: Event, source: &str) {
        let start = self.lines.len();
        event.write_cloudevent(source, &mut self.lines);
        let line = start..self.lines.len();
        self.lines.push('\n');
        let route = event.route().map(|r| Self::name(&mut self.names, r));
        let key = event.key().map(|k| Self::name(&mut self.names, k));
        let (family, keep) = match &event.data {
            EventData::Request(r) => (
                Family::Request,
                matches!(r.identity, Some(Identity::Refused { .. })),
            ),
            EventData::Audit(_) => (Family::Audit, true),
            EventData::Alert(_) => (Family::Alert, true),
            EventData::Test(_) => (Family::Test, true),
        };
        self.entries.push(Entry {
            id: event.id,
            family,
            kind: event.type_name(),
            line,
            route,
            key,
            event: keep.then(|| Box::new(event)),
        });
    }

    /// An empty chunk to follow this one: room for twice what this one
    /// held (a full chunk's worth under load, a few events' when quiet).
    fn next(&self) -> Self {
        Self::with_capacity(
            (2 * self.len()).clamp(8, BATCH),
            (2 * self.lines.len()).clamp(8 * 1_024, CHUNK_BYTES),
        )
    }

    /// The chunk, holding no more memory than its events need when they
    /// fill less than a quarter of it (a chunk handed over after a quiet
    /// moment may be kept as long as the ring keeps one of its events).
    fn fitted(mut self) -> Self {
        if self.lines.capacity() > 4 * self.lines.len() {
            self.lines.shrink_to_fit();
            self.entries.shrink_to_fit();
        }
        self
    }

    fn name(names: &mut String, name: &str) -> Range<usize> {
        let start = names.len();
        names.push_str(name);
        start..names.len()
    }
}

/// One event as kept and sent: a reference to its chunk (cheap to clone),
/// and its place in this instance's sequence.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Position in this instance's sequence (1, 2, …).
    pub seq: u64,
    chunk: Arc<Chunk>,
    index: usize,
}

impl Stored {
    fn entry(&self) -> &Entry {
        &self.chunk.entries[self.index]
    }

    /// The event's id.
    pub fn id(&self) -> &str {
        self.entry().id.as_str()
    }

    /// Its CloudEvents type.
    pub fn kind(&self) -> &str {
        &self.entry().kind
    }

    /// Its CloudEvents JSON.
    pub fn json(&self) -> &str {
        &self.chunk.lines[self.entry().line.clone()]
    }

    /// The route it is about.
    pub fn route(&self) -> Option<&str> {
        self.entry().route.clone().map(|r| &self.chunk.names[r])
    }

    /// The API key it is about.
    pub fn key(&self) -> Option<&str> {
        self.entry().key.clone().map(|r| &self.chunk.names[r])
    }

    /// The event, when it is kept beside its JSON (audit events, alerts,
    /// test events and refused calls).
    pub fn event(&self) -> Option<&Event> {
        self.entry().event.as_deref()
    }

    /// Whether `query` asks for it.
    pub fn accepted_by(&self, query: &EventQuery) -> bool {
        query.accepts_parts(self.kind(), self.route(), self.key())
    }

    /// The JSON lines of consecutive events, each run of a chunk as one
    /// slice (events written together are read together).
    pub fn lines(batch: &[Stored]) -> Vec<&[u8]> {
        let mut runs: Vec<&[u8]> = Vec::new();
        let mut i = 0;
        while i < batch.len() {
            let first = &batch[i];
            let mut last = first.index;
            let mut j = i + 1;
            while j < batch.len()
                && Arc::ptr_eq(&batch[j].chunk, &first.chunk)
                && batch[j].index == last + 1
            {
                last = batch[j].index;
                j += 1;
            }
            let start = first.chunk.entries[first.index].line.start;
            // The line's end, and its newline.
            let end = first.chunk.entries[last].line.end + 1;
            runs.push(&first.chunk.lines.as_bytes()[start..end]);
            i = j;
        }
        runs
    }
}

#[derive(Default)]
struct Ring {
    items: VecDeque<Stored>,
    next_seq: u64,
}

/// Recent events, live readers and exporters.
pub struct Hub {
    source: String,
    keep: usize,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Stored>,
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

    /// Keeps a chunk's events and sends them to live readers.
    fn keep(&self, chunk: Chunk) -> Vec<Stored> {
        for e in &chunk.entries {
            self.emitted[e.family as usize].fetch_add(1, Relaxed);
        }
        let n = chunk.entries.len();
        let chunk = Arc::new(chunk);
        let live = self.live.receiver_count() > 0;
        let mut stored = Vec::with_capacity(n);
        let mut ring = lock(&self.ring);
        for index in 0..n {
            ring.next_seq += 1;
            let s = Stored {
                seq: ring.next_seq,
                chunk: chunk.clone(),
                index,
            };
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

    /// Keeps, logs, archives and exports a chunk's events.
    fn dispatch(&self, chunk: Chunk) {
        let stored = self.keep(chunk);
        self.deliver(&stored);
    }

    /// Logs, archives and exports events already kept.
    fn deliver(&self, stored: &[Stored]) {
        for s in stored {
            let Some(event) = s.event() else { continue };
            if LogEntry::is_kept(event) {
                log(event, s.json());
                let entry = LogEntry::with_json(event, s.json());
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
            .filter(|s| s.accepted_by(query))
            .take(query.limit)
            .map(|s| s.json().to_owned())
            .collect();
        found.reverse();
        found
    }

    /// Subscribes to live events, and returns those kept after the event
    /// `last_id` (all kept ones when it is no longer kept; none without it).
    pub fn resume(&self, last_id: Option<&str>) -> (Vec<Stored>, broadcast::Receiver<Stored>) {
        let ring = lock(&self.ring);
        // Subscribed under the lock: nothing falls between the two.
        let live = self.live.subscribe();
        let backlog = match last_id {
            None => Vec::new(),
            Some(id) => {
                let after = ring
                    .items
                    .iter()
                    .position(|s| s.id() == id)
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
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut kept: Vec<Stored> = Vec::new();
        for batch in batches.drain(..) {
            match batch {
                Batch::Chunk(c) => chunks.push(c),
                Batch::Kept(k) => kept.extend(k),
            }
        }
        let mut raised: Vec<Event> = Vec::new();
        if let Some(gateway) = gateway() {
            hub.exporters.follow(&gateway);
            if ticked {
                raised.extend(watch.tick(&gateway));
            }
        }
        if !kept.is_empty() {
            hub.deliver(&kept);
        }
        for chunk in chunks {
            let seen = chunk.entries.iter().filter_map(|e| e.event.as_deref());
            raised.extend(seen.filter_map(|e| watch.see(e)));
            hub.dispatch(chunk);
        }
        if !raised.is_empty() {
            hub.dispatch(Chunk::of(raised, &hub.source));
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
fn log(event: &Event, json: &str) {
    match event.data {
        EventData::Audit(_) => tracing::info!(target: "komainu::audit", "{json}"),
        EventData::Alert(ref a) => match a.severity {
            komainu_core::events::alert::Severity::Info => {
                tracing::info!(target: "komainu::alert", "{json}")
            }
            _ => tracing::warn!(target: "komainu::alert", "{json}"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use komainu_core::events::{AuditEvent, TestEvent};

    fn test_event(n: u128) -> Event {
        Event::new(
            n,
            1_764_756_000_000 + n as u64,
            EventData::Test(TestEvent {
                exporter: format!("e{n}"),
                actor: "ops".into(),
                message: "line\nbreak".into(),
            }),
        )
    }

    fn stored(chunk: &Arc<Chunk>, index: usize) -> Stored {
        Stored {
            seq: index as u64,
            chunk: chunk.clone(),
            index,
        }
    }

    #[test]
    fn a_chunk_holds_one_line_per_event_and_what_filters_read() {
        let audit = Event::new(
            1,
            1_764_756_000_000,
            EventData::Audit(AuditEvent {
                actor: "ops".into(),
                user: None,
                action: "apikey.rotate".into(),
                target: Some("shop".into()),
                revision: 3,
                before: None,
                after: None,
            }),
        );
        let events = vec![audit.clone(), test_event(2)];
        let chunk = Arc::new(Chunk::of(events.clone(), "/komainu/t"));
        assert_eq!(chunk.lines.lines().count(), 2);
        for (i, event) in events.iter().enumerate() {
            let s = stored(&chunk, i);
            assert_eq!(s.json(), event.to_cloudevent("/komainu/t"));
            assert_eq!(s.id(), event.id.as_str());
            assert_eq!(s.kind(), event.type_name());
            assert_eq!(s.route(), event.route());
            assert_eq!(s.key(), event.key());
            assert_eq!(s.event(), Some(event));
        }
        let by_key = EventQuery::parse(Some("key=shop")).unwrap();
        assert!(stored(&chunk, 0).accepted_by(&by_key));
        assert!(!stored(&chunk, 1).accepted_by(&by_key));
    }

    #[test]
    fn a_chunk_handed_over_after_a_quiet_moment_holds_what_its_events_need() {
        let mut quiet = Chunk::with_capacity(BATCH, CHUNK_BYTES);
        quiet.push(test_event(1), "/komainu/t");
        let after_quiet = quiet.next();
        assert_eq!(
            after_quiet.lines.capacity(),
            8 * 1_024,
            "the next one starts small"
        );
        let quiet = quiet.fitted();
        assert!(quiet.lines.capacity() < 2_048, "{}", quiet.lines.capacity());
        assert!(quiet.entries.capacity() < 4);
        let mut busy = Chunk::with_capacity(4, 2_048);
        for n in 0..4 {
            busy.push(test_event(n), "/komainu/t");
        }
        assert!(busy.next().lines.capacity() >= 2 * busy.lines.len().min(CHUNK_BYTES / 2));
        let capacity = busy.lines.capacity();
        assert_eq!(
            busy.fitted().lines.capacity(),
            capacity,
            "a full chunk is left as it is"
        );
    }

    #[test]
    fn lines_of_neighbours_in_a_chunk_come_as_one_slice() {
        let a = Arc::new(Chunk::of((0..4).map(test_event).collect(), "/komainu/t"));
        let b = Arc::new(Chunk::of((4..6).map(test_event).collect(), "/komainu/t"));
        let batch = [
            stored(&a, 0),
            stored(&a, 1),
            stored(&a, 3),
            stored(&b, 0),
            stored(&b, 1),
        ];
        let runs = Stored::lines(&batch);
        assert_eq!(runs.len(), 3);
        let written: Vec<u8> = runs.concat();
        let expected: String = batch.iter().map(|s| format!("{}\n", s.json())).collect();
        assert_eq!(String::from_utf8(written).unwrap(), expected);
    }
}
