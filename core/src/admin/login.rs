//! `/api/login`: how people open an admin session through an auth module.
//!
//! - `GET /api/login`: the modules the login page offers (no credentials
//!   needed: this is how a browser gets some);
//! - `POST /api/login/{module}` with `{"username", "password"}`: a local
//!   user logs in; the answer sets the session cookie, as
//!   `POST /api/session` does for an admin key.
//!
//! - `GET /api/login/{module}?back=#/…` (an `oidc` module): the browser is
//!   sent to the provider (authorization code, PKCE, nonce);
//! - `GET /api/login/{module}/callback`: where the provider sends it back;
//!   the session cookie is set and the browser goes back to the UI.
//!
//! A wrong password answers 401 without saying whether the user exists;
//! repeated failures are throttled ([`crate::login::LoginThrottle`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::session::{self, Principal, Proof, Session, Via};
use super::{
    describe_session, ok, with_cookie, AdminContext, AdminError, AdminReply, AdminRequest,
};
use crate::events::EventSink;
use crate::login::oidc::{self, query_param, Flow, OidcError};
use crate::login::{LoginError, MAX_FAILURES_PER_DAY};
use crate::model::AuthKind;
use crate::quota::{Bump, Window};
use crate::store::{ConfigStore, CounterStore};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// Serves `/api/login/…` (`rest`: the segments after `login`).
pub(crate) async fn endpoint<S: ConfigStore, C: CounterStore, E: EventSink>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    rest: &[&str],
) -> Result<AdminReply, AdminError> {
    let logins = ctx.auth.logins.ok_or_else(|| {
        AdminError::store_unavailable(
            "the configuration is not loaded yet, so no login is possible: retry shortly",
        )
    })?;
    match (rest, req.method) {
        ([], &Method::GET | &Method::HEAD) => Ok(ok(
            StatusCode::OK,
            &serde_json::json!({
                "modules": logins.options(),
                "deployment": ctx.deployment,
            }),
        )),
        ([], _) => Err(AdminError::method_not_allowed(
            "GET",
            "/api/login answers GET (the auth modules); log in with POST /api/login/{module}",
        )),
        ([id], &Method::POST) => {
            let module = logins
                .module(id)
                .map_err(|e| AdminError::not_found(e.to_string()))?;
            if module.kind() != AuthKind::Local {
                return Err(AdminError::bad_request(
                    "",
                    format!("auth module \"{id}\" logs people in through its provider: open GET /api/login/{id} in a browser"),
                ));
            }
            local_login(ctx, req, id).await
        }
        ([id], &Method::GET) => {
            let module = logins
                .module(id)
                .map_err(|e| AdminError::not_found(e.to_string()))?;
            match module.oidc() {
                Some(settings) => Ok(for_browser(
                    ctx,
                    req,
                    oidc_start(ctx, req, id, settings).await,
                )),
                None => Err(AdminError::method_not_allowed(
                    "POST",
                    format!("a local module logs people in with POST /api/login/{id} and {{\"username\", \"password\"}}"),
                )),
            }
        }
        ([id, "callback"], &Method::GET) => {
            let result = match logins.module(id) {
                Ok(module) => match module.oidc() {
                    Some(settings) => oidc_callback(ctx, req, id, settings, module).await,
                    None => Err(AdminError::not_found(format!(
                        "auth module \"{id}\" is local: it has no callback"
                    ))),
                },
                Err(e) => Err(AdminError::not_found(e.to_string())),
            };
            Ok(for_browser(ctx, req, result))
        }
        ([_, "callback"], _) => Err(AdminError::method_not_allowed(
            "GET",
            "the provider sends the browser back with GET",
        )),
        ([_], _) => Err(AdminError::method_not_allowed(
            "GET, POST",
            "/api/login/{module}: POST logs a local user in, GET starts a provider's login",
        )),
        _ => Err(AdminError::not_found(format!(
            "no admin endpoint at {}",
            req.path
        ))),
    }
}

/// The shared counter of a username's failed logins today (its name is a
/// digest: usernames may hold any character).
fn failure_counter(module: &str, username: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(module.as_bytes());
    digest.update([0]);
    digest.update(username.as_bytes());
    format!("login:{}", URL_SAFE_NO_PAD.encode(&digest.finalize()[..16]))
}

