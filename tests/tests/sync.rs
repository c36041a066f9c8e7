//! `komainu sync` between a native gateway and the Worker, both ways.

use http::{Method, StatusCode};
use komainu_e2e::gateway::{run_to_exit, ADMIN_KEY};
use komainu_e2e::{Admin, Client, Komainu, Upstream, Worker};
use serde_json::{json, Value};

fn sync(from: &str, to: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "sync",
        "--from",
        from,
        "--to",
        to,
        "--from-key",
        ADMIN_KEY,
        "--to-key",
        ADMIN_KEY,
    ];
    args.extend_from_slice(extra);
    let (status, out, err) = run_to_exit(&args);
    (status.success(), out, err)
}

#[tokio::test]
async fn native_to_edge_and_back() {
    let up = Upstream::start().await;
    let native = Komainu::start_with_shared_key(r#"{"format":1}"#);
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let (n, w) = (native.admin_base(), worker.admin_base());
    let admin_n = Admin::new(&n);
    admin_n
        .call(Method::POST, "/api/routes", json!({ "id": "shop", "paths": ["/shop"], "backend": { "targets": [{ "url": up.url() }] } }))
        .await;
    let key = admin_n
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "buyer", "routes": ["shop"], "quotas": { "perDay": 100 } }),
        )
        .await
        .json();
    let secret = key["clientSecret"].as_str().unwrap().to_owned();

    // Dry run: shows the difference, changes nothing.
    let (ok, out, err) = sync(&n, &w, &["--dry-run"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("+ route shop") && out.contains("+ apikey buyer"),
        "{out}"
    );
    assert!(
        !out.contains(&secret) && !out.contains("hmac-sha256"),
        "never a secret"
    );
    let headers = [
        ("komainu-client-id", "buyer"),
        ("komainu-client-secret", secret.as_str()),
    ];
    assert_eq!(
        Client::default()
            .get(&worker.url("/shop"), &headers)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Without a terminal and without --yes, nothing is applied.
    let (ok, _, err) = sync(&n, &w, &[]);
    assert!(!ok && err.contains("--yes"), "{err}");

    let (ok, out, err) = sync(&n, &w, &["--yes"]);
    assert!(ok, "{err}");
    assert!(out.contains("applied"), "{out}");
    let r = Client::default().get(&worker.url("/shop"), &headers).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the same key and secret work at the edge"
    );
    assert_eq!(r.header("komainu-daily-calls-remaining"), "99");

    // Changed at the edge, synced back.
    let admin_w = Admin::new(&w);
    let r = admin_w
        .call(
            Method::PATCH,
            "/api/apikeys/buyer",
            json!({ "quotas": { "perDay": 5 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (ok, out, err) = sync(&w, &n, &["--yes"]);
    assert!(ok, "{err}");
    assert!(out.contains("~ apikey buyer (quotas)"), "{out}");
    let key = admin_n
        .call(Method::GET, "/api/apikeys/buyer", Value::Null)
        .await
        .json();
    assert_eq!(key["quotas"]["perDay"], 5);
    let (ok, out, _) = sync(&n, &w, &["--dry-run"]);
    assert!(ok);
    assert!(out.contains("no difference"), "{out}");
    // One key for both sides: --admin-key.
    let (status, out, err) = run_to_exit(&[
        "sync",
        "--from",
        &n,
        "--to",
        &w,
        "--admin-key",
        ADMIN_KEY,
        "--dry-run",
    ]);
    assert!(status.success(), "{err}");
    assert!(out.contains("no difference"), "{out}");
}

/// Two deployments with different deployment keys: a document carrying
/// sealed secrets cannot move between them, and the sync says so before
/// changing anything.
#[tokio::test]
async fn different_deployment_keys_fail_cleanly_and_change_nothing() {
    let up = Upstream::start().await;
    let native = Komainu::start(r#"{"format":1}"#); // its own key file
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let (n, w) = (native.admin_base(), worker.admin_base());
    let admin_n = Admin::new(&n);
    admin_n
        .call(Method::POST, "/api/routes", json!({ "id": "shop", "paths": ["/shop"], "backend": { "targets": [{ "url": up.url() }] } }))
        .await
        .expect_status(StatusCode::CREATED);
    admin_n
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "buyer", "routes": ["shop"] }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let before = Admin::new(&w)
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    let (ok, _, err) = sync(&n, &w, &["--yes"]);
    assert!(!ok, "the sync must fail");
    assert!(
        err.contains("KOMAINU_SECRET_KEY") && err.contains("apikeys[0].clientSecretSealed"),
        "the error says what to do: {err}"
    );
    let after = Admin::new(&w)
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(before, after, "nothing changed at the edge");
}
