//! `/api/login`: how people open an admin session through an auth module.
//!
//! - `GET /api/login`: the modules the login page offers (no credentials
//!   needed: this is how a browser gets some);
//! - `POST /api/login/{module}` with `{"username", "password"}`: a local
//!   user logs in; the answer sets the session cookie, as
//!   `POST /api/session` does for an admin key.
//!
//! A wrong password answers 401 without saying whether the user exists;
//! repeated failures are throttled ([`crate::login::LoginThrottle`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::session::{self, Principal, Proof, Session, Via};
use super::{
    describe_session, ok, with_cookie, AdminContext, AdminError, AdminReply, AdminRequest,
};
use crate::events::EventSink;
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
        ([id], _) => {
            let module = logins
                .module(id)
                .map_err(|e| AdminError::not_found(e.to_string()))?;
            Err(match module.kind() {
                AuthKind::Local => AdminError::method_not_allowed(
                    "POST",
                    format!("a local module logs people in with POST /api/login/{id} and {{\"username\", \"password\"}}"),
                ),
                AuthKind::Oidc => AdminError::not_offered(
                    "logging in through an OpenID provider is not offered by this version yet",
                ),
            })
        }
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
