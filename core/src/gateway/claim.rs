//! The `Komainu-Claim` JWT that tells a backend who called, through which
//! route, and proves the call came through the gateway.

use crate::auth::jwt;
use crate::model::Settings;
use crate::secret::SecretHash;
use crate::text::push_u64;

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
        payload.push_str("{\"iss\":");
        payload.push_str(&self.issuer_json);
        if let Some(sub) = sub {
            payload.push_str(",\"sub\":\"");
            payload.push_str(sub);
            payload.push('"');
        }
        payload.push_str(",\"aud\":\"");
        payload.push_str(aud);
        payload.push_str("\",\"iat\":");
        push_u64(&mut payload, iat);
        payload.push_str(",\"exp\":");
        push_u64(&mut payload, iat + self.ttl_s);
        payload.push_str(",\"jti\":\"");
        payload.push_str(jti);
        payload.push_str("\"}");
        jwt::sign(&self.key, &payload)
    }
}
