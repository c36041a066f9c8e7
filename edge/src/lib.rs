//! # komainu-edge
//!
//! The Komainu API gateway as a Cloudflare Worker, over the same core as the
//! native binary ([`komainu_core`]): the same pipeline, the same error
//! bodies and headers, the same admin API (under `/_komainu/api`).
//!
//! How state lives at the edge:
//!
//! - **configuration**: written through one Durable Object, [`ConfigObject`]
//!   (the single writer: compare-and-swap on the revision, atomic), which
//!   publishes each accepted document to Workers KV; every isolate keeps the
//!   compiled configuration in memory ([`live`]) and re-reads the revision
//!   from KV at most once a second;
//! - **counters**: one Durable Object per API key, [`CounterObject`], so
//!   quotas are exact across the whole network;
//! - **time and randomness** come from the platform (`Date.now()`,
//!   `crypto.getRandomValues`); the core reads neither.
//!
//! Modules: [`proxy`] (the request path), [`admin`] (the admin API),
//! [`live`] (the per-isolate compiled configuration), [`config_object`] and
//! [`counters`] (the Durable Objects and the store traits over them),
//! [`head`] (converting heads between the platform and `http`),
//! [`settings`], [`events`].

pub mod admin;
pub mod config_object;
pub mod counters;
pub mod events;
pub mod head;
pub mod live;
pub mod provider_fetch;
pub mod proxy;
pub mod settings;

pub use config_object::ConfigObject;
pub use counters::CounterObject;

use worker::{event, Context, Env, Request, Response, Result};

/// The Worker's entry point: admin API under the admin path, the proxy
/// everywhere else.
#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let settings = settings::Settings::from_env(&env);
    // With an admin host, the admin API and the UI answer there only, and
    // that host serves nothing else.
    let admin_host = match &settings.admin_host {
        None => None,
        Some(wanted) => Some(
            req.url()?
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case(wanted)),
        ),
    };
    if admin_host == Some(false) {
        return proxy::handle(req, &env, &settings, &ctx).await;
    }
    let path = req.path();
    let rest = path.strip_prefix(settings.admin_path.as_str());
    let is_admin = rest.is_some_and(|rest| rest == "/api" || rest.starts_with("/api/"));
    if is_admin {
        return admin::handle(req, &env, &settings, &ctx).await;
    }
    // The web UI: its own files under the admin path, nothing else.
    if let Some(answer) = rest.and_then(|rest| admin::ui(&req, rest, &settings)) {
        return answer;
    }
    if admin_host == Some(true) {
        return admin::only_admin_here(&settings);
    }
    proxy::handle(req, &env, &settings, &ctx).await
}

/// Now, in Unix milliseconds, from the platform.
pub fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// 32 random bytes from `crypto.getRandomValues`.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // The platform's generator does not fail; if it ever did, an all-zero
    // value would make request ids repeat, never secrets weak: secrets are
    // only generated from `random_secret_bytes`.
    let _ = getrandom::fill(&mut bytes);
    bytes
}

/// 32 random bytes for a secret, or an error.
pub fn random_secret_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| worker::Error::RustError(format!("no randomness: {e}")))?;
    Ok(bytes)
}
