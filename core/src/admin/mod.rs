//! The admin API, implemented once over the store traits so the native
//! binary and the Worker serve the very same API.
//!
//! The adapter reads the request (head and a size-limited body), hands it to
//! [`handle`] with an [`AdminContext`] (stores, event sink, admin keys, the
//! time, random bytes), sends the response, and, when a change was
//! accepted, swaps in the compiled [`Gateway`] it returns: the change is
//! live for the next proxied request.
//!
//! Every change follows one path ([`commit`]): load the document, apply the
//! change to a copy, bump the revision, validate and compile it, save it
//! with a compare-and-swap on the revision (retrying when another writer
//! won), then emit an audit event. A change refused at any step leaves the
//! stored and running configurations exactly as they were.

mod entities;
mod error;
pub mod events;
mod login;
#[cfg(test)]
mod openapi_tests;
mod patch;
pub mod session;
mod transfer;
pub mod ui;

use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde::Serialize;

pub use error::AdminError;
pub use patch::merge_patch;
pub use session::{AdminAuth, Proof, SessionKey, Via};
pub use transfer::OTOROSHI_SHARED_KEY_HEADER;

use crate::auth::{credentials, KeyIndex};
use crate::events::{AuditEvent, Event, EventData, EventSink};
use crate::model::{AdminKey, ApiKey, Document, Quotas, ValidationErrors};
use crate::secret::SealingKey;
use crate::store::{ConfigStore, CounterStore, StoreError};
use crate::Gateway;

/// The OpenAPI 3 description of this API (served at `GET /api/openapi.json`).
pub const OPENAPI: &str = include_str!("openapi.json");

/// What the admin handlers need from the adapter, for one request.
pub struct AdminContext<'a, S, C, E> {
    /// The configuration store.
    pub config: &'a S,
    /// The quota counters (read by the quotas endpoint).
    pub counters: &'a C,
    /// Where audit events go.
    pub events: &'a E,
    /// The admin keys allowed to call the API, and the key of the
    /// browser sessions they open.
    pub auth: AdminAuth<'a>,
    /// Which deployment answers: `native` or `worker` (for the UI).
    pub deployment: &'static str,
    /// The proxy listener's port when it is not the admin API's origin
    /// (natively), so that the UI can show calls to make; `None` at the edge.
    pub proxy_port: Option<u16>,
    /// The secret signing claims (to compile new configurations).
    pub claim_secret: &'a [u8],
    /// The deployment key sealing secrets at rest, if this deployment has one.
    pub sealing: Option<&'a SealingKey>,
    /// The revision the adapter is serving (for health).
    pub live_revision: u64,
    /// The gateway serving requests here, if it is compiled (for the
    /// health of its targets).
    pub live: Option<&'a crate::Gateway>,
    /// What precedes `/api` in URLs (`""` natively, `/_komainu` at the edge).
    pub base_path: &'a str,
    /// Now, in Unix milliseconds.
    pub now_ms: u64,
    /// 32 random bytes, for a secret this request may generate.
    pub random: [u8; 32],
    /// Failed logins of this instance (or isolate).
    pub throttle: &'a crate::login::LoginThrottle,
    /// How the gateway calls identity providers (`None`: logging in
    /// through one is not offered).
    pub fetch: Option<&'a crate::login::oidc::DynFetch>,
}

/// An admin request, its body read whole (the adapter enforces the size limit).
pub struct AdminRequest<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path, starting with `/api`.
    pub path: &'a str,
    /// Query string, if any.
    pub query: Option<&'a str>,
    /// Headers (for the admin credentials).
    pub headers: &'a HeaderMap,
    /// Whether the request came over https (session cookies are then
    /// `Secure`; `X-Forwarded-Proto: https` says so too).
    pub https: bool,
    /// Body.
    pub body: &'a [u8],
}

/// The answer, and the newly compiled gateway when a change was accepted.
pub struct AdminReply {
    /// The response to send.
    pub response: Response<String>,
    /// Swap this in: the change is then live.
    pub applied: Option<Gateway>,
}

