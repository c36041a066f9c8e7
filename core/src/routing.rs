//! The route table, compiled once per configuration revision.
//!
//! Precedence, from the most specific to the least:
//!
//! 1. **host**: an exact host (`api.example.com`) before the longest matching
//!    wildcard (`*.eu.example.com` before `*.example.com`; a wildcard matches
//!    one or more labels, never the bare domain), before routes with no host
//!    (any host). The request's host is compared in lower case, without port.
//! 2. **path**: within a host, matchit's order: a static segment before a
//!    named parameter (`{id}`) before a catch-all (`{*rest}`).
//! 3. **method**: for the same host and path pattern, a route that lists the
//!    request's method before a route that accepts any method.
//!
//! A named parameter and a catch-all at the same position (`/users/{id}` and
//! `/users/{*rest}`) cannot both exist for one host: matchit refuses the
//! pair, and so does compilation, naming the field.
//!
//! When the most specific host has no route for the path and method, the next
//! one is tried. Two enabled routes that would serve the same host, path
//! pattern and method are refused when the configuration is compiled, as are
//! path patterns matchit cannot tell apart (`/a/{x}` and `/a/{y}`).

use std::collections::{BTreeMap, HashMap};

use http::uri::{Authority, Scheme};
use http::Method;

use crate::model::FieldError;
use crate::model::{Route, ValidationErrors};

/// A backend target's base URL, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Host and port.
    pub authority: Authority,
    /// Base path without trailing `/` (empty for the root).
    pub base_path: String,
}

impl TargetUrl {
    /// Parses an `http://` or `https://` base URL, without query or fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| {
            format!("\"{url}\" is not a URL ({e}); give e.g. \"http://10.0.0.5:9000\"")
        })?;
        let scheme = uri.scheme().cloned();
        let scheme = match scheme {
            Some(s) if s == Scheme::HTTP || s == Scheme::HTTPS => s,
            _ => return Err(format!("\"{url}\" must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .cloned()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| format!("\"{url}\" has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("\"{url}\" must not carry credentials"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(format!("\"{url}\" must not have a query or fragment"));
        }
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            base_path,
        })
    }
}

impl std::fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.base_path)
    }
}

/// The methods a route accepts.
#[derive(Debug, Clone)]
enum Methods {
    Any,
    Only(Vec<Method>),
}

impl Methods {
    fn accepts(&self, method: &Method) -> bool {
        match self {
            Methods::Any => true,
            Methods::Only(list) => list.contains(method),
        }
    }

