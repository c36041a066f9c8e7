//! What can go wrong with a backend, in terms that tell the user what to
//! fix. The connections themselves are in [`crate::h1`] (one pool per
//! worker, for both HTTP paths).

/// Why a request could not be exchanged with a backend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, TLS refused).
    #[error("{0}")]
    Connect(String),
    /// The connection broke during the exchange.
    #[error("{0}")]
    Exchange(String),
    /// A timeout of the route ran out (504 naming it).
    #[error("{}", .0.what())]
    TimedOut(komainu_core::gateway::Timeout),
    /// The client's body went past the route's limit (bytes): not sent on.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

/// The innermost cause of an error ("connection refused", "invalid peer
/// certificate: UnknownIssuer"…): what tells the user what to fix.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
