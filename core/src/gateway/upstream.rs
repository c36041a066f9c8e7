//! Rewriting heads between client and backend: hop-by-hop headers,
//! credentials, traceability headers, the claim.
//!
//! The rules are stated once, over header names and values, so that an
//! adapter can apply them to a `HeaderMap` ([`rewrite_request`]) or while
//! writing a head straight to a socket ([`Forwarding::drops`],
//! [`Forwarding::added_headers`], [`is_hop_by_hop`]).

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Uri};

use super::context::{ClientInfo, RequestContext};
use super::head::RequestHead;
use crate::auth::{CLIENT_ID_HEADER, CLIENT_SECRET_HEADER};
use crate::routing::TargetUrl;
use crate::text::{push_ip, with_scratch};
use crate::GatewayError;

/// Headers that concern one connection only (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Headers the gateway sets itself on the way to the backend: a client's
/// own values are never passed on.
const SET_BY_GATEWAY: [&str; 7] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "komainu-request-id",
    "komainu-claim",
    "traceparent",
];

/// The gateway's own cookies (the web UI's session): a browser sends them
/// to every port of the host that set them, and they never reach a
/// backend.
const GATEWAY_COOKIES: [&str; 3] = [
    crate::admin::session::COOKIE,
    crate::login::oidc::FLOW_COOKIE,
    super::login::USER_COOKIE,
];

