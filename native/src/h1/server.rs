//! The proxy listener's accept loop and client connections.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use komainu_core::gateway::{Exchange, RequestContext, Timings};
use komainu_core::GatewayError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, Sleep};

use super::buf::ReadBuf;
use super::exchange::{exchange, respond, Client, Next};
use super::pool::Pool;
use super::{h2c, head_end, HeadKind, HEAD_LIMIT};
use crate::http_server::accept;
use crate::random;
use crate::state::{now_ms, State};

/// Read buffer of a client connection (grows for larger heads, up to
/// [`HEAD_LIMIT`], and shrinks back).
const CLIENT_BUFFER: usize = 8 * 1024;
/// Scratch buffer kept by an idle connection, at most.
const OUT_KEPT: usize = 16 * 1024;
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// How long a client may take to send a whole head once it has started.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// After answering a request whose body was not read, how long (and how
/// much) the rest is read and dropped before closing, so that the client
/// gets the answer rather than a reset.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1024 * 1024;

/// What a worker's connections share.
struct Shared {
    state: Arc<State>,
    pool: Pool,
    stopping: AtomicBool,
    stop: Notify,
    open: AtomicUsize,
    closed: Notify,
}

/// Serves proxy connections from `listener` until `shutdown` turns true,
/// then stops accepting, closes idle connections, and lets exchanges in
/// progress finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let shared = Arc::new(Shared {
        pool: Pool::new(state.backend_tls.clone()),
        state,
        stopping: AtomicBool::new(false),
        stop: Notify::new(),
        open: AtomicUsize::new(0),
        closed: Notify::new(),
    });
    loop {
        tokio::select! {
            (stream, peer) = accept(&listener) => {
                shared.open.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(stream, peer, &shared).await;
                    if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                        shared.closed.notify_waiters();
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    shared.stopping.store(true, Ordering::Release);
    shared.stop.notify_waiters();
    let drained = async {
        loop {
            let closed = shared.closed.notified();
            if shared.open.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "in-flight requests still open after the grace period; closing"
        );
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let mut client = Client {
        io: stream,
        buf: ReadBuf::new(CLIENT_BUFFER),
        out: Vec::with_capacity(1024),
        peer,
        backend_timer: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
    };
    let stop = shared.stop.notified();
    tokio::pin!(stop);
    stop.as_mut().enable();
    let timer = tokio::time::sleep(IDLE_TIMEOUT);
    tokio::pin!(timer);
    let mut first = true;
    loop {
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        match wait_for_head(&mut client, timer.as_mut(), stop.as_mut(), first).await {
            Wait::Head => {}
            Wait::Closed => break,
            Wait::TooLarge => {
                let arrived = std::time::Instant::now();
                let ctx = RequestContext::new(random::request_id(), now_ms());
                let error = GatewayError::HeadersTooLarge { limit: HEAD_LIMIT };
                let gateway = shared.state.gateway.load_full();
                respond(
                    &mut client.io,
                    &mut client.out,
                    &gateway,
                    &ctx,
                    &error,
                    (false, false),
                )
                .await;
                // A call all the same: its event and its count.
                let us = u64::try_from(arrived.elapsed().as_micros()).unwrap_or(u64::MAX);
                let exchange = Exchange {
                    method: None,
                    host: String::new(),
                    path: String::new(),
                    status: error.status().as_u16(),
                    error: Some(&error),
                    client_ip: Some(peer.ip()),
                    bytes_in: 0,
                    bytes_out: 0,
                    attempts: 0,
                    timings: Timings {
                        total_us: us,
                        head_us: us,
                        backend_us: None,
                    },
                };
                gateway.log(&ctx, exchange, &shared.state.events);
                let _ = client.io.shutdown().await;
                linger(&mut client.io).await;
                return;
            }
            Wait::Http2 => {
                let read = client.buf.filled().to_vec();
                let (tx, rx) = watch::channel(false);
                let serve = h2c::serve(
                    client.io,
                    read,
                    peer,
                    shared.state.clone(),
                    shared.pool.clone(),
                    rx,
                );
                tokio::pin!(serve);
                tokio::select! {
                    () = serve.as_mut() => {}
                    () = stop.as_mut() => {
                        let _ = tx.send(true);
                        serve.await;
                    }
                }
                return;
            }
        }
        first = false;
        let next = exchange(&mut client, &shared.state, &shared.pool).await;
        // Memory back after a large head or body: idle connections stay small.
        client.buf.shrink_to(CLIENT_BUFFER);
        if client.out.capacity() > OUT_KEPT {
            client.out = Vec::with_capacity(1024);
        }
        if next == Next::Close {
            let _ = client.io.shutdown().await;
            linger(&mut client.io).await;
            return;
        }
    }
    let _ = client.io.shutdown().await;
}

enum Wait {
    /// A complete head is in the buffer.
    Head,
    /// The client closed, went quiet too long, or the worker is stopping.
    Closed,
    /// The head is larger than [`HEAD_LIMIT`].
    TooLarge,
    /// The connection opened with the HTTP/2 preface.
    Http2,
}

/// Reads until a whole head is in `client.buf`. A head must arrive whole
/// within [`HEAD_TIMEOUT`] of its first byte, however it trickles in (one
/// byte now and then does not keep a connection: slowloris).
async fn wait_for_head(
    client: &mut Client,
    mut timer: Pin<&mut Sleep>,
    mut stop: Pin<&mut tokio::sync::futures::Notified<'_>>,
    first: bool,
) -> Wait {
    let mut head_deadline: Option<Instant> = None;
    loop {
        let filled = client.buf.filled();
        if first && filled.first() == Some(&b'P') {
            if filled.starts_with(h2c::PREFACE) {
                return Wait::Http2;
            }
            let n = filled.len().min(h2c::PREFACE.len());
            if filled.len() < h2c::PREFACE.len() && filled[..n] == h2c::PREFACE[..n] {
                // Maybe the preface: read on.
            } else if head_end(filled, HeadKind::Request).is_some() {
                return Wait::Head;
            }
        } else if head_end(filled, HeadKind::Request).is_some() {
            return Wait::Head;
        }
        if client.buf.is_full(HEAD_LIMIT) {
            return Wait::TooLarge;
        }
        let idle = client.buf.is_empty();
        if !idle && head_deadline.is_none() {
            head_deadline = Some(Instant::now() + HEAD_TIMEOUT);
        }
        let read = client.buf.read_from(&mut client.io, HEAD_LIMIT);
        tokio::pin!(read);
        let mut armed = false;
        let got = poll_fn(|cx| {
            if let Poll::Ready(r) = read.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if !armed {
                let at = head_deadline.unwrap_or_else(|| Instant::now() + IDLE_TIMEOUT);
                timer.as_mut().reset(at);
                armed = true;
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            if idle && stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match got {
            Some(Ok(n)) if n > 0 => {}
            _ => return Wait::Closed,
        }
    }
}

/// Reads and drops what the client still sends (for a while), after our
/// side of the connection was shut down.
async fn linger(io: &mut TcpStream) {
    let drain = async {
        let mut sink = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
