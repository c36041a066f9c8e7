//! Private routes: routes for people, who log in through an auth module
//! (an OpenID provider) before the gateway forwards their calls.
//!
//! On a route with `auth`, a request carrying a valid person session
//! (the cookie `komainu_user`, signed, bound to its host and module) is
//! forwarded with the person in the signed claim; the cookie itself never
//! reaches the backend. Without one, a browser navigation is sent to the
//! gateway's login path on the same host, a tool gets 401
//! `login_required`. When the route also takes API keys (`apiKeys`), a
//! caller with a key goes the usual way.
//!
//! The gateway's own paths, on every host (answered before routing, when
//! the configuration has a private route):
//!
//! - `/.well-known/komainu/login/{module}?back=/path`: to the provider;
//! - `/.well-known/komainu/callback/{module}`: the provider's way back
//!   (the redirect URI to register);
//! - `/.well-known/komainu/logout`: ends the session (and the provider's,
//!   when it offers RP-initiated logout);
//! - `/.well-known/komainu/logged-out`: where the provider sends people back.
//!
//! Sessions keep no server-side state: the cookie is signed with a key
//! derived from the claim secret (every instance and isolate has it), and
//! checked on every call against the live configuration (module removed or
//! disabled, sessions revoked).

use http::{HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::head::RequestHead;
use super::Gateway;
use crate::admin::session::{named_cookie_in, PersonClaims, SessionKey};
use crate::login::oidc::{self, query_param, DynFetch, Flow, OidcError};
use crate::login::Person;

/// Where the gateway's own login paths start, on every host.
pub const PREFIX: &str = "/.well-known/komainu/";
/// The cookie of a person's session on a private route's host.
pub const USER_COOKIE: &str = "komainu_user";

const SESSION_PURPOSE: &[u8] = b"route-session";
const FLOW_PURPOSE: &[u8] = b"route-login-flow";

/// A private route's login requirements, compiled.
#[derive(Debug, Clone)]
pub(crate) struct RouteLogin {
    /// The module people log in with.
    pub(crate) module: std::sync::Arc<str>,
    /// Callers with an API key are let in too.
    pub(crate) api_keys: bool,
    /// Only people with one of these roles (empty: anyone).
    pub(crate) roles: Vec<String>,
}

/// One of the gateway's login paths, asked on a private route's host: the
/// adapter runs it with [`Gateway::login_step`] (it may call the provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStep {
    action: Action,
    /// `scheme://host` of the request.
    origin: String,
    query: Option<String>,
    /// The `Cookie` header.
    cookies: Option<String>,
    /// `POST` (a local user's login form), else `GET`.
    post: bool,
    /// The `Origin` header (a form post must come from this host).
    sent_from: Option<String>,
}

/// Largest login form body read ([`LoginStep::wants_body`]).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

impl LoginStep {
    /// Whether this step reads the request body (a login form posted):
    /// the adapter reads up to [`MAX_FORM_BYTES`] of it for
    /// [`Gateway::login_step`].
    pub fn wants_body(&self) -> bool {
        self.post
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Start(String),
    Callback(String),
    Logout,
    LoggedOut,
    Unknown,
}

/// What a person's session cookie holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ticket {
    /// The person (and a local user's password stamp).
    p: PersonClaims,
    /// The host it was issued for.
    h: String,
    iat: u64,
    exp: u64,
}

/// Whether `back` is a path of the same host (`/…`, never `//…`).
pub fn is_safe_path(back: &str) -> bool {
    back.starts_with('/')
        && !back.starts_with("//")
        && back.len() <= 2048
        && !back
            .bytes()
            .any(|b| b == b'\\' || b.is_ascii_control() || b == b' ')
}

