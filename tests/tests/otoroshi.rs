//! Coming from Otoroshi: real Otoroshi exports (the shared data folder)
//! imported with `komainu import --from-otoroshi`, then called as
//! Otoroshi's clients call (its header pair, Basic, the `otoapk_` bearer,
//! JWTs, `x-api-key`), in front of a backend written for Otoroshi (it
//! verifies `Otoroshi-Claim` with the shared key and answers the state
//! challenge). Natively and on the Worker.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use komainu_e2e::gateway::{run_to_exit, temp_dir, ADMIN_KEY};
use komainu_e2e::otoroshi::OtoroshiBackend;
use komainu_e2e::{Admin, Client, Komainu, Reply, Worker};
use serde_json::Value;
use sha2::Sha256;

/// Otoroshi's shared key in these tests (its `app.claim.sharedKey`).
const SHARED_KEY: &str = "otoroshi-e2e-shared-key";

/// Client ids of keys in `otoroshi-routes.json` (their secrets are read
/// from it: [`key`]).
const USERS_APP: &str = "xQ3bT9mLpV2cR7sK";
const PARTNER_APP: &str = "P4tN8rWq1ZyE6hJd";
const PORTAL_APP: &str = "kR8sL2dF5gH1jK4m";
const OLD_PORTAL_APP: &str = "dA7fG3hJ9kL1zX5c";
const EXPIRED_APP: &str = "mN4bV6cX8zL2kJ0h";

