//! One request on the HTTP/1 path, start to finish, in the client
//! connection's task: the core decides on the parsed head, the head for
//! the backend is written straight from the received bytes, the body
//! follows, and the response comes back the same way. Nothing is copied
//! into header maps; a small exchange costs one read and one write on
//! each side.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use http::Method;
use komainu_core::events::EventSink as _;
use komainu_core::gateway::{
    connection_names, is_hop_by_hop, is_idempotent, response_headers, varies_by_origin,
    without_gateway_cookies, ClientInfo, Decision, Exchange, Forwarding, HeaderLookup,
    RequestContext, RequestHead, Timings,
};
use komainu_core::{Gateway, GatewayError};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::body::Body;
use super::buf::ReadBuf;
use super::pool::{Conn, Pool};
use super::request::{header_slots, Framing, HeadError, HeaderSlots, Request};
use super::response::{read_response_head, HeadFailure, ResponseFraming};
use super::CLIENT_IDLE;
use super::{deadline, write, Clock, HEAD_LIMIT};
use crate::proxy::{warn_backend_failure, warn_if_uncounted};
use crate::random;
use crate::state::{now_ms, State};
use crate::upstream::{root_cause, UpstreamError};
use komainu_core::gateway::Timeout;
use komainu_core::routing::TargetUrl;

/// A client connection: socket, bytes received, bytes to send.
pub struct Client {
    /// The socket.
    pub io: TcpStream,
    /// Received and not consumed yet.
    pub buf: ReadBuf,
    /// Scratch buffer for heads (reused from request to request).
    pub out: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Times the wait for a backend's response head (kept from request
    /// to request: see [`super::deadline`]).
    pub backend_timer: Pin<Box<Sleep>>,
}

/// What to do with the client connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for the next request.
    KeepAlive,
    /// Close it.
    Close,
}

/// What the log phase needs to know of an exchange, filled as it goes.
#[derive(Default)]
struct Tally {
    /// The status sent to the client.
    status: u16,
    /// The error the gateway answered with.
    error: Option<GatewayError>,
    bytes_in: u64,
    bytes_out: u64,
    attempts: u32,
    backend_us: Option<u64>,
    /// When the answer's head left, from the arrival.
    head_us: Option<u64>,
    /// The request is `HEAD`: answers carry no body.
    head_request: bool,
    /// Request body bytes received so far (chunk framing not counted).
    body_data: u64,
}

/// The decided request, as the log phase reads it.
struct Decided {
    ctx: RequestContext,
    /// None: the head could not be read.
    method: Option<Method>,
    host: String,
    path: String,
}

