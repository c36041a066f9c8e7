//! The admin API, end to end: live changes, import/export, rotation, bad
//! input, authentication, the OpenAPI document, the export/import CLI.

use std::time::Duration;

use http::{Method, StatusCode};
use komainu_e2e::gateway::{run_to_exit, temp_dir, ADMIN_KEY};
use komainu_e2e::{jwt, Admin, Client, Komainu, Reply, Upstream};
use serde_json::{json, Value};

fn empty() -> String {
    json!({ "format": 1 }).to_string()
}

fn route(id: &str, up: &Upstream) -> Value {
    json!({ "id": id, "paths": [format!("/{id}"), format!("/{id}/{{*rest}}")],
            "backend": { "targets": [{ "url": up.url() }] } })
}

/// A fresh gateway (empty file store), a real upstream, and one route to it
/// created through the admin API.
async fn gateway_with_route(id: &str) -> (Upstream, Komainu, Admin) {
    let up = Upstream::start().await;
    let gw = Komainu::start(&empty());
    let admin = Admin::new(&gw.admin_base());
    admin
        .call(Method::POST, "/api/routes", route(id, &up))
        .await
        .expect_status(StatusCode::CREATED);
    (up, gw, admin)
}

fn creds(key: &str, secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("komainu-client-id", key.to_owned()),
        ("komainu-client-secret", secret.to_owned()),
    ]
}

