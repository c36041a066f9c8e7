//! The configuration's single writer: a Durable Object holding the
//! document, replacing it only when the writer's expected revision still
//! matches (compare-and-swap), and publishing each accepted document to KV.
//! [`DoConfigStore`] is the core's `ConfigStore` over it.

// The `durable_object` macro generates undocumented public items.
#![allow(missing_docs)]

use komainu_core::secret::{is_sealed, CLAIM_SECRET_CONTEXT};
use komainu_core::store::{ConfigStore, StoreError, EVENT_LOG_KEEP};
use komainu_core::Document;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{
    durable_object, DurableObject, Env, ListOptions, Method, Request, RequestInit, Response,
    Result, State,
};

use crate::live::{CONFIG_KEY, KV_BINDING, REVISION_KEY};

/// The binding of the configuration Durable Object.
pub const BINDING: &str = "KOMAINU_CONFIG_DO";
/// Durable Object storage keeps values up to 128 KiB: the document is
/// stored in chunks below that.
const CHUNK: usize = 100 * 1024;

/// The Durable Object holding the configuration (one instance, named "config").
#[durable_object(fetch)]
pub struct ConfigObject {
    state: State,
    env: Env,
}

impl DurableObject for ConfigObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Get, "/claim-secret") => {
                // Without KOMAINU_CLAIM_SECRET, one is generated at first use
                // and kept here, shared by every isolate (as natively):
                // sealed with KOMAINU_SECRET_KEY when it is set.
                let sealing = crate::settings::Settings::from_env(&self.env)
                    .sealing()
                    .map_err(worker::Error::RustError)?;
                let storage = self.state.storage();
                let secret = match storage.get::<String>("claimSecret").await? {
                    Some(stored) if is_sealed(&stored) => {
                        let key = sealing.as_ref().ok_or_else(|| {
                            worker::Error::RustError(
                                "the stored claim secret is sealed: set KOMAINU_SECRET_KEY".into(),
                            )
                        })?;
                        let bytes = key
                            .open_bytes(CLAIM_SECRET_CONTEXT, &stored)
                            .map_err(|e| worker::Error::RustError(e.to_string()))?;
                        String::from_utf8(bytes)
                            .map_err(|_| worker::Error::RustError("claim secret not text".into()))?
                    }
                    Some(clear) => clear,
                    None => komainu_core::secret::generate_secret(crate::random_secret_bytes()?),
                };
                let stored = match &sealing {
                    Some(key) => key.seal_bytes(CLAIM_SECRET_CONTEXT, secret.as_bytes()),
                    None => secret.clone(),
                };
                if storage.get::<String>("claimSecret").await?.as_deref() != Some(stored.as_str()) {
                    storage.put("claimSecret", &stored).await?;
                }
                Response::ok(secret)
            }
            (Method::Get, "/doc") => match self.read().await? {
                Some(text) => Response::ok(text),
                None => Response::error("empty", 404),
            },
            (Method::Post, "/doc") => {
                let url = req.url()?;
                let expected: u64 = url
                    .query_pairs()
                    .find(|(k, _)| k == "expected")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let text = req.text().await?;
                let revision = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["revision"].as_u64())
                    .ok_or_else(|| {
                        worker::Error::RustError("the document has no revision".into())
                    })?;
                let found: u64 = self.state.storage().get("revision").await?.unwrap_or(0);
                if found != expected {
                    return Response::error(found.to_string(), 409);
                }
                self.write(&text, revision).await?;
                let kv = self.env.kv(KV_BINDING)?;
                kv.put(CONFIG_KEY, text)?.execute().await?;
                kv.put(REVISION_KEY, revision.to_string())?
                    .execute()
                    .await?;
                Response::ok("saved")
            }
            (Method::Post, "/events") => {
                let entries: Vec<String> = serde_json::from_str(&req.text().await?)
                    .map_err(|e| worker::Error::RustError(format!("event entries: {e}")))?;
                self.append_events(&entries).await?;
                Response::ok("appended")
            }
            (Method::Get, "/events") => {
                let limit: usize = req
                    .url()?
                    .query_pairs()
                    .find(|(k, _)| k == "limit")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(EVENT_LOG_KEEP)
                    .clamp(1, EVENT_LOG_KEEP);
                let list = self
                    .state
                    .storage()
                    .list_with_options(ListOptions::new().prefix("ev:").reverse(true).limit(limit))
                    .await?;
                let mut entries: Vec<String> = list
                    .values()
                    .into_iter()
                    .filter_map(|v| v.ok().and_then(|v| v.as_string()))
                    .collect();
                entries.reverse();
                Response::from_json(&entries)
            }
            _ => Response::error("not found", 404),
        }
    }
}

