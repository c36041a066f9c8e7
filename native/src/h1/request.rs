//! A client's HTTP/1 request head, parsed in place (no header is copied)
//! and read by the core through [`RequestHead`].

use std::borrow::Cow;

use std::mem::MaybeUninit;

use http::Method;
use komainu_core::gateway::{HeaderLookup, RequestHead};

/// Most headers accepted in a head (more: 431).
pub const MAX_HEADERS: usize = 100;

/// Room for the headers of one head, left uninitialized until parsed.
pub type HeaderSlots<'b> = [MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh, uninitialized header slots, made in place (a function returning
/// the array would copy its kilobytes into the caller's future).
macro_rules! header_slots {
    () => {
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() };
            $crate::h1::request::MAX_HEADERS]
    };
}
pub(crate) use header_slots;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// Why a request head cannot be served: each 400 (and a close) but
/// [`HeadError::TooManyHeaders`] (431). Malformed or ambiguous heads are
/// refused, never guessed at: a proxy that reads a head otherwise than
/// the server behind it is a request-smuggling setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head ended before its empty line.
    #[error("incomplete request head")]
    Incomplete,
    /// httparse refused it.
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    /// A method that is not a token.
    #[error("invalid method")]
    InvalidMethod,
    /// A target neither origin form nor an absolute `http(s)` URL.
    #[error("unsupported request target {0:?}")]
    UnsupportedTarget(String),
    /// An absolute target without a usable authority.
    #[error("invalid request target {0:?}")]
    InvalidTarget(String),
    /// An ambiguous path.
    #[error("{0}")]
    Path(#[from] komainu_core::path::PathError),
    /// Two `Host` headers.
    #[error("more than one Host header")]
    DuplicateHost,
    /// A `Host` that is not text.
    #[error("the Host header is not text")]
    HostNotText,
    /// HTTP/1.1 without `Host`.
    #[error("HTTP/1.1 requests need a Host header")]
    MissingHost,
    /// A `Content-Length` that is not a plain number.
    #[error("invalid Content-Length")]
    InvalidLength,
    /// `Content-Length` lines that disagree.
    #[error("conflicting Content-Length headers")]
    ConflictingLengths,
    /// A transfer coding other than a single `chunked`.
    #[error("unsupported Transfer-Encoding: only chunked is accepted")]
    UnsupportedCoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112, 6.1).
    #[error("Transfer-Encoding is not allowed in an HTTP/1.0 request")]
    CodingInHttp10,
    /// Both framings at once.
    #[error("both Transfer-Encoding and Content-Length were sent")]
    LengthAndCoding,
    /// An `Expect` other than `100-continue`.
    #[error("unsupported Expect: only 100-continue is accepted")]
    UnsupportedExpect,
    /// More headers than [`MAX_HEADERS`]: 431.
    #[error("too many headers")]
    TooManyHeaders,
}

/// A parsed request head, borrowing the bytes it was parsed from.
pub struct Request<'b> {
    method: Method,
    /// The path and query (origin form), normalized
    /// ([`komainu_core::path`]): borrowed from the head unless
    /// normalizing changed it.
    path_and_query: Cow<'b, str>,
    /// Where the path ends in `path_and_query` (the query follows).
    path_len: usize,
    host: &'b str,
    /// HTTP/1.1 (`true`) or HTTP/1.0.
    pub http11: bool,
    headers: &'b [httparse::Header<'b>],
    /// The head as received (request line to empty line).
    raw: &'b [u8],
    header_bytes: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// The client asked to close the connection after this exchange
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// The client waits for `100 Continue` before sending its body.
    pub expects_continue: bool,
    /// The protocol the client asks to switch to (`Upgrade` named by
    /// `Connection`, HTTP/1.1); whether the route allows it is the
    /// gateway's call ([`komainu_core::gateway::Forwarding::allows_upgrade`]).
    pub upgrade: Option<&'b [u8]>,
}