impl Gateway {
    /// The person a request carries a valid session of, for `login`'s
    /// module, on this host.
    pub(crate) fn person_of(
        &self,
        login: &RouteLogin,
        head: &impl RequestHead,
        now_ms: u64,
    ) -> Option<Person> {
        let cookies = head.first("cookie")?;
        let token = named_cookie_in(std::str::from_utf8(cookies).ok()?, USER_COOKIE)?;
        let json = self.route_sessions.open_token(SESSION_PURPOSE, token)?;
        let t: Ticket = serde_json::from_slice(&json).ok()?;
        if now_ms >= t.exp || t.h != head.host() || t.p.module() != &*login.module {
            return None;
        }
        let (person, stamp) = t.p.into_person();
        let (person, _) = self.logins.check_session(&person, &stamp, t.iat).ok()?;
        Some(person)
    }

    /// Whether `head` asks for one of the gateway's login paths (only when
    /// some route is private).
    pub(crate) fn login_path(&self, head: &impl RequestHead, tls: bool) -> Option<LoginStep> {
        if !self.private_routes {
            return None;
        }
        let rest = head.path().strip_prefix(PREFIX)?;
        let mut parts = rest.split('/');
        let action = match (parts.next(), parts.next(), parts.next()) {
            (Some("login"), Some(m), None) if !m.is_empty() => Action::Start(m.to_owned()),
            (Some("callback"), Some(m), None) if !m.is_empty() => Action::Callback(m.to_owned()),
            (Some("logout"), None, None) => Action::Logout,
            (Some("logged-out"), None, None) => Action::LoggedOut,
            _ => Action::Unknown,
        };
        let query = head
            .path_and_query()
            .split_once('?')
            .map(|(_, q)| q.to_owned());
        Some(LoginStep {
            action,
            origin: format!("{}://{}", if tls { "https" } else { "http" }, head.host()),
            query,
            cookies: head
                .first("cookie")
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(str::to_owned),
            post: *head.method() == http::Method::POST,
            sent_from: head
                .first("origin")
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(str::to_owned),
        })
    }

    /// Where a browser without a session goes: the login path of the
    /// route's module, coming back to what it asked for.
    pub(crate) fn login_redirect(
        &self,
        login: &RouteLogin,
        head: &impl RequestHead,
    ) -> Response<String> {
        let back: String =
            openidconnect::url::form_urlencoded::byte_serialize(head.path_and_query().as_bytes())
                .collect();
        redirect(
            &format!("{PREFIX}login/{}?back={back}", login.module),
            StatusCode::FOUND,
        )
    }

    /// Runs one of the gateway's login paths (it may call the provider
    /// through `fetch`); the answer to send.
    pub async fn login_step(
        &self,
        step: &LoginStep,
        body: &[u8],
        fetch: Option<&DynFetch>,
        now_ms: u64,
        random: [u8; 32],
    ) -> Response<String> {
        if let Action::Start(id) = &step.action {
            if let Ok(module) = self.logins.module(id) {
                if module.kind() == crate::model::AuthKind::Local {
                    return self.local_login(step, id, module, body, now_ms);
                }
            }
        }
        match self.run_step(step, fetch, now_ms, random).await {
            Ok(response) => response,
            Err((status, title, message)) => page(status, title, &message, None),
        }
    }

