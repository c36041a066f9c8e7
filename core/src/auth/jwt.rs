//! JSON Web Tokens: verifying a caller's bearer token (HS256 with its
//! secret, or ES256, EdDSA, RS256 with a public key it registered, see
//! [`super::jwk`]), signing the gateway's claim (HS256).
//!
//! A token whose header names any other algorithm, `none` included, is
//! refused before anything else is read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::jwk::{JwtAlg, VerifyingKey};
use crate::secret::SecretHash;

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded.
pub const HS256_HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// A token whose structure is valid but whose signature is not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UnverifiedJwt<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    /// The signature algorithm its header names.
    pub alg: JwtAlg,
    /// The key id its header names, if any.
    pub kid: Option<String>,
    /// `iss`, or `sub` when `iss` is absent: the client id.
    pub client_id: String,
    /// `exp`, in seconds since the epoch.
    pub expires_at_s: f64,
    /// `nbf`, in seconds since the epoch, if present.
    pub not_before_s: Option<f64>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    #[serde(rename = "clientId")]
    client_id_camel: Option<String>,
    client_id: Option<String>,
    cid: Option<String>,
}

/// Otoroshi's leeway on a client JWT's times, in seconds.
const OTOROSHI_LEEWAY_S: f64 = 10.0;

/// Reads a compact JWS; the message says what is wrong with it.
pub fn parse(token: &str) -> Result<UnverifiedJwt<'_>, &'static str> {
    parse_as(token, false)
}

/// Reads a compact JWS as Otoroshi does: the client id in `clientId`,
/// `client_id`, `cid` or `iss` (then `sub`), `exp` optional, 10 s of
/// leeway on `exp` and `nbf`.
pub fn parse_otoroshi(token: &str) -> Result<UnverifiedJwt<'_>, &'static str> {
    parse_as(token, true)
}

fn parse_as(token: &str, otoroshi: bool) -> Result<UnverifiedJwt<'_>, &'static str> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the bearer token is not a JWT (header.payload.signature)");
    };
    let header: Header = decode_json(header).ok_or("the JWT header is not base64url JSON")?;
    let alg = JwtAlg::from_name(&header.alg)
        .ok_or("the JWT must be signed with HS256 (HS384, HS512 for keys that list them), ES256, EdDSA or RS256")?;
    let claims: Claims = decode_json(payload).ok_or("the JWT payload is not base64url JSON")?;
    let (client_id, expires_at_s, not_before_s) = if otoroshi {
        let id = claims
            .client_id_camel
            .or(claims.client_id)
            .or(claims.cid)
            .or(claims.iss)
            .or(claims.sub)
            .ok_or("the JWT needs clientId, client_id, cid or iss set to the client id")?;
        (
            id,
            claims.exp.map_or(f64::INFINITY, |e| e + OTOROSHI_LEEWAY_S),
            claims.nbf.map(|n| n - OTOROSHI_LEEWAY_S),
        )
    } else {
        let id = claims
            .iss
            .or(claims.sub)
            .ok_or("the JWT needs iss (or sub) set to the client id")?;
        (
            id,
            claims.exp.ok_or("the JWT needs an exp claim")?,
            claims.nbf,
        )
    };
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "the JWT signature is not base64url")?;
    Ok(UnverifiedJwt {
        signing_input: &token[..header_len(token)],
        signature,
        alg,
        kid: header.kid,
        client_id,
        expires_at_s,
        not_before_s,
    })
}

