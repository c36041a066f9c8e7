//! People's logins through a real OpenID Provider (npm `oidc-provider`),
//! in a real browser (Debian's Chromium through playwright-core), on the
//! real binary and the real Worker: `tests/browser/login.mjs` drives them.

use std::process::Command;

use http::{Method, StatusCode};
use komainu_e2e::oidc::OidcProvider;
use komainu_e2e::worker::root;
use komainu_e2e::{Admin, Komainu, Upstream, Worker};

/// Creates the modules the scenario uses, `corp` (the provider) and
/// `down` (a provider that does not answer), and the private route
/// `/private/…` (people of `corp` only) to `up`.
async fn configure(admin: &Admin, provider: &OidcProvider, up: &Upstream) {
    admin
        .create("/api/auth-modules", provider.module("corp"))
        .await;
    admin
        .create(
            "/api/routes",
            serde_json::json!({
                "id": "private", "paths": ["/private", "/private/{*rest}"],
                "auth": { "module": "corp" },
                "backend": { "targets": [{ "url": up.url() }] },
            }),
        )
        .await;
    // A private route needs an OpenID module that exists.
    let refused = admin
        .call(
            Method::POST,
            "/api/routes",
            serde_json::json!({ "id": "bad", "paths": ["/bad"], "auth": { "module": "nope" } }),
        )
        .await;
    refused.expect_status(StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["field"], "auth.module");
    let mut down = provider.module("down");
    down["issuer"] = "http://127.0.0.1:9".into();
    down["name"] = "Down SSO".into();
    admin.create("/api/auth-modules", down).await;
    // The client secret is sealed at rest, never shown.
    let shown = admin
        .call(
            Method::GET,
            "/api/auth-modules/corp",
            serde_json::Value::Null,
        )
        .await;
    shown.expect_status(StatusCode::OK);
    assert!(!String::from_utf8_lossy(&shown.body).contains(komainu_e2e::oidc::CLIENT_SECRET));
    assert_eq!(shown.json()["clientSecretSet"], true);
}

fn drive(deployment: &str, ui: &str, proxy: &str) {
    let root = root();
    let shots = root.join("target/ui-screenshots").join(deployment);
    let options =
        serde_json::json!({ "ui": ui, "proxy": proxy, "deployment": deployment, "shots": shots });
    let out = Command::new(root.join("node_modules/.bin/node"))
        .arg(root.join("tests/browser/login.mjs"))
        .arg(options.to_string())
        .current_dir(&root)
        .output()
        .expect("run node tests/browser/login.mjs (./scripts/test.sh installs node_modules and chromium)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "people's logins in a browser ({deployment}):\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn people_log_in_to_the_native_ui_through_an_openid_provider() {
    let up = Upstream::start().await;
    let gw = Komainu::start(r#"{"format":1}"#);
    let admin = Admin::new(&gw.admin_base());
    let provider = OidcProvider::start_with(
        &[
            gw.admin_url("/api/login/corp/callback"),
            gw.url("/.well-known/komainu/callback/corp"),
        ],
        &[gw.url("/.well-known/komainu/logged-out")],
    );
    configure(&admin, &provider, &up).await;
    let (ui, proxy) = (gw.admin_url("/"), gw.url("/"));
    tokio::task::spawn_blocking(move || drive("native", &ui, &proxy))
        .await
        .unwrap();
    drop(provider);
}

#[tokio::test(flavor = "multi_thread")]
async fn people_log_in_to_the_worker_ui_through_an_openid_provider() {
    let up = Upstream::start().await;
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let admin = Admin::new(&worker.admin_base());
    let provider = OidcProvider::start_with(
        &[
            worker.url("/_komainu/api/login/corp/callback"),
            worker.url("/.well-known/komainu/callback/corp"),
        ],
        &[worker.url("/.well-known/komainu/logged-out")],
    );
    configure(&admin, &provider, &up).await;
    let (ui, proxy) = (worker.url("/_komainu/"), worker.url("/"));
    tokio::task::spawn_blocking(move || drive("worker", &ui, &proxy))
        .await
        .unwrap();
    drop(provider);
    drop(worker);
}
