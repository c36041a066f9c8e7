//! The `otoroshi` compatibility profile on the request path: Otoroshi's
//! headers to the backend (request id, proxied host, the `Otoroshi-Claim`
//! info token), its state challenge, and its headers back to the client.
//!
//! Compiled once per revision ([`Profile::compile`]); a route without the
//! profile pays one `Option` check per request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha512;
use subtle::ConstantTimeEq;

use super::head::HeaderLookup;
use crate::model::{Challenge, InfoToken, OtoroshiProfile};
use crate::GatewayError;

/// Otoroshi's issuer, in its tokens (`app.headers.jwt.issuer`).
pub const ISSUER: &str = "Otoroshi";
/// `RemainingQuotas.MaxValue`: Otoroshi's "unlimited".
pub const UNLIMITED: u64 = 10_000_000;
/// Leeway on the expiry of the backend's state token, in seconds (the
/// default `state_resp_leeway`).
const LEEWAY_S: u64 = 10;

/// The credential headers Otoroshi reads, besides a route's custom names
/// (lower case).
pub const CREDENTIAL_HEADERS: [&str; 5] = [
    "otoroshi-client-id",
    "otoroshi-client-secret",
    "otoroshi-authorization",
    "otoroshi-token",
    "x-api-key",
];

/// The headers the profile sets on the way to the backend: a client's own
/// values never pass.
const SET_HEADERS: [&str; 5] = [
    "otoroshi-claim",
    "otoroshi-state",
    "otoroshi-request-id",
    "otoroshi-proxied-host",
    "otoroshi-request-timestamp",
];

/// `{"typ":"JWT","alg":"HS512"}`, base64url-encoded (Otoroshi's header).
const HS512_HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9";

/// A route's profile, ready for the request path.
#[derive(Debug)]
pub(crate) struct Profile {
    /// The client id header of the header pair (lower case).
    pub(crate) id_header: Box<str>,
    /// The client secret header (lower case).
    pub(crate) secret_header: Box<str>,
    headers_in: bool,
    headers_back: bool,
    info_token: Option<InfoToken>,
    challenge: Option<Challenge>,
    ttl_s: u64,
    audience: Box<str>,
}

impl Profile {
    /// The profile of `route` (its own, else the settings'), if any.
    pub(crate) fn compile(
        route: &crate::model::Route,
        settings: &crate::model::Settings,
    ) -> Option<Self> {
        let p: &OtoroshiProfile = route
            .otoroshi
            .as_ref()
            .or(settings.otoroshi.profile.as_ref())?;
        let lower = |name: &Option<String>, default: &str| {
            name.as_deref()
                .unwrap_or(default)
                .to_ascii_lowercase()
                .into_boxed_str()
        };
        Some(Self {
            id_header: lower(&p.client_id_header, "otoroshi-client-id"),
            secret_header: lower(&p.client_secret_header, "otoroshi-client-secret"),
            headers_in: p.headers_in,
            headers_back: p.headers_back,
            info_token: p.info_token,
            challenge: p.challenge,
            ttl_s: p.ttl_seconds,
            audience: p
                .audience
                .clone()
                .unwrap_or_else(|| {
                    if route.name.is_empty() {
                        route.id.clone()
                    } else {
                        route.name.clone()
                    }
                })
                .into_boxed_str(),
        })
    }

    /// Whether the client's header `name` stays out of the forwarded
    /// request: Otoroshi's credential headers (the route's custom names
    /// too) and the headers the profile sets.
    pub(crate) fn drops(&self, name: &str) -> bool {
        CREDENTIAL_HEADERS
            .iter()
            .chain(&SET_HEADERS)
            .any(|h| h.eq_ignore_ascii_case(name))
            || self.id_header.eq_ignore_ascii_case(name)
            || self.secret_header.eq_ignore_ascii_case(name)
    }
}

/// Signs Otoroshi's tokens with the shared key (HS512).
#[derive(Clone)]
pub(crate) struct Signer {
    mac: Hmac<Sha512>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(…)")
    }
}

