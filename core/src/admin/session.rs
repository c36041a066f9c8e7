//! Browser sessions for the admin API: how the web UI logs in.
//!
//! A person proves an admin key once (`POST /api/session` with the key, as
//! any admin call would) and gets a session cookie: HttpOnly (no script
//! reads it), `SameSite=Strict` (no other site's page sends it), `Secure`
//! on https, scoped to the admin path, expiring after [`LIFETIME_MS`] (a
//! person's: their module's `sessionSeconds`). The key itself is never
//! stored by the browser. People log in the same way through an auth
//! module ([`crate::login`]): a password, or a provider's login.
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

use serde::{Deserialize, Serialize};

use super::AdminError;
use crate::auth::KeyIndex;
use crate::login::{Directory, Person, Role};
use crate::secret::{SealingKey, SecretHash};

/// The session cookie's name.
pub const COOKIE: &str = "komainu_session";

/// The header a write made with a session carries (the CSRF defence).
pub const CSRF_HEADER: &str = "komainu-csrf";

/// How long an admin key's session lasts: 8 hours from login.
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

    /// `payload` as a signed token for `purpose` (readable by anyone,
    /// changeable by nobody): base64url payload, a dot, the signature.
    pub fn sign_token(&self, purpose: &[u8], payload: &[u8]) -> String {
        let body = URL_SAFE_NO_PAD.encode(payload);
        let tag = URL_SAFE_NO_PAD.encode(self.sign(purpose, &body));
        format!("{body}.{tag}")
    }

    /// The payload of a token [`SessionKey::sign_token`] made for
    /// `purpose`, if its signature holds (compared in constant time).
    pub fn open_token(&self, purpose: &[u8], token: &str) -> Option<Vec<u8>> {
        let (body, tag) = token.split_once('.')?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let expected = self.sign(purpose, body);
        if tag.len() != expected.len() || !bool::from(expected.ct_eq(&tag)) {
            return None;
        }
        URL_SAFE_NO_PAD.decode(body).ok()
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

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An admin key (its client id) that logged in.
    Key(String),
    /// A person logged in by an auth module; `stamp` binds a local user's
    /// session to their password (see [`crate::login`]).
    Person {
        /// Who.
        person: Person,
        /// The local user's password stamp (empty for a provider's user).
        stamp: String,
    },
}

/// A session, read from a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who logged in.
    pub principal: Principal,
    /// When it started (Unix ms).
    pub issued_ms: u64,
    /// When it ends (Unix ms).
    pub expires_ms: u64,
    /// The signed part of the token (what the CSRF value is bound to).
    payload: String,
}

/// What a token says (compact names: it travels in a cookie).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    iat: u64,
    exp: u64,
    n: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<PersonClaims>,
}

/// A person as a session token carries them (compact names: tokens travel
/// in cookies); admin sessions and private routes' sessions share it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonClaims {
    m: String,
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nm: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    r: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    st: String,
}

impl PersonClaims {
    /// The claims of `person`, with their password stamp.
    pub(crate) fn of(person: &Person, stamp: &str) -> Self {
        Self {
            m: person.module.clone(),
            s: person.subject.clone(),
            e: person.email.clone(),
            nm: person.name.clone(),
            r: person
                .roles
                .iter()
                .take(crate::login::MAX_SESSION_ROLES)
                .cloned()
                .collect(),
            st: stamp.to_owned(),
        }
    }

    /// The module the person logged in with.
    pub(crate) fn module(&self) -> &str {
        &self.m
    }

    /// The person, and their password stamp.
    pub(crate) fn into_person(self) -> (Person, String) {
        (
            Person {
                module: self.m,
                subject: self.s,
                email: self.e,
                name: self.nm,
                roles: self.r,
            },
            self.st,
        )
    }
}

const TOKEN_VERSION: &str = "v2";