impl<'b> Request<'b> {
    /// Parses a complete head (`buf` holds it, up to and including the
    /// empty line): the head and its length.
    pub fn parse(
        buf: &'b [u8],
        headers: &'b mut HeaderSlots<'b>,
    ) -> Result<(Self, usize), HeadError> {
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Err(HeadError::Incomplete),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(e) => return Err(HeadError::Malformed(e)),
        };
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Err(HeadError::Incomplete);
        };
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::InvalidMethod)?;
        let headers: &'b [httparse::Header<'b>] = req.headers;
        let (path_start, authority) = split_target(target)?;
        let origin = &target[path_start..];
        let path_and_query = match origin.as_bytes().first() {
            None => Cow::Borrowed("/"),
            // `http://host?q`: the path is empty, sent on as `/`.
            Some(b'?') => Cow::Owned(format!("/{origin}")),
            Some(_) => komainu_core::path::normalize(origin)?,
        };
        let path_len = path_and_query.find('?').unwrap_or(path_and_query.len());
        let mut this = Self {
            method,
            path_and_query,
            path_len,
            host: authority.unwrap_or(""),
            http11: version == 1,
            headers,
            raw: &buf[..len],
            header_bytes: 0,
            framing: Framing::Empty,
            close: version == 0,
            expects_continue: false,
            upgrade: None,
        };
        this.read_headers(authority.is_some())?;
        Ok((this, len))
    }

    /// One pass over the headers: size, host, framing, connection options.
    fn read_headers(&mut self, has_authority: bool) -> Result<(), HeadError> {
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut host_seen = false;
        let mut upgrade_named = false;
        let mut upgrade_header: Option<&'b [u8]> = None;
        for h in self.headers {
            self.header_bytes += h.name.len() + h.value.len();
            let name = h.name;
            if name.eq_ignore_ascii_case("host") {
                if host_seen {
                    return Err(HeadError::DuplicateHost);
                }
                host_seen = true;
                if !has_authority {
                    self.host = std::str::from_utf8(h.value).map_err(|_| HeadError::HostNotText)?;
                }
            } else if name.eq_ignore_ascii_case("content-length") {
                let n = parse_length(h.value).ok_or(HeadError::InvalidLength)?;
                if length.is_some_and(|prior| prior != n) {
                    return Err(HeadError::ConflictingLengths);
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                if chunked || !is_chunked(h.value) {
                    return Err(HeadError::UnsupportedCoding);
                }
                chunked = true;
            } else if name.eq_ignore_ascii_case("connection") {
                for option in komainu_core::gateway::connection_names(h.value) {
                    if option.eq_ignore_ascii_case(b"close") {
                        self.close = true;
                    } else if option.eq_ignore_ascii_case(b"upgrade") {
                        upgrade_named = true;
                    } else if option.eq_ignore_ascii_case(b"keep-alive") && !self.http11 {
                        self.close = false;
                    }
                }
            } else if name.eq_ignore_ascii_case("upgrade") {
                let protocol = h.value.trim_ascii();
                upgrade_header = (!protocol.is_empty()).then_some(protocol);
            } else if name.eq_ignore_ascii_case("expect") {
                if !h.value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HeadError::UnsupportedExpect);
                }
                self.expects_continue = self.http11;
            }
        }
        if chunked && !self.http11 {
            // RFC 9112, 6.1: a 1.0 message with Transfer-Encoding is to be
            // treated as faulty (its framing is in doubt): refuse and close.
            return Err(HeadError::CodingInHttp10);
        }
        if self.http11 && !host_seen {
            return Err(HeadError::MissingHost);
        }
        self.framing = match (chunked, length) {
            (true, Some(_)) => return Err(HeadError::LengthAndCoding),
            (true, None) => Framing::Chunked,
            (false, Some(0) | None) => Framing::Empty,
            (false, Some(n)) => Framing::Length(n),
        };
        if self.framing == Framing::Empty {
            self.expects_continue = false;
        }
        self.upgrade = upgrade_header.filter(|_| self.http11 && upgrade_named);
        Ok(())
    }

    /// The path and query to send on (origin form, normalized).
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The headers as received.
    pub fn headers(&self) -> &'b [httparse::Header<'b>] {
        self.headers
    }

    /// The head's bytes as received (request line to empty line).
    pub fn raw(&self) -> &'b [u8] {
        self.raw
    }
}

/// Where the path starts in a request target, and the authority of an
/// absolute-form target.
fn split_target(target: &str) -> Result<(usize, Option<&str>), HeadError> {
    // `OPTIONS *` (the server as a whole) is left to routing: no route has
    // that path.
    if target.starts_with('/') || target == "*" {
        return Ok((0, None));
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .ok_or_else(|| HeadError::UnsupportedTarget(target.to_owned()))?;
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    if authority.is_empty() || authority.contains('@') {
        return Err(HeadError::InvalidTarget(target.to_owned()));
    }
    Ok((target.len() - rest.len() + authority_len, Some(authority)))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether a `Transfer-Encoding` value is exactly `chunked` (the only
/// coding a proxy can pass on without decoding).
pub fn is_chunked(value: &[u8]) -> bool {
    value.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Parses a `Content-Length` value.
pub fn content_length(value: &[u8]) -> Option<u64> {
    parse_length(value)
}

impl HeaderLookup for Request<'_> {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

impl RequestHead for Request<'_> {
    fn method(&self) -> &Method {
        &self.method
    }

    fn path(&self) -> &str {
        &self.path_and_query[..self.path_len]
    }

    fn path_and_query(&self) -> &str {
        Request::path_and_query(self)
    }

    fn host(&self) -> &str {
        self.host
    }

    fn header_bytes(&self) -> usize {
        self.header_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Framing, bool, String, String, String), HeadError> {
        let mut headers: HeaderSlots = header_slots!();
        let (req, len) = Request::parse(text.as_bytes(), &mut headers)?;
        assert_eq!(len, text.len());
        Ok((
            req.framing,
            req.close,
            req.host().to_owned(),
            RequestHead::path(&req).to_owned(),
            req.path_and_query().to_owned(),
        ))
    }

    #[test]
    fn reads_target_host_framing_and_connection() {
        let (framing, close, host, path, pq) =
            parse("GET /a/b?x=1 HTTP/1.1\r\nHost: api.example\r\n\r\n").unwrap();
        assert_eq!((framing, close), (Framing::Empty, false));
        assert_eq!(
            (host.as_str(), path.as_str(), pq.as_str()),
            ("api.example", "/a/b", "/a/b?x=1")
        );
        let (framing, close, host, path, pq) = parse(
            "POST http://other:8080?q HTTP/1.1\r\nHost: ignored\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!((framing, close), (Framing::Length(5), true));
        assert_eq!(
            (host.as_str(), path.as_str(), pq.as_str()),
            ("other:8080", "/", "/?q")
        );
        let (framing, close, ..) =
            parse("PUT /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n")
                .unwrap();
        assert_eq!((framing, close), (Framing::Length(2), false));
        assert!(
            parse("GET / HTTP/1.0\r\n\r\n").unwrap().1,
            "1.0 closes by default"
        );
    }

    #[test]
    fn refuses_ambiguous_or_malformed_heads() {
        for bad in [
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET /a\\..\\b HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            "GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: magic\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(e) if e != HeadError::TooManyHeaders),
                "{bad:?}"
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parse(&text).err(), Some(HeadError::TooManyHeaders));
    }
}