/// Serves the request whose head is complete in `client.buf`, then runs
/// the log phase (its event and counters).
pub async fn exchange(client: &mut Client, state: &State, pool: &Pool) -> Next {
    let gateway = state.gateway.load_full();
    let arrived = Instant::now();
    let mut tally = Tally::default();
    let mut decided = None;
    let next = serve(
        client,
        state,
        pool,
        &gateway,
        arrived,
        &mut tally,
        &mut decided,
    )
    .await;
    if let Some(d) = decided {
        let total_us = micros(arrived.elapsed());
        let exchange = Exchange {
            method: d.method.as_ref(),
            host: d.host,
            path: d.path,
            status: tally.status,
            error: tally.error.as_ref(),
            client_ip: Some(client.peer.ip()),
            bytes_in: tally.bytes_in,
            bytes_out: tally.bytes_out,
            attempts: tally.attempts,
            timings: Timings {
                total_us,
                head_us: tally.head_us.unwrap_or(total_us),
                backend_us: tally.backend_us,
            },
        };
        gateway.log(&d.ctx, exchange, &state.events);
    }
    next
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Answers with a gateway error, noting it for the log phase.
async fn refuse(
    io: &mut TcpStream,
    out: &mut Vec<u8>,
    gateway: &Gateway,
    ctx: &RequestContext,
    error: GatewayError,
    keep_alive: bool,
    tally: &mut Tally,
) -> Next {
    let next = respond(
        io,
        out,
        gateway,
        ctx,
        &error,
        (keep_alive, tally.head_request),
    )
    .await;
    tally.status = error.status().as_u16();
    tally.error = Some(error);
    next
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    client: &mut Client,
    state: &State,
    pool: &Pool,
    gateway: &Gateway,
    arrived: Instant,
    tally: &mut Tally,
    decided: &mut Option<Decided>,
) -> Next {
    let Client {
        io,
        buf,
        out,
        peer,
        backend_timer,
    } = client;
    let mut headers: HeaderSlots = header_slots!();
    let (req, head_len) = match Request::parse(buf.filled(), &mut headers) {
        Ok(parsed) => parsed,
        Err(e) => {
            let error = match e {
                HeadError::TooManyHeaders => GatewayError::HeadersTooLarge { limit: HEAD_LIMIT },
                bad => GatewayError::BadRequest(bad.to_string()),
            };
            let ctx = &decided
                .insert(Decided {
                    ctx: RequestContext::new(random::request_id(), now_ms()),
                    method: None,
                    host: String::new(),
                    path: String::new(),
                })
                .ctx;
            return refuse(io, out, gateway, ctx, error, false, tally).await;
        }
    };
    tally.head_request = *req.method() == Method::HEAD;
    let tls = state.behind_proxy
        && req
            .first("x-forwarded-proto")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"https"));
    let client_info = ClientInfo {
        addr: Some(peer.ip()),
        tls,
    };
    let (ctx, decision) = gateway
        .decide(
            &state.counters,
            &req,
            &client_info,
            now_ms(),
            random::request_id(),
        )
        .await;
    warn_if_uncounted(&ctx);
    // Copied for the request event only when there will be one.
    let copy = |text: &str| {
        if state.events.wants_request_events() {
            text.to_owned()
        } else {
            String::new()
        }
    };
    let ctx = &mut decided
        .insert(Decided {
            ctx,
            method: Some(req.method().clone()),
            host: copy(req.host()),
            path: copy(req.path()),
        })
        .ctx;
    let framing = req.framing;
    let client_close = req.close;
    let http11 = req.http11;
    let is_head = *req.method() == Method::HEAD;
    let idempotent = is_idempotent(req.method());
    let expects_continue = req.expects_continue;
    let mut forwarding = match decision {
        Ok(Decision::Forward(forwarding)) => forwarding,
        Ok(Decision::Login(step)) => {
            // One of the gateway's login paths (private routes); a login
            // form posted is read here (it is small).
            buf.consume(head_len);
            let form = if step.wants_body() {
                read_form(
                    io,
                    buf,
                    framing,
                    komainu_core::gateway::login::MAX_FORM_BYTES,
                )
                .await
            } else {
                Some(Vec::new())
            };
            let keep = !client_close
                && form.is_some()
                && (step.wants_body() || skip_buffered_body(buf, framing));
            let response =
                crate::proxy::login_step(gateway, state, &step, &form.unwrap_or_default()).await;
            return answer(io, out, &response, keep, is_head, tally).await;
        }
        Ok(Decision::Answer(response)) => {
            // The route answers itself (redirect, static response).
            buf.consume(head_len);
            let keep = !client_close && skip_buffered_body(buf, framing);
            return answer(io, out, &response, keep, is_head, tally).await;
        }
        Err(error) => {
            buf.consume(head_len);
            let keep = !client_close && skip_buffered_body(buf, framing);
            return refuse(io, out, gateway, ctx, error, keep, tally).await;
        }
    };
    // An upgrade the route does not allow goes on as a plain request (its
    // Upgrade header is hop-by-hop, dropped).
    // (Copied: the head's buffer is consumed below; upgrades are rare.)
    let upgrade: Option<Vec<u8>> = req
        .upgrade
        .filter(|p| forwarding.allows_upgrade(p))
        .map(<[u8]>::to_vec);
    out.clear();
    let mut spans = write_upstream_head(
        out,
        &req,
        upgrade.as_deref(),
        &forwarding,
        &client_info,
        ctx,
    );
    buf.consume(head_len);

    // The body: what came with the head goes out with it.
    let mut body = Body::new(framing);
    let mut data = 0u64;
    match body.scan(buf.filled(), |r| data += r.len() as u64) {
        Ok(n) => {
            out.extend_from_slice(&buf.filled()[..n]);
            buf.consume(n);
            tally.bytes_in += n as u64;
            tally.body_data = data;
            if let Some(limit) = forwarding.max_body_bytes.filter(|&l| data > l) {
                out.clear();
                let error = GatewayError::PayloadTooLarge { limit };
                return refuse(io, out, gateway, ctx, error, false, tally).await;
            }
        }
        Err(e) => {
            out.clear();
            let error = GatewayError::BadRequest(e.to_string());
            return refuse(io, out, gateway, ctx, error, false, tally).await;
        }
    }
    if expects_continue
        && !body.done()
        && io
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .is_err()
    {
        return Next::Close;
    }

    let clock = Clock {
        timeouts: forwarding.timeouts,
        arrived,
    };
    let sent = send(
        Sending {
            upgrade: upgrade.as_deref(),
            idempotent,
            gateway,
            spans: &mut spans,
            clock,
        },
        io,
        buf,
        out,
        pool,
        (&mut forwarding, &mut *ctx),
        &mut body,
        backend_timer.as_mut(),
        tally,
    )
    .await;
    let ctx = &*ctx;
    let target = forwarding.target;
    let conn = match sent {
        Ok(conn) => conn,
        Err(Failure::Gateway(error)) => {
            warn_backend_failure(ctx, &error);
            out.clear();
            // The request was read to its end: the connection can go on
            // (not after a body cut at its limit: its bytes are unread).
            let cut = matches!(error, GatewayError::PayloadTooLarge { .. });
            let keep = !client_close && body.done() && !cut;
            return refuse(io, out, gateway, ctx, error, keep, tally).await;
        }
        Err(Failure::Client) => {
            // The client went away: nothing was answered.
            tally.status = 499;
            return Next::Close;
        }
    };
    let asked = Asked {
        http11,
        is_head,
        close: client_close,
        upgrade: upgrade.is_some(),
    };
    relay_response(
        io,
        buf,
        out,
        conn,
        pool,
        target,
        gateway,
        ctx,
        asked,
        clock,
        backend_timer.as_mut(),
        (arrived, tally),
    )
    .await
}

