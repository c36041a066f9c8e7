//! The admin listener: reads the request (body size-limited), hands it to
//! the core's admin handlers, swaps in the new configuration when a change
//! was accepted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use komainu_core::admin::{self, AdminContext, AdminError, AdminRequest};

use crate::random;
use crate::state::{now_ms, State};

/// How much of an oversized body is read and dropped before answering 413.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Handles one admin request.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = req.into_parts();
    // No body is read for a caller without valid credentials.
    if !admin::is_public(parts.uri.path()) {
        if let Err(error) = admin::authenticate_admin(&state.admin_keys, &parts.headers, now_ms()) {
            return Ok(error_response(&error));
        }
    }
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
            return Ok(error_response(&error));
        }
    };
    let random = match random::secret_bytes() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "no randomness for the admin API");
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(response);
        }
    };
    let _write_guard = if parts.method == http::Method::GET || parts.method == http::Method::HEAD {
        None
    } else {
        Some(state.admin_writes.lock().await)
    };
    let ctx = AdminContext {
        config: &state.config,
        counters: &state.counters,
        events: &state.events,
        admin_keys: &state.admin_keys,
        claim_secret: state.claim_secret.as_bytes(),
        sealing: state.sealing.as_ref(),
        live_revision: state.gateway.load().revision(),
        base_path: "",
        now_ms: now_ms(),
        random,
    };
    let request = AdminRequest {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
    };
    let reply = admin::handle(&ctx, &request).await;
    if let Some(gateway) = reply.applied {
        // Live before the response leaves: the next proxied request obeys it.
        state.install(gateway);
    }
    Ok(reply.response.map(|b| Full::new(Bytes::from(b))))
}

/// An admin error as a JSON response.
fn error_response(error: &AdminError) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(error.body())));
    *response.status_mut() = error.status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
