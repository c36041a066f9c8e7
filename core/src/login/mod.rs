//! Human login: the auth modules compiled once per configuration, local
//! passwords (argon2id), the people they let in and the role each gets on
//! the admin API.
//!
//! A person, once logged in by any module, is a [`Person`]: the module, a
//! subject (the local username, or the provider's `sub`), email, name and
//! roles. The module's `adminRoles` / `viewerRoles` say what the admin API
//! lets them do ([`Role`]); a person with neither role may still use the
//! private routes of that module.
//!
//! Sessions need no server-side state (see [`crate::admin::session`]);
//! what revokes them is configuration, checked on every request against
//! the [`Directory`] of the live revision: the module removed or disabled,
//! its `sessionsNotBefore` moved past the session's start, a local user
//! removed, disabled, or given another password.

pub mod oidc;
mod throttle;

use std::collections::HashMap;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use throttle::{LoginThrottle, FREE_FAILURES, MAX_FAILURES_PER_DAY, MAX_LOCK_MS};

use crate::model::{AuthKind, AuthModule, Document};
use crate::secret::SealingKey;

/// What a person may do on the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read and write.
    Admin,
    /// Read only: every write answers 403.
    Viewer,
}

impl Role {
    /// The name shown by the API.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

/// A person logged in by an auth module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// The module that logged them in.
    pub module: String,
    /// Who they are for that module: the local username, or the
    /// provider's `sub`.
    pub subject: String,
    /// Their email, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their display name, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their roles (local users' own, or the provider's claim).
    pub roles: Vec<String>,
}

impl Person {
    /// How audit events and the UI name them: the email, else
    /// `module/subject`.
    pub fn label(&self) -> String {
        match &self.email {
            Some(email) => email.clone(),
            None => format!("{}/{}", self.module, self.subject),
        }
    }
}

/// At most this many roles are kept in a session (a cookie is small).
pub const MAX_SESSION_ROLES: usize = 32;

/// Why a login or a session is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No such module, or it is disabled.
    #[error("no enabled auth module \"{0}\"")]
    UnknownModule(String),
    /// The module does not log in this way (a password sent to `oidc`).
    #[error("auth module \"{module}\" is {kind}: {how}")]
    WrongKind {
        /// The module.
        module: String,
        /// Its kind.
        kind: &'static str,
        /// How it logs people in.
        how: &'static str,
    },
    /// Wrong username or password (which one is not said).
    #[error("wrong username or password")]
    BadCredentials,
    /// The session no longer holds (revoked, user changed or removed).
    #[error("the session was ended by a change of configuration: log in again")]
    Revoked,
    /// Logged in, but given no role on the admin API.
    #[error("{0} has no role on the admin API (the module's adminRoles or viewerRoles)")]
    NoRole(String),
}

/// A compiled local user.
struct LocalEntry {
    hash: String,
    stamp: String,
    roles: Vec<String>,
    email: Option<String>,
    name: Option<String>,
    enabled: bool,
}

/// A compiled auth module.
pub struct Module {
    id: String,
    name: String,
    kind: AuthKind,
    admin_roles: Vec<String>,
    viewer_roles: Vec<String>,
    session_ms: u64,
    not_before_ms: u64,
    users: HashMap<String, LocalEntry>,
    oidc: Option<OidcSettings>,
}

/// What an `oidc` module needs at login (its client secret opened).
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer URL.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// The client secret, if the client has one.
    pub client_secret: Option<String>,
    /// The scopes asked for (with `openid`).
    pub scopes: Vec<String>,
    /// The claim holding roles.
    pub roles_claim: String,
    /// Email domains allowed (empty: any).
    pub allowed_email_domains: Vec<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// The module's id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// What the login page shows.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// How it logs people in.
    pub fn kind(&self) -> AuthKind {
        self.kind
    }
    /// How long its sessions last (ms).
    pub fn session_ms(&self) -> u64 {
        self.session_ms
    }
    /// The provider settings of an `oidc` module.
    pub fn oidc(&self) -> Option<&OidcSettings> {
        self.oidc.as_ref()
    }

    /// The admin API role of someone with `roles`: admin wins over viewer.
    pub fn role_of(&self, roles: &[String]) -> Option<Role> {
        let has = |wanted: &[String]| roles.iter().any(|r| wanted.contains(r));
        if has(&self.admin_roles) {
            Some(Role::Admin)
        } else if has(&self.viewer_roles) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

/// What the login page offers: one entry per enabled module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginOption {
    /// The module id.
    pub id: String,
    /// What to show.
    pub name: String,
    /// `local` (a username and password form) or `oidc` (a button).
    pub kind: &'static str,
}

