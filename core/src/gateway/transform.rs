//! What a route reshapes on the way through: headers set, appended or
//! removed on the request and on the response, a path prefix taken off,
//! the `Host` sent to the backend. Compiled once per configuration; on the
//! request path, only comparisons and copies.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::model::HeaderChanges;

/// Whether a route may not change header `name`: hop-by-hop, framing,
/// and the headers the gateway sets itself (on either side).
fn is_reserved(name: &str) -> bool {
    super::upstream::is_hop_by_hop(name)
        || super::upstream::is_set_by_gateway(name)
        || [
            "transfer-encoding",
            "content-length",
            "komainu-upstream-latency",
            "komainu-proxy-latency",
        ]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// One side's header changes, compiled.
#[derive(Debug, Default)]
pub struct HeaderRules {
    set: Vec<(HeaderName, HeaderValue)>,
    append: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// The rules of `changes` (validated), or `None` when they change nothing.
    pub(crate) fn of(changes: &HeaderChanges) -> Option<Self> {
        if changes.is_empty() {
            return None;
        }
        let pairs = |map: &std::collections::BTreeMap<String, String>| {
            map.iter()
                .filter_map(|(n, v)| {
                    Some((
                        HeaderName::from_bytes(n.as_bytes()).ok()?,
                        HeaderValue::from_str(v).ok()?,
                    ))
                })
                .collect()
        };
        Some(Self {
            set: pairs(&changes.set),
            append: pairs(&changes.append),
            remove: changes
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        })
    }

    /// Whether an incoming header `name` (any case) is left out: removed,
    /// or replaced by a value of the route's.
    pub fn drops(&self, name: &str) -> bool {
        let is = |h: &HeaderName| h.as_str().eq_ignore_ascii_case(name);
        self.remove.iter().any(is) || self.set.iter().any(|(h, _)| is(h))
    }

    /// The route's headers, in order: those it sets, then those it appends.
    pub fn for_each_added(&self, mut emit: impl FnMut(&str, &[u8])) {
        for (name, value) in self.set.iter().chain(&self.append) {
            emit(name.as_str(), value.as_bytes());
        }
    }

    /// Applies the rules to a header map.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.append {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Checks a route's header changes: the field at fault and why.
pub(crate) fn check_changes(changes: &HeaderChanges) -> Result<(), (String, String)> {
    let name_ok = |field: String, name: &str| -> Result<(), (String, String)> {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err((field, format!("\"{name}\" is not a header name")));
        }
        if is_reserved(name) {
            return Err((
                field,
                format!("\"{name}\" is set by the HTTP layer or the gateway itself: a route cannot change it (the backend's Host: hostOverride)"),
            ));
        }
        Ok(())
    };
    for (which, map) in [("set", &changes.set), ("append", &changes.append)] {
        for (name, value) in map {
            name_ok(format!("{which}.{name}"), name)?;
            if HeaderValue::from_str(value).is_err() {
                return Err((
                    format!("{which}.{name}"),
                    "a header value is visible ASCII text (spaces and tabs allowed)".into(),
                ));
            }
        }
    }
    for (j, name) in changes.remove.iter().enumerate() {
        name_ok(format!("remove[{j}]"), name)?;
    }
    Ok(())
}

/// Checks a `stripPrefix`: a path prefix, without a trailing `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.ends_with('/') {
        return Err(format!(
            "\"{prefix}\" is not a path prefix: it starts with '/', and does not end with one (e.g. \"/api\")"
        ));
    }
    if prefix
        .bytes()
        .any(|b| b.is_ascii_control() || b" ?#%".contains(&b))
    {
        return Err(format!(
            "\"{prefix}\" must be a plain path, without query, '%', spaces or control characters"
        ));
    }
    Ok(())
}

/// `path_and_query` with `prefix` taken off its path, when the path starts
/// with it at a segment boundary (`/api/x` and `/api`, not `/apix`).
pub fn strip_prefix<'a>(prefix: Option<&str>, path_and_query: &'a str) -> Cow<'a, str> {
    let Some(prefix) = prefix else {
        return Cow::Borrowed(path_and_query);
    };
    match path_and_query.strip_prefix(prefix) {
        Some("") => Cow::Borrowed("/"),
        Some(rest) if rest.starts_with('/') => Cow::Borrowed(rest),
        Some(rest) if rest.starts_with('?') => Cow::Owned(format!("/{rest}")),
        _ => Cow::Borrowed(path_and_query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_taken_off_at_a_segment_boundary() {
        let p = Some("/api");
        assert_eq!(strip_prefix(p, "/api/orders?x=1"), "/orders?x=1");
        assert_eq!(strip_prefix(p, "/api"), "/");
        assert_eq!(strip_prefix(p, "/api?x=1"), "/?x=1");
        assert_eq!(strip_prefix(p, "/apix/orders"), "/apix/orders");
        assert_eq!(strip_prefix(p, "/other"), "/other");
        assert_eq!(strip_prefix(None, "/api/x"), "/api/x");
    }

    #[test]
    fn reserved_and_invalid_headers_are_refused() {
        let mut c = HeaderChanges::default();
        c.set.insert("X-Team".into(), "shop".into());
        c.remove.push("x-internal".into());
        assert!(check_changes(&c).is_ok());
        c.set.insert("Content-Length".into(), "3".into());
        assert_eq!(check_changes(&c).unwrap_err().0, "set.Content-Length");
        let mut c = HeaderChanges::default();
        c.append.insert("bad name".into(), "x".into());
        assert_eq!(check_changes(&c).unwrap_err().0, "append.bad name");
        let mut c = HeaderChanges::default();
        c.remove.push("Host".into());
        assert_eq!(check_changes(&c).unwrap_err().0, "remove[0]");
    }

    #[test]
    fn rules_drop_what_they_replace_and_remove() {
        let mut c = HeaderChanges::default();
        c.set.insert("x-team".into(), "shop".into());
        c.append.insert("x-via".into(), "komainu".into());
        c.remove.push("X-Internal".into());
        let r = HeaderRules::of(&c).unwrap();
        assert!(r.drops("X-Team") && r.drops("x-internal") && !r.drops("x-via"));
        let mut added = Vec::new();
        r.for_each_added(|n, v| added.push(format!("{n}: {}", String::from_utf8_lossy(v))));
        assert_eq!(added, ["x-team: shop", "x-via: komainu"]);
        let mut h = HeaderMap::new();
        h.insert("x-team", HeaderValue::from_static("other"));
        h.insert("x-internal", HeaderValue::from_static("1"));
        h.insert("x-via", HeaderValue::from_static("edge"));
        r.apply(&mut h);
        assert_eq!(h["x-team"], "shop");
        assert!(h.get("x-internal").is_none());
        assert_eq!(h.get_all("x-via").iter().count(), 2);
    }
}
