//! What every request handler shares: the live gateway, the counters, the
//! client to backends.

use std::sync::Arc;

use arc_swap::ArcSwap;
use komainu_core::store::MemoryCounterStore;
use komainu_core::Gateway;

use crate::upstream::UpstreamClient;

/// The shared state of a running gateway.
pub struct State {
    /// The compiled configuration, swapped whole on every accepted change.
    pub gateway: ArcSwap<Gateway>,
    /// Quota counters.
    pub counters: MemoryCounterStore,
    /// The pooled client to backends.
    pub client: UpstreamClient,
}

impl State {
    /// State around a first compiled gateway.
    pub fn new(gateway: Gateway, client: UpstreamClient) -> Arc<Self> {
        Arc::new(Self {
            gateway: ArcSwap::from_pointee(gateway),
            counters: MemoryCounterStore::new(),
            client,
        })
    }
}

/// The current time in Unix milliseconds (the core never reads a clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