    async fn run_step(
        &self,
        step: &LoginStep,
        fetch: Option<&DynFetch>,
        now_ms: u64,
        random: [u8; 32],
    ) -> Result<Response<String>, (StatusCode, &'static str, String)> {
        let cannot = |m: String| (StatusCode::BAD_REQUEST, "This login cannot go on", m);
        let secure = step.origin.starts_with("https://");
        match &step.action {
            Action::Unknown => Err((
                StatusCode::NOT_FOUND,
                "Not found",
                "the gateway's login paths are login/{module}, callback/{module}, logout".into(),
            )),
            Action::LoggedOut => Ok(page(
                StatusCode::OK,
                "You are logged out",
                "Your session on this site has ended.",
                Some(("/", "Back to the site")),
            )),
            Action::Logout => {
                // The provider's logout, when the session names a module
                // whose provider offers one.
                let module = step
                    .cookies
                    .as_deref()
                    .and_then(|c| named_cookie_in(c, USER_COOKIE))
                    .and_then(|t| self.route_sessions.open_token(SESSION_PURPOSE, t))
                    .and_then(|json| serde_json::from_slice::<Ticket>(&json).ok())
                    .map(|t| t.p.module().to_owned());
                let settings = module
                    .as_deref()
                    .and_then(|m| self.logins.module(m).ok())
                    .and_then(|m| m.oidc());
                let back = format!("{}{PREFIX}logged-out", step.origin);
                let mut location = back.clone();
                if let (Some(settings), Some(fetch)) = (settings, fetch) {
                    if let Ok(provider) = oidc::discover(fetch, settings).await {
                        if let Some(end) = provider.end_session_url() {
                            let mut q =
                                openidconnect::url::form_urlencoded::Serializer::new(String::new());
                            q.append_pair("client_id", &settings.client_id)
                                .append_pair("post_logout_redirect_uri", &back);
                            location = format!(
                                "{end}{}{}",
                                if end.contains('?') { '&' } else { '?' },
                                q.finish()
                            );
                        }
                    }
                }
                let mut response = redirect(&location, StatusCode::SEE_OTHER);
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, user_cookie(None, 0, secure));
                Ok(response)
            }
            Action::Start(id) => {
                let module = self
                    .logins
                    .module(id)
                    .map_err(|e| (StatusCode::NOT_FOUND, "Not found", e.to_string()))?;
                let settings = module.oidc().ok_or_else(|| {
                    cannot(format!("auth module \"{id}\" is not an OpenID provider"))
                })?;
                let back = query_param(step.query.as_deref(), "back").unwrap_or_else(|| "/".into());
                if !is_safe_path(&back) {
                    return Err(cannot(
                        "a login goes back to a page of this site only (/…): another target is refused".into(),
                    ));
                }
                let fetch = fetch.ok_or_else(|| {
                    cannot("this deployment cannot call identity providers".into())
                })?;
                let provider = oidc::discover(fetch, settings).await.map_err(oidc_page)?;
                let flow = Flow::start(id, &back, &random, now_ms);
                let redirect_uri = format!("{}{PREFIX}callback/{id}", step.origin);
                let url = provider
                    .authorization_url(settings, &redirect_uri, &flow)
                    .map_err(oidc_page)?;
                let token = flow.seal(&self.route_sessions, FLOW_PURPOSE);
                let mut response = redirect(&url, StatusCode::SEE_OTHER);
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, flow_cookie(Some(&token), secure));
                Ok(response)
            }
            Action::Callback(id) => {
                let module = self
                    .logins
                    .module(id)
                    .map_err(|e| (StatusCode::NOT_FOUND, "Not found", e.to_string()))?;
                let settings = module.oidc().ok_or_else(|| {
                    cannot(format!("auth module \"{id}\" is not an OpenID provider"))
                })?;
                let cookie = step
                    .cookies
                    .as_deref()
                    .and_then(|c| named_cookie_in(c, oidc::FLOW_COOKIE));
                let flow = Flow::open(cookie, &self.route_sessions, FLOW_PURPOSE, id, now_ms);
                let (flow, code) = oidc::check_callback(step.query.as_deref(), flow, settings)
                    .map_err(oidc_page)?;
                let fetch = fetch.ok_or_else(|| {
                    cannot("this deployment cannot call identity providers".into())
                })?;
                let provider = oidc::discover(fetch, settings).await.map_err(oidc_page)?;
                let redirect_uri = format!("{}{PREFIX}callback/{id}", step.origin);
                let person = provider
                    .finish(fetch, settings, &redirect_uri, &code, &flow, now_ms)
                    .await
                    .map_err(oidc_page)?;
                let host = step
                    .origin
                    .split_once("://")
                    .map_or("", |(_, h)| h)
                    .to_owned();
                let mut response =
                    self.open_session(&person, "", &host, module, &flow.back, now_ms, secure);
                response
                    .headers_mut()
                    .append(http::header::SET_COOKIE, flow_cookie(None, secure));
                Ok(response)
            }
        }
    }
}

