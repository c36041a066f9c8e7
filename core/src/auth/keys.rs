//! The API-key index, compiled from a document once per revision.

use std::collections::HashMap;
use std::sync::Arc;

use super::credentials::Credentials;
use super::jwk::{JwtAlg, VerifyingKey};
use super::jwt;
use crate::model::HmacAlg;
use crate::model::{ApiKey, FieldError, Quotas, ValidationErrors};
use crate::secret::stored::open_sealed_wide;
use crate::secret::{SealingKey, SecretHash, Verifier, WideHash};
use crate::time::parse_rfc3339;
use crate::GatewayError;

/// What checks one secret on the request path: its verifier (clear
/// secrets) and, when this deployment can open it, its HMAC key (HS256).
#[derive(Debug)]
struct KeySecret {
    verifier: Verifier,
    mac: Option<SecretHash>,
    /// The HS384 and HS512 keys, for a key that lists them.
    wide: Option<WideHash>,
}

impl KeySecret {
    /// From the stored or given forms; `field` names the sealed value in
    /// errors (`apikeys[0].clientSecretSealed`).
    fn compile(
        client_id: &str,
        clear: Option<&str>,
        hash: Option<&str>,
        sealed: Option<&str>,
        sealing: Option<&SealingKey>,
        wide: bool,
        field: impl FnOnce() -> String,
    ) -> Result<Option<Self>, FieldError> {
        let state = match (clear, hash) {
            (Some(secret), _) => {
                let state = SecretHash::from_secret(secret.as_bytes());
                return Ok(Some(Self {
                    verifier: Verifier::new(client_id, &state),
                    mac: Some(state),
                    wide: wide.then(|| WideHash::from_secret(secret.as_bytes())),
                }));
            }
            (None, Some(text)) => match SecretHash::parse(text) {
                Ok(legacy) => legacy,
                Err(_) => {
                    let Ok(verifier) = Verifier::parse(text) else {
                        return Ok(None);
                    };
                    let opened = sealed
                        .map(|s| open_sealed_wide(sealing, client_id, s))
                        .transpose()
                        .map_err(|e| FieldError {
                            field: field(),
                            message: e.to_string(),
                        })?;
                    let (mac, wide_keys) = match opened {
                        Some((mac, w)) => (Some(mac), w.filter(|_| wide)),
                        None => (None, None),
                    };
                    return Ok(Some(Self {
                        verifier,
                        mac,
                        wide: wide_keys,
                    }));
                }
            },
            (None, None) => return Ok(None),
        };
        Ok(Some(Self {
            verifier: Verifier::new(client_id, &state),
            mac: Some(state),
            wide: None,
        }))
    }
}

/// An API key ready for the request path.
#[derive(Debug)]
pub struct CompiledKey {
    /// The client id (shared with request contexts without copying).
    pub client_id: Arc<str>,
    /// The key's name (shared with request contexts, for events).
    pub name: Arc<str>,
    /// The key's counters (per-key metrics, carried across revisions).
    pub stats: Arc<crate::stats::KeyStats>,
    /// `None`: a key without a readable secret, which never authenticates.
    secret: Option<KeySecret>,
    /// The previous secret and when it stops working (rotation grace).
    previous: Option<(KeySecret, u64)>,
    /// Public keys whose private keys sign the client's JWTs.
    public_keys: Vec<VerifyingKey>,
    enabled: bool,
    expires_at_ms: Option<u64>,
    /// Indexes of the routes named in `routes`, sorted.
    routes: Vec<usize>,
    /// Indexes of the key's groups, sorted.
    groups: Vec<usize>,
    /// The key's quotas.
    pub quotas: Quotas,
    /// Labels (Otoroshi's info token).
    pub tags: Box<[Box<str>]>,
    /// Name → value (Otoroshi's info token).
    pub metadata: Box<[(Box<str>, Box<str>)]>,
    /// Only GET, HEAD and OPTIONS.
    pub read_only: bool,
    /// The client id alone authenticates (Otoroshi profile, `x-api-key`).
    allow_client_id_only: bool,
    /// The HMAC algorithms its JWTs may use.
    hmac_algs: Vec<HmacAlg>,
}

