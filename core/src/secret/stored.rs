//! What is stored of a client secret, so that a dump (an export, a file
//! store, a Redis dump, a sync stream) lets nobody call as the key.
//!
//! Two things are kept, never the secret itself nor its HMAC key:
//!
//! - a **verifier** (`clientSecretHash`, `sha256:…`): SHA-256 over a
//!   domain tag, the client id and the secret's HMAC key. One-way: it
//!   checks a secret presented in clear (header pair, Basic) and is useless
//!   for anything else, HS256 signing included;
//! - the secret's HMAC key **sealed** (`clientSecretSealed`,
//!   `sealed-v1:{key id}:…`) with the deployment key, which is kept outside
//!   the store (`KOMAINU_SECRET_KEY`, or a key file natively): what HS256
//!   JWT verification needs, unusable without that key. XChaCha20-Poly1305,
//!   the client id as associated data (a sealed value cannot be moved to
//!   another key), and a nonce derived from the key and the plaintext, so
//!   that sealing the same secret twice gives the same text (documents and
//!   their diffs stay stable).
//!
//! Documents written before this scheme store the HMAC key itself
//! (`hmac-sha256:…`, [`super::SecretHash`]): still read, and converted to
//! the two forms above the next time the configuration is saved.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::wide::WIDE_BYTES;
use super::{SecretHash, WideHash};

/// The prefix of a stored verifier.
pub const VERIFIER_PREFIX: &str = "sha256:";
/// The prefix of a sealed HMAC key.
pub const SEALED_PREFIX: &str = "sealed-v1:";
/// What a store's claim secret is sealed for ([`SealingKey::seal_bytes`]).
pub const CLAIM_SECRET_CONTEXT: &str = "komainu:claim-secret";
/// Fewest characters in a deployment key.
pub const MIN_DEPLOYMENT_KEY_CHARS: usize = 32;

const VERIFIER_DOMAIN: &[u8] = b"komainu/secret-verifier/v1\0";
const SEAL_DOMAIN: &[u8] = b"komainu/sealed-secret/v1\0";

/// The one-way form of a secret that checks it in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier([u8; 32]);

/// Why a verifier text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a secret hash is \"{VERIFIER_PREFIX}\" followed by 43 base64url characters (or, from older documents, \"hmac-sha256:\" and 86)")]
pub struct InvalidVerifier;

impl Verifier {
    /// The verifier of the secret whose HMAC key is `key`, for `client_id`.
    pub fn new(client_id: &str, key: &SecretHash) -> Self {
        let mut h = Sha256::new();
        h.update(VERIFIER_DOMAIN);
        h.update((client_id.len() as u64).to_be_bytes());
        h.update(client_id.as_bytes());
        h.update(key.to_bytes());
        Self(h.finalize().into())
    }

