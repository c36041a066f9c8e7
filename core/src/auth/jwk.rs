//! Public keys a client registers (JWK, RFC 7517) to call with JWTs signed
//! by its private key: ES256 (P-256), EdDSA (Ed25519) and RS256 (RSA of
//! 2048 bits or more). Nothing secret is stored for such a caller.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _; // the one `signature` trait all three keys implement
use serde::{Deserialize, Serialize};

/// A signature algorithm of a caller's JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// HMAC-SHA256 with the client secret.
    Hs256,
    /// HMAC-SHA384 with the client secret (keys that list it).
    Hs384,
    /// HMAC-SHA512 with the client secret (keys that list it).
    Hs512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl JwtAlg {
    /// The algorithm named by a JWT header's `alg`; `none` and anything
    /// else are refused.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "HS256" => Some(Self::Hs256),
            "HS384" => Some(Self::Hs384),
            "HS512" => Some(Self::Hs512),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }
}

/// A public key as registered on an API key (`jwks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    /// Key type: `EC` (P-256), `OKP` (Ed25519) or `RSA`.
    pub kty: String,
    /// Curve: `P-256` for `EC`, `Ed25519` for `OKP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public coordinate (`EC`, `OKP`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Public coordinate (`EC`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Modulus (`RSA`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Exponent (`RSA`), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id: a token naming it in its header (`kid`) is checked with it only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm (`ES256`, `EdDSA`, `RS256`); implied by the key type when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; only `sig` makes sense here.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// A private key's secret part: refused, with a message saying so.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(skip))]
    pub d: Option<serde_json::Value>,
}

/// A registered public key, ready to check signatures.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    /// The key id, when registered with one.
    pub kid: Option<String>,
    key: Key,
}

#[derive(Debug, Clone)]
enum Key {
    Es256(p256::ecdsa::VerifyingKey),
    EdDsa(ed25519_dalek::VerifyingKey),
    Rs256(rsa::pkcs1v15::VerifyingKey<sha2::Sha256>),
}

/// Fewest bits in a registered RSA modulus.
const MIN_RSA_BITS: usize = 2048;

impl VerifyingKey {
    /// Reads a registered JWK; the message says what is wrong with it.
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, String> {
        if jwk.d.is_some() {
            return Err(
                "this is a private key (it has \"d\"): register the public key only, and keep the private one with the client"
                    .into(),
            );
        }
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err("\"use\" must be \"sig\" (a key that signs tokens)".into());
        }
        let field = |name: &str, value: &Option<String>| -> Result<Vec<u8>, String> {
            let text = value
                .as_deref()
                .ok_or_else(|| format!("\"{name}\" is missing"))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| format!("\"{name}\" is not base64url"))
        };
        let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                let (x, y) = (field("x", &jwk.x)?, field("y", &jwk.y)?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("\"x\" and \"y\" of a P-256 key are 32 bytes each".into());
                }
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                Key::Es256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                        .map_err(|_| "the point (x, y) is not on the P-256 curve")?,
                )
            }
            ("OKP", Some("Ed25519")) => {
                let x: [u8; 32] = field("x", &jwk.x)?
                    .try_into()
                    .map_err(|_| "\"x\" of an Ed25519 key is 32 bytes")?;
                Key::EdDsa(
                    ed25519_dalek::VerifyingKey::from_bytes(&x)
                        .map_err(|_| "\"x\" is not an Ed25519 public key")?,
                )
            }
            ("RSA", _) => {
                let n = rsa::BigUint::from_bytes_be(&field("n", &jwk.n)?);
                let e = rsa::BigUint::from_bytes_be(&field("e", &jwk.e)?);
                if n.bits() < MIN_RSA_BITS {
                    return Err(format!(
                        "an RSA key has at least {MIN_RSA_BITS} bits ({} given)",
                        n.bits()
                    ));
                }
                let public = rsa::RsaPublicKey::new(n, e)
                    .map_err(|e| format!("not a usable RSA public key: {e}"))?;
                Key::Rs256(rsa::pkcs1v15::VerifyingKey::new(public))
            }
            _ => {
                return Err(
                    "supported keys: {\"kty\":\"EC\",\"crv\":\"P-256\"} (ES256), {\"kty\":\"OKP\",\"crv\":\"Ed25519\"} (EdDSA), {\"kty\":\"RSA\"} (RS256)"
                        .into(),
                )
            }
        };
        let this = Self {
            kid: jwk.kid.clone(),
            key,
        };
        if let Some(alg) = jwk.alg.as_deref() {
            if JwtAlg::from_name(alg) != Some(this.alg()) {
                return Err(format!(
                    "\"alg\" {alg:?} does not go with this key type (it signs {})",
                    this.alg_name()
                ));
            }
        }
        Ok(this)
    }

    /// The algorithm this key checks.
    pub fn alg(&self) -> JwtAlg {
        match self.key {
            Key::Es256(_) => JwtAlg::Es256,
            Key::EdDsa(_) => JwtAlg::EdDsa,
            Key::Rs256(_) => JwtAlg::Rs256,
        }
    }

    fn alg_name(&self) -> &'static str {
        match self.key {
            Key::Es256(_) => "ES256",
            Key::EdDsa(_) => "EdDSA",
            Key::Rs256(_) => "RS256",
        }
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Key::Es256(k) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Key::EdDsa(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            Key::Rs256(k) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}
