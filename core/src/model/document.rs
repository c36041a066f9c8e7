//! The configuration document: the whole configuration, versioned.

use serde::{Deserialize, Serialize};

use super::validate::{check_document, ValidationErrors};
use super::{ApiKey, Group, Route, Settings};
use crate::secret::SecretHash;

/// The document format this version reads and writes.
pub const FORMAT: u32 = 1;

/// The whole configuration: what `GET /api/export` returns, what
/// `POST /api/import` accepts, and what the `file:` store keeps on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    /// Document format, always [`FORMAT`].
    pub format: u32,
    /// Configuration revision, bumped by every accepted change.
    #[serde(default)]
    pub revision: u64,
    /// Routes, in order.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// API keys (secrets as hashes only).
    #[serde(default)]
    pub apikeys: Vec<ApiKey>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Gateway-wide settings.
    #[serde(default)]
    pub settings: Settings,
    /// State private to one store (the claim signing secret): kept by the
    /// `file:` store, never exported, ignored on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalState>,
}

/// Store-private state, never part of an export.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalState {
    /// The secret that signs `Komainu-Claim` JWTs, when none is given by flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_secret: Option<String>,
    /// Admin API keys kept by the store (hashed), when none is given by flag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_keys: Vec<AdminKey>,
}

/// An admin API key: a client id and the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminKey {
    /// The admin client id (the `who` of audit events).
    pub client_id: String,
    /// The stored form of the secret.
    pub client_secret_hash: String,
}

impl AdminKey {
    /// The admin key given as `clientId:clientSecret` (a flag, a Worker
    /// secret), its secret hashed at once.
    pub fn from_pair(pair: &str) -> Result<Self, String> {
        match pair.split_once(':') {
            Some((id, secret)) if !id.is_empty() => {
                super::check_secret(secret)
                    .map_err(|rule| format!("the admin key's secret: {rule}"))?;
                Ok(Self {
                    client_id: id.to_owned(),
                    client_secret_hash: SecretHash::from_secret(secret.as_bytes()).to_text(),
                })
            }
            _ => Err(
                "the admin key must be clientId:clientSecret (e.g. admin:a-long-random-secret)"
                    .into(),
            ),
        }
    }
}

impl Default for Document {
    fn default() -> Self {
        Self {
            format: FORMAT,
            revision: 0,
            routes: Vec::new(),
            apikeys: Vec::new(),
            groups: Vec::new(),
            settings: Settings::default(),
            local: None,
        }
    }
}

impl Document {
    /// Parses a document from JSON; a syntax or type error names the field
    /// (`routes[0].backend.targets[0].weight`).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(ValidationErrors::from_serde)
    }

    /// Parses, hashes clear secrets and validates: the one way a document
    /// from outside becomes a configuration.
    pub fn load(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        let mut doc = Self::from_json(bytes)?;
        doc.validate()?;
        doc.seal_secrets();
        Ok(doc)
    }

    /// Checks references, formats and ranges, naming every field at fault.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        check_document(self)
    }

    /// Replaces every clear `clientSecret` by its `clientSecretHash`.
    pub fn seal_secrets(&mut self) {
        for key in &mut self.apikeys {
            if let Some(secret) = key.client_secret.take() {
                key.client_secret_hash = Some(SecretHash::from_secret(secret.as_bytes()).to_text());
            }
        }
    }

    /// The document as exported: no store-private state, no clear secret.
    pub fn to_export(&self) -> Self {
        let mut doc = self.clone();
        doc.local = None;
        doc.seal_secrets();
        doc
    }

    /// The JSON text of the document (pretty-printed).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{
      "format": 1, "revision": 3,
      "groups": [{ "id": "default", "name": "Default" }],
      "routes": [{
        "id": "users", "hosts": ["api.example.com"], "paths": ["/users", "/users/{*rest}"],
        "methods": ["GET"], "backend": { "targets": [{ "url": "http://127.0.0.1:9000" }] },
        "groups": ["default"]
      }],
      "apikeys": [{ "clientId": "mobile", "clientSecret": "mobile-s3cret-0123", "groups": ["default"],
                    "quotas": { "perDay": 10 } }]
    }"#;

    #[test]
    fn load_hashes_clear_secrets_and_never_writes_them() {
        let doc = Document::load(SAMPLE.as_bytes()).unwrap();
        let key = &doc.apikeys[0];
        assert!(key.client_secret.is_none());
        let hash = SecretHash::parse(key.client_secret_hash.as_deref().unwrap()).unwrap();
        assert!(hash.verify(b"mobile-s3cret-0123"));
        let json = doc.to_json();
        assert!(!json.contains("mobile-s3cret-0123"));
        assert_eq!(Document::load(json.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_path() {
        let bad = SAMPLE
            .replace("\"timeoutMs\"", "x")
            .replace("\"weight\"", "x");
        let bad = bad.replace(
            r#""url": "http://127.0.0.1:9000""#,
            r#""url": "http://127.0.0.1:9000", "wieght": 2"#,
        );
        let err = Document::load(bad.as_bytes()).unwrap_err();
        let first = err.first().unwrap();
        assert_eq!(first.field, "routes[0].backend.targets[0].wieght");
        assert!(first.message.contains("wieght"), "{}", first.message);
    }

    #[test]
    fn validation_names_each_field_at_fault() {
        let bad = SAMPLE
            .replace("http://127.0.0.1:9000", "ftp://x")
            .replace(
                r#""groups": ["default"],
                    "quotas""#,
                r#""groups": ["nope"], "quotas""#,
            )
            .replace("\"GET\"", "\"get\"");
        let err = Document::load(bad.as_bytes()).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"routes[0].backend.targets[0].url"),
            "{fields:?}"
        );
        assert!(fields.contains(&"routes[0].methods[0]"), "{fields:?}");
        assert!(fields.contains(&"apikeys[0].groups[0]"), "{fields:?}");
    }

    #[test]
    fn export_drops_local_state() {
        let mut doc = Document::load(SAMPLE.as_bytes()).unwrap();
        doc.local = Some(LocalState {
            claim_secret: Some("x".into()),
            ..LocalState::default()
        });
        assert!(doc.to_export().local.is_none());
    }
}
