//! The `otoroshi` compatibility profile: what a route (or every route)
//! speaks so that clients and backends written for Otoroshi keep working
//! unchanged (see the README's "Coming from Otoroshi").

use serde::{Deserialize, Serialize};

use super::validate::Checker;

/// How a route speaks Otoroshi's protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtoroshiProfile {
    /// The header carrying the client id with its secret (default
    /// `Otoroshi-Client-Id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_header: Option<String>,
    /// The header carrying the client secret (default
    /// `Otoroshi-Client-Secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_header: Option<String>,
    /// Send `Otoroshi-Request-Id`, `Otoroshi-Proxied-Host` and
    /// `Otoroshi-Request-Timestamp` to the backend.
    #[serde(default)]
    pub headers_in: bool,
    /// Answer clients with `Otoroshi-Request-Id` and, for a key,
    /// `Otoroshi-Daily-Calls-Remaining` / `Otoroshi-Monthly-Calls-Remaining`.
    #[serde(default)]
    pub headers_back: bool,
    /// Send the backend the `Otoroshi-Claim` info token (HS512 with
    /// `settings.otoroshi.sharedKey`) in this shape; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_token: Option<InfoToken>,
    /// Send `Otoroshi-State` and require the backend's
    /// `Otoroshi-State-Resp` (else 502); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    /// Lifetime of the info token and of the state tokens, in seconds
    /// (1–3600, default 30).
    #[serde(default = "thirty")]
    pub ttl_seconds: u64,
    /// The `aud` of the tokens: the Otoroshi service's name (default: the
    /// route's name, else its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Default for OtoroshiProfile {
    fn default() -> Self {
        Self {
            client_id_header: None,
            client_secret_header: None,
            headers_in: false,
            headers_back: false,
            info_token: None,
            challenge: None,
            ttl_seconds: thirty(),
            audience: None,
        }
    }
}

fn thirty() -> u64 {
    30
}

/// The shape of the `Otoroshi-Claim` info token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum InfoToken {
    /// `sub` `apikey:<clientId>`, `name`, `user_id`, the key's metadata,
    /// and `apikey`, `metadata`, `tags` as JSON text.
    Legacy,
    /// `sub` the key's name, `access_type`, and `apikey` as an object.
    Latest,
}

/// The version of the state challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Challenge {
    /// The backend echoes the random state it was sent.
    V1,
    /// The state comes in a signed token; the backend answers a token
    /// (`aud` `Otoroshi`, `state-resp`, `iat`, `exp`, `exp - iat` at most
    /// the ttl) signed with the shared key.
    V2,
}

/// The gateway's Otoroshi settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtoroshiSettings {
    /// The key signing `Otoroshi-Claim` and the state tokens (Otoroshi's
    /// `app.claim.sharedKey`): accepted on input only, sealed with the
    /// deployment key when saved.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(length(min = 1, max = 512)))]
    pub shared_key: Option<String>,
    /// The shared key, sealed (`sealed-v1:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_key_sealed: Option<String>,
    /// The profile of every route that has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<OtoroshiProfile>,
}

impl OtoroshiSettings {
    /// What the shared key is sealed for.
    pub const SEAL_CONTEXT: &'static str = "komainu:otoroshi-shared-key";

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Checks a profile at `at` (`routes[0].otoroshi`).
pub(crate) fn check_profile(c: &mut Checker, at: &str, p: &OtoroshiProfile) {
    for (field, name) in [
        ("clientIdHeader", &p.client_id_header),
        ("clientSecretHeader", &p.client_secret_header),
    ] {
        if let Some(name) = name {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.fail(
                    format!("{at}.{field}"),
                    format!("\"{name}\" is not a header name"),
                );
            }
        }
    }
    if !(1..=3600).contains(&p.ttl_seconds) {
        c.fail(format!("{at}.ttlSeconds"), "must be between 1 and 3600");
    }
    if let Some(aud) = &p.audience {
        if aud.is_empty() || aud.len() > 256 || aud.chars().any(char::is_control) {
            c.fail(
                format!("{at}.audience"),
                "must be 1 to 256 characters, without control characters",
            );
        }
    }
}

/// Checks the settings, knowing whether some route signs tokens.
pub(crate) fn check_settings(c: &mut Checker, s: &OtoroshiSettings, signs: bool) {
    if let Some(p) = &s.profile {
        check_profile(c, "settings.otoroshi.profile", p);
    }
    if let Some(key) = &s.shared_key {
        if key.is_empty() || key.len() > 512 {
            c.fail("settings.otoroshi.sharedKey", "must be 1 to 512 characters");
        }
    }
    if let Some(sealed) = &s.shared_key_sealed {
        if let Err(e) = crate::secret::check_sealed_syntax(sealed) {
            c.fail("settings.otoroshi.sharedKeySealed", e.to_string());
        }
    }
    if signs && s.shared_key.is_none() && s.shared_key_sealed.is_none() {
        c.fail(
            "settings.otoroshi.sharedKey",
            "routes send Otoroshi-Claim or the state challenge: set the key your backends verify them with (Otoroshi's app.claim.sharedKey, CLAIM_SHAREDKEY)",
        );
    }
}

impl OtoroshiProfile {
    /// Whether the profile signs tokens (info token or challenge).
    pub fn signs(&self) -> bool {
        self.info_token.is_some() || self.challenge.is_some()
    }
}
