//! How the admin API reaches identity providers (people's logins through
//! OpenID Connect): the backends' TLS settings, a time limit on the whole
//! exchange and a size limit on the answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use komainu_core::login::oidc::{Fetch, FetchFuture, HttpRequest};

use crate::admin_client::{http_client, HttpClient};

/// Time allowed for one call to a provider, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read of a provider's answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Calls identity providers.
pub struct ProviderFetch {
    client: HttpClient,
}

impl ProviderFetch {
    /// A client trusting what backends are trusted with.
    pub fn new(tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        Self {
            client: http_client(tls),
        }
    }
}

impl Fetch for ProviderFetch {
    fn fetch(&self, request: HttpRequest) -> FetchFuture<'_> {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
            let exchange = async {
                let response = self
                    .client
                    .request(request)
                    .await
                    .map_err(|e| format!("unreachable: {e}"))?;
                let (parts, body) = response.into_parts();
                let bytes = Limited::new(body, MAX_ANSWER_BYTES)
                    .collect()
                    .await
                    .map_err(|e| format!("the answer could not be read: {e}"))?
                    .to_bytes();
                Ok(http::Response::from_parts(parts, bytes.to_vec()))
            };
            tokio::time::timeout(TIMEOUT, exchange)
                .await
                .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
        })
    }
}
