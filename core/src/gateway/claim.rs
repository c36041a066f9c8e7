//! The `Komainu-Claim` JWT that tells a backend who called, through which
//! route, and proves the call came through the gateway.

use std::fmt::Write as _;

use crate::auth::jwt;
use crate::model::Settings;
use crate::secret::SecretHash;

/// Signs claims with the gateway's secret (HS256).
pub struct ClaimSigner {
    key: SecretHash,
    /// The issuer as a JSON string literal (quoted, escaped once).
    issuer_json: String,
    ttl_s: u64,
}

impl ClaimSigner {
    /// A signer for this secret and these settings.
    pub fn new(secret: &[u8], settings: &Settings) -> Self {
        Self {
            key: SecretHash::from_secret(secret),
            issuer_json: serde_json::to_string(&settings.claim_issuer)
                .unwrap_or_else(|_| "\"komainu\"".into()),
            ttl_s: settings.claim_ttl_seconds,
        }
    }

    /// The claim for one call: `iss`, `sub` (absent for public routes),
    /// `aud` (the route id), `iat`, `exp`, `jti` (the request id). Ids are
    /// validated to need no JSON escaping.
    pub fn sign(&self, sub: Option<&str>, aud: &str, now_ms: u64, jti: &str) -> String {
        let iat = now_ms / 1000;
        let mut payload = String::with_capacity(160);
        let _ = write!(payload, "{{\"iss\":{}", self.issuer_json);
        if let Some(sub) = sub {
            let _ = write!(payload, ",\"sub\":\"{sub}\"");
        }
        let _ = write!(
            payload,
            ",\"aud\":\"{aud}\",\"iat\":{iat},\"exp\":{},\"jti\":\"{jti}\"}}",
            iat + self.ttl_s
        );
        jwt::sign(&self.key, &payload)
    }
}
