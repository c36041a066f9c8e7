//! Auth modules: how people log in (the web UI, the admin API, private
//! routes). An admin API entity, exported, imported and synced like the
//! others, live at once.
//!
//! Two kinds: `local` (users kept in the configuration, passwords as
//! argon2id hashes) and `oidc` (an OpenID Provider: authorization code with
//! PKCE, the ID token checked against the provider's keys). Both end the
//! same way: a person with roles, which [`AuthModule::admin_roles`] and
//! [`AuthModule::viewer_roles`] map onto the admin API's `admin`
//! (read-write) and `viewer` (read-only).

use serde::{Deserialize, Serialize};

use super::validate::{id_message, is_valid_id, Checker};

/// How an auth module logs people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// Users and argon2id password hashes kept in the configuration.
    Local,
    /// An OpenID Connect provider (authorization code + PKCE).
    Oidc,
}

impl AuthKind {
    /// The name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Oidc => "oidc",
        }
    }
}

/// An auth module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthModule {
    /// Unique id (in URLs: `/api/login/{id}`).
    #[cfg_attr(test, schemars(regex(pattern = r"^[A-Za-z0-9._~@+-]{1,128}$")))]
    pub id: String,
    /// What the login page shows ("Sign in with …").
    #[serde(default)]
    pub name: String,
    /// `local` or `oidc`.
    pub kind: AuthKind,
    /// A disabled module logs nobody in, and its sessions are refused.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Roles giving read-write access to the admin API and UI.
    #[serde(default = "default_admin_roles")]
    pub admin_roles: Vec<String>,
    /// Roles giving read-only access (every write answers 403).
    #[serde(default = "default_viewer_roles")]
    pub viewer_roles: Vec<String>,
    /// How long a session lasts, in seconds (60–2592000).
    #[serde(default = "default_session_seconds")]
    #[cfg_attr(test, schemars(range(min = 60, max = 2_592_000)))]
    pub session_seconds: u64,
    /// Sessions opened before this time (RFC 3339) are refused: set by
    /// `POST /api/auth-modules/{id}/revoke-sessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_not_before: Option<String>,
    /// `local`: the users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<LocalUser>,
    /// `oidc`: the issuer URL (`https://…`; its
    /// `/.well-known/openid-configuration` is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// `oidc`: the client id registered with the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `oidc`: the client secret; write-only, stored sealed.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(length(min = 1, max = 512)))]
    pub client_secret: Option<String>,
    /// `oidc`: the client secret, sealed with the deployment key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sealed: Option<String>,
    /// `oidc`: the scopes asked for (`openid` is always asked).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// `oidc`: the ID token claim holding the person's roles or groups
    /// (a string or an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// `oidc`: only people whose verified email is in one of these domains
    /// may log in; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_email_domains: Vec<String>,
}

/// A user of a `local` module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalUser {
    /// The login name (1–128 visible characters, no `:`).
    pub username: String,
    /// The password in clear (8–1024 characters): write-only, hashed with
    /// argon2id when saved.
    #[serde(default, skip_serializing)]
    #[cfg_attr(test, schemars(length(min = 8, max = 1024)))]
    pub password: Option<String>,
    /// The argon2id hash (PHC string) of the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Roles (see the module's `adminRoles` / `viewerRoles`), also sent to
    /// backends of private routes.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Email, sent to backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Display name, sent to backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A disabled user cannot log in, and their sessions are refused.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}
fn default_admin_roles() -> Vec<String> {
    vec!["admin".into()]
}
fn default_viewer_roles() -> Vec<String> {
    vec!["viewer".into()]
}
fn default_session_seconds() -> u64 {
    8 * 3600
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}
fn default_roles_claim() -> String {
    "roles".into()
}

/// Shortest password accepted for a local user.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_CHARS: usize = 1024;

impl AuthModule {
    /// A module of `kind` with every setting at its default.
    pub fn new(id: &str, kind: AuthKind) -> Self {
        Self {
            id: id.to_owned(),
            name: String::new(),
            kind,
            enabled: true,
            admin_roles: default_admin_roles(),
            viewer_roles: default_viewer_roles(),
            session_seconds: default_session_seconds(),
            sessions_not_before: None,
            users: Vec::new(),
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_sealed: None,
            scopes: default_scopes(),
            roles_claim: default_roles_claim(),
            allowed_email_domains: Vec::new(),
        }
    }

    /// The context a sealed client secret of this module is bound to.
    pub fn seal_context(&self) -> String {
        format!("auth-module:{}", self.id)
    }