impl UnverifiedJwt<'_> {
    /// Whether the token is an HS256 token signed with the secret behind
    /// `key` (constant-time comparison).
    pub fn signed_by(&self, key: &SecretHash) -> bool {
        self.alg == JwtAlg::Hs256 && key.verify_mac(self.signing_input.as_bytes(), &self.signature)
    }

    /// Whether the token is an HS384 or HS512 token signed with the secret
    /// behind `key` (constant-time comparison).
    pub fn signed_by_wide(&self, key: &crate::secret::WideHash) -> bool {
        match self.alg {
            JwtAlg::Hs384 => key.verify(false, self.signing_input.as_bytes(), &self.signature),
            JwtAlg::Hs512 => key.verify(true, self.signing_input.as_bytes(), &self.signature),
            _ => false,
        }
    }

    /// Whether the token is signed by the private key of `key` (its
    /// algorithm, and its `kid` when the token names one).
    pub fn signed_by_public(&self, key: &VerifyingKey) -> bool {
        self.alg == key.alg()
            && self
                .kid
                .as_deref()
                .is_none_or(|kid| key.kid.as_deref() == Some(kid))
            && key.verify(self.signing_input.as_bytes(), &self.signature)
    }

    /// Whether the token is valid at `now_ms` (`nbf ≤ now < exp`).
    pub fn is_current(&self, now_ms: u64) -> bool {
        let now_s = now_ms as f64 / 1000.0;
        now_s < self.expires_at_s && self.not_before_s.is_none_or(|nbf| nbf <= now_s)
    }
}

/// Signs `payload_json` with HS256: returns the compact token.
pub fn sign(key: &SecretHash, payload_json: impl AsRef<[u8]>) -> String {
    let payload_json = payload_json.as_ref();
    let mut token = String::with_capacity(HS256_HEADER.len() + payload_json.len() * 4 / 3 + 48);
    token.push_str(HS256_HEADER);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload_json, &mut token);
    let tag = key.mac(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

fn header_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let tag = SecretHash::from_secret(key).mac(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    #[test]
    fn verifies_signature_and_expiry() {
        let t = token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"iss":"app","exp":2000}"#,
            b"secret",
        );
        let jwt = parse(&t).unwrap();
        assert_eq!(jwt.client_id, "app");
        assert!(jwt.signed_by(&SecretHash::from_secret(b"secret")));
        assert!(!jwt.signed_by(&SecretHash::from_secret(b"other")));
        assert!(jwt.is_current(1_999_999));
        assert!(!jwt.is_current(2_000_000));
    }

    #[test]
    fn sub_names_the_client_when_iss_is_absent() {
        let t = token(
            r#"{"alg":"HS256"}"#,
            r#"{"sub":"app","exp":1,"nbf":0.5}"#,
            b"k",
        );
        let jwt = parse(&t).unwrap();
        assert_eq!(jwt.client_id, "app");
        assert!(!jwt.is_current(0));
    }

    #[test]
    fn refuses_alg_none_and_other_algorithms() {
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"iss":"app","exp":9999999999}"#)
        );
        assert_eq!(
            parse(&none).unwrap_err(),
            "the JWT must be signed with HS256 (HS384, HS512 for keys that list them), ES256, EdDSA or RS256"
        );
        for alg in ["HS1", "PS256", "none", "hs256"] {
            let other = token(
                &format!(r#"{{"alg":"{alg}"}}"#),
                r#"{"iss":"app","exp":1}"#,
                b"k",
            );
            assert!(parse(&other).is_err(), "{alg}");
        }
        // HS384 is read (keys may list it), never checked as HS256.
        let hs384 = token(r#"{"alg":"HS384"}"#, r#"{"iss":"app","exp":1}"#, b"k");
        assert!(!parse(&hs384)
            .unwrap()
            .signed_by(&SecretHash::from_secret(b"k")));
        // An RS256 token is never taken for an HMAC one (algorithm confusion).
        let rs = token(r#"{"alg":"RS256"}"#, r#"{"iss":"app","exp":1}"#, b"k");
        assert!(!parse(&rs)
            .unwrap()
            .signed_by(&SecretHash::from_secret(b"k")));
    }

    #[test]
    fn refuses_malformed_tokens() {
        assert!(parse("abc").is_err());
        assert!(parse("a.b.c.d").is_err());
        let no_exp = token(r#"{"alg":"HS256"}"#, r#"{"iss":"app"}"#, b"k");
        assert_eq!(parse(&no_exp).unwrap_err(), "the JWT needs an exp claim");
    }

    #[test]
    fn sign_produces_a_verifiable_token() {
        let key = SecretHash::from_secret(b"gateway");
        let t = sign(&key, r#"{"iss":"komainu","exp":10}"#);
        let jwt = parse(&t).unwrap();
        assert!(jwt.signed_by(&key));
        assert_eq!(jwt.client_id, "komainu");
    }
}
