//! Logging people in through an OpenID provider: the authorization code
//! flow with PKCE and a nonce, the ID token checked against the provider's
//! keys (the `openidconnect` crate: provider metadata, the authorization
//! request, ID token validation: signature, issuer, audience, expiry,
//! nonce).
//!
//! The gateway keeps no state between the two legs: what the callback
//! needs (state, nonce, PKCE verifier, where to go back) travels in a
//! short-lived signed cookie ([`Flow`]). The HTTP calls to the provider go
//! through [`Fetch`], which each adapter implements (natively a client on
//! the gateway's runtime, at the edge the Worker's `fetch`).

use std::future::Future;
use std::pin::Pin;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, ClientId, ClientSecret, CsrfToken, IdToken,
    IdTokenVerifier, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata,
    RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{OidcSettings, Person};
use crate::admin::session::SessionKey;

/// A request to the provider.
pub type HttpRequest = http::Request<Vec<u8>>;
/// The provider's answer.
pub type HttpResponse = http::Response<Vec<u8>>;

/// What [`Fetch::fetch`] returns (`Send` natively, where requests run on
/// a multi-threaded runtime).
#[cfg(not(target_family = "wasm"))]
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, String>> + Send + 'a>>;
/// What [`Fetch::fetch`] returns.
#[cfg(target_family = "wasm")]
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<HttpResponse, String>> + 'a>>;

/// How the gateway calls an identity provider; adapters implement it
/// (time limit and body size limit included).
pub trait Fetch {
    /// Sends `request`, answers the whole response, or why it failed.
    fn fetch(&self, request: HttpRequest) -> FetchFuture<'_>;
}

/// A [`Fetch`] the admin context can hold.
#[cfg(not(target_family = "wasm"))]
pub type DynFetch = dyn Fetch + Sync;
/// A [`Fetch`] the admin context can hold.
#[cfg(target_family = "wasm")]
pub type DynFetch = dyn Fetch;

/// Why a login through a provider failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered something else than
    /// OpenID Connect (the gateway answers 502).
    #[error("the identity provider {issuer} did not answer as expected: {why}")]
    Provider {
        /// The provider.
        issuer: String,
        /// What went wrong.
        why: String,
    },
    /// The callback is not the end of a login this browser started (400).
    #[error("{0}")]
    BadCallback(String),
    /// The provider refused the login or the code (401).
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    /// The ID token did not pass validation (401).
    #[error("the ID token was refused: {0}")]
    InvalidToken(String),
    /// The person may not log in here (403).
    #[error("{0}")]
    NotAllowed(String),
}

/// The cookie carrying a login in progress, from the redirect to the
/// provider to the callback.
pub const FLOW_COOKIE: &str = "komainu_login";
/// How long a login in progress may take.
pub const FLOW_LIFETIME_MS: u64 = 10 * 60 * 1000;

/// A login in progress: what the callback checks and needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The module.
    pub module: String,
    /// The `state` sent to the provider (the callback must bring it back).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce: String,
    /// Where the UI goes back to (a `#/…` fragment).
    pub back: String,
    /// When it started (Unix ms).
    pub started_ms: u64,
}

fn derive(random: &[u8; 32], label: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(label);
    h.update(random);
    URL_SAFE_NO_PAD.encode(h.finalize())
}

impl Flow {
    /// A new login of `module`, with state, nonce and PKCE verifier drawn
    /// from `random` (fresh per request).
    pub fn start(module: &str, back: &str, random: &[u8; 32], now_ms: u64) -> Self {
        Self {
            module: module.to_owned(),
            state: derive(random, b"state"),
            nonce: derive(random, b"nonce"),
            pkce: derive(random, b"pkce-verifier"),
            back: back.to_owned(),
            started_ms: now_ms,
        }
    }

    /// Whether `state` (from the callback) is this flow's, in constant time.
    pub fn state_matches(&self, state: &str) -> bool {
        use subtle::ConstantTimeEq;
        state.len() == self.state.len() && bool::from(state.as_bytes().ct_eq(self.state.as_bytes()))
    }
}

impl Flow {
    /// The flow as its cookie's value, signed for `purpose`.
    pub fn seal(&self, key: &SessionKey, purpose: &[u8]) -> String {
        key.sign_token(purpose, &serde_json::to_vec(self).unwrap_or_default())
    }

