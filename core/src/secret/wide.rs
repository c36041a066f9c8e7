//! The HMAC-SHA384 and HMAC-SHA512 key states of a secret, for JWTs a
//! client signs HS384 or HS512 with its secret (Otoroshi's clients do):
//! like [`super::SecretHash`], a signing key kept in memory, and stored
//! only sealed with the deployment key, beside the HS256 state, for the
//! keys whose `jwtAlgorithms` name them.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha384, Sha512};
use subtle::ConstantTimeEq;

const BLOCK: usize = 128;
const IV384: [u64; 8] = [
    0xcbbb_9d5d_c105_9ed8,
    0x629a_292a_367c_d507,
    0x9159_015a_3070_dd17,
    0x152f_ecd8_f70e_5939,
    0x6733_2667_ffc0_0b31,
    0x8eb4_4a87_6858_1511,
    0xdb0c_2e0d_64f9_8fa7,
    0x47b5_481d_befa_4fa4,
];
const IV512: [u64; 8] = [
    0x6a09_e667_f3bc_c908,
    0xbb67_ae85_84ca_a73b,
    0x3c6e_f372_fe94_f82b,
    0xa54f_f53a_5f1d_36f1,
    0x510e_527f_ade6_82d1,
    0x9b05_688c_2b3e_6c1f,
    0x1f83_d9ab_fb41_bd6b,
    0x5be0_cd19_137e_2179,
];

/// The bytes [`WideHash::to_bytes`] gives.
pub const WIDE_BYTES: usize = 256;

/// The HMAC-SHA384 and HMAC-SHA512 key states of a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WideHash {
    inner384: [u64; 8],
    outer384: [u64; 8],
    inner512: [u64; 8],
    outer512: [u64; 8],
}

impl std::fmt::Debug for WideHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WideHash(…)")
    }
}

fn pads(key: &[u8]) -> ([u8; BLOCK], [u8; BLOCK]) {
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for (i, b) in key.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    (ipad, opad)
}

fn absorb(mut state: [u64; 8], block: &[u8; BLOCK]) -> [u64; 8] {
    sha2::compress512(&mut state, &[*GenericArray::from_slice(block)]);
    state
}

/// Finishes a SHA-384/512 whose first 128-byte block is in `state`; the
/// first `words` words of the digest.
fn finish(mut state: [u64; 8], message: &[u8], out: &mut [u8]) {
    let mut chunks = message.chunks_exact(BLOCK);
    for chunk in chunks.by_ref() {
        sha2::compress512(&mut state, &[*GenericArray::from_slice(chunk)]);
    }
    let rest = chunks.remainder();
    let bit_len = ((BLOCK + message.len()) as u128) * 8;
    let mut tail = [0u8; BLOCK * 2];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() + 17 <= BLOCK {
        BLOCK
    } else {
        BLOCK * 2
    };
    tail[tail_len - 16..tail_len].copy_from_slice(&bit_len.to_be_bytes());
    for block in tail[..tail_len].chunks_exact(BLOCK) {
        sha2::compress512(&mut state, &[*GenericArray::from_slice(block)]);
    }
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&state[i].to_be_bytes()[..chunk.len()]);
    }
}

impl WideHash {
    /// The states of a clear secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let state = |iv: [u64; 8], key: &[u8]| {
            let (ipad, opad) = pads(key);
            (absorb(iv, &ipad), absorb(iv, &opad))
        };
        let (inner384, outer384) = if secret.len() > BLOCK {
            state(IV384, &Sha384::digest(secret))
        } else {
            state(IV384, secret)
        };
        let (inner512, outer512) = if secret.len() > BLOCK {
            state(IV512, &Sha512::digest(secret))
        } else {
            state(IV512, secret)
        };
        Self {
            inner384,
            outer384,
            inner512,
            outer512,
        }
    }

    /// HMAC-SHA384 of `message`.
    pub fn mac384(&self, message: &[u8]) -> [u8; 48] {
        let mut inner = [0u8; 48];
        finish(self.inner384, message, &mut inner);
        let mut out = [0u8; 48];
        finish(self.outer384, &inner, &mut out);
        out
    }

    /// HMAC-SHA512 of `message`.
    pub fn mac512(&self, message: &[u8]) -> [u8; 64] {
        let mut inner = [0u8; 64];
        finish(self.inner512, message, &mut inner);
        let mut out = [0u8; 64];
        finish(self.outer512, &inner, &mut out);
        out
    }

    /// Whether `tag` is the HMAC-SHA384 (48 bytes) or HMAC-SHA512 (64
    /// bytes) of `message`, as `sha512` says, in constant time.
    pub fn verify(&self, sha512: bool, message: &[u8], tag: &[u8]) -> bool {
        if sha512 {
            let expected = self.mac512(message);
            tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
        } else {
            let expected = self.mac384(message);
            tag.len() == expected.len() && bool::from(expected.ct_eq(tag))
        }
    }

    /// The four states, as bytes.
    pub fn to_bytes(&self) -> [u8; WIDE_BYTES] {
        let mut out = [0u8; WIDE_BYTES];
        let words = self
            .inner384
            .iter()
            .chain(&self.outer384)
            .chain(&self.inner512)
            .chain(&self.outer512);
        for (i, w) in words.enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// The states from [`WideHash::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != WIDE_BYTES {
            return None;
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        Some(Self {
            inner384: std::array::from_fn(word),
            outer384: std::array::from_fn(|i| word(i + 8)),
            inner512: std::array::from_fn(|i| word(i + 16)),
            outer512: std::array::from_fn(|i| word(i + 24)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    #[test]
    fn macs_match_the_hmac_crate_for_all_lengths() {
        for key_len in [0usize, 1, 6, 64, 127, 128, 129, 300] {
            let key: Vec<u8> = (0..key_len).map(|i| i as u8 ^ 0x5a).collect();
            let wide = WideHash::from_secret(&key);
            let again = WideHash::from_bytes(&wide.to_bytes()).unwrap();
            for msg_len in [0usize, 1, 111, 112, 127, 128, 129, 239, 240, 500] {
                let msg: Vec<u8> = (0..msg_len).map(|i| (i * 13) as u8).collect();
                let mut m384 = Hmac::<Sha384>::new_from_slice(&key).unwrap();
                m384.update(&msg);
                assert_eq!(
                    again.mac384(&msg).to_vec(),
                    m384.finalize().into_bytes().to_vec()
                );
                let mut m512 = Hmac::<Sha512>::new_from_slice(&key).unwrap();
                m512.update(&msg);
                let tag = m512.finalize().into_bytes();
                assert_eq!(
                    wide.mac512(&msg).to_vec(),
                    tag.to_vec(),
                    "{key_len}/{msg_len}"
                );
                assert!(wide.verify(true, &msg, &tag));
                assert!(!wide.verify(false, &msg, &tag));
            }
        }
    }
}
