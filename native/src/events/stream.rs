//! `GET /api/events/stream`: live events as Server-Sent Events.
//!
//! Each event is `id: <event id>`, `event: <type>`, `data: <CloudEvents
//! JSON>`. A reader that sends `Last-Event-ID` first gets the kept events
//! after that one. A comment every 15 s keeps proxies from closing an idle
//! stream. A reader that falls behind (its socket not drained while events
//! keep coming) is told so in a comment and disconnected: it resumes with
//! `Last-Event-ID`, and the proxy never waits for it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame};
use komainu_core::events::EventQuery;
use tokio::sync::{broadcast, mpsc, watch};

use super::{Hub, Stored};

/// How often an idle stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a reader may leave a frame unread before it is dropped.
const SLOW_READER: Duration = Duration::from_secs(10);

/// A response body fed by the stream's task.
pub struct EventStream {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// Starts a stream of the events `query` asks for, after `last_id`;
/// it ends when the reader goes away, falls behind, or `closing` turns true.
pub fn open(
    hub: &Arc<Hub>,
    query: EventQuery,
    last_id: Option<&str>,
    closing: watch::Receiver<bool>,
) -> EventStream {
    let (tx, rx) = mpsc::channel(64);
    let (backlog, live) = hub.resume(last_id);
    tokio::spawn(pump(query, backlog, live, tx, closing));
    EventStream { rx }
}

async fn pump(
    query: EventQuery,
    backlog: Vec<Stored>,
    mut live: broadcast::Receiver<Stored>,
    tx: mpsc::Sender<Bytes>,
    mut closing: watch::Receiver<bool>,
) {
    if !send(
        &tx,
        Bytes::from_static(b"retry: 2000\n: komainu event stream\n\n"),
    )
    .await
    {
        return;
    }
    let mut last_seq = 0;
    for stored in backlog {
        last_seq = stored.seq;
        if stored.accepted_by(&query) && !send(&tx, frame(&stored)).await {
            return;
        }
    }
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            received = live.recv() => match received {
                Ok(stored) => {
                    if stored.seq <= last_seq {
                        continue;
                    }
                    last_seq = stored.seq;
                    if stored.accepted_by(&query) && !send(&tx, frame(&stored)).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let note = format!(
                        ": disconnected: this reader fell {missed} events behind; reconnect with Last-Event-ID to resume\n\n"
                    );
                    let _ = tx.try_send(Bytes::from(note));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = keep_alive.tick() => {
                if !send(&tx, Bytes::from_static(b": keep-alive\n\n")).await {
                    return;
                }
            }
            _ = closing.changed() => return,
            () = tx.closed() => return,
        }
    }
}

/// Sends a chunk unless the reader is gone or too slow.
async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes) -> bool {
    matches!(
        tokio::time::timeout(SLOW_READER, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

fn frame(stored: &Stored) -> Bytes {
    let mut out = String::with_capacity(stored.json().len() + stored.kind().len() + 64);
    out.push_str("id: ");
    out.push_str(stored.id());
    out.push_str("\nevent: ");
    out.push_str(stored.kind());
    out.push_str("\ndata: ");
    out.push_str(stored.json());
    out.push_str("\n\n");
    Bytes::from(out)
}