    /// The login in progress a cookie holds: signed for `purpose`, of
    /// `module`, started less than [`FLOW_LIFETIME_MS`] ago.
    pub fn open(
        token: Option<&str>,
        key: &SessionKey,
        purpose: &[u8],
        module: &str,
        now_ms: u64,
    ) -> Option<Self> {
        let json = key.open_token(purpose, token?)?;
        let flow: Self = serde_json::from_slice(&json).ok()?;
        (flow.module == module && now_ms.saturating_sub(flow.started_ms) < FLOW_LIFETIME_MS)
            .then_some(flow)
    }
}

/// Query parameters a callback refuses: where a login goes back to is set
/// when it starts, never by what comes back.
const REDIRECT_PARAMS: [&str; 6] = ["back", "return", "redirect", "redirect_uri", "next", "url"];

/// Checks what the provider sent back (the callback's `query`) against
/// the login this browser started (`flow`, from its cookie): no redirect
/// target, the same `state`, the module's issuer (`iss`, RFC 9207), no
/// error from the provider. The flow and the authorization code.
pub fn check_callback(
    query: Option<&str>,
    flow: Option<Flow>,
    settings: &OidcSettings,
) -> Result<(Flow, String), OidcError> {
    let bad = |m: String| OidcError::BadCallback(m);
    if let Some(name) = REDIRECT_PARAMS
        .iter()
        .find(|n| query_param(query, n).is_some())
    {
        return Err(bad(format!(
            "the callback takes no redirect target ({name}): where the login goes back to was set when it started"
        )));
    }
    let flow = flow.ok_or_else(|| {
        bad("this browser started no login with this module in the last 10 minutes (or its cookie was changed): start again".into())
    })?;
    if !flow.state_matches(&query_param(query, "state").unwrap_or_default()) {
        return Err(bad(
            "the state the provider sent back is missing or not the one this login started with: start again".into(),
        ));
    }
    if let Some(error) = query_param(query, "error") {
        return Err(OidcError::Refused(
            match query_param(query, "error_description") {
                Some(d) => format!("{error}: {d}"),
                None => error,
            },
        ));
    }
    if let Some(iss) = query_param(query, "iss") {
        if iss.trim_end_matches('/') != settings.issuer.trim_end_matches('/') {
            return Err(bad(format!(
                "the answer comes from another issuer ({iss}) than this module's"
            )));
        }
    }
    let code =
        query_param(query, "code").ok_or_else(|| bad("the provider sent no code back".into()))?;
    Ok((flow, code))
}

/// The value of the query parameter `name`, decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    openidconnect::url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Where a login may send the UI back to: one of its pages (`#/routes`),
/// never another site.
pub fn is_safe_back(back: &str) -> bool {
    back.len() <= 256
        && back.starts_with("#/")
        && back.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'#' | b'/' | b'-' | b'_' | b'.' | b'~' | b'%')
        })
}

/// What the gateway reads of a discovery document beyond OpenID Connect
/// Core: the logout endpoint (RP-initiated logout).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LogoutMetadata {
    #[serde(default)]
    end_session_endpoint: Option<String>,
}

impl AdditionalProviderMetadata for LogoutMetadata {}

type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// An identity provider, as its discovery document and keys describe it.
pub struct Provider {
    metadata: Metadata,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.metadata.issuer().as_str())
            .finish_non_exhaustive()
    }
}

/// The claims of an ID token beyond the standard ones (the roles claim).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type ProviderIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Most bytes read of a provider's answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

