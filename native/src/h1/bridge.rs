//! HTTP/2 requests (h2c, served by hyper) forwarded on the backend
//! connections of the HTTP/1 path: one pool serves both. The request head
//! (already rewritten by the core) is written as HTTP/1.1, its body
//! streamed (chunked when its length is unknown); the response comes back
//! as an `http::Response` whose body streams from the connection and gives
//! the connection back to the pool at its end.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::uri::Scheme;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use komainu_core::routing::TargetUrl;
use tokio::io::AsyncWriteExt;

use super::body::Body;
use super::pool::{Conn, Pool};
use super::request::{header_slots, Framing, HeaderSlots};
use super::response::{read_response_head, HeadFailure, ResponseFraming};
use super::write;
use super::{Clock, CLIENT_IDLE};
use crate::upstream::{root_cause, UpstreamError};
use komainu_core::gateway::Timeout;

/// Read buffer growth for response bodies.
const BODY_CHUNK: usize = 64 * 1024;

/// Sends `req` (absolute URI of the target, head rewritten by the core) on
/// an idle or new connection of `pool`, and reads the response head.
///
/// The request is borrowed: after an [`UpstreamError::Connect`] nothing of
/// it was sent, and the caller may send it again to another target.
///
/// `held`: the whole body, already read (a small body of an idempotent
/// request, kept so that it can go again to another target); `body` is
/// then not read.
pub async fn send(
    pool: &Pool,
    parts: &http::request::Parts,
    body: &mut Incoming,
    held: Option<&Bytes>,
    (clock, upgrade): (Clock, Option<&[u8]>),
    tally: &mut Sent,
) -> Result<Response<Relayed>, UpstreamError> {
    let target = TargetUrl {
        scheme: parts.uri.scheme().cloned().unwrap_or(Scheme::HTTP),
        authority: parts
            .uri
            .authority()
            .cloned()
            .ok_or_else(|| UpstreamError::Connect("the target has no host".into()))?,
        base_path: String::new(),
    };
    let framing = if let Some(held) = held {
        Framing::Length(held.len() as u64)
    } else if body.is_end_stream() {
        match parts.headers.contains_key(CONTENT_LENGTH) {
            true => Framing::Length(0),
            false => Framing::Empty,
        }
    } else {
        match body.size_hint().exact() {
            Some(n) => Framing::Length(n),
            None => Framing::Chunked,
        }
    };
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        if name != CONTENT_LENGTH && name != TRANSFER_ENCODING {
            write::header(&mut out, name.as_str(), value.as_bytes());
        }
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            write::number(&mut out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    if let Some(protocol) = upgrade {
        // Hop-by-hop, yet what the backend must see to switch protocols.
        write::header(&mut out, "upgrade", protocol);
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(held) = held {
        out.extend_from_slice(held);
        tally.bytes_in = held.len() as u64;
    }

    // A request without a body (or whose body is held) can go again on a
    // new connection when a reused one turns out closed; one whose body
    // streams cannot be replayed.
    let replayable = held.is_some() || matches!(framing, Framing::Empty | Framing::Length(0));
    let mut fresh_only = false;
    let mut conn = loop {
        let idle = if fresh_only {
            None
        } else {
            pool.checkout(&target)
        };
        tally.attempts += 1;
        let mut conn = match idle {
            Some(conn) => conn,
            None => clock
                .bounded(Timeout::Connect, pool.connect(&target))
                .await
                .map_err(UpstreamError::TimedOut)??,
        };
        let retry = conn.reused && replayable;
        let written = clock
            .bounded(Timeout::Idle, conn.io.write_all(&out))
            .await
            .map_err(UpstreamError::TimedOut)?;
        if let Err(e) = written {
            if retry {
                fresh_only = true;
                continue;
            }
            return Err(UpstreamError::Exchange(root_cause(&e)));
        }
        if !replayable {
            send_body(&mut conn, body, framing == Framing::Chunked, tally, clock).await?;
        }
        let head = clock
            .bounded(Timeout::Head, read_response_head(&mut conn, upgrade))
            .await
            .map_err(UpstreamError::TimedOut)?;
        match head {
            Ok(()) => break conn,
            Err(HeadFailure::Closed) if retry && conn.buf.is_empty() => fresh_only = true,
            Err(HeadFailure::Closed) => {
                return Err(UpstreamError::Exchange(
                    "the connection was closed before a response".into(),
                ))
            }
            Err(HeadFailure::Io(e)) => return Err(UpstreamError::Exchange(root_cause(&e))),
            Err(HeadFailure::Invalid(why)) => return Err(UpstreamError::Exchange(why)),
        }
    };
    let (response, framing) = response_head(&mut conn, parts.method == http::Method::HEAD)?;
    Ok(response.map(|()| Relayed::new(conn, &framing, pool, target, clock)))
}

/// What sending a request took: connections tried, body bytes sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Connections tried.
    pub attempts: u32,
    /// Request body bytes sent.
    pub bytes_in: u64,
    /// (In) the largest body to send: past it, the exchange stops.
    pub max_body: Option<u64>,
}

/// Streams a request body to the backend, in chunks when `chunked`.
async fn send_body(
    conn: &mut Conn,
    body: &mut Incoming,
    chunked: bool,
    tally: &mut Sent,
    clock: Clock,
) -> Result<(), UpstreamError> {
    fn broken(e: &(dyn std::error::Error + 'static)) -> UpstreamError {
        UpstreamError::Exchange(root_cause(e))
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| broken(&e))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers are not passed on
        };
        if data.is_empty() {
            continue;
        }
        tally.bytes_in += data.len() as u64;
        if let Some(limit) = tally.max_body.filter(|&l| tally.bytes_in > l) {
            return Err(UpstreamError::TooLarge(limit));
        }
        if chunked {
            let mut size = format!("{:x}\r\n", data.len()).into_bytes();
            size.extend_from_slice(&data);
            size.extend_from_slice(b"\r\n");
            clock
                .bounded(Timeout::Idle, conn.io.write_all(&size))
                .await
                .map_err(UpstreamError::TimedOut)?
                .map_err(|e| broken(&e))?;
        } else {
            // A backend that stops reading the upload loses the exchange.
            clock
                .bounded(Timeout::Idle, conn.io.write_all(&data))
                .await
                .map_err(UpstreamError::TimedOut)?
                .map_err(|e| broken(&e))?;
        }
    }
    if chunked {
        conn.io
            .write_all(b"0\r\n\r\n")
            .await
            .map_err(|e| broken(&e))?;
    }
    Ok(())
}

