//! The stores of the native gateway, chosen by `--store`: configuration
//! (memory, file, Redis) and quota counters (memory, or Redis when the
//! configuration is in Redis, so instances share one set of quotas).

mod file;
mod redis;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use komainu_core::stats::Histogram;

use komainu_core::quota::{Acquired, Bump};
use komainu_core::store::{
    ConfigStore, CounterStore, MemoryConfigStore, MemoryCounterStore, StoreError,
};
use komainu_core::Document;

pub use self::redis::{
    redact, RedisConfigStore, RedisConnection, RedisCounterStore, CHANGES_CHANNEL,
};
pub use file::FileConfigStore;

/// The configuration store chosen by configuration (static dispatch).
pub enum ConfigStoreKind {
    /// `memory`: nothing persisted.
    Memory(MemoryConfigStore),
    /// `file:PATH`: in memory, persisted to a local file.
    File(FileConfigStore),
    /// `redis://…`: shared by every instance on the same Redis.
    Redis(RedisConfigStore),
}

/// The counter store that goes with it.
pub enum CounterStoreKind {
    /// This instance's memory.
    Memory(MemoryCounterStore),
    /// Redis, shared.
    Redis(Box<RedisCounterStore>),
}

/// Opens the stores named by a `--store` value.
pub async fn open(spec: &str) -> Result<(ConfigStoreKind, CounterStoreKind), String> {
    let memory_counters = || CounterStoreKind::Memory(MemoryCounterStore::new());
    if spec == "memory" {
        return Ok((
            ConfigStoreKind::Memory(MemoryConfigStore::default()),
            memory_counters(),
        ));
    }
    if let Some(path) = spec.strip_prefix("file:") {
        if path.is_empty() {
            return Err("--store file: needs a path, e.g. file:./komainu-data.json".into());
        }
        return Ok((
            ConfigStoreKind::File(FileConfigStore::new(path)),
            memory_counters(),
        ));
    }
    if spec.starts_with("redis://") || spec.starts_with("rediss://") {
        let conn = RedisConnection::open(spec).await?;
        return Ok((
            ConfigStoreKind::Redis(RedisConfigStore::new(conn.clone())),
            CounterStoreKind::Redis(Box::new(RedisCounterStore::new(conn))),
        ));
    }
    Err(format!(
        "--store \"{spec}\" is not a store: use file:PATH (the default, file:./komainu-data.json), memory, or redis://host:port/db"
    ))
}

impl ConfigStoreKind {
    /// A description for logs (no password).
    pub fn describe(&self) -> String {
        match self {
            Self::Memory(_) => "memory (nothing persisted)".into(),
            Self::File(f) => format!("file {}", f.path().display()),
            Self::Redis(r) => format!("redis {}", r.describe()),
        }
    }
}

impl ConfigStore for ConfigStoreKind {
    async fn load(&self) -> Result<Option<Document>, StoreError> {
        match self {
            Self::Memory(s) => s.load().await,
            Self::File(s) => STORE_STATS.time(CONFIG, s.load()).await,
            Self::Redis(s) => STORE_STATS.time(CONFIG, s.load()).await,
        }
    }

    async fn save(&self, doc: &Document, expected_revision: u64) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.save(doc, expected_revision).await,
            Self::File(s) => {
                STORE_STATS
                    .time(CONFIG, s.save(doc, expected_revision))
                    .await
            }
            Self::Redis(s) => {
                STORE_STATS
                    .time(CONFIG, s.save(doc, expected_revision))
                    .await
            }
        }
    }
    async fn append_events(&self, entries: &[String]) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.append_events(entries).await,
            Self::File(s) => STORE_STATS.time(CONFIG, s.append_events(entries)).await,
            Self::Redis(s) => STORE_STATS.time(CONFIG, s.append_events(entries)).await,
        }
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        match self {
            Self::Memory(s) => s.recent_events(limit).await,
            Self::File(s) => STORE_STATS.time(CONFIG, s.recent_events(limit)).await,
            Self::Redis(s) => STORE_STATS.time(CONFIG, s.recent_events(limit)).await,
        }
    }
}

impl CounterStore for CounterStoreKind {
    async fn acquire(&self, client_id: &str, bumps: &[Bump]) -> Result<Acquired, StoreError> {
        match self {
            Self::Memory(s) => Ok(s.acquire_now(client_id, bumps)),
            Self::Redis(s) => {
                STORE_STATS
                    .time(COUNTERS, s.acquire(client_id, bumps))
                    .await
            }
        }
    }

    async fn peek(&self, client_id: &str, bumps: &[Bump]) -> Result<[u64; 3], StoreError> {
        match self {
            Self::Memory(s) => Ok(s.peek_now(client_id, bumps)),
            Self::Redis(s) => STORE_STATS.time(COUNTERS, s.peek(client_id, bumps)).await,
        }
    }

    async fn reset(&self, client_id: &str, bumps: &[Bump]) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.reset(client_id, bumps).await,
            Self::Redis(s) => STORE_STATS.time(COUNTERS, s.reset(client_id, bumps)).await,
        }
    }
}

/// The `store` label's values: the configuration store, the counter store.
pub const STORES: [&str; 2] = ["config", "counters"];
const CONFIG: usize = 0;
const COUNTERS: usize = 1;

/// Operations on stores outside the process (a file, Redis): counted by
/// result and timed, for metrics and for the store alerts. In-memory
/// stores are not measured.
#[derive(Default)]
pub struct StoreStats {
    ok: [AtomicU64; 2],
    errors: [AtomicU64; 2],
    /// Operation time, by store.
    pub latency: [Histogram; 2],
    /// The last error, for the store alert.
    last_error: std::sync::Mutex<Option<String>>,
}

/// The process's store statistics.
pub static STORE_STATS: std::sync::LazyLock<StoreStats> =
    std::sync::LazyLock::new(StoreStats::default);

impl StoreStats {
    async fn time<T>(
        &self,
        store: usize,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let result = op.await;
        self.latency[store].observe(started.elapsed().as_micros() as u64);
        match &result {
            Err(StoreError::Unavailable(why)) => {
                self.errors[store].fetch_add(1, Relaxed);
                *crate::events::lock(&self.last_error) = Some(why.clone());
            }
            _ => {
                self.ok[store].fetch_add(1, Relaxed);
            }
        }
        result
    }

    /// Operations that succeeded (or lost a compare-and-swap), by store.
    pub fn ok(&self, store: usize) -> u64 {
        self.ok[store].load(Relaxed)
    }

    /// Operations that failed, by store.
    pub fn errors(&self, store: usize) -> u64 {
        self.errors[store].load(Relaxed)
    }

    /// The last failure's message.
    pub fn last_error(&self) -> Option<String> {
        crate::events::lock(&self.last_error).clone()
    }
}
