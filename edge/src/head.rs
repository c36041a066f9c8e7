//! Converting request and response heads between the Workers platform and
//! the `http` types the core works on. Bodies stay platform streams: they
//! are handed from the client to the backend and back without passing
//! through WebAssembly memory.

use http::{HeaderMap, HeaderName, HeaderValue};
use wasm_bindgen::JsValue;
use worker::{Request, Response, Result};

fn error(message: impl Into<String>) -> worker::Error {
    worker::Error::RustError(message.into())
}

/// The request head as the core reads it: method, path and query, headers
/// (with `Host`).
pub fn parts_of(req: &Request) -> Result<http::request::Parts> {
    let url = req.url()?;
    let mut path_and_query = url.path().to_owned();
    if let Some(q) = url.query() {
        path_and_query.push('?');
        path_and_query.push_str(q);
    }
    let method = http::Method::from_bytes(req.method().as_ref().as_bytes())
        .map_err(|e| error(e.to_string()))?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(path_and_query)
        .body(())
        .map_err(|e| error(e.to_string()))?;
    *request.headers_mut() = header_map(req.headers());
    if !request.headers().contains_key(http::header::HOST) {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => String::new(),
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            request.headers_mut().insert(http::header::HOST, v);
        }
    }
    Ok(request.into_parts().0)
}

/// A platform header list as a `HeaderMap` (invalid entries are dropped).
pub fn header_map(headers: &worker::Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers.entries() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// A `HeaderMap` as platform headers.
pub fn web_headers(map: &HeaderMap) -> Result<web_sys::Headers> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in map {
        if let Ok(v) = value.to_str() {
            headers.append(name.as_str(), v)?;
        }
    }
    Ok(headers)
}

/// The request to send to the backend: the rewritten head, the client's
/// body stream, redirects passed back to the client (not followed).
pub fn upstream_request(
    parts: &http::request::Parts,
    body: Option<web_sys::ReadableStream>,
) -> Result<Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(parts.method.as_str());
    let headers: JsValue = web_headers(&parts.headers)?.into();
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if let Some(body) = body {
        init.set_body(&body);
    }
    let request = web_sys::Request::new_with_str_and_init(&parts.uri.to_string(), &init)?;
    Ok(Request::from(request))
}

/// A response with a streamed body and the given head.
pub fn streamed_response(
    status: u16,
    headers: &HeaderMap,
    body: Option<web_sys::ReadableStream>,
) -> Result<Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    let headers: JsValue = web_headers(headers)?.into();
    init.set_headers(&headers);
    let response = web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)?;
    Ok(Response::from(response))
}

/// A response the core wrote (errors, admin answers).
pub fn core_response(response: http::Response<String>) -> Result<Response> {
    let (parts, body) = response.into_parts();
    let init = web_sys::ResponseInit::new();
    init.set_status(parts.status.as_u16());
    let headers: JsValue = web_headers(&parts.headers)?.into();
    init.set_headers(&headers);
    let body = if body.is_empty() { None } else { Some(body) };
    let response = web_sys::Response::new_with_opt_str_and_init(body.as_deref(), &init)?;
    Ok(Response::from(response))
}