/// The auth modules of one configuration revision.
#[derive(Default)]
pub struct Directory {
    modules: Vec<Module>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.modules.iter().map(|m| &m.id))
            .finish()
    }
}

/// A session's binding to a local user's password: changing the password
/// ends the user's sessions.
fn stamp_of(hash: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(hash.as_bytes())[..9])
}

impl Directory {
    /// Compiles the enabled modules of `doc` (client secrets opened with
    /// `sealing`). A module whose secret cannot be opened is compiled
    /// without it (the provider then refuses the client, which says why).
    pub fn compile(doc: &Document, sealing: Option<&SealingKey>) -> Self {
        let modules = doc
            .auth_modules
            .iter()
            .filter(|m| m.enabled)
            .map(|m| compile_module(m, sealing))
            .collect();
        Self { modules }
    }

    /// The enabled module `id`.
    pub fn module(&self, id: &str) -> Result<&Module, LoginError> {
        self.modules
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| LoginError::UnknownModule(id.to_owned()))
    }

    /// Whether any module is enabled.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// What the login page offers.
    pub fn options(&self) -> Vec<LoginOption> {
        self.modules
            .iter()
            .map(|m| LoginOption {
                id: m.id.clone(),
                name: m.name.clone(),
                kind: m.kind.name(),
            })
            .collect()
    }

    /// Checks a local user's password. The work is the same whether the
    /// user exists or not (no timing tells which usernames exist).
    pub fn verify_password(
        &self,
        module: &str,
        username: &str,
        password: &str,
    ) -> Result<(Person, String), LoginError> {
        let m = self.module(module)?;
        if m.kind != AuthKind::Local {
            return Err(LoginError::WrongKind {
                module: module.to_owned(),
                kind: m.kind.name(),
                how: "people log in through the provider (GET /api/login/{id})",
            });
        }
        let entry = m.users.get(username).filter(|u| u.enabled);
        let hash = entry.map_or(DUMMY_HASH, |u| u.hash.as_str());
        let good = password.chars().count() <= crate::model::MAX_PASSWORD_CHARS
            && verify_hash(hash, password);
        match entry {
            Some(u) if good => Ok((
                Person {
                    module: m.id.clone(),
                    subject: username.to_owned(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    roles: u.roles.clone(),
                },
                u.stamp.clone(),
            )),
            _ => Err(LoginError::BadCredentials),
        }
    }

    /// Whether a session of `person` (with `stamp`, started at
    /// `issued_ms`) still holds, and the role it has now. A local user's
    /// roles are read from the configuration (a change applies at once).
    pub fn check_session(
        &self,
        person: &Person,
        stamp: &str,
        issued_ms: u64,
    ) -> Result<(Person, Option<Role>), LoginError> {
        let m = self
            .module(&person.module)
            .map_err(|_| LoginError::Revoked)?;
        if issued_ms < m.not_before_ms {
            return Err(LoginError::Revoked);
        }
        let person = match m.kind {
            AuthKind::Local => {
                let u = m
                    .users
                    .get(&person.subject)
                    .filter(|u| u.enabled && u.stamp == stamp)
                    .ok_or(LoginError::Revoked)?;
                Person {
                    roles: u.roles.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    ..person.clone()
                }
            }
            AuthKind::Oidc => person.clone(),
        };
        let role = m.role_of(&person.roles);
        Ok((person, role))
    }
}