async fn get(gw: &Komainu, path: &str, headers: &[(&'static str, String)]) -> Reply {
    let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Client::default().get(&gw.url(path), &h).await
}

#[tokio::test]
async fn changes_are_live_on_the_very_next_request() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&empty());
    let admin = Admin::new(&gw.admin_base());

    let r = admin
        .call(Method::POST, "/api/routes", route("orders", &up))
        .await;
    r.expect_status(StatusCode::CREATED);
    assert_eq!(r.header("location"), "/api/routes/orders");
    let r = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "shop", "routes": ["orders"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.json()["clientSecret"]
        .as_str()
        .expect("a generated secret")
        .to_owned();

    let ok = get(&gw, "/orders/1", &creds("shop", &secret)).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(
        ok.header("komainu-daily-calls-remaining").is_empty(),
        "no quota yet"
    );

    // PATCH a quota: the very next call obeys it (zero requests late).
    let r = admin
        .call(
            Method::PATCH,
            "/api/apikeys/shop",
            json!({ "quotas": { "perDay": 1 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let first = get(&gw, "/orders/1", &creds("shop", &secret)).await;
    assert_eq!(first.header("komainu-daily-calls-remaining"), "0");
    let second = get(&gw, "/orders/1", &creds("shop", &secret)).await;
    second.expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");

    // Disable the key: refused at once.
    admin
        .call(
            Method::PATCH,
            "/api/apikeys/shop",
            json!({ "enabled": false, "quotas": null }),
        )
        .await;
    get(&gw, "/orders/1", &creds("shop", &secret))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    admin
        .call(
            Method::PATCH,
            "/api/apikeys/shop",
            json!({ "enabled": true }),
        )
        .await;
    assert_eq!(
        get(&gw, "/orders/1", &creds("shop", &secret)).await.status,
        StatusCode::OK
    );

    // DELETE the route: 404 on the next call.
    let r = admin
        .call(Method::DELETE, "/api/routes/orders", Value::Null)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    get(&gw, "/orders/1", &creds("shop", &secret))
        .await
        .expect_error(StatusCode::NOT_FOUND, "route_not_found");
    let health = admin
        .call(Method::GET, "/api/health", Value::Null)
        .await
        .json();
    assert_eq!(health["revision"], 6);

    // Changes survive a restart (file store).
    let gw = gw.restart();
    let admin = Admin::new(&gw.admin_base());
    let keys = admin
        .call(Method::GET, "/api/apikeys", Value::Null)
        .await
        .json();
    assert_eq!(keys[0]["clientId"], "shop");
    assert!(
        keys[0].get("clientSecretHash").is_none(),
        "GET never shows secrets or hashes"
    );
}

#[tokio::test]
async fn export_from_one_instance_import_into_another_keeps_keys_working() {
    let up = Upstream::start().await;
    // Two instances of one deployment: the same deployment key.
    let a = Komainu::start_with_shared_key(&empty());
    let admin_a = Admin::new(&a.admin_base());
    admin_a
        .call(
            Method::POST,
            "/api/groups",
            json!({ "id": "team", "name": "Team" }),
        )
        .await;
    let mut r = route("catalog", &up);
    r["groups"] = json!(["team"]);
    admin_a.call(Method::POST, "/api/routes", r).await;
    let created = admin_a
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "web", "groups": ["team"], "quotas": { "perMonth": 50 } }),
        )
        .await
        .json();
    let secret = created["clientSecret"].as_str().unwrap().to_owned();
    let export = admin_a.call(Method::GET, "/api/export", Value::Null).await;
    assert_eq!(export.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&export.body).into_owned();
    assert!(
        !text.contains(&secret),
        "an export never carries a clear secret"
    );
    assert!(!text.contains("e2e-claim-secret") && !text.contains("\"local\""));

    let b = Komainu::start_with_shared_key(&empty());
    let admin_b = Admin::new(&b.admin_base());
    let r = admin_b
        .raw(Method::POST, "/api/import", export.body.clone())
        .await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.json()["apikeys"], 1);
    let call = get(&b, "/catalog/items", &creds("web", &secret)).await;
    assert_eq!(call.status, StatusCode::OK);
    assert_eq!(call.header("komainu-monthly-calls-remaining"), "49");
    let quotas = admin_b
        .call(Method::GET, "/api/apikeys/web/quotas", Value::Null)
        .await
        .json();
    assert_eq!(quotas["windows"][0]["window"], "month");
    assert_eq!(quotas["windows"][0]["used"], 1);
    assert_eq!(quotas["windows"][0]["remaining"], 49);
    // HS256 too: the sealed key opens with the shared deployment key.
    let token = jwt::sign(
        &format!(r#"{{"iss":"web","exp":{}}}"#, jwt::now_s() + 60),
        secret.as_bytes(),
    );
    get(
        &b,
        "/catalog/items",
        &[("authorization", format!("Bearer {token}"))],
    )
    .await
    .expect_status(StatusCode::OK);
}

#[tokio::test]
async fn rotation_with_and_without_grace() {
    let (_up, gw, admin) = gateway_with_route("svc").await;
    let created = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "app", "routes": ["svc"] }),
        )
        .await
        .json();
    let first = created["clientSecret"].as_str().unwrap().to_owned();

    let r = admin
        .call(
            Method::POST,
            "/api/apikeys/app/rotate",
            json!({ "graceSeconds": 2 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let second = r.json()["clientSecret"].as_str().unwrap().to_owned();
    assert!(!r.json()["previousSecretExpiresAt"].is_null());
    assert_eq!(
        get(&gw, "/svc", &creds("app", &second)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&gw, "/svc", &creds("app", &first)).await.status,
        StatusCode::OK,
        "old secret works during the grace period"
    );
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    get(&gw, "/svc", &creds("app", &first))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let r = admin
        .call(Method::POST, "/api/apikeys/app/rotate", Value::Null)
        .await;
    let third = r.json()["clientSecret"].as_str().unwrap().to_owned();
    assert!(r.json()["previousSecretExpiresAt"].is_null());
    get(&gw, "/svc", &creds("app", &second))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        get(&gw, "/svc", &creds("app", &third)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_the_store_is_left_byte_identical() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&empty());
    let admin = Admin::new(&gw.admin_base());
    admin
        .call(Method::POST, "/api/groups", json!({ "id": "g" }))
        .await;
    admin
        .call(Method::POST, "/api/routes", route("taken", &up))
        .await;
    let stored = std::fs::read(gw.data_path()).unwrap();

    let r = admin.raw(Method::POST, "/api/routes", "{ not json").await;
    r.expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "id": "x", "paths": "/x", "backend": {} }), "paths"),
        (
            json!({ "id": "x", "paths": ["/x"], "backend": {}, "enabled": "yes" }),
            "enabled",
        ),
        (
            json!({ "id": "x", "paths": ["/x"], "backend": {}, "colour": "red" }),
            "colour",
        ),
        (
            json!({ "id": "x", "paths": ["/x"], "backend": {}, "groups": ["missing"] }),
            "groups[0]",
        ),
        (
            json!({ "id": "x", "paths": ["/x/{oops"], "backend": {} }),
            "paths[0]",
        ),
        (
            json!({ "id": "x", "paths": ["/x"], "backend": { "targets": [{ "url": "ftp://files" }] } }),
            "backend.targets[0].url",
        ),
        (
            json!({ "id": "bad id!", "paths": ["/x"], "backend": {} }),
            "id",
        ),
    ];
    for (body, field) in cases {
        let r = admin.call(Method::POST, "/api/routes", body.clone()).await;
        let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(error["field"], field, "{body} → {error}");
    }
    let r = admin
        .call(Method::POST, "/api/routes", route("taken", &up))
        .await;
    r.expect_error(StatusCode::CONFLICT, "conflict");
    let r = admin
        .call(Method::DELETE, "/api/groups/nope", Value::Null)
        .await;
    r.expect_error(StatusCode::NOT_FOUND, "not_found");
    // A method an endpoint does not answer: 405 with the ones it does.
    for (method, path, allow) in [
        (Method::DELETE, "/api/routes", "GET, POST"),
        (Method::POST, "/api/routes/taken", "GET, PUT, PATCH, DELETE"),
        (Method::GET, "/api/import", "POST"),
        (Method::POST, "/api/export", "GET"),
        (Method::TRACE, "/api/health", "GET, HEAD"),
    ] {
        let r = admin.call(method.clone(), path, Value::Null).await;
        r.expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert_eq!(r.header("allow"), allow, "{method} {path}");
    }
    let r = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "k", "quotas": { "perDay": -1 } }),
        )
        .await;
    assert_eq!(
        r.expect_error(StatusCode::BAD_REQUEST, "invalid_request")["field"],
        "quotas.perDay"
    );
    let huge = format!(
        "{{\"id\":\"x\",\"name\":\"{}\"}}",
        "a".repeat(5 * 1024 * 1024)
    );
    let r = admin.raw(Method::POST, "/api/routes", huge).await;
    r.expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // An import with one bad entity among many applies nothing.
    let mut routes: Vec<Value> = (0..20).map(|i| route(&format!("r{i}"), &up)).collect();
    routes[13]["backend"]["targets"][0]["url"] = json!("not a url");
    let r = admin
        .call(
            Method::POST,
            "/api/import",
            json!({ "format": 1, "routes": routes }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "routes[13].backend.targets[0].url");

    assert_eq!(
        std::fs::read(gw.data_path()).unwrap(),
        stored,
        "the store is byte-identical"
    );
    assert_eq!(
        admin
            .call(Method::GET, "/api/routes", Value::Null)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn empty_and_short_secrets_are_refused_everywhere_and_nothing_is_stored() {
    let (_up, gw, admin) = gateway_with_route("demo").await;
    let created = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "k", "routes": ["demo"] }),
        )
        .await;
    created.expect_status(StatusCode::CREATED);
    let good = created.json()["clientSecret"].as_str().unwrap().to_owned();
    let stored = std::fs::read(gw.data_path()).unwrap();
    for secret in ["", "ab", "fifteen-chars!!"] {
        let attempts = [
            (
                Method::POST,
                "/api/apikeys".to_owned(),
                json!({ "clientId": "k4", "clientSecret": secret, "routes": ["demo"] }),
            ),
            (
                Method::PUT,
                "/api/apikeys/k".to_owned(),
                json!({ "clientId": "k", "clientSecret": secret, "routes": ["demo"] }),
            ),
            (
                Method::PATCH,
                "/api/apikeys/k".to_owned(),
                json!({ "clientSecret": secret }),
            ),
            (
                Method::POST,
                "/api/apikeys/k/rotate".to_owned(),
                json!({ "clientSecret": secret }),
            ),
        ];
        for (method, path, body) in attempts {
            let r = admin.call(method.clone(), &path, body).await;
            let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
            assert!(
                error["field"].as_str().unwrap().ends_with("clientSecret"),
                "{method} {path} {secret:?}: {error}"
            );
            assert!(error["message"].as_str().unwrap().contains("16"), "{error}");
        }
        let r = admin
            .call(
                Method::POST,
                "/api/import?merge=true",
                json!({ "format": 1, "apikeys": [{ "clientId": "k5", "clientSecret": secret }] }),
            )
            .await;
        assert_eq!(
            r.expect_error(StatusCode::BAD_REQUEST, "invalid_request")["field"],
            "apikeys[0].clientSecret"
        );
        let r = get(
            &gw,
            "/demo/hello",
            &[(
                "authorization",
                format!("Basic {}", base64_of(&format!("k4:{secret}"))),
            )],
        )
        .await;
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    assert_eq!(
        std::fs::read(gw.data_path()).unwrap(),
        stored,
        "nothing was stored"
    );
    get(&gw, "/demo/hello", &creds("k", &good))
        .await
        .expect_status(StatusCode::OK);
    // Sixteen characters are enough.
    admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "k6", "clientSecret": "sixteen-chars-ok", "routes": ["demo"] }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    get(&gw, "/demo/hello", &creds("k6", "sixteen-chars-ok"))
        .await
        .expect_status(StatusCode::OK);
    // An admin key given by flag follows the same rule.
    let (status, _, stderr) = run_to_exit(&[
        "serve",
        "--store",
        "memory",
        "--proxy-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--admin-key",
        "ops:short",
    ]);
    assert!(!status.success());
    assert!(stderr.contains("16"), "{stderr}");
}