/// The default admin body limit (bytes).
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The admin key index, from admin keys (a secret in memory, or its stored
/// forms, opened with the deployment key `sealing`).
pub fn admin_key_index(
    keys: &[AdminKey],
    sealing: Option<&SealingKey>,
) -> Result<KeyIndex, ValidationErrors> {
    let as_api_keys: Vec<ApiKey> = keys
        .iter()
        .map(|k| ApiKey {
            client_id: k.client_id.clone(),
            client_secret: k.client_secret.clone(),
            client_secret_hash: k.client_secret_hash.clone(),
            client_secret_sealed: k.client_secret_sealed.clone(),
            jwks: Vec::new(),
            jwt_algorithms: vec![crate::model::HmacAlg::Hs256],
            name: String::new(),
            description: String::new(),
            tags: Vec::new(),
            metadata: Default::default(),
            read_only: false,
            allow_client_id_only: false,
            enabled: true,
            expires_at: None,
            routes: Vec::new(),
            groups: Vec::new(),
            quotas: Quotas::default(),
            rotation: Default::default(),
        })
        .collect();
    KeyIndex::build(
        &as_api_keys,
        &Default::default(),
        &Default::default(),
        sealing,
    )
}

/// Handles one admin request.
pub async fn handle<S: ConfigStore, C: CounterStore, E: EventSink>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
) -> AdminReply {
    match route(ctx, req).await {
        Ok(reply) => reply,
        Err(e) => {
            let mut response = json_response(e.status, e.body());
            if let Some(allow) = e.allow {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            if let Some(seconds) = e.retry_after_seconds {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            AdminReply {
                response,
                applied: None,
            }
        }
    }
}

async fn route<S: ConfigStore, C: CounterStore, E: EventSink>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
) -> Result<AdminReply, AdminError> {
    let Some(rest) = req.path.strip_prefix("/api") else {
        return Err(AdminError::not_found(format!(
            "no admin endpoint at {}",
            req.path
        )));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments == ["health"] {
        return match *req.method {
            Method::GET | Method::HEAD => Ok(ok(
                StatusCode::OK,
                &serde_json::json!({
                    "status": "ok",
                    "revision": ctx.live_revision,
                    "deployment": ctx.deployment,
                    "proxyPort": ctx.proxy_port,
                }),
            )),
            _ => Err(AdminError::method_not_allowed(
                "GET, HEAD",
                "health answers GET",
            )),
        };
    }
    if let ["login", rest @ ..] = segments.as_slice() {
        return login::endpoint(ctx, req, rest).await;
    }
    let proof = authenticate_admin(&ctx.auth, req.method, req.headers, ctx.now_ms)?;
    authorize(&proof, req.method, &segments)?;
    let op = Op {
        ctx,
        req,
        actor: proof.actor(),
        person: proof.person.as_ref(),
    };
    match (segments.as_slice(), req.method) {
        (["session"], _) => session_endpoint(ctx, req, &proof),
        (["try"], _) => Err(AdminError::not_offered(
            "this deployment makes no call for the UI: on the Worker, the page calls the gateway itself (same origin)",
        )),
        (["openapi.json"], &Method::GET) => Ok(AdminReply {
            response: json_response(StatusCode::OK, OPENAPI.to_owned()),
            applied: None,
        }),
        (["export"], &Method::GET) => transfer::export(&op).await,
        (["import"], &Method::POST) => transfer::import(&op).await,
        (["routes", id, "health"], &Method::GET) => {
            let live = ctx.live.ok_or_else(|| {
                AdminError::not_offered("no configuration is live here yet: send a request first")
            })?;
            let health = live.route_health(id, ctx.now_ms).ok_or_else(|| {
                AdminError::not_found(format!(
                    "no route \"{id}\" in the live configuration (revision {})",
                    live.revision()
                ))
            })?;
            Ok(ok(StatusCode::OK, &health))
        }
        (["routes", _, "health"], _) => Err(AdminError::method_not_allowed(
            "GET",
            "a route's health answers GET",
        )),
        (["routes", rest @ ..], _) => {
            entities::dispatch::<crate::model::Route, _, _, _>(&op, rest).await
        }
        (["events"], &Method::GET) => events::list(&op).await,
        (["events", "stream"], _) => Err(AdminError::not_offered(
            "the live event stream is not offered by this deployment",
        )),
        (["events"], _) => Err(AdminError::method_not_allowed(
            "GET",
            "/api/events answers GET",
        )),
        (["exporters", id, action @ ("status" | "test")], _) => {
            events::exporter(&op, id, action).await
        }
        (["exporters", rest @ ..], _) => {
            entities::dispatch::<crate::model::Exporter, _, _, _>(&op, rest).await
        }
        (["groups", rest @ ..], _) => {
            entities::dispatch::<crate::model::Group, _, _, _>(&op, rest).await
        }
        (["auth-modules", id, "revoke-sessions"], &Method::POST) => {
            entities::revoke_sessions(&op, id).await
        }
        (["auth-modules", _, "revoke-sessions"], _) => Err(AdminError::method_not_allowed(
            "POST",
            "revoke-sessions answers POST",
        )),
        (["auth-modules", rest @ ..], _) => {
            entities::dispatch::<crate::model::AuthModule, _, _, _>(&op, rest).await
        }
        (["apikeys", id, "rotate"], &Method::POST) => entities::rotate(&op, id).await,
        (["apikeys", id, "quotas"], &Method::GET) => entities::quotas(&op, id).await,
        (["apikeys", id, "quotas"], &Method::DELETE) => entities::reset_quotas(&op, id).await,
        (["openapi.json" | "export" | "import"], _) | (["apikeys", _, "rotate" | "quotas"], _) => {
            let allow = match segments.last() {
                Some(&("import" | "rotate")) => "POST",
                Some(&"quotas") => "GET, DELETE",
                _ => "GET",
            };
            Err(AdminError::method_not_allowed(
                allow,
                format!("{} is not allowed on {}: use {allow}", req.method, req.path),
            ))
        }
        (["apikeys", rest @ ..], _) => entities::dispatch::<ApiKey, _, _, _>(&op, rest).await,
        _ => Err(AdminError::not_found(format!(
            "no admin endpoint at {}",
            req.path
        ))),
    }
}

/// `/api/session`: log in (`POST`, with the admin key), who is logged in
/// (`GET`), log out (`DELETE`). People log in at `/api/login/{module}`.
fn session_endpoint<S, C, E>(
    ctx: &AdminContext<'_, S, C, E>,
    req: &AdminRequest<'_>,
    proof: &Proof,
) -> Result<AdminReply, AdminError> {
    let secure = session::is_https(req.headers, req.https);
    match (req.method, &proof.via) {
        (&Method::GET | &Method::HEAD, via) => {
            let session = match via {
                Via::Session(s) => Some((s, ctx.auth.sessions.ok_or_else(no_sessions)?)),
                Via::Key => None,
            };
            Ok(ok(
                StatusCode::OK,
                &describe_session(ctx.deployment, proof, session),
            ))
        }
        (&Method::POST, Via::Key) => {
            let key = ctx.auth.sessions.ok_or_else(no_sessions)?;
            let s = session::Session::start(
                session::Principal::Key(proof.actor.clone()),
                ctx.now_ms,
                session::LIFETIME_MS,
                &ctx.random,
            );
            let cookie = session::set_cookie(Some((&s.token(key), &s)), ctx.base_path, secure);
            let body = describe_session(ctx.deployment, proof, Some((&s, key)));
            Ok(with_cookie(ok(StatusCode::CREATED, &body), cookie))
        }
        (&Method::POST, Via::Session(_)) => Err(AdminError::bad_request(
            "",
            "a session is opened with the admin key (Komainu-Client-Id/Komainu-Client-Secret, or Basic), or by logging in at /api/login/{module}, not with another session",
        )),
        (&Method::DELETE, _) => Ok(with_cookie(
            ok(StatusCode::OK, &serde_json::json!({"loggedOut": true})),
            session::set_cookie(None, ctx.base_path, secure),
        )),
        _ => Err(AdminError::method_not_allowed(
            "GET, POST, DELETE",
            "/api/session answers GET (who is logged in), POST (log in with the admin key) and DELETE (log out)",
        )),
    }
}

/// What `/api/session` says of a caller.
pub(crate) fn describe_session(
    deployment: &str,
    proof: &Proof,
    session: Option<(&session::Session, &SessionKey)>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "actor": proof.actor,
        "role": proof.role,
        "via": if session.is_some() { "session" } else { "key" },
        "deployment": deployment,
    });
    if let Some(person) = &proof.person {
        body["user"] = serde_json::to_value(person).unwrap_or_default();
    }
    if let Some((s, key)) = session {
        body["expiresAt"] = format_expiry(s.expires_ms).into();
        body["csrfToken"] = s.csrf_token(key).into();
    }
    body
}

