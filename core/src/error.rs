//! Every error the gateway answers with: its HTTP status, its JSON `error`
//! code, and whom it blames.
//!
//! Adapter errors (a refused connection, a Redis or Worker failure) are
//! converted into these at the adapter's edge; nothing platform-specific
//! reaches the core.

use std::borrow::Cow;

use http::StatusCode;

use crate::quota::Window;

/// Who caused an error: useful for logs, alerts and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent something wrong or is not allowed.
    Client,
    /// The backend failed or is unreachable.
    Backend,
    /// The gateway itself (its store) failed.
    Gateway,
}

impl Blame {
    /// The name in events (`client`, `backend`, `gateway`).
    pub fn name(self) -> &'static str {
        match self {
            Blame::Client => "client",
            Blame::Backend => "backend",
            Blame::Gateway => "gateway",
        }
    }
}

/// An error answered to the client instead of a proxied response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No enabled route matches host, path and method.
    #[error("no route matches {method} {path} on host \"{host}\"")]
    RouteNotFound {
        /// Request method.
        method: String,
        /// Request host, as received.
        host: String,
        /// Request path.
        path: String,
    },
    /// The request head is malformed or ambiguous (HTTP framing).
    #[error("{0}")]
    BadRequest(String),
    /// The request's headers are larger than the gateway accepts.
    #[error("the request headers take more than {limit} bytes")]
    HeadersTooLarge {
        /// The limit (`settings.maxRequestHeaderBytes`).
        limit: usize,
    },
    /// The route needs an API key and the request carries none.
    #[error("this route needs an API key: send Komainu-Client-Id and Komainu-Client-Secret headers, Authorization: Basic, or Authorization: Bearer <JWT>")]
    MissingCredentials,
    /// The credentials are malformed, unknown, wrong, disabled or expired.
    #[error("{0}")]
    InvalidCredentials(Cow<'static, str>),
    /// A private route, and no person's session (nor, where the route
    /// takes them, an API key).
    #[error("this route is for people: open {login} in a browser to log in (a tool needs an API key, where the route takes them)")]
    LoginRequired {
        /// The login path on this host.
        login: String,
    },
    /// The person may not call this route (none of its roles).
    #[error("{who} may not call route \"{route_id}\" (it needs one of the roles {roles})")]
    PersonForbidden {
        /// Who.
        who: String,
        /// The route refused.
        route_id: String,
        /// The roles it needs.
        roles: String,
    },
    /// The key may not call this route.
    #[error("API key \"{client_id}\" may not call route \"{route_id}\"")]
    Forbidden {
        /// The caller.
        client_id: String,
        /// The route refused.
        route_id: String,
    },
    /// A read-only key called with a method that writes.
    #[error(
        "API key \"{client_id}\" is read-only: {method} is refused (GET, HEAD and OPTIONS only)"
    )]
    ReadOnlyKey {
        /// The caller.
        client_id: String,
        /// The method refused.
        method: String,
    },
    /// A quota window is spent.
    #[error("{} quota of {limit} calls reached", window.adjective())]
    QuotaExceeded {
        /// The window that is spent (the one that resets last, when several are).
        window: Window,
        /// Its limit.
        limit: u64,
        /// Seconds until it resets.
        retry_after_s: u64,
    },
    /// The backend could not be reached or broke the exchange.
    #[error("the backend could not be reached: {0}")]
    BadGateway(String),
    /// The backend's answer failed a check the route makes (Otoroshi's
    /// state challenge): it does not reach the client.
    #[error("the backend's answer was refused: {0}")]
    BadAnswer(String),
    /// The route has no target able to take traffic.
    #[error("route \"{0}\" has no healthy target")]
    NoHealthyTarget(String),
    /// A timeout of the exchange with the backend ran out.
    #[error("{} within {timeout_ms} ms (timeouts.{})", timeout.what(), timeout.field())]
    GatewayTimeout {
        /// Which one.
        timeout: crate::gateway::Timeout,
        /// Its value.
        timeout_ms: u64,
    },
    /// The gateway's store failed and the policy is to refuse.
    #[error("the gateway's store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The client's address may not call the route (IP lists).
    #[error("the address {ip} may not call this route")]
    IpForbidden {
        /// The client's address, as the gateway determined it.
        ip: String,
    },
    /// The request body is larger than the route accepts.
    #[error("the request body is larger than the {limit} bytes this route accepts")]
    PayloadTooLarge {
        /// The limit (`maxBodyBytes`).
        limit: u64,
    },
    /// A CORS preflight from an origin, or for a method, the route does
    /// not allow.
    #[error("this route's CORS does not allow {what}")]
    CorsRefused {
        /// What is not allowed (`origin https://x`, `method PUT`).
        what: String,
    },
    /// The route (or the whole gateway) is in maintenance.
    #[error("{message}")]
    Maintenance {
        /// Why, for people (`settings.maintenance.message`).
        message: String,
        /// Seconds to wait (`Retry-After`).
        retry_after_s: u64,
    },
}

