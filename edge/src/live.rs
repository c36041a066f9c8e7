//! The compiled configuration each isolate serves.
//!
//! Read from Workers KV (where [`crate::ConfigObject`] publishes every
//! accepted revision), compiled once, kept in memory. The revision in KV is
//! re-read at most once every [`CHECK_EVERY_MS`]; a change made through this
//! isolate's admin API is live here at once. Propagation delay to other
//! isolates: up to [`CHECK_EVERY_MS`] plus KV's own propagation (immediate
//! in the same location, up to about a minute across the network).

use std::cell::RefCell;
use std::rc::Rc;

use komainu_core::{Document, Gateway};
use worker::Env;

use crate::settings::Settings;

/// The KV namespace binding.
pub const KV_BINDING: &str = "KOMAINU_CONFIG";
/// The KV key holding the document.
pub const CONFIG_KEY: &str = "config";
/// The KV key holding its revision.
pub const REVISION_KEY: &str = "revision";
/// How often an isolate re-reads the revision from KV.
pub const CHECK_EVERY_MS: u64 = 1_000;

struct Live {
    gateway: Rc<Gateway>,
    checked_ms: u64,
}

thread_local! {
    static LIVE: RefCell<Option<Live>> = const { RefCell::new(None) };
}

/// The revision served by this isolate (0 before the first request).
pub fn revision() -> u64 {
    LIVE.with(|l| l.borrow().as_ref().map_or(0, |l| l.gateway.revision()))
}

/// The gateway this isolate serves, if it has compiled one.
pub fn current() -> Option<Rc<Gateway>> {
    LIVE.with(|l| l.borrow().as_ref().map(|l| l.gateway.clone()))
}

/// Serves `gateway` from now on, unless a newer one is already live.
pub fn install(gateway: Gateway, now_ms: u64) {
    LIVE.with(|l| {
        let mut live = l.borrow_mut();
        let newer = live
            .as_ref()
            .is_none_or(|current| gateway.revision() >= current.gateway.revision());
        if newer {
            *live = Some(Live {
                gateway: Rc::new(gateway),
                checked_ms: now_ms,
            });
        }
    });
}

/// The gateway to serve this request with, refreshed from KV when due.
/// When the refresh fails, the configuration already live is kept (known
/// routes go on); only an isolate with nothing compiled yet fails.
pub async fn gateway(
    env: &Env,
    claim_secret: &str,
    settings: &Settings,
    now_ms: u64,
) -> Result<Rc<Gateway>, String> {
    match refresh(env, claim_secret, settings, now_ms).await {
        Ok(gateway) => Ok(gateway),
        Err(e) => match LIVE.with(|l| l.borrow().as_ref().map(|l| l.gateway.clone())) {
            Some(gateway) => {
                worker::console_warn!(
                    "configuration refresh failed, serving revision {}: {e}",
                    gateway.revision()
                );
                touch(now_ms);
                Ok(gateway)
            }
            None => Err(e),
        },
    }
}

async fn refresh(
    env: &Env,
    claim_secret: &str,
    settings: &Settings,
    now_ms: u64,
) -> Result<Rc<Gateway>, String> {
    let current = LIVE.with(|l| {
        l.borrow()
            .as_ref()
            .map(|l| (l.gateway.clone(), l.checked_ms))
    });
    if let Some((gateway, checked)) = &current {
        if now_ms.saturating_sub(*checked) < CHECK_EVERY_MS {
            return Ok(gateway.clone());
        }
    }
    let kv = env
        .kv(KV_BINDING)
        .map_err(|e| format!("KV binding {KV_BINDING}: {e}"))?;
    let stored: Option<u64> = kv
        .get(REVISION_KEY)
        .text()
        .await
        .map_err(|e| format!("reading the revision from KV: {e}"))?
        .and_then(|t| t.trim().parse().ok());
    if let Some((gateway, _)) = &current {
        if stored.is_none_or(|r| r <= gateway.revision()) {
            touch(now_ms);
            return Ok(gateway.clone());
        }
    }
    let doc = match stored {
        None => Document::default(),
        Some(_) => {
            let text = kv
                .get(CONFIG_KEY)
                .text()
                .await
                .map_err(|e| format!("reading the configuration from KV: {e}"))?
                .unwrap_or_default();
            Document::load(text.as_bytes())
                .map_err(|e| format!("the configuration in KV is invalid: {e}"))?
        }
    };
    let sealing = settings
        .sealing()
        .map_err(|e| format!("KOMAINU_SECRET_KEY: {e}"))?;
    let gateway = Gateway::compile(&doc, claim_secret.as_bytes(), sealing.as_ref())
        .map_err(|e| format!("the configuration in KV does not compile: {e}"))?;
    install(gateway, now_ms);
    touch(now_ms);
    LIVE.with(|l| l.borrow().as_ref().map(|l| l.gateway.clone()))
        .ok_or_else(|| "no configuration".to_owned())
}

fn touch(now_ms: u64) {
    LIVE.with(|l| {
        if let Some(live) = l.borrow_mut().as_mut() {
            live.checked_ms = now_ms;
        }
    });
}