impl Gateway {
    /// The session cookie of `person` on `host`, and the way `back`.
    #[allow(clippy::too_many_arguments)]
    fn open_session(
        &self,
        person: &Person,
        stamp: &str,
        host: &str,
        module: &crate::login::Module,
        back: &str,
        now_ms: u64,
        secure: bool,
    ) -> Response<String> {
        let ticket = Ticket {
            p: PersonClaims::of(person, stamp),
            h: host.to_owned(),
            iat: now_ms,
            exp: now_ms.saturating_add(module.session_ms()),
        };
        let token = self.route_sessions.sign_token(
            SESSION_PURPOSE,
            &serde_json::to_vec(&ticket).unwrap_or_default(),
        );
        let mut response = redirect(back, StatusCode::SEE_OTHER);
        response.headers_mut().append(
            http::header::SET_COOKIE,
            user_cookie(Some(&token), module.session_ms() / 1000, secure),
        );
        response
    }

    /// A local module's login on a private route's host: `GET` shows the
    /// form, `POST` checks the password (throttled as on the admin API,
    /// per instance) and opens the session.
    fn local_login(
        &self,
        step: &LoginStep,
        id: &str,
        module: &crate::login::Module,
        body: &[u8],
        now_ms: u64,
    ) -> Response<String> {
        let secure = step.origin.starts_with("https://");
        let host = step.origin.split_once("://").map_or("", |(_, h)| h);
        if !step.post {
            let back = query_param(step.query.as_deref(), "back").unwrap_or_else(|| "/".into());
            if !is_safe_path(&back) {
                return page(
                    StatusCode::BAD_REQUEST,
                    "This login cannot go on",
                    "a login goes back to a page of this site only (/…): another target is refused",
                    None,
                );
            }
            return login_form(StatusCode::OK, id, module.name(), &back, None);
        }
        // A login form posted from another site is refused (login CSRF).
        if step.sent_from.as_deref() != Some(step.origin.as_str()) {
            return page(
                StatusCode::FORBIDDEN,
                "This login cannot go on",
                "the login form must be sent from this site's own page",
                None,
            );
        }
        let form = |name: &str| {
            openidconnect::url::form_urlencoded::parse(body)
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (username, password) = (
            form("username").unwrap_or_default(),
            form("password").unwrap_or_default(),
        );
        let back = form("back")
            .filter(|b| is_safe_path(b))
            .unwrap_or_else(|| "/".into());
        let key = format!("route:{id}/{username}");
        if let Err(wait_ms) = self.login_throttle.check(&key, now_ms) {
            return login_form(
                StatusCode::TOO_MANY_REQUESTS,
                id,
                module.name(),
                &back,
                Some(&format!(
                    "Too many failed logins for this user: try again in {} s.",
                    wait_ms.div_ceil(1000).max(1)
                )),
            );
        }
        match self.logins.verify_password(id, &username, &password) {
            Ok((person, stamp)) => {
                self.login_throttle.succeeded(&key);
                self.open_session(&person, &stamp, host, module, &back, now_ms, secure)
            }
            Err(_) => {
                let message = match self.login_throttle.failed(&key, now_ms) {
                    Some(wait_ms) => format!(
                        "Too many failed logins for this user: try again in {} s.",
                        wait_ms.div_ceil(1000).max(1)
                    ),
                    None => "Wrong username or password.".to_owned(),
                };
                login_form(
                    StatusCode::UNAUTHORIZED,
                    id,
                    module.name(),
                    &back,
                    Some(&message),
                )
            }
        }
    }
}

/// The login form of a local module on a private route's host.
fn login_form(
    status: StatusCode,
    id: &str,
    name: &str,
    back: &str,
    error: Option<&str>,
) -> Response<String> {
    let esc = crate::text::escape_html;
    let error = error.map_or(String::new(), |e| {
        format!("<p role=\"alert\">{}</p>", esc(e))
    });
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Log in · {n}</title></head><body><main><h1>Log in with {n}</h1>{error}<form method=\"post\" action=\"{PREFIX}login/{i}\"><input type=\"hidden\" name=\"back\" value=\"{b}\"><p><label for=\"username\">Username</label><br><input id=\"username\" name=\"username\" autocomplete=\"username\" required></p><p><label for=\"password\">Password</label><br><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p><p><button type=\"submit\">Log in</button></p></form></main></body></html>",
        n = esc(name),
        i = esc(id),
        b = esc(back),
    );
    let mut response = page(status, "", "", None);
    *response.body_mut() = body;
    response.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    response
}

