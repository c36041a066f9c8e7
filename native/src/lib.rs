//! The native adapter of the Komainu API gateway, behind the `komainu` binary.
//!
//! `komainu serve` runs the proxy listener and the admin listener over the
//! shared core ([`komainu_core`]); this crate only moves bytes and state:
//! sockets, the pooled connections to backends, the stores (memory, file,
//! Redis), signals.
//!
//! - [`serve`]: start-up, listeners, graceful shutdown;
//! - [`h1`]: the proxy listener's own HTTP/1.1 path (parsing in place,
//!   backend connections driven by the request's task) and the per-worker
//!   pool of backend connections, which h2c requests use too;
//! - [`proxy`]: the HTTP/2 (h2c) proxy handler under hyper; [`upstream`]:
//!   backend failures; [`tls`] for https backends;
//! - [`admin`] and [`admin_client`]: the admin listener, and the `export` /
//!   `import` commands that call an admin API;
//! - [`store`] and [`reload`]: the stores, and following changes made by
//!   other instances;
//! - [`workers`]: one single-threaded runtime per core for the proxy;
//! - [`http_server`], [`state`], [`events`], [`random`], [`demo`], [`cli`].

pub mod admin;
pub mod admin_client;
pub mod cli;
pub mod demo;
pub mod deployment_key;
pub mod events;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
pub mod h1;
pub mod health;
pub mod http_server;
pub mod metrics;
pub mod provider_fetch;
pub mod proxy;
pub mod random;
pub mod reload;
pub mod serve;
pub mod state;
pub mod store;
pub mod tls;
pub mod tls_server;
pub mod try_it;
pub mod upstream;
pub mod workers;