impl ConfigObject {
    /// Appends entries as `ev:<sequence>` keys and deletes those beyond
    /// the most recent [`EVENT_LOG_KEEP`].
    async fn append_events(&self, entries: &[String]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let storage = self.state.storage();
        let next: u64 = storage.get("evNext").await?.unwrap_or(0);
        let values = js_sys::Object::new();
        for (i, entry) in entries.iter().enumerate() {
            js_sys::Reflect::set(
                &values,
                &JsValue::from_str(&format!("ev:{:020}", next + i as u64)),
                &JsValue::from_str(entry),
            )?;
        }
        let end = next + entries.len() as u64;
        js_sys::Reflect::set(
            &values,
            &JsValue::from_str("evNext"),
            &JsValue::from_f64(end as f64),
        )?;
        storage.put_multiple_raw(values).await?;
        let keep = EVENT_LOG_KEEP as u64;
        let stale: Vec<String> = (next.saturating_sub(keep)..end.saturating_sub(keep))
            .map(|seq| format!("ev:{seq:020}"))
            .collect();
        if !stale.is_empty() {
            storage.delete_multiple(stale).await?;
        }
        Ok(())
    }

    async fn read(&self) -> Result<Option<String>> {
        let storage = self.state.storage();
        let Some(chunks) = storage.get::<usize>("chunks").await? else {
            return Ok(None);
        };
        let mut text = String::new();
        for i in 0..chunks {
            let part: String = storage.get(&format!("doc:{i}")).await?.unwrap_or_default();
            text.push_str(&part);
        }
        Ok(Some(text))
    }

    async fn write(&self, text: &str, revision: u64) -> Result<()> {
        let storage = self.state.storage();
        let old_chunks: usize = storage.get("chunks").await?.unwrap_or(0);
        // A plain object of key → value: one put, applied all together or not at all.
        let values = js_sys::Object::new();
        let set = |key: &str, value: JsValue| {
            js_sys::Reflect::set(&values, &JsValue::from_str(key), &value).map(|_| ())
        };
        let mut chunks = 0usize;
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(CHUNK);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            set(&format!("doc:{chunks}"), JsValue::from_str(&rest[..cut]))?;
            rest = &rest[cut..];
            chunks += 1;
        }
        set("chunks", JsValue::from_f64(chunks as f64))?;
        set("revision", JsValue::from_f64(revision as f64))?;
        storage.put_multiple_raw(values).await?;
        let stale: Vec<String> = (chunks..old_chunks).map(|i| format!("doc:{i}")).collect();
        if !stale.is_empty() {
            storage.delete_multiple(stale).await?;
        }
        Ok(())
    }
}

/// The core's configuration store, over the configuration Durable Object.
pub struct DoConfigStore<'a> {
    /// The Worker's environment (for the binding).
    pub env: &'a Env,
}

impl DoConfigStore<'_> {
    /// The claim secret kept by the configuration object (generated once).
    pub async fn claim_secret(&self) -> Result<String> {
        let mut response = self.call(Method::Get, "/claim-secret", None).await?;
        if response.status_code() != 200 {
            return Err(worker::Error::RustError(format!(
                "the configuration object answered {} for the claim secret",
                response.status_code()
            )));
        }
        response.text().await
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<Response> {
        let stub = self
            .env
            .durable_object(BINDING)?
            .id_from_name("config")?
            .get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(method);
        if let Some(body) = body {
            init.with_body(Some(body.into()));
        }
        stub.fetch_with_request(Request::new_with_init(
            &format!("https://config{path}"),
            &init,
        )?)
        .await
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("configuration Durable Object: {e}"))
}

impl ConfigStore for DoConfigStore<'_> {
    async fn load(&self) -> std::result::Result<Option<Document>, StoreError> {
        let mut response = self
            .call(Method::Get, "/doc", None)
            .await
            .map_err(unavailable)?;
        match response.status_code() {
            200 => {
                let text = response.text().await.map_err(unavailable)?;
                Document::load(text.as_bytes())
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            }
            404 => Ok(None),
            other => Err(unavailable(format!("answered {other}"))),
        }
    }

    async fn save(
        &self,
        doc: &Document,
        expected_revision: u64,
    ) -> std::result::Result<(), StoreError> {
        let path = format!("/doc?expected={expected_revision}");
        let mut response = self
            .call(Method::Post, &path, Some(doc.to_json()))
            .await
            .map_err(unavailable)?;
        match response.status_code() {
            200 => Ok(()),
            409 => {
                let found = response
                    .text()
                    .await
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0);
                Err(StoreError::Conflict {
                    expected: expected_revision,
                    found,
                })
            }
            other => Err(unavailable(format!("answered {other}"))),
        }
    }

    async fn append_events(&self, entries: &[String]) -> std::result::Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let body = serde_json::to_string(entries).map_err(unavailable)?;
        let response = self
            .call(Method::Post, "/events", Some(body))
            .await
            .map_err(unavailable)?;
        match response.status_code() {
            200 => Ok(()),
            other => Err(unavailable(format!("answered {other} to the event log"))),
        }
    }

    async fn recent_events(&self, limit: usize) -> std::result::Result<Vec<String>, StoreError> {
        let mut response = self
            .call(Method::Get, &format!("/events?limit={limit}"), None)
            .await
            .map_err(unavailable)?;
        match response.status_code() {
            200 => response.json().await.map_err(unavailable),
            other => Err(unavailable(format!("answered {other} to the event log"))),
        }
    }
}
