//! A route's path rewrite: the path sent to the backend made from a
//! template whose variables are the route's own path parameters (`{id}`
//! of `/users/{id}`, `{rest}` of `/files/{*rest}`) and `{path}`, the whole
//! request path. The query is kept. Compiled once per configuration (the
//! route's patterns in a small router of their own); on the request path,
//! one lookup and a copy, for the routes that have a rewrite only.

use std::borrow::Cow;

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
    Path,
}

/// A compiled `rewritePath`.
#[derive(Debug)]
pub struct PathRewrite {
    pieces: Vec<Piece>,
    patterns: matchit::Router<()>,
}

/// The names of the parameters of a path pattern (`{id}`, `{*rest}`).
fn parameters(pattern: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        names.push(name.trim_start_matches('*'));
        rest = &rest[open + close + 1..];
    }
    names
}

fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_owned()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("\"{template}\" has a \"{{\" without its \"}}\""))?;
        let name = &rest[open + 1..open + close];
        pieces.push(if name == "path" {
            Piece::Path
        } else {
            Piece::Param(name.to_owned())
        });
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("\"{template}\" has a \"}}\" without its \"{{\""));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

impl PathRewrite {
    /// Compiles `template` for a route serving `paths`: every variable
    /// must be `{path}` or a parameter of each of the route's paths (any of
    /// them may be the one matched).
    pub fn compile(template: &str, paths: &[String]) -> Result<Self, String> {
        if !template.starts_with('/') && !template.starts_with("{path}") {
            return Err(format!("\"{template}\" must start with \"/\""));
        }
        if template.contains(['?', '#']) || template.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "\"{template}\" must be a path, without query, fragment, spaces or control characters"
            ));
        }
        let pieces = parse(template)?;
        for piece in &pieces {
            if let Piece::Param(name) = piece {
                if let Some(path) = paths
                    .iter()
                    .find(|p| !parameters(p).contains(&name.as_str()))
                {
                    let known: Vec<String> = parameters(path)
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect();
                    return Err(format!(
                        "unknown variable {{{name}}}: the route's path \"{path}\" has {}; {{path}} is the whole path",
                        if known.is_empty() { "no parameter".to_owned() } else { known.join(", ") }
                    ));
                }
            }
        }
        let mut patterns = matchit::Router::new();
        for path in paths {
            // Two patterns matchit cannot tell apart are refused by the
            // route table already.
            let _ = patterns.insert(path.clone(), ());
        }
        Ok(Self { pieces, patterns })
    }

    /// The path (and query) sent on for `path_and_query`.
    pub fn apply<'a>(&self, path_and_query: &'a str) -> Cow<'a, str> {
        let (path, query) = match path_and_query.find('?') {
            Some(i) => path_and_query.split_at(i),
            None => (path_and_query, ""),
        };
        let Ok(found) = self.patterns.at(path) else {
            return Cow::Borrowed(path_and_query);
        };
        let mut out = String::with_capacity(path_and_query.len() + 16);
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Path => out.push_str(path),
                Piece::Param(name) => out.push_str(found.params.get(name).unwrap_or("")),
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        out.push_str(query);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parameters_of_the_matched_path_fill_the_template_and_the_query_stays() {
        let r = PathRewrite::compile("/v2/accounts/{id}/{rest}", &paths(&["/users/{id}/{*rest}"]))
            .expect("a rewrite");
        assert_eq!(
            r.apply("/users/42/orders/7?x=1"),
            "/v2/accounts/42/orders/7?x=1"
        );
        let whole = PathRewrite::compile("/legacy{path}", &paths(&["/a", "/b/{*rest}"])).unwrap();
        assert_eq!(whole.apply("/b/c"), "/legacy/b/c");
        assert_eq!(whole.apply("/a?q"), "/legacy/a?q");
    }

    #[test]
    fn unknown_variables_and_bad_templates_are_refused() {
        let e = PathRewrite::compile("/x/{user}", &paths(&["/users/{id}"])).unwrap_err();
        assert!(e.contains("{user}") && e.contains("{id}"), "{e}");
        // A parameter one of the paths lacks.
        assert!(PathRewrite::compile("/x/{id}", &paths(&["/users/{id}", "/users"])).is_err());
        assert!(PathRewrite::compile("x/{path}", &paths(&["/a"])).is_err());
        assert!(PathRewrite::compile("/x/{id", &paths(&["/users/{id}"])).is_err());
        assert!(PathRewrite::compile("/x?y=1", &paths(&["/a"])).is_err());
    }
}
