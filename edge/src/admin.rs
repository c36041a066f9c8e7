//! The admin API at the edge: the very same core handlers as natively,
//! over the configuration and counter Durable Objects.

use futures_util::StreamExt as _;
use komainu_core::admin::{
    self, admin_key_index, AdminAuth, AdminContext, AdminError, AdminRequest, SessionKey,
    DEFAULT_MAX_BODY_BYTES,
};
use komainu_core::model::AdminKey;
use worker::{Context, Env, Request, Response, Result};

use crate::config_object::DoConfigStore;
use crate::counters::DoCounterStore;
use crate::events::EdgeEvents;
use crate::settings::Settings;
use crate::{head, live, now_ms, proxy, random_secret_bytes};

/// Failed logins of people, in this isolate (the shared daily cap is in
/// the counter Durable Objects).
static LOGIN_THROTTLE: std::sync::LazyLock<komainu_core::login::LoginThrottle> =
    std::sync::LazyLock::new(Default::default);

/// Handles one admin request (`{admin_path}/api/...`).
pub async fn handle(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    wctx: &Context,
) -> Result<Response> {
    let url = req.url()?;
    let path = url
        .path()
        .strip_prefix(settings.admin_path.as_str())
        .unwrap_or("/api")
        .to_owned();
    let claim_secret = match settings.claim_secret(env).await {
        Ok(secret) => secret,
        Err(e) => {
            return proxy::store_unavailable(&format!("the claim secret cannot be read: {e}"))
        }
    };
    let sealing = match settings.sealing() {
        Ok(sealing) => sealing,
        Err(e) => return proxy::store_unavailable(&format!("KOMAINU_SECRET_KEY: {e}")),
    };
    // No (valid) admin key configured: nobody is let in (health still answers).
    let admin_key = match settings.admin_key.as_deref().map(AdminKey::from_pair) {
        Some(Ok(key)) => vec![key],
        Some(Err(e)) => {
            worker::console_error!(
                "KOMAINU_ADMIN_KEY is refused, nobody can use the admin API: {e}"
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    // A key given in clear compiles whatever the deployment key.
    let admin_keys =
        admin_key_index(&admin_key, None).map_err(|e| worker::Error::RustError(e.to_string()))?;
    // Sessions are signed with a key derived from the deployment key, or,
    // without one, from the admin key's own secret: every isolate derives
    // the same, and changing the admin key ends every session.
    let sessions = match (&sealing, settings.admin_key.as_deref()) {
        (Some(key), _) => Some(SessionKey::from_deployment_key(key)),
        (None, Some(pair)) => Some(SessionKey::from_material(pair.as_bytes())),
        (None, None) => None,
    };
    // People's sessions and logins are checked against the auth modules
    // of the configuration this isolate serves (refreshed as for proxying).
    let live_gateway = match live::gateway(env, &claim_secret, settings, now_ms()).await {
        Ok(gateway) => Some(gateway),
        Err(e) => {
            worker::console_warn!("the configuration cannot be loaded for people's logins: {e}");
            live::current()
        }
    };
    let auth = AdminAuth {
        keys: &admin_keys,
        sessions: sessions.as_ref(),
        logins: live_gateway.as_deref().map(komainu_core::Gateway::logins),
    };
    let parts = head::parts_of(&req)?;
    // No body is read for a caller without valid credentials.
    if !admin::is_public(&path) {
        if let Err(error) =
            admin::authenticate_admin(&auth, &parts.method, &parts.headers, now_ms())
        {
            return error_response(&error);
        }
    }
    let declared = req
        .headers()
        .get("content-length")?
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > DEFAULT_MAX_BODY_BYTES {
        return error_response(&AdminError::too_large(DEFAULT_MAX_BODY_BYTES));
    }
    // Read piece by piece: a chunked body stops being read at the limit.
    let mut body = Vec::new();
    if let Ok(mut stream) = req.stream() {
        while let Some(piece) = stream.next().await {
            body.extend_from_slice(&piece?);
            if body.len() > DEFAULT_MAX_BODY_BYTES {
                return error_response(&AdminError::too_large(DEFAULT_MAX_BODY_BYTES));
            }
        }
    }
    let now = now_ms();
    let events = EdgeEvents::default();
    let config = DoConfigStore { env };
    let ctx = AdminContext {
        config: &config,
        counters: &DoCounterStore { env },
        events: &events,
        auth,
        throttle: &LOGIN_THROTTLE,
        fetch: Some(&crate::provider_fetch::WorkerFetch),
        deployment: "worker",
        proxy_port: None,
        claim_secret: claim_secret.as_bytes(),
        sealing: sealing.as_ref(),
        live_revision: live::revision(),
        live: live_gateway.as_deref(),
        base_path: &settings.admin_path,
        now_ms: now,
        random: random_secret_bytes()?,
    };
    let request = AdminRequest {
        method: &parts.method,
        path: &path,
        query: url.query(),
        headers: &parts.headers,
        https: url.scheme() == "https",
        body: &body,
    };
    let reply = admin::handle(&ctx, &request).await;
    if let Some(gateway) = reply.applied {
        live::install(gateway, now);
    }
    // The change's audit event (and alerts) join the shared event log
    // before the answer: a client reading /api/events next sees them.
    events.keep(&config).await;
    // Webhooks get them after the answer, with the configuration now live.
    if !events.is_empty() {
        if let Some(gateway) = live::current() {
            wctx.wait_until(async move { events.deliver(&gateway).await });
        }
    }
    head::core_response(reply.response)
}

fn error_response(error: &AdminError) -> Result<Response> {
    let mut response = http::Response::new(error.body());
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    admin::ui::secure_headers(response.headers_mut());
    head::core_response(response)
}

/// What the admin host answers outside the admin API and the UI.
pub fn only_admin_here(settings: &Settings) -> Result<Response> {
    error_response(&AdminError::not_found(format!(
        "this host (KOMAINU_ADMIN_HOST) serves only the Komainu admin API and web UI, at {}/",
        settings.admin_path
    )))
}

/// The web UI's files under the admin path (`{admin_path}/`), or `None`
/// when `rest` (what follows the admin path) is not one of them.
pub fn ui(req: &Request, rest: &str, settings: &Settings) -> Option<Result<Response>> {
    let method = match req.method() {
        worker::Method::Get => http::Method::GET,
        worker::Method::Head => http::Method::HEAD,
        _ => http::Method::POST,
    };
    if rest.is_empty() {
        // `/_komainu` → `/_komainu/`: the UI's relative links need the slash.
        let headers = worker::Headers::new();
        let location = format!("{}/", settings.admin_path);
        return Some(
            headers
                .set("location", &location)
                .and_then(|_| Ok(Response::empty()?.with_status(308).with_headers(headers))),
        );
    }
    let response = admin::ui::respond(&method, rest)?;
    Some(head::core_response(
        response.map(|b| String::from_utf8_lossy(b).into_owned()),
    ))
}
