//! Following configuration changes made by other instances (Redis store):
//! a pub/sub subscription for immediacy, and a periodic revision check as
//! the safety net for a missed message or a lost connection.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use komainu_core::events::{AuditEvent, Event, EventData, EventSink as _};
use komainu_core::store::{ConfigStore, StoreError};
use komainu_core::Gateway;
use tokio::sync::watch;

use crate::random;
use crate::state::{now_ms, State};
use crate::store::{ConfigStoreKind, RedisConfigStore, CHANGES_CHANNEL};

/// How often the revision is checked even without a message.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Loads, compiles and installs the stored configuration if it is newer
/// than the live one. Returns the live revision afterwards.
pub async fn reload_if_newer(state: &State, store: &RedisConfigStore) -> Result<u64, String> {
    let live = state.gateway.load().revision();
    let stored = store.revision().await.map_err(|e| e.to_string())?;
    if stored == 0 && live > 0 {
        return restore(state, store).await;
    }
    if stored <= live {
        return Ok(live);
    }
    let doc = state
        .config
        .load()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the configuration disappeared from the store")?;
    let gateway = Gateway::compile(&doc, state.claim_secret.as_bytes(), state.sealing.as_ref())
        .map_err(|e| {
            format!(
                "revision {} in the store is invalid, keeping {live}: {e}",
                doc.revision
            )
        })?;
    state.install(gateway);
    tracing::info!(
        revision = doc.revision,
        "configuration changed elsewhere; now live here"
    );
    Ok(doc.revision)
}

/// The shared store lost the configuration (Redis restarted without
/// persistence, flushed) while this instance serves a revision: write the
/// live configuration back, so that admin changes work again without
/// anyone re-importing. Compare-and-swap on the revision, retried while
/// the stored revision is lower than ours: when several instances restore
/// at once, the highest revision wins. Quota counters start again from zero.
async fn restore(state: &State, store: &RedisConfigStore) -> Result<u64, String> {
    let gateway = state.gateway.load_full();
    let doc = gateway.document();
    for _ in 0..8 {
        let stored = store.revision().await.map_err(|e| e.to_string())?;
        if stored >= doc.revision {
            return Ok(stored);
        }
        match store.save(doc, stored).await {
            Ok(()) => {
                tracing::warn!(
                    revision = doc.revision,
                    "the shared store had lost the configuration: restored it from this instance's live configuration (quota counters start again from zero)"
                );
                state.events.emit(Event::new(
                    random::request_id().bits(),
                    now_ms(),
                    EventData::Audit(AuditEvent {
                        actor: "komainu".into(),
                        user: None,
                        action: "config.restore".into(),
                        target: None,
                        revision: doc.revision,
                        before: None,
                        after: Some(serde_json::json!({
                            "reason": "the store was empty while this instance served the revision",
                            "routes": doc.routes.len(),
                            "apikeys": doc.apikeys.len(),
                            "groups": doc.groups.len(),
                            "exporters": doc.exporters.len(),
                        })),
                    }),
                ));
                return Ok(doc.revision);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the store kept changing while the configuration was being restored".into())
}

/// Runs until shutdown: follows the changes published in Redis.
pub async fn follow(state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let ConfigStoreKind::Redis(store) = &state.config else {
        return;
    };
    let client = store.connection().client().clone();
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(CHANGES_CHANNEL).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(2), subscribed) => r,
            _ = shutdown.changed() => return,
        };
        let mut messages = match pubsub {
            Ok(Ok(pubsub)) => pubsub.into_on_message(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot subscribe to configuration changes; retrying");
                if sleep_or_shutdown(Duration::from_secs(1), &mut shutdown).await {
                    return;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!("subscribing to configuration changes timed out; retrying");
                continue;
            }
        };
        // Catch up with what happened while not subscribed.
        check(&state, store).await;
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(_) => check(&state, store).await,
                    None => {
                        tracing::warn!("the configuration change subscription ended; resubscribing");
                        break;
                    }
                },
                _ = ticker.tick() => check(&state, store).await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn check(state: &State, store: &RedisConfigStore) {
    if let Err(e) = reload_if_newer(state, store).await {
        tracing::warn!(error = %e, "configuration check failed; serving the live configuration");
    }
}

/// Sleeps; `true` when shutdown came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}
