//! The storage traits adapters implement, one per capability, and the
//! in-memory stores.
//!
//! The traits return `impl Future`: on native targets
//! `trait_variant::make(Send)` requires those futures to be `Send` (tokio
//! needs it); on wasm32 they are plain futures (a Worker's KV and Durable
//! Object calls are not `Send`). The switch is on the target, never on a
//! Cargo feature. Stores are dispatched statically: a store chosen by
//! configuration is an enum that implements the trait.

mod memory;

use std::future::Future;

pub use memory::{MemoryConfigStore, MemoryCounterStore};

use crate::model::Document;
use crate::quota::{Acquired, Bump};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store holds data that cannot be read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Another writer changed the configuration first (compare-and-swap failed).
    #[error("the configuration changed meanwhile (expected revision {expected}, found {found})")]
    Conflict {
        /// The revision the writer started from.
        expected: u64,
        /// The revision found in the store.
        found: u64,
    },
}

/// Where the configuration document lives.
#[cfg_attr(not(target_family = "wasm"), trait_variant::make(Send))]
pub trait ConfigStore {
    /// The stored document, or `None` when nothing was ever stored.
    fn load(&self) -> impl Future<Output = Result<Option<Document>, StoreError>>;

    /// Replaces the stored document if the stored revision is still
    /// `expected_revision` (0 for an empty store), atomically: a reader sees
    /// the old document or the new one, never a mix; a failed save leaves
    /// the old one in place; a changed revision answers
    /// [`StoreError::Conflict`] and writes nothing.
    fn save(
        &self,
        doc: &Document,
        expected_revision: u64,
    ) -> impl Future<Output = Result<(), StoreError>>;

    /// Appends entries (see [`crate::events::LogEntry`], oldest first) to
    /// the store's event log: audit events and alerts, shared by every
    /// instance on the store and kept across restarts. Only the most recent
    /// [`EVENT_LOG_KEEP`] are kept.
    fn append_events(&self, entries: &[String]) -> impl Future<Output = Result<(), StoreError>>;

    /// The most recent `limit` entries of the event log, oldest first.
    fn recent_events(&self, limit: usize) -> impl Future<Output = Result<Vec<String>, StoreError>>;
}

/// How many audit events and alerts a configuration store keeps.
pub const EVENT_LOG_KEEP: usize = 1000;

/// Where quota counters live.
#[cfg_attr(not(target_family = "wasm"), trait_variant::make(Send))]
pub trait CounterStore {
    /// Atomically, for the counters of `client_id` named by `bumps`: if every
    /// counter is below its limit, increments them all and answers
    /// `admitted: true` with the new counts; otherwise increments none and
    /// answers `admitted: false` with the current counts. A counter whose
    /// period has ended counts from zero. Counts are aligned with `bumps`.
    fn acquire(
        &self,
        client_id: &str,
        bumps: &[Bump],
    ) -> impl Future<Output = Result<Acquired, StoreError>>;

    /// The current counts of the counters named by `bumps` (limits are
    /// ignored), without changing them.
    fn peek(
        &self,
        client_id: &str,
        bumps: &[Bump],
    ) -> impl Future<Output = Result<[u64; 3], StoreError>>;

    /// Sets the counters named by `bumps` (in their current periods) back
    /// to zero: the key's consumption starts over.
    fn reset(
        &self,
        client_id: &str,
        bumps: &[Bump],
    ) -> impl Future<Output = Result<(), StoreError>>;
}
