//! People's logins through a real OpenID Provider (npm `oidc-provider`),
//! in a real browser (Debian's Chromium through playwright-core), on the
//! real binary and the real Worker: `tests/browser/login.mjs` drives them.

use std::process::Command;

use http::{Method, StatusCode};
use komainu_e2e::oidc::OidcProvider;
use komainu_e2e::worker::root;
use komainu_e2e::{Admin, Komainu, Worker};

/// Creates the modules the scenario uses: `corp` (the provider), `down`
/// (a provider that does not answer) and `staff` (a local user).
async fn configure(admin: &Admin, provider: &OidcProvider) {
    admin
        .create("/api/auth-modules", provider.module("corp"))
        .await;
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

fn drive(deployment: &str, ui: &str) {
    let root = root();
    let shots = root.join("target/ui-screenshots").join(deployment);
    let options = serde_json::json!({ "ui": ui, "deployment": deployment, "shots": shots });
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
    let gw = Komainu::start(r#"{"format":1}"#);
    let admin = Admin::new(&gw.admin_base());
    let callback = gw.admin_url("/api/login/corp/callback");
    let provider = OidcProvider::start(&[callback]);
    configure(&admin, &provider).await;
    let ui = gw.admin_url("/");
    tokio::task::spawn_blocking(move || drive("native", &ui))
        .await
        .unwrap();
    drop(provider);
}

#[tokio::test(flavor = "multi_thread")]
async fn people_log_in_to_the_worker_ui_through_an_openid_provider() {
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let admin = Admin::new(&worker.admin_base());
    let callback = worker.url("/_komainu/api/login/corp/callback");
    let provider = OidcProvider::start(&[callback]);
    configure(&admin, &provider).await;
    let ui = worker.url("/_komainu/");
    tokio::task::spawn_blocking(move || drive("worker", &ui))
        .await
        .unwrap();
    drop(provider);
    drop(worker);
}
