//! Writing HTTP/1 heads into a byte buffer.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Response;

/// Appends `name: value\r\n`.
pub fn header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Appends the header lines of `head` (the bytes `headers` were parsed
/// from, up to and including the empty line) that `keep` accepts, as they
/// were received: each run of consecutive kept lines is one copy. A line
/// that is not plainly `name: value CR LF` is written anew instead.
pub fn kept_lines(
    out: &mut Vec<u8>,
    head: &[u8],
    headers: &[httparse::Header<'_>],
    mut keep: impl FnMut(&httparse::Header<'_>) -> bool,
) {
    let base = head.as_ptr() as usize;
    let offset = |h: &httparse::Header<'_>| {
        (h.name.as_ptr() as usize)
            .checked_sub(base)
            .filter(|&o| o <= head.len())
    };
    let headers_end = head.len().saturating_sub(2);
    let mut run: Option<(usize, usize)> = None;
    for (i, h) in headers.iter().enumerate() {
        let kept = keep(h);
        let start = offset(h);
        let end = match headers.get(i + 1) {
            Some(next) => offset(next),
            None => Some(headers_end),
        };
        let line = match (start, end) {
            (Some(s), Some(e)) if s < e && head[s..e].ends_with(b"\r\n") => Some((s, e)),
            _ => None,
        };
        match (kept, line, run) {
            (true, Some((s, e)), Some((run_start, run_end))) if run_end == s => {
                run = Some((run_start, e));
            }
            (true, Some(line), _) => {
                if let Some((a, b)) = run.replace(line) {
                    out.extend_from_slice(&head[a..b]);
                }
            }
            (true, None, _) => {
                if let Some((a, b)) = run.take() {
                    out.extend_from_slice(&head[a..b]);
                }
                header(out, h.name, h.value);
            }
            (false, ..) => {
                if let Some((a, b)) = run.take() {
                    out.extend_from_slice(&head[a..b]);
                }
            }
        }
    }
    if let Some((a, b)) = run {
        out.extend_from_slice(&head[a..b]);
    }
}

/// Appends a number in decimal.
pub fn number(out: &mut Vec<u8>, n: u64) {
    komainu_core::text::push_u64(out, n);
}

/// Appends `Date: <now>\r\n` (the text is made once a second per thread).
pub fn date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        header(out, "date", cached.1.as_bytes());
    });
}

/// Appends a whole response the gateway wrote itself (an error), with
/// `Content-Length`, `Date`, and `Connection: close` unless `keep_alive`.
/// (An answer to `HEAD` has its head only: `with_body` false.)
pub fn gateway_response(
    out: &mut Vec<u8>,
    response: &Response<String>,
    keep_alive: bool,
    with_body: bool,
) {
    let status = response.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in response.headers() {
        header(out, name.as_str(), value.as_bytes());
    }
    out.extend_from_slice(b"content-length: ");
    number(out, response.body().len() as u64);
    out.extend_from_slice(b"\r\n");
    date(out);
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if with_body {
        out.extend_from_slice(response.body().as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_lines_are_copied_as_received() {
        let head =
            b"GET / HTTP/1.1\r\nHost: a\r\nX-One:  1\r\nDrop: me\r\nX-Two: 2\r\nX-Three: 3\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut slots);
        req.parse(head).unwrap();
        let mut out = Vec::new();
        kept_lines(&mut out, head, req.headers, |h| h.name != "Drop");
        assert_eq!(out, b"Host: a\r\nX-One:  1\r\nX-Two: 2\r\nX-Three: 3\r\n");
        let lf = b"GET / HTTP/1.1\nHost: a\nX-One: 1\n\n";
        let mut slots = [httparse::EMPTY_HEADER; 8];
        let mut req = httparse::Request::new(&mut slots);
        req.parse(lf).unwrap();
        let mut out = Vec::new();
        kept_lines(&mut out, lf, req.headers, |_| true);
        assert_eq!(out, b"Host: a\r\nX-One: 1\r\n");
    }

    #[test]
    fn numbers_and_responses() {
        let mut out = Vec::new();
        number(&mut out, 0);
        out.push(b' ');
        number(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615");
        let mut response = Response::new("{}".to_string());
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        let mut out = Vec::new();
        gateway_response(&mut out, &response, false, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\ndate: "));
        assert!(text.ends_with("connection: close\r\n\r\n{}"), "{text}");
    }
}
