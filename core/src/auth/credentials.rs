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
    /// A JWT as Otoroshi reads it (Otoroshi profile): the client id in
    /// `clientId`, `client_id`, `cid` or `iss`, `exp` optional.
    OtoroshiJwt(&'a str),
    /// The client id alone (Otoroshi profile, `x-api-key`), for keys that
    /// allow it.
    ClientId(Cow<'a, str>),
    /// Otoroshi's `otoapk_<clientId>_<hex HMAC-SHA256(secret, "otoapk_<clientId>")>` bearer.
    OtoBearer {
        /// The client id it names.
        client_id: String,
        /// The HMAC it carries.
        mac: Vec<u8>,
        /// `true` when it came in the `Authorization` header.
        in_authorization: bool,
    },
}

impl Credentials<'_> {
    /// Whether the credentials came in the `Authorization` header.
    pub fn in_authorization(&self) -> bool {
        match self {
            Credentials::Secret {
                in_authorization, ..
            } => *in_authorization,
            Credentials::Jwt(_) | Credentials::OtoroshiJwt(_) => true,
            Credentials::ClientId(_) => false,
            Credentials::OtoBearer {
                in_authorization, ..
            } => *in_authorization,
        }
    }

    /// The client id the credentials claim, unverified (a JWT's is read
    /// without checking its signature): for events about refused calls.
    /// At most 128 characters are kept.
    pub fn claimed_client_id(&self) -> Option<String> {
        let id = match self {
            Credentials::Secret { client_id, .. } => client_id.to_string(),
            Credentials::Jwt(token) => super::jwt::parse(token).ok()?.client_id,
            Credentials::OtoroshiJwt(token) => super::jwt::parse_otoroshi(token).ok()?.client_id,
            Credentials::ClientId(id) => id.to_string(),
            Credentials::OtoBearer { client_id, .. } => client_id.clone(),
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

/// Finds the credentials of a request on a route with the Otoroshi
/// profile, in Otoroshi's order: `x-api-key` (the client id alone, or an
/// `otoapk_` bearer), the client id / secret header pair (`id_header`,
/// `secret_header`: Otoroshi's names or the route's), a JWT
/// (`Otoroshi-Token`, or `Authorization: Bearer`), Basic
/// (`Otoroshi-Authorization`, or `Authorization`), an `otoapk_` bearer;
/// then the gateway's own forms.
pub fn extract_otoroshi<'h, H: HeaderLookup + ?Sized>(
    headers: &'h H,
    id_header: &str,
    secret_header: &str,
) -> Result<Option<Credentials<'h>>, GatewayError> {
    let text = |name: &str, v: &'h [u8]| {
        visible_ascii(v).map(str::trim).ok_or_else(|| {
            GatewayError::InvalidCredentials(Cow::Owned(format!(
                "the {name} header must be visible ASCII"
            )))
        })
    };
    if let Some(v) = headers.first("x-api-key") {
        let v = text("x-api-key", v)?;
        if let Some(bearer) = oto_bearer(v, false) {
            return Ok(Some(bearer));
        }
        if v.is_empty() {
            return Err(GatewayError::invalid("the x-api-key header is empty"));
        }
        return Ok(Some(Credentials::ClientId(Cow::Borrowed(v))));
    }
    if let Some(id) = headers.first(id_header) {
        let id = text(id_header, id)?;
        if let Some(secret) = headers.first(secret_header) {
            return Ok(Some(Credentials::Secret {
                client_id: Cow::Borrowed(id),
                secret: Cow::Borrowed(secret),
                in_authorization: false,
            }));
        }
        return Err(GatewayError::InvalidCredentials(Cow::Owned(format!(
            "{id_header} was sent without {secret_header}"
        ))));
    }
    let authorization = headers
        .first("authorization")
        .map(|v| text("Authorization", v))
        .transpose()?;
    let bearer = |v: &'h str| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    };
    let token = headers
        .first("otoroshi-token")
        .map(|v| text("Otoroshi-Token", v));
    let (token, token_in_authorization) = match token {
        Some(t) => (Some(t?.trim_start_matches("Bearer ").trim()), false),
        None => (authorization.and_then(bearer), true),
    };
    if let Some(token) = token {
        if let Some(b) = oto_bearer(token, token_in_authorization) {
            return Ok(Some(b));
        }
        if token.split('.').count() == 3 {
            return Ok(Some(Credentials::OtoroshiJwt(token)));
        }
        return Err(GatewayError::invalid(
            "the bearer token is neither a JWT nor an otoapk_ bearer",
        ));
    }
    if let Some(v) = headers.first("otoroshi-authorization") {
        let v = text("Otoroshi-Authorization", v)?;
        let encoded = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
            .unwrap_or(v);
        return basic(encoded.trim()).map(|c| match c {
            Credentials::Secret {
                client_id, secret, ..
            } => Some(Credentials::Secret {
                client_id,
                secret,
                in_authorization: false,
            }),
            other => Some(other),
        });
    }
    extract(headers)
}

/// An `otoapk_<clientId>_<hex>` bearer, if `value` is one.
fn oto_bearer(value: &str, in_authorization: bool) -> Option<Credentials<'static>> {
    let rest = value.strip_prefix("otoapk_")?;
    let (client_id, hex) = rest.rsplit_once('_')?;
    let mac = decode_hex(hex)?;
    Some(Credentials::OtoBearer {
        client_id: client_id.to_owned(),
        mac,
        in_authorization,
    })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
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
