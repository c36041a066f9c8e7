//! Rewriting heads between client and backend: hop-by-hop headers,
//! credentials, traceability headers, the claim.

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Uri};

use super::context::{ClientInfo, RequestContext};
use super::phases::request_host;
use crate::auth::{CLIENT_ID_HEADER, CLIENT_SECRET_HEADER};
use crate::routing::TargetUrl;
use crate::GatewayError;

/// The request id header, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("komainu-request-id");
/// The signed claim header, to backends.
pub const CLAIM: HeaderName = HeaderName::from_static("komainu-claim");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that concern one connection only (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those named by `Connection`.
/// `Transfer-Encoding` is left to the HTTP layer, which re-frames bodies.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) headers first: most messages carry none.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Rewrites a client request head for `target`.
pub(crate) fn rewrite_request(
    parts: &mut Parts,
    target: &TargetUrl,
    drop_authorization: bool,
    client: &ClientInfo,
    ctx: &RequestContext,
    claim: &str,
) -> Result<(), GatewayError> {
    let original_host = HeaderValue::from_str(request_host(parts)).ok();
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut pq = String::with_capacity(target.base_path.len() + path_and_query.len());
    pq.push_str(&target.base_path);
    pq.push_str(path_and_query);
    parts.uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| GatewayError::BadGateway(format!("cannot build the upstream URI: {e}")))?;

    let h = &mut parts.headers;
    remove_hop_by_hop(h);
    h.remove(CLIENT_ID_HEADER);
    h.remove(CLIENT_SECRET_HEADER);
    if drop_authorization {
        h.remove(header::AUTHORIZATION);
    }
    if let Some(addr) = client.addr {
        let addr = addr.to_string();
        let value = match h.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) => HeaderValue::from_str(&format!("{prior}, {addr}")),
            None => HeaderValue::from_str(&addr),
        };
        if let Ok(v) = value {
            h.insert(X_FORWARDED_FOR, v);
        }
    }
    h.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    match original_host {
        Some(host) => h.insert(X_FORWARDED_HOST, host),
        None => h.remove(X_FORWARDED_HOST),
    };
    if let Ok(host) = HeaderValue::from_str(target.authority.as_str()) {
        h.insert(header::HOST, host);
    }
    if let Ok(id) = HeaderValue::from_str(ctx.request_id.as_str()) {
        h.insert(REQUEST_ID, id);
    }
    match HeaderValue::from_str(claim) {
        Ok(v) => h.insert(CLAIM, v),
        Err(_) => h.remove(CLAIM),
    };
    Ok(())
}