/// What the client's request asked for, as far as the response cares.
#[derive(Clone, Copy)]
struct Asked {
    http11: bool,
    is_head: bool,
    /// The client closes after this exchange.
    close: bool,
    /// The client asked to switch protocols.
    upgrade: bool,
}

/// Consumes a request body the gateway refused, when it is all there:
/// then the connection can serve the next request.
fn skip_buffered_body(buf: &mut ReadBuf, framing: Framing) -> bool {
    let mut body = Body::new(framing);
    match body.scan(buf.filled(), |_| {}) {
        Ok(n) if body.done() => {
            buf.consume(n);
            true
        }
        _ => false,
    }
}

/// The request head for the backend: origin-form target under the
/// target's base path, the client's headers but those the rules drop,
/// the gateway's own, and the framing of the body.
fn write_upstream_head(
    out: &mut Vec<u8>,
    req: &Request<'_>,
    upgrade: Option<&[u8]>,
    forwarding: &Forwarding<'_>,
    client: &ClientInfo,
    ctx: &RequestContext,
) -> TargetSpans {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let mut spans = TargetSpans {
        base_path: (out.len(), forwarding.target.base_path.len()),
        host: None,
    };
    out.extend_from_slice(forwarding.target.base_path.as_bytes());
    out.extend_from_slice(forwarding.upstream_path(req.path_and_query()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let headers = req.headers();
    let named = ConnectionNames::of(headers);
    let mut cookies = false;
    write::kept_lines(out, req.raw(), headers, |h| {
        let gateway_cookie =
            h.name.eq_ignore_ascii_case("cookie") && without_gateway_cookies(h.value).is_some();
        cookies |= gateway_cookie;
        !(forwarding.drops(h.name)
            || is_framing(h.name)
            || h.name.eq_ignore_ascii_case("expect")
            || named.contains(h.name)
            || gateway_cookie)
    });
    if cookies {
        // The gateway's own cookies stay here; the client's others go on.
        for h in headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("cookie"))
        {
            if let Some(rest) = without_gateway_cookies(h.value) {
                if !rest.is_empty() {
                    write::header(out, "cookie", &rest);
                }
            }
        }
    }
    forwarding.added_headers(req, client, ctx, |name, value| {
        if name == "host" {
            spans.host = Some((out.len() + name.len() + 2, value.len()));
        }
        write::header(out, name, value);
    });
    forwarding.route_headers(|name, value| write::header(out, name, value));
    if let Some(protocol) = upgrade {
        // Hop-by-hop, yet what the backend must see to switch protocols.
        write::header(out, "upgrade", protocol);
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    match req.framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write::number(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    out.extend_from_slice(b"\r\n");
    spans
}

/// Where the target shows in a written request head: its base path in
/// the request line and the `Host` value (offset, length).
struct TargetSpans {
    base_path: (usize, usize),
    host: Option<(usize, usize)>,
}

impl TargetSpans {
    /// Points the head in `out` at target `to` instead of `from` (a
    /// retry): the base path, and `Host` when it was the target's.
    fn retarget(&mut self, out: &mut Vec<u8>, from: &TargetUrl, to: &TargetUrl) {
        if let Some((at, len)) = self.host {
            if out.get(at..at + len) == Some(from.authority.as_str().as_bytes()) {
                let new = to.authority.as_str().as_bytes();
                out.splice(at..at + len, new.iter().copied());
                self.host = Some((at, new.len()));
            }
        }
        let (at, len) = self.base_path;
        out.splice(at..at + len, to.base_path.bytes());
        let moved = to.base_path.len() as isize - len as isize;
        self.base_path = (at, to.base_path.len());
        if let Some((h, _)) = self.host.as_mut() {
            *h = h.saturating_add_signed(moved);
        }
    }
}

fn is_framing(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// Why a request could not be sent.
enum Failure {
    /// Answer the client with this error.
    Gateway(GatewayError),
    /// The client went away or broke its request: close.
    Client,
}

/// What `send` needs beyond the buffers: the request's traits and what a
/// retry on another target needs.
struct Sending<'a, 'g> {
    upgrade: Option<&'a [u8]>,
    idempotent: bool,
    gateway: &'g Gateway,
    spans: &'a mut TargetSpans,
    clock: Clock,
}

/// Sends the head (and the body that came with it, in `out`) on an idle
/// or new connection, then the rest of the body, and waits for the
/// response head. A reused connection that turns out closed before any
/// response byte is replaced by a new one when the whole request is still
/// in `out` and its method is idempotent (a POST is never sent twice).
/// When the core allows a retry ([`Gateway::retry`]), another target is
/// tried: after a target that could not be reached (nothing was sent), or
/// one that broke an idempotent request without a body before any
/// response byte. Every write to the backend and the wait for its head are
/// bounded by the route's timeout: a backend that stops reading gets 504.
#[allow(clippy::too_many_arguments)]
async fn send<'g>(
    sending: Sending<'_, 'g>,
    client: &mut TcpStream,
    buf: &mut ReadBuf,
    out: &mut Vec<u8>,
    pool: &Pool,
    (forwarding, ctx): (&mut Forwarding<'g>, &mut RequestContext),
    body: &mut Body,
    mut timer: Pin<&mut Sleep>,
    tally: &mut Tally,
) -> Result<Conn, Failure> {
    let Sending {
        upgrade,
        idempotent,
        gateway,
        spans,
        clock,
    } = sending;
    let replayable = body.done();
    // The whole request (head and body) is still in `out`: an idempotent
    // one can go again, anywhere.
    let resendable = replayable && upgrade.is_none();
    let mut fresh_only = false;
    let started = Instant::now();
    // Another target, when the core allows one: the head is pointed at it.
    let mut retarget =
        |out: &mut Vec<u8>, forwarding: &mut Forwarding<'g>, ctx: &mut RequestContext| {
            let retry = gateway.retry(ctx, now_ms())?;
            spans.retarget(out, forwarding.target, retry.target);
            forwarding.target = retry.target;
            Some(Duration::from_millis(retry.wait_ms))
        };
    loop {
        let target = forwarding.target;
        tally.attempts += 1;
        let idle = if fresh_only {
            None
        } else {
            pool.checkout(target)
        };
        let mut conn = match idle {
            Some(conn) => conn,
            None => match clock
                .within(Timeout::Connect, timer.as_mut(), pool.connect(target))
                .await
                .and_then(|c| c.map_err(|e| upstream_error(forwarding, e)))
            {
                Ok(conn) => conn,
                Err(error) => match retarget(out, forwarding, ctx) {
                    Some(wait) => {
                        tracing::debug!(%error, "retrying on another target");
                        tokio::time::sleep(wait).await;
                        fresh_only = false;
                        continue;
                    }
                    None => return Err(Failure::Gateway(error)),
                },
            },
        };
        let retry_allowed = conn.reused && replayable && idempotent;
        match clock
            .within(Timeout::Idle, timer.as_mut(), conn.io.write_all(out))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) if retry_allowed => {
                fresh_only = true;
                continue;
            }
            Ok(Err(e)) => return Err(Failure::Gateway(exchange_error(forwarding, &e))),
            Err(timed_out) => return Err(Failure::Gateway(timed_out)),
        }
        if !body.done() {
            tally.bytes_in += stream_request_body(
                client,
                buf,
                &mut conn,
                body,
                (forwarding, clock),
                timer.as_mut(),
                &mut tally.body_data,
            )
            .await?;
        }
        let head = clock
            .within(
                Timeout::Head,
                timer.as_mut(),
                read_response_head(&mut conn, upgrade),
            )
            .await;
        match head {
            Ok(Ok(())) => {
                tally.backend_us = Some(micros(started.elapsed()));
                return Ok(conn);
            }
            Ok(Err(HeadFailure::Closed)) if retry_allowed && conn.buf.is_empty() => {
                fresh_only = true;
            }
            Ok(Err(failure)) => {
                let why = match failure {
                    HeadFailure::Closed => "the connection was closed before a response".into(),
                    HeadFailure::Io(e) => root_cause(&e),
                    HeadFailure::Invalid(why) => why,
                };
                let error = GatewayError::BadGateway(format!(
                    "{} broke the exchange: {why}",
                    target.authority
                ));
                let unanswered = conn.buf.is_empty();
                drop(conn);
                if idempotent && resendable && unanswered {
                    if let Some(wait) = retarget(out, forwarding, ctx) {
                        tracing::debug!(%error, "retrying on another target");
                        tokio::time::sleep(wait).await;
                        fresh_only = false;
                        continue;
                    }
                }
                return Err(Failure::Gateway(error));
            }
            Err(timed_out) => return Err(Failure::Gateway(timed_out)),
        }
    }
}

async fn stream_request_body(
    client: &mut TcpStream,
    buf: &mut ReadBuf,
    conn: &mut Conn,
    body: &mut Body,
    (forwarding, clock): (&Forwarding<'_>, Clock),
    mut timer: Pin<&mut Sleep>,
    data: &mut u64,
) -> Result<u64, Failure> {
    let mut sent = 0;
    while !body.done() {
        let read = deadline(
            timer.as_mut(),
            CLIENT_IDLE,
            buf.read_from(client, BODY_CHUNK),
        );
        match read.await {
            Some(Ok(0) | Err(_)) | None => return Err(Failure::Client),
            Some(Ok(_)) => {}
        }
        let n = body
            .scan(buf.filled(), |r| *data += r.len() as u64)
            .map_err(|_| Failure::Client)?;
        // A body of unknown length past the route's limit: the backend's
        // connection is dropped mid-request, the client gets 413.
        if let Some(limit) = forwarding.max_body_bytes.filter(|&l| *data > l) {
            return Err(Failure::Gateway(GatewayError::PayloadTooLarge { limit }));
        }
        // A backend that stops reading the upload loses the exchange.
        match clock
            .within(
                Timeout::Idle,
                timer.as_mut(),
                conn.io.write_all(&buf.filled()[..n]),
            )
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Failure::Gateway(exchange_error(forwarding, &e))),
            Err(timed_out) => return Err(Failure::Gateway(timed_out)),
        }
        buf.consume(n);
        sent += n as u64;
    }
    Ok(sent)
}

