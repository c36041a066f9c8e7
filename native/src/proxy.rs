//! The HTTP/2 (h2c) proxy handler, under hyper's server: asks the core,
//! then forwards on the HTTP/1 path's backend pool ([`crate::h1::Pool`]),
//! streaming bodies both ways.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Version;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use komainu_core::gateway::{ClientInfo, Outcome, RequestContext};
use komainu_core::{Gateway, GatewayError};

use crate::h1::{self, Pool, Relayed};
use crate::random;
use crate::state::{now_ms, State};
use crate::upstream::UpstreamError;

/// Response bodies: the backend's, streamed, or one the gateway wrote.
pub type ProxyBody = Either<Relayed, Full<Bytes>>;

/// Handles one proxied request, forwarding through `upstream` (the worker's pool).
pub async fn handle(
    state: Arc<State>,
    upstream: Pool,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<ProxyBody>, Infallible> {
    let gateway = state.gateway.load_full();
    let (mut parts, body) = req.into_parts();
    // Komainu itself listens in clear; behind a TLS-terminating router, that
    // router's word on the scheme is taken when configured to.
    let tls = state.behind_proxy
        && parts
            .headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let client_info = ClientInfo {
        addr: Some(peer.ip()),
        tls,
    };
    let (ctx, outcome) = gateway
        .handle_request(
            &state.counters,
            &mut parts,
            &client_info,
            now_ms(),
            random::request_id(),
        )
        .await;
    warn_if_uncounted(&ctx);
    let forward = match outcome {
        Outcome::Respond(response) => return Ok(gateway_response(response)),
        Outcome::Forward(forward) => forward,
    };
    let target = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    parts.version = Version::HTTP_11;
    let timeout = Duration::from_millis(forward.timeout_ms);
    let sent = h1::bridge_send(&upstream, Request::from_parts(parts, body), timeout);
    let result = tokio::time::timeout(timeout, sent).await;
    let error = match result {
        Ok(Ok(response)) => {
            let (mut head, body) = response.into_parts();
            gateway.handle_response(&ctx, &mut head.headers);
            return Ok(Response::from_parts(head, Either::Left(body)));
        }
        Ok(Err(UpstreamError::Connect(why))) => {
            GatewayError::BadGateway(format!("cannot connect to {target}: {why}"))
        }
        Ok(Err(UpstreamError::Exchange(why))) => {
            GatewayError::BadGateway(format!("{target} broke the exchange: {why}"))
        }
        Err(_) => GatewayError::GatewayTimeout {
            timeout_ms: forward.timeout_ms,
        },
    };
    Ok(backend_error(&gateway, &ctx, &error))
}

fn gateway_response(response: Response<String>) -> Response<ProxyBody> {
    response.map(|body| Either::Right(Full::new(Bytes::from(body))))
}

fn backend_error(
    gateway: &Gateway,
    ctx: &RequestContext,
    error: &GatewayError,
) -> Response<ProxyBody> {
    warn_backend_failure(ctx, error);
    gateway_response(gateway.error_response(ctx, error))
}

/// Logs a call admitted without its quotas counted (the counter store
/// failed and the route's policy is `open`), if that is what happened.
pub fn warn_if_uncounted(ctx: &RequestContext) {
    if let Some(why) = &ctx.quota_unchecked {
        tracing::warn!(
            request_id = %ctx.request_id,
            client = ctx.client_id.as_deref().unwrap_or("-"),
            error = %why,
            "quotas not checked (counter store unavailable, policy open): call admitted"
        );
    }
}

/// Logs a backend failure answered with `error` (502, 504).
pub fn warn_backend_failure(ctx: &RequestContext, error: &GatewayError) {
    tracing::warn!(
        request_id = %ctx.request_id,
        route = ctx.route_id.as_deref().unwrap_or("-"),
        error = %error,
        "backend failure"
    );
}