/// A `Cookie` header value without the gateway's own cookies, when it
/// carries one: `None` means "forward it as it is"; `Some` the value to
/// forward instead (empty: forward no `Cookie` header at all).
pub fn without_gateway_cookies(value: &[u8]) -> Option<Vec<u8>> {
    let carries = GATEWAY_COOKIES.iter().any(|c| {
        value
            .windows(c.len())
            .any(|w| w.eq_ignore_ascii_case(c.as_bytes()))
    });
    if !carries {
        return None;
    }
    let mut kept = Vec::with_capacity(value.len());
    for pair in value.split(|&b| b == b';').map(<[u8]>::trim_ascii) {
        let name = pair
            .split(|&b| b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if pair.is_empty() || GATEWAY_COOKIES.iter().any(|c| c.as_bytes() == name) {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    Some(kept)
}

/// Whether the gateway sets `name` itself on the way to the backend.
pub(crate) fn is_set_by_gateway(name: &str) -> bool {
    SET_BY_GATEWAY.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether `name` is a hop-by-hop header (any case). Headers named by
/// `Connection` are hop-by-hop too: see [`connection_names`].
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Whether a request with this method may be sent again after a failed
/// attempt (RFC 9110, 9.2.2: the safe methods, PUT and DELETE). A POST or
/// PATCH that reached a backend is never replayed.
pub fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// The header names listed in a `Connection` header value.
pub fn connection_names(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|n| !n.is_empty())
}

/// The decision to forward a request: where, and how to rewrite its head.
pub struct Forwarding<'g> {
    /// The chosen target.
    pub target: &'g TargetUrl,
    /// The route's timeouts.
    pub timeouts: super::Timeouts,
    /// Largest request body: an adapter streaming a body of unknown length
    /// stops past it and answers 413 `payload_too_large` (a declared length
    /// is judged by the core before forwarding).
    pub max_body_bytes: Option<u64>,
    /// The credentials came in `Authorization`: it is not passed on.
    pub(crate) drop_authorization: bool,
    /// Protocols the route lets a client switch to (lower case).
    pub(crate) upgrades: &'g [Box<str>],
    /// The signed `Komainu-Claim`.
    pub(crate) claim: String,
    /// The route's path prefix taken off before forwarding.
    pub(crate) strip_prefix: Option<&'g str>,
    /// The route's path template.
    pub(crate) rewrite: Option<&'g super::rewrite::PathRewrite>,
    /// The route's `Host` for the backend.
    pub(crate) host_override: Option<&'g str>,
    /// The route's changes to the request's headers.
    pub(crate) rules: Option<&'g super::transform::HeaderRules>,
    /// The Otoroshi profile's headers, on a route that has it.
    pub(crate) otoroshi: Option<(&'g super::otoroshi::Profile, super::otoroshi::Outgoing)>,
}

impl Forwarding<'_> {
    /// Whether the route lets a client switch to `protocol` (the value of
    /// its `Upgrade` header): `websocket` by default. Any other protocol,
    /// `h2c` above all, would carry requests past routing, keys and quotas.
    pub fn allows_upgrade(&self, protocol: &[u8]) -> bool {
        let protocol = protocol.trim_ascii();
        self.upgrades
            .iter()
            .any(|p| p.as_bytes().eq_ignore_ascii_case(protocol))
    }

    /// Whether the client's header `name` (any case) stays out of the
    /// forwarded request: hop-by-hop, the gateway's credentials, and the
    /// headers the gateway sets itself ([`Forwarding::added_headers`]).
    /// (`Cookie` is kept, less the gateway's own cookies:
    /// [`without_gateway_cookies`].)
    /// Framing headers (`Content-Length`, `Transfer-Encoding`) are the
    /// HTTP layer's business and not judged here.
    pub fn drops(&self, name: &str) -> bool {
        is_hop_by_hop(name)
            || is_set_by_gateway(name)
            || name.eq_ignore_ascii_case(CLIENT_ID_HEADER)
            || name.eq_ignore_ascii_case(CLIENT_SECRET_HEADER)
            || (self.drop_authorization && name.eq_ignore_ascii_case("authorization"))
            || self.rules.is_some_and(|r| r.drops(name))
            || self.otoroshi.as_ref().is_some_and(|(p, _)| p.drops(name))
    }

    /// The path and query to send: the client's, less the route's
    /// `stripPrefix` when it starts with it.
    pub fn upstream_path<'a>(&self, path_and_query: &'a str) -> std::borrow::Cow<'a, str> {
        match self.rewrite {
            Some(rewrite) => rewrite.apply(path_and_query),
            None => super::transform::strip_prefix(self.strip_prefix, path_and_query),
        }
    }

    /// The headers the route sets and appends on the request (after
    /// [`Forwarding::added_headers`]).
    pub fn route_headers(&self, emit: impl FnMut(&str, &[u8])) {
        if let Some(rules) = self.rules {
            rules.for_each_added(emit);
        }
    }

    /// The headers the gateway adds to the forwarded request, in order:
    /// `Host` (the target's), `X-Forwarded-For` (the client's address
    /// appended), `X-Forwarded-Proto`, `X-Forwarded-Host` (the host asked
    /// for), `Komainu-Request-Id`, `Komainu-Claim`, `traceparent` (the
    /// client's trace continued, or a new one).
    pub fn added_headers(
        &self,
        head: &impl RequestHead,
        client: &ClientInfo,
        ctx: &RequestContext,
        mut emit: impl FnMut(&'static str, &[u8]),
    ) {
        emit(
            "host",
            self.host_override
                .unwrap_or(self.target.authority.as_str())
                .as_bytes(),
        );
        if let Some(addr) = client.addr {
            with_scratch(|value| {
                if let Some(prior) = head.first("x-forwarded-for") {
                    value.extend_from_slice(prior);
                    value.extend_from_slice(b", ");
                }
                push_ip(value, addr);
                emit("x-forwarded-for", value);
            });
        }
        emit(
            "x-forwarded-proto",
            if client.tls { b"https" } else { b"http" },
        );
        let host = head.host();
        if !host.is_empty() {
            emit("x-forwarded-host", host.as_bytes());
        }
        emit("komainu-request-id", ctx.request_id.as_str().as_bytes());
        emit("komainu-claim", self.claim.as_bytes());
        emit("traceparent", &ctx.trace.header_value());
        if let Some((_, out)) = &self.otoroshi {
            out.emit(ctx.request_id.as_str(), host, &mut emit);
        }
    }
}

/// Removes hop-by-hop headers, including those named by `Connection`.
/// `Transfer-Encoding` is left to the HTTP layer, which re-frames bodies.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) headers first: most messages carry none.
    if !headers.keys().any(|name| is_hop_by_hop(name.as_str())) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| connection_names(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Rewrites a client request head in place for `forwarding`: absolute URI
/// of the target, headers dropped and added by the rules above.
pub(crate) fn rewrite_request(
    parts: &mut Parts,
    forwarding: &Forwarding<'_>,
    client: &ClientInfo,
    ctx: &RequestContext,
) -> Result<(), GatewayError> {
    let target = forwarding.target;
    let mut added: Vec<(&'static str, HeaderValue)> = Vec::with_capacity(12);
    forwarding.added_headers(&*parts, client, ctx, |name, value| {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            added.push((name, v));
        }
    });
    let path_and_query = forwarding.upstream_path(parts.path_and_query());
    let mut pq = String::with_capacity(target.base_path.len() + path_and_query.len());
    pq.push_str(&target.base_path);
    pq.push_str(&path_and_query);
    parts.uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| GatewayError::BadGateway(format!("cannot build the upstream URI: {e}")))?;

    let h = &mut parts.headers;
    remove_hop_by_hop(h);
    let dropped: Vec<HeaderName> = h
        .keys()
        .filter(|name| forwarding.drops(name.as_str()))
        .cloned()
        .collect();
    for name in dropped {
        h.remove(name);
    }
    // The gateway's own cookies are taken out of `Cookie`.
    if h.get_all(header::COOKIE)
        .iter()
        .any(|v| without_gateway_cookies(v.as_bytes()).is_some())
    {
        let cookies: Vec<HeaderValue> = h
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| match without_gateway_cookies(v.as_bytes()) {
                None => Some(v.clone()),
                Some(rest) if rest.is_empty() => None,
                Some(rest) => HeaderValue::from_bytes(&rest).ok(),
            })
            .collect();
        h.remove(header::COOKIE);
        for v in cookies {
            h.append(header::COOKIE, v);
        }
    }
    for (name, value) in added {
        h.insert(name, value);
    }
    if let Some(rules) = forwarding.rules {
        // The client's values of the names it sets or removes went with
        // `drops` above; its own are added now.
        rules.apply(h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_gateway_cookies;

    #[test]
    fn the_gateway_cookies_are_taken_out_of_cookie() {
        assert_eq!(without_gateway_cookies(b"a=1; b=2"), None);
        assert_eq!(
            without_gateway_cookies(b"a=1; komainu_session=t.x; b=2").as_deref(),
            Some(&b"a=1; b=2"[..])
        );
        assert_eq!(
            without_gateway_cookies(b"komainu_session=t.x").as_deref(),
            Some(&b""[..])
        );
        // A cookie whose name merely contains it is the client's.
        assert_eq!(
            without_gateway_cookies(b"my_komainu_session=1").as_deref(),
            Some(&b"my_komainu_session=1"[..])
        );
    }
}
