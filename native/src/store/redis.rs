//! The Redis store: configuration and counters shared by every instance.
//!
//! - configuration: the document and its revision in one hash
//!   (`komainu:config`, fields `doc` and `revision`), replaced by a Lua
//!   script that compares the revision first (compare-and-swap) and
//!   publishes the new revision on `komainu:config:changes`;
//! - counters: one key per key and window (`komainu:q:{clientId}:day:20418`,
//!   a cluster hash tag keeps a key's windows together), bumped by one Lua
//!   script per call: one round trip, exact across instances.
//!
//! Connections go through a `ConnectionManager`, which reconnects by itself;
//! every operation is bounded by a timeout, so a Redis that goes away costs
//! a bounded delay, never a hung request.

use std::time::Duration;

use komainu_core::quota::{Acquired, Bump};
use komainu_core::store::{ConfigStore, CounterStore, StoreError, EVENT_LOG_KEEP};
use komainu_core::Document;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

/// The hash holding the configuration.
const CONFIG_KEY: &str = "komainu:config";
/// The event log: a list of entries, the most recent last.
const EVENTS_KEY: &str = "komainu:events";
/// The channel announcing new revisions.
pub const CHANGES_CHANNEL: &str = "komainu:config:changes";
/// The prefix of counter keys.
const COUNTER_PREFIX: &str = "komainu:q:";
/// Longest wait for one Redis operation.
const OP_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a counter outlives its window (clock skew between instances).
const COUNTER_GRACE_MS: u64 = 60_000;

const SAVE_SCRIPT: &str = r"
local current = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if current ~= tonumber(ARGV[1]) then
  return {0, current}
end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'revision', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return {1, current}
";

/// Counts a call in every window at once, or in none: each counter is
/// incremented (expiring with its window when new); if any went over its
/// limit, all are decremented back. Replies `{admitted, count…}`, the counts
/// after the call (before it, when refused). Atomic, as every script is.
/// A period already over by Redis's clock (the instance's clock is behind)
/// is not counted in: the reply is then `{2, redis now ms}`, to ask again
/// at that time. (Otherwise the late instance would count in a period
/// whose counter Redis drops at once, and admit without limit.)
const ACQUIRE_SCRIPT: &str = r"
local n = #KEYS
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  if now >= tonumber(ARGV[2 * n + i]) then
    return {2, now}
  end
end
local counts = {}
local admitted = 1
for i = 1, n do
  local c = redis.call('INCR', KEYS[i])
  if c == 1 then redis.call('PEXPIREAT', KEYS[i], ARGV[n + i]) end
  counts[i] = c
  if c > tonumber(ARGV[i]) then admitted = 0 end
end
if admitted == 0 then
  for i = 1, n do
    counts[i] = redis.call('DECR', KEYS[i])
  end
end
table.insert(counts, 1, admitted)
return counts
";

/// A connection to one Redis (database), shared by both stores.
#[derive(Clone)]
pub struct RedisConnection {
    client: redis::Client,
    manager: ConnectionManager,
    url: String,
}

impl RedisConnection {
    /// Connects to `redis://…` or `rediss://…` (password and database in the URL).
    pub async fn open(url: &str) -> Result<Self, String> {
        let client =
            redis::Client::open(url).map_err(|e| format!("--store {}: {e}", redact(url)))?;
        let manager = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), manager_config()),
        )
        .await
        .map_err(|_| format!("cannot connect to Redis at {}: timed out", redact(url)))?
        .map_err(|e| format!("cannot connect to Redis at {}: {e}", redact(url)))?;
        Ok(Self {
            client,
            manager,
            url: redact(url),
        })
    }

    /// The client, for pub/sub connections.
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The URL without its password, for logs.
    pub fn describe(&self) -> &str {
        &self.url
    }

    async fn run<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(OP_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("Redis {what}: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!("Redis {what}: timed out"))),
        }
    }

    /// [`RedisConnection::run`] for configuration operations, tried a second
    /// time when the first found the connection dropped (Redis restarted):
    /// the first failure is what makes the manager reconnect, and a command
    /// written to a dead socket was not executed.
    async fn run_config<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(OP_TIMEOUT, op(self.manager.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_connection_dropped() || e.is_connection_refusal() => {
                self.run(what, op(self.manager.clone())).await
            }
            Ok(Err(e)) => Err(StoreError::Unavailable(format!("Redis {what}: {e}"))),
            Err(_) => Err(StoreError::Unavailable(format!("Redis {what}: timed out"))),
        }
    }
}