/// The response head in `conn.buf` as an `http::Response`, and its framing.
fn response_head(
    conn: &mut Conn,
    head_request: bool,
) -> Result<(Response<()>, ResponseFraming), UpstreamError> {
    let mut headers: HeaderSlots = header_slots!();
    let mut parsed = httparse::Response::new(&mut []);
    let invalid = || UpstreamError::Exchange("malformed response head".into());
    let head_len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut parsed,
        conn.buf.filled(),
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(invalid()),
    };
    let framing = ResponseFraming::of(&parsed, head_request)
        .map_err(|e| UpstreamError::Exchange(e.to_string()))?;
    let mut response = Response::new(());
    *response.status_mut() =
        StatusCode::from_u16(parsed.code.unwrap_or(502)).map_err(|_| invalid())?;
    for h in parsed.headers.iter() {
        // HTTP/2 carries no transfer coding; the length, once checked, is
        // set below in canonical form.
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            || h.name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Err(invalid());
        };
        response.headers_mut().append(name, value);
    }
    if let Some(n) = framing.content_length {
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    conn.buf.consume(head_len);
    Ok((response, framing))
}

/// A response body streamed from a backend connection.
///
/// An HTTP/2 client that stops reading leaves its stream without window:
/// hyper then stops polling the body, and nothing inside it runs. So a
/// watchdog task drops the backend connection (and the stream fails) once
/// the body has not been asked for its next bytes for [`CLIENT_IDLE`] (or
/// the route's timeout, when longer): a client that does not read does not
/// hold a backend connection.
pub struct Relayed {
    slot: Arc<Mutex<Slot>>,
    body: Body,
    reusable: bool,
    pool: Pool,
    target: TargetUrl,
    /// Longest wait for the backend's next bytes (`idleMs`).
    idle: Duration,
    /// When the whole exchange must be over (`totalMs`), if bounded.
    ends: Option<tokio::time::Instant>,
    /// Armed while waiting for the backend.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What the body and its watchdog share.
struct Slot {
    /// `None` once the body has ended (or was cut).
    conn: Option<Conn>,
    /// When the body was last asked for bytes.
    last_poll: Instant,
    /// The watchdog cut it.
    cut: bool,
}

impl Relayed {
    fn new(
        conn: Conn,
        framing: &ResponseFraming,
        pool: &Pool,
        target: TargetUrl,
        clock: Clock,
    ) -> Self {
        let idle = Duration::from_millis(clock.timeouts.idle_ms);
        let body = Body::new(framing.framing);
        let slot = Arc::new(Mutex::new(Slot {
            conn: Some(conn),
            last_poll: Instant::now(),
            cut: false,
        }));
        if !body.done() {
            tokio::spawn(watch(Arc::downgrade(&slot), CLIENT_IDLE.max(idle)));
        }
        Self {
            slot,
            body,
            reusable: framing.reusable,
            pool: pool.clone(),
            target,
            idle,
            ends: clock.timeouts.total_ms.map(|ms| {
                tokio::time::Instant::from_std(clock.arrived) + Duration::from_millis(ms)
            }),
            stalled: None,
        }
    }
}

/// Cuts the body when it goes unread longer than `limit`; ends with it.
async fn watch(slot: Weak<Mutex<Slot>>, limit: Duration) {
    loop {
        let wait = {
            let Some(slot) = slot.upgrade() else { return };
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.conn.is_none() {
                return;
            }
            let unread = slot.last_poll.elapsed();
            if unread >= limit {
                slot.conn = None;
                slot.cut = true;
                return;
            }
            limit - unread
        };
        tokio::time::sleep(wait).await;
    }
}

impl Relayed {
    /// After `101 Switching Protocols`: once the client's side has
    /// switched too (`client`, hyper's upgrade), bytes go both ways as they
    /// come until either side closes, starting with what the backend sent
    /// past its head. `false` when the backend connection is gone.
    pub fn tunnel(self, client: hyper::upgrade::OnUpgrade) -> bool {
        let conn = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            slot.conn.take()
        };
        let Some(mut conn) = conn else {
            return false;
        };
        tokio::spawn(async move {
            let Ok(upgraded) = client.await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            if !conn.buf.is_empty() {
                if client.write_all(conn.buf.filled()).await.is_err() {
                    return;
                }
                let n = conn.buf.len();
                conn.buf.consume(n);
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut conn.io).await;
        });
        true
    }
}