#[tokio::test]
async fn without_admin_credentials_every_endpoint_but_health_is_401() {
    let (up, gw, admin) = gateway_with_route("r").await;
    let stored = std::fs::read(gw.data_path()).unwrap();
    let wrong = format!("Basic {}", base64_of("ops:wrong"));
    for auth in [None, Some(wrong.as_str()), Some("Bearer x.y.z")] {
        let anon = admin.with_auth(auth);
        for (method, path, body) in [
            (Method::GET, "/api/routes", Value::Null),
            (Method::POST, "/api/routes", route("new", &up)),
            (Method::DELETE, "/api/routes/r", Value::Null),
            (Method::PATCH, "/api/routes/r", json!({ "enabled": false })),
            (Method::GET, "/api/export", Value::Null),
            (Method::POST, "/api/import", json!({ "format": 1 })),
            (Method::POST, "/api/apikeys/x/rotate", Value::Null),
            (Method::GET, "/api/openapi.json", Value::Null),
        ] {
            let r = anon.call(method.clone(), path, body).await;
            r.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
        assert_eq!(
            anon.call(Method::GET, "/api/health", Value::Null)
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(std::fs::read(gw.data_path()).unwrap(), stored);
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn the_openapi_document_matches_the_real_responses() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&empty());
    let admin = Admin::new(&gw.admin_base());
    let spec = admin
        .call(Method::GET, "/api/openapi.json", Value::Null)
        .await
        .json();
    // Exercise every documented operation, with its success and error answers.
    admin.call(Method::GET, "/api/health", Value::Null).await;
    for (collection, id_field, entity) in [
        ("groups", "id", json!({ "id": "g1", "name": "G" })),
        ("routes", "id", route("r1", &up)),
        ("apikeys", "clientId", json!({ "clientId": "k1" })),
        (
            "exporters",
            "id",
            json!({ "id": "x1", "kind": "file", "path": gw.dir().join("events.jsonl") }),
        ),
        (
            "auth-modules",
            "id",
            json!({ "id": "a1", "kind": "local", "users": [
                { "username": "alice", "password": "alice's password", "roles": ["admin"] }
            ] }),
        ),
    ] {
        let base = format!("/api/{collection}");
        let one = format!("{base}/{}", entity[id_field].as_str().unwrap());
        admin.call(Method::GET, &base, Value::Null).await;
        admin.call(Method::POST, &base, entity.clone()).await;
        admin.call(Method::POST, &base, entity.clone()).await; // 409
        admin
            .call(Method::POST, &base, json!({ "nonsense": true }))
            .await; // 400
        admin
            .with_auth(None)
            .call(Method::GET, &base, Value::Null)
            .await; // 401
        admin.call(Method::GET, &one, Value::Null).await;
        admin
            .call(Method::GET, &format!("{base}/missing"), Value::Null)
            .await; // 404
        admin.call(Method::PUT, &one, entity.clone()).await;
        admin
            .call(Method::PUT, &format!("{base}/missing"), entity.clone())
            .await; // 404
        admin
            .call(Method::PATCH, &one, json!({ "name": "renamed" }))
            .await;
        admin
            .call(
                Method::PATCH,
                &one,
                json!({ "enabled": "nope", "description": 3 }),
            )
            .await; // 400
    }
    admin
        .call(Method::GET, "/api/apikeys/k1/quotas", Value::Null)
        .await;
    admin
        .call(Method::GET, "/api/apikeys/missing/quotas", Value::Null)
        .await;
    admin
        .call(Method::DELETE, "/api/apikeys/k1/quotas", Value::Null)
        .await;
    admin
        .call(Method::DELETE, "/api/apikeys/missing/quotas", Value::Null)
        .await; // 404
    admin
        .call(
            Method::POST,
            "/api/apikeys/k1/rotate",
            json!({ "graceSeconds": 5 }),
        )
        .await;
    admin
        .call(
            Method::POST,
            "/api/apikeys/k1/rotate",
            json!({ "graceSeconds": "x" }),
        )
        .await;
    admin
        .call(Method::POST, "/api/apikeys/missing/rotate", Value::Null)
        .await;
    for (method, path) in [
        (Method::GET, "/api/exporters/x1/status"),
        (Method::GET, "/api/exporters/missing/status"),
        (Method::POST, "/api/exporters/x1/test"),
        (Method::POST, "/api/exporters/missing/test"),
        (Method::GET, "/api/events?limit=5"),
        (Method::GET, "/api/events?limit=0"),           // 400
        (Method::GET, "/api/events/stream?colour=red"), // 400 (200 streams: see events.rs)
    ] {
        admin.call(method, path, Value::Null).await;
    }
    admin
        .with_auth(None)
        .call(Method::GET, "/api/events", Value::Null)
        .await; // 401
    admin
        .with_auth(None)
        .call(Method::GET, "/api/events/stream", Value::Null)
        .await; // 401
    for method in [Method::POST, Method::GET, Method::DELETE] {
        admin
            .call(method.clone(), "/api/session", Value::Null)
            .await;
        admin
            .with_auth(None)
            .call(method, "/api/session", Value::Null)
            .await; // 401
    }
    admin
        .call(
            Method::POST,
            "/api/try",
            json!({ "method": "GET", "path": "/r1", "headers": [["Accept", "text/plain"]] }),
        )
        .await;
    admin
        .call(
            Method::POST,
            "/api/try",
            json!({ "method": "NOT A METHOD", "path": "/r1" }),
        )
        .await; // 400
    let anon = admin.with_auth(None);
    anon.call(Method::GET, "/api/login", Value::Null).await;
    for (path, body) in [
        (
            "/api/login/a1",
            json!({ "username": "alice", "password": "alice's password" }),
        ),
        (
            "/api/login/a1",
            json!({ "username": "alice", "password": "wrong" }),
        ), // 401
        ("/api/login/a1", json!({ "user": "alice" })), // 400
        (
            "/api/login/missing",
            json!({ "username": "a", "password": "b" }),
        ), // 404
    ] {
        anon.call(Method::POST, path, body).await;
    }
    for path in [
        "/api/login/a1",                   // 405: a local module
        "/api/login/missing",              // 404
        "/api/login/a1/callback",          // 404: a local module has none
        "/api/login/missing/callback?x=1", // 404
    ] {
        anon.call(Method::GET, path, Value::Null).await;
    }
    for path in [
        "/api/auth-modules/a1/revoke-sessions",
        "/api/auth-modules/missing/revoke-sessions", // 404
    ] {
        admin.call(Method::POST, path, Value::Null).await;
    }
    admin
        .call(Method::GET, "/api/routes/r1/health", Value::Null)
        .await;
    admin
        .call(Method::GET, "/api/routes/missing/health", Value::Null)
        .await; // 404
    let export = admin.call(Method::GET, "/api/export", Value::Null).await;
    admin
        .raw(Method::POST, "/api/import?dryRun=true", export.body.clone())
        .await;
    admin
        .raw(Method::POST, "/api/import", export.body.clone())
        .await;
    admin
        .raw(Method::POST, "/api/import?merge=true", export.body.clone())
        .await;
    admin
        .call(Method::POST, "/api/import", json!({ "format": 2 }))
        .await;
    admin
        .call(Method::PATCH, "/api/routes/r1", json!({ "groups": ["g1"] }))
        .await;
    admin
        .call(Method::DELETE, "/api/groups/g1", Value::Null)
        .await; // 409: used
    for path in [
        "/api/apikeys/k1",
        "/api/routes/r1",
        "/api/groups/g1",
        "/api/groups/missing",
        "/api/exporters/x1",
        "/api/auth-modules/a1",
    ] {
        admin.call(Method::DELETE, path, Value::Null).await;
    }
    admin
        .raw(Method::POST, "/api/routes", "x".repeat(5 * 1024 * 1024))
        .await; // 413

    let calls = admin.calls.lock().unwrap().clone();
    let mut documented = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            documented += 1;
            let method = method.to_uppercase();
            let seen: Vec<u16> = calls
                .iter()
                .filter(|(m, p, _)| *m == method && p == path)
                .map(|(_, _, s)| *s)
                .collect();
            assert!(
                !seen.is_empty(),
                "{method} {path} is documented but was not exercised"
            );
            let responses = op["responses"].as_object().unwrap();
            for status in seen {
                assert!(
                    responses.contains_key(&status.to_string()),
                    "{method} {path} answered {status}, which the document does not list"
                );
            }
        }
    }
    assert_eq!(
        documented, 51,
        "every endpoint of the contract is documented"
    );
    for (method, path, status) in &calls {
        let item = &spec["paths"][path.as_str()];
        assert!(
            item[method.to_lowercase()].is_object(),
            "{method} {path} ({status}) is served but not documented"
        );
    }
}