fn format_expiry(ms: u64) -> String {
    crate::time::format_rfc3339(ms)
}

/// Adds a `Set-Cookie` to a reply.
pub(crate) fn with_cookie(mut reply: AdminReply, value: HeaderValue) -> AdminReply {
    reply
        .response
        .headers_mut()
        .append(header::SET_COOKIE, value);
    reply
}

/// What a role allows: a viewer reads, and may only log out; the export
/// (password hashes, sealed secrets) is for admins.
fn authorize(proof: &Proof, method: &Method, segments: &[&str]) -> Result<(), AdminError> {
    if proof.role == crate::login::Role::Admin {
        return Ok(());
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let logout = segments == ["session"] && *method == Method::DELETE;
    if segments == ["export"] {
        return Err(AdminError::forbidden(
            "read_only",
            format!(
                "{} has the viewer role: the export holds password hashes and sealed secrets, it needs the admin role",
                proof.actor
            ),
        ));
    }
    if safe || logout {
        Ok(())
    } else {
        Err(AdminError::forbidden(
            "read_only",
            format!(
                "{} has the viewer role (read-only): {method} is refused; ask an admin for the admin role",
                proof.actor
            ),
        ))
    }
}

fn no_sessions() -> AdminError {
    AdminError::not_offered("this deployment has no session key: browser sessions are not offered")
}

/// Whether `path` (from `/api` on) answers without credentials: health,
/// and the login endpoints (`/api/login…`: they are how credentials are
/// obtained).
pub fn is_public(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == "/api/health" || path == "/api/login" || path.starts_with("/api/login/")
}

/// Who the caller is (an admin key sent with the request, or a browser
/// session), or the 401 (403 for a session's write without its CSRF value)
/// to answer. Adapters call it before reading a request body, so that a
/// caller without valid credentials makes the gateway read nothing but a
/// head.
pub fn authenticate_admin(
    auth: &AdminAuth<'_>,
    method: &Method,
    headers: &HeaderMap,
    now_ms: u64,
) -> Result<Proof, AdminError> {
    const HOW: &str = "send the admin key as Komainu-Client-Id/Komainu-Client-Secret headers, Basic, or a Bearer JWT, or log in (POST /api/session)";
    let found =
        credentials::extract(headers).map_err(|e| AdminError::unauthorized(e.to_string()))?;
    let proof = match found {
        None => match session::from_request(auth, method, headers, now_ms)? {
            Some(proof) => proof,
            None => {
                return Err(AdminError::unauthorized(format!(
                    "the admin API needs an admin key: {HOW}"
                )))
            }
        },
        Some(found) => {
            let key = auth.keys.authenticate(&found, now_ms).map_err(|_| {
                AdminError::unauthorized(format!("invalid admin credentials: {HOW}"))
            })?;
            Proof::key(&key.client_id)
        }
    };
    // Credentials a browser attached by itself (a session cookie, cached
    // Basic credentials) do not make another site's page an admin.
    if session::is_cross_site_write(method, headers) {
        return Err(AdminError::forbidden(
            "csrf",
            "a change sent by another site's page is refused (the browser says Sec-Fetch-Site is not same-origin)",
        ));
    }
    Ok(proof)
}

/// One authenticated admin operation.
pub(crate) struct Op<'a, S, C, E> {
    pub(crate) ctx: &'a AdminContext<'a, S, C, E>,
    pub(crate) req: &'a AdminRequest<'a>,
    pub(crate) actor: &'a str,
    /// The person acting, when a person logged in.
    pub(crate) person: Option<&'a crate::login::Person>,
}

