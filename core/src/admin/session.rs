//! Browser sessions for the admin API: how the web UI logs in.
//!
//! A person proves an admin key once (`POST /api/session` with the key, as
//! any admin call would) and gets a session cookie: HttpOnly (no script
//! reads it), `SameSite=Strict` (no other site's page sends it), `Secure`
//! on https, scoped to the admin path, expiring after [`LIFETIME_MS`]. The
//! key itself is never stored by the browser.
//!
//! Sessions need no server-side state, so that every instance and every
//! Worker isolate accepts them: the cookie is a token signed with the
//! [`SessionKey`] (derived from the deployment key). A session names the
//! admin key it came from and dies with it: when that key is removed, its
//! sessions are refused.
//!
//! Writes made with a session must carry the `Komainu-CSRF` header, whose
//! value `GET /api/session` gives (bound to the session): a page of another
//! site can make the browser send the cookie (were `SameSite` ever not
//! honoured) but can neither read that value nor set the header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, Method};
use subtle::ConstantTimeEq;

use super::AdminError;
use crate::auth::KeyIndex;
use crate::secret::{SealingKey, SecretHash};

/// The session cookie's name.
pub const COOKIE: &str = "komainu_session";

/// The header a write made with a session carries (the CSRF defence).
pub const CSRF_HEADER: &str = "komainu-csrf";

/// How long a session lasts: 8 hours from login.
pub const LIFETIME_MS: u64 = 8 * 3600 * 1000;

/// The key signing session tokens.
pub struct SessionKey(SecretHash);

impl SessionKey {
    /// The session key of a deployment: derived from its deployment key,
    /// so every instance given that key accepts the same sessions.
    pub fn from_deployment_key(key: &SealingKey) -> Self {
        Self(key.derive("admin-session"))
    }

    /// A session key from other secret material (a deployment without a
    /// deployment key: random bytes made at start, or the admin key's own
    /// secret), kept apart from any other use of that material.
    pub fn from_material(material: &[u8]) -> Self {
        Self(SecretHash::from_secret(
            &SecretHash::from_secret(b"komainu/admin-session/v1").mac(material),
        ))
    }

    fn sign(&self, purpose: &[u8], payload: &str) -> [u8; 32] {
        let mut message = Vec::with_capacity(purpose.len() + 1 + payload.len());
        message.extend_from_slice(purpose);
        message.push(0);
        message.extend_from_slice(payload.as_bytes());
        self.0.mac(&message)
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

/// A session, read from a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The admin key that logged in (its client id).
    pub actor: String,
    /// When it started (Unix ms).
    pub issued_ms: u64,
    /// When it ends (Unix ms).
    pub expires_ms: u64,
    /// The signed part of the token (what the CSRF value is bound to).
    payload: String,
}

impl Session {
    /// A new session for `actor`, starting at `now_ms`; `nonce` makes each
    /// login's token and CSRF value its own.
    pub fn start(actor: &str, now_ms: u64, nonce: &[u8]) -> Self {
        let expires_ms = now_ms.saturating_add(LIFETIME_MS);
        let payload = format!(
            "v1.{now_ms}.{expires_ms}.{}.{}",
            URL_SAFE_NO_PAD.encode(&nonce[..nonce.len().min(16)]),
            URL_SAFE_NO_PAD.encode(actor.as_bytes()),
        );
        Self {
            actor: actor.to_owned(),
            issued_ms: now_ms,
            expires_ms,
            payload,
        }
    }

    /// The cookie value.
    pub fn token(&self, key: &SessionKey) -> String {
        format!(
            "{}.{}",
            self.payload,
            URL_SAFE_NO_PAD.encode(key.sign(b"session", &self.payload))
        )
    }

    /// The value writes made with this session carry in `Komainu-CSRF`.
    pub fn csrf_token(&self, key: &SessionKey) -> String {
        URL_SAFE_NO_PAD.encode(key.sign(b"csrf", &self.payload))
    }

    /// Reads a token: its signature, its expiry. `None` for anything else
    /// than a valid, current session.
    pub fn verify(token: &str, key: &SessionKey, now_ms: u64) -> Option<Self> {
        let (payload, tag) = token.rsplit_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = key.sign(b"session", payload);
        if tag.len() != expected.len() || !bool::from(expected.ct_eq(&tag)) {
            return None;
        }
        let mut parts = payload.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let issued_ms: u64 = parts.next()?.parse().ok()?;
        let expires_ms: u64 = parts.next()?.parse().ok()?;
        let _nonce = parts.next()?;
        let actor = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        if parts.next().is_some()
            || now_ms >= expires_ms
            || issued_ms > now_ms.saturating_add(60_000)
        {
            return None;
        }
        Some(Self {
            actor,
            issued_ms,
            expires_ms,
            payload: payload.to_owned(),
        })
    }

    /// Whether `headers` carry this session's CSRF value, compared in
    /// constant time.
    pub fn csrf_ok(&self, key: &SessionKey, headers: &HeaderMap) -> bool {
        let Some(sent) = headers.get(CSRF_HEADER) else {
            return false;
        };
        let expected = self.csrf_token(key);
        sent.as_bytes().len() == expected.len()
            && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
    }
}

/// How a caller proved it is an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// An admin key sent with the request.
    Key(String),
    /// A browser session.
    Session(Session),
}

impl Proof {
    /// The admin key's client id (the actor named in audit events).
    pub fn actor(&self) -> &str {
        match self {
            Proof::Key(id) => id,
            Proof::Session(s) => &s.actor,
        }
    }
}

