//! CORS per route: the preflight answered by the gateway (never forwarded
//! when the route has CORS), and the `Access-Control-*` headers on the
//! answers to an allowed origin, the gateway's own errors included (a page
//! can then read why a call was refused).

use http::{HeaderValue, Method, Response, StatusCode};

use crate::model::Cors;

/// A route's CORS, compiled.
#[derive(Debug)]
pub struct CorsRules {
    any_origin: bool,
    origins: Vec<Box<str>>,
    methods: Vec<Method>,
    allow_methods: HeaderValue,
    allow_headers: HeaderValue,
    expose_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: HeaderValue,
}

/// What a response to an allowed origin carries.
#[derive(Debug, Clone)]
pub struct CorsReply {
    origin: HeaderValue,
    credentials: bool,
    expose_headers: Option<HeaderValue>,
    vary: bool,
}

fn joined(items: &[String]) -> HeaderValue {
    HeaderValue::from_str(&items.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

impl CorsRules {
    /// Compiles a (validated) CORS setting.
    pub(crate) fn of(cors: &Cors) -> Self {
        Self {
            any_origin: cors.allow_origins.iter().any(|o| o == "*"),
            origins: cors
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.to_ascii_lowercase().into_boxed_str())
                .collect(),
            methods: cors
                .allow_methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            allow_methods: joined(&cors.allow_methods),
            allow_headers: joined(&cors.allow_headers),
            expose_headers: (!cors.expose_headers.is_empty()).then(|| joined(&cors.expose_headers)),
            credentials: cors.allow_credentials,
            max_age: HeaderValue::from(cors.max_age_seconds),
        }
    }

    /// What the answers to a request from `origin` carry, when it is allowed.
    pub(crate) fn reply(&self, origin: &[u8]) -> Option<CorsReply> {
        let allowed = self
            .origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin));
        if !allowed && !self.any_origin {
            return None;
        }
        // With credentials, or a list of origins, the origin is echoed
        // (and caches told it varies); otherwise `*`.
        let echo = self.credentials || !self.any_origin;
        Some(CorsReply {
            origin: if echo {
                HeaderValue::from_bytes(origin).ok()?
            } else {
                HeaderValue::from_static("*")
            },
            credentials: self.credentials,
            expose_headers: self.expose_headers.clone(),
            vary: echo,
        })
    }

    /// The answer to a preflight from `origin` asking for `method`: 204
    /// with the methods, headers and lifetime allowed, or `None` when the
    /// origin or the method is not allowed.
    pub(crate) fn preflight(&self, origin: &[u8], method: &[u8]) -> Option<Response<String>> {
        // The origin's own headers (`Access-Control-Allow-Origin`, `Vary`)
        // come with every answer of the request's context.
        self.reply(origin)?;
        let method = Method::from_bytes(method.trim_ascii()).ok()?;
        if !self.methods.contains(&method) {
            return None;
        }
        let mut response = Response::new(String::new());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let h = response.headers_mut();
        h.insert("access-control-allow-methods", self.allow_methods.clone());
        if !self.allow_headers.is_empty() {
            h.insert("access-control-allow-headers", self.allow_headers.clone());
        }
        h.insert("access-control-max-age", self.max_age.clone());
        Some(response)
    }
}

impl CorsReply {
    /// The headers to set: the allowed origin, credentials, exposed headers.
    pub fn for_each(&self, mut emit: impl FnMut(&'static str, &HeaderValue)) {
        emit("access-control-allow-origin", &self.origin);
        if self.credentials {
            emit(
                "access-control-allow-credentials",
                &HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_headers {
            emit("access-control-expose-headers", expose);
        }
    }

    /// Whether the answer varies with `Origin` (a `Vary: Origin` to add,
    /// beside the backend's own `Vary`).
    pub fn varies(&self) -> bool {
        self.vary
    }
}

/// Checks a CORS setting: the field at fault and why.
pub(crate) fn check(cors: &Cors) -> Result<(), (String, String)> {
    if cors.allow_origins.is_empty() {
        return Err((
            "allowOrigins".into(),
            "name the origins allowed (e.g. \"https://app.example.com\"), or \"*\" for any".into(),
        ));
    }
    for (j, origin) in cors.allow_origins.iter().enumerate() {
        if origin == "*" {
            if cors.allow_credentials {
                return Err((
                    format!("allowOrigins[{j}]"),
                    "browsers refuse credentials with \"*\": name the origins, or set allowCredentials to false".into(),
                ));
            }
            continue;
        }
        let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '?', '#', '@', ' '])
                && rest.parse::<http::uri::Authority>().is_ok()
        });
        if !valid {
            return Err((
                format!("allowOrigins[{j}]"),
                format!("\"{origin}\" is not an origin: scheme, host and port only (e.g. \"https://app.example.com\")"),
            ));
        }
    }
    for (j, method) in cors.allow_methods.iter().enumerate() {
        if Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
            return Err((
                format!("allowMethods[{j}]"),
                format!("\"{method}\" is not a method"),
            ));
        }
    }
    for (field, names) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (j, name) in names.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((
                    format!("{field}[{j}]"),
                    format!("\"{name}\" is not a header name"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], credentials: bool) -> Cors {
        serde_json::from_value(serde_json::json!({
            "allowOrigins": origins,
            "allowCredentials": credentials,
        }))
        .expect("a CORS setting")
    }

    #[test]
    fn origins_are_echoed_or_starred() {
        let listed = CorsRules::of(&cors(&["https://app.example.com"], false));
        let r = listed.reply(b"https://APP.example.com").expect("allowed");
        assert_eq!(r.origin, "https://APP.example.com");
        assert!(r.varies());
        assert!(listed.reply(b"https://other.example").is_none());
        let any = CorsRules::of(&cors(&["*"], false));
        let r = any.reply(b"https://whoever.example").expect("allowed");
        assert_eq!(r.origin, "*");
        assert!(!r.varies());
    }

    #[test]
    fn a_preflight_answers_what_may_be_sent() {
        let rules = CorsRules::of(&cors(&["https://app.example.com"], true));
        let r = rules
            .preflight(b"https://app.example.com", b"PATCH")
            .expect("allowed");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH"));
        assert_eq!(r.headers()["access-control-max-age"], "600");
        assert!(rules
            .preflight(b"https://app.example.com", b"TRACE")
            .is_none());
        assert!(rules.preflight(b"https://evil.example", b"GET").is_none());
    }

    #[test]
    fn bad_settings_name_their_field() {
        assert_eq!(check(&cors(&[], false)).unwrap_err().0, "allowOrigins");
        assert_eq!(check(&cors(&["*"], true)).unwrap_err().0, "allowOrigins[0]");
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "https://",
        ] {
            assert_eq!(
                check(&cors(&[bad], false)).unwrap_err().0,
                "allowOrigins[0]",
                "{bad}"
            );
        }
        assert!(check(&cors(
            &["https://app.example.com:8443", "http://localhost:3000"],
            true
        ))
        .is_ok());
    }
}