/// What a change did, for the response and the audit event.
pub(crate) struct Change<T> {
    /// What the handler answers.
    pub(crate) result: T,
    /// The audit action (`route.create`…).
    pub(crate) action: String,
    /// The entity id, if any.
    pub(crate) target: Option<String>,
    /// Where the entity sits in the document (`routes[3]`), so validation
    /// errors can name fields relative to it.
    pub(crate) focus: Option<String>,
    /// Prefixes to rename in validation errors (`routes[7]` in the merged
    /// document → `routes[0]` in the imported one).
    pub(crate) renames: Vec<(String, String)>,
    /// The entity before and after (secrets removed).
    pub(crate) before: Option<serde_json::Value>,
    pub(crate) after: Option<serde_json::Value>,
}

/// A change that was saved and compiled.
pub(crate) struct Committed<T> {
    pub(crate) result: T,
    pub(crate) revision: u64,
    pub(crate) gateway: Gateway,
}

const MAX_ATTEMPTS: usize = 8;

impl<S: ConfigStore, C: CounterStore, E: EventSink> Op<'_, S, C, E> {
    /// The stored document (an empty one when nothing is stored).
    pub(crate) async fn load(&self) -> Result<Document, AdminError> {
        self.ctx
            .config
            .load()
            .await
            .map_err(store_error)
            .map(Option::unwrap_or_default)
    }

    /// Applies `change` to the stored document, validates, compiles, saves
    /// (compare-and-swap), emits the audit event.
    pub(crate) async fn commit<T>(
        &self,
        change: impl Fn(&mut Document) -> Result<Change<T>, AdminError>,
    ) -> Result<Committed<T>, AdminError> {
        self.commit_with(false, change).await
    }

    /// `change` applied to `current`: the next document (revision bumped,
    /// validated, secrets sealed), what the change did, and the compiled
    /// gateway. Nothing is saved.
    fn apply<T>(
        &self,
        current: &Document,
        change: &impl Fn(&mut Document) -> Result<Change<T>, AdminError>,
    ) -> Result<(Document, Change<T>, Gateway), AdminError> {
        let mut next = current.clone();
        let change_made = change(&mut next)?;
        next.revision = current.revision + 1;
        let refused = |e| {
            AdminError::invalid(relative_to(
                e,
                change_made.focus.as_deref(),
                &change_made.renames,
            ))
        };
        // Clear secrets are judged before they are sealed away.
        next.validate().map_err(refused)?;
        crate::login::hash_passwords(&mut next, &self.ctx.random)
            .map_err(|e| AdminError::internal(format!("a password could not be hashed: {e}")))?;
        next.seal_secrets(self.ctx.sealing);
        let gateway =
            Gateway::compile(&next, self.ctx.claim_secret, self.ctx.sealing).map_err(refused)?;
        Ok((next, change_made, gateway))
    }

    /// What [`Op::commit`] would change, as the difference between the
    /// stored document and the next one; nothing is saved and no event
    /// is emitted.
    pub(crate) async fn preview<T>(
        &self,
        change: impl Fn(&mut Document) -> Result<Change<T>, AdminError>,
    ) -> Result<(u64, crate::model::Diff), AdminError> {
        let current = self.load().await?;
        let (next, _, _) = self.apply(&current, &change)?;
        Ok((
            current.revision,
            crate::model::Diff::between(&next, &current),
        ))
    }

    /// [`Op::commit`]; `replaces_all`: the change does not depend on what
    /// is stored (a full import), so it may proceed on an emptied store.
    pub(crate) async fn commit_with<T>(
        &self,
        replaces_all: bool,
        change: impl Fn(&mut Document) -> Result<Change<T>, AdminError>,
    ) -> Result<Committed<T>, AdminError> {
        for _ in 0..MAX_ATTEMPTS {
            let stored = self.ctx.config.load().await.map_err(store_error)?;
            if stored.is_none() && self.ctx.live_revision > 0 && !replaces_all {
                // A shared store that lost its data (flushed, restarted
                // without persistence): changing "nothing" would wipe the
                // configuration every instance is serving.
                return Err(AdminError::store_unavailable(format!(
                    "the store is empty but this gateway serves revision {}; the instances write their live configuration back within seconds (or import a full configuration); nothing was changed, retry shortly",
                    self.ctx.live_revision
                )));
            }
            let current = stored.unwrap_or_default();
            let (next, change_made, gateway) = self.apply(&current, &change)?;
            match self.ctx.config.save(&next, current.revision).await {
                Ok(()) => {
                    self.ctx.events.emit(Event::new(
                        event_random(&self.ctx.random),
                        self.ctx.now_ms,
                        EventData::Audit(AuditEvent {
                            actor: self.actor.to_owned(),
                            user: self.person.cloned(),
                            action: change_made.action,
                            target: change_made.target,
                            revision: next.revision,
                            before: change_made.before,
                            after: change_made.after,
                        }),
                    ));
                    return Ok(Committed {
                        result: change_made.result,
                        revision: next.revision,
                        gateway,
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(e)),
            }
        }
        Err(AdminError::conflict(
            "the configuration kept changing under this request; retry",
        ))
    }

    /// Parses the body as JSON.
    pub(crate) fn json_body(&self) -> Result<serde_json::Value, AdminError> {
        serde_json::from_slice(self.req.body).map_err(|e| AdminError::malformed_json(&e))
    }

    /// The value of a query parameter.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.req
            .query?
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// An event id's 128 bits from the request's random bytes, one-way (the
/// same bytes may become a generated secret).
pub(crate) fn event_random(random: &[u8; 32]) -> u128 {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"komainu event id\0")
        .chain_update(random)
        .finalize();
    let mut bits = [0u8; 16];
    bits.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(bits)
}

/// Field paths made relative to `focus` (`routes[3].paths[0]` → `paths[0]`),
/// or renamed (`routes[7].x` → `routes[0].x`).
fn relative_to(
    mut errors: ValidationErrors,
    focus: Option<&str>,
    renames: &[(String, String)],
) -> ValidationErrors {
    for e in &mut errors.0 {
        let renamed = renames.iter().find_map(|(from, to)| {
            let rest = e.field.strip_prefix(from.as_str())?;
            (rest.is_empty() || rest.starts_with('.')).then(|| format!("{to}{rest}"))
        });
        if let Some(field) = renamed {
            e.field = field;
        }
    }
    if let Some(focus) = focus {
        let prefix = format!("{focus}.");
        for e in &mut errors.0 {
            if let Some(rest) = e.field.strip_prefix(&prefix) {
                e.field = rest.to_owned();
            }
        }
    }
    errors
}

fn store_error(e: StoreError) -> AdminError {
    AdminError::store_unavailable(format!("{e}; nothing was changed"))
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    ui::secure_headers(response.headers_mut());
    response
}

/// A reply with a serialized body and no change.
pub(crate) fn ok<T: Serialize>(status: StatusCode, body: &T) -> AdminReply {
    AdminReply {
        response: json_response(status, serde_json::to_string(body).unwrap_or_default()),
        applied: None,
    }
}

#[cfg(test)]
mod tests;
