//! Authentication and authorization of API keys.
//!
//! - [`credentials`]: where a key is found in a request (header pair, Basic,
//!   Bearer JWT) and which headers carry it, so they can be removed before
//!   forwarding;
//! - [`jwt`]: JSON Web Tokens, verified (HS256, ES256, EdDSA, RS256) and
//!   signed (HS256);
//! - [`jwk`]: the public keys a client registers for its signed tokens;
//! - [`keys`]: the API-key index compiled from a document, which checks a
//!   secret or a token and whether a key may call a route.

pub mod credentials;
pub mod jwk;
pub mod jwt;
pub mod keys;

pub use credentials::{Credentials, CLIENT_ID_HEADER, CLIENT_SECRET_HEADER};
pub use keys::{CompiledKey, KeyIndex};
