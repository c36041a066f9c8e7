//! The proxy's own HTTP/1.1 path, leaner than a general-purpose HTTP
//! stack: a request is parsed in place (httparse), the core decides on
//! that view, the head for the backend is written straight from the
//! received bytes, and the backend connection is driven by the request's
//! own task (see [`exchange`]). Bodies stream through in both directions
//! in every framing (length, chunked, until close), `Expect: 100-continue`
//! is answered once the gateway has admitted the call, HTTP/1.0 clients
//! are served (chunked responses decoded for them), and a connection
//! opening with the HTTP/2 preface (h2c, prior knowledge) is handed to
//! hyper.

mod body;
mod bridge;
mod buf;
mod chunked;
#[cfg(test)]
mod differential_tests;
mod exchange;
#[cfg(fuzzing)]
pub mod fuzzing;
mod h2c;
mod pool;
mod request;
mod response;
mod server;
mod write;

pub use bridge::{send as bridge_send, Relayed, Sent};
pub use pool::Pool;
pub use server::serve;

use komainu_core::gateway::Timeout;

/// Largest head accepted, request or response (a larger request head is
/// answered 431).
pub const HEAD_LIMIT: usize = crate::http_server::MAX_HEAD_BYTES;

/// How long a client may leave its request body waiting, or its response
/// unread, before the exchange is dropped (a slow client holds a backend
/// connection).
pub(crate) const CLIENT_IDLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `fut`, giving up (`None`) after `limit`. The timer, kept by the
/// connection from request to request, is only armed when `fut` has to
/// wait; pushing a registered deadline later is a single atomic update.
pub(crate) async fn deadline<F: std::future::Future>(
    mut timer: std::pin::Pin<&mut tokio::time::Sleep>,
    limit: std::time::Duration,
    fut: F,
) -> Option<F::Output> {
    use std::future::Future as _;
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    let mut armed = false;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if !armed {
            timer.as_mut().reset(tokio::time::Instant::now() + limit);
            armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The route's timeouts, counted from the request's arrival.
#[derive(Clone, Copy)]
pub struct Clock {
    /// The route's timeouts.
    pub timeouts: komainu_core::gateway::Timeouts,
    /// When the request arrived.
    pub arrived: std::time::Instant,
}

impl Clock {
    /// How long a wait of kind `kind` may take now, and which timeout
    /// that is.
    pub(crate) fn limit(&self, kind: Timeout) -> (std::time::Duration, Timeout) {
        // The clock is read only when the whole exchange is bounded.
        let elapsed = match self.timeouts.total_ms {
            Some(_) => self.arrived.elapsed(),
            None => std::time::Duration::ZERO,
        };
        self.timeouts.limit(kind, elapsed)
    }

    /// Runs `fut` within the limit of its kind: `Err` names the timeout
    /// that ran out (504).
    pub(crate) async fn within<F: std::future::Future>(
        &self,
        kind: Timeout,
        timer: std::pin::Pin<&mut tokio::time::Sleep>,
        fut: F,
    ) -> Result<F::Output, komainu_core::GatewayError> {
        let (limit, which) = self.limit(kind);
        deadline(timer, limit, fut)
            .await
            .ok_or_else(|| self.timeouts.error(which))
    }

    /// Like `within`, without a reusable timer (the HTTP/2 path).
    pub(crate) async fn bounded<F: std::future::Future>(
        &self,
        kind: Timeout,
        fut: F,
    ) -> Result<F::Output, Timeout> {
        let (limit, which) = self.limit(kind);
        tokio::time::timeout(limit, fut).await.map_err(|_| which)
    }
}

/// Which kind of head is awaited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HeadKind {
    /// A client's request head.
    Request,
    /// A backend's response head.
    Response,
}

/// Where the head at the start of `buf` ends, as httparse (the parser that
/// then reads it) sees it: `Some(len)` once complete, `None` while more
/// bytes are needed. A malformed head counts as complete: the parser says
/// what is wrong with it. One detector for every head, so that the end
/// found and the head parsed never disagree (a `\n\n` inside a head, a
/// 1xx head followed by the final one).
pub(crate) fn head_end(buf: &[u8], kind: HeadKind) -> Option<usize> {
    // A complete head holds an empty line: LF then LF, or LF CR LF.
    if memchr::memmem::find(buf, b"\n\n").is_none()
        && memchr::memmem::find(buf, b"\n\r\n").is_none()
    {
        return None;
    }
    let mut slots =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; request::MAX_HEADERS];
    let parsed = match kind {
        HeadKind::Request => {
            httparse::Request::new(&mut []).parse_with_uninit_headers(buf, &mut slots)
        }
        HeadKind::Response => httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut httparse::Response::new(&mut []),
            buf,
            &mut slots,
        ),
    };
    match parsed {
        Ok(httparse::Status::Complete(n)) => Some(n),
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(buf.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::{head_end, HeadKind};

    #[test]
    fn finds_the_end_of_a_head_as_the_parser_does() {
        let req = HeadKind::Request;
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", req),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.0\n\n", req), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", req), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\n\r\n", req), Some(23));
        // A body's blank line is not the head's end.
        let partial = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: 1";
        assert_eq!(head_end(partial, req), None);
        let res = HeadKind::Response;
        // An interim head ending in LF LF, then the final head: two heads.
        let two = b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(head_end(two, res), Some(23));
        assert_eq!(head_end(&two[23..], res), Some(two.len() - 23));
        // Malformed: complete, for the parser to refuse.
        assert_eq!(head_end(b"GET / HTTP/9\r\n\r\n", req), Some(16));
    }
}