async fn local_login<S: ConfigStore, C: CounterStore, E: EventSink>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    id: &str,
) -> Result<AdminReply, AdminError> {
    let de = &mut serde_json::Deserializer::from_slice(req.body);
    let creds: Credentials = serde_path_to_error::deserialize(de)
        .map_err(|e| AdminError::invalid(crate::model::ValidationErrors::from_serde(e)))?;
    let now = ctx.now_ms;
    let throttle_key = format!("{id}/{}", creds.username);
    if let Err(wait_ms) = ctx.throttle.check(&throttle_key, now) {
        return Err(locked_out(wait_ms));
    }
    let day = Bump {
        window: Window::Day,
        period: Window::Day.period(now),
        limit: MAX_FAILURES_PER_DAY,
        resets_at_ms: Window::Day.reset_ms(now),
    };
    let counter = failure_counter(id, &creds.username);
    // The shared count is a second line: a store that cannot answer does
    // not keep people out (the in-memory throttle still holds).
    if let Ok([failures, ..]) = ctx.counters.peek(&counter, &[day]).await {
        if failures >= MAX_FAILURES_PER_DAY {
            return Err(AdminError::too_many_attempts(
                day.resets_at_ms.saturating_sub(now),
                format!("{MAX_FAILURES_PER_DAY} failed logins today for this user: logins are refused until the end of the UTC day (an admin can set a new password)"),
            ));
        }
    }
    let logins = ctx
        .auth
        .logins
        .ok_or_else(|| AdminError::internal("no auth modules"))?;
    let (person, stamp) = match logins.verify_password(id, &creds.username, &creds.password) {
        Ok(found) => found,
        Err(LoginError::BadCredentials) => {
            let locked = ctx.throttle.failed(&throttle_key, now);
            let _ = ctx
                .counters
                .acquire(
                    &counter,
                    &[Bump {
                        limit: u64::MAX,
                        ..day
                    }],
                )
                .await;
            return Err(match locked {
                Some(wait_ms) => locked_out(wait_ms),
                None => AdminError::unauthorized("wrong username or password"),
            });
        }
        Err(e) => return Err(AdminError::unauthorized(e.to_string())),
    };
    ctx.throttle.succeeded(&throttle_key);
    let module = logins
        .module(id)
        .map_err(|e| AdminError::not_found(e.to_string()))?;
    let role = module.role_of(&person.roles).ok_or_else(|| {
        AdminError::forbidden("no_role", LoginError::NoRole(person.label()).to_string())
    })?;
    let key = ctx.auth.sessions.ok_or_else(|| {
        AdminError::not_offered(
            "this deployment has no session key: browser sessions are not offered",
        )
    })?;
    let s = Session::start(
        Principal::Person {
            person: person.clone(),
            stamp,
        },
        now,
        module.session_ms(),
        &ctx.random,
    );
    let proof = Proof {
        via: Via::Session(s.clone()),
        actor: person.label(),
        person: Some(person),
        role,
    };
    let secure = session::is_https(req.headers, req.https);
    let cookie = session::set_cookie(Some((&s.token(key), &s)), ctx.base_path, secure);
    Ok(with_cookie(
        ok(
            StatusCode::CREATED,
            &describe_session(ctx.deployment, &proof, Some((&s, key))),
        ),
        cookie,
    ))
}

fn locked_out(wait_ms: u64) -> AdminError {
    AdminError::too_many_attempts(
        wait_ms,
        format!(
            "too many failed logins for this user: try again in {} s",
            wait_ms.div_ceil(1000).max(1)
        ),
    )
}

/// Starts a provider's login: a signed cookie keeps state, nonce and PKCE
/// verifier; the browser is sent to the provider.
async fn oidc_start<S, C, E>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    id: &str,
    settings: &crate::login::OidcSettings,
) -> Result<AdminReply, AdminError> {
    let back = query_param(req.query, "back").unwrap_or_else(|| "#/overview".into());
    if !oidc::is_safe_back(&back) {
        return Err(AdminError::bad_request(
            "back",
            "a login goes back to a page of this UI only (#/…): another target is refused",
        ));
    }
    let fetch = ctx.fetch.ok_or_else(no_fetch)?;
    let key = ctx.auth.sessions.ok_or_else(no_sessions)?;
    let redirect_uri = callback_url(ctx.base_path, req, id)?;
    let provider = oidc::discover(fetch, settings).await.map_err(oidc_error)?;
    let flow = Flow::start(id, &back, &ctx.random, ctx.now_ms);
    let url = provider
        .authorization_url(settings, &redirect_uri, &flow)
        .map_err(oidc_error)?;
    let token = flow.seal(key, FLOW_PURPOSE);
    let secure = session::is_https(req.headers, req.https);
    let mut reply = redirect(&url);
    reply.response.headers_mut().append(
        http::header::SET_COOKIE,
        flow_cookie(Some(&token), ctx.base_path, id, secure),
    );
    Ok(reply)
}

