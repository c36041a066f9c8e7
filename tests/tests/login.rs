//! People's logins through a real OpenID Provider (npm `oidc-provider`),
//! in a real browser (Debian's Chromium through playwright-core), on the
//! real binary and the real Worker: `tests/browser/login.mjs` drives them.

use http::{Method, StatusCode};
use komainu_e2e::browser;
use komainu_e2e::oidc::OidcProvider;
use komainu_e2e::{Admin, Client, Komainu, Upstream, Worker};

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

/// A private route for the local module `staff`: a tool gets 401, the
/// gateway's form (posted from the route's host) opens a session, the
/// backend learns who; `proxy` is the proxy's base URL (with its slash).
async fn local_private_route(admin: &Admin, proxy: &str, up: &Upstream) {
    admin
        .create(
            "/api/auth-modules",
            serde_json::json!({ "id": "staff", "name": "Staff", "kind": "local", "users": [
                { "username": "alice", "password": "alice's password", "email": "alice@example.com", "roles": ["team"] }
            ] }),
        )
        .await;
    admin
        .create(
            "/api/routes",
            serde_json::json!({
                "id": "team", "paths": ["/team", "/team/{*rest}"],
                "auth": { "module": "staff", "roles": ["team"] },
                "backend": { "targets": [{ "url": up.url() }] },
            }),
        )
        .await;
    let c = Client::default();
    let r = c
        .get(&format!("{proxy}team/x"), &[("accept", "application/json")])
        .await;
    r.expect_status(StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "login_required");
    let r = c
        .get(&format!("{proxy}team/x"), &[("accept", "text/html")])
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers["location"],
        "/.well-known/komainu/login/staff?back=%2Fteam%2Fx"
    );
    let form = c
        .get(
            &format!("{proxy}.well-known/komainu/login/staff?back=%2Fteam%2Fx"),
            &[],
        )
        .await;
    form.expect_status(StatusCode::OK);
    assert!(String::from_utf8_lossy(&form.body).contains("Log in with Staff"));
    let origin = proxy.trim_end_matches('/');
    let post = |body: &'static str, origin: String| {
        let c = c.clone();
        let url = format!("{proxy}.well-known/komainu/login/staff");
        async move {
            c.send(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("origin", &origin),
                ],
                bytes::Bytes::from_static(body.as_bytes()),
            )
            .await
        }
    };
    let good = "username=alice&password=alice%27s+password&back=%2Fteam%2Fx";
    let r = post(good, "http://evil.example".into()).await;
    r.expect_status(StatusCode::FORBIDDEN);
    let r = post("username=alice&password=wrong&back=%2F", origin.into()).await;
    r.expect_status(StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("set-cookie").is_none());
    let r = post(good, origin.into()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/team/x");
    let cookie = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = c
        .get(
            &format!("{proxy}team/x"),
            &[("cookie", &format!("a=1; {cookie}"))],
        )
        .await;
    r.expect_status(StatusCode::OK);
    let echoed = r.json();
    assert_eq!(
        echoed["headers"]["cookie"], "a=1",
        "the gateway's cookie stays with it"
    );
    let claim = echoed["headers"]["komainu-claim"].as_str().unwrap();
    use base64::Engine as _;
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claim.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], "alice");
    assert_eq!(payload["email"], "alice@example.com");
    assert_eq!(payload["authModule"], "staff");
    // The request event names the person (events leave in batches:
    // waited for).
    let mut identities = Vec::new();
    for _ in 0..50 {
        let events = admin
            .call(
                Method::GET,
                "/api/events?route=team&limit=50",
                serde_json::Value::Null,
            )
            .await
            .json();
        identities = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["identity"].clone())
            .collect();
        if identities
            .iter()
            .any(|i| i["type"] == "person" && i["subject"] == "alice" && i["module"] == "staff")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no request event names alice: {identities:?}");
}

fn drive(deployment: &str, ui: &str, proxy: &str) {
    let options = serde_json::json!({
        "ui": ui, "proxy": proxy, "deployment": deployment, "shots": browser::shots(deployment),
    });
    browser::run(
        "login.mjs",
        &options,
        &format!("people's logins in a browser ({deployment})"),
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
    local_private_route(&admin, &gw.url("/"), &up).await;
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
    local_private_route(&admin, &worker.url("/"), &up).await;
    let (ui, proxy) = (worker.url("/_komainu/"), worker.url("/"));
    tokio::task::spawn_blocking(move || drive("worker", &ui, &proxy))
        .await
        .unwrap();
    drop(provider);
    drop(worker);
}