impl CompiledKey {
    /// Whether `secret` is the key's secret, or its previous one within the
    /// rotation grace period.
    fn verify_secret(&self, secret: &[u8], now_ms: u64, decoy: &Verifier) -> bool {
        let id = &*self.client_id;
        let current = match &self.secret {
            Some(s) => s.verifier.verify(id, secret),
            // No secret (a key with public keys only): the same work, refused.
            None => {
                std::hint::black_box(decoy.verify(id, secret));
                false
            }
        };
        let previous = self
            .previous_valid(now_ms)
            .is_some_and(|p| p.verifier.verify(id, secret));
        current | previous
    }

    fn previous_valid(&self, now_ms: u64) -> Option<&KeySecret> {
        self.previous
            .as_ref()
            .filter(|(_, until)| now_ms < *until)
            .map(|(secret, _)| secret)
    }

    /// Whether the key may call the route at `route` whose sorted group
    /// indexes are `route_groups`: the route is named, or a group is shared.
    pub fn may_call(&self, route: usize, route_groups: &[usize]) -> bool {
        self.routes.binary_search(&route).is_ok()
            || self
                .groups
                .iter()
                .any(|g| route_groups.binary_search(g).is_ok())
    }
}

/// Client id → compiled key.
pub struct KeyIndex {
    keys: HashMap<Box<str>, CompiledKey>,
    /// Checked against when the client id is unknown, so that an unknown id
    /// costs the same time as a wrong secret.
    decoy: Verifier,
    decoy_mac: SecretHash,
    /// The answer to a JWT that does not check (the same for every client
    /// id, so that none can be probed).
    jwt_refusal: &'static str,
}

impl KeyIndex {
    /// Compiles the keys of a validated document. `route_index` and
    /// `group_index` map ids to positions; unknown route ids are ignored (a
    /// key may name a route that does not exist yet). Sealed HMAC keys are
    /// opened with `sealing`, the deployment key: one that does not open
    /// (another deployment's key, none, altered) is refused, naming it.
    pub fn build(
        keys: &[ApiKey],
        route_index: &HashMap<&str, usize>,
        group_index: &HashMap<&str, usize>,
        sealing: Option<&SealingKey>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = Vec::new();
        let mut compiled = HashMap::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let id = k.client_id.as_str();
            let secret = KeySecret::compile(
                id,
                k.client_secret.as_deref(),
                k.client_secret_hash.as_deref(),
                k.client_secret_sealed.as_deref(),
                sealing,
                k.wants_wide_jwt_keys(),
                || format!("apikeys[{i}].clientSecretSealed"),
            );
            let previous = KeySecret::compile(
                id,
                None,
                k.rotation.previous_secret_hash.as_deref(),
                k.rotation.previous_secret_sealed.as_deref(),
                sealing,
                k.wants_wide_jwt_keys(),
                || format!("apikeys[{i}].rotation.previousSecretSealed"),
            );
            let (secret, previous) = match (secret, previous) {
                (Ok(s), Ok(p)) => (s, p),
                (s, p) => {
                    errors.extend(s.err());
                    errors.extend(p.err());
                    continue;
                }
            };
            let mut routes: Vec<usize> = k
                .routes
                .iter()
                .filter_map(|r| route_index.get(r.as_str()).copied())
                .collect();
            routes.sort_unstable();
            let mut groups: Vec<usize> = k
                .groups
                .iter()
                .filter_map(|g| group_index.get(g.as_str()).copied())
                .collect();
            groups.sort_unstable();
            let previous = previous.zip(
                k.rotation
                    .previous_expires_at
                    .as_deref()
                    .and_then(parse_rfc3339),
            );
            // Validated already: every key reads.
            let public_keys: Vec<VerifyingKey> = k
                .jwks
                .iter()
                .filter_map(|jwk| VerifyingKey::from_jwk(jwk).ok())
                .collect();
            let key = CompiledKey {
                client_id: Arc::from(id),
                name: Arc::from(k.name.as_str()),
                stats: Arc::default(),
                previous,
                // A validated document always has a readable secret or
                // public keys; a key with neither can never authenticate.
                enabled: k.enabled && (secret.is_some() || !public_keys.is_empty()),
                public_keys,
                secret,
                expires_at_ms: k.expires_at.as_deref().and_then(parse_rfc3339),
                routes,
                groups,
                quotas: k.quotas,
                tags: k.tags.iter().map(|t| Box::from(t.as_str())).collect(),
                metadata: k
                    .metadata
                    .iter()
                    .map(|(n, v)| (Box::from(n.as_str()), Box::from(v.as_str())))
                    .collect(),
                read_only: k.read_only,
                allow_client_id_only: k.allow_client_id_only,
                hmac_algs: k.jwt_algorithms.clone(),
            };
            compiled.insert(Box::from(id), key);
        }
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        let decoy_mac = SecretHash::from_secret(b"komainu-decoy");
        Ok(Self {
            keys: compiled,
            decoy: Verifier::new("", &decoy_mac),
            decoy_mac,
            jwt_refusal: match sealing {
                Some(_) => "unknown client id or JWT not signed with its secret",
                None => "unknown client id or JWT not signed with its secret (this deployment has no deployment key, KOMAINU_SECRET_KEY, so it checks HS256 JWTs only for secrets given in clear since it started: send the key as Komainu-Client-Id/-Secret headers or Basic)",
            },
        })
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this client id, if any.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut CompiledKey> {
        self.keys.values_mut()
    }

