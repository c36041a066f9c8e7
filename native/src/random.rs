//! Randomness for the core, which takes it as an argument.

use komainu_core::gateway::RequestId;

/// A fresh request id (not secret: a fast thread-local generator).
pub fn request_id() -> RequestId {
    RequestId::from_random(fastrand::u128(..))
}

/// 32 bytes from the operating system's secure generator, for secrets.
pub fn secret_bytes() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("the system random generator failed: {e}"))?;
    Ok(bytes)
}

/// A new clear secret (256 bits, base64url).
pub fn new_secret() -> Result<String, String> {
    secret_bytes().map(komainu_core::secret::generate_secret)
}
