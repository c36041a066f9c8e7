//! The admin listener: reads the request (body size-limited), hands it to
//! the core's admin handlers, swaps in the new configuration when a change
//! was accepted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use komainu_core::admin::{self, AdminContext, AdminError, AdminRequest};

use crate::events::stream::{self, EventStream};
use crate::random;
use crate::state::{now_ms, State};

/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Admin response bodies: whole, or an event stream.
pub type AdminBody = Either<Full<Bytes>, EventStream>;

/// Handles one admin request. Every answer carries the UI's protections
/// (CSP, no framing, no sniffing): the UI and the API share the origin.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<AdminBody>, Infallible> {
    let Ok(mut response) = answer(state, req, peer).await;
    admin::ui::secure_headers(response.headers_mut());
    Ok(response)
}

async fn answer(
    state: Arc<State>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<AdminBody>, Infallible> {
    let path = req.uri().path();
    // The web UI's files: public, none holds a secret.
    if let Some(response) = admin::ui::respond(req.method(), path) {
        return Ok(response.map(|b| Either::Left(Full::new(Bytes::from_static(b)))));
    }
    let metrics = path == "/metrics";
    let stream = path.trim_end_matches('/') == "/api/events/stream";
    // No body is read for a caller without valid credentials.
    let open = admin::is_public(path) || (metrics && state.metrics_open);
    if !open {
        let live = state.gateway.load();
        if let Err(error) =
            admin::authenticate_admin(&state.auth(&live), req.method(), req.headers(), now_ms())
        {
            return Ok(error_response(&error).map(Either::Left));
        }
    }
    if metrics {
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        return Ok(serve_metrics(&state, req.method(), accept).map(Either::Left));
    }
    if stream {
        return Ok(serve_stream(&state, &req));
    }
    Ok(handle_api(state, req, peer).await.map(Either::Left))
}

/// `GET /metrics`.
fn serve_metrics(
    state: &Arc<State>,
    method: &http::Method,
    accept: Option<&str>,
) -> Response<Full<Bytes>> {
    if method != http::Method::GET && method != http::Method::HEAD {
        let mut response = error_response(&AdminError::method_not_allowed(
            "GET, HEAD",
            "/metrics answers GET",
        ));
        response.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return response;
    }
    match crate::metrics::render(state, accept) {
        Ok((text, content_type)) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            response
        }
        Err(_) => {
            let mut response = Response::new(Full::new(Bytes::from_static(
                b"metrics could not be rendered\n",
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// `GET /api/events/stream`: Server-Sent Events.
fn serve_stream(state: &Arc<State>, req: &Request<Incoming>) -> Response<AdminBody> {
    if req.method() != http::Method::GET {
        let mut response = error_response(&AdminError::method_not_allowed(
            "GET",
            "/api/events/stream answers GET",
        ));
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("GET"));
        return response.map(Either::Left);
    }
    let query = match admin::events::parse_query(req.uri().query()) {
        Ok(query) => query,
        Err(error) => return error_response(&error).map(Either::Left),
    };
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let body = stream::open(&state.events.hub, query, last_id, state.closing.clone());
    let mut response = Response::new(Either::Right(body));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    // Tells buffering reverse proxies (nginx) to pass events at once.
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    // A stream that ends (its reader fell behind, the gateway stops) ends
    // its connection too: the reader reconnects and resumes.
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// The JSON admin API.
async fn handle_api(
    state: Arc<State>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let (parts, mut body) = req.into_parts();
    let limited = Limited::new(&mut body, state.admin_max_body)
        .collect()
        .await;
    let body = match limited {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            let error = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                // Read (and drop) the rest, within reason, so the client
                // gets the 413 instead of a connection reset mid-upload.
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    Limited::new(body, DRAIN_LIMIT).collect(),
                )
                .await;
                AdminError::too_large(state.admin_max_body)
            } else {
                AdminError::bad_request("", format!("the request body could not be read: {e}"))
            };
            return error_response(&error);
        }
    };
    let random = match random::secret_bytes() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "no randomness for the admin API");
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
    };
    if parts.uri.path().trim_end_matches('/') == "/api/try" {
        if parts.method != http::Method::POST {
            let mut response = error_response(&AdminError::method_not_allowed(
                "POST",
                "/api/try answers POST",
            ));
            response
                .headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return response;
        }
        return match crate::try_it::call(&state, &body).await {
            Ok(answer) => {
                let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                admin::ui::secure_headers(response.headers_mut());
                response
            }
            Err(error) => error_response(&error),
        };
    }
    let _write_guard = if parts.method == http::Method::GET || parts.method == http::Method::HEAD {
        None
    } else {
        Some(state.admin_writes.lock().await)
    };
    let live = state.gateway.load_full();
    let ctx = AdminContext {
        config: &state.config,
        counters: &state.counters,
        events: &state.events,
        auth: state.auth(&live),
        throttle: &state.login_throttle,
        fetch: Some(&state.provider_fetch),
        deployment: "native",
        proxy_port: Some(state.proxy_addr.port()),
        claim_secret: state.claim_secret.as_bytes(),
        sealing: state.sealing.as_ref(),
        live_revision: live.revision(),
        live: Some(&live),
        base_path: "",
        now_ms: now_ms(),
        random,
    };
    let request = AdminRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        https: false,
        body: &body,
    };
    let reply = admin::handle(&ctx, &request).await;
    if let Some(gateway) = reply.applied {
        // Live before the response leaves: the next proxied request obeys it.
        state.install(gateway);
    }
    reply.response.map(|b| Full::new(Bytes::from(b)))
}

/// An admin error as a JSON response.
fn error_response(error: &AdminError) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(error.body())));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    admin::ui::secure_headers(response.headers_mut());
    response
}