fn compile_module(m: &AuthModule, sealing: Option<&SealingKey>) -> Module {
    let users = m
        .users
        .iter()
        .filter_map(|u| {
            let hash = u.password_hash.clone()?;
            Some((
                u.username.clone(),
                LocalEntry {
                    stamp: stamp_of(&hash),
                    hash,
                    roles: u.roles.clone(),
                    email: u.email.clone(),
                    name: u.name.clone(),
                    enabled: u.enabled,
                },
            ))
        })
        .collect();
    let oidc = (m.kind == AuthKind::Oidc).then(|| {
        let client_secret = m.client_secret.clone().or_else(|| {
            let sealed = m.client_secret_sealed.as_deref()?;
            let bytes = sealing?.open_bytes(&m.seal_context(), sealed).ok()?;
            String::from_utf8(bytes).ok()
        });
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(m.scopes.iter().filter(|s| *s != "openid").cloned());
        OidcSettings {
            issuer: m.issuer.clone().unwrap_or_default(),
            client_id: m.client_id.clone().unwrap_or_default(),
            client_secret,
            scopes,
            roles_claim: m.roles_claim.clone(),
            allowed_email_domains: m
                .allowed_email_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    });
    Module {
        id: m.id.clone(),
        name: m.display_name().to_owned(),
        kind: m.kind,
        admin_roles: m.admin_roles.clone(),
        viewer_roles: m.viewer_roles.clone(),
        session_ms: m.session_seconds.saturating_mul(1000),
        not_before_ms: m
            .sessions_not_before
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
            .unwrap_or(0),
        users,
        oidc,
    }
}

/// The argon2id parameters of new hashes: OWASP's first choice
/// (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of no password, verified when the user does not exist so that
/// the answer takes as long either way.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Xl0m0ZbGcLhvJ3wU8dn4yHuJxD6Xc1hxmD9lPzq7V3M";

/// Hashes `password` with argon2id and a salt from `random` (16 bytes of
/// it): the PHC string stored as `passwordHash`.
pub fn hash_password(password: &str, random: &[u8; 32]) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random[..16]).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        // The hash's own parameters are used (hashes made with other
        // settings still verify), within bounds checked when stored.
        hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Checks a stored `passwordHash`: an argon2id PHC string whose cost is
/// bounded (a hash asking for gigabytes would let one login exhaust the
/// gateway).
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    const HOW: &str =
        "must be an argon2id PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash), or set password instead";
    let parsed = PasswordHash::new(hash).map_err(|_| HOW.to_owned())?;
    if parsed.algorithm.as_str() != "argon2id" || parsed.hash.is_none() {
        return Err(HOW.into());
    }
    let params = Params::try_from(&parsed).map_err(|_| HOW.to_owned())?;
    if params.m_cost() > 256 * 1024 || params.t_cost() > 16 || params.p_cost() > 8 {
        return Err(
            "asks for too much work (at most m=262144 KiB, t=16, p=8): hash with smaller parameters"
                .into(),
        );
    }
    Ok(())
}