/// What admin calls are checked against: the admin keys, and the key of
/// the sessions they open (none: this deployment offers no sessions).
#[derive(Clone, Copy)]
pub struct AdminAuth<'a> {
    /// The admin keys.
    pub keys: &'a KeyIndex,
    /// The session key.
    pub sessions: Option<&'a SessionKey>,
}

/// The session cookie's value in `headers`, if one is sent.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value.trim_matches('"'))
        })
}

/// The session a request carries: valid, current, of an admin key that
/// still exists, and, for a write, with its CSRF value. `Ok(None)` when no
/// session cookie is sent.
pub fn from_request(
    auth: &AdminAuth<'_>,
    method: &Method,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Option<Session>, AdminError> {
    let Some(token) = cookie_value(headers) else {
        return Ok(None);
    };
    let expired = || {
        AdminError::unauthorized(
            "the session has ended or is not valid: log in again with the admin key",
        )
    };
    let key = auth.sessions.ok_or_else(expired)?;
    let session = Session::verify(token, key, now_ms).ok_or_else(expired)?;
    if auth.keys.get(&session.actor).is_none() {
        return Err(expired());
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !session.csrf_ok(key, headers) {
        return Err(AdminError::forbidden(
            "csrf",
            "a change made with a session carries its Komainu-CSRF header (from GET /api/session)",
        ));
    }
    Ok(Some(session))
}

/// Whether a browser says this write comes from a page of another origin
/// (`Sec-Fetch-Site` other than `same-origin` or `none`, which a page
/// cannot forge). Tools that send no such header are not judged by it.
pub fn is_cross_site_write(method: &Method, headers: &HeaderMap) -> bool {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    !safe
        && headers.get("sec-fetch-site").is_some_and(|v| {
            !(v.as_bytes().eq_ignore_ascii_case(b"same-origin")
                || v.as_bytes().eq_ignore_ascii_case(b"none"))
        })
}

/// Whether the request came over https (directly, or through a proxy that
/// says so): the cookie is then `Secure`.
pub fn is_https(headers: &HeaderMap, https: bool) -> bool {
    https
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The `Set-Cookie` value opening `session` (or, `None`, ending it).
pub fn set_cookie(token: Option<&str>, base_path: &str, secure: bool) -> HeaderValue {
    let path = if base_path.is_empty() { "/" } else { base_path };
    let (value, age) = match token {
        Some(token) => (token, (LIFETIME_MS / 1000).to_string()),
        None => ("", "0".to_owned()),
    };
    let secure = if secure { "; Secure" } else { "" };
    let text =
        format!("{COOKIE}={value}; Path={path}; Max-Age={age}; HttpOnly; SameSite=Strict{secure}");
    // Every part is visible ASCII: the token is base64url and dots, the
    // base path is the deployment's own.
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("komainu_session=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::from_material(b"test material")
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let s = Session::start("admin", 1_000, &[7; 32]);
        let token = s.token(&key());
        let back = Session::verify(&token, &key(), 2_000).expect("valid");
        assert_eq!(back.actor, "admin");
        assert_eq!(back.expires_ms, 1_000 + LIFETIME_MS);
        assert!(Session::verify(&token, &key(), 1_000 + LIFETIME_MS).is_none());
    }

    #[test]
    fn a_tampered_or_foreign_token_is_refused() {
        let token = Session::start("admin", 1_000, &[7; 32]).token(&key());
        let other = SessionKey::from_material(b"other");
        assert!(Session::verify(&token, &other, 2_000).is_none());
        // Another actor, the same signature.
        let (payload, tag) = token.rsplit_once('.').expect("dot");
        let forged = payload.replace(
            &URL_SAFE_NO_PAD.encode("admin"),
            &URL_SAFE_NO_PAD.encode("root"),
        );
        assert!(Session::verify(&format!("{forged}.{tag}"), &key(), 2_000).is_none());
        // A later expiry, the same signature.
        let longer = payload.replace(
            &(1_000 + LIFETIME_MS).to_string(),
            &(10 * LIFETIME_MS).to_string(),
        );
        assert!(Session::verify(&format!("{longer}.{tag}"), &key(), 2_000).is_none());
        for junk in ["", ".", "v1", "v1.1.2.3.4.5", "a.b.c.d.e.f"] {
            assert!(Session::verify(junk, &key(), 2_000).is_none(), "{junk}");
        }
    }

    #[test]
    fn the_csrf_value_is_bound_to_the_session() {
        let a = Session::start("admin", 1_000, &[1; 32]);
        let b = Session::start("admin", 1_000, &[2; 32]);
        assert_ne!(a.csrf_token(&key()), b.csrf_token(&key()));
        let mut headers = HeaderMap::new();
        headers.insert(
            CSRF_HEADER,
            HeaderValue::from_str(&b.csrf_token(&key())).expect("ascii"),
        );
        assert!(b.csrf_ok(&key(), &headers));
        assert!(!a.csrf_ok(&key(), &headers));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped() {
        let v = set_cookie(Some("t.x"), "/_komainu", true);
        assert_eq!(
            v.to_str().expect("ascii"),
            "komainu_session=t.x; Path=/_komainu; Max-Age=28800; HttpOnly; SameSite=Strict; Secure"
        );
        let v = set_cookie(None, "", false);
        assert_eq!(
            v.to_str().expect("ascii"),
            "komainu_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; komainu_session=tok.en; b=2"),
        );
        assert_eq!(cookie_value(&headers), Some("tok.en"));
    }
}
