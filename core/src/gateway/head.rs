//! The request head as the pipeline reads it.
//!
//! The core never owns a request: adapters hand it a view of theirs. The
//! Worker and the native HTTP/2 path use `http::request::Parts`; the
//! native HTTP/1 fast path uses the parsed bytes of the head as they came
//! off the socket, so that no header is copied before the gateway decides.

use http::request::Parts;
use http::{HeaderMap, Method};

/// Reading a message's headers by name.
pub trait HeaderLookup {
    /// The first value of the header `name` (given in lower case; matched
    /// case-insensitively), if any.
    fn first(&self, name: &str) -> Option<&[u8]>;
}

/// A request head, as the request phases read it.
pub trait RequestHead: HeaderLookup {
    /// The request method.
    fn method(&self) -> &Method;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The path and the query (`/p?q`), as sent on to the backend.
    fn path_and_query(&self) -> &str;
    /// The host the request was sent to: the authority of an absolute
    /// target (HTTP/2, absolute form), else the `Host` header, else `""`.
    fn host(&self) -> &str;
    /// The size of the headers: names and values, summed.
    fn header_bytes(&self) -> usize;
}

impl HeaderLookup for HeaderMap {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }
}

impl HeaderLookup for Parts {
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.headers.first(name)
    }
}

impl RequestHead for Parts {
    fn method(&self) -> &Method {
        &self.method
    }

    fn path(&self) -> &str {
        self.uri.path()
    }

    fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    fn host(&self) -> &str {
        self.uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                self.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or("")
    }

    fn header_bytes(&self) -> usize {
        self.headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum()
    }
}