    /// Reads a stored verifier (`sha256:…`).
    pub fn parse(text: &str) -> Result<Self, InvalidVerifier> {
        let encoded = text.strip_prefix(VERIFIER_PREFIX).ok_or(InvalidVerifier)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| InvalidVerifier)?;
        bytes.try_into().map(Self).map_err(|_| InvalidVerifier)
    }

    /// The stored text form.
    pub fn to_text(&self) -> String {
        format!("{VERIFIER_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// Whether `secret` is the secret of `client_id` this verifier was made
    /// from, compared in constant time.
    pub fn verify(&self, client_id: &str, secret: &[u8]) -> bool {
        if secret.contains(&0) {
            return false;
        }
        let other = Self::new(client_id, &SecretHash::from_secret(secret));
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(…)")
    }
}

/// The deployment key: seals the HMAC keys HS256 verification needs. Kept
/// outside the store; deployments that share documents share it.
pub struct SealingKey {
    cipher: XChaCha20Poly1305,
    nonce_key: SecretHash,
    derive_key: SecretHash,
    id: String,
}

/// Why a deployment key or a sealed value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The deployment key given is too short.
    #[error("a deployment key (KOMAINU_SECRET_KEY) has at least {MIN_DEPLOYMENT_KEY_CHARS} characters; make one with: openssl rand -base64 32")]
    KeyTooShort,
    /// Not `sealed-v1:{key id}:{base64url}`.
    #[error("a sealed secret is \"{SEALED_PREFIX}\", a key id, \":\" and base64url text")]
    Malformed,
    /// Sealed with another deployment key.
    #[error("sealed with deployment key \"{found}\", but this deployment's key is \"{ours}\": give both deployments the same KOMAINU_SECRET_KEY (natively, the key file beside the data file holds it), or set this key's secret again")]
    OtherKey {
        /// The key id in the sealed value.
        found: String,
        /// This deployment's key id.
        ours: String,
    },
    /// This deployment has no deployment key.
    #[error("sealed with deployment key \"{found}\", but this deployment has none: set KOMAINU_SECRET_KEY to the key of the deployment the document comes from, or set this key's secret again")]
    NoKey {
        /// The key id in the sealed value.
        found: String,
    },
    /// The right key id, but the value does not open: altered or damaged.
    #[error("the sealed secret does not open with this deployment's key: it was altered or damaged; set this key's secret again")]
    Tampered,
}

impl SealingKey {
    /// The deployment key from its text (at least 32 characters, e.g. 32
    /// random bytes in base64).
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        if text.chars().count() < MIN_DEPLOYMENT_KEY_CHARS {
            return Err(SealError::KeyTooShort);
        }
        let master = SecretHash::from_secret(
            &Sha256::new()
                .chain_update(b"komainu/deployment-key/v1\0")
                .chain_update(text.as_bytes())
                .finalize(),
        );
        let cipher = XChaCha20Poly1305::new(&master.mac(b"seal").into());
        let nonce_key = SecretHash::from_secret(&master.mac(b"nonce"));
        let id = URL_SAFE_NO_PAD.encode(&master.mac(b"id")[..6]);
        let derive_key = SecretHash::from_secret(&master.mac(b"derive"));
        Ok(Self {
            cipher,
            nonce_key,
            derive_key,
            id,
        })
    }

    /// A short public id of the key (8 characters), named in sealed
    /// values and in errors, so that a mismatch is told, not guessed.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A key for another purpose (`purpose` names it: `admin-session`…),
    /// derived from this one: every instance given the same deployment key
    /// derives the same, and nothing derived opens a sealed value.
    pub fn derive(&self, purpose: &str) -> SecretHash {
        SecretHash::from_secret(&self.derive_key.mac(purpose.as_bytes()))
    }

    /// Seals the HMAC key of `client_id`'s secret.
    pub fn seal(&self, client_id: &str, key: &SecretHash) -> String {
        self.seal_bytes(client_id, &key.to_bytes())
    }

    /// Seals the HMAC keys of `client_id`'s secret: HS256's, and HS384's
    /// and HS512's ([`WideHash`]).
    pub fn seal_wide(&self, client_id: &str, key: &SecretHash, wide: &WideHash) -> String {
        let mut plain = key.to_bytes().to_vec();
        plain.extend_from_slice(&wide.to_bytes());
        self.seal_bytes(client_id, &plain)
    }

    /// Opens a sealed HMAC key of `client_id`'s secret.
    pub fn open(&self, client_id: &str, text: &str) -> Result<SecretHash, SealError> {
        self.open_wide(client_id, text).map(|(key, _)| key)
    }

    /// Opens a sealed HMAC key of `client_id`'s secret, and its HS384 and
    /// HS512 keys when they were sealed with it.
    pub fn open_wide(
        &self,
        client_id: &str,
        text: &str,
    ) -> Result<(SecretHash, Option<WideHash>), SealError> {
        split_states(&self.open_bytes(client_id, text)?)
    }

    /// Seals `plain`, bound to `context` (a client id, or what the value
    /// is for): it opens only with this key and the same context.
    pub fn seal_bytes(&self, context: &str, plain: &[u8]) -> String {
        let mut nonce_input = Vec::with_capacity(context.len() + plain.len() + 8);
        nonce_input.extend_from_slice(&(context.len() as u64).to_be_bytes());
        nonce_input.extend_from_slice(context.as_bytes());
        nonce_input.extend_from_slice(plain);
        let tag = self.nonce_key.mac(&nonce_input);
        let nonce = XNonce::from_slice(&tag[..24]);
        let aad = aad(context);
        // Encrypting in memory fails only past the cipher's length limits
        // (256 GiB), far beyond any secret.
        let sealed = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut bytes = tag[..24].to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}:{}",
            self.id,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Opens what [`SealingKey::seal_bytes`] sealed for `context`.
    pub fn open_bytes(&self, context: &str, text: &str) -> Result<Vec<u8>, SealError> {
        let (id, bytes) = split_sealed(text)?;
        if id != self.id {
            return Err(SealError::OtherKey {
                found: id.to_owned(),
                ours: self.id.clone(),
            });
        }
        let (nonce, sealed) = bytes.split_at(24);
        let aad = aad(context);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Tampered)
    }
}