/// Hashes the clear passwords of local users in `doc` (a salt per user,
/// from `random`). Whether anything changed.
pub fn hash_passwords(doc: &mut Document, random: &[u8; 32]) -> Result<bool, String> {
    let mut changed = false;
    for m in &mut doc.auth_modules {
        for u in &mut m.users {
            if let Some(password) = u.password.take() {
                let mut salt_seed = Sha256::new();
                salt_seed.update(random);
                salt_seed.update(m.id.as_bytes());
                salt_seed.update([0]);
                salt_seed.update(u.username.as_bytes());
                let salt: [u8; 32] = salt_seed.finalize().into();
                u.password_hash = Some(hash_password(&password, &salt)?);
                changed = true;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LocalUser;

    fn doc_with(users: Vec<LocalUser>) -> Document {
        let mut doc = Document::default();
        doc.auth_modules.push(AuthModule {
            users,
            ..AuthModule::new("staff", AuthKind::Local)
        });
        doc
    }

    fn user(name: &str, password: &str, roles: &[&str]) -> LocalUser {
        LocalUser {
            username: name.into(),
            password: Some(password.into()),
            password_hash: None,
            roles: roles.iter().map(|r| (*r).into()).collect(),
            email: Some(format!("{name}@example.com")),
            name: None,
            enabled: true,
        }
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash() {
        assert!(check_password_hash(DUMMY_HASH).is_ok());
        assert!(!verify_hash(DUMMY_HASH, "anything"));
    }

    #[test]
    fn a_local_user_logs_in_with_the_right_password_only() {
        let mut doc = doc_with(vec![
            user("alice", "correct horse", &["admin"]),
            user("bob", "battery staple", &["viewer"]),
        ]);
        assert!(hash_passwords(&mut doc, &[3; 32]).expect("hash"));
        let stored = doc.auth_modules[0].users[0]
            .password_hash
            .clone()
            .expect("hashed");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(doc.auth_modules[0].users[0].password.is_none());
        // Two users, two salts.
        assert_ne!(
            stored.split('$').nth(4),
            doc.auth_modules[0].users[1]
                .password_hash
                .as_deref()
                .and_then(|h| h.split('$').nth(4))
        );
        let dir = Directory::compile(&doc, None);
        let (alice, stamp) = dir
            .verify_password("staff", "alice", "correct horse")
            .expect("good password");
        assert_eq!(alice.subject, "alice");
        assert_eq!(
            dir.module("staff").expect("module").role_of(&alice.roles),
            Some(Role::Admin)
        );
        for (name, pw) in [
            ("alice", "wrong"),
            ("nobody", "correct horse"),
            ("", ""),
            ("bob", "correct horse"),
        ] {
            assert_eq!(
                dir.verify_password("staff", name, pw),
                Err(LoginError::BadCredentials)
            );
        }
        assert!(matches!(
            dir.verify_password("other", "alice", "correct horse"),
            Err(LoginError::UnknownModule(_))
        ));
        // The session holds until the password changes.
        assert!(dir.check_session(&alice, &stamp, 0).is_ok());
        doc.auth_modules[0].users[0].password = Some("a new password".into());
        hash_passwords(&mut doc, &[4; 32]).expect("hash");
        let dir = Directory::compile(&doc, None);
        assert_eq!(
            dir.check_session(&alice, &stamp, 0),
            Err(LoginError::Revoked)
        );
    }

    #[test]
    fn sessions_end_with_the_module_the_user_or_a_revocation() {
        let mut doc = doc_with(vec![user("alice", "correct horse", &["viewer"])]);
        hash_passwords(&mut doc, &[3; 32]).expect("hash");
        let dir = Directory::compile(&doc, None);
        let (alice, stamp) = dir
            .verify_password("staff", "alice", "correct horse")
            .expect("login");
        let (_, role) = dir.check_session(&alice, &stamp, 1_000).expect("holds");
        assert_eq!(role, Some(Role::Viewer));
        // Roles follow the configuration.
        doc.auth_modules[0].users[0].roles = vec!["admin".into()];
        let (_, role) = Directory::compile(&doc, None)
            .check_session(&alice, &stamp, 1_000)
            .expect("holds");
        assert_eq!(role, Some(Role::Admin));
        doc.auth_modules[0].users[0].roles.clear();
        let (_, role) = Directory::compile(&doc, None)
            .check_session(&alice, &stamp, 1_000)
            .expect("holds");
        assert_eq!(role, None);
        let mut revoked = doc.clone();
        revoked.auth_modules[0].sessions_not_before = Some(crate::time::format_rfc3339(2_000));
        let dir = Directory::compile(&revoked, None);
        assert!(dir.check_session(&alice, &stamp, 1_000).is_err());
        assert!(dir.check_session(&alice, &stamp, 2_000).is_ok());
        let mut disabled = doc.clone();
        disabled.auth_modules[0].users[0].enabled = false;
        assert!(Directory::compile(&disabled, None)
            .check_session(&alice, &stamp, 1_000)
            .is_err());
        let mut gone = doc.clone();
        gone.auth_modules[0].enabled = false;
        assert!(Directory::compile(&gone, None)
            .check_session(&alice, &stamp, 1_000)
            .is_err());
    }

    #[test]
    fn costly_or_foreign_hashes_are_refused() {
        assert!(check_password_hash(
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
        )
        .is_err());
        assert!(check_password_hash("$2b$12$abcdefghijklmnopqrstuv").is_err());
        assert!(check_password_hash("plain").is_err());
    }
}
