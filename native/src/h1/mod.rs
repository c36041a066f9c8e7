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
mod exchange;
mod h2c;
mod pool;
mod request;
mod response;
mod server;
mod write;

pub use bridge::{send as bridge_send, Relayed};
pub use pool::Pool;
pub use server::serve;

/// Largest head accepted, request or response (a larger request head is
/// answered 431).
pub const HEAD_LIMIT: usize = crate::http_server::MAX_HEAD_BYTES;

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

/// Where the head at the start of `buf` ends (after its empty line), if
/// it is complete.
pub(crate) fn find_head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| memchr::memmem::find(buf, b"\n\n").map(|i| i + 2))
}

#[cfg(test)]
mod tests {
    use super::find_head_end;

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
            Some(27)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }
}
