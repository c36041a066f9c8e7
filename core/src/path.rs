//! Request paths as routing sees them: normalized once, the same way on
//! every deployment, before a route is looked for.
//!
//! A proxy that matches the raw path while its backend resolves it lets
//! `/public/../admin` walk past a route's protection. So the gateway
//! routes on, and forwards, the normalized path:
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded, and the hex digits of every other escape upper-cased
//!   (RFC 3986, 6.2.2.1 and 6.2.2.2);
//! - dot-segments are then removed (RFC 3986, 5.2.4), so `%2e%2e` is a
//!   dot-segment, as the WHATWG URL parser (the Worker's) treats it;
//! - `%2F` stays encoded: it is never a path separator; a dot-segment
//!   beside one (`..%2F`) is refused, as a backend that decodes it would
//!   walk out of the route's path;
//! - a backslash, or a `%` not followed by two hex digits, is refused:
//!   servers read them in different ways.
//!
//! The query is left as it came.

use std::borrow::Cow;

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A backslash, which servers read in different ways.
    #[error("the request path contains a backslash (\\): send \"/\" or \"%5C\"")]
    Backslash,
    /// A dot-segment hidden behind an encoded slash (`..%2F`, `%2F..`): a
    /// backend that decodes `%2F` would walk out of the route's path.
    #[error("the request path has a dot-segment next to an encoded slash (%2F or %5C), which backends read in different ways")]
    EncodedTraversal,
    /// A `%` not followed by two hex digits: decoding it is guesswork (and
    /// decoding what follows could make a new escape appear).
    #[error("the request path has a malformed percent-encoding: \"%\" must be followed by two hex digits (send \"%25\" for a \"%\")")]
    BadEscape,
}

/// The normalized form of `path_and_query` (`/a/./b?q` → `/a/b?q`),
/// borrowed when it is already normal (the common case, checked in one
/// pass without allocating).
pub fn normalize(path_and_query: &str) -> Result<Cow<'_, str>, PathError> {
    let (path, query) = match path_and_query.find('?') {
        Some(q) => path_and_query.split_at(q),
        None => (path_and_query, ""),
    };
    // `*` (OPTIONS) and the like are left to routing, which finds nothing.
    if !path.starts_with('/') || !needs_work(path.as_bytes())? {
        return Ok(Cow::Borrowed(path_and_query));
    }
    let decoded = decode_unreserved(path)?;
    // Escapes are upper-cased by now: `%2F` and `%5C` are the only forms.
    let hidden_dots = decoded.split('/').any(|segment| {
        segment.contains('%')
            && segment
                .split("%2F")
                .flat_map(|s| s.split("%5C"))
                .any(|piece| piece == "." || piece == "..")
    });
    if hidden_dots {
        return Err(PathError::EncodedTraversal);
    }
    let mut out = remove_dot_segments(&decoded);
    out.push_str(query);
    Ok(Cow::Owned(out))
}

/// Whether the path has an escape or a dot-segment; refuses backslashes.
fn needs_work(path: &[u8]) -> Result<bool, PathError> {
    let mut work = false;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b'%' => work = true,
            b'.' if path[i - 1] == b'/' => {
                // "." or ".." as a whole segment.
                let rest = &path[i + 1..];
                let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
                if end == 0 || (end == 1 && rest[0] == b'.') {
                    work = true;
                }
            }
            _ => {}
        }
    }
    Ok(work)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes escaped unreserved characters; upper-cases other escapes;
/// refuses a `%` not followed by two hex digits.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes.get(i + 1..i + 3).map(|p| (hex(p[0]), hex(p[1])));
            let Some((Some(h), Some(l))) = pair else {
                return Err(PathError::BadEscape);
            };
            let c = h * 16 + l;
            if is_unreserved(c) {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(bytes[i + 1].to_ascii_uppercase() as char);
                out.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        // Paths are ASCII on every path that reaches here (HTTP/1 targets
        // and URIs are); copy any other character whole all the same.
        let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    Ok(out)
}

/// RFC 3986, 5.2.4, on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut parts = path[1..].split('/').peekable();
    let mut trailing_slash = false;
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            "." => trailing_slash = last,
            ".." => {
                segments.pop();
                trailing_slash = last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> String {
        normalize(p).unwrap().into_owned()
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/a/b",
            "/a.b/c.json?x=../y",
            "/a/.well-known",
            "/a/..b",
            "/a//b",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(norm("/public/../demo/hello"), "/demo/hello");
        assert_eq!(norm("/public/./x"), "/public/x");
        assert_eq!(norm("/a/b/.."), "/a/");
        assert_eq!(norm("/a/b/."), "/a/b/");
        assert_eq!(norm("/../../x"), "/x");
        assert_eq!(norm("/.."), "/");
        assert_eq!(norm("/a/../b?q=/../c"), "/b?q=/../c");
    }

    #[test]
    fn encoded_dots_are_dot_segments() {
        assert_eq!(norm("/public/%2e%2e/demo/hello"), "/demo/hello");
        assert_eq!(norm("/public/%2E%2e/demo"), "/demo");
        assert_eq!(norm("/public/.%2e/demo"), "/demo");
        assert_eq!(norm("/public/%2e/demo"), "/public/demo");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept() {
        assert_eq!(norm("/%61%62c"), "/abc");
        assert_eq!(norm("/a%2fb"), "/a%2Fb");
        assert_eq!(normalize("/a%2F..%2Fb"), Err(PathError::EncodedTraversal));
        assert_eq!(
            normalize("/public/%2e%2e%2fdemo"),
            Err(PathError::EncodedTraversal)
        );
        assert_eq!(
            normalize("/public/..%5Cdemo"),
            Err(PathError::EncodedTraversal)
        );
        assert_eq!(norm("/files/a%2Fb.txt"), "/files/a%2Fb.txt");
        assert_eq!(norm("/files/a%2F...b"), "/files/a%2F...b");
        assert_eq!(norm("/a%20b"), "/a%20b");
        assert_eq!(norm("/x%7e"), "/x~");
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        assert_eq!(normalize("/a\\..\\b"), Err(PathError::Backslash));
        assert_eq!(norm("*"), "*");
        assert_eq!(normalize("/a%zzb"), Err(PathError::BadEscape));
        assert_eq!(normalize("/a%4"), Err(PathError::BadEscape));
        // Decoding must not make a new escape appear (`%4` + `%44` → `%4D`).
        assert_eq!(normalize("/%4%44"), Err(PathError::BadEscape));
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in [
            "/a/%2e%2e/b",
            "/a/%252e%252e/b",
            "/%2e%2e/%2f",
            "/a/b/../../../c/./d/",
        ] {
            let once = norm(p);
            assert_eq!(norm(&once), once, "{p}");
        }
    }
}
