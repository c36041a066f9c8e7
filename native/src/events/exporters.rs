//! Exporters at run time: one task and one bounded queue each, following
//! the configuration (started, restarted with a changed configuration,
//! stopped when removed or disabled) without touching the others.
//!
//! A queue drops its oldest events when full. A failing delivery is
//! retried with exponential backoff and full jitter until the exporter's
//! `retryLimitMs`, then its events are dropped; either way the drop is
//! counted and the proxy never waits.

use std::collections::{HashMap, VecDeque};
use std::io::{IoSlice, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use komainu_core::events::{webhook, ExporterStatus, TypeFilter};
use komainu_core::gateway::CompiledExporter;
use komainu_core::model::ExporterKind;
use komainu_core::time::format_rfc3339;
use komainu_core::Gateway;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{lock, Stored};
use crate::admin_client::{http_client, HttpClient};
use crate::state::now_ms;

/// The exporters running on this instance.
pub struct Exporters {
    running: Mutex<HashMap<String, Running>>,
    /// The revision whose exporters run.
    revision: AtomicU64,
    client: HttpClient,
}

impl Exporters {
    /// No exporter yet; webhooks will use `tls` for https.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            running: Mutex::new(HashMap::new()),
            revision: AtomicU64::new(u64::MAX),
            client: http_client(tls),
        }
    }

    /// Starts, restarts and stops exporters to match `gateway`'s.
    pub fn follow(&self, gateway: &Gateway) {
        if self.revision.swap(gateway.revision(), Relaxed) == gateway.revision() {
            return;
        }
        let wanted = gateway.exporters();
        let mut running = lock(&self.running);
        running.retain(|id, r| {
            let keep = wanted
                .iter()
                .any(|w| &w.config.id == id && *w == r.compiled);
            if !keep {
                r.task.abort();
            }
            keep
        });
        for exporter in wanted {
            if !running.contains_key(&exporter.config.id) {
                let r = Running::start(exporter.clone(), self.client.clone());
                running.insert(exporter.config.id.clone(), r);
            }
        }
    }

    /// Queues each event on every exporter that wants its type.
    pub fn offer(&self, stored: &[Stored]) {
        let running = lock(&self.running);
        for r in running.values() {
            r.queue.push_many(
                stored
                    .iter()
                    .filter(|s| r.filter.accepts(s.kind()))
                    .cloned(),
            );
        }
    }

    /// Queues `stored` on exporter `id` alone, past its filters.
    pub fn offer_to(&self, id: &str, stored: Stored) -> bool {
        match lock(&self.running).get(id) {
            Some(r) => {
                r.queue.push_many(std::iter::once(stored));
                true
            }
            None => false,
        }
    }

    /// Whether exporter `id` runs here.
    pub fn is_running(&self, id: &str) -> bool {
        lock(&self.running).contains_key(id)
    }

    /// Exporter `id`'s health, if it runs here.
    pub fn status(&self, id: &str) -> Option<ExporterStatus> {
        lock(&self.running).get(id).map(|r| r.queue.status())
    }

    /// Every running exporter's id, kind and counters (for metrics).
    pub fn statuses(&self) -> Vec<(String, &'static str, ExporterStatus)> {
        let mut all: Vec<_> = lock(&self.running)
            .iter()
            .map(|(id, r)| (id.clone(), r.compiled.config.kind.name(), r.queue.status()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Stops every exporter.
    pub fn stop_all(&self) {
        for (_, r) in lock(&self.running).drain() {
            r.task.abort();
        }
    }
}

/// One running exporter.
struct Running {
    compiled: CompiledExporter,
    filter: TypeFilter,
    queue: Arc<Queue>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(compiled: CompiledExporter, client: HttpClient) -> Self {
        let config = &compiled.config;
        let batch = config.batch_size.max(1) as usize;
        let queue = Arc::new(Queue::new(config.max_queue as usize, batch));
        let destination = match config.kind {
            ExporterKind::File => Destination::File(FileOut {
                path: config.path.clone().unwrap_or_else(|| "-".into()),
                file: None,
            }),
            ExporterKind::Webhook => Destination::Webhook(Box::new(WebhookOut {
                url: config.url.clone().unwrap_or_default(),
                secret: compiled.secret.clone(),
                client,
            })),
            ExporterKind::RedisStream => Destination::Redis(RedisOut {
                url: config.url.clone().unwrap_or_default(),
                stream: config.stream_key().to_owned(),
                max_len: config.max_len,
                conn: None,
            }),
        };
        let plan = Plan {
            batch,
            flush: Duration::from_millis(config.flush_interval_ms),
            retry_limit: Duration::from_millis(config.retry_limit_ms),
            timeout: Duration::from_millis(config.timeout_ms),
        };
        let task = tokio::spawn(run(queue.clone(), destination, plan));
        Self {
            filter: TypeFilter::new(&config.include, &config.exclude),
            compiled,
            queue,
            task,
        }
    }
}

/// How an exporter batches and retries.
#[derive(Clone, Copy)]
struct Plan {
    batch: usize,
    flush: Duration,
    retry_limit: Duration,
    timeout: Duration,
}

/// A bounded queue that drops its oldest events when full.
struct Queue {
    items: Mutex<VecDeque<Stored>>,
    max: usize,
    /// Queued events that make a batch: the exporter's task is woken
    /// when the first events arrive (its flush interval starts) and when
    /// a batch is full, not for every event in between.
    batch: usize,
    ready: Notify,
    /// Events taken for the delivery in progress.
    in_flight: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    failures: AtomicU64,
    retrying: AtomicBool,
    last: Mutex<Last>,
}

#[derive(Default)]
struct Last {
    error: Option<String>,
    error_at: Option<u64>,
    sent_at: Option<u64>,
}

impl Queue {
    fn new(max: usize, batch: usize) -> Self {
        let max = max.max(1);
        Self {
            items: Mutex::new(VecDeque::new()),
            max,
            batch: batch.clamp(1, max),
            ready: Notify::new(),
            in_flight: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retrying: AtomicBool::new(false),
            last: Mutex::new(Last::default()),
        }
    }

    fn push_many(&self, stored: impl Iterator<Item = Stored>) {
        let mut items = lock(&self.items);
        let before = items.len();
        let mut dropped = 0;
        for s in stored {
            if items.len() >= self.max {
                items.pop_front();
                dropped += 1;
            }
            items.push_back(s);
        }
        let wake = (before == 0 && !items.is_empty())
            || (before < self.batch && items.len() >= self.batch);
        drop(items);
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Relaxed);
        }
        if wake {
            self.ready.notify_one();
        }
    }

    fn len(&self) -> usize {
        lock(&self.items).len()
    }

    fn take(&self, n: usize) -> Vec<Stored> {
        let mut items = lock(&self.items);
        let n = n.min(items.len());
        items.drain(..n).collect()
    }

    fn status(&self) -> ExporterStatus {
        let last = lock(&self.last);
        ExporterStatus {
            queued: self.len() as u64 + self.in_flight.load(Relaxed),
            sent: self.sent.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            retrying: self.retrying.load(Relaxed),
            failures: self.failures.load(Relaxed),
            last_error: last.error.clone(),
            last_error_at: last.error_at.map(format_rfc3339),
            last_sent_at: last.sent_at.map(format_rfc3339),
        }
    }
}