fn oidc_page(e: OidcError) -> (StatusCode, &'static str, String) {
    match e {
        OidcError::Provider { .. } => (
            StatusCode::BAD_GATEWAY,
            "The identity provider did not answer",
            e.to_string(),
        ),
        OidcError::BadCallback(m) => (StatusCode::BAD_REQUEST, "This login cannot go on", m),
        OidcError::Refused(_) | OidcError::InvalidToken(_) => {
            (StatusCode::UNAUTHORIZED, "Login refused", e.to_string())
        }
        OidcError::NotAllowed(m) => (StatusCode::FORBIDDEN, "You may not log in here", m),
    }
}

fn user_cookie(token: Option<&str>, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{USER_COOKIE}={}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}",
        token.unwrap_or_default()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("komainu_user=; Path=/; Max-Age=0"))
}

fn flow_cookie(token: Option<&str>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let age = if token.is_some() {
        oidc::FLOW_LIFETIME_MS / 1000
    } else {
        0
    };
    HeaderValue::from_str(&format!(
        "{}={}; Path={PREFIX}; Max-Age={age}; HttpOnly; SameSite=Lax{secure}",
        oidc::FLOW_COOKIE,
        token.unwrap_or_default()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("komainu_login=; Max-Age=0"))
}

fn redirect(location: &str, status: StatusCode) -> Response<String> {
    let mut response = Response::new(String::new());
    *response.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// A small page for people (the gateway's own, with its own strict CSP).
fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response<String> {
    let esc = crate::text::escape_html;
    let link = link.map_or(String::new(), |(href, text)| {
        format!("<p><a href=\"{}\">{}</a></p>", esc(href), esc(text))
    });
    let granted = if status.is_success() {
        ""
    } else {
        "<p>Nothing was granted: no session was opened.</p>"
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t} · Komainu</title></head><body><main><h1>{t}</h1><p role=\"alert\">{m}</p>{granted}{link}</main></body></html>",
        t = esc(title),
        m = esc(message),
    );
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    h.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        http::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("DENY"),
    );
    response
}

/// The key signing people's sessions and logins on private routes: derived
/// from the claim secret (every instance and isolate has it).
pub(crate) fn session_key(claim_secret: &[u8]) -> SessionKey {
    let mut material = b"komainu/route-sessions/v1\0".to_vec();
    material.extend_from_slice(claim_secret);
    SessionKey::from_material(&material)
}

#[cfg(test)]
mod tests {
    use http::{Method, Request};

    use super::*;
    use crate::gateway::{ClientInfo, Outcome, RequestId};
    use crate::store::MemoryCounterStore;
    use crate::testing::block_on;
    use crate::Document;

    const CLAIM_SECRET: &[u8] = b"claim-secret-of-the-private-route-tests";
    const NOW: u64 = 1_790_000_000_000;

