//! End-to-end harness: starts the real `komainu` binary and a real upstream
//! on 127.0.0.1 with ephemeral ports, and a small HTTP client.
//!
//! The binary is the one cargo built for this workspace (`target/<profile>/komainu`),
//! or `KOMAINU_BIN` when set.

pub mod admin;
pub mod browser;
pub mod client;
pub mod gateway;
pub mod jwt;
pub mod keys;
pub mod oidc;
pub mod otoroshi;
pub mod raw;
pub mod receiver;
pub mod redis_server;
pub mod upstream;
pub mod worker;

pub use admin::Admin;
pub use client::{Client, Reply};
pub use gateway::Komainu;
pub use receiver::Receiver;
pub use redis_server::RedisServer;
pub use upstream::Upstream;
pub use worker::Worker;
