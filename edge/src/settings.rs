//! The Worker's settings: `[vars]` or secrets of the same names as the
//! native flags' environment variables.

use komainu_core::secret::SealingKey;
use worker::Env;

/// Settings read from the environment on each request (cheap).
pub struct Settings {
    /// Where the admin API lives: `{admin_path}/api` (default `/_komainu`).
    pub admin_path: String,
    /// The one host the admin API and the web UI answer on
    /// (`KOMAINU_ADMIN_HOST`), which then serves nothing else: no page a
    /// backend serves shares the UI's origin. Unset: the admin path of
    /// every host the Worker serves.
    pub admin_host: Option<String>,
    /// `clientId:clientSecret` of the admin key (`KOMAINU_ADMIN_KEY`).
    pub admin_key: Option<String>,
    /// The claim signing secret (`KOMAINU_CLAIM_SECRET`).
    pub claim_secret: Option<String>,
    /// The deployment key sealing secrets at rest (`KOMAINU_SECRET_KEY`).
    pub secret_key: Option<String>,
}

thread_local! {
    /// The stored claim secret, once fetched by this isolate.
    static STORED_CLAIM_SECRET: std::cell::RefCell<Option<std::rc::Rc<str>>> = const { std::cell::RefCell::new(None) };
}

impl Settings {
    /// The claim signing secret: `KOMAINU_CLAIM_SECRET`, else the one the
    /// configuration object generated and keeps (fetched once per isolate).
    pub async fn claim_secret(&self, env: &Env) -> worker::Result<std::rc::Rc<str>> {
        if let Some(secret) = &self.claim_secret {
            return Ok(std::rc::Rc::from(secret.as_str()));
        }
        if let Some(secret) = STORED_CLAIM_SECRET.with(|s| s.borrow().clone()) {
            return Ok(secret);
        }
        let secret: std::rc::Rc<str> = crate::config_object::DoConfigStore { env }
            .claim_secret()
            .await?
            .into();
        STORED_CLAIM_SECRET.with(|s| *s.borrow_mut() = Some(secret.clone()));
        Ok(secret)
    }
}

impl Settings {
    /// The deployment key (`KOMAINU_SECRET_KEY`), if set; an invalid one
    /// is an error saying why.
    pub fn sealing(&self) -> Result<Option<SealingKey>, String> {
        self.secret_key
            .as_deref()
            .map(SealingKey::from_text)
            .transpose()
            .map_err(|e| e.to_string())
    }

    /// Reads the settings.
    pub fn from_env(env: &Env) -> Self {
        let read = |name: &str| {
            env.secret(name)
                .map(|s| s.to_string())
                .or_else(|_| env.var(name).map(|v| v.to_string()))
                .ok()
                .filter(|v| !v.is_empty())
        };
        Self {
            admin_path: read("KOMAINU_ADMIN_PATH")
                .map(|p| p.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| "/_komainu".to_owned()),
            admin_host: read("KOMAINU_ADMIN_HOST").map(|h| h.to_ascii_lowercase()),
            admin_key: read("KOMAINU_ADMIN_KEY"),
            claim_secret: read("KOMAINU_CLAIM_SECRET"),
            secret_key: read("KOMAINU_SECRET_KEY"),
        }
    }
}
