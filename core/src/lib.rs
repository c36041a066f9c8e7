//! # komainu-core
//!
//! The decisions of the Komainu API gateway, shared by the native binary
//! (`komainu`) and the Cloudflare Worker (`komainu-edge`). This crate has no
//! I/O, reads no clock and spawns nothing: adapters hand it the request head,
//! the current time and random bytes, and act on its answer. It builds for
//! `wasm32-unknown-unknown` as well as natively, and CI checks both.
//!
//! How the pieces fit:
//!
//! - [`model`]: the configuration entities (routes, API keys, groups,
//!   settings) and the versioned configuration [`model::Document`], with
//!   validation that names the field at fault;
//! - [`secret`]: how client secrets are stored (a keyed hash state, never the
//!   clear secret) and checked in constant time;
//! - [`path`]: request paths normalized before routing (dot-segments,
//!   escapes), the same way on every deployment;
//! - [`routing`]: the route table compiled once per revision (hosts, matchit
//!   paths, methods);
//! - [`auth`]: credentials found in a request (header pair, Basic, Bearer
//!   JWT) and the compiled API-key index;
//! - [`quota`]: per-second, per-day and per-month windows, the counters to
//!   bump and the verdict and headers from the counts a store returns;
//! - [`store`]: the storage traits adapters implement, and in-memory stores;
//! - [`gateway`]: the compiled [`gateway::Gateway`] and its request pipeline,
//!   phase by phase: route → authenticate → authorize → quota → forward →
//!   respond;
//! - [`events`]: request, audit and alert events in one envelope
//!   (CloudEvents), and the sink adapters implement;
//! - [`login`]: how people log in (auth modules, local passwords, roles);
//! - [`migrate`]: other gateways' exports (Otoroshi's) mapped onto a
//!   document, with a report of what was mapped, approximated or dropped;
//! - [`stats`]: per-route counters and latency histograms (the metrics);
//! - [`error`]: every error answer, with its status, JSON code and blame;
//! - [`time`]: UTC calendar arithmetic on Unix milliseconds.

pub mod access;
pub mod admin;
pub mod auth;
pub mod error;
pub mod events;
pub mod gateway;
pub mod login;
pub mod migrate;
pub mod model;
pub mod path;
pub mod quota;
pub mod routing;
pub mod secret;
pub mod stats;
pub mod store;
pub mod text;
pub mod time;

pub use error::GatewayError;
pub use gateway::{Gateway, Outcome};
pub use model::Document;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that never waits (in-memory stores) to completion.
    pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::pin!(f).poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("a future that should complete at once was pending"),
        }
    }
}
