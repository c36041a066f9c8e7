//! The admin listener. This version serves `GET /api/health`; the rest of
//! the admin API is answered 404 with a JSON error.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::state::State;

/// Handles one admin request.
pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let revision = state.gateway.load().revision();
    let (status, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/api/health") => (
            StatusCode::OK,
            serde_json::json!({ "status": "ok", "revision": revision }),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": "not_found", "message": format!("no admin endpoint {} {}", req.method(), req.uri().path()) }),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
