//! The respond phase and the error answers.

use http::header::{self, HeaderValue};
use http::{HeaderMap, Response};

use super::context::RequestContext;
use super::upstream::remove_hop_by_hop;
use super::Gateway;
use crate::GatewayError;

impl Gateway {
    /// **respond**: prepares the backend's response head for the client:
    /// hop-by-hop headers removed, `Komainu-Request-Id` and, for a key with
    /// quotas, the remaining-calls and `RateLimit` headers added.
    pub fn handle_response(&self, ctx: &RequestContext, headers: &mut HeaderMap) {
        remove_hop_by_hop(headers);
        if let Some(rules) = self.response_rules(ctx) {
            rules.apply(headers);
        }
        add_context_headers(ctx, headers);
    }

    /// Checks a backend's response head before it goes to the client: on
    /// a route with Otoroshi's state challenge, the backend's
    /// `Otoroshi-State-Resp` (502 `bad_gateway` when it fails). Adapters
    /// call it on every proxied response head; routes without the
    /// challenge pay one `Option` check.
    pub fn check_response(
        &self,
        ctx: &RequestContext,
        headers: &impl super::HeaderLookup,
        now_ms: u64,
    ) -> Result<(), GatewayError> {
        match &ctx.otoroshi {
            Some(exchange) => exchange.check(self.otoroshi_signer.as_ref(), headers, now_ms),
            None => Ok(()),
        }
    }

    /// The route's changes to a backend's response headers, if it has
    /// any: for adapters that write heads themselves (the headers it
    /// [`drops`](super::transform::HeaderRules::drops) stay out, then its
    /// own are written).
    pub fn response_rules(&self, ctx: &RequestContext) -> Option<&super::transform::HeaderRules> {
        ctx.route
            .and_then(|i| self.routes.get(i))
            .and_then(|r| r.response_rules.as_ref())
    }

    /// When `settings.latencyHeaders` is on: `Komainu-Upstream-Latency`
    /// (the backend's time to its response head) and
    /// `Komainu-Proxy-Latency` (the gateway's own time until then), in
    /// whole milliseconds, for a proxied response. Adapters call it while
    /// writing the response head.
    pub fn latency_headers(
        &self,
        proxy_us: u64,
        upstream_us: u64,
        mut emit: impl FnMut(&'static str, &[u8]),
    ) {
        if !self.latency_headers {
            return;
        }
        let mut digits = [0u8; 20];
        emit(
            "komainu-upstream-latency",
            crate::text::decimal(upstream_us / 1000, &mut digits),
        );
        emit(
            "komainu-proxy-latency",
            crate::text::decimal(proxy_us / 1000, &mut digits),
        );
    }

    /// The JSON answer for an error, with the request id, `WWW-Authenticate`
    /// on 401, `Retry-After` on 429 and the quota headers when known.
    pub fn error_response(&self, ctx: &RequestContext, error: &GatewayError) -> Response<String> {
        let body = serde_json::json!({
            "error": error.code(),
            "message": error.to_string(),
            "requestId": ctx.request_id.as_str(),
        })
        .to_string();
        let mut response = Response::new(body);
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match error {
            GatewayError::MissingCredentials | GatewayError::InvalidCredentials(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"komainu\", Bearer realm=\"komainu\""),
                );
            }
            GatewayError::QuotaExceeded { retry_after_s, .. }
            | GatewayError::Maintenance { retry_after_s, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            }
            _ => {}
        }
        add_context_headers(ctx, headers);
        response
    }
}

pub(crate) fn add_context_headers(ctx: &RequestContext, headers: &mut HeaderMap) {
    response_headers(ctx, |name, value| {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    });
    if varies_by_origin(ctx) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// The headers the respond phase adds to a backend's response (names in
/// lower case): `Komainu-Request-Id` and, for a key with quotas, the
/// remaining-calls and `RateLimit` headers. For adapters that write heads
/// themselves; they drop [`super::is_hop_by_hop`] headers too.
pub fn response_headers(ctx: &RequestContext, mut emit: impl FnMut(&'static str, &[u8])) {
    emit("komainu-request-id", ctx.request_id.as_str().as_bytes());
    if let Some(cors) = &ctx.cors {
        cors.for_each(|name, value| emit(name, value.as_bytes()));
    }
    if let Some(otoroshi) = &ctx.otoroshi {
        otoroshi.emit_back(ctx, &mut emit);
    }
    if let Some(quota) = &ctx.quota {
        quota.for_each_header(emit);
    }
}

/// Whether the answer varies with the request's `Origin` (CORS echoing an
/// allowed origin): adapters that write heads themselves add `Vary:
/// Origin` beside the backend's own `Vary`.
pub fn varies_by_origin(ctx: &RequestContext) -> bool {
    ctx.cors.as_ref().is_some_and(|c| c.varies())
}