    /// What the login page shows.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

/// Checks one module (at `at`, e.g. `authModules[0]`).
pub(crate) fn check_auth_module(c: &mut Checker, at: &str, m: &AuthModule) {
    if !is_valid_id(&m.id) {
        c.fail(format!("{at}.id"), id_message(&m.id));
    }
    if !(60..=2_592_000).contains(&m.session_seconds) {
        c.fail(
            format!("{at}.sessionSeconds"),
            "must be between 60 and 2592000 (30 days)",
        );
    }
    if let Some(t) = &m.sessions_not_before {
        if crate::time::parse_rfc3339(t).is_none() {
            c.fail(
                format!("{at}.sessionsNotBefore"),
                "must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
            );
        }
    }
    for (field, roles) in [
        ("adminRoles", &m.admin_roles),
        ("viewerRoles", &m.viewer_roles),
    ] {
        for (j, r) in roles.iter().enumerate() {
            if !is_role(r) {
                c.fail(
                    format!("{at}.{field}[{j}]"),
                    "a role is 1 to 256 visible characters",
                );
            }
        }
    }
    let kind = m.kind.name();
    let mut not_for = |field: &str, present: bool| {
        if present {
            c.fail(
                format!("{at}.{field}"),
                format!("is not used by a {kind} module: remove it"),
            );
        }
    };
    match m.kind {
        AuthKind::Local => {
            not_for("issuer", m.issuer.is_some());
            not_for("clientId", m.client_id.is_some());
            not_for(
                "clientSecret",
                m.client_secret.is_some() || m.client_secret_sealed.is_some(),
            );
            not_for("allowedEmailDomains", !m.allowed_email_domains.is_empty());
            check_users(c, at, &m.users);
        }
        AuthKind::Oidc => {
            not_for("users", !m.users.is_empty());
            match m.issuer.as_deref() {
                None | Some("") => c.fail(
                    format!("{at}.issuer"),
                    "an oidc module needs the provider's issuer URL (https://…; http:// only for localhost)",
                ),
                Some(url) => {
                    if let Err(why) = check_issuer(url) {
                        c.fail(format!("{at}.issuer"), why);
                    }
                }
            }
            match m.client_id.as_deref() {
                None | Some("") => c.fail(
                    format!("{at}.clientId"),
                    "an oidc module needs the client id registered with the provider",
                ),
                Some(id) if id.len() > 512 || id.chars().any(char::is_control) => c.fail(
                    format!("{at}.clientId"),
                    "must be at most 512 characters without control characters",
                ),
                Some(_) => {}
            }
            if let Some(secret) = &m.client_secret {
                if secret.is_empty() || secret.len() > 512 || secret.chars().any(char::is_control) {
                    c.fail(
                        format!("{at}.clientSecret"),
                        "must be 1 to 512 characters without control characters",
                    );
                }
            }
            for (j, s) in m.scopes.iter().enumerate() {
                if s.is_empty() || s.len() > 256 || s.bytes().any(|b| b <= b' ' || b == b'"') {
                    c.fail(
                        format!("{at}.scopes[{j}]"),
                        "a scope is 1 to 256 visible characters without spaces or quotes",
                    );
                }
            }
            if m.roles_claim.is_empty() || m.roles_claim.len() > 256 {
                c.fail(format!("{at}.rolesClaim"), "must be 1 to 256 characters");
            }
            for (j, d) in m.allowed_email_domains.iter().enumerate() {
                let ok = !d.is_empty()
                    && d.len() <= 253
                    && !d.starts_with('.')
                    && d.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if !ok {
                    c.fail(
                        format!("{at}.allowedEmailDomains[{j}]"),
                        "must be a domain name, e.g. example.com",
                    );
                }
            }
        }
    }
}

fn is_role(r: &str) -> bool {
    !r.is_empty() && r.len() <= 256 && !r.chars().any(char::is_control)
}

fn check_users(c: &mut Checker, at: &str, users: &[LocalUser]) {
    let mut names = std::collections::HashSet::new();
    for (j, u) in users.iter().enumerate() {
        let at = format!("{at}.users[{j}]");
        let name_ok = !u.username.is_empty()
            && u.username.len() <= 128
            && !u.username.contains(':')
            && !u
                .username
                .chars()
                .any(|ch| ch.is_control() || ch.is_whitespace());
        if !name_ok {
            c.fail(
                format!("{at}.username"),
                "must be 1 to 128 characters without spaces, control characters or ':'",
            );
        } else if !names.insert(u.username.as_str()) {
            c.fail(
                format!("{at}.username"),
                format!("duplicate username \"{}\"", u.username),
            );
        }
        match (&u.password, &u.password_hash) {
            (Some(p), _) => {
                let n = p.chars().count();
                if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
                    c.fail(
                        format!("{at}.password"),
                        format!("must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
                    );
                }
            }
            (None, Some(hash)) => {
                if let Err(why) = crate::login::check_password_hash(hash) {
                    c.fail(format!("{at}.passwordHash"), why);
                }
            }
            (None, None) => c.fail(
                format!("{at}.password"),
                "a user needs a password (it is stored as an argon2id hash)",
            ),
        }
        for (k, r) in u.roles.iter().enumerate() {
            if !is_role(r) {
                c.fail(
                    format!("{at}.roles[{k}]"),
                    "a role is 1 to 256 visible characters",
                );
            }
        }
        for (field, value) in [("email", &u.email), ("name", &u.name)] {
            if let Some(v) = value {
                if v.len() > 256 || v.chars().any(char::is_control) {
                    c.fail(
                        format!("{at}.{field}"),
                        "must be at most 256 characters without control characters",
                    );
                }
            }
        }
    }
}

/// An issuer is `https://` (or `http://` on a loopback host, for tests
/// and local providers), without a query or fragment.
fn check_issuer(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("must be a URL such as https://accounts.example.com")?;
    let host = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .rsplit_once('@')
        .map_or(
            rest.split(['/', '?', '#']).next().unwrap_or_default(),
            |(_, h)| h,
        );
    let hostname = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if hostname.is_empty() {
        return Err("must name a host, e.g. https://accounts.example.com".into());
    }
    if url.contains(['?', '#']) || url.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
        return Err("must not hold a query, a fragment or spaces".into());
    }
    let loopback =
        matches!(hostname, "localhost" | "127.0.0.1" | "::1") || hostname.ends_with(".localhost");
    match scheme {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "must be https:// (http:// is accepted only for a provider on this machine: localhost, 127.0.0.1, ::1)"
                .into(),
        ),
        _ => Err("must be an https:// URL".into()),
    }
}
