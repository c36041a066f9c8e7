//! Admin API errors: status, JSON code, message, and the field at fault.

use http::StatusCode;
use serde::Serialize;

use crate::model::{FieldError, ValidationErrors};

/// An admin request refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable JSON `error` code.
    pub code: &'static str,
    /// What is wrong and what to do.
    pub message: String,
    /// Every field at fault (validation errors).
    pub errors: Vec<FieldError>,
    /// The methods the endpoint answers (405 carries them in `Allow`).
    pub allow: Option<&'static str>,
    /// When to try again, in seconds (429 carries it in `Retry-After`).
    pub retry_after_seconds: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    error: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            allow: None,
            retry_after_seconds: None,
        }
    }

    /// 429: too many failed logins; try again after `retry_after_ms`.
    pub fn too_many_attempts(retry_after_ms: u64, message: impl Into<String>) -> Self {
        Self {
            retry_after_seconds: Some(retry_after_ms.div_ceil(1000).max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        }
    }

    /// 502: a service the gateway needed (an identity provider) failed.
    pub fn bad_gateway(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, code, message)
    }

    /// 500: the gateway failed at something that should not fail.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// 501: what this deployment does not offer.
    pub fn not_offered(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_offered", message)
    }

    /// 401: no valid admin credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: understood, and refused (`code` says why).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404: no such entity or endpoint.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405: the endpoint exists, answering only the methods in `allow`
    /// (sent as the `Allow` header, RFC 9110 15.5.6).
    pub fn method_not_allowed(allow: &'static str, message: impl Into<String>) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                message,
            )
        }
    }

    /// 409: the id is taken, or the entity is still referenced.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413: the body is over the admin size limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the admin limit of {limit} bytes"),
        )
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(error: &serde_json::Error) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {error}"),
        )
    }

    /// 400: a request that makes no sense (bad query, id mismatch…).
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(ValidationErrors::one(field, message))
    }

    /// 400: fields at fault.
    pub fn invalid(errors: ValidationErrors) -> Self {
        let message = errors.to_string();
        Self {
            errors: errors.0,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// 503: the store cannot be reached; nothing was changed.
    pub fn store_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            message,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let body = Body {
            error: self.code,
            message: &self.message,
            field: self.errors.first().map(|e| e.field.as_str()),
            errors: &self.errors,
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}
