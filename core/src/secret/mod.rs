//! Client secrets: how they are checked, and what is stored of them.
//!
//! [`SecretHash`] is the HMAC-SHA256 key state of a secret: the SHA-256
//! chaining values after absorbing `key ⊕ ipad` and `key ⊕ opad` (RFC 2104,
//! section 4). It checks HS256 signatures and signs claims, in memory. It
//! is a signing key: it is **never stored** (documents of earlier versions
//! did store it, as `hmac-sha256:…`; [`SecretHash::parse`] still reads that
//! form so they load, and saving converts them).
//!
//! What is stored is in [`stored`]: a one-way verifier, and the HMAC key
//! sealed with a deployment key kept outside the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub mod stored;
pub mod wide;

pub use stored::{
    check_sealed_syntax, is_sealed, open_sealed, InvalidVerifier, SealError, SealingKey, Verifier,
    CLAIM_SECRET_CONTEXT, SEALED_PREFIX, VERIFIER_PREFIX,
};
pub use wide::WideHash;

/// The prefix of the legacy stored form (the HMAC key itself), read from
/// documents of earlier versions only.
pub const HASH_PREFIX: &str = "hmac-sha256:";

const BLOCK: usize = 64;
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The HMAC-SHA256 key of a secret: its inner and outer key states.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    inner: [u32; 8],
    outer: [u32; 8],
}

/// Why a stored secret hash could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a secret hash is \"{HASH_PREFIX}\" followed by 86 base64url characters")]
pub struct InvalidSecretHash;

impl SecretHash {
    /// Derives the stored form of a clear secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut key = [0u8; BLOCK];
        if secret.len() > BLOCK {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        let mut ipad = [0u8; BLOCK];
        let mut opad = [0u8; BLOCK];
        for i in 0..BLOCK {
            ipad[i] = key[i] ^ 0x36;
            opad[i] = key[i] ^ 0x5c;
        }
        Self {
            inner: absorb(IV, &ipad),
            outer: absorb(IV, &opad),
        }
    }

    /// Reads the legacy stored form (`hmac-sha256:…`) of earlier documents.
    pub fn parse(text: &str) -> Result<Self, InvalidSecretHash> {
        let encoded = text.strip_prefix(HASH_PREFIX).ok_or(InvalidSecretHash)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| InvalidSecretHash)?;
        Self::from_bytes(&bytes).ok_or(InvalidSecretHash)
    }

    /// The legacy text form (`hmac-sha256:…`): for tests and for reading
    /// old documents; never written to a store.
    pub fn to_text(&self) -> String {
        format!("{HASH_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.to_bytes()))
    }

    /// The key states as 64 bytes (inner, then outer).
    pub fn to_bytes(&self) -> [u8; 64] {
        words_to_bytes(&self.inner, &self.outer)
    }

    /// The key states from 64 bytes ([`SecretHash::to_bytes`]).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 64 {
            return None;
        }
        let word = |i: usize| {
            u32::from_be_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ])
        };
        Some(Self {
            inner: std::array::from_fn(word),
            outer: std::array::from_fn(|i| word(i + 8)),
        })
    }

    /// Whether `secret` is the secret this hash was made from, compared in
    /// constant time.
    /// Secrets never contain NUL bytes (HMAC pads keys with zeros, so
    /// `"k\0"` and `"k"` would derive the same state).
    pub fn verify(&self, secret: &[u8]) -> bool {
        if secret.contains(&0) {
            return false;
        }
        let other = Self::from_secret(secret);
        // Word by word: the same constant-time comparison, 16 steps, not 64.
        (self.inner[..].ct_eq(&other.inner[..]) & self.outer[..].ct_eq(&other.outer[..])).into()
    }

    /// HMAC-SHA256 of `message` keyed with the secret this hash was made from.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let inner = finish(self.inner, message);
        finish(self.outer, &inner)
    }

    /// Whether `tag` is the HMAC-SHA256 of `message`, compared in constant time.
    pub fn verify_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        let expected = self.mac(message);
        tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// A new clear secret from 32 random bytes supplied by the adapter: 43
/// base64url characters (256 bits).
pub fn generate_secret(random: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

fn words_to_bytes(inner: &[u32; 8], outer: &[u32; 8]) -> [u8; 64] {
    let mut bytes = [0u8; 64];
    for (i, w) in inner.iter().chain(outer.iter()).enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    bytes
}

fn absorb(mut state: [u32; 8], block: &[u8; BLOCK]) -> [u32; 8] {
    sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
    state
}

/// Finishes a SHA-256 whose first 64-byte block is already absorbed in `state`.
fn finish(mut state: [u32; 8], message: &[u8]) -> [u8; 32] {
    let mut chunks = message.chunks_exact(BLOCK);
    for chunk in chunks.by_ref() {
        sha2::compress256(&mut state, &[*GenericArray::from_slice(chunk)]);
    }
    let rest = chunks.remainder();
    let bit_len = ((BLOCK + message.len()) as u64) * 8;
    let mut tail = [0u8; BLOCK * 2];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() + 9 <= BLOCK {
        BLOCK
    } else {
        BLOCK * 2
    };
    tail[tail_len - 8..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(BLOCK) {
        sha2::compress256(&mut state, &[*GenericArray::from_slice(block)]);
    }
    let mut out = [0u8; 32];
    for (i, w) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], msg: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn mac_matches_the_hmac_crate_for_all_lengths() {
        for key_len in [0usize, 1, 6, 32, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..key_len).map(|i| i as u8 ^ 0xa5).collect();
            let hash = SecretHash::from_secret(&key);
            for msg_len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 300] {
                let msg: Vec<u8> = (0..msg_len).map(|i| (i * 7) as u8).collect();
                assert_eq!(hash.mac(&msg), reference(&key, &msg), "{key_len}/{msg_len}");
            }
        }
    }

    #[test]
    fn verify_accepts_only_the_secret() {
        let hash = SecretHash::from_secret(b"s3cret-value");
        assert!(hash.verify(b"s3cret-value"));
        assert!(!hash.verify(b"s3cret-valuf"));
        assert!(!hash.verify(b""));
        assert!(!hash.verify(b"s3cret-value\0"));
    }

    #[test]
    fn text_round_trip_and_no_clear_secret() {
        let hash = SecretHash::from_secret(b"topsecret");
        let text = hash.to_text();
        assert!(text.starts_with(HASH_PREFIX));
        assert!(!text.contains("topsecret"));
        assert_eq!(SecretHash::parse(&text).unwrap(), hash);
        assert_eq!(SecretHash::parse("sha256:abc"), Err(InvalidSecretHash));
        assert_eq!(SecretHash::parse("hmac-sha256:abc"), Err(InvalidSecretHash));
    }

    #[test]
    fn verify_mac_rejects_truncated_tags() {
        let hash = SecretHash::from_secret(b"k");
        let tag = hash.mac(b"m");
        assert!(hash.verify_mac(b"m", &tag));
        assert!(!hash.verify_mac(b"m", &tag[..31]));
        assert!(!hash.verify_mac(b"n", &tag));
    }
}