/// Sends an answer of the gateway's own (not a backend's).
async fn answer(
    io: &mut TcpStream,
    out: &mut Vec<u8>,
    response: &http::Response<String>,
    keep: bool,
    is_head: bool,
    tally: &mut Tally,
) -> Next {
    tally.status = response.status().as_u16();
    out.clear();
    write::gateway_response(out, response, keep, !is_head);
    match io.write_all(out).await {
        Ok(()) if keep => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// A small request body read whole (a login form): `None` past `limit`,
/// malformed, or when the client stops sending.
async fn read_form(
    client: &mut TcpStream,
    buf: &mut ReadBuf,
    framing: Framing,
    limit: usize,
) -> Option<Vec<u8>> {
    let mut body = Body::new(framing);
    let mut form = Vec::new();
    loop {
        let filled = buf.filled();
        let n = body
            .scan(filled, |r| form.extend_from_slice(&filled[r]))
            .ok()?;
        buf.consume(n);
        if form.len() > limit {
            return None;
        }
        if body.done() {
            return Some(form);
        }
        match tokio::time::timeout(super::CLIENT_IDLE, buf.read_from(client, BODY_CHUNK)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// Largest piece of a body read at once from a client.
const BODY_CHUNK: usize = 64 * 1024;

/// Passes the response (head in `conn.buf`) to the client: hop-by-hop
/// headers dropped, the gateway's added, the body streamed as framed.
#[allow(clippy::too_many_arguments)]
async fn relay_response(
    client: &mut TcpStream,
    client_buf: &mut ReadBuf,
    out: &mut Vec<u8>,
    mut conn: Conn,
    pool: &Pool,
    target: &komainu_core::routing::TargetUrl,
    gateway: &Gateway,
    ctx: &RequestContext,
    asked: Asked,
    clock: Clock,
    mut timer: Pin<&mut Sleep>,
    (arrived, tally): (Instant, &mut Tally),
) -> Next {
    let Asked {
        http11,
        is_head,
        close: client_close,
        upgrade,
    } = asked;
    let mut headers: HeaderSlots = header_slots!();
    let mut response = httparse::Response::new(&mut []);
    let raw = conn.buf.filled();
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        raw,
        &mut headers,
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) | Err(_) => {
            let error = GatewayError::BadGateway(format!(
                "{} sent a malformed response head",
                target.authority
            ));
            warn_backend_failure(ctx, &error);
            out.clear();
            return refuse(client, out, gateway, ctx, error, false, tally).await;
        }
    };
    let status = response.code.unwrap_or(502);
    tally.status = status;
    // Only a requested upgrade gets this far with a 101.
    let switching = status == 101 && upgrade;
    let ResponseFraming {
        framing,
        content_length,
        reusable: upstream_keep,
        has_date,
    } = match ResponseFraming::of(&response, is_head || switching) {
        Ok(framing) => framing,
        Err(why) => {
            let error = GatewayError::BadGateway(format!("{} {why}", target.authority));
            warn_backend_failure(ctx, &error);
            out.clear();
            return refuse(client, out, gateway, ctx, error, false, tally).await;
        }
    };
    // A route that checks the backend's answer (Otoroshi's state challenge).
    if let Err(error) = gateway.check_response(ctx, &ResponseLines(response.headers), now_ms()) {
        warn_backend_failure(ctx, &error);
        out.clear();
        return refuse(client, out, gateway, ctx, error, false, tally).await;
    }
    // An HTTP/1.0 client cannot read chunks: it gets the data, then the close.
    let dechunk = framing == Framing::Chunked && !http11;
    let keep = !client_close && framing != Framing::UntilClose && !dechunk && !switching;

    // Head: status line, the gateway's headers, then the backend's.
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    write::number(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut added: [&str; 16] = [""; 16];
    let mut added_count = 0;
    let mut add = |name: &'static str, value: &[u8]| {
        if added_count < added.len() {
            added[added_count] = name;
            added_count += 1;
        }
        write::header(out, name, value);
    };
    response_headers(ctx, &mut add);
    let head_us = micros(arrived.elapsed());
    if let Some(backend_us) = tally.backend_us {
        gateway.latency_headers(head_us.saturating_sub(backend_us), backend_us, &mut add);
    }
    let added = &added[..added_count];
    let named = ConnectionNames::of(response.headers);
    let rules = gateway.response_rules(ctx);
    write::kept_lines(out, &raw[..head_len], response.headers, |h| {
        !(is_hop_by_hop(h.name)
            || (dechunk && h.name.eq_ignore_ascii_case("transfer-encoding"))
            // The length is written below, once, in canonical form.
            || h.name.eq_ignore_ascii_case("content-length")
            || added.iter().any(|a| a.eq_ignore_ascii_case(h.name))
            || named.contains(h.name)
            || rules.is_some_and(|r| r.drops(h.name)))
    });
    if let Some(rules) = rules {
        rules.for_each_added(|name, value| write::header(out, name, value));
    }
    if varies_by_origin(ctx) {
        out.extend_from_slice(b"vary: Origin\r\n");
    }
    if let Some(n) = content_length {
        out.extend_from_slice(b"content-length: ");
        write::number(out, n);
        out.extend_from_slice(b"\r\n");
    }
    if !has_date {
        write::date(out);
    }
    if switching {
        if let Some(protocol) = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("upgrade"))
        {
            write::header(out, "upgrade", protocol.value);
        }
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !http11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    conn.buf.consume(head_len);
    tally.head_us = Some(micros(arrived.elapsed()));

    // Body: what came with the head goes out with the head.
    let mut body = Body::new(framing);
    loop {
        let input = conn.buf.filled();
        let scanned = if dechunk {
            body.scan(input, |r| out.extend_from_slice(&input[r]))
        } else {
            body.scan(input, |_| {})
                .inspect(|&n| out.extend_from_slice(&input[..n]))
        };
        match scanned {
            Ok(n) => {
                conn.buf.consume(n);
                tally.bytes_out += n as u64;
            }
            Err(_) => return Next::Close,
        }
        if !out.is_empty() {
            let limit = CLIENT_IDLE.min(clock.limit(Timeout::Total).0);
            match deadline(timer.as_mut(), limit, client.write_all(out)).await {
                Some(Ok(())) => {}
                Some(Err(_)) | None => return Next::Close,
            }
        }
        out.clear();
        if body.done() {
            break;
        }
        // A backend that stops sending its body mid-way (longer than
        // `idleMs` between two reads, or past `totalMs`) loses the
        // exchange: the answer has begun, the connection is closed.
        match clock
            .within(
                Timeout::Idle,
                timer.as_mut(),
                conn.buf.read_from(&mut conn.io, BODY_CHUNK),
            )
            .await
        {
            Ok(Ok(0)) if body.end_of_stream() => break,
            Ok(Ok(0) | Err(_)) => return Next::Close,
            Err(timed_out) => {
                tracing::warn!(request_id = %ctx.request_id, error = %timed_out, "answer cut");
                return Next::Close;
            }
            Ok(Ok(_)) => {}
        }
    }
    if switching {
        tunnel(client, client_buf, &mut conn).await;
        return Next::Close;
    }
    if upstream_keep {
        pool.checkin(target, conn);
    }
    if keep {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// After a `101 Switching Protocols`, bytes go both ways as they come
/// until either side closes: first what was already read on each side.
async fn tunnel(client: &mut TcpStream, client_buf: &mut ReadBuf, conn: &mut Conn) {
    if !conn.buf.is_empty() {
        if client.write_all(conn.buf.filled()).await.is_err() {
            return;
        }
        conn.buf.consume(conn.buf.len());
    }
    if !client_buf.is_empty() {
        if conn.io.write_all(client_buf.filled()).await.is_err() {
            return;
        }
        client_buf.consume(client_buf.len());
    }
    let _ = tokio::io::copy_bidirectional(client, &mut conn.io).await;
}

/// The header names a message's `Connection` headers list beyond the
/// standard hop-by-hop ones (usually none): they are dropped with it.
struct ConnectionNames<'a> {
    names: Vec<&'a [u8]>,
}

impl<'a> ConnectionNames<'a> {
    fn of(headers: &[httparse::Header<'a>]) -> Self {
        let mut names = Vec::new();
        for h in headers {
            if h.name.eq_ignore_ascii_case("connection") {
                names.extend(connection_names(h.value).filter(|n| {
                    std::str::from_utf8(n).map_or(true, |n| !is_hop_by_hop(n))
                        && !n.eq_ignore_ascii_case(b"close")
                }));
            }
        }
        Self { names }
    }

    fn contains(&self, name: &str) -> bool {
        !self.names.is_empty()
            && self
                .names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// Writes a gateway error (or refusal) to the client (its head only when
/// the request was `HEAD`).
pub async fn respond(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    gateway: &Gateway,
    ctx: &RequestContext,
    error: &GatewayError,
    (keep_alive, head_request): (bool, bool),
) -> Next {
    out.clear();
    write::gateway_response(
        out,
        &gateway.error_response(ctx, error),
        keep_alive,
        !head_request,
    );
    match client.write_all(out).await {
        Ok(()) if keep_alive => Next::KeepAlive,
        _ => Next::Close,
    }
}

fn upstream_error(forwarding: &Forwarding<'_>, e: UpstreamError) -> GatewayError {
    let target = &forwarding.target.authority;
    match e {
        UpstreamError::Connect(why) => {
            GatewayError::BadGateway(format!("cannot connect to {target}: {why}"))
        }
        UpstreamError::Exchange(why) => {
            GatewayError::BadGateway(format!("{target} broke the exchange: {why}"))
        }
        UpstreamError::TooLarge(limit) => GatewayError::PayloadTooLarge { limit },
        UpstreamError::TimedOut(which) => forwarding.timeouts.error(which),
    }
}

fn exchange_error(forwarding: &Forwarding<'_>, e: &std::io::Error) -> GatewayError {
    upstream_error(forwarding, UpstreamError::Exchange(root_cause(e)))
}

/// A backend's response header lines, read by name.
struct ResponseLines<'a, 'b>(&'a [httparse::Header<'b>]);

impl komainu_core::gateway::HeaderLookup for ResponseLines<'_, '_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}
