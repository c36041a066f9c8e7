//! A backend's response head: reading it (past interim answers) and
//! knowing how its body is framed and whether the connection can serve
//! again. Shared by the HTTP/1 path and the h2c bridge.

use komainu_core::gateway::connection_names;

use super::pool::Conn;
use super::request::{content_length, is_chunked, Framing};
use super::HEAD_LIMIT;
use super::{head_end, HeadKind};

/// Why no response head could be read.
pub enum HeadFailure {
    /// The backend closed before sending a byte of it.
    Closed,
    /// The connection failed.
    Io(std::io::Error),
    /// What came is not a usable head.
    Invalid(String),
}

/// Reads until `conn.buf` starts with a final response head (1xx
/// interim responses are read and dropped).
pub async fn read_response_head(
    conn: &mut Conn,
    upgrade: Option<&[u8]>,
) -> Result<(), HeadFailure> {
    loop {
        if let Some(end) = head_end(conn.buf.filled(), HeadKind::Response) {
            let status = interim_status(&conn.buf.filled()[..end]);
            match status {
                Some(101) if upgrade.is_some_and(|p| switches_to(&conn.buf.filled()[..end], p)) => {
                    return Ok(())
                }
                Some(101) if upgrade.is_some() => {
                    return Err(HeadFailure::Invalid(
                        "it switched to another protocol than the one the client asked for".into(),
                    ))
                }
                Some(101) => {
                    return Err(HeadFailure::Invalid(
                        "it switched protocols, which the client had not asked for".into(),
                    ))
                }
                Some(_) => {
                    conn.buf.consume(end);
                    continue;
                }
                None => return Ok(()),
            }
        }
        if conn.buf.is_full(HEAD_LIMIT) {
            return Err(HeadFailure::Invalid("response head too large".into()));
        }
        match conn.buf.read_from(&mut conn.io, HEAD_LIMIT).await {
            Ok(0) => return Err(HeadFailure::Closed),
            Ok(_) => {}
            Err(e) => return Err(HeadFailure::Io(e)),
        }
    }
}

/// Whether a `101` head switches to `protocol` (its `Upgrade` header).
fn switches_to(head: &[u8], protocol: &[u8]) -> bool {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut slots);
    matches!(response.parse(head), Ok(httparse::Status::Complete(_)))
        && response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("upgrade")
                && h.value.trim_ascii().eq_ignore_ascii_case(protocol)
        })
}

/// The status of a 1xx head, `None` for a final one.
fn interim_status(head: &[u8]) -> Option<u16> {
    let code = head.get(9..12)?;
    (code[0] == b'1' && head.starts_with(b"HTTP/1."))
        .then(|| std::str::from_utf8(code).ok()?.parse().ok())
        .flatten()
}

/// Why a backend's response framing is unusable (502).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A `Content-Length` that is not a plain number.
    #[error("it sent an invalid Content-Length")]
    InvalidLength,
    /// `Content-Length` lines that disagree.
    #[error("it sent conflicting Content-Length headers")]
    ConflictingLengths,
}

/// How a response's body is framed, read from its head.
pub struct ResponseFraming {
    /// The body's framing.
    pub framing: Framing,
    /// The backend's `Content-Length`, checked and single: what the client
    /// is sent (in canonical form), whatever lines the backend wrote.
    pub content_length: Option<u64>,
    /// The backend keeps the connection open after this response.
    pub reusable: bool,
    /// The backend sent a `Date`.
    pub has_date: bool,
}

impl ResponseFraming {
    /// The framing of `response` (RFC 9112, section 6.3); `bodiless` for
    /// an answer to HEAD or a switch of protocols. Several `Content-Length`
    /// lines that disagree, or one that is not a number, make the response
    /// unusable (RFC 9112, 6.3, point 5): a client could read it otherwise.
    pub fn of(response: &httparse::Response<'_, '_>, bodiless: bool) -> Result<Self, FramingError> {
        let status = response.code.unwrap_or(502);
        let http11 = response.version == Some(1);
        let no_body = bodiless || status == 204 || status == 304;
        let mut framing = if no_body {
            Framing::Empty
        } else {
            Framing::UntilClose
        };
        let mut reusable = http11;
        let mut has_date = false;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = content_length(h.value).ok_or(FramingError::InvalidLength)?;
                if length.is_some_and(|prior| prior != n) {
                    return Err(FramingError::ConflictingLengths);
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding decides (RFC 9112, 6.3, point 4).
                chunked = is_chunked(h.value);
                if !no_body && !chunked {
                    framing = Framing::UntilClose;
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                for option in connection_names(h.value) {
                    if option.eq_ignore_ascii_case(b"close") {
                        reusable = false;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        reusable = true;
                    }
                }
            } else if h.name.eq_ignore_ascii_case("date") {
                has_date = true;
            }
        }
        let has_te = response
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        if !no_body {
            framing = match (chunked, has_te, length) {
                (true, _, _) => Framing::Chunked,
                (false, true, _) => Framing::UntilClose,
                (false, false, Some(0)) => Framing::Empty,
                (false, false, Some(n)) => Framing::Length(n),
                (false, false, None) => Framing::UntilClose,
            };
        }
        if framing == Framing::UntilClose {
            reusable = false;
        }
        // Beside a transfer coding, a length is a lie a client could trip on.
        let content_length = if has_te { None } else { length };
        Ok(Self {
            framing,
            content_length,
            reusable,
            has_date,
        })
    }
}