/// Whether a stored value is in the sealed form.
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealingKey({})", self.id)
    }
}

/// Converts one secret to its stored forms, in place: a clear secret, or
/// the legacy `hmac-sha256:` form in `hash`, becomes a verifier in `hash`
/// and, with a deployment key, the sealed HMAC key in `sealed` (without
/// one, `sealed` is emptied: HS256 cannot be checked for that secret).
/// Forms already stored are left alone. Whether anything changed.
/// `wide`: seal the HS384 and HS512 keys too ([`WideHash`]), which only a
/// clear secret gives.
pub fn seal_in_place(
    client_id: &str,
    clear: Option<&mut Option<String>>,
    hash: &mut Option<String>,
    sealed: &mut Option<String>,
    key: Option<&SealingKey>,
    wide: bool,
) -> bool {
    let (state, wide) = match (clear.and_then(Option::take), hash.as_deref()) {
        (Some(secret), _) => (
            SecretHash::from_secret(secret.as_bytes()),
            wide.then(|| WideHash::from_secret(secret.as_bytes())),
        ),
        (None, Some(text)) => match SecretHash::parse(text) {
            Ok(legacy) => (legacy, None),
            Err(_) => return false,
        },
        (None, None) => return false,
    };
    *hash = Some(Verifier::new(client_id, &state).to_text());
    *sealed = key.map(|k| match &wide {
        Some(wide) => k.seal_wide(client_id, &state, wide),
        None => k.seal(client_id, &state),
    });
    true
}

/// The HS256 key state, and the HS384/HS512 ones when present, of an
/// opened sealed value.
fn split_states(plain: &[u8]) -> Result<(SecretHash, Option<WideHash>), SealError> {
    match plain.len() {
        64 => Ok((
            SecretHash::from_bytes(plain).ok_or(SealError::Tampered)?,
            None,
        )),
        n if n == 64 + WIDE_BYTES => Ok((
            SecretHash::from_bytes(&plain[..64]).ok_or(SealError::Tampered)?,
            WideHash::from_bytes(&plain[64..]),
        )),
        _ => Err(SealError::Tampered),
    }
}

/// Opens a sealed value with the deployment key, if there is one.
pub fn open_sealed(
    key: Option<&SealingKey>,
    client_id: &str,
    text: &str,
) -> Result<SecretHash, SealError> {
    open_sealed_wide(key, client_id, text).map(|(state, _)| state)
}

/// [`open_sealed`], with the HS384/HS512 keys when they were sealed too.
pub fn open_sealed_wide(
    key: Option<&SealingKey>,
    client_id: &str,
    text: &str,
) -> Result<(SecretHash, Option<WideHash>), SealError> {
    split_states(&open_sealed_bytes(key, client_id, text)?)
}