impl Session {
    /// A new session for `principal`, starting at `now_ms` and lasting
    /// `lifetime_ms`; `nonce` makes each login's token and CSRF value its
    /// own.
    pub fn start(principal: Principal, now_ms: u64, lifetime_ms: u64, nonce: &[u8]) -> Self {
        let expires_ms = now_ms.saturating_add(lifetime_ms);
        let mut claims = Claims {
            iat: now_ms,
            exp: expires_ms,
            n: URL_SAFE_NO_PAD.encode(&nonce[..nonce.len().min(16)]),
            key: None,
            p: None,
        };
        match &principal {
            Principal::Key(id) => claims.key = Some(id.clone()),
            Principal::Person { person, stamp } => claims.p = Some(PersonClaims::of(person, stamp)),
        }
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let payload = format!("{TOKEN_VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
        Self {
            principal,
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
        let body = payload.strip_prefix(TOKEN_VERSION)?.strip_prefix('.')?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        if now_ms >= claims.exp || claims.iat > now_ms.saturating_add(60_000) {
            return None;
        }
        let principal = match (claims.key, claims.p) {
            (Some(id), None) => Principal::Key(id),
            (None, Some(p)) => {
                let (person, stamp) = p.into_person();
                Principal::Person { person, stamp }
            }
            _ => return None,
        };
        Some(Self {
            principal,
            issued_ms: claims.iat,
            expires_ms: claims.exp,
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

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An admin key sent with the request.
    Key,
    /// A browser session.
    Session(Session),
}

/// Who is calling the admin API, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// How they proved it.
    pub via: Via,
    /// The name audit events give them: the admin key's client id, or the
    /// person's email (else `module/subject`).
    pub actor: String,
    /// The person, when a person logged in.
    pub person: Option<Person>,
    /// What they may do.
    pub role: Role,
}

impl Proof {
    /// An admin key.
    pub fn key(client_id: &str) -> Self {
        Self {
            via: Via::Key,
            actor: client_id.to_owned(),
            person: None,
            role: Role::Admin,
        }
    }

    /// The admin key's client id or the person's label.
    pub fn actor(&self) -> &str {
        &self.actor
    }
}

/// What admin calls are checked against: the admin keys, the key of the
/// sessions they open (none: this deployment offers no sessions), and the
/// auth modules of the live configuration (people's sessions).
#[derive(Clone, Copy)]
pub struct AdminAuth<'a> {
    /// The admin keys.
    pub keys: &'a KeyIndex,
    /// The session key.
    pub sessions: Option<&'a SessionKey>,
    /// The auth modules people log in with (none compiled yet: people's
    /// sessions are refused).
    pub logins: Option<&'a Directory>,
}

/// The session cookie's value in `headers`, if one is sent.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    named_cookie(headers, COOKIE)
}

/// The value of the cookie `name` in `headers`, if one is sent.
pub fn named_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| named_cookie_in(v, name))
}

/// The value of the cookie `name` in one `Cookie` header value.
pub fn named_cookie_in<'c>(cookies: &'c str, name: &str) -> Option<&'c str> {
    cookies.split(';').find_map(|pair| {
        let (n, value) = pair.trim().split_once('=')?;
        (n == name).then_some(value.trim_matches('"'))
    })
}