impl HttpBody for Relayed {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let mut guard = this.slot.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut *guard;
        slot.last_poll = Instant::now();
        if slot.cut {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the answer in time",
            ))));
        }
        loop {
            let Some(conn) = slot.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if this.body.done() {
                if let Some(conn) = slot.conn.take() {
                    if this.reusable {
                        this.pool.checkin(&this.target, conn);
                    }
                }
                return Poll::Ready(None);
            }
            if !conn.buf.is_empty() {
                let input = conn.buf.filled();
                let mut data = BytesMut::new();
                let used = this
                    .body
                    .scan(input, |r| data.extend_from_slice(&input[r]))
                    .map_err(io::Error::other)?;
                conn.buf.consume(used);
                if !data.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(data.freeze()))));
                }
                continue;
            }
            match conn.buf.poll_read_from(cx, &mut conn.io, BODY_CHUNK) {
                Poll::Pending => {
                    // A backend that stops sending mid-way loses the stream.
                    let (idle, ends) = (this.idle, this.ends);
                    let timer = this.stalled.get_or_insert_with(|| {
                        let at = tokio::time::Instant::now() + idle;
                        Box::pin(tokio::time::sleep_until(ends.map_or(at, |e| e.min(at))))
                    });
                    if std::future::Future::poll(timer.as_mut(), cx).is_ready() {
                        slot.conn = None;
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the backend's answer stalled past timeouts.idleMs (or totalMs)",
                        ))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    slot.conn = None;
                    if this.body.end_of_stream() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
                }
                Poll::Ready(Ok(_)) => this.stalled = None,
                Poll::Ready(Err(e)) => {
                    slot.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.conn.is_none() && !slot.cut
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