/// The exporter's loop: wait for events, gather a batch (full, or the
/// flush interval passed), deliver it with retries, again.
async fn run(queue: Arc<Queue>, mut destination: Destination, plan: Plan) {
    loop {
        while queue.len() == 0 {
            queue.ready.notified().await;
        }
        let deadline = tokio::time::Instant::now() + plan.flush;
        while queue.len() < queue.batch {
            tokio::select! {
                () = queue.ready.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let batch = queue.take(plan.batch);
        if batch.is_empty() {
            continue;
        }
        queue.in_flight.store(batch.len() as u64, Relaxed);
        deliver(&queue, &mut destination, &batch, plan).await;
        queue.in_flight.store(0, Relaxed);
    }
}

/// Delivers one batch, retrying with backoff until the retry limit.
async fn deliver(queue: &Queue, destination: &mut Destination, batch: &[Stored], plan: Plan) {
    let started = Instant::now();
    let mut attempt: u32 = 0;
    loop {
        let result = match tokio::time::timeout(plan.timeout, destination.send(batch)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", plan.timeout.as_millis())),
        };
        match result {
            Ok(()) => {
                queue.sent.fetch_add(batch.len() as u64, Relaxed);
                queue.retrying.store(false, Relaxed);
                lock(&queue.last).sent_at = Some(now_ms());
                return;
            }
            Err(why) => {
                queue.failures.fetch_add(1, Relaxed);
                {
                    let mut last = lock(&queue.last);
                    last.error = Some(why);
                    last.error_at = Some(now_ms());
                }
                let wait = backoff(attempt);
                if started.elapsed() + wait > plan.retry_limit {
                    queue.dropped.fetch_add(batch.len() as u64, Relaxed);
                    queue.retrying.store(false, Relaxed);
                    return;
                }
                queue.retrying.store(true, Relaxed);
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Exponential backoff with full jitter: a random wait up to 100 ms × 2ⁿ,
/// capped at 30 s.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = 100u64.saturating_mul(1 << attempt.min(9)).min(30_000);
    Duration::from_millis(fastrand::u64(cap_ms / 2..=cap_ms))
}

/// Where a batch goes.
enum Destination {
    File(FileOut),
    Webhook(Box<WebhookOut>),
    Redis(RedisOut),
}

impl Destination {
    async fn send(&mut self, batch: &[Stored]) -> Result<(), String> {
        match self {
            Destination::File(f) => f.send(batch).await,
            Destination::Webhook(w) => w.send(batch).await,
            Destination::Redis(r) => r.send(batch).await,
        }
    }
}

/// JSON lines appended to a file, or written to the standard output.
struct FileOut {
    path: String,
    file: Option<std::fs::File>,
}

impl FileOut {
    /// Writes the batch's lines as they lie in their chunks, off the
    /// runtime's threads (a file write may block).
    async fn send(&mut self, batch: &[Stored]) -> Result<(), String> {
        let batch = batch.to_vec();
        let path = self.path.clone();
        let file = self.file.take();
        let (file, result) = tokio::task::spawn_blocking(move || write_lines(&path, file, &batch))
            .await
            .map_err(|e| format!("the write did not finish: {e}"))?;
        self.file = file;
        result
    }
}

/// Appends `batch`'s lines to `path` (opened when `file` is not), or to
/// the standard output when the path is `-`. Gives back the file to keep
/// (none after an error: opened again on the next attempt, the file may
/// have moved).
fn write_lines(
    path: &str,
    file: Option<std::fs::File>,
    batch: &[Stored],
) -> (Option<std::fs::File>, Result<(), String>) {
    let runs = Stored::lines(batch);
    if path == "-" {
        let mut out = std::io::stdout().lock();
        let written = runs
            .iter()
            .try_for_each(|run| out.write_all(run))
            .and_then(|()| out.flush());
        return (None, written.map_err(|e| e.to_string()));
    }
    let mut file = match file {
        Some(file) => file,
        None => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => file,
            Err(e) => return (None, Err(format!("cannot open {path}: {e}"))),
        },
    };
    match write_all_vectored(&mut file, runs) {
        Ok(()) => (Some(file), Ok(())),
        Err(e) => (None, Err(format!("cannot write {path}: {e}"))),
    }
}

/// Writes every slice, in as few system calls as the kernel allows.
fn write_all_vectored(out: &mut impl Write, runs: Vec<&[u8]>) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = runs.into_iter().map(IoSlice::new).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Batches POSTed as `application/cloudevents-batch+json`.
struct WebhookOut {
    url: String,
    secret: Option<Vec<u8>>,
    client: HttpClient,
}

impl WebhookOut {
    async fn send(&mut self, batch: &[Stored]) -> Result<(), String> {
        let body = webhook::batch_body(batch.iter().map(Stored::json));
        let mut request = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, webhook::CONTENT_TYPE)
            .header(
                http::header::USER_AGENT,
                concat!("komainu/", env!("CARGO_PKG_VERSION")),
            )
            .header(webhook::COUNT_HEADER, batch.len());
        if let Some(secret) = &self.secret {
            request = request.header(
                webhook::SIGNATURE_HEADER,
                webhook::signature(secret, now_ms() / 1000, &body),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{}: {}", self.url, crate::upstream::root_cause(&e)))?;
        let status = response.status();
        // Read the (small) answer so the connection can be reused.
        let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.url))
        }
    }
}

/// `XADD stream MAXLEN ~ n * type … id … event …` per event.
struct RedisOut {
    url: String,
    stream: String,
    max_len: u64,
    conn: Option<redis::aio::MultiplexedConnection>,
}

impl RedisOut {
    async fn send(&mut self, batch: &[Stored]) -> Result<(), String> {
        if self.conn.is_none() {
            let client = redis::Client::open(self.url.as_str())
                .map_err(|e| format!("{}: {e}", crate::store::redact(&self.url)))?;
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| {
                    format!("cannot connect to {}: {e}", crate::store::redact(&self.url))
                })?;
            self.conn = Some(conn);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("not connected".into());
        };
        let mut pipe = redis::pipe();
        for s in batch {
            pipe.cmd("XADD")
                .arg(&self.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("type")
                .arg(s.kind())
                .arg("id")
                .arg(s.id())
                .arg("event")
                .arg(s.json())
                .ignore();
        }
        let result: redis::RedisResult<()> = pipe.query_async(conn).await;
        if let Err(e) = result {
            self.conn = None;
            return Err(format!("XADD to {}: {e}", self.stream));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most a few bytes per call.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_slice_is_written_whole_however_little_each_call_takes() {
        let mut out = Trickle(Vec::new());
        write_all_vectored(&mut out, vec![b"first line\n", b"", b"second\n"]).unwrap();
        assert_eq!(out.0, b"first line\nsecond\n");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= Duration::from_millis(100));
        assert!(backoff(3) >= Duration::from_millis(400));
        assert!(backoff(40) <= Duration::from_secs(30));
    }
}