/// A key of `otoroshi-routes.json`: its client id and secret, as its
/// clients hold them.
fn key(client_id: &'static str) -> (&'static str, String) {
    let export = export("otoroshi-routes.json", 1);
    let secret = export["apiKeys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["clientId"] == client_id)
        .and_then(|k| k["clientSecret"].as_str())
        .unwrap_or_else(|| panic!("no key {client_id} in the export"))
        .to_owned();
    (client_id, secret)
}

/// An export of the shared data folder, its targets pointed at `port` on
/// 127.0.0.1 (plain HTTP).
fn export(name: &str, port: u16) -> Value {
    let dir = std::env::var("KOMAINU_OTOROSHI_DATA")
        .unwrap_or_else(|_| format!("{}/../../shared/data/otoroshi", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let mut v: Value = serde_json::from_slice(&text).expect("an export is JSON");
    for d in v["serviceDescriptors"].as_array_mut().into_iter().flatten() {
        for t in d["targets"].as_array_mut().into_iter().flatten() {
            t["host"] = format!("127.0.0.1:{port}").into();
            t["scheme"] = "http".into();
        }
    }
    let point = |b: &mut Value| {
        for t in b["targets"].as_array_mut().into_iter().flatten() {
            t["hostname"] = "127.0.0.1".into();
            t["port"] = port.into();
            t["tls"] = false.into();
        }
    };
    for r in v["routes"].as_array_mut().into_iter().flatten() {
        point(&mut r["backend"]);
    }
    for b in v["backends"].as_array_mut().into_iter().flatten() {
        point(&mut b["backend"]);
    }
    v
}

/// `komainu import --from-otoroshi` with these arguments: success, stdout, stderr.
fn import(admin_base: &str, export: &Value, extra: &[&str]) -> (bool, String, String) {
    let dir = temp_dir();
    let file = dir.join("otoroshi.json");
    std::fs::write(&file, export.to_string()).expect("write the export");
    let file = file.to_string_lossy().into_owned();
    let mut args = vec![
        "import",
        "--from-otoroshi",
        &file,
        "--admin",
        admin_base,
        "--admin-key",
        ADMIN_KEY,
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = run_to_exit(&args);
    let _ = std::fs::remove_dir_all(&dir);
    (status.success(), out, err)
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Otoroshi's `otoapk_` bearer of a key.
fn otoapk(id: &str, secret: &str) -> String {
    let prefix = format!("otoapk_{id}");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(prefix.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{prefix}_{hex}")
}

/// A JWT signed with the client secret (`alg`: HS256, HS384 or HS512), with these claims.
fn jwt_with(alg: &str, secret: &str, claims: Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = match alg {
        "HS384" => {
            let mut mac = <Hmac<sha2::Sha384> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        "HS512" => {
            let mut mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        _ => {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(input.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// An HS256 JWT signed with the client secret, with these claims.
fn jwt(secret: &str, claims: Value) -> String {
    jwt_with("HS256", secret, claims)
}

/// A call on `host` + `path` through the proxy at `base`.
async fn call(c: &Client, base: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("host", host)];
    all.extend_from_slice(headers);
    c.get(&format!("{base}{path}"), &all).await
}

/// A call the gateway forwards: what the echoing backend saw.
async fn forwarded(
    c: &Client,
    base: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Value {
    let r = call(c, base, host, path, headers).await;
    r.expect_status(StatusCode::OK);
    r.json()
}

/// What every deployment must do with `otoroshi-routes.json` imported.
async fn clients_and_backends_keep_working(base: &str) {
    let c = Client::http1();
    let (id, secret) = key(USERS_APP);
    let secret = secret.as_str();
    // The header pair; the path prefix stripped; the route's header added;
    // no credential reaches the backend.
    let seen = forwarded(
        &c,
        base,
        "api.oto.tools",
        "/users/me?x=1",
        &[
            ("otoroshi-client-id", id),
            ("otoroshi-client-secret", secret),
        ],
    )
    .await;
    assert_eq!(seen["uri"], "/me?x=1", "{seen}");
    assert_eq!(seen["headers"]["x-users-api"], "v2");
    for h in [
        "otoroshi-client-id",
        "otoroshi-client-secret",
        "authorization",
        "x-api-key",
    ] {
        assert!(
            seen["headers"][h].is_null(),
            "{h} reached the backend: {seen}"
        );
    }
    // Basic, in Authorization and in Otoroshi-Authorization.
    for header in ["authorization", "otoroshi-authorization"] {
        let r = call(
            &c,
            base,
            "api.oto.tools",
            "/users/me",
            &[(header, &basic(id, secret))],
        )
        .await;
        r.expect_status(StatusCode::OK);
        assert!(
            r.json()["headers"][header].is_null(),
            "{header} reached the backend"
        );
    }
    // The otoapk_ bearer.
    let bearer = format!("Bearer {}", otoapk(id, secret));
    call(
        &c,
        base,
        "api.oto.tools",
        "/users/me",
        &[("authorization", &bearer)],
    )
    .await
    .expect_status(StatusCode::OK);
    let forged = format!("Bearer {}", otoapk(id, "not-the-secret-of-this-key-at-all"));
    call(
        &c,
        base,
        "api.oto.tools",
        "/users/me",
        &[("authorization", &forged)],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // JWTs naming the key in clientId (no exp: Otoroshi accepts it),
    // client_id, cid or iss; in Authorization or Otoroshi-Token.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (claims, header) in [
        (serde_json::json!({ "clientId": id }), "authorization"),
        (
            serde_json::json!({ "client_id": id, "exp": now + 60 }),
            "authorization",
        ),
        (
            serde_json::json!({ "cid": id, "exp": now + 60 }),
            "otoroshi-token",
        ),
        (
            serde_json::json!({ "iss": id, "exp": now + 60 }),
            "authorization",
        ),
    ] {
        let token = jwt(secret, claims.clone());
        let value = if header == "authorization" {
            format!("Bearer {token}")
        } else {
            token
        };
        let r = call(&c, base, "api.oto.tools", "/users/me", &[(header, &value)]).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{claims}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["headers"][header].is_null());
    }
    // HS384 and HS512, as Otoroshi takes them.
    for alg in ["HS384", "HS512"] {
        let token = jwt_with(
            alg,
            secret,
            serde_json::json!({ "clientId": id, "exp": now + 60 }),
        );
        let r = call(
            &c,
            base,
            "api.oto.tools",
            "/users/me",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{alg}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let forged = jwt_with(
            alg,
            "not-the-secret-of-this-key-at-all",
            serde_json::json!({ "clientId": id }),
        );
        call(
            &c,
            base,
            "api.oto.tools",
            "/users/me",
            &[("authorization", &format!("Bearer {forged}"))],
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let expired = jwt(
        secret,
        serde_json::json!({ "clientId": id, "exp": now - 60 }),
    );
    call(
        &c,
        base,
        "api.oto.tools",
        "/users/me",
        &[("authorization", &format!("Bearer {expired}"))],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // A key not authorized on a route: 403.
    call(
        &c,
        base,
        "orders.oto.tools",
        "/",
        &[("api-key-header-id", id), ("api-key-header-secret", secret)],
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");

    // orders: the route's own header names; x-api-key for a key allowing
    // its client id alone; the default names are not this route's.
    let (pid, psecret) = key(PARTNER_APP);
    let psecret = psecret.as_str();
    let seen = forwarded(
        &c,
        base,
        "orders.oto.tools",
        "/list",
        &[
            ("api-key-header-id", pid),
            ("api-key-header-secret", psecret),
        ],
    )
    .await;
    assert_eq!(seen["uri"], "/v2/list", "the stored backend's root: {seen}");
    assert!(
        seen["headers"]["api-key-header-secret"].is_null(),
        "custom names are removed too (Otoroshi #2306)"
    );
    assert!(seen["headers"]["api-key-header-id"].is_null());
    call(&c, base, "orders.oto.tools", "/list", &[("x-api-key", pid)])
        .await
        .expect_status(StatusCode::OK);
    call(&c, base, "api.oto.tools", "/users/me", &[("x-api-key", id)])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    call(
        &c,
        base,
        "orders.oto.tools",
        "/list",
        &[
            ("otoroshi-client-id", pid),
            ("otoroshi-client-secret", psecret),
        ],
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");

    // invoices: the Latest info token and the V2 challenge, Otoroshi's
    // headers both ways, the calls left.
    let auth = basic(pid, psecret);
    let r = call(
        &c,
        base,
        "invoices.oto.tools",
        "/2024/12",
        &[("authorization", &auth)],
    )
    .await;
    r.expect_status(StatusCode::OK);
    let seen = r.json();
    let claim = &seen["claim"];
    assert!(
        claim["invalid"].is_null(),
        "the backend could not verify the claim: {claim}"
    );
    assert_eq!(claim["iss"], "Otoroshi");
    assert_eq!(claim["sub"], "partner-app");
    assert_eq!(claim["aud"], "invoices-api");
    assert_eq!(claim["access_type"], "apikey");
    assert_eq!(claim["apikey"]["clientId"], pid);
    assert!(claim["exp"].as_u64().unwrap() - claim["iat"].as_u64().unwrap() == 30);
    assert_eq!(
        seen["headers"]["otoroshi-proxied-host"],
        "invoices.oto.tools"
    );
    let request_id = seen["headers"]["otoroshi-request-id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.header("otoroshi-request-id"), request_id);
    let daily: u64 = r.header("otoroshi-daily-calls-remaining").parse().unwrap();
    let monthly: u64 = r
        .header("otoroshi-monthly-calls-remaining")
        .parse()
        .unwrap();
    assert!(daily < 1000 && monthly < 30000, "{daily} {monthly}");
    let again = call(
        &c,
        base,
        "invoices.oto.tools",
        "/",
        &[("authorization", &auth)],
    )
    .await;
    let next: u64 = again
        .header("otoroshi-daily-calls-remaining")
        .parse()
        .unwrap();
    assert_eq!(next, daily - 1);
    // A backend that fails the challenge: 502, its answer never reaches the client.
    for misbehave in ["none", "wrong", "long"] {
        let r = call(
            &c,
            base,
            "invoices.oto.tools",
            "/",
            &[("authorization", &auth), ("x-challenge", misbehave)],
        )
        .await;
        let e = r.expect_error(StatusCode::BAD_GATEWAY, "bad_gateway");
        assert!(
            e["message"].as_str().unwrap().contains("state challenge"),
            "{e}"
        );
    }
    // A client cannot send its own Otoroshi-Claim or state.
    let r = call(
        &c,
        base,
        "invoices.oto.tools",
        "/",
        &[("authorization", &auth), ("otoroshi-claim", "forged")],
    )
    .await;
    assert!(r.json()["claim"]["invalid"].is_null());

    // Disabled and expired keys; the per-second quota of 50.
    for (id, secret) in [key(OLD_PORTAL_APP), key(EXPIRED_APP)] {
        call(
            &c,
            base,
            "portal.oto.tools",
            "/api/x",
            &[("authorization", &basic(id, &secret))],
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let key_only = [("x-api-key", pid)];
    let calls = (0..120).map(|_| call(&c, base, "orders.oto.tools", "/", &key_only));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    // (The calls may straddle two one-second windows.)
    assert!(
        refused > 0 && admitted <= 100 && admitted + refused == 120,
        "{admitted} admitted, {refused} refused"
    );

    // portal: public, its /api/ behind a key; docs: public.
    call(&c, base, "portal.oto.tools", "/", &[])
        .await
        .expect_status(StatusCode::OK);
    call(&c, base, "portal.oto.tools", "/api/me", &[])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    let (tid, tsecret) = key(PORTAL_APP);
    let tsecret = tsecret.as_str();
    call(
        &c,
        base,
        "portal.oto.tools",
        "/api/me",
        &[("authorization", &basic(tid, tsecret))],
    )
    .await
    .expect_status(StatusCode::OK);
    call(&c, base, "docs.oto.tools", "/guide", &[])
        .await
        .expect_status(StatusCode::OK);
}

#[tokio::test]
async fn an_otoroshi_export_natively() {
    let backend = OtoroshiBackend::start(SHARED_KEY).await;
    let gw = Komainu::start(r#"{"format":1}"#);
    let admin = Admin::new(&gw.admin_base());
    let routes = export("otoroshi-routes.json", backend.port());

    // Without the shared key: a dry run says Otoroshi's default would be
    // used, and how to give the real one.
    let (ok, out, err) = import(&gw.admin_base(), &routes, &["--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("app.claim.sharedKey") && out.contains("--otoroshi-shared-key"),
        "{out}"
    );
    // Dry run: the report, nothing changed.
    let (ok, out, err) = import(
        &gw.admin_base(),
        &routes,
        &["--dry-run", "--otoroshi-shared-key", SHARED_KEY],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("approximated") && out.contains("dropped"),
        "{out}"
    );
    assert!(
        out.contains("simpleAdmins") && out.contains("backend_ref"),
        "{out}"
    );
    assert!(
        !out.contains(key(USERS_APP).1.as_str()),
        "never a secret in the report"
    );
    let export_now = admin
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(
        export_now["routes"].as_array().map_or(0, Vec::len),
        0,
        "a dry run changes nothing"
    );

    // Imported: every client and the backend as with Otoroshi.
    let (ok, out, err) = import(
        &gw.admin_base(),
        &routes,
        &["--otoroshi-shared-key", SHARED_KEY],
    );
    assert!(ok, "{err}");
    assert!(err.contains("imported"), "{err}");
    assert!(out.contains("apiKeys xQ3bT9mLpV2cR7sK"), "{out}");
    let exported = admin.call(Method::GET, "/api/export", Value::Null).await;
    let text = String::from_utf8_lossy(&exported.body);
    assert!(
        !text.contains(key(USERS_APP).1.as_str()) && !text.contains(SHARED_KEY),
        "no secret in clear in an export"
    );
    let data = std::fs::read_to_string(gw.data_path()).unwrap();
    assert!(
        !data.contains(key(USERS_APP).1.as_str()) && !data.contains(SHARED_KEY),
        "nor in the store"
    );
    clients_and_backends_keep_working(&format!("http://{}", gw.proxy)).await;

    // Otoroshi's readOnly: GET, HEAD and OPTIONS only.
    let (id, secret) = key(USERS_APP);
    let secret = secret.as_str();
    admin
        .call(
            Method::PATCH,
            &format!("/api/apikeys/{id}"),
            serde_json::json!({ "readOnly": true }),
        )
        .await
        .expect_status(StatusCode::OK);
    let c = Client::http1();
    let base = format!("http://{}", gw.proxy);
    let auth = basic(id, secret);
    call(
        &c,
        &base,
        "api.oto.tools",
        "/users/me",
        &[("authorization", &auth)],
    )
    .await
    .expect_status(StatusCode::OK);
    let r = c
        .send(
            Method::POST,
            &format!("{base}/users/me"),
            &[("host", "api.oto.tools"), ("authorization", &auth)],
            "{}",
        )
        .await;
    let e = r.expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert!(e["message"].as_str().unwrap().contains("read-only"), "{e}");
}

#[tokio::test]
async fn a_legacy_export_natively() {
    let backend = OtoroshiBackend::start(SHARED_KEY).await;
    let gw = Komainu::start(r#"{"format":1}"#);
    let state = export("otoroshi-state.json", backend.port());
    let (ok, _, err) = import(
        &gw.admin_base(),
        &state,
        &["--otoroshi-shared-key", SHARED_KEY],
    );
    assert!(ok, "{err}");
    let c = Client::http1();
    let base = format!("http://{}", gw.proxy);
    // The admin API descriptor: subdomain.domain, a Host override, the
    // Legacy info token and the V1 challenge.
    let auth = basic("admin-api-apikey-id", "admin-api-apikey-secret");
    let seen = forwarded(
        &c,
        &base,
        "otoroshi-api.oto.tools",
        "/api/services",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(
        seen["headers"]["host"],
        "otoroshi-admin-internal-api.oto.tools"
    );
    let claim = &seen["claim"];
    assert!(claim["invalid"].is_null(), "{claim}");
    assert_eq!(claim["sub"], "apikey:admin-api-apikey-id");
    assert_eq!(claim["aud"], "otoroshi-admin-api");
    assert_eq!(claim["iss"], "Otoroshi");
    assert_eq!(claim["name"], "Otoroshi Backoffice ApiKey");
    let apikey: Value = serde_json::from_str(claim["apikey"].as_str().unwrap()).unwrap();
    assert_eq!(apikey["clientId"], "admin-api-apikey-id");
    call(
        &c,
        &base,
        "otoroshi-api.oto.tools",
        "/",
        &[("authorization", &auth), ("x-challenge", "wrong")],
    )
    .await
    .expect_error(StatusCode::BAD_GATEWAY, "bad_gateway");
    // A key of another group: 403; a public descriptor: no key.
    call(
        &c,
        &base,
        "otoroshi-api.oto.tools",
        "/",
        &[(
            "authorization",
            &basic("basicsetup-es-apikey", "basicsetup-es-apikey"),
        )],
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    call(&c, &base, "kibana.oto.tools", "/app", &[])
        .await
        .expect_status(StatusCode::OK);
    let r = call(
        &c,
        &base,
        "api-tenant1.oto.tools",
        "/users",
        &[
            ("otoroshi-client-id", "basicsetup-prod-tenant1-apikey"),
            ("otoroshi-client-secret", "basicsetup-prod-tenant1-apikey"),
        ],
    )
    .await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.json()["uri"], "/api/users", "the descriptor's root");
}

#[tokio::test]
async fn what_cannot_be_imported_is_refused_whole() {
    let gw = Komainu::start(r#"{"format":1}"#);
    let admin = Admin::new(&gw.admin_base());
    // Not an export.
    for body in [
        &b"{\"format\":1,\"apikeys\":[]}"[..],
        b"[1,2]",
        b"{\"hello\":\"world\"}",
        b"not json",
    ] {
        admin
            .raw(Method::POST, "/api/import?from=otoroshi", body.to_vec())
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // A key whose secret Komainu cannot keep, a route whose stored backend
    // is missing: refused whole, each named.
    let mut bad = export("otoroshi-routes.json", 1);
    bad["apiKeys"][0]["clientSecret"] = "short".into();
    bad["routes"][1]["backend_ref"] = "backend_gone".into();
    let r = admin
        .raw(Method::POST, "/api/import?from=otoroshi", bad.to_string())
        .await;
    let e = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let fields: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["field"].as_str())
        .collect();
    assert!(fields.contains(&"apiKeys[xQ3bT9mLpV2cR7sK]"), "{e}");
    assert!(
        fields.contains(&"routes[route_9b7e3d1c5-2a4f-4e88-b1c3-0d9e8f7a6b5c]"),
        "{e}"
    );
    let now = admin
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(
        now["apikeys"].as_array().map_or(0, Vec::len),
        0,
        "nothing half-imported"
    );
    // A key authorized on an entity that does not exist: imported without
    // it, the report says so.
    let mut dangling = export("otoroshi-routes.json", 1);
    dangling["apiKeys"][2]["authorizedEntities"] =
        serde_json::json!(["group_default", "service_gone"]);
    let r = admin
        .raw(
            Method::POST,
            "/api/import?from=otoroshi&dryRun=true",
            dangling.to_string(),
        )
        .await;
    r.expect_status(StatusCode::OK);
    let report = &r.json()["report"];
    let key = report["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == PORTAL_APP)
        .unwrap();
    assert_eq!(key["status"], "approximated");
    assert!(key["notes"].to_string().contains("service_gone"), "{key}");
}

#[tokio::test]
async fn an_otoroshi_export_on_the_worker() {
    let backend = OtoroshiBackend::start(SHARED_KEY).await;
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let routes = export("otoroshi-routes.json", backend.port());
    let base = worker.admin_base();
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        import(&base, &routes, &["--otoroshi-shared-key", SHARED_KEY])
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    clients_and_backends_keep_working(&worker.url).await;
}