/// Reconnection and timeouts of every connection manager.
fn manager_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_millis(1_000))
        .set_response_timeout(OP_TIMEOUT)
        .set_number_of_retries(1)
        .set_max_delay(500)
}

/// `redis://:password@host` → `redis://:***@host`.
/// A Redis URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

/// The configuration document in Redis.
pub struct RedisConfigStore {
    conn: RedisConnection,
    save: Script,
}

impl RedisConfigStore {
    /// The configuration store on this connection.
    pub fn new(conn: RedisConnection) -> Self {
        Self {
            conn,
            save: Script::new(SAVE_SCRIPT),
        }
    }

    /// The stored revision (0 when none), without reading the document.
    pub async fn revision(&self) -> Result<u64, StoreError> {
        let revision: Option<u64> = self
            .conn
            .run_config("read revision", |mut c| async move {
                c.hget(CONFIG_KEY, "revision").await
            })
            .await?;
        Ok(revision.unwrap_or(0))
    }
}

impl RedisConfigStore {
    /// The connection, for pub/sub.
    pub fn connection(&self) -> &RedisConnection {
        &self.conn
    }

    /// Where it lives, for logs.
    pub fn describe(&self) -> &str {
        self.conn.describe()
    }
}

impl ConfigStore for RedisConfigStore {
    async fn load(&self) -> Result<Option<Document>, StoreError> {
        let text: Option<String> = self
            .conn
            .run_config("read configuration", |mut c| async move {
                c.hget(CONFIG_KEY, "doc").await
            })
            .await?;
        match text {
            None => Ok(None),
            Some(text) => Document::load(text.as_bytes()).map(Some).map_err(|e| {
                StoreError::Corrupt(format!("{CONFIG_KEY} in {}: {e}", self.conn.describe()))
            }),
        }
    }

    async fn save(&self, doc: &Document, expected_revision: u64) -> Result<(), StoreError> {
        let text = doc.to_json();
        let (saved, found): (u8, u64) = self
            .conn
            .run_config("save configuration", |mut c| {
                let mut invocation = self.save.prepare_invoke();
                invocation
                    .key(CONFIG_KEY)
                    .key(CHANGES_CHANNEL)
                    .arg(expected_revision)
                    .arg(&text)
                    .arg(doc.revision);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        if saved == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict {
                expected: expected_revision,
                found,
            })
        }
    }

    async fn append_events(&self, entries: &[String]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let keep = isize::try_from(EVENT_LOG_KEEP).unwrap_or(isize::MAX);
        self.conn
            .run_config("append events", |mut c| {
                let mut pipe = redis::pipe();
                pipe.rpush(EVENTS_KEY, entries)
                    .ignore()
                    .ltrim(EVENTS_KEY, -keep, -1)
                    .ignore();
                async move { pipe.query_async::<()>(&mut c).await }
            })
            .await
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let from = -isize::try_from(limit.max(1)).unwrap_or(isize::MAX);
        self.conn
            .run_config("read events", |mut c| async move {
                c.lrange(EVENTS_KEY, from, -1).await
            })
            .await
    }
}

/// Quota counters in Redis.
///
/// Counting is on every proxied request, so each proxy worker thread gets
/// its own connection (made on first use, on that thread's runtime): no
/// request waits on another thread to reach Redis.
pub struct RedisCounterStore {
    conn: RedisConnection,
    acquire: Script,
    /// Tells this store's per-thread connections from other stores'.
    id: u64,
}

