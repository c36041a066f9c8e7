//! Several real `komainu` instances on one real Redis: one configuration,
//! exact quotas, changes propagated, and a Redis that goes away and returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use komainu_e2e::{Admin, Client, Komainu, RedisServer, Upstream};
use serde_json::{json, Value};

async fn setup(admin: &Admin, up: &Upstream, per_day: u64) -> String {
    let r = admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "api", "paths": ["/api", "/api/{*rest}"], "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await;
    r.expect_status(StatusCode::CREATED);
    let r = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "k", "routes": ["api"], "quotas": { "perDay": per_day } }),
        )
        .await;
    r.json()["clientSecret"].as_str().unwrap().to_owned()
}

async fn wait_for_revision(gw: &Komainu, revision: u64) {
    let admin = Admin::new(&gw.admin_base());
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin
        .call(Method::GET, "/api/health", Value::Null)
        .await
        .json()["revision"]
        .as_u64()
        < Some(revision)
    {
        assert!(
            Instant::now() < deadline,
            "revision {revision} never reached {}",
            gw.admin_base()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_instances_admit_exactly_the_daily_quota() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let a = Komainu::start_shared(&redis.url(), &[]);
    let b = Komainu::start_shared(&redis.url(), &[]);
    let secret = setup(&Admin::new(&a.admin_base()), &up, 200).await;
    wait_for_revision(&b, 2).await;

    let urls = Arc::new([a.url("/api/x"), b.url("/api/x")]);
    let (ok, refused, sent) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (urls, ok, refused, sent, secret) = (
                urls.clone(),
                ok.clone(),
                refused.clone(),
                sent.clone(),
                secret.clone(),
            );
            tokio::spawn(async move {
                let client = Client::default();
                let headers = [
                    ("komainu-client-id", "k"),
                    ("komainu-client-secret", secret.as_str()),
                ];
                while sent.fetch_add(1, Ordering::SeqCst) < 320 {
                    let r = client.get(&urls[i % 2], &headers).await;
                    match r.status {
                        StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                        StatusCode::TOO_MANY_REQUESTS => refused.fetch_add(1, Ordering::SeqCst),
                        other => panic!("unexpected {other}: {}", String::from_utf8_lossy(&r.body)),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        ok.load(Ordering::SeqCst),
        200,
        "exactly the quota, across both instances"
    );
    assert_eq!(refused.load(Ordering::SeqCst), 120);
    let report = Admin::new(&b.admin_base())
        .call(Method::GET, "/api/apikeys/k/quotas", Value::Null)
        .await
        .json();
    assert_eq!(report["windows"][0]["used"], 200);
}

#[tokio::test]
async fn a_change_on_one_instance_is_live_on_the_other() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let a = Komainu::start_shared(&redis.url(), &[]);
    let b = Komainu::start_shared(&redis.url(), &[]);
    let admin_a = Admin::new(&a.admin_base());
    let client = Client::default();
    assert_eq!(
        client.get(&b.url("/fresh"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let created = Instant::now();
    admin_a
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "fresh", "paths": ["/fresh"], "public": true, "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await;
    loop {
        if client.get(&b.url("/fresh"), &[]).await.status == StatusCode::OK {
            break;
        }
        // The periodic check runs every 5 s; pub/sub must beat it by far.
        assert!(
            created.elapsed() < Duration::from_secs(3),
            "not propagated by pub/sub"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("propagation A → B: {:?}", created.elapsed());
    // Writes from both sides never lose each other (compare-and-swap).
    let admin_b = Admin::new(&b.admin_base());
    let writes: Vec<_> = (0..10)
        .map(|i| {
            let admin = if i % 2 == 0 {
                admin_a.clone()
            } else {
                admin_b.clone()
            };
            tokio::spawn(async move {
                admin
                    .call(
                        Method::POST,
                        "/api/groups",
                        json!({ "id": format!("g{i}") }),
                    )
                    .await
                    .status
            })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), StatusCode::CREATED);
    }
    let groups = admin_b
        .call(Method::GET, "/api/groups", Value::Null)
        .await
        .json();
    assert_eq!(groups.as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn when_redis_goes_away_known_routes_keep_working_and_all_recovers() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = Komainu::start_shared(&redis.url(), &[]);
    let admin = Admin::new(&gw.admin_base());
    let secret = setup(&admin, &up, 1_000).await;
    admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "strict", "paths": ["/strict"], "quotaFailure": "closed", "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await;
    admin
        .call(
            Method::PATCH,
            "/api/apikeys/k",
            json!({ "routes": ["api", "strict"] }),
        )
        .await;
    let client = Client::default();
    let headers = [
        ("komainu-client-id", "k"),
        ("komainu-client-secret", secret.as_str()),
    ];
    let r = client.get(&gw.url("/api/x"), &headers).await;
    assert_eq!(r.header("komainu-daily-calls-remaining"), "999");

    redis.kill();
    // Known routes go on from the in-memory configuration; quotas follow the policy.
    let open = client.get(&gw.url("/api/x"), &headers).await;
    assert_eq!(
        open.status,
        StatusCode::OK,
        "policy open: admitted, uncounted"
    );
    assert!(open.header("komainu-daily-calls-remaining").is_empty());
    let closed = client.get(&gw.url("/strict"), &headers).await;
    assert_eq!(closed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(closed.json()["error"], "store_unavailable");
    let write = admin
        .call(Method::POST, "/api/groups", json!({ "id": "g" }))
        .await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(write.json()["error"], "store_unavailable");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = client.get(&gw.url("/api/x"), &headers).await;
        if r.header("komainu-daily-calls-remaining") == "998" {
            break;
        }
        assert!(Instant::now() < deadline, "quotas never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let write = admin
        .call(Method::POST, "/api/groups", json!({ "id": "g" }))
        .await;
    assert_eq!(
        write.status,
        StatusCode::CREATED,
        "admin writes recover without a restart"
    );
    assert_eq!(
        client.get(&gw.url("/strict"), &headers).await.status,
        StatusCode::OK
    );
}

/// Redis comes back empty (no persistence) under load: the instances
/// write their live configuration back by themselves within seconds, no
/// call on a known route is lost meanwhile, and admin writes work again.
#[tokio::test]
async fn a_redis_back_empty_is_restored_from_the_instances() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let a = Komainu::start_shared(&redis.url(), &[]);
    let b = Komainu::start_shared(&redis.url(), &[]);
    let admin_a = Admin::new(&a.admin_base());
    let secret = setup(&admin_a, &up, 1_000_000).await;
    let revision = admin_a
        .call(Method::GET, "/api/health", Value::Null)
        .await
        .json()["revision"]
        .as_u64()
        .unwrap();
    wait_for_revision(&b, revision).await;

    let failures = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for gw_url in [a.url("/api/x"), b.url("/api/x")] {
        let (failures, calls, stop, secret) = (
            failures.clone(),
            calls.clone(),
            stop.clone(),
            secret.clone(),
        );
        load.push(tokio::spawn(async move {
            let client = Client::default();
            let headers = [
                ("komainu-client-id", "k"),
                ("komainu-client-secret", secret.as_str()),
            ];
            while !stop.load(Ordering::SeqCst) {
                let r = client.get(&gw_url, &headers).await;
                calls.fetch_add(1, Ordering::SeqCst);
                if r.status != StatusCode::OK {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.restart_empty();
    let restarted = Instant::now();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    loop {
        let stored: Option<u64> = redis::cmd("HGET")
            .arg("komainu:config")
            .arg("revision")
            .query_async(&mut conn)
            .await
            .unwrap();
        if stored == Some(revision) {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "the configuration is not back after 5 s (stored: {stored:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Admin writes work again, on either instance, with no import.
    Admin::new(&b.admin_base())
        .call(Method::POST, "/api/groups", json!({ "id": "after" }))
        .await
        .expect_status(StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert!(calls.load(Ordering::SeqCst) > 50);
    assert_eq!(failures.load(Ordering::SeqCst), 0, "no call was lost");
    let export = admin_a
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(export["routes"][0]["id"], "api", "the routes came back");
    assert_eq!(export["apikeys"][0]["clientId"], "k", "the keys came back");
}