/// The session a request carries: valid, current, of an admin key that
/// still exists or a person whose module still accepts them, and, for a
/// write, with its CSRF value. `Ok(None)` when no session cookie is sent.
pub fn from_request(
    auth: &AdminAuth<'_>,
    method: &Method,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Option<Proof>, AdminError> {
    let Some(token) = cookie_value(headers) else {
        return Ok(None);
    };
    let expired =
        || AdminError::unauthorized("the session has ended or is not valid: log in again");
    let key = auth.sessions.ok_or_else(expired)?;
    let session = Session::verify(token, key, now_ms).ok_or_else(expired)?;
    let proof = match &session.principal {
        Principal::Key(id) => {
            if auth.keys.get(id).is_none() {
                return Err(expired());
            }
            Proof {
                actor: id.clone(),
                person: None,
                role: Role::Admin,
                via: Via::Session(session.clone()),
            }
        }
        Principal::Person { person, stamp } => {
            let logins = auth.logins.ok_or_else(expired)?;
            let (person, role) = logins
                .check_session(person, stamp, session.issued_ms)
                .map_err(|e| AdminError::unauthorized(e.to_string()))?;
            let role = role.ok_or_else(|| {
                AdminError::forbidden(
                    "no_role",
                    crate::login::LoginError::NoRole(person.label()).to_string(),
                )
            })?;
            Proof {
                actor: person.label(),
                person: Some(person),
                role,
                via: Via::Session(session.clone()),
            }
        }
    };
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !session.csrf_ok(key, headers) {
        return Err(AdminError::forbidden(
            "csrf",
            "a change made with a session carries its Komainu-CSRF header (from GET /api/session)",
        ));
    }
    Ok(Some(proof))
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
pub fn set_cookie(session: Option<(&str, &Session)>, base_path: &str, secure: bool) -> HeaderValue {
    let path = if base_path.is_empty() { "/" } else { base_path };
    let (value, age) = match session {
        Some((token, s)) => (
            token,
            (s.expires_ms.saturating_sub(s.issued_ms) / 1000).to_string(),
        ),
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

    fn admin_session(now_ms: u64, nonce: u8) -> Session {
        Session::start(
            Principal::Key("admin".into()),
            now_ms,
            LIFETIME_MS,
            &[nonce; 32],
        )
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let s = admin_session(1_000, 7);
        let token = s.token(&key());
        let back = Session::verify(&token, &key(), 2_000).expect("valid");
        assert_eq!(back.principal, Principal::Key("admin".into()));
        assert_eq!(back.expires_ms, 1_000 + LIFETIME_MS);
        assert!(Session::verify(&token, &key(), 1_000 + LIFETIME_MS).is_none());
    }

    #[test]
    fn a_person_session_carries_who_they_are() {
        let person = Person {
            module: "staff".into(),
            subject: "alice".into(),
            email: Some("alice@example.com".into()),
            name: Some("Alice".into()),
            roles: vec!["admin".into()],
        };
        let s = Session::start(
            Principal::Person {
                person: person.clone(),
                stamp: "st".into(),
            },
            1_000,
            60_000,
            &[1; 32],
        );
        let back = Session::verify(&s.token(&key()), &key(), 2_000).expect("valid");
        assert_eq!(
            back.principal,
            Principal::Person {
                person,
                stamp: "st".into()
            }
        );
        assert!(Session::verify(&s.token(&key()), &key(), 61_000).is_none());
    }

    #[test]
    fn a_tampered_or_foreign_token_is_refused() {
        let token = admin_session(1_000, 7).token(&key());
        let other = SessionKey::from_material(b"other");
        assert!(Session::verify(&token, &other, 2_000).is_none());
        let (_, tag) = token.rsplit_once('.').expect("dot");
        // Another actor, or a later expiry, with the same signature.
        for forged in [
            format!(
                "{{\"iat\":1000,\"exp\":{},\"n\":\"x\",\"key\":\"root\"}}",
                1_000 + LIFETIME_MS
            ),
            format!(
                "{{\"iat\":1000,\"exp\":{},\"n\":\"x\",\"key\":\"admin\"}}",
                10 * LIFETIME_MS
            ),
        ] {
            let payload = format!("v2.{}", URL_SAFE_NO_PAD.encode(forged));
            assert!(Session::verify(&format!("{payload}.{tag}"), &key(), 2_000).is_none());
        }
        // Well signed but not a session: both or neither principal.
        for claims in [
            r#"{"iat":1000,"exp":9999999,"n":"x"}"#,
            r#"{"iat":1000,"exp":9999999,"n":"x","key":"a","p":{"m":"m","s":"s"}}"#,
        ] {
            let payload = format!("v2.{}", URL_SAFE_NO_PAD.encode(claims));
            let tag = URL_SAFE_NO_PAD.encode(key().sign(b"session", &payload));
            assert!(Session::verify(&format!("{payload}.{tag}"), &key(), 2_000).is_none());
        }
        for junk in ["", ".", "v1", "v1.1.2.3.4.5", "a.b.c.d.e.f", "v2..x"] {
            assert!(Session::verify(junk, &key(), 2_000).is_none(), "{junk}");
        }
    }

    #[test]
    fn the_csrf_value_is_bound_to_the_session() {
        let a = admin_session(1_000, 1);
        let b = admin_session(1_000, 2);
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
        let s = admin_session(1_000, 1);
        let v = set_cookie(Some(("t.x", &s)), "/_komainu", true);
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
