//! The web UI: static files (plain ES modules, no build step) embedded in
//! the binary and the Worker, served by the admin listener natively (at
//! `/`) and under the admin path at the edge (`/_komainu/`). The UI is
//! only a client of the admin API: every file here is public, none holds
//! a secret, and everything the pages do goes through `/api`.

use http::{header, HeaderValue, Method, Response, StatusCode};

/// The Content-Security-Policy of every UI response: scripts, styles and
/// connections from the gateway itself only, no inline script or style, no
/// framing, no plugin, no form posting elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

macro_rules! assets {
    ($($path:literal => $file:literal, $type:literal;)*) => {
        &[$(($path, $type, include_bytes!(concat!("../../../ui/", $file)))),*]
    };
}

/// Path (under the UI's root), content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = assets! {
    "/" => "index.html", "text/html; charset=utf-8";
    "/style.css" => "style.css", "text/css; charset=utf-8";
    "/app.js" => "app.js", "text/javascript; charset=utf-8";
    "/api.js" => "api.js", "text/javascript; charset=utf-8";
    "/dom.js" => "dom.js", "text/javascript; charset=utf-8";
    "/pages/overview.js" => "pages/overview.js", "text/javascript; charset=utf-8";
    "/pages/routes.js" => "pages/routes.js", "text/javascript; charset=utf-8";
    "/pages/keys.js" => "pages/keys.js", "text/javascript; charset=utf-8";
    "/pages/groups.js" => "pages/groups.js", "text/javascript; charset=utf-8";
    "/pages/exporters.js" => "pages/exporters.js", "text/javascript; charset=utf-8";
    "/pages/events.js" => "pages/events.js", "text/javascript; charset=utf-8";
    "/pages/tryit.js" => "pages/tryit.js", "text/javascript; charset=utf-8";
    "/pages/transfer.js" => "pages/transfer.js", "text/javascript; charset=utf-8";
    "/pages/logins.js" => "pages/logins.js", "text/javascript; charset=utf-8";
    "/favicon.svg" => "favicon.svg", "image/svg+xml";
};

/// Whether `path` (under the UI's root: `/`, `/app.js`…) is one of the UI's files.
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == path)
}

/// The answer to `method path` (under the UI's root), or `None` when the
/// path is not the UI's.
pub fn respond(method: &Method, path: &str) -> Option<Response<&'static [u8]>> {
    let (_, content_type, body) = ASSETS.iter().find(|(p, _, _)| *p == path)?;
    let mut response = match *method {
        Method::GET => Response::new(*body),
        Method::HEAD => Response::new(&b""[..]),
        _ => {
            let mut r = Response::new(
                &br#"{"error":"method_not_allowed","message":"the UI's files answer GET"}"#[..],
            );
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            secure_headers(r.headers_mut());
            return Some(r);
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated each time: a new binary's UI is seen at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure_headers(headers);
    Some(response)
}

/// The headers every UI and admin response carries: the CSP, no framing,
/// no sniffing, no referrer.
pub fn secure_headers(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_the_policy() {
        for (path, content_type, body) in ASSETS {
            let r = respond(&Method::GET, path).expect("served");
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[header::CONTENT_TYPE], *content_type);
            assert_eq!(
                r.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
            assert!(!body.is_empty(), "{path} is empty");
        }
        assert!(respond(&Method::GET, "/nope.js").is_none());
        let post = respond(&Method::POST, "/").expect("answered");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn no_page_has_inline_script_or_style() {
        let (_, _, html) = ASSETS[0];
        let html = std::str::from_utf8(html).expect("utf-8");
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
        assert!(!html.contains("<style"), "inline style");
    }
}