impl GatewayError {
    /// The HTTP status answered.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::MissingCredentials | Self::InvalidCredentials(_) | Self::LoginRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden { .. }
            | Self::ReadOnlyKey { .. }
            | Self::PersonForbidden { .. }
            | Self::IpForbidden { .. }
            | Self::CorsRefused { .. } => StatusCode::FORBIDDEN,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadGateway(_) | Self::BadAnswer(_) => StatusCode::BAD_GATEWAY,
            Self::NoHealthyTarget(_) | Self::StoreUnavailable(_) | Self::Maintenance { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::GatewayTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Every JSON `error` code, in the order of [`GatewayError::code_index`].
    pub const CODES: [&'static str; 16] = [
        "route_not_found",
        "bad_request",
        "headers_too_large",
        "missing_credentials",
        "invalid_credentials",
        "forbidden",
        "quota_exceeded",
        "bad_gateway",
        "no_healthy_target",
        "gateway_timeout",
        "store_unavailable",
        "maintenance",
        "ip_forbidden",
        "payload_too_large",
        "cors_refused",
        "login_required",
    ];

    /// The JSON `error` code (stable, part of the contract).
    pub fn code(&self) -> &'static str {
        Self::CODES[self.code_index()]
    }

    /// The position of [`GatewayError::code`] in [`GatewayError::CODES`].
    pub fn code_index(&self) -> usize {
        match self {
            Self::RouteNotFound { .. } => 0,
            Self::BadRequest(_) => 1,
            Self::HeadersTooLarge { .. } => 2,
            Self::MissingCredentials => 3,
            Self::InvalidCredentials(_) => 4,
            Self::Forbidden { .. } | Self::PersonForbidden { .. } | Self::ReadOnlyKey { .. } => 5,
            Self::QuotaExceeded { .. } => 6,
            Self::BadGateway(_) | Self::BadAnswer(_) => 7,
            Self::NoHealthyTarget(_) => 8,
            Self::GatewayTimeout { .. } => 9,
            Self::StoreUnavailable(_) => 10,
            Self::Maintenance { .. } => 11,
            Self::IpForbidden { .. } => 12,
            Self::PayloadTooLarge { .. } => 13,
            Self::CorsRefused { .. } => 14,
            Self::LoginRequired { .. } => 15,
        }
    }

    /// Whom the error blames.
    pub fn blame(&self) -> Blame {
        match self {
            Self::BadGateway(_)
            | Self::BadAnswer(_)
            | Self::NoHealthyTarget(_)
            | Self::GatewayTimeout { .. } => Blame::Backend,
            Self::StoreUnavailable(_) | Self::Maintenance { .. } => Blame::Gateway,
            _ => Blame::Client,
        }
    }

    /// An [`GatewayError::InvalidCredentials`] with a fixed message.
    pub fn invalid(message: &'static str) -> Self {
        Self::InvalidCredentials(Cow::Borrowed(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_message_matches_the_contract() {
        let e = GatewayError::QuotaExceeded {
            window: Window::Day,
            limit: 10_000,
            retry_after_s: 5,
        };
        assert_eq!(e.to_string(), "daily quota of 10000 calls reached");
        assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code(), "quota_exceeded");
    }
}