    fn overlaps(&self, other: &Methods) -> Option<String> {
        match (self, other) {
            (Methods::Any, Methods::Any) => Some("any method".to_owned()),
            (Methods::Only(a), Methods::Only(b)) => {
                a.iter().find(|m| b.contains(m)).map(|m| m.to_string())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Candidate {
    route: usize,
    methods: Methods,
}

#[derive(Default)]
struct Bucket {
    router: matchit::Router<Vec<Candidate>>,
}

impl Bucket {
    fn find(&self, method: &Method, path: &str) -> Option<usize> {
        let found = self.router.at(path).ok()?;
        found
            .value
            .iter()
            .find(|c| c.methods.accepts(method))
            .map(|c| c.route)
    }
}

/// Hosts to matchit routers to candidate routes, read-only once built.
#[derive(Default)]
pub struct RouteTable {
    exact: HashMap<String, Bucket>,
    /// Keyed by the suffix with its leading dot: `*.example.com` → `.example.com`.
    wildcard: HashMap<String, Bucket>,
    any: Bucket,
}

/// Patterns of one host before they go into matchit: pattern → candidates
/// and where the pattern was first declared (route index, path index).
type PendingBucket = BTreeMap<String, (Vec<Candidate>, (usize, usize))>;

impl RouteTable {
    /// Builds the table from the routes of a document (disabled routes are
    /// left out). Route indexes are positions in `routes`.
    pub fn build(routes: &[Route]) -> Result<Self, ValidationErrors> {
        let mut pending: HashMap<Option<String>, PendingBucket> = HashMap::new();
        let mut errors = Vec::new();
        for (i, route) in routes.iter().enumerate().filter(|(_, r)| r.enabled) {
            let methods = if route.methods.is_empty() {
                Methods::Any
            } else {
                Methods::Only(
                    route
                        .methods
                        .iter()
                        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                        .collect(),
                )
            };
            let hosts: Vec<Option<String>> = if route.hosts.is_empty() {
                vec![None]
            } else {
                route.hosts.iter().map(|h| Some(h.clone())).collect()
            };
            for host in hosts {
                let bucket = pending.entry(host.clone()).or_default();
                for (j, path) in route.paths.iter().enumerate() {
                    let (candidates, _) = bucket
                        .entry(path.clone())
                        .or_insert_with(|| (Vec::new(), (i, j)));
                    for other in candidates.iter() {
                        if let Some(m) = other.methods.overlaps(&methods) {
                            errors.push(FieldError {
                                field: format!("routes[{i}].paths[{j}]"),
                                message: format!(
                                    "route \"{}\" already serves {m} {path} on {}",
                                    routes[other.route].id,
                                    host.as_deref().unwrap_or("any host")
                                ),
                            });
                        }
                    }
                    candidates.push(Candidate {
                        route: i,
                        methods: methods.clone(),
                    });
                }
            }
        }
        let mut table = RouteTable::default();
        for (host, patterns) in pending {
            let mut bucket = Bucket::default();
            for (pattern, (mut candidates, (i, j))) in patterns {
                candidates.sort_by_key(|c| matches!(c.methods, Methods::Any));
                if let Err(e) = bucket.router.insert(pattern.clone(), candidates) {
                    errors.push(FieldError {
                        field: format!("routes[{i}].paths[{j}]"),
                        message: format!("path pattern \"{pattern}\" is refused: {e}"),
                    });
                }
            }
            match host {
                None => table.any = bucket,
                Some(h) => match h.strip_prefix('*') {
                    Some(suffix) => {
                        table.wildcard.insert(suffix.to_owned(), bucket);
                    }
                    None => {
                        table.exact.insert(h, bucket);
                    }
                },
            }
        }
        if errors.is_empty() {
            Ok(table)
        } else {
            errors.dedup();
            Err(ValidationErrors(errors))
        }
    }

    /// The index of the route serving this request, if any. `host` may carry
    /// a port and upper case; `path` is the request path without query.
    pub fn find(&self, host: &str, method: &Method, path: &str) -> Option<usize> {
        let host = normalize_host(host);
        let host = host.as_ref();
        if let Some(found) = self.exact.get(host).and_then(|b| b.find(method, path)) {
            return Some(found);
        }
        if !self.wildcard.is_empty() {
            // Longest suffix first: ".eu.example.com" before ".example.com".
            for (i, _) in host.match_indices('.') {
                if let Some(found) = self
                    .wildcard
                    .get(&host[i..])
                    .and_then(|b| b.find(method, path))
                {
                    return Some(found);
                }
            }
        }
        self.any.find(method, path)
    }
}

/// Lower case, without port or trailing dot; borrowed when already clean.
fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let without_port = match host.rfind(':') {
        Some(i) if !host.ends_with(']') && host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &host[..i]
        }
        _ => host,
    };
    let trimmed = without_port.trim_end_matches('.');
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backend, Route};

    fn route(id: &str, hosts: &[&str], paths: &[&str], methods: &[&str]) -> Route {
        Route {
            id: id.into(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            backend: Backend {
                timeout_ms: Some(1000),
                ..Backend::default()
            },
            public: false,
            groups: vec![],
            ..Route::default()
        }
    }

    fn find<'a>(routes: &'a [Route], host: &str, method: &str, path: &str) -> Option<&'a str> {
        let table = RouteTable::build(routes).unwrap();
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        table
            .find(host, &method, path)
            .map(|i| routes[i].id.as_str())
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any() {
        let routes = [
            route("any", &[], &["/{*rest}"], &[]),
            route("wild", &["*.example.com"], &["/{*rest}"], &[]),
            route("eu", &["*.eu.example.com"], &["/{*rest}"], &[]),
            route("exact", &["api.example.com"], &["/{*rest}"], &[]),
        ];
        assert_eq!(find(&routes, "api.example.com", "GET", "/x"), Some("exact"));
        assert_eq!(
            find(&routes, "API.Example.com:8443", "GET", "/x"),
            Some("exact")
        );
        assert_eq!(find(&routes, "web.example.com", "GET", "/x"), Some("wild"));
        assert_eq!(find(&routes, "a.b.example.com", "GET", "/x"), Some("wild"));
        assert_eq!(find(&routes, "a.eu.example.com", "GET", "/x"), Some("eu"));
        assert_eq!(find(&routes, "example.com", "GET", "/x"), Some("any"));
        assert_eq!(find(&routes, "other.org", "GET", "/x"), Some("any"));
    }

    #[test]
    fn static_beats_param_beats_catch_all() {
        let routes = [
            route("all", &[], &["/files/{*rest}"], &[]),
            route("readme", &[], &["/files/readme"], &[]),
            route("one", &[], &["/users/{id}"], &[]),
            route("me", &[], &["/users/me"], &[]),
        ];
        assert_eq!(find(&routes, "h", "GET", "/users/me"), Some("me"));
        assert_eq!(find(&routes, "h", "GET", "/users/42"), Some("one"));
        assert_eq!(find(&routes, "h", "GET", "/users/42/posts"), None);
        assert_eq!(find(&routes, "h", "GET", "/files/readme"), Some("readme"));
        assert_eq!(find(&routes, "h", "GET", "/files/a/b"), Some("all"));
        assert_eq!(find(&routes, "h", "GET", "/orders"), None);
    }

    #[test]
    fn listed_method_beats_any_method_and_falls_back_by_host() {
        let routes = [
            route("read", &[], &["/items"], &[]),
            route("write", &[], &["/items"], &["POST", "PUT"]),
            route("special", &["api.example.com"], &["/items"], &["DELETE"]),
        ];
        assert_eq!(find(&routes, "h", "POST", "/items"), Some("write"));
        assert_eq!(find(&routes, "h", "GET", "/items"), Some("read"));
        assert_eq!(
            find(&routes, "api.example.com", "DELETE", "/items"),
            Some("special")
        );
        assert_eq!(
            find(&routes, "api.example.com", "GET", "/items"),
            Some("read")
        );
    }

    #[test]
    fn disabled_routes_match_nothing() {
        let mut r = route("off", &[], &["/x"], &[]);
        r.enabled = false;
        assert_eq!(find(&[r], "h", "GET", "/x"), None);
    }

    #[test]
    fn ambiguous_routes_are_refused_at_build_time() {
        let routes = [
            route("a", &[], &["/x"], &["GET"]),
            route("b", &[], &["/x"], &["GET", "POST"]),
        ];
        let err = RouteTable::build(&routes).err().unwrap();
        assert_eq!(err.0[0].field, "routes[1].paths[0]");
        assert!(err.0[0].message.contains("\"a\""), "{}", err.0[0].message);

        let routes = [
            route("a", &[], &["/u/{id}"], &[]),
            route("b", &[], &["/u/{name}"], &[]),
        ];
        let err = RouteTable::build(&routes).err().unwrap();
        assert!(err.0[0].field.starts_with("routes["), "{err}");
        let routes = [route("a", &[], &["/u/{"], &[])];
        assert!(RouteTable::build(&routes).is_err());
    }

    #[test]
    fn target_urls() {
        let t = TargetUrl::parse("https://backend.internal:8443/base/").unwrap();
        assert_eq!(t.scheme, Scheme::HTTPS);
        assert_eq!(t.authority.as_str(), "backend.internal:8443");
        assert_eq!(t.base_path, "/base");
        assert!(TargetUrl::parse("ftp://x").is_err());
        assert!(TargetUrl::parse("127.0.0.1:9000").is_err());
        assert!(TargetUrl::parse("http://x/?q=1").is_err());
        assert!(TargetUrl::parse("http://user:pw@x/").is_err());
    }
}
