//! The HTTP/2 (h2c) proxy handler, under hyper's server: asks the core,
//! then forwards on the HTTP/1 path's backend pool ([`crate::h1::Pool`]),
//! streaming bodies both ways.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http::Version;
use http_body_util::{Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use komainu_core::gateway::{
    ClientInfo, Exchange, Outcome, RequestContext, RequestHead, Timeout, Timings,
};
use komainu_core::{Gateway, GatewayError};

use crate::h1::{self, Pool, Relayed, Sent};
use crate::random;
use crate::state::{now_ms, State};
use crate::upstream::UpstreamError;

/// A client's request to switch protocols: the protocol asked, and its
/// side of the connection once switched.
type Switch = (http::HeaderValue, hyper::upgrade::OnUpgrade);

/// Response bodies: the backend's, streamed, or one the gateway wrote.
pub type ProxyBody = Either<Relayed, Full<Bytes>>;

/// Handles one proxied request, forwarding through `upstream` (the worker's
/// pool). The log phase runs when the answer's body ends (or is dropped).
pub async fn handle(
    state: Arc<State>,
    upstream: Pool,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<LoggedBody>, Infallible> {
    serve(state, upstream, req, peer, false).await
}

/// [`handle`] for a request that came over TLS (the HTTPS listener).
pub async fn handle_secure(
    state: Arc<State>,
    upstream: Pool,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<LoggedBody>, Infallible> {
    serve(state, upstream, req, peer, true).await
}

async fn serve(
    state: Arc<State>,
    upstream: Pool,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    secure: bool,
) -> Result<Response<LoggedBody>, Infallible> {
    // A client asking to switch protocols (HTTP/1.1 over TLS): its side of
    // a tunnel, should the route allow it and the backend switch.
    let switch = req
        .headers()
        .get(http::header::UPGRADE)
        .cloned()
        .map(|protocol| (protocol, hyper::upgrade::on(&mut req)));
    let arrived = Instant::now();
    let gateway = state.gateway.load_full();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let host = parts.host().to_owned();
    let path = match komainu_core::path::normalize(parts.path_and_query()) {
        Ok(pq) => pq.split('?').next().unwrap_or("/").to_owned(),
        Err(_) => parts.uri.path().to_owned(),
    };
    let mut sent = Sent::default();
    let (ctx, response, error, backend_us) = forward(
        &state,
        &gateway,
        &upstream,
        parts,
        body,
        (peer, secure, switch),
        (&mut sent, arrived),
    )
    .await;
    let status = response.status().as_u16();
    let (head, body) = response.into_parts();
    let pending = Pending {
        state,
        gateway,
        ctx,
        method,
        host,
        path,
        status,
        error,
        client_ip: peer.ip(),
        sent,
        backend_us,
        head_us: micros(arrived.elapsed()),
        arrived,
        bytes_out: 0,
    };
    Ok(Response::from_parts(
        head,
        LoggedBody {
            inner: body,
            pending: Some(pending),
        },
    ))
}

/// A response body that runs the log phase when it ends or is dropped.
pub struct LoggedBody {
    inner: ProxyBody,
    pending: Option<Pending>,
}

/// What the log phase will need, kept until the body ends.
struct Pending {
    state: Arc<State>,
    gateway: Arc<Gateway>,
    ctx: RequestContext,
    method: Method,
    host: String,
    path: String,
    status: u16,
    error: Option<GatewayError>,
    client_ip: std::net::IpAddr,
    sent: Sent,
    backend_us: Option<u64>,
    head_us: u64,
    arrived: Instant,
    bytes_out: u64,
}

impl hyper::body::Body for LoggedBody {
    type Data = Bytes;
    type Error = <ProxyBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(p)) = (frame.data_ref(), self.pending.as_mut()) {
                p.bytes_out += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            let total_us = micros(p.arrived.elapsed());
            let exchange = Exchange {
                method: Some(&p.method),
                host: p.host,
                path: p.path,
                status: p.status,
                error: p.error.as_ref(),
                client_ip: Some(p.client_ip),
                bytes_in: p.sent.bytes_in,
                bytes_out: p.bytes_out,
                attempts: p.sent.attempts,
                timings: Timings {
                    total_us,
                    head_us: p.head_us,
                    backend_us: p.backend_us,
                },
            };
            p.gateway.log(&p.ctx, exchange, &p.state.events);
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The request phases, then the backend: the context, the answer, the
/// error the gateway answered with (if any) and the backend's time.
async fn forward(
    state: &State,
    gateway: &Gateway,
    upstream: &Pool,
    mut parts: http::request::Parts,
    mut body: Incoming,
    (peer, secure, switch): (SocketAddr, bool, Option<Switch>),
    (sent, arrived): (&mut Sent, Instant),
) -> (
    RequestContext,
    Response<ProxyBody>,
    Option<GatewayError>,
    Option<u64>,
) {
    // Komainu itself listens in clear; behind a TLS-terminating router, that
    // router's word on the scheme is taken when configured to.
    let tls = secure
        || state.behind_proxy
            && parts
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let client_info = ClientInfo {
        addr: Some(peer.ip()),
        tls,
    };
    let (mut ctx, outcome) = gateway
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
        Outcome::Respond(response) => {
            let error = ctx.refusal.clone();
            return (ctx, gateway_response(response), error, None);
        }
        Outcome::Login(step) => {
            let form = if step.wants_body() {
                http_body_util::BodyExt::collect(http_body_util::Limited::new(
                    body,
                    komainu_core::gateway::login::MAX_FORM_BYTES,
                ))
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default()
            } else {
                Bytes::new()
            };
            let response = login_step(gateway, state, &step, &form).await;
            return (ctx, gateway_response(response), None, None);
        }
        Outcome::Forward(forward) => forward,
    };
    parts.version = Version::HTTP_11;
    let clock = h1::Clock {
        timeouts: forward.timeouts,
        arrived,
    };
    sent.max_body = forward.max_body_bytes;
    // Without a body, or with a small one held whole, an idempotent request
    // may go again to another target after a broken exchange; any request
    // may after a target that could not be reached (nothing of it was sent).
    let bodiless = hyper::body::Body::is_end_stream(&body);
    let idempotent = komainu_core::gateway::is_idempotent(&parts.method);
    let held = if idempotent && !bodiless && !forward.upgrade {
        match hold_small_body(&mut body, clock, sent).await {
            Ok(held) => held,
            Err(error) => {
                let response = backend_error(gateway, &ctx, &error);
                return (ctx, response, Some(error), None);
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    let error = loop {
        let target = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let protocol = switch
            .as_ref()
            .filter(|_| forward.upgrade)
            .map(|(p, _)| p.as_bytes());
        let exchange = h1::bridge_send(
            upstream,
            &parts,
            &mut body,
            held.as_ref(),
            (clock, protocol),
            sent,
        );
        let (error, retryable) = match exchange.await {
            Ok(response) => {
                let backend_us = micros(started.elapsed());
                let (mut head, body) = response.into_parts();
                if let Err(error) = gateway.check_response(&ctx, &head.headers, now_ms()) {
                    break error;
                }
                gateway.handle_response(&ctx, &mut head.headers);
                if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
                    // (Only when the client asked: the backend's head was
                    // checked to switch to that very protocol.)
                    if let Some((protocol, client)) = switch {
                        if body.tunnel(client) {
                            head.headers.insert(http::header::UPGRADE, protocol);
                            head.headers.insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("upgrade"),
                            );
                            let empty = Either::Right(Full::new(Bytes::new()));
                            return (
                                ctx,
                                Response::from_parts(head, empty),
                                None,
                                Some(backend_us),
                            );
                        }
                    }
                    let error = GatewayError::BadGateway(format!(
                        "{target} switched protocols, then closed"
                    ));
                    let response = backend_error(gateway, &ctx, &error);
                    return (ctx, response, Some(error), None);
                }
                let proxy_us = micros(arrived.elapsed()).saturating_sub(backend_us);
                gateway.latency_headers(proxy_us, backend_us, |name, value| {
                    if let Ok(v) = http::HeaderValue::from_bytes(value) {
                        head.headers.insert(name, v);
                    }
                });
                return (
                    ctx,
                    Response::from_parts(head, Either::Left(body)),
                    None,
                    Some(backend_us),
                );
            }
            Err(UpstreamError::Connect(why)) => (
                GatewayError::BadGateway(format!("cannot connect to {target}: {why}")),
                true,
            ),
            Err(UpstreamError::Exchange(why)) => (
                GatewayError::BadGateway(format!("{target} broke the exchange: {why}")),
                (bodiless || held.is_some()) && idempotent,
            ),
            Err(UpstreamError::TooLarge(limit)) => (GatewayError::PayloadTooLarge { limit }, false),
            // Nothing was sent when no connection could be opened in time.
            Err(UpstreamError::TimedOut(which)) => {
                (forward.timeouts.error(which), which == Timeout::Connect)
            }
        };
        if !retryable {
            break error;
        }
        let Some(wait_ms) = gateway.retry_request(&mut ctx, &mut parts, now_ms()) else {
            break error;
        };
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    };
    let response = backend_error(gateway, &ctx, &error);
    (ctx, response, Some(error), None)
}

/// The most a request body may weigh to be held whole, so that an
/// idempotent request can go again to another target.
const HELD_BODY_BYTES: u64 = 64 * 1024;

/// Reads a small body whole (its length declared, at most
/// [`HELD_BODY_BYTES`]), within the route's idle and total timeouts;
/// `None` for a body of unknown or larger length (it streams instead).
async fn hold_small_body(
    body: &mut Incoming,
    clock: h1::Clock,
    sent: &Sent,
) -> Result<Option<Bytes>, GatewayError> {
    use hyper::body::Body as _;
    let Some(len) = body.size_hint().exact().filter(|&n| n <= HELD_BODY_BYTES) else {
        return Ok(None);
    };
    if let Some(limit) = sent.max_body.filter(|&l| len > l) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let mut held = bytes::BytesMut::with_capacity(len as usize);
    loop {
        let frame = clock
            .bounded(Timeout::Idle, http_body_util::BodyExt::frame(body))
            .await
            .map_err(|which| clock.timeouts.error(which))?;
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    held.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                return Err(GatewayError::BadRequest(format!(
                    "the request body broke off: {e}"
                )))
            }
        }
        if held.len() as u64 > len {
            return Err(GatewayError::BadRequest(
                "the request body is longer than its content-length".into(),
            ));
        }
    }
    Ok(Some(held.freeze()))
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

/// Logs a backend failure answered with `error` (502, 504); what is not
/// the backend's fault (a body over the limit) is not logged as one.
pub fn warn_backend_failure(ctx: &RequestContext, error: &GatewayError) {
    if error.blame() != komainu_core::error::Blame::Backend {
        return;
    }
    tracing::warn!(
        request_id = %ctx.request_id,
        route = ctx.route_id.as_deref().unwrap_or("-"),
        error = %error,
        "backend failure"
    );
}

/// Runs one of the gateway's login paths (private routes): it may call the
/// identity provider.
pub async fn login_step(
    gateway: &Gateway,
    state: &State,
    step: &komainu_core::gateway::LoginStep,
    body: &[u8],
) -> http::Response<String> {
    // Fresh random bytes; the request-id generator if the system's fail.
    let random = random::secret_bytes().unwrap_or_else(|_| {
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&random::request_id().bits().to_le_bytes());
        bytes[16..].copy_from_slice(&random::request_id().bits().to_le_bytes());
        bytes
    });
    gateway
        .login_step(step, body, Some(&state.provider_fetch), now_ms(), random)
        .await
}