thread_local! {
    /// Per-thread connections, by store id.
    static THREAD_CONNECTIONS: std::cell::RefCell<std::collections::HashMap<u64, ConnectionManager>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl RedisCounterStore {
    /// The counter store on this connection.
    pub fn new(conn: RedisConnection) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            conn,
            acquire: Script::new(ACQUIRE_SCRIPT),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This thread's connection (the shared one until it is made).
    async fn manager(&self) -> ConnectionManager {
        if let Some(m) = THREAD_CONNECTIONS.with(|c| c.borrow().get(&self.id).cloned()) {
            return m;
        }
        let made = tokio::time::timeout(
            OP_TIMEOUT,
            ConnectionManager::new_with_config(self.conn.client.clone(), manager_config()),
        )
        .await;
        match made {
            Ok(Ok(m)) => {
                THREAD_CONNECTIONS.with(|c| c.borrow_mut().insert(self.id, m.clone()));
                m
            }
            // Redis is away: use the shared connection, which reconnects by itself.
            _ => self.conn.manager.clone(),
        }
    }
}

fn counter_key(client_id: &str, bump: &Bump) -> String {
    format!("{COUNTER_PREFIX}{}", bump.counter_name(client_id))
}

impl RedisCounterStore {
    /// One run of the acquire script.
    async fn acquire_once(&self, client_id: &str, bumps: &[Bump]) -> Result<Vec<u64>, StoreError> {
        let mut invocation = self.acquire.prepare_invoke();
        for b in bumps {
            invocation.key(counter_key(client_id, b));
        }
        for b in bumps {
            invocation.arg(b.limit);
        }
        for b in bumps {
            invocation.arg(b.resets_at_ms + COUNTER_GRACE_MS);
        }
        for b in bumps {
            invocation.arg(b.resets_at_ms);
        }
        let mut c = self.manager().await;
        self.conn
            .run("count a call", invocation.invoke_async(&mut c))
            .await
    }
}

impl CounterStore for RedisCounterStore {
    async fn acquire(&self, client_id: &str, bumps: &[Bump]) -> Result<Acquired, StoreError> {
        let mut reply = self.acquire_once(client_id, bumps).await?;
        if reply.first() == Some(&2) {
            // This instance's clock is behind Redis's: count in Redis's
            // current period.
            let now = reply.get(1).copied().unwrap_or(0);
            let restamped: Vec<Bump> = bumps.iter().map(|b| b.at(now)).collect();
            reply = self.acquire_once(client_id, &restamped).await?;
            if reply.first() == Some(&2) {
                return Err(StoreError::Unavailable(
                    "Redis's clock moved across a window boundary twice in one call".into(),
                ));
            }
        }
        let mut acquired = Acquired {
            admitted: reply.first() == Some(&1),
            counts: [0; 3],
        };
        for (slot, count) in acquired.counts.iter_mut().zip(reply.iter().skip(1)) {
            *slot = *count;
        }
        Ok(acquired)
    }

    async fn peek(&self, client_id: &str, bumps: &[Bump]) -> Result<[u64; 3], StoreError> {
        if bumps.is_empty() {
            return Ok([0; 3]);
        }
        let keys: Vec<String> = bumps.iter().map(|b| counter_key(client_id, b)).collect();
        let mut c = self.manager().await;
        let values: Vec<Option<u64>> = self.conn.run("read counters", c.mget(keys)).await?;
        let mut counts = [0; 3];
        for (slot, v) in counts.iter_mut().zip(values) {
            *slot = v.unwrap_or(0);
        }
        Ok(counts)
    }

    async fn reset(&self, client_id: &str, bumps: &[Bump]) -> Result<(), StoreError> {
        if bumps.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = bumps.iter().map(|b| counter_key(client_id, b)).collect();
        let mut c = self.manager().await;
        let _: u64 = self.conn.run("reset counters", c.del(keys)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.1:6379/2"),
            "redis://***@10.0.0.1:6379/2"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
