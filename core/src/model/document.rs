//! The configuration document: the whole configuration, versioned.

use serde::{Deserialize, Serialize};

use super::validate::{check_document, ValidationErrors};
use super::{ApiKey, AuthModule, Exporter, Group, Route, Settings};
use crate::secret::stored::seal_in_place;
use crate::secret::SealingKey;

/// The document format this version reads and writes.
pub const FORMAT: u32 = 1;

/// The whole configuration: what `GET /api/export` returns, what
/// `POST /api/import` accepts, and what the `file:` store keeps on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Document {
    /// Document format, always [`FORMAT`].
    #[cfg_attr(test, schemars(range(min = 1, max = 1)))]
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
    /// Where events are exported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exporters: Vec<Exporter>,
    /// How people log in (the UI, the admin API, private routes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_modules: Vec<AuthModule>,
    /// Gateway-wide settings.
    #[serde(default)]
    pub settings: Settings,
    /// State private to one store (the claim signing secret): kept by the
    /// `file:` store, never exported, ignored on import.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, schemars(skip))]
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

/// An admin API key: a client id and the stored forms of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminKey {
    /// The admin client id (the `who` of audit events).
    pub client_id: String,
    /// The secret in clear, when given by flag or Worker secret: kept in
    /// memory only, never serialized.
    #[serde(skip)]
    pub client_secret: Option<String>,
    /// The verifier of the secret (as an API key's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_hash: Option<String>,
    /// The sealed HMAC key of the secret (as an API key's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<String>,
}

impl AdminKey {
    /// The admin key given as `clientId:clientSecret` (a flag, a Worker
    /// secret); its secret stays in memory.
    pub fn from_pair(pair: &str) -> Result<Self, String> {
        match pair.split_once(':') {
            Some((id, secret)) if !id.is_empty() => {
                super::check_secret(secret)
                    .map_err(|rule| format!("the admin key's secret: {rule}"))?;
                Ok(Self {
                    client_id: id.to_owned(),
                    client_secret: Some(secret.to_owned()),
                    client_secret_hash: None,
                    client_secret_sealed: None,
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
            exporters: Vec::new(),
            auth_modules: Vec::new(),
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

    /// Parses and validates: the one way a document from outside becomes
    /// a configuration. Clear secrets stay in memory until
    /// [`Document::seal_secrets`] (every save does it).
    pub fn load(bytes: &[u8]) -> Result<Self, ValidationErrors> {
        let doc = Self::from_json(bytes)?;
        doc.validate()?;
        Ok(doc)
    }

    /// Checks references, formats and ranges, naming every field at fault.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        check_document(self)
    }

    /// Puts every secret in its stored forms ([`crate::secret::stored`]):
    /// clear secrets and legacy `hmac-sha256:` hashes become verifiers and,
    /// with the deployment key, sealed HMAC keys. Whether anything changed
    /// (a document to save again).
    pub fn seal_secrets(&mut self, key: Option<&SealingKey>) -> bool {
        let mut changed = false;
        for k in &mut self.apikeys {
            let wide = k.wants_wide_jwt_keys();
            changed |= seal_in_place(
                &k.client_id,
                Some(&mut k.client_secret),
                &mut k.client_secret_hash,
                &mut k.client_secret_sealed,
                key,
                wide,
            );
            changed |= seal_in_place(
                &k.client_id,
                None,
                &mut k.rotation.previous_secret_hash,
                &mut k.rotation.previous_secret_sealed,
                key,
                false,
            );
        }
        if let Some(key) = key {
            for e in &mut self.exporters {
                if let Some(secret) = e.secret.take() {
                    e.secret_sealed = Some(key.seal_bytes(&e.seal_context(), secret.as_bytes()));
                    changed = true;
                }
            }
            let otoroshi = &mut self.settings.otoroshi;
            if let Some(secret) = otoroshi.shared_key.take() {
                otoroshi.shared_key_sealed =
                    Some(key.seal_bytes(super::OtoroshiSettings::SEAL_CONTEXT, secret.as_bytes()));
                changed = true;
            }
            for m in &mut self.auth_modules {
                if let Some(secret) = m.client_secret.take() {
                    m.client_secret_sealed =
                        Some(key.seal_bytes(&m.seal_context(), secret.as_bytes()));
                    changed = true;
                }
            }
        }
        for k in self.local.iter_mut().flat_map(|l| l.admin_keys.iter_mut()) {
            changed |= seal_in_place(
                &k.client_id,
                Some(&mut k.client_secret),
                &mut k.client_secret_hash,
                &mut k.client_secret_sealed,
                key,
                false,
            );
        }
        changed
    }

    /// The keys whose previous secret (rotation grace) stops working
    /// within `within_ms` of `now_ms`: client id and when (Unix ms).
    pub fn rotations_ending(&self, now_ms: u64, within_ms: u64) -> Vec<(&str, u64)> {
        self.apikeys
            .iter()
            .filter_map(|k| {
                let at = crate::time::parse_rfc3339(k.rotation.previous_expires_at.as_deref()?)?;
                (at > now_ms && at - now_ms <= within_ms).then_some((k.client_id.as_str(), at))
            })
            .collect()
    }

    /// The document as exported: no store-private state, no clear secret,
    /// no usable key (verifiers and sealed values only).
    pub fn to_export(&self) -> Self {
        let mut doc = self.clone();
        doc.local = None;
        doc.seal_secrets(None);
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
    use crate::secret::{SecretHash, Verifier, HASH_PREFIX};

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
    fn sealing_keeps_no_clear_secret_and_no_signing_key() {
        let mut doc = Document::load(SAMPLE.as_bytes()).unwrap();
        let deployment =
            SealingKey::from_text("a-deployment-key-of-at-least-32-characters").unwrap();
        assert!(doc.seal_secrets(Some(&deployment)));
        assert!(
            !doc.seal_secrets(Some(&deployment)),
            "sealing twice changes nothing"
        );
        let key = &doc.apikeys[0];
        assert!(key.client_secret.is_none());
        let verifier = Verifier::parse(key.client_secret_hash.as_deref().unwrap()).unwrap();
        assert!(verifier.verify("mobile", b"mobile-s3cret-0123"));
        let sealed = key.client_secret_sealed.as_deref().unwrap();
        assert_eq!(
            deployment.open("mobile", sealed).unwrap(),
            SecretHash::from_secret(b"mobile-s3cret-0123")
        );
        let json = doc.to_json();
        assert!(!json.contains("mobile-s3cret-0123"));
        assert!(!json.contains(HASH_PREFIX));
        assert_eq!(Document::load(json.as_bytes()).unwrap(), doc);
    }

    #[test]
    fn legacy_hashes_are_converted_and_never_exported() {
        let legacy = SecretHash::from_secret(b"mobile-s3cret-0123").to_text();
        let text = SAMPLE.replace(
            r#""clientSecret": "mobile-s3cret-0123""#,
            &format!(r#""clientSecretHash": "{legacy}""#),
        );
        let doc = Document::load(text.as_bytes()).unwrap();
        let export = doc.to_export().to_json();
        assert!(
            !export.contains(&legacy) && !export.contains(HASH_PREFIX),
            "{export}"
        );
        let exported = Document::load(export.as_bytes()).unwrap();
        let verifier =
            Verifier::parse(exported.apikeys[0].client_secret_hash.as_deref().unwrap()).unwrap();
        assert!(verifier.verify("mobile", b"mobile-s3cret-0123"));
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