/// Opens any sealed value bound to `context` with the deployment key, if
/// this deployment has one.
pub fn open_sealed_bytes(
    key: Option<&SealingKey>,
    context: &str,
    text: &str,
) -> Result<Vec<u8>, SealError> {
    match key {
        Some(key) => key.open_bytes(context, text),
        None => Err(SealError::NoKey {
            found: split_sealed(text)?.0.to_owned(),
        }),
    }
}

/// Checks the syntax of a sealed value (no key needed).
pub fn check_sealed_syntax(text: &str) -> Result<(), SealError> {
    split_sealed(text).map(|_| ())
}

fn split_sealed(text: &str) -> Result<(&str, Vec<u8>), SealError> {
    let rest = text
        .strip_prefix(SEALED_PREFIX)
        .ok_or(SealError::Malformed)?;
    let (id, encoded) = rest.split_once(':').ok_or(SealError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| SealError::Malformed)?;
    if id.is_empty() || bytes.len() < 24 + 16 {
        return Err(SealError::Malformed);
    }
    Ok((id, bytes))
}

fn aad(client_id: &str) -> Vec<u8> {
    let mut aad = SEAL_DOMAIN.to_vec();
    aad.extend_from_slice(client_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "a-deployment-key-of-at-least-32-characters";

    #[test]
    fn a_verifier_checks_the_secret_and_nothing_else() {
        let key = SecretHash::from_secret(b"the-secret-0123456789");
        let v = Verifier::new("app", &key);
        assert!(v.verify("app", b"the-secret-0123456789"));
        assert!(!v.verify("app", b"the-secret-012345678"));
        assert!(!v.verify("other", b"the-secret-0123456789"));
        assert!(!v.verify("app", b"the-secret-0123456789\0"));
        let text = v.to_text();
        assert!(text.starts_with(VERIFIER_PREFIX));
        assert_eq!(Verifier::parse(&text).unwrap(), v);
        // The verifier is not the HMAC key, in any encoding.
        assert!(!text.contains(&URL_SAFE_NO_PAD.encode(key.to_bytes())[..20]));
        assert_eq!(Verifier::parse("sha256:abc"), Err(InvalidVerifier));
    }

    #[test]
    fn sealing_round_trips_and_is_deterministic() {
        let deployment = SealingKey::from_text(DEPLOYMENT).unwrap();
        let key = SecretHash::from_secret(b"the-secret-0123456789");
        let sealed = deployment.seal("app", &key);
        assert_eq!(sealed, deployment.seal("app", &key));
        assert!(sealed.starts_with(&format!("{SEALED_PREFIX}{}:", deployment.id())));
        assert_eq!(deployment.open("app", &sealed).unwrap(), key);
        assert_ne!(deployment.seal("other", &key), sealed);
    }

    #[test]
    fn a_sealed_key_opens_only_for_its_client_with_its_deployment_key() {
        let ours = SealingKey::from_text(DEPLOYMENT).unwrap();
        let theirs = SealingKey::from_text("another-deployment-key-of-32-chars!!").unwrap();
        let key = SecretHash::from_secret(b"the-secret-0123456789");
        let sealed = ours.seal("app", &key);
        assert!(matches!(
            theirs.open("app", &sealed),
            Err(SealError::OtherKey { .. })
        ));
        assert_eq!(ours.open("intruder", &sealed), Err(SealError::Tampered));
        assert!(matches!(
            open_sealed(None, "app", &sealed),
            Err(SealError::NoKey { .. })
        ));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(ours.open("app", &altered), Err(SealError::Tampered));
        assert_eq!(
            ours.open("app", "sealed-v1:x:abc"),
            Err(SealError::Malformed)
        );
        assert_eq!(
            SealingKey::from_text("short").unwrap_err(),
            SealError::KeyTooShort
        );
    }
}
