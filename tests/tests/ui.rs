//! The web UI in a real browser (Debian's Chromium, headless, through
//! playwright-core): `tests/browser/ui.mjs` drives it against the real
//! binary and the real Worker, with a real backend behind them.

use http::{Method, StatusCode};
use komainu_e2e::browser;
use komainu_e2e::gateway::ADMIN_KEY;
use komainu_e2e::{Admin, Client, Komainu, Upstream, Worker};

/// Runs the browser scenario; panics with its output when a step fails.
fn drive(deployment: &str, ui: &str, proxy: &str, backend: &str) {
    let options = serde_json::json!({
        "ui": ui,
        "proxy": proxy,
        "admin": ADMIN_KEY,
        "backend": backend,
        "deployment": deployment,
        "shots": browser::shots(deployment),
    });
    browser::run(
        "ui.mjs",
        &options,
        &format!("the UI in a browser ({deployment})"),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_drives_the_native_gateway_in_a_browser() {
    let up = Upstream::start().await;
    let gw = Komainu::start(r#"{"format":1}"#);
    let (ui, proxy, backend) = (gw.admin_url("/"), gw.url(""), up.url());
    tokio::task::spawn_blocking(move || drive("native", &ui, &proxy, &backend))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_drives_the_worker_in_a_browser() {
    let up = Upstream::start().await;
    let backend = up.url();
    tokio::task::spawn_blocking(move || {
        let worker = Worker::start();
        drive(
            "worker",
            &worker.url("/_komainu/"),
            &worker.url(""),
            &backend,
        );
    })
    .await
    .unwrap();
}

/// The UI's files, with their protections, from `base` (the UI's root).
async fn check_files(base: &str) {
    let c = Client::default();
    for (path, content_type) in [
        ("", "text/html"),
        ("app.js", "text/javascript"),
        ("pages/routes.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let r = c.get(&format!("{base}{path}"), &[]).await;
        r.expect_status(StatusCode::OK);
        assert!(r.header("content-type").starts_with(content_type), "{path}");
        assert!(
            r.header("content-security-policy")
                .contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
    }
    // (A fresh client, no body: workerd resets a connection whose request
    // body the Worker left unread.)
    let r = Client::default()
        .send(Method::POST, &format!("{base}app.js"), &[], "")
        .await;
    r.expect_status(StatusCode::METHOD_NOT_ALLOWED);
}

/// Logging in sets an HttpOnly, SameSite=Strict cookie scoped to `cookie_path`;
/// a write with it needs the CSRF value; logging out clears it.
async fn check_session(api: &str, cookie_path: &str) {
    // A fresh connection per call: workerd resets one whose request body
    // the Worker refused before reading it.
    let c = Client::default;
    let (id, secret) = ADMIN_KEY.split_once(':').unwrap();
    let r = c()
        .send(
            Method::POST,
            &format!("{api}/session"),
            &[("komainu-client-id", id), ("komainu-client-secret", secret)],
            "",
        )
        .await;
    r.expect_status(StatusCode::CREATED);
    let set = r.header("set-cookie").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(set.contains(&format!("Path={cookie_path};")), "{set}");
    let csrf = r.json()["csrfToken"].as_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let group = r#"{"id":"from-a-session"}"#;
    let r = c()
        .send(
            Method::POST,
            &format!("{api}/groups"),
            &[("cookie", &cookie)],
            group,
        )
        .await;
    r.expect_error(StatusCode::FORBIDDEN, "csrf");
    let r = c()
        .send(
            Method::POST,
            &format!("{api}/groups"),
            &[("cookie", &cookie), ("komainu-csrf", &csrf)],
            group,
        )
        .await;
    r.expect_status(StatusCode::CREATED);
    // A forged or altered cookie is no session.
    let altered = format!("{}x", cookie);
    let r = c()
        .get(&format!("{api}/routes"), &[("cookie", &altered)])
        .await;
    r.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let r = c()
        .send(
            Method::DELETE,
            &format!("{api}/session"),
            &[("cookie", &cookie), ("komainu-csrf", &csrf)],
            "",
        )
        .await;
    r.expect_status(StatusCode::OK);
    assert!(r.header("set-cookie").contains("Max-Age=0"));
}

#[tokio::test]
async fn the_native_admin_listener_serves_the_ui_and_its_sessions() {
    let gw = Komainu::start(r#"{"format":1}"#);
    check_files(&gw.admin_url("/")).await;
    check_session(&gw.admin_url("/api"), "/").await;
    // Try it: bad input is named.
    let r = Admin::new(&gw.admin_base())
        .call(
            Method::POST,
            "/api/try",
            serde_json::json!({ "method": "GET", "path": "no-slash" }),
        )
        .await;
    assert_eq!(
        r.expect_error(StatusCode::BAD_REQUEST, "invalid_request")["field"],
        "path"
    );
}

#[tokio::test]
async fn the_worker_serves_the_ui_under_its_admin_path() {
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let c = Client::default();
    let r = c.get(&worker.url("/_komainu"), &[]).await;
    r.expect_status(StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.header("location"), "/_komainu/");
    check_files(&worker.url("/_komainu/")).await;
    check_session(&worker.url("/_komainu/api"), "/_komainu").await;
    // Only the UI's own files: the rest of the admin path is the proxy's.
    let r = c.get(&worker.url("/_komainu/nothing.js"), &[]).await;
    r.expect_error(StatusCode::NOT_FOUND, "route_not_found");
    let r = Admin::new(&worker.admin_base())
        .call(
            Method::POST,
            "/api/try",
            serde_json::json!({ "method": "GET", "path": "/" }),
        )
        .await;
    r.expect_error(StatusCode::NOT_IMPLEMENTED, "not_offered");
}

#[tokio::test]
async fn with_an_admin_host_the_worker_serves_the_ui_there_only() {
    let up = Upstream::start().await;
    let worker =
        tokio::task::spawn_blocking(|| Worker::start_with_args(&["--admin-host", "localhost"]))
            .await
            .unwrap();
    // Miniflare listens on 127.0.0.1: "localhost" is the same socket under
    // another host name.
    let on_admin_host = |path: &str| worker.url(path).replace("127.0.0.1", "localhost");
    let c = Client::default();
    check_files(&on_admin_host("/_komainu/")).await;
    let admin = Admin::new(&on_admin_host("/_komainu"));
    admin
        .call(
            Method::POST,
            "/api/routes",
            serde_json::json!({ "id": "open", "paths": ["/{*rest}"], "public": true, "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    // The admin host serves nothing else, not even a catch-all route.
    c.get(&on_admin_host("/anything"), &[])
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // Other hosts: the admin path is no admin API nor UI; routes answer.
    for path in ["/_komainu/", "/_komainu/api/routes"] {
        let r = c.get(&worker.url(path), &[]).await;
        r.expect_status(StatusCode::OK);
        assert!(
            r.header("content-security-policy").is_empty(),
            "{path} went to the backend"
        );
    }
}
