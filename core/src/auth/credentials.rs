//! Credentials found in a request, in the three forms of the contract.
//!
//! Looked for in this order: the `Komainu-Client-Id` / `Komainu-Client-Secret`
//! header pair, then `Authorization: Basic`, then `Authorization: Bearer`
//! (a JWT). A form that is present but malformed is an error
//! (`invalid_credentials`), never silently skipped.

use std::borrow::Cow;

use crate::gateway::HeaderLookup;
use crate::GatewayError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The header naming the client id.
pub const CLIENT_ID_HEADER: &str = "komainu-client-id";
/// The header carrying the client secret.
pub const CLIENT_SECRET_HEADER: &str = "komainu-client-secret";

/// Credentials presented by a caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// A client id and its secret in clear (header pair or Basic).
    Secret {
        /// The client id.
        client_id: Cow<'a, str>,
        /// The secret presented.
        secret: Cow<'a, [u8]>,
        /// `true` when they came in the `Authorization` header.
        in_authorization: bool,
    },
    /// A bearer JWT (HS256, signed with the client secret).
    Jwt(&'a str),
}

impl Credentials<'_> {
    /// Whether the credentials came in the `Authorization` header.
    pub fn in_authorization(&self) -> bool {
        match self {
            Credentials::Secret {
                in_authorization, ..
            } => *in_authorization,
            Credentials::Jwt(_) => true,
        }
    }

    /// The client id the credentials claim, unverified (a JWT's is read
    /// without checking its signature): for events about refused calls.
    /// At most 128 characters are kept.
    pub fn claimed_client_id(&self) -> Option<String> {
        let id = match self {
            Credentials::Secret { client_id, .. } => client_id.to_string(),
            Credentials::Jwt(token) => super::jwt::parse(token).ok()?.client_id,
        };
        Some(id.chars().take(128).collect())
    }
}

/// Finds the credentials of a request: `Ok(None)` when there are none.
pub fn extract<H: HeaderLookup + ?Sized>(
    headers: &H,
) -> Result<Option<Credentials<'_>>, GatewayError> {
    let id = headers.first(CLIENT_ID_HEADER);
    let secret = headers.first(CLIENT_SECRET_HEADER);
    match (id, secret) {
        (Some(id), Some(secret)) => {
            let client_id = visible_ascii(id)
                .ok_or_else(|| GatewayError::invalid("Komainu-Client-Id must be visible ASCII"))?;
            return Ok(Some(Credentials::Secret {
                client_id: Cow::Borrowed(client_id),
                secret: Cow::Borrowed(secret),
                in_authorization: false,
            }));
        }
        (Some(_), None) => {
            return Err(GatewayError::invalid(
                "Komainu-Client-Id was sent without Komainu-Client-Secret",
            ))
        }
        (None, Some(_)) => {
            return Err(GatewayError::invalid(
                "Komainu-Client-Secret was sent without Komainu-Client-Id",
            ))
        }
        (None, None) => {}
    }
    let Some(value) = headers.first("authorization") else {
        return Ok(None);
    };
    let value = visible_ascii(value)
        .ok_or_else(|| GatewayError::invalid("the Authorization header must be visible ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(rest).map(Some)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(GatewayError::invalid(
                "Authorization: Bearer carries no token",
            ));
        }
        Ok(Some(Credentials::Jwt(rest)))
    } else {
        Err(GatewayError::invalid(
            "unsupported Authorization scheme: use Basic (clientId:clientSecret) or Bearer (a JWT)",
        ))
    }
}

/// Whether an `Authorization` value uses a scheme the gateway reads as
/// credentials (Basic or Bearer, any case): such a header is never
/// forwarded, even on a public route.
pub fn is_gateway_scheme(value: &[u8]) -> bool {
    let scheme = value.split(|&b| b == b' ').next().unwrap_or(value);
    scheme.eq_ignore_ascii_case(b"basic") || scheme.eq_ignore_ascii_case(b"bearer")
}

/// The value as text when it is visible ASCII (tab and space allowed), as
/// `HeaderValue::to_str` judges it.
fn visible_ascii(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

fn basic(encoded: &str) -> Result<Credentials<'static>, GatewayError> {
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| GatewayError::invalid("Authorization: Basic is not valid base64"))?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or_else(|| {
        GatewayError::invalid(
            "Authorization: Basic must encode clientId:clientSecret (no colon found)",
        )
    })?;
    let client_id = std::str::from_utf8(&decoded[..colon])
        .map_err(|_| GatewayError::invalid("Authorization: Basic client id is not UTF-8"))?
        .to_owned();
    if client_id.is_empty() {
        return Err(GatewayError::invalid(
            "Authorization: Basic has an empty client id",
        ));
    }
    Ok(Credentials::Secret {
        client_id: Cow::Owned(client_id),
        secret: Cow::Owned(decoded[colon + 1..].to_vec()),
        in_authorization: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn code(h: &HeaderMap) -> &'static str {
        extract(h).unwrap_err().code()
    }

    #[test]
    fn header_pair() {
        let h = headers(&[("komainu-client-id", "app"), ("komainu-client-secret", "s")]);
        let c = extract(&h).unwrap().unwrap();
        assert_eq!(
            c,
            Credentials::Secret {
                client_id: "app".into(),
                secret: Cow::Borrowed(b"s"),
                in_authorization: false
            }
        );
        assert_eq!(
            code(&headers(&[("komainu-client-id", "app")])),
            "invalid_credentials"
        );
    }

    #[test]
    fn basic_forms() {
        let ok = headers(&[(
            "authorization",
            &format!("Basic {}", STANDARD.encode("app:se:cret")),
        )]);
        match extract(&ok).unwrap().unwrap() {
            Credentials::Secret {
                client_id, secret, ..
            } => {
                assert_eq!(client_id, "app");
                assert_eq!(&*secret, b"se:cret");
            }
            other => panic!("{other:?}"),
        }
        let no_colon = headers(&[(
            "authorization",
            &format!("Basic {}", STANDARD.encode("appsecret")),
        )]);
        assert_eq!(code(&no_colon), "invalid_credentials");
        assert_eq!(
            code(&headers(&[("authorization", "Basic !!!")])),
            "invalid_credentials"
        );
        assert_eq!(
            code(&headers(&[("authorization", "Digest x")])),
            "invalid_credentials"
        );
        assert_eq!(
            code(&headers(&[("authorization", "Bearer")])),
            "invalid_credentials"
        );
    }

    #[test]
    fn bearer_and_none() {
        let h = headers(&[("authorization", "bearer a.b.c")]);
        assert_eq!(extract(&h).unwrap(), Some(Credentials::Jwt("a.b.c")));
        assert_eq!(extract(&HeaderMap::new()).unwrap(), None);
    }
}
