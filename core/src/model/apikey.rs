//! API keys: who may call which routes, how often.

use serde::{Deserialize, Serialize};

/// An API key (a client id and its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// Unique, public id of the client.
    #[cfg_attr(test, schemars(regex(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")))]
    pub client_id: String,
    /// The secret in clear (16 to 512 characters; generated when left out):
    /// accepted on input only, sealed when saved and never written back.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(length(min = 16, max = 512)))]
    pub client_secret: Option<String>,
    /// The one-way verifier of the secret (`sha256:…`, see
    /// [`crate::secret::stored`]); documents of earlier versions hold
    /// `hmac-sha256:…` here, read and converted when saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_hash: Option<String>,
    /// The secret's HMAC key sealed with the deployment key (`sealed-v1:…`):
    /// what HS256 JWT verification needs, useless without that key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<String>,
    /// The HMAC algorithms of JWTs signed with the client secret: `HS256`
    /// (the default), `HS384`, `HS512` (Otoroshi's clients use all three).
    /// HS384 and HS512 need the secret given in clear (created, rotated,
    /// imported) after they were listed: it is then sealed for them too.
    #[serde(default = "hs256_only", skip_serializing_if = "is_hs256_only")]
    pub jwt_algorithms: Vec<HmacAlg>,
    /// Public keys (JWK) whose private keys sign this client's JWTs
    /// (ES256, EdDSA, RS256): nothing secret is stored for such a caller.
    /// A key with public keys and no secret has no secret at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwks: Vec<crate::auth::jwk::PublicJwk>,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Labels (sent to backends in Otoroshi's info token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Name → value (sent to backends in Otoroshi's info token).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Only `GET`, `HEAD` and `OPTIONS` calls (others: 403 `forbidden`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// On routes with the Otoroshi profile, the client id alone (the
    /// `x-api-key` header) is enough, as Otoroshi's `allowClientIdOnly`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_client_id_only: bool,
    /// A disabled key is refused (401).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// When the key stops working (RFC 3339); absent means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Route ids this key may call.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Groups of routes this key may call.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Call quotas; a window left out is unlimited.
    #[serde(default)]
    pub quotas: Quotas,
    /// Secret rotation: the grace period, and the previous secret while it lasts.
    #[serde(default, skip_serializing_if = "Rotation::is_default")]
    pub rotation: Rotation,
}

/// An HMAC algorithm of a JWT signed with the client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub enum HmacAlg {
    /// HMAC-SHA256.
    #[serde(rename = "HS256")]
    Hs256,
    /// HMAC-SHA384.
    #[serde(rename = "HS384")]
    Hs384,
    /// HMAC-SHA512.
    #[serde(rename = "HS512")]
    Hs512,
}

fn hs256_only() -> Vec<HmacAlg> {
    vec![HmacAlg::Hs256]
}

fn is_hs256_only(algs: &[HmacAlg]) -> bool {
    algs == [HmacAlg::Hs256]
}

impl ApiKey {
    /// Whether the key takes HS384 or HS512 JWTs (their keys are sealed
    /// beside HS256's).
    pub fn wants_wide_jwt_keys(&self) -> bool {
        self.jwt_algorithms
            .iter()
            .any(|a| matches!(a, HmacAlg::Hs384 | HmacAlg::Hs512))
    }
}

/// Secret rotation settings and state of a key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rotation {
    /// Seconds the previous secret keeps working after a rotation (0: none).
    #[serde(default)]
    pub grace_seconds: u64,
    /// The previous secret's verifier, during the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_hash: Option<String>,
    /// The previous secret's sealed HMAC key, during the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_sealed: Option<String>,
    /// When the previous secret stops working (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<String>,
}

impl Rotation {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Per-key call quotas. Days and months are UTC calendar windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quotas {
    /// Calls allowed per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_second: Option<u64>,
    /// Calls allowed per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u64>,
    /// Calls allowed per UTC month.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_month: Option<u64>,
}

impl Quotas {
    /// Whether any window is limited.
    pub fn is_limited(&self) -> bool {
        self.per_second.is_some() || self.per_day.is_some() || self.per_month.is_some()
    }
}

fn yes() -> bool {
    true
}
