//! An admin API client for tests, recording which documented operations
//! were exercised and with which statuses.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::Method;

use crate::client::{Client, Reply};
use crate::gateway::ADMIN_KEY;

/// (method, path template, status) of every call made.
pub type Calls = Arc<Mutex<BTreeSet<(String, String, u16)>>>;

/// A client of one admin API.
#[derive(Clone)]
pub struct Admin {
    base: String,
    client: Client,
    auth: String,
    /// The calls made, by operation.
    pub calls: Calls,
}

impl Admin {
    /// A client of the admin API at `base` (`http://127.0.0.1:port`) with the harness admin key.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client: Client::default(),
            auth: format!("Basic {}", STANDARD.encode(ADMIN_KEY)),
            calls: Calls::default(),
        }
    }

    /// The same API with other credentials (`None`: none at all).
    pub fn with_auth(&self, auth: Option<&str>) -> Self {
        Self {
            auth: auth.unwrap_or("").to_owned(),
            ..self.clone()
        }
    }

    /// Calls `method path` with a raw body.
    pub async fn raw(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let url = format!("{}{path}", self.base);
        let mut headers = vec![("content-type", "application/json")];
        if !self.auth.is_empty() {
            headers.push(("authorization", self.auth.as_str()));
        }
        let reply = self.client.send(method.clone(), &url, &headers, body).await;
        let template = template(path.split('?').next().unwrap_or(path));
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((method.to_string(), template, reply.status.as_u16()));
        reply
    }

    /// Creates an entity (`POST path`), which must answer 201; its JSON.
    pub async fn create(&self, path: &str, entity: serde_json::Value) -> serde_json::Value {
        let r = self.call(http::Method::POST, path, entity).await;
        r.expect_status(http::StatusCode::CREATED);
        r.json()
    }

    /// Creates an API key and returns the secret generated for it.
    pub async fn create_key(&self, key: serde_json::Value) -> String {
        self.create("/api/apikeys", key).await["clientSecret"]
            .as_str()
            .expect("a generated secret")
            .to_owned()
    }

    /// Calls `method path` with a JSON body (`Null`: no body).
    pub async fn call(&self, method: Method, path: &str, body: serde_json::Value) -> Reply {
        let body = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        self.raw(method, path, body).await
    }
}

/// The OpenAPI path template of a concrete admin path.
pub fn template(path: &str) -> String {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "apikeys", _, tail @ ("rotate" | "quotas")] => {
            format!("/api/apikeys/{{clientId}}/{tail}")
        }
        ["api", "apikeys", _] => "/api/apikeys/{clientId}".into(),
        ["api", "routes", _, "health"] => "/api/routes/{id}/health".into(),
        ["api", "exporters", _, tail @ ("status" | "test")] => {
            format!("/api/exporters/{{id}}/{tail}")
        }
        ["api", "auth-modules", _, "revoke-sessions"] => {
            "/api/auth-modules/{id}/revoke-sessions".into()
        }
        ["api", "login", _] => "/api/login/{id}".into(),
        ["api", "login", _, "callback"] => "/api/login/{id}/callback".into(),
        ["api", collection @ ("routes" | "groups" | "exporters" | "auth-modules"), _] => {
            format!("/api/{collection}/{{id}}")
        }
        _ => path.to_owned(),
    }
}
