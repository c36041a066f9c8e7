//! What every request handler shares: the live gateway, the stores, the
//! admin keys.

use std::sync::Arc;

use arc_swap::ArcSwap;
use komainu_core::auth::KeyIndex;
use komainu_core::secret::SealingKey;
use komainu_core::Gateway;

use komainu_core::events::alert::Severity;
use komainu_core::events::{AlertEvent, Event, EventData, EventSink};

use crate::events::Events;
use crate::store::{ConfigStoreKind, CounterStoreKind};

/// The shared state of a running gateway.
pub struct State {
    /// The compiled configuration, swapped whole on every accepted change.
    pub gateway: ArcSwap<Gateway>,
    /// Where the configuration lives.
    pub config: ConfigStoreKind,
    /// Quota counters.
    pub counters: CounterStoreKind,
    /// Admin API keys.
    pub admin_keys: KeyIndex,
    /// Where the proxy listens (for the UI's Try it, and its calls to show).
    pub proxy_addr: std::net::SocketAddr,
    /// Signs the web UI's sessions.
    pub sessions: komainu_core::admin::SessionKey,
    /// The secret signing claims (to compile new configurations).
    pub claim_secret: String,
    /// The deployment key sealing secrets at rest, if any.
    pub sealing: Option<SealingKey>,
    /// Where events go.
    pub events: Events,
    /// `GET /metrics` answers without credentials (`--metrics-open`).
    pub metrics_open: bool,
    /// Turns true when the gateway shuts down (ends event streams).
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Largest admin request body.
    pub admin_max_body: usize,
    /// Whether the incoming `X-Forwarded-Proto` is trusted (`--behind-proxy`).
    pub behind_proxy: bool,
    /// TLS settings for https backends (each worker builds its client from them).
    pub backend_tls: Arc<rustls::ClientConfig>,
    /// Serializes this instance's admin writes (other instances are kept
    /// apart by the store's compare-and-swap).
    pub admin_writes: tokio::sync::Mutex<()>,
    /// Failed logins of people on this instance.
    pub login_throttle: komainu_core::login::LoginThrottle,
    /// Calls identity providers (people's logins through OpenID Connect).
    pub provider_fetch: crate::provider_fetch::ProviderFetch,
}

impl State {
    /// What admin calls are checked against (people's sessions against
    /// the auth modules of `live`, the gateway serving now).
    pub fn auth<'a>(&'a self, live: &'a Gateway) -> komainu_core::admin::AdminAuth<'a> {
        komainu_core::admin::AdminAuth {
            keys: &self.admin_keys,
            sessions: Some(&self.sessions),
            logins: Some(live.logins()),
        }
    }

    /// Swaps in a newly compiled gateway, unless a newer one is already live
    /// (two admin changes finishing out of order). The new revision takes
    /// over the counters, and its arrival is an alert (`revision_applied`).
    pub fn install(&self, mut gateway: Gateway) {
        let current = self.gateway.load_full();
        if current.revision() >= gateway.revision() {
            return;
        }
        gateway.carry_stats_from(&current);
        let new = Arc::new(gateway);
        let previous = self.gateway.rcu(|current| {
            if current.revision() >= new.revision() {
                current.clone()
            } else {
                new.clone()
            }
        });
        if previous.revision() < new.revision() {
            // Exporters follow at once: an exporter just created answers
            // its status and test endpoints.
            self.events.hub.exporters.follow(&new);
            let doc = new.document();
            let mut alert = AlertEvent::new(
                "revision_applied",
                Severity::Info,
                format!(
                    "configuration revision {} is live on this instance",
                    new.revision()
                ),
            );
            alert.details = serde_json::json!({
                "revision": new.revision(),
                "previousRevision": previous.revision(),
                "routes": doc.routes.len(),
                "apikeys": doc.apikeys.len(),
                "groups": doc.groups.len(),
                "exporters": doc.exporters.len(),
            });
            self.events.emit(Event::new(
                crate::random::request_id().bits(),
                now_ms(),
                EventData::Alert(alert),
            ));
        }
    }
}

/// The current time in Unix milliseconds (the core never reads a clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