async fn get_json<T: serde::de::DeserializeOwned>(
    fetch: &DynFetch,
    url: &str,
    issuer: &str,
    what: &str,
) -> Result<T, OidcError> {
    let failed = |why: String| OidcError::Provider {
        issuer: issuer.to_owned(),
        why,
    };
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| failed(format!("{what} URL {url}: {e}")))?;
    let response = fetch
        .fetch(request)
        .await
        .map_err(|e| failed(format!("{what} ({url}): {e}")))?;
    if !response.status().is_success() {
        return Err(failed(format!(
            "{what} ({url}) answered {}",
            response.status()
        )));
    }
    let body = response.body();
    if body.len() > MAX_ANSWER_BYTES {
        return Err(failed(format!(
            "{what} ({url}) is over {MAX_ANSWER_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| failed(format!("{what} ({url}) is not valid: {e}")))
}

/// Reads the provider's discovery document and keys.
pub async fn discover(fetch: &DynFetch, settings: &OidcSettings) -> Result<Provider, OidcError> {
    let issuer = settings.issuer.trim_end_matches('/');
    let url = format!("{issuer}/.well-known/openid-configuration");
    let metadata: Metadata = get_json(fetch, &url, issuer, "the discovery document").await?;
    if metadata.issuer().as_str().trim_end_matches('/') != issuer {
        return Err(OidcError::Provider {
            issuer: issuer.to_owned(),
            why: format!(
                "its discovery document names another issuer ({}): check the module's issuer",
                metadata.issuer().as_str()
            ),
        });
    }
    let jwks_url = metadata.jwks_uri().url().as_str().to_owned();
    let jwks: CoreJsonWebKeySet = get_json(fetch, &jwks_url, issuer, "the key set").await?;
    Ok(Provider {
        metadata: metadata.set_jwks(jwks),
    })
}

impl Provider {
    /// Where the browser goes to log in: the authorization request, with
    /// the flow's state, nonce and PKCE challenge (S256).
    pub fn authorization_url(
        &self,
        settings: &OidcSettings,
        redirect_uri: &str,
        flow: &Flow,
    ) -> Result<String, OidcError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| OidcError::BadCallback(format!("the callback URL {redirect_uri}: {e}")))?;
        let client = CoreClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(settings.client_id.clone()),
            settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(flow.pkce.clone()));
        let (state, nonce) = (flow.state.clone(), flow.nonce.clone());
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        Ok(request.url().0.to_string())
    }

    /// The provider's logout endpoint (RP-initiated logout), if it offers one.
    pub fn end_session_url(&self) -> Option<String> {
        self.metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()
    }

    /// Exchanges the callback's `code` for tokens and validates the ID
    /// token (signature against the provider's keys, issuer, audience,
    /// expiry, nonce); the person it names.
    pub async fn finish(
        &self,
        fetch: &DynFetch,
        settings: &OidcSettings,
        redirect_uri: &str,
        code: &str,
        flow: &Flow,
        now_ms: u64,
    ) -> Result<Person, OidcError> {
        let issuer = self.metadata.issuer().as_str().to_owned();
        let failed = |why: String| OidcError::Provider {
            issuer: issuer.clone(),
            why,
        };
        let token_url = self
            .metadata
            .token_endpoint()
            .ok_or_else(|| failed("its discovery document has no token_endpoint".into()))?
            .as_str()
            .to_owned();
        let request = self
            .token_request(settings, &token_url, redirect_uri, code, flow)
            .map_err(|e| failed(format!("the token endpoint {token_url}: {e}")))?;
        let response = fetch
            .fetch(request)
            .await
            .map_err(|e| failed(format!("the token endpoint ({token_url}): {e}")))?;
        #[derive(Deserialize)]
        struct TokenError {
            error: String,
            #[serde(default)]
            error_description: Option<String>,
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            id_token: Option<String>,
        }
        if response.status().is_client_error() {
            let why = match serde_json::from_slice::<TokenError>(response.body()) {
                Ok(e) => match e.error_description {
                    Some(d) => format!("{}: {d}", e.error),
                    None => e.error,
                },
                Err(_) => format!("the token endpoint answered {}", response.status()),
            };
            return Err(OidcError::Refused(why));
        }
        if !response.status().is_success() {
            return Err(failed(format!(
                "the token endpoint ({token_url}) answered {}",
                response.status()
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(response.body())
            .map_err(|e| failed(format!("the token endpoint's answer is not valid: {e}")))?;
        let raw = answer.id_token.ok_or_else(|| {
            OidcError::InvalidToken(
                "the provider sent no ID token (is \"openid\" a scope of the client?)".into(),
            )
        })?;
        self.validate(settings, &raw, flow, now_ms)
    }

    /// The token request: the code, the PKCE verifier, and the client's
    /// credentials (HTTP Basic, or in the form when the provider only
    /// takes them there).
    fn token_request(
        &self,
        settings: &OidcSettings,
        token_url: &str,
        redirect_uri: &str,
        code: &str,
        flow: &Flow,
    ) -> Result<HttpRequest, http::Error> {
        let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", &flow.pkce);
        let mut request = http::Request::post(token_url)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        let post_only = self
            .metadata
            .token_endpoint_auth_methods_supported()
            .is_some_and(|methods| {
                let names: Vec<String> = methods
                    .iter()
                    .filter_map(|m| serde_json::to_value(m).ok())
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect();
                !names.iter().any(|n| n == "client_secret_basic")
                    && names.iter().any(|n| n == "client_secret_post")
            });
        match &settings.client_secret {
            Some(secret) if !post_only => {
                let encode = |s: &str| {
                    openidconnect::url::form_urlencoded::byte_serialize(s.as_bytes())
                        .collect::<String>()
                };
                let pair = format!("{}:{}", encode(&settings.client_id), encode(secret));
                request = request.header(
                    http::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ),
                );
            }
            Some(secret) => {
                form.append_pair("client_id", &settings.client_id)
                    .append_pair("client_secret", secret);
            }
            None => {
                form.append_pair("client_id", &settings.client_id);
            }
        }
        request.body(form.finish().into_bytes())
    }

    /// Validates an ID token (see [`Provider::finish`]) and reads the
    /// person from it.
    pub fn validate(
        &self,
        settings: &OidcSettings,
        raw: &str,
        flow: &Flow,
        now_ms: u64,
    ) -> Result<Person, OidcError> {
        let invalid = |why: String| OidcError::InvalidToken(why);
        let token: ProviderIdToken = raw
            .parse()
            .map_err(|e| invalid(format!("it is not a signed JWT: {e}")))?;
        let issuer = IssuerUrl::new(self.metadata.issuer().as_str().to_owned())
            .map_err(|e| invalid(e.to_string()))?;
        let keys = self.metadata.jwks().clone();
        let client_id = ClientId::new(settings.client_id.clone());
        let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = match &settings.client_secret {
            Some(secret) => IdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(secret.clone()),
                issuer,
                keys,
            ),
            None => IdTokenVerifier::new_public_client(client_id, issuer, keys),
        };
        let now =
            chrono::DateTime::from_timestamp_millis(i64::try_from(now_ms).unwrap_or(i64::MAX))
                .unwrap_or_default();
        // The algorithms the provider says it signs with (RS256 when it
        // says nothing); never `none`.
        let algs: Vec<CoreJwsSigningAlgorithm> = self
            .metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|a| **a != CoreJwsSigningAlgorithm::None)
            .cloned()
            .collect();
        let verifier = if algs.is_empty() {
            verifier
        } else {
            verifier.set_allowed_algs(algs)
        };
        let verifier = verifier
            .set_time_fn(move || now)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > now + chrono::Duration::minutes(5) {
                    Err("issued in the future (check the clocks)".into())
                } else {
                    Ok(())
                }
            });
        let claims = token
            .claims(&verifier, &Nonce::new(flow.nonce.clone()))
            .map_err(|e| invalid(e.to_string()))?;
        let email = claims.email().map(|e| e.as_str().to_owned());
        if !settings.allowed_email_domains.is_empty() {
            let domain = email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d.to_ascii_lowercase());
            let verified = claims.email_verified() != Some(false);
            if !verified || !domain.is_some_and(|d| settings.allowed_email_domains.contains(&d)) {
                return Err(OidcError::NotAllowed(format!(
                    "{} may not log in here: only verified emails of {} are let in",
                    email.as_deref().unwrap_or("someone without an email"),
                    settings.allowed_email_domains.join(", ")
                )));
            }
        }
        Ok(Person {
            module: flow.module.clone(),
            subject: claims.subject().as_str().to_owned(),
            email,
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            roles: roles_of(&claims.additional_claims().rest, &settings.roles_claim),
        })
    }
}

/// The roles in `claim` (a dotted path, e.g. `realm_access.roles`): a
/// string, or an array of strings; anything else is no role.
fn roles_of(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    let mut parts = claim.split('.');
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let mut value = claims.get(first);
    for part in parts {
        value = value.and_then(|v| v.get(part));
    }
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .take(super::MAX_SESSION_ROLES)
            .collect(),
        _ => Vec::new(),
    }
}
