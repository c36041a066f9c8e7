//! Traffic management on the real binary: a backend killed under load
//! (retries and the circuit breaker keep every idempotent call whole), a
//! backend coming back (the half-open probe brings it in), active health
//! checks, a POST never replayed once its body went out, and the health
//! endpoint and alerts that tell operators about each change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use komainu_e2e::raw::ScriptedUpstream;
use komainu_e2e::{Admin, Client, Komainu, Upstream};
use serde_json::{json, Value};

/// Which target answered: the first path segment the backend saw (each
/// target's base path names it).
fn served_by(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v["uri"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A loopback address nothing listens on (yet).
async fn free_addr() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn alerts(admin: &Admin, name: &str) -> Vec<Value> {
    let r = admin
        .call(
            Method::GET,
            &format!("/api/events?type=io.komainu.alert.{name}.v1&limit=50"),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

async fn health(admin: &Admin, route: &str) -> Value {
    let r = admin
        .call(
            Method::GET,
            &format!("/api/routes/{route}/health"),
            Value::Null,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

/// Waits until `check` holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_killed_under_load_costs_no_idempotent_call_and_comes_back() {
    let a = Upstream::start().await;
    let b = Upstream::start().await;
    let c = Upstream::start().await;
    let b_addr = b.addr;
    let doc = json!({ "format": 1, "routes": [{
        "id": "shop", "paths": ["/{*rest}"], "public": true,
        "backend": {
            "targets": [
                { "url": format!("{}/a", a.url()) },
                { "url": format!("{}/b", b.url()) },
                { "url": format!("{}/c", c.url()) }
            ],
            "loadBalancing": { "strategy": "leastRequests" },
            "circuitBreaker": { "consecutiveFailures": 3, "openSeconds": 1 },
            "retries": { "attempts": 2, "budgetPercent": 50 }
        }
    }]});
    let k = Komainu::start(&doc.to_string());
    let admin = Admin::new(&k.admin_base());
    assert_eq!(health(&admin, "shop").await["status"], "healthy");

    // 64 connections calling without a pause.
    let stop = Arc::new(AtomicBool::new(false));
    let url = k.url("/items");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let stop = stop.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::default();
            let mut seen: Vec<(Duration, StatusCode, String)> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client.get(&url, &[]).await;
                seen.push((started.elapsed(), r.status, served_by(&r.body)));
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed_at = started.elapsed();
    drop(b); // killed: its listener and every connection closed
             // Detected: the breaker opens on b.
    let detect = Instant::now();
    eventually(Duration::from_secs(5), "b marked down", || async {
        let h = health(&admin, "shop").await;
        h["targets"][1]["status"] == "down"
    })
    .await;
    let detected_in = detect.elapsed();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // b comes back on the same port: after the cool-down, one probe, then
    // traffic again.
    let b = Upstream::start_at(b_addr).await;
    let back_at = started.elapsed();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let failed: Vec<_> = all
        .iter()
        .filter(|(_, s, _)| *s != StatusCode::OK)
        .collect();
    let to_b_after_back = all
        .iter()
        .filter(|(at, s, by)| *at > back_at && *s == StatusCode::OK && by == "b")
        .count();
    let mut by_target: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, by) in &all {
        *by_target.entry(by.as_str()).or_default() += 1;
    }
    println!(
        "{} calls; b killed at {killed_at:?}, marked down within {detected_in:?}; \
         {} failed; b back at {back_at:?}, then served {to_b_after_back}; by target {by_target:?}",
        all.len(),
        failed.len()
    );
    assert!(all.len() > 1000, "load: {} calls", all.len());
    assert!(
        failed.is_empty(),
        "failed calls: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert!(
        to_b_after_back > 50,
        "b took {to_b_after_back} calls once back"
    );
    assert_eq!(health(&admin, "shop").await["targets"][1]["status"], "up");
    // Each change was an alert.
    let down = alerts(&admin, "target_down").await;
    assert!(
        down.iter()
            .any(|e| e["data"]["details"]["target"] == format!("{}/b", b.url())),
        "{down:?}"
    );
    assert!(!alerts(&admin, "target_up").await.is_empty());
}

#[tokio::test]
async fn a_post_is_never_sent_twice_and_unreachable_targets_are_skipped() {
    // The first target reads the whole request, then closes without an
    // answer; the second would answer.
    let broken = ScriptedUpstream::start(|_| (Vec::new(), true)).await;
    let ok = Upstream::start().await;
    let dead = free_addr().await;
    let doc = json!({ "format": 1, "routes": [
        { "id": "pay", "paths": ["/pay"], "public": true, "backend": {
            "targets": [{ "url": broken.url() }, { "url": ok.url() }],
            "loadBalancing": { "strategy": "hash", "header": "x-user" },
            // What is safe to retry, not the budget, is under test here.
            "retries": { "budgetPercent": 100 } } },
        { "id": "dead-first", "paths": ["/df"], "public": true, "backend": {
            "targets": [{ "url": format!("http://{dead}") }, { "url": ok.url() }] } },
        { "id": "no-retry", "paths": ["/nr"], "public": true, "backend": {
            "targets": [{ "url": format!("http://{dead}") }, { "url": ok.url() }],
            "retries": { "attempts": 0 } } }
    ]});
    let k = Komainu::start(&doc.to_string());
    let c = Client::default();
    // Users hash to one target or the other.
    let mut posts_to_broken = 0;
    let mut post_statuses = Vec::new();
    for i in 0..40 {
        let u = format!("user-{i}");
        let r = c
            .send(Method::POST, &k.url("/pay"), &[("x-user", &u)], "amount=10")
            .await;
        post_statuses.push(r.status);
        if r.status == StatusCode::BAD_GATEWAY {
            posts_to_broken += 1;
        } else {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(served_by(&r.body), "pay");
        }
    }
    assert!(
        posts_to_broken > 5,
        "{posts_to_broken} of 40 hashed to the broken target"
    );
    // Each POST that reached the broken target was answered 502, not replayed.
    assert_eq!(
        broken.requests.load(Ordering::SeqCst),
        posts_to_broken as usize
    );
    // A GET without a body goes on to the other target.
    for i in 0..20 {
        let u = format!("user-{i}");
        let r = c.get(&k.url("/pay"), &[("x-user", &u)]).await;
        assert_eq!(r.status, StatusCode::OK, "GET for {u}");
    }
    // An idempotent request whose whole body the gateway holds goes on too,
    // over HTTP/1.1 and HTTP/2 alike (some of these users hash to the
    // broken target).
    assert!(post_statuses[..20].contains(&StatusCode::BAD_GATEWAY));
    for client in [Client::http1(), Client::http2()] {
        for i in 0..20 {
            let u = format!("user-{i}");
            let r = client
                .send(Method::PUT, &k.url("/pay"), &[("x-user", &u)], "amount=10")
                .await;
            assert_eq!(r.status, StatusCode::OK, "PUT for {u}");
            assert_eq!(served_by(&r.body), "pay");
        }
    }
    // A POST over HTTP/2 that reached the broken target is not replayed
    // either: each user gets what it got over HTTP/1.1 (502 on the broken one).
    let h2 = Client::http2();
    for (i, expected) in post_statuses.iter().enumerate().take(20) {
        let u = format!("user-{i}");
        let r = h2
            .send(Method::POST, &k.url("/pay"), &[("x-user", &u)], "amount=10")
            .await;
        assert_eq!(r.status, *expected, "POST over HTTP/2 for {u}");
    }
    // Nothing was sent to an unreachable target: any method goes on.
    for _ in 0..6 {
        let r = c
            .send(Method::POST, &k.url("/df"), &[], "x".repeat(10_000))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    // Retries off: the unreachable target's calls fail.
    let mut failed = 0;
    for _ in 0..6 {
        if c.get(&k.url("/nr"), &[]).await.status == StatusCode::BAD_GATEWAY {
            failed += 1;
        }
    }
    assert_eq!(failed, 3, "round robin: half the calls to the dead target");
}

#[tokio::test]
async fn active_checks_take_a_target_out_and_bring_it_back() {
    let a = Upstream::start().await;
    let b_addr = free_addr().await;
    let doc = json!({ "format": 1, "routes": [{
        "id": "api", "paths": ["/{*rest}"], "public": true,
        "backend": {
            "targets": [
                { "url": format!("{}/a", a.url()) },
                { "url": format!("http://{b_addr}/b") }
            ],
            "healthCheck": { "path": "/healthz", "intervalMs": 100, "timeoutMs": 100,
                             "unhealthyThreshold": 2, "healthyThreshold": 2 },
            "retries": { "attempts": 0 }
        }
    }]});
    let k = Komainu::start(&doc.to_string());
    let admin = Admin::new(&k.admin_base());
    // b never answers: down without a single request sent to it.
    eventually(Duration::from_secs(5), "b down by checks", || async {
        health(&admin, "api").await["targets"][1]["status"] == "down"
    })
    .await;
    let h = health(&admin, "api").await;
    assert_eq!(h["healthCheck"], true);
    assert_eq!(h["targets"][1]["check"]["passing"], false);
    assert!(h["targets"][1]["check"]["lastError"].is_string(), "{h}");
    let c = Client::default();
    for _ in 0..10 {
        let r = c.get(&k.url("/x"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(served_by(&r.body), "a");
    }
    // b starts: two good checks later it takes traffic again.
    let _b = Upstream::start_at(b_addr).await;
    eventually(Duration::from_secs(5), "b up by checks", || async {
        health(&admin, "api").await["targets"][1]["status"] == "up"
    })
    .await;
    let mut to_b = 0;
    for _ in 0..10 {
        if served_by(&c.get(&k.url("/x"), &[]).await.body) == "b" {
            to_b += 1;
        }
    }
    assert_eq!(to_b, 5);
    let down = alerts(&admin, "target_down").await;
    assert!(
        down.iter().any(|e| e["data"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("health checks failed")),
        "{down:?}"
    );
    assert!(!alerts(&admin, "target_up").await.is_empty());
    // a stops: the checks take it out, b takes every call.
    drop(a);
    eventually(Duration::from_secs(5), "a down by checks", || async {
        health(&admin, "api").await["targets"][0]["status"] == "down"
    })
    .await;
    for _ in 0..6 {
        let r = c.get(&k.url("/x"), &[]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(served_by(&r.body), "b");
    }
    // Nothing left: 503 no_healthy_target, and the route says so.
    drop(_b);
    eventually(Duration::from_secs(5), "route down", || async {
        health(&admin, "api").await["status"] == "down"
    })
    .await;
    c.get(&k.url("/x"), &[])
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "no_healthy_target");
}

#[tokio::test]
async fn health_settings_are_checked_and_nothing_is_stored_when_wrong() {
    let k = Komainu::start(r#"{"format":1}"#);
    let admin = Admin::new(&k.admin_base());
    for (backend, field) in [
        (
            json!({ "targets": [], "circuitBreaker": { "openSeconds": 0 } }),
            "routes[0].backend.circuitBreaker.openSeconds",
        ),
        (
            json!({ "targets": [], "circuitBreaker": { "consecutiveFailures": 0 } }),
            "routes[0].backend.circuitBreaker.consecutiveFailures",
        ),
        (
            json!({ "targets": [], "circuitBreaker": { "errorRatePercent": 101 } }),
            "routes[0].backend.circuitBreaker.errorRatePercent",
        ),
        (
            json!({ "targets": [], "healthCheck": { "path": "health" } }),
            "routes[0].backend.healthCheck.path",
        ),
        (
            json!({ "targets": [], "healthCheck": { "intervalMs": 1000, "timeoutMs": 5000 } }),
            "routes[0].backend.healthCheck.timeoutMs",
        ),
        (
            json!({ "targets": [], "healthCheck": { "expectedStatuses": [99] } }),
            "routes[0].backend.healthCheck.expectedStatuses[0]",
        ),
        (
            json!({ "targets": [], "retries": { "attempts": 9 } }),
            "routes[0].backend.retries.attempts",
        ),
    ] {
        let r = admin
            .call(
                Method::POST,
                "/api/routes",
                json!({ "id": "r", "paths": ["/r"], "public": true, "backend": backend }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{backend}");
        let fields: Vec<String> = r.json()["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().replace("route.", "routes[0]."))
            .collect();
        assert!(
            fields
                .iter()
                .any(|f| f.ends_with(field.trim_start_matches("routes[0]."))),
            "{backend}: {fields:?}"
        );
        let r = admin.call(Method::GET, "/api/routes/r", Value::Null).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "nothing stored");
    }
    // An unknown field is refused too.
    let r = admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "r", "paths": ["/r"], "public": true,
                    "backend": { "targets": [], "circuitBreaker": { "failures": 3 } } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // The health of a route that does not exist.
    let r = admin
        .call(Method::GET, "/api/routes/nope/health", Value::Null)
        .await;
    r.expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn random_and_least_requests_spread_as_their_weights_say() {
    let up = Upstream::start().await;
    let doc = json!({ "format": 1, "routes": [
        { "id": "rand", "paths": ["/rand/{*rest}"], "public": true, "stripPrefix": "/rand",
          "backend": { "targets": [
              { "url": format!("{}/heavy", up.url()), "weight": 3 },
              { "url": format!("{}/light", up.url()) }
          ], "loadBalancing": { "strategy": "random" } } },
        { "id": "p2c", "paths": ["/p2c/{*rest}"], "public": true, "stripPrefix": "/p2c",
          "backend": { "targets": [
              { "url": format!("{}/one", up.url()) },
              { "url": format!("{}/two", up.url()) },
              { "url": format!("{}/three", up.url()) }
          ], "loadBalancing": { "strategy": "leastRequests" } } }
    ]});
    let k = Komainu::start(&doc.to_string());
    let c = Client::default();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..800 {
        let r = c.get(&k.url("/rand/x"), &[]).await;
        *by.entry(served_by(&r.body)).or_default() += 1;
    }
    let heavy = by.get("heavy").copied().unwrap_or(0);
    assert!((540..=660).contains(&heavy), "3:1 expected, got {by:?}");
    // Sequential calls: every target is idle, the two drawn tie, all get some.
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..300 {
        let r = c.get(&k.url("/p2c/x"), &[]).await;
        *by.entry(served_by(&r.body)).or_default() += 1;
    }
    assert_eq!(by.len(), 3, "{by:?}");
    assert!(by.values().all(|&n| n >= 60), "{by:?}");
}