    fn doc(route_auth: serde_json::Value) -> Document {
        Document::load(
            serde_json::json!({
                "format": 1,
                "authModules": [{ "id": "corp", "kind": "oidc", "issuer": "https://idp.test", "clientId": "komainu" }],
                "routes": [{ "id": "wiki", "hosts": ["wiki.test"], "paths": ["/{*rest}"],
                             "auth": route_auth,
                             "backend": { "targets": [{ "url": "http://10.0.0.9" }] } }],
                "apikeys": [{ "clientId": "bot", "clientSecret": "bot-secret-0123456789", "routes": ["wiki"] }],
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    fn ticket(host: &str, module: &str, roles: &[&str], iat: u64, exp: u64) -> String {
        let person = Person {
            module: module.into(),
            subject: "ann".into(),
            email: Some("ann@example.com".into()),
            name: Some("Ann \"A\" Admin".into()),
            roles: roles.iter().map(|r| (*r).into()).collect(),
        };
        let t = Ticket {
            p: PersonClaims::of(&person, ""),
            h: host.into(),
            iat,
            exp,
        };
        session_key(CLAIM_SECRET).sign_token(SESSION_PURPOSE, &serde_json::to_vec(&t).unwrap())
    }

    /// Runs the request phases on a request to wiki.test.
    fn handle(
        gw: &Gateway,
        (method, uri, tls): (Method, &str, bool),
        headers: &[(&str, &str)],
    ) -> (Outcome, http::request::Parts) {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "wiki.test");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let mut parts = b.body(()).unwrap().into_parts().0;
        let client = ClientInfo {
            addr: Some("192.0.2.1".parse().unwrap()),
            tls,
        };
        let (_, outcome) = block_on(gw.handle_request(
            &MemoryCounterStore::new(),
            &mut parts,
            &client,
            NOW,
            RequestId::from_random(7),
        ));
        (outcome, parts)
    }

    fn call(gw: &Gateway, headers: &[(&str, &str)]) -> (Outcome, http::request::Parts) {
        handle(gw, (Method::GET, "/page?x=1", false), headers)
    }

    fn step_of(gw: &Gateway, method: Method, uri: &str, headers: &[(&str, &str)]) -> LoginStep {
        match handle(gw, (method, uri, false), headers).0 {
            Outcome::Login(step) => step,
            _ => panic!("a login step"),
        }
    }

    fn status(outcome: &Outcome) -> u16 {
        match outcome {
            Outcome::Respond(r) => r.status().as_u16(),
            Outcome::Forward(_) => 0,
            Outcome::Login(_) => 1,
        }
    }

    #[test]
    fn without_a_session_a_browser_is_sent_to_log_in_and_a_tool_gets_401() {
        let gw = Gateway::compile(
            &doc(serde_json::json!({"module": "corp"})),
            CLAIM_SECRET,
            None,
        )
        .unwrap();
        let (outcome, _) = call(&gw, &[("accept", "text/html,application/xhtml+xml")]);
        let Outcome::Respond(r) = outcome else {
            panic!("answered")
        };
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()[http::header::LOCATION],
            "/.well-known/komainu/login/corp?back=%2Fpage%3Fx%3D1"
        );
        let (outcome, _) = call(&gw, &[("accept", "application/json")]);
        let Outcome::Respond(r) = outcome else {
            panic!("answered")
        };
        assert_eq!(r.status(), 401);
        assert!(r.body().contains("login_required"), "{}", r.body());
        // An API key is not enough where the route does not take them.
        let (outcome, _) = call(
            &gw,
            &[
                ("komainu-client-id", "bot"),
                ("komainu-client-secret", "bot-secret-0123456789"),
            ],
        );
        assert_eq!(status(&outcome), 401);
        // The login paths answer on this host.
        let (outcome, _) = handle(
            &gw,
            (Method::GET, "/.well-known/komainu/login/corp?back=/x", true),
            &[("accept", "text/html")],
        );
        let Outcome::Login(step) = outcome else {
            panic!("a login step")
        };
        assert_eq!(step.origin, "https://wiki.test");
        assert_eq!(step.action, Action::Start("corp".into()));
    }

    #[test]
    fn a_valid_session_is_forwarded_with_the_person_in_the_claim_and_no_cookie() {
        let gw = Gateway::compile(
            &doc(serde_json::json!({"module": "corp", "roles": ["staff"]})),
            CLAIM_SECRET,
            None,
        )
        .unwrap();
        let good = ticket("wiki.test", "corp", &["staff"], NOW - 1000, NOW + 60_000);
        let cookie = format!("theme=dark; {USER_COOKIE}={good}");
        let (outcome, parts) = call(&gw, &[("cookie", &cookie)]);
        assert_eq!(status(&outcome), 0, "forwarded");
        assert_eq!(
            parts.headers["cookie"], "theme=dark",
            "the gateway's cookie stays here"
        );
        let claim = parts.headers["komainu-claim"].to_str().unwrap();
        let payload = claim.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let payload: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(payload["sub"], "ann");
        assert_eq!(payload["email"], "ann@example.com");
        assert_eq!(payload["name"], "Ann \"A\" Admin");
        assert_eq!(payload["roles"], serde_json::json!(["staff"]));
        assert_eq!(payload["authModule"], "corp");
        // Refused: another host's, another module's, expired, forged, tampered.
        let forged = {
            let other = session_key(b"another claim secret");
            let t = serde_json::json!({"p":{"m":"corp","s":"ann"},"h":"wiki.test","iat":NOW,"exp":NOW+60_000});
            other.sign_token(SESSION_PURPOSE, t.to_string().as_bytes())
        };
        let (body, tag) = good.split_once('.').unwrap();
        let tampered = format!("{}.{tag}", &body[..body.len() - 2]);
        for bad in [
            ticket("other.test", "corp", &["staff"], NOW - 1000, NOW + 60_000),
            ticket("wiki.test", "other", &["staff"], NOW - 1000, NOW + 60_000),
            ticket("wiki.test", "corp", &["staff"], NOW - 120_000, NOW - 1),
            forged,
            tampered,
        ] {
            let (outcome, _) = call(&gw, &[("cookie", &format!("{USER_COOKIE}={bad}"))]);
            assert_eq!(status(&outcome), 401, "{bad}");
        }
        // Over HTTP/2 a browser may split its cookies into several fields:
        // they are joined, the session is found, the rest forwarded as one.
        let (outcome, parts) = call(
            &gw,
            &[
                ("cookie", "theme=dark"),
                ("cookie", &format!("{USER_COOKIE}={good}")),
                ("cookie", "lang=en"),
            ],
        );
        assert_eq!(status(&outcome), 0, "forwarded");
        assert_eq!(parts.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(parts.headers["cookie"], "theme=dark; lang=en");
        // Someone without the route's roles: 403.
        let visitor = ticket("wiki.test", "corp", &["guest"], NOW - 1000, NOW + 60_000);
        let (outcome, _) = call(&gw, &[("cookie", &format!("{USER_COOKIE}={visitor}"))]);
        assert_eq!(status(&outcome), 403);
        // Sessions revoked by the module: refused.
        let mut revoked = doc(serde_json::json!({"module": "corp", "roles": ["staff"]}));
        revoked.auth_modules[0].sessions_not_before = Some(crate::time::format_rfc3339(NOW));
        let gw = Gateway::compile(&revoked, CLAIM_SECRET, None).unwrap();
        let (outcome, _) = call(&gw, &[("cookie", &cookie)]);
        assert_eq!(status(&outcome), 401);
    }

    #[test]
    fn a_route_that_takes_api_keys_lets_a_key_in() {
        let gw = Gateway::compile(
            &doc(serde_json::json!({"module": "corp", "apiKeys": true})),
            CLAIM_SECRET,
            None,
        )
        .unwrap();
        let (outcome, _) = call(
            &gw,
            &[
                ("komainu-client-id", "bot"),
                ("komainu-client-secret", "bot-secret-0123456789"),
            ],
        );
        assert_eq!(status(&outcome), 0);
        let (outcome, _) = call(
            &gw,
            &[
                ("komainu-client-id", "bot"),
                ("komainu-client-secret", "wrong-secret-0123456789"),
            ],
        );
        assert_eq!(status(&outcome), 401);
    }

    fn local_doc(password: &str) -> Document {
        let mut doc = Document::load(
            serde_json::json!({
                "format": 1,
                "authModules": [{ "id": "staff", "name": "Staff", "kind": "local",
                    "users": [{ "username": "alice", "password": password, "roles": ["staff"], "email": "alice@example.com" }] }],
                "routes": [{ "id": "wiki", "hosts": ["wiki.test"], "paths": ["/{*rest}"],
                             "auth": { "module": "staff" },
                             "backend": { "targets": [{ "url": "http://10.0.0.9" }] } }],
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        crate::login::hash_passwords(&mut doc, &[5; 32]).unwrap();
        doc
    }

    #[test]
    fn a_local_user_logs_in_on_the_route_host_with_a_form() {
        let gw = Gateway::compile(&local_doc("alice's password"), CLAIM_SECRET, None).unwrap();
        // A browser is sent to the module's login path; the form comes back to the page.
        let (outcome, _) = call(&gw, &[("accept", "text/html")]);
        let Outcome::Respond(r) = outcome else {
            panic!("answered")
        };
        assert_eq!(
            r.headers()[http::header::LOCATION],
            "/.well-known/komainu/login/staff?back=%2Fpage%3Fx%3D1"
        );
        let form = step_of(
            &gw,
            Method::GET,
            "/.well-known/komainu/login/staff?back=%2Fpage%3Fx%3D1",
            &[],
        );
        let r = block_on(gw.login_step(&form, b"", None, NOW, [1; 32]));
        assert_eq!(r.status(), 200);
        assert!(
            r.body().contains("name=\"back\" value=\"/page?x=1\""),
            "{}",
            r.body()
        );
        let post = |origin: &str, body: &str| {
            let step = step_of(
                &gw,
                Method::POST,
                "/.well-known/komainu/login/staff",
                &[("origin", origin)],
            );
            block_on(gw.login_step(&step, body.as_bytes(), None, NOW, [1; 32]))
        };
        let good = "username=alice&password=alice%27s+password&back=%2Fpage%3Fx%3D1";
        // From another site: refused (login CSRF).
        let r = post("http://evil.test", good);
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(http::header::SET_COOKIE).is_none());
        let r = post("http://wiki.test", "username=alice&password=nope&back=%2F");
        assert_eq!(r.status(), 401);
        assert!(r.body().contains("Wrong username or password."));
        assert!(r.headers().get(http::header::SET_COOKIE).is_none());
        // Another site as the way back: the session opens, the browser stays here.
        let r = post(
            "http://wiki.test",
            "username=alice&password=alice%27s+password&back=https%3A%2F%2Fevil.test%2F",
        );
        assert_eq!(r.headers()[http::header::LOCATION], "/");
        let r = post("http://wiki.test", good);
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()[http::header::LOCATION], "/page?x=1");
        let cookie = r.headers()[http::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let (outcome, parts) = call(&gw, &[("cookie", &cookie)]);
        assert_eq!(status(&outcome), 0, "forwarded");
        assert!(parts.headers.get("cookie").is_none());
        // A new password ends the session.
        let gw = Gateway::compile(&local_doc("a new password!"), CLAIM_SECRET, None).unwrap();
        let (outcome, _) = call(&gw, &[("cookie", &cookie)]);
        assert_eq!(status(&outcome), 401);
    }

    #[test]
    fn only_paths_of_the_same_site_are_gone_back_to() {
        for good in ["/", "/a/b?c=d", "/x#y"] {
            assert!(is_safe_path(good), "{good}");
        }
        for bad in [
            "https://evil.test/",
            "//evil.test",
            "/\\evil.test",
            "evil",
            "",
            "/a b",
        ] {
            assert!(!is_safe_path(bad), "{bad}");
        }
    }
}