impl Signer {
    /// A signer for the shared key.
    pub(crate) fn new(key: &[u8]) -> Self {
        Self {
            mac: <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable_hmac()),
        }
    }

    fn tag(&self, message: &[u8]) -> [u8; 64] {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// A compact HS512 JWS of `payload`.
    pub(crate) fn sign(&self, payload: &serde_json::Value) -> String {
        let mut token = String::with_capacity(512);
        token.push_str(HS512_HEADER);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload.to_string(), &mut token);
        let tag = self.tag(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// The payload of an HS512 token signed with the shared key, if it is
    /// one.
    fn open(&self, token: &str) -> Option<serde_json::Value> {
        let (input, signature) = token.rsplit_once('.')?;
        let (header, payload) = input.split_once('.')?;
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header["alg"] != "HS512" {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let expected = self.tag(input.as_bytes());
        if signature.len() != expected.len() || !bool::from(expected.ct_eq(&signature)) {
            return None;
        }
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

/// HMAC takes keys of any length: never reached.
fn unreachable_hmac() -> Hmac<Sha512> {
    <Hmac<Sha512> as Mac>::new_from_slice(b"k").unwrap_or_else(|_| unreachable_hmac())
}

/// Who is calling, as the info token tells it.
pub(crate) enum Caller<'a> {
    /// An API key.
    Key(&'a crate::auth::CompiledKey),
    /// A person on a private route.
    Person(&'a crate::login::Person),
    /// Nobody (a public route).
    Public,
}

/// What the profile adds to one forwarded request.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// `Otoroshi-Claim`.
    pub(crate) claim: Option<String>,
    /// `Otoroshi-State`.
    pub(crate) state: Option<String>,
    /// `Otoroshi-Request-Timestamp`, when `headersIn`.
    pub(crate) timestamp: Option<String>,
    /// `headersIn`: request id and proxied host too.
    pub(crate) headers_in: bool,
}

impl Outgoing {
    /// Emits the profile's headers (names in lower case).
    pub(crate) fn emit(
        &self,
        request_id: &str,
        host: &str,
        emit: &mut impl FnMut(&'static str, &[u8]),
    ) {
        if self.headers_in {
            emit("otoroshi-request-id", request_id.as_bytes());
            if !host.is_empty() {
                emit("otoroshi-proxied-host", host.as_bytes());
            }
            if let Some(ts) = &self.timestamp {
                emit("otoroshi-request-timestamp", ts.as_bytes());
            }
        }
        if let Some(claim) = &self.claim {
            emit("otoroshi-claim", claim.as_bytes());
        }
        if let Some(state) = &self.state {
            emit("otoroshi-state", state.as_bytes());
        }
    }
}

/// What the respond phase checks and adds for a request on a profile
/// route.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The state sent, and the challenge's version.
    state: Option<(Box<str>, Challenge)>,
    ttl_s: u64,
    /// Otoroshi's headers go back to the client.
    pub(crate) headers_back: bool,
}

impl Exchange {
    /// Whether the backend's response head answers the challenge (if
    /// any): 502 `bad_gateway` otherwise, naming what is wrong.
    pub(crate) fn check(
        &self,
        signer: Option<&Signer>,
        headers: &impl HeaderLookup,
        now_ms: u64,
    ) -> Result<(), GatewayError> {
        let Some((state, version)) = &self.state else {
            return Ok(());
        };
        let refuse = |why: &str| {
            Err(GatewayError::BadAnswer(format!(
                "it failed Otoroshi's state challenge: {why}"
            )))
        };
        let Some(resp) = headers.first("otoroshi-state-resp") else {
            return refuse("no Otoroshi-State-Resp header in its response");
        };
        match version {
            Challenge::V1 => {
                if resp.len() == state.len() && bool::from(resp.ct_eq(state.as_bytes())) {
                    Ok(())
                } else {
                    refuse("Otoroshi-State-Resp is not the state it was sent (V1)")
                }
            }
            Challenge::V2 => {
                let Some(payload) = std::str::from_utf8(resp)
                    .ok()
                    .and_then(|t| signer.and_then(|s| s.open(t)))
                else {
                    return refuse(
                        "Otoroshi-State-Resp is not a JWT signed HS512 with the shared key (V2)",
                    );
                };
                let aud_ok = match &payload["aud"] {
                    serde_json::Value::String(a) => a == ISSUER,
                    serde_json::Value::Array(a) => a.iter().any(|v| v == ISSUER),
                    _ => false,
                };
                if !aud_ok {
                    return refuse("the state token's aud is not \"Otoroshi\" (V2)");
                }
                let state_ok = payload["state-resp"]
                    .as_str()
                    .is_some_and(|s| bool::from(s.as_bytes().ct_eq(state.as_bytes())));
                if !state_ok {
                    return refuse(
                        "the state token's state-resp is not the state it was sent (V2)",
                    );
                }
                let (Some(iat), Some(exp)) = (payload["iat"].as_u64(), payload["exp"].as_u64())
                else {
                    return refuse("the state token needs iat and exp (V2)");
                };
                if exp.saturating_sub(iat) > self.ttl_s {
                    return refuse(&format!(
                        "the state token lives {} s, more than the {} s allowed (V2)",
                        exp.saturating_sub(iat),
                        self.ttl_s
                    ));
                }
                if exp + LEEWAY_S < now_ms / 1000 {
                    return refuse("the state token has expired (V2)");
                }
                Ok(())
            }
        }
    }

    /// Otoroshi's headers back to the client: the request id and, for a
    /// key, the calls left today and this month (Otoroshi's 10000000 for a
    /// window without a limit).
    pub(crate) fn emit_back(
        &self,
        ctx: &super::RequestContext,
        emit: &mut impl FnMut(&'static str, &[u8]),
    ) {
        if !self.headers_back {
            return;
        }
        emit("otoroshi-request-id", ctx.request_id.as_str().as_bytes());
        if ctx.client_id.is_none() {
            return;
        }
        let remaining = |w| {
            ctx.quota
                .as_ref()
                .and_then(|q| q.remaining(w))
                .unwrap_or(UNLIMITED)
        };
        let mut digits = [0u8; 20];
        emit(
            "otoroshi-daily-calls-remaining",
            crate::text::decimal(remaining(crate::quota::Window::Day), &mut digits),
        );
        emit(
            "otoroshi-monthly-calls-remaining",
            crate::text::decimal(remaining(crate::quota::Window::Month), &mut digits),
        );
    }
}

/// Otoroshi's request timestamp (`yyyy-MM-dd'T'HH:mm:ss.SSS+00:00`).
fn timestamp(now_ms: u64) -> String {
    let text = crate::time::format_rfc3339(now_ms);
    format!("{}.{:03}+00:00", text.trim_end_matches('Z'), now_ms % 1000)
}

impl Profile {
    /// The headers for one request, and what its response is checked for.
    /// `signer` is `Some` whenever the profile signs (validated).
    pub(crate) fn outgoing(
        &self,
        signer: Option<&Signer>,
        caller: Caller<'_>,
        now_ms: u64,
        request_id: &str,
    ) -> (Outgoing, Option<Box<Exchange>>) {
        let iat = now_ms / 1000;
        let exp = iat + self.ttl_s;
        let claim = match (self.info_token, signer) {
            (Some(shape), Some(signer)) => {
                Some(signer.sign(&self.info_token_payload(shape, &caller, iat, exp, request_id)))
            }
            _ => None,
        };
        let (state, sent) = match (self.challenge, signer) {
            (Some(version), Some(signer)) => {
                // 128 hex characters only the shared key's holder could
                // compute, unique per request (its id is random).
                let value: String = signer
                    .tag(format!("komainu-state:{request_id}").as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let sent = match version {
                    Challenge::V1 => value.clone(),
                    Challenge::V2 => signer.sign(&serde_json::json!({
                        "iss": ISSUER,
                        "sub": ISSUER,
                        "aud": &*self.audience,
                        "exp": exp,
                        "iat": iat,
                        "nbr": iat,
                        "jti": request_id,
                        "state": value,
                    })),
                };
                (Some((value.into_boxed_str(), version)), Some(sent))
            }
            _ => (None, None),
        };
        let exchange = (state.is_some() || self.headers_back).then(|| {
            Box::new(Exchange {
                state,
                ttl_s: self.ttl_s,
                headers_back: self.headers_back,
            })
        });
        (
            Outgoing {
                claim,
                state: sent,
                timestamp: self.headers_in.then(|| timestamp(now_ms)),
                headers_in: self.headers_in,
            },
            exchange,
        )
    }

    fn info_token_payload(
        &self,
        shape: InfoToken,
        caller: &Caller<'_>,
        iat: u64,
        exp: u64,
        jti: &str,
    ) -> serde_json::Value {
        let mut claims = serde_json::json!({
            "iss": ISSUER,
            "aud": &*self.audience,
            "exp": exp,
            "iat": iat,
            "nbr": iat,
            "jti": jti,
        });
        let light = |k: &crate::auth::CompiledKey| {
            serde_json::json!({
                "clientId": &*k.client_id,
                "clientName": &*k.name,
                "metadata": k.metadata.iter().map(|(n, v)| (n.to_string(), serde_json::Value::from(&**v))).collect::<serde_json::Map<_, _>>(),
                "tags": k.tags.iter().map(|t| &**t).collect::<Vec<_>>(),
            })
        };
        match (shape, caller) {
            (InfoToken::Legacy, Caller::Key(k)) => {
                let light = light(k);
                // The key's metadata as claims, as Otoroshi's `withClaims`.
                for (n, v) in k.metadata.iter() {
                    claims[n.to_string()] = (&**v).into();
                }
                claims["sub"] = format!("apikey:{}", k.client_id).into();
                claims["name"] = (&*k.name).into();
                claims["user_id"] = (&*k.client_id).into();
                claims["metadata"] = light["metadata"].to_string().into();
                claims["tags"] = light["tags"].to_string().into();
                claims["apikey"] = light.to_string().into();
            }
            (InfoToken::Legacy, Caller::Person(p)) => {
                claims["sub"] = format!("pa:{}", p.email.as_deref().unwrap_or(&p.subject)).into();
                if let Some(email) = &p.email {
                    claims["email"] = email.as_str().into();
                }
                if let Some(name) = &p.name {
                    claims["name"] = name.as_str().into();
                }
            }
            (InfoToken::Legacy, Caller::Public) => claims["sub"] = "--".into(),
            (InfoToken::Latest, Caller::Key(k)) => {
                claims["sub"] = (&*k.name).into();
                claims["access_type"] = "apikey".into();
                claims["apikey"] = light(k);
            }
            (InfoToken::Latest, Caller::Person(p)) => {
                claims["sub"] = p.email.as_deref().unwrap_or(&p.subject).into();
                claims["access_type"] = "user".into();
                claims["user"] = serde_json::json!({
                    "email": p.email,
                    "name": p.name,
                    "roles": p.roles,
                });
            }
            (InfoToken::Latest, Caller::Public) => {
                claims["sub"] = "public".into();
                claims["access_type"] = "public".into();
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hs512_with_the_shared_key() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(&serde_json::json!({"a": 1}));
        assert!(token.starts_with(HS512_HEADER));
        assert_eq!(signer.open(&token).unwrap()["a"], 1);
        assert!(Signer::new(b"other").open(&token).is_none());
        // The reference HMAC over the same input.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(b"secret").unwrap();
        mac.update(input.as_bytes());
        assert_eq!(
            URL_SAFE_NO_PAD.decode(sig).unwrap(),
            mac.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn the_timestamp_has_otoroshis_shape() {
        assert_eq!(
            timestamp(1_733_213_002_113),
            "2024-12-03T08:03:22.113+00:00"
        );
    }
}
