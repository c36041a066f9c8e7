//! The `Komainu-Claim` JWT that tells a backend who called, through which
//! route, and proves the call came through the gateway.

use crate::auth::jwt;
use crate::model::Settings;
use crate::secret::SecretHash;
use crate::text::{push_u64, with_scratch};

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

    /// The claim for a person's call on a private route: `sub` is the
    /// person's subject, with `email`, `name`, `roles` and `authModule`
    /// beside the usual `iss`, `aud`, `iat`, `exp`, `jti`.
    pub fn sign_person(
        &self,
        person: &crate::login::Person,
        aud: &str,
        now_ms: u64,
        jti: &str,
    ) -> String {
        let iat = now_ms / 1000;
        let mut claims = serde_json::json!({
            "iss": serde_json::from_str::<serde_json::Value>(&self.issuer_json).unwrap_or_default(),
            "sub": person.subject,
            "aud": aud,
            "iat": iat,
            "exp": iat + self.ttl_s,
            "jti": jti,
            "authModule": person.module,
            "roles": person.roles,
        });
        if let Some(email) = &person.email {
            claims["email"] = email.as_str().into();
        }
        if let Some(name) = &person.name {
            claims["name"] = name.as_str().into();
        }
        jwt::sign(&self.key, claims.to_string().as_bytes())
    }

    /// The claim for one call: `iss`, `sub` (absent for public routes),
    /// `aud` (the route id), `iat`, `exp`, `jti` (the request id). Ids are
    /// validated to need no JSON escaping.
    pub fn sign(&self, sub: Option<&str>, aud: &str, now_ms: u64, jti: &str) -> String {
        let iat = now_ms / 1000;
        with_scratch(|payload| {
            payload.extend_from_slice(b"{\"iss\":");
            payload.extend_from_slice(self.issuer_json.as_bytes());
            if let Some(sub) = sub {
                payload.extend_from_slice(b",\"sub\":\"");
                payload.extend_from_slice(sub.as_bytes());
                payload.push(b'"');
            }
            payload.extend_from_slice(b",\"aud\":\"");
            payload.extend_from_slice(aud.as_bytes());
            payload.extend_from_slice(b"\",\"iat\":");
            push_u64(payload, iat);
            payload.extend_from_slice(b",\"exp\":");
            push_u64(payload, iat + self.ttl_s);
            payload.extend_from_slice(b",\"jti\":\"");
            payload.extend_from_slice(jti.as_bytes());
            payload.extend_from_slice(b"\"}");
            jwt::sign(&self.key, &payload)
        })
    }
}