#[tokio::test]
async fn export_and_import_commands() {
    let up = Upstream::start().await;
    let a = Komainu::start(&empty());
    Admin::new(&a.admin_base())
        .call(Method::POST, "/api/routes", route("cli", &up))
        .await;
    let (status, out, err) = run_to_exit(&[
        "export",
        "--admin",
        &a.admin_base(),
        "--admin-key",
        ADMIN_KEY,
    ]);
    assert!(status.success(), "{err}");
    let doc: Value = serde_json::from_str(&out).expect("export prints the document");
    assert_eq!(doc["routes"][0]["id"], "cli");

    let b = Komainu::start(&empty());
    let file = temp_dir().join("doc.json");
    std::fs::write(&file, &out).unwrap();
    let file_arg = file.display().to_string();
    let (status, _, err) = run_to_exit(&[
        "import",
        &file_arg,
        "--admin",
        &b.admin_base(),
        "--admin-key",
        ADMIN_KEY,
    ]);
    assert!(status.success(), "{err}");
    assert_eq!(
        get(&b, "/cli", &[]).await.status,
        StatusCode::UNAUTHORIZED,
        "route imported"
    );

    let (status, _, err) = run_to_exit(&[
        "export",
        "--admin",
        &b.admin_base(),
        "--admin-key",
        "ops:wrong",
    ]);
    assert!(!status.success());
    assert!(
        err.contains("401") && err.contains("KOMAINU_ADMIN_KEY"),
        "{err}"
    );
    std::fs::write(
        &file,
        r#"{"format":1,"routes":[{"id":"x","paths":["nope"],"backend":{}}]}"#,
    )
    .unwrap();
    let (status, _, err) = run_to_exit(&[
        "import",
        &file_arg,
        "--merge",
        "--admin",
        &b.admin_base(),
        "--admin-key",
        ADMIN_KEY,
    ]);
    assert!(!status.success());
    assert!(
        err.contains("400") && err.contains("routes[0].paths[0]"),
        "{err}"
    );
    let (status, _, err) = run_to_exit(&[
        "export",
        "--admin",
        "http://127.0.0.1:9",
        "--admin-key",
        ADMIN_KEY,
    ]);
    assert!(!status.success());
    assert!(err.contains("cannot reach the admin API"), "{err}");
}

#[tokio::test]
async fn a_generated_admin_key_is_printed_once_and_works() {
    let dir = temp_dir();
    let gw = Komainu::start_in(dir.clone(), &[]);
    let printed = gw.wait_for_output("admin key (shown once");
    let key = printed
        .split("admin key (shown once, stored hashed): ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("the admin key is printed")
        .to_owned();
    let stored = std::fs::read_to_string(gw.data_path()).unwrap();
    let secret = key.split_once(':').unwrap().1;
    assert!(!stored.contains(secret), "stored hashed only");
    let auth = format!("Basic {}", base64_of(&key));
    let admin = Admin::new(&gw.admin_base()).with_auth(Some(&auth));
    assert_eq!(
        admin
            .call(Method::GET, "/api/routes", Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    let gw = gw.restart();
    assert!(
        !gw.stdout.lock().unwrap().contains("admin key"),
        "printed once only"
    );
    let admin = Admin::new(&gw.admin_base()).with_auth(Some(&auth));
    assert_eq!(
        admin
            .call(Method::GET, "/api/routes", Value::Null)
            .await
            .status,
        StatusCode::OK
    );
}
