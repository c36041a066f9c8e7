//! Routes the gateway answers itself: redirects (a `Location` from a
//! template) and static responses. Compiled once per revision; a request
//! fills the template's variables.

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use http::{Response, StatusCode};

use super::context::ClientInfo;
use super::head::RequestHead;
use crate::model::{Redirect, StaticResponse};

/// One piece of a redirect template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(String),
    Scheme,
    Host,
    Path,
    Query,
}

/// The variables a redirect template may use.
pub const TEMPLATE_VARIABLES: &str = "{scheme}, {host}, {path}, {query}";

/// Parses a redirect template (`https://new.example.com{path}{query}`).
fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("an unclosed {{ in \"{template}\""))?;
        parts.push(match &after[..close] {
            "scheme" => Part::Scheme,
            "host" => Part::Host,
            "path" => Part::Path,
            "query" => Part::Query,
            other => {
                return Err(format!(
                    "unknown variable {{{other}}}: use {TEMPLATE_VARIABLES}"
                ))
            }
        });
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// Checks a redirect; the field at fault (relative to it) and why.
pub(crate) fn check_redirect(r: &Redirect) -> Result<(), (&'static str, String)> {
    if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
        return Err(("status", "must be 301, 302, 303, 307 or 308".into()));
    }
    let parts = parse_template(&r.to).map_err(|why| ("to", why))?;
    if r.to.is_empty() || r.to.chars().any(char::is_control) {
        return Err((
            "to",
            "must be a URL or a path, without control characters".into(),
        ));
    }
    let _ = parts;
    Ok(())
}

/// Checks a static response; the field at fault (relative to it) and why.
pub(crate) fn check_static(r: &StaticResponse) -> Result<(), (String, String)> {
    if !(200..=599).contains(&r.status) {
        return Err(("status".into(), "must be between 200 and 599".into()));
    }
    for (name, value) in &r.headers {
        let field = format!("headers.{name}");
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err((field, "is not a header name".into()));
        }
        if super::is_hop_by_hop(name)
            || ["content-length", "transfer-encoding", "komainu-request-id"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        {
            return Err((field, "is set by the gateway".into()));
        }
        if HeaderValue::from_str(value).is_err() {
            return Err((field, "is not a valid header value".into()));
        }
    }
    if r.body.len() > 64 * 1024 {
        return Err(("body".into(), "must be at most 65536 bytes".into()));
    }
    Ok(())
}

/// What a route answers itself, compiled.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    Redirect {
        status: StatusCode,
        to: Vec<Part>,
    },
    Static {
        status: StatusCode,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: String,
    },
}

impl Answer {
    /// The answer of a validated route, if it has one.
    pub(crate) fn of(
        redirect: Option<&Redirect>,
        respond: Option<&StaticResponse>,
    ) -> Option<Self> {
        if let Some(r) = redirect {
            return Some(Answer::Redirect {
                status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND),
                to: parse_template(&r.to).unwrap_or_default(),
            });
        }
        let r = respond?;
        Some(Answer::Static {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            headers: r
                .headers
                .iter()
                .filter_map(|(n, v)| {
                    Some((
                        HeaderName::from_bytes(n.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect(),
            body: r.body.clone(),
        })
    }

    /// The response for a request.
    pub(crate) fn respond(&self, head: &impl RequestHead, client: &ClientInfo) -> Response<String> {
        match self {
            Answer::Redirect { status, to } => {
                let mut location = String::new();
                for part in to {
                    match part {
                        Part::Text(t) => location.push_str(t),
                        Part::Scheme => {
                            location.push_str(if client.tls { "https" } else { "http" })
                        }
                        Part::Host => location.push_str(head.host()),
                        Part::Path => location.push_str(head.path()),
                        Part::Query => {
                            let pq = head.path_and_query();
                            if let Some(i) = pq.find('?') {
                                location.push_str(&pq[i..]);
                            }
                        }
                    }
                }
                let mut response = Response::new(String::new());
                *response.status_mut() = *status;
                if let Ok(v) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, v);
                }
                response
            }
            Answer::Static {
                status,
                headers,
                body,
            } => {
                let mut response = Response::new(body.clone());
                *response.status_mut() = *status;
                let h = response.headers_mut();
                for (name, value) in headers {
                    h.append(name.clone(), value.clone());
                }
                if !h.contains_key(CONTENT_TYPE) && !body.is_empty() {
                    h.insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                }
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_their_variables() {
        assert_eq!(
            parse_template("https://x{path}{query}").unwrap(),
            vec![Part::Text("https://x".into()), Part::Path, Part::Query]
        );
        assert!(parse_template("https://x{pth}")
            .unwrap_err()
            .contains("{pth}"));
        assert!(parse_template("https://x{path").is_err());
    }
}
