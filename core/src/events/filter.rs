//! Choosing events: by type (exporters' include/exclude lists, the
//! `type` query parameter), by route and by key.

use super::Event;

/// Include and exclude lists of type patterns: an event passes when it
/// matches an include pattern (or the include list is empty) and no
/// exclude pattern. A pattern is a CloudEvents type
/// (`io.komainu.request.v1`), a prefix ending in `*`
/// (`io.komainu.audit.apikey.*`), or a family: `request`, `audit`, `alert`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl TypeFilter {
    /// A filter from include and exclude patterns.
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        Self {
            include: include.iter().map(|p| expand(p)).collect(),
            exclude: exclude.iter().map(|p| expand(p)).collect(),
        }
    }

    /// Whether an event of type `kind` passes.
    pub fn accepts(&self, kind: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| matches(p, kind)))
            && !self.exclude.iter().any(|p| matches(p, kind))
    }
}

/// Checks one pattern: the reason it is invalid, if it is.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if pattern.is_empty() {
        return Err("must not be empty");
    }
    if body.contains('*') {
        return Err("may hold `*` only at its end");
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may hold letters, digits, `.`, `_`, `-` and a final `*`");
    }
    Ok(())
}

fn expand(pattern: &str) -> String {
    match pattern {
        "request" | "audit" | "alert" => format!("io.komainu.{pattern}.*"),
        _ => pattern.to_owned(),
    }
}

fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// What `GET /api/events` and the event stream are asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Type patterns (comma-separated in `type`).
    pub types: TypeFilter,
    /// Only events about this route.
    pub route: Option<String>,
    /// Only events about this API key.
    pub key: Option<String>,
    /// How many of the most recent events (1–1000; default 100).
    pub limit: usize,
}

/// Most events one listing returns.
pub const MAX_LIMIT: usize = 1000;

impl EventQuery {
    /// Parses a query string (`type=audit,alert&route=orders&limit=20`).
    /// An error names the parameter and what is wrong.
    pub fn parse(query: Option<&str>) -> Result<Self, (String, String)> {
        let mut q = Self {
            limit: 100,
            ..Self::default()
        };
        let mut include = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)
                .ok_or_else(|| (name.to_owned(), "is not valid percent-encoded UTF-8".into()))?;
            match name {
                "type" => {
                    for p in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        check_pattern(p)
                            .map_err(|why| ("type".to_owned(), format!("{p:?} {why}")))?;
                        include.push(p.to_owned());
                    }
                }
                "route" => q.route = Some(value),
                "key" => q.key = Some(value),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            (
                                "limit".to_owned(),
                                format!("must be a number from 1 to {MAX_LIMIT}"),
                            )
                        })?;
                }
                other => {
                    return Err((
                        other.to_owned(),
                        "is not a parameter here: use type, route, key or limit".into(),
                    ))
                }
            }
        }
        q.types = TypeFilter::new(&include, &[]);
        Ok(q)
    }

    /// Whether `event` (of CloudEvents type `kind`) is asked for.
    pub fn accepts(&self, event: &Event, kind: &str) -> bool {
        self.accepts_parts(kind, event.route(), event.key())
    }

    /// Whether an event of type `kind` about `route` and `key` is asked for.
    pub fn accepts_parts(&self, kind: &str, route: Option<&str>, key: Option<&str>) -> bool {
        self.types.accepts(kind)
            && self.route.as_deref().is_none_or(|r| route == Some(r))
            && self.key.as_deref().is_none_or(|k| key == Some(k))
    }
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_types_prefixes_and_families() {
        let f = TypeFilter::new(
            &["audit".into(), "io.komainu.alert.quota_*".into()],
            &["io.komainu.audit.config.*".into()],
        );
        assert!(f.accepts("io.komainu.audit.route.create.v1"));
        assert!(f.accepts("io.komainu.alert.quota_spent.v1"));
        assert!(!f.accepts("io.komainu.audit.config.import.v1"));
        assert!(!f.accepts("io.komainu.request.v1"));
        assert!(TypeFilter::default().accepts("io.komainu.request.v1"));
    }

    #[test]
    fn queries_are_parsed_and_errors_name_the_parameter() {
        let q = EventQuery::parse(Some("type=audit,alert&route=orders&limit=5")).unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(q.route.as_deref(), Some("orders"));
        assert!(q.types.accepts("io.komainu.alert.quota_spent.v1"));
        assert_eq!(EventQuery::parse(Some("limit=0")).unwrap_err().0, "limit");
        assert_eq!(EventQuery::parse(Some("limit=x")).unwrap_err().0, "limit");
        assert_eq!(EventQuery::parse(Some("type=a*b")).unwrap_err().0, "type");
        assert_eq!(
            EventQuery::parse(Some("colour=red")).unwrap_err().0,
            "colour"
        );
        assert_eq!(EventQuery::parse(None).unwrap().limit, 100);
    }
}