/// The provider sent the browser back: check the state, exchange the
/// code, validate the ID token, open the session.
async fn oidc_callback<S, C, E>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    id: &str,
    settings: &crate::login::OidcSettings,
    module: &crate::login::Module,
) -> Result<AdminReply, AdminError> {
    let key = ctx.auth.sessions.ok_or_else(no_sessions)?;
    let cookie = session::named_cookie(req.headers, oidc::FLOW_COOKIE);
    let flow = Flow::open(cookie, key, FLOW_PURPOSE, id, ctx.now_ms);
    let (flow, code) = oidc::check_callback(req.query, flow, settings).map_err(oidc_error)?;
    let fetch = ctx.fetch.ok_or_else(no_fetch)?;
    let provider = oidc::discover(fetch, settings).await.map_err(oidc_error)?;
    let redirect_uri = callback_url(ctx.base_path, req, id)?;
    let person = provider
        .finish(fetch, settings, &redirect_uri, &code, &flow, ctx.now_ms)
        .await
        .map_err(oidc_error)?;
    // Someone the module gives no role is not let in (no session).
    module.role_of(&person.roles).ok_or_else(|| {
        AdminError::forbidden("no_role", LoginError::NoRole(person.label()).to_string())
    })?;
    let s = Session::start(
        Principal::Person {
            person,
            stamp: String::new(),
        },
        ctx.now_ms,
        module.session_ms(),
        &ctx.random,
    );
    let secure = session::is_https(req.headers, req.https);
    let mut reply = redirect(&format!("{}/{}", ctx.base_path, flow.back));
    let headers = reply.response.headers_mut();
    headers.append(
        http::header::SET_COOKIE,
        session::set_cookie(Some((&s.token(key), &s)), ctx.base_path, secure),
    );
    headers.append(
        http::header::SET_COOKIE,
        flow_cookie(None, ctx.base_path, id, secure),
    );
    Ok(reply)
}

/// What the flow cookie's signature is for (not a session).
const FLOW_PURPOSE: &[u8] = b"login-flow";

fn no_fetch() -> AdminError {
    AdminError::not_offered("this deployment cannot call identity providers")
}

fn no_sessions() -> AdminError {
    AdminError::not_offered("this deployment has no session key: browser sessions are not offered")
}

fn oidc_error(e: OidcError) -> AdminError {
    match e {
        OidcError::Provider { .. } => {
            AdminError::bad_gateway("provider_unavailable", e.to_string())
        }
        OidcError::BadCallback(m) => AdminError::bad_request("", m),
        OidcError::Refused(_) | OidcError::InvalidToken(_) => {
            AdminError::unauthorized(e.to_string())
        }
        OidcError::NotAllowed(m) => AdminError::forbidden("not_allowed", m),
    }
}

/// The callback URL registered with the provider: this admin API's own
/// origin (the request's `Host`, https when the request came over it).
fn callback_url(base_path: &str, req: &AdminRequest<'_>, id: &str) -> Result<String, AdminError> {
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                })
        })
        .ok_or_else(|| {
            AdminError::bad_request("host", "a login needs the request's Host header")
        })?;
    let scheme = if session::is_https(req.headers, req.https) {
        "https"
    } else {
        "http"
    };
    Ok(format!(
        "{scheme}://{host}{base_path}/api/login/{id}/callback"
    ))
}

/// The cookie of a login in progress (or, `None`, its removal): sent back
/// by the provider's redirect (a top-level GET, hence `SameSite=Lax`),
/// scoped to this module's login paths, 10 minutes.
fn flow_cookie(token: Option<&str>, base_path: &str, id: &str, secure: bool) -> HeaderValue {
    let (value, age) = match token {
        Some(t) => (t, oidc::FLOW_LIFETIME_MS / 1000),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={base_path}/api/login/{id}; Max-Age={age}; HttpOnly; SameSite=Lax{secure}",
        oidc::FLOW_COOKIE
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("komainu_login=; Max-Age=0"))
}

fn redirect(location: &str) -> AdminReply {
    let mut response = http::Response::new(String::new());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    super::ui::secure_headers(response.headers_mut());
    AdminReply {
        response,
        applied: None,
    }
}

/// A browser gets a page it can read (with the way back to the login
/// page); a tool gets the JSON error.
fn for_browser<S, C, E>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    result: Result<AdminReply, AdminError>,
) -> AdminReply {
    let error = match result {
        Ok(reply) => return reply,
        Err(e) => e,
    };
    let html = req
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !html {
        let mut response = super::json_response(error.status, error.body());
        if let Some(allow) = error.allow {
            response
                .headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        return AdminReply {
            response,
            applied: None,
        };
    }
    let title = match error.status {
        StatusCode::BAD_GATEWAY => "The identity provider did not answer",
        StatusCode::FORBIDDEN => "You may not log in here",
        StatusCode::BAD_REQUEST => "This login cannot go on",
        _ => "Login refused",
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title} · Komainu</title><link rel=\"stylesheet\" href=\"{base}/style.css\"></head><body><main class=\"card login\"><h1>{title}</h1><p class=\"form-error\" role=\"alert\">{message}</p><p>Nothing was granted: no session was opened.</p><p><a class=\"button\" href=\"{base}/\">Back to the login page</a></p></main></body></html>",
        base = ctx.base_path,
        message = crate::text::escape_html(&error.message),
    );
    let mut response = http::Response::new(page);
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    super::ui::secure_headers(response.headers_mut());
    AdminReply {
        response,
        applied: None,
    }
}
