//! A real OpenID Provider (npm `oidc-provider`, `tests/oidc/provider.mjs`)
//! on a free loopback port; stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::worker::root;

/// The client secret of the provider's static client.
pub const CLIENT_SECRET: &str = "komainu-oidc-test-client-secret";

/// A running provider.
pub struct OidcProvider {
    child: Child,
    /// Its issuer URL (`http://127.0.0.1:port`).
    pub issuer: String,
}

impl OidcProvider {
    /// Starts the provider with one static client, `komainu` (secret
    /// [`CLIENT_SECRET`]), allowed to come back to `redirect_uris`.
    pub fn start(redirect_uris: &[String]) -> Self {
        Self::start_with(redirect_uris, &[])
    }

    /// [`OidcProvider::start`], the client also allowed to send people
    /// back to `post_logout_redirect_uris` after logging out.
    pub fn start_with(redirect_uris: &[String], post_logout_redirect_uris: &[String]) -> Self {
        let root = root();
        let options = serde_json::json!({
            "clients": [{
                "client_id": "komainu",
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                "post_logout_redirect_uris": post_logout_redirect_uris,
            }],
        });
        let mut child = Command::new(root.join("node_modules/.bin/node"))
            .arg(root.join("tests/oidc/provider.mjs"))
            .arg(options.to_string())
            .current_dir(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tests/oidc/provider.mjs (./scripts/test.sh installs node_modules)");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut issuer = String::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.expect("the provider's output");
            if let Some(url) = line.strip_prefix("oidc provider listening on ") {
                issuer = url.trim().to_owned();
                break;
            }
        }
        // Keep reading: a closed pipe would end the provider at its next line.
        std::thread::spawn(move || lines.for_each(drop));
        assert!(!issuer.is_empty(), "the OpenID provider did not start");
        Self { child, issuer }
    }

    /// The auth module for this provider (`id`), mapping its roles onto
    /// the admin API's.
    pub fn module(&self, id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "name": "Corp SSO",
            "kind": "oidc",
            "issuer": self.issuer,
            "clientId": "komainu",
            "clientSecret": CLIENT_SECRET,
            "scopes": ["openid", "email", "profile", "roles"],
            "rolesClaim": "roles",
            "adminRoles": ["komainu-admins"],
            "viewerRoles": ["komainu-viewers"],
            "allowedEmailDomains": ["example.com"],
        })
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
