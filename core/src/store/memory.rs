//! In-memory stores: the embedded default natively, and the reference the
//! other stores are tested against.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{ConfigStore, CounterStore, StoreError, EVENT_LOG_KEEP};
use crate::model::Document;
use crate::quota::{Acquired, Bump, CounterSlots};

/// Counters in memory, sharded by client id so that concurrent calls of
/// different keys rarely wait on the same lock. Each key keeps one slot per
/// window (its current period and count): an ended period is replaced, so
/// memory stays bounded by the number of keys.
pub struct MemoryCounterStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

/// The keys of one shard and their counters.
type Shard = HashMap<Arc<str>, CounterSlots>;

const SHARDS: usize = 64;

impl Default for MemoryCounterStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryCounterStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, client_id: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(client_id) as usize) % SHARDS;
        // A poisoned lock only means a panic elsewhere mid-update of plain
        // counters; the counts are still meaningful.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The acquire operation, synchronously.
    pub fn acquire_now(&self, client_id: &str, bumps: &[Bump]) -> Acquired {
        let mut shard = self.shard(client_id);
        let slots = match shard.get_mut(client_id) {
            Some(slots) => slots,
            None => shard.entry(Arc::from(client_id)).or_default(),
        };
        slots.acquire(bumps)
    }

    /// The peek operation, synchronously.
    pub fn peek_now(&self, client_id: &str, bumps: &[Bump]) -> [u64; 3] {
        let shard = self.shard(client_id);
        shard
            .get(client_id)
            .map_or([0; 3], |slots| slots.peek(bumps))
    }
}

impl MemoryCounterStore {
    /// The reset operation, synchronously.
    pub fn reset_now(&self, client_id: &str, bumps: &[Bump]) {
        if let Some(slots) = self.shard(client_id).get_mut(client_id) {
            slots.reset(bumps);
        }
    }
}

impl CounterStore for MemoryCounterStore {
    async fn acquire(&self, client_id: &str, bumps: &[Bump]) -> Result<Acquired, StoreError> {
        Ok(self.acquire_now(client_id, bumps))
    }

    async fn peek(&self, client_id: &str, bumps: &[Bump]) -> Result<[u64; 3], StoreError> {
        Ok(self.peek_now(client_id, bumps))
    }

    async fn reset(&self, client_id: &str, bumps: &[Bump]) -> Result<(), StoreError> {
        self.reset_now(client_id, bumps);
        Ok(())
    }
}

/// A configuration document held in memory only (the `memory` store).
#[derive(Default)]
pub struct MemoryConfigStore {
    doc: Mutex<Option<Document>>,
    events: Mutex<VecDeque<String>>,
}

impl ConfigStore for MemoryConfigStore {
    async fn load(&self) -> Result<Option<Document>, StoreError> {
        Ok(self.doc.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    async fn save(&self, doc: &Document, expected_revision: u64) -> Result<(), StoreError> {
        let mut stored = self.doc.lock().unwrap_or_else(|e| e.into_inner());
        let found = stored.as_ref().map_or(0, |d| d.revision);
        if found != expected_revision {
            return Err(StoreError::Conflict {
                expected: expected_revision,
                found,
            });
        }
        *stored = Some(doc.clone());
        Ok(())
    }

    async fn append_events(&self, entries: &[String]) -> Result<(), StoreError> {
        let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        log.extend(entries.iter().cloned());
        let excess = log.len().saturating_sub(EVENT_LOG_KEEP);
        log.drain(..excess);
        Ok(())
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let log = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let skip = log.len().saturating_sub(limit);
        Ok(log.iter().skip(skip).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Quotas;
    use crate::quota::Plan;
    use crate::testing::block_on;

    #[test]
    fn admits_exactly_the_limit_then_refuses_without_counting() {
        let store = MemoryCounterStore::new();
        let q = Quotas {
            per_second: Some(100),
            per_day: Some(3),
            per_month: None,
        };
        let plan = Plan::new(&q, 1_000);
        for n in 1..=3 {
            let a = block_on(store.acquire("k", plan.bumps())).unwrap();
            assert!(a.admitted);
            assert_eq!(a.counts[..2], [n, n]);
        }
        let refused = block_on(store.acquire("k", plan.bumps())).unwrap();
        assert!(!refused.admitted);
        assert_eq!(refused.counts[..2], [3, 3]);
        assert_eq!(
            block_on(store.peek("k", plan.bumps())).unwrap()[..2],
            [3, 3]
        );
        // Another key is counted apart.
        assert!(
            block_on(store.acquire("other", plan.bumps()))
                .unwrap()
                .admitted
        );
    }

    #[test]
    fn a_new_period_counts_from_zero() {
        let store = MemoryCounterStore::new();
        let q = Quotas {
            per_second: Some(1),
            ..Quotas::default()
        };
        assert!(
            store
                .acquire_now("k", Plan::new(&q, 1_000).bumps())
                .admitted
        );
        assert!(
            !store
                .acquire_now("k", Plan::new(&q, 1_999).bumps())
                .admitted
        );
        assert!(
            store
                .acquire_now("k", Plan::new(&q, 2_000).bumps())
                .admitted
        );
    }

    #[test]
    fn config_round_trip() {
        let store = MemoryConfigStore::default();
        assert_eq!(block_on(store.load()).unwrap(), None);
        let doc = Document {
            revision: 7,
            ..Document::default()
        };
        block_on(store.save(&doc, 0)).unwrap();
        assert_eq!(block_on(store.load()).unwrap(), Some(doc.clone()));
        let stale = block_on(store.save(&Document::default(), 3)).unwrap_err();
        assert_eq!(
            stale,
            StoreError::Conflict {
                expected: 3,
                found: 7
            }
        );
        assert_eq!(block_on(store.load()).unwrap(), Some(doc));
    }
}