    /// Every compiled key.
    pub fn iter(&self) -> impl Iterator<Item = &CompiledKey> {
        self.keys.values()
    }

    /// The key with this client id.
    pub fn get(&self, client_id: &str) -> Option<&CompiledKey> {
        self.keys.get(client_id)
    }

    /// Checks credentials at `now_ms`: the key they prove, or why not.
    /// Unknown client, wrong secret or bad signature all answer the same
    /// message, so a caller cannot probe which client ids exist.
    pub fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        now_ms: u64,
    ) -> Result<&CompiledKey, GatewayError> {
        const WRONG: &str = "unknown client id or wrong secret";
        let key = match credentials {
            Credentials::Secret {
                client_id, secret, ..
            } => {
                let key = self.keys.get(client_id.as_ref());
                let valid = key.map_or_else(
                    // Unknown id: the same work as a wrong secret, refused below.
                    || std::hint::black_box(self.decoy.verify(client_id, secret)),
                    |k| k.verify_secret(secret, now_ms, &self.decoy),
                );
                match key {
                    Some(k) if valid => k,
                    _ => return Err(GatewayError::invalid(WRONG)),
                }
            }
            Credentials::ClientId(client_id) => match self.keys.get(client_id.as_ref()) {
                Some(k) if k.allow_client_id_only => k,
                _ => {
                    return Err(GatewayError::invalid(
                        "unknown client id, or this key needs its secret (it does not allow the client id alone)",
                    ))
                }
            },
            Credentials::OtoBearer { client_id, mac, .. } => {
                let message = format!("otoapk_{client_id}");
                let key = self.keys.get(client_id.as_str());
                let signed = |s: &KeySecret| {
                    s.mac
                        .as_ref()
                        .is_some_and(|m| m.verify_mac(message.as_bytes(), mac))
                };
                let valid = key.map_or_else(
                    || std::hint::black_box(self.decoy_mac.verify_mac(message.as_bytes(), mac)),
                    |k| {
                        k.secret.as_ref().is_some_and(signed)
                            || k.previous_valid(now_ms).is_some_and(signed)
                    },
                );
                match key {
                    Some(k) if valid => k,
                    _ => return Err(GatewayError::invalid(self.jwt_refusal)),
                }
            }
            Credentials::Jwt(token) | Credentials::OtoroshiJwt(token) => {
                let jwt = match credentials {
                    Credentials::OtoroshiJwt(_) => jwt::parse_otoroshi(token),
                    _ => jwt::parse(token),
                }
                .map_err(GatewayError::invalid)?;
                let key = self.keys.get(jwt.client_id.as_str());
                let signed = |s: &KeySecret| match jwt.alg {
                    JwtAlg::Hs256 => s.mac.as_ref().is_some_and(|m| jwt.signed_by(m)),
                    _ => s.wide.as_ref().is_some_and(|w| jwt.signed_by_wide(w)),
                };
                let hmac = |k: &CompiledKey, alg| {
                    k.hmac_algs.contains(&alg)
                        && (k.secret.as_ref().is_some_and(signed)
                            || k.previous_valid(now_ms).is_some_and(signed))
                };
                let valid = key.map_or_else(
                    || std::hint::black_box(jwt.signed_by(&self.decoy_mac)),
                    |k| match jwt.alg {
                        JwtAlg::Hs256 => hmac(k, HmacAlg::Hs256),
                        JwtAlg::Hs384 => hmac(k, HmacAlg::Hs384),
                        JwtAlg::Hs512 => hmac(k, HmacAlg::Hs512),
                        _ => k.public_keys.iter().any(|pk| jwt.signed_by_public(pk)),
                    },
                );
                let key = match key {
                    Some(k) if valid => k,
                    _ => return Err(GatewayError::invalid(self.jwt_refusal)),
                };
                if !jwt.is_current(now_ms) {
                    return Err(GatewayError::invalid(
                        "the JWT has expired (or is not valid yet)",
                    ));
                }
                key
            }
        };
        if !key.enabled {
            return Err(GatewayError::invalid("this API key is disabled"));
        }
        if key.expires_at_ms.is_some_and(|at| now_ms >= at) {
            return Err(GatewayError::invalid("this API key has expired"));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::super::jwk::PublicJwk;
    use super::*;
    use base64::Engine as _;
    use std::borrow::Cow;

    fn key(id: &str, secret: &str) -> ApiKey {
        ApiKey {
            client_id: id.into(),
            client_secret: None,
            client_secret_hash: Some(SecretHash::from_secret(secret.as_bytes()).to_text()),
            client_secret_sealed: None,
            jwks: Vec::new(),
            jwt_algorithms: vec![crate::model::HmacAlg::Hs256],
            name: String::new(),
            description: String::new(),
            tags: Vec::new(),
            metadata: Default::default(),
            read_only: false,
            allow_client_id_only: false,
            enabled: true,
            expires_at: None,
            routes: vec!["r1".into()],
            groups: vec!["g".into()],
            quotas: Quotas::default(),
            rotation: Default::default(),
        }
    }

    fn index(keys: &[ApiKey]) -> KeyIndex {
        let routes = HashMap::from([("r1", 1usize), ("r2", 2)]);
        let groups = HashMap::from([("g", 0usize), ("h", 1)]);
        KeyIndex::build(keys, &routes, &groups, None).unwrap()
    }

    fn pair<'a>(id: &'a str, secret: &'a str) -> Credentials<'a> {
        Credentials::Secret {
            client_id: Cow::Borrowed(id),
            secret: Cow::Borrowed(secret.as_bytes()),
            in_authorization: false,
        }
    }

    fn jwt(payload: &str, secret: &str) -> String {
        jwt::sign(&SecretHash::from_secret(secret.as_bytes()), payload)
    }

    /// A compact JWS signed with HMAC (`HS384` or `HS512`) over `secret`.
    fn wide_jwt(alg: &str, payload: &str, secret: &str) -> String {
        use hmac::Mac;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!(
            "{}.{}",
            b64.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
            b64.encode(payload)
        );
        let tag = if alg == "HS384" {
            let mut m = hmac::Hmac::<sha2::Sha384>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = hmac::Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        format!("{input}.{}", b64.encode(tag))
    }

    #[test]
    fn hs384_and_hs512_jwts_for_keys_that_list_them() {
        use crate::model::HmacAlg;
        let secret = "a-secret-of-an-otoroshi-key-0123";
        let deployment =
            SealingKey::from_text("a-deployment-key-of-at-least-32-characters").unwrap();
        let mut wide = key("wide", secret);
        wide.client_secret_hash = None;
        wide.client_secret = Some(secret.into());
        wide.jwt_algorithms = vec![HmacAlg::Hs256, HmacAlg::Hs384, HmacAlg::Hs512];
        let mut narrow = wide.clone();
        narrow.client_id = "narrow".into();
        narrow.jwt_algorithms = vec![HmacAlg::Hs256];
        // As stored: verifiers and sealed keys, opened with the deployment key.
        let mut doc = crate::model::Document {
            apikeys: vec![wide, narrow],
            ..Default::default()
        };
        doc.seal_secrets(Some(&deployment));
        assert!(doc.apikeys.iter().all(|k| k.client_secret.is_none()));
        let routes = HashMap::from([("r1", 1usize)]);
        let groups = HashMap::from([("g", 0usize)]);
        let idx = KeyIndex::build(&doc.apikeys, &routes, &groups, Some(&deployment)).unwrap();
        for alg in ["HS384", "HS512"] {
            let good = wide_jwt(alg, r#"{"iss":"wide","exp":100}"#, secret);
            assert!(
                idx.authenticate(&Credentials::Jwt(&good), 0).is_ok(),
                "{alg}"
            );
            let other = wide_jwt(
                alg,
                r#"{"iss":"wide","exp":100}"#,
                "not-the-secret-at-all-0123456789",
            );
            assert!(
                idx.authenticate(&Credentials::Jwt(&other), 0).is_err(),
                "{alg}"
            );
            let narrow = wide_jwt(alg, r#"{"iss":"narrow","exp":100}"#, secret);
            assert!(
                idx.authenticate(&Credentials::Jwt(&narrow), 0).is_err(),
                "{alg} not listed"
            );
        }
        // HS256 still works for both.
        for id in ["wide", "narrow"] {
            let good = jwt(&format!(r#"{{"iss":"{id}","exp":100}}"#), secret);
            assert!(
                idx.authenticate(&Credentials::Jwt(&good), 0).is_ok(),
                "{id}"
            );
        }
    }

    #[test]
    fn otoroshis_documented_bearer() {
        // `manual/next/docs/tutorials/secure-with-apikey.mdx` of Otoroshi.
        let idx = index(&[key("my-first-api-key-id", "my-first-api-key-secret")]);
        let bearer = "otoapk_my-first-api-key-id_99cb8e081d692044593ad0e658a67a5114f7afbdcbeb26f8087cce0df3b610b2";
        let call = |bearer: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("authorization", format!("Bearer {bearer}").parse().unwrap());
            let found = super::super::credentials::extract_otoroshi(
                &headers,
                "otoroshi-client-id",
                "otoroshi-client-secret",
            )
            .unwrap()
            .unwrap();
            idx.authenticate(&found, 0).map(|k| k.client_id.to_string())
        };
        assert_eq!(call(bearer).unwrap(), "my-first-api-key-id");
        assert!(call(&bearer.replace("99cb", "99cc")).is_err());
    }

    #[test]
    fn secret_pair() {
        let idx = index(&[key("app", "s3cret")]);
        assert_eq!(
            &*idx
                .authenticate(&pair("app", "s3cret"), 0)
                .unwrap()
                .client_id,
            "app"
        );
        assert!(idx.authenticate(&pair("app", "wrong"), 0).is_err());
        assert!(idx.authenticate(&pair("nobody", "s3cret"), 0).is_err());
    }

    #[test]
    fn disabled_and_expired_keys_are_refused() {
        let mut off = key("off", "s");
        off.enabled = false;
        let mut old = key("old", "s");
        old.expires_at = Some("1970-01-01T00:00:10Z".into());
        let idx = index(&[off, old]);
        let e = idx.authenticate(&pair("off", "s"), 0).unwrap_err();
        assert_eq!(e.to_string(), "this API key is disabled");
        assert!(idx.authenticate(&pair("old", "s"), 9_999).is_ok());
        let e = idx.authenticate(&pair("old", "s"), 10_000).unwrap_err();
        assert_eq!(e.to_string(), "this API key has expired");
    }

    #[test]
    fn jwt_signed_with_the_client_secret() {
        let idx = index(&[key("app", "s3cret")]);
        let good = jwt(r#"{"iss":"app","exp":100}"#, "s3cret");
        assert!(idx.authenticate(&Credentials::Jwt(&good), 99_000).is_ok());
        let e = idx
            .authenticate(&Credentials::Jwt(&good), 100_000)
            .unwrap_err();
        assert!(e.to_string().contains("expired"));
        let forged = jwt(r#"{"iss":"app","exp":100}"#, "guess");
        assert!(idx.authenticate(&Credentials::Jwt(&forged), 0).is_err());
    }

    #[test]
    fn previous_secret_works_during_the_grace_period_only() {
        let mut k = key("app", "new");
        k.rotation.previous_secret_hash = Some(SecretHash::from_secret(b"old").to_text());
        k.rotation.previous_expires_at = Some("1970-01-01T00:01:00Z".into());
        let idx = index(&[k]);
        assert!(idx.authenticate(&pair("app", "new"), 0).is_ok());
        assert!(idx.authenticate(&pair("app", "old"), 59_999).is_ok());
        assert!(idx.authenticate(&pair("app", "old"), 60_000).is_err());
        let old_jwt = jwt(r#"{"iss":"app","exp":100}"#, "old");
        assert!(idx
            .authenticate(&Credentials::Jwt(&old_jwt), 59_000)
            .is_ok());
        assert!(idx
            .authenticate(&Credentials::Jwt(&old_jwt), 60_000)
            .is_err());
    }

    #[test]
    fn stored_forms_check_every_credential_with_the_deployment_key_only() {
        let deployment =
            SealingKey::from_text("a-deployment-key-of-at-least-32-characters").unwrap();
        let mut doc_key = key("app", "app-secret-0123456789");
        doc_key.client_secret_hash = None;
        doc_key.client_secret = Some("app-secret-0123456789".into());
        let mut doc = crate::Document {
            apikeys: vec![doc_key],
            ..Default::default()
        };
        doc.seal_secrets(Some(&deployment));
        let routes = HashMap::from([("r1", 1usize)]);
        let groups = HashMap::from([("g", 0usize)]);
        let idx = KeyIndex::build(&doc.apikeys, &routes, &groups, Some(&deployment)).unwrap();
        assert!(idx
            .authenticate(&pair("app", "app-secret-0123456789"), 0)
            .is_ok());
        let good = jwt(r#"{"iss":"app","exp":100}"#, "app-secret-0123456789");
        assert!(idx.authenticate(&Credentials::Jwt(&good), 0).is_ok());
        // What is stored signs nothing: neither the verifier nor the sealed
        // text, taken as an HMAC key, makes a JWT the gateway accepts.
        for stored in [
            doc.apikeys[0].client_secret_hash.clone().unwrap(),
            doc.apikeys[0].client_secret_sealed.clone().unwrap(),
        ] {
            let forged = jwt(r#"{"iss":"app","exp":100}"#, &stored);
            assert!(idx.authenticate(&Credentials::Jwt(&forged), 0).is_err());
            assert!(idx.authenticate(&pair("app", &stored), 0).is_err());
        }
        // Another deployment's key, or none, cannot open the sealed form.
        let other = SealingKey::from_text("another-deployment-key-of-32-chars!!").unwrap();
        for sealing in [Some(&other), None] {
            let err = KeyIndex::build(&doc.apikeys, &routes, &groups, sealing)
                .err()
                .unwrap();
            assert_eq!(err.0[0].field, "apikeys[0].clientSecretSealed");
            assert!(err.0[0].message.contains("KOMAINU_SECRET_KEY"), "{err}");
        }
        // Without the sealed form, the verifier alone still checks the pair.
        doc.apikeys[0].client_secret_sealed = None;
        let idx = KeyIndex::build(&doc.apikeys, &routes, &groups, None).unwrap();
        assert!(idx
            .authenticate(&pair("app", "app-secret-0123456789"), 0)
            .is_ok());
        let e = idx.authenticate(&Credentials::Jwt(&good), 0).unwrap_err();
        assert!(e.to_string().contains("KOMAINU_SECRET_KEY"), "{e}");
    }

    /// A JWT signed by a private key; the key's public half as a JWK.
    fn es256(seed: u8) -> (p256::ecdsa::SigningKey, PublicJwk) {
        let signing = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwk = PublicJwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: point.x().map(|x| b64(x)),
            y: point.y().map(|y| b64(y)),
            n: None,
            e: None,
            kid: Some(format!("k{seed}")),
            alg: None,
            use_: None,
            d: None,
        };
        (signing, jwk)
    }

    fn signed(header: &str, payload: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let input = format!("{}.{}", b64.encode(header), b64.encode(payload));
        let signature = sign(input.as_bytes());
        format!("{input}.{}", b64.encode(signature))
    }

    #[test]
    fn jwts_signed_with_registered_public_keys() {
        use ed25519_dalek::Signer as _;
        let (ec, ec_jwk) = es256(7);
        let ed = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let ed_jwk = PublicJwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(ed.verifying_key().as_bytes()),
            ),
            ..ec_jwk.clone()
        };
        let mut k = key("app", "unused-secret-0123456789");
        k.client_secret_hash = None;
        k.jwks = vec![
            ec_jwk.clone(),
            PublicJwk {
                kid: None,
                y: None,
                ..ed_jwk
            },
        ];
        let idx = index(&[k]);
        let payload = r#"{"iss":"app","exp":100}"#;
        let es = |h: &str| {
            signed(h, payload, |m| {
                let s: p256::ecdsa::Signature = ec.sign(m);
                s.to_bytes().to_vec()
            })
        };
        let good = es(r#"{"alg":"ES256","kid":"k7"}"#);
        assert!(idx.authenticate(&Credentials::Jwt(&good), 0).is_ok());
        let no_kid = es(r#"{"alg":"ES256"}"#);
        assert!(idx.authenticate(&Credentials::Jwt(&no_kid), 0).is_ok());
        let other_kid = es(r#"{"alg":"ES256","kid":"k8"}"#);
        assert!(idx.authenticate(&Credentials::Jwt(&other_kid), 0).is_err());
        let eddsa = signed(r#"{"alg":"EdDSA"}"#, payload, |m| {
            ed.sign(m).to_bytes().to_vec()
        });
        assert!(idx.authenticate(&Credentials::Jwt(&eddsa), 0).is_ok());
        // Another private key, or the ES256 signature presented as EdDSA: refused.
        let (stranger, _) = es256(8);
        let forged = signed(r#"{"alg":"ES256"}"#, payload, |m| {
            let s: p256::ecdsa::Signature = stranger.sign(m);
            s.to_bytes().to_vec()
        });
        assert!(idx.authenticate(&Credentials::Jwt(&forged), 0).is_err());
        let confused = signed(r#"{"alg":"EdDSA"}"#, payload, |m| {
            let s: p256::ecdsa::Signature = ec.sign(m);
            s.to_bytes().to_vec()
        });
        assert!(idx.authenticate(&Credentials::Jwt(&confused), 0).is_err());
        // No secret: HS256 with anything, the header pair, Basic: refused.
        let hs = jwt(payload, "unused-secret-0123456789");
        assert!(idx.authenticate(&Credentials::Jwt(&hs), 0).is_err());
        assert!(idx
            .authenticate(&pair("app", "unused-secret-0123456789"), 0)
            .is_err());
    }

    #[test]
    fn private_and_unusable_keys_are_refused() {
        let (_, mut jwk) = es256(3);
        assert!(VerifyingKey::from_jwk(&jwk).is_ok());
        jwk.d = Some(serde_json::json!("c2VjcmV0"));
        assert!(VerifyingKey::from_jwk(&jwk)
            .unwrap_err()
            .contains("private key"));
        let (_, mut off_curve) = es256(3);
        off_curve.y = off_curve.x.clone();
        assert!(VerifyingKey::from_jwk(&off_curve).is_err());
        let small_rsa = PublicJwk {
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some("AQAB".into()),
            e: Some("AQAB".into()),
            kid: None,
            alg: None,
            use_: None,
            d: None,
        };
        assert!(VerifyingKey::from_jwk(&small_rsa)
            .unwrap_err()
            .contains("2048"));
        let (_, mut wrong_alg) = es256(3);
        wrong_alg.alg = Some("RS256".into());
        assert!(VerifyingKey::from_jwk(&wrong_alg).is_err());
    }

    #[test]
    fn authorization_by_route_or_shared_group() {
        let idx = index(&[key("app", "s")]);
        let k = idx.get("app").unwrap();
        assert!(k.may_call(1, &[]));
        assert!(k.may_call(2, &[0, 1]));
        assert!(!k.may_call(2, &[1]));
    }
}
