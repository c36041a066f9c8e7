//! Worker-only behaviour: settings it can do without.

use http::{Method, StatusCode};
use komainu_e2e::{Admin, Client, Upstream, Worker};
use serde_json::json;

#[tokio::test]
async fn without_a_claim_secret_the_worker_generates_and_keeps_one() {
    let up = Upstream::start().await;
    let worker = tokio::task::spawn_blocking(|| Worker::start_with(""))
        .await
        .unwrap();
    let admin = Admin::new(&worker.admin_base());
    let r = admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "open", "paths": ["/open"], "public": true, "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await;
    r.expect_status(StatusCode::CREATED);
    let c = Client::default();
    let claims: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let r = c.get(&worker.url("/open"), &[]).await;
            r.expect_status(StatusCode::OK);
            v.push(
                r.json()["headers"]["komainu-claim"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    for claim in &claims {
        assert_eq!(claim.split('.').count(), 3, "a signed JWT: {claim}");
    }
}

#[tokio::test]
async fn the_worker_keeps_audit_events_and_alerts_and_continues_traces() {
    let up = Upstream::start().await;
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let admin = Admin::new(&worker.admin_base());
    admin.create("/api/routes", json!({ "id": "metered", "paths": ["/metered"], "backend": { "targets": [{ "url": up.url() }] } })).await;
    let secret = admin
        .create_key(json!({ "clientId": "w", "routes": ["metered"], "quotas": { "perDay": 2 } }))
        .await;
    let c = Client::default();
    let headers = [
        ("komainu-client-id", "w"),
        ("komainu-client-secret", secret.as_str()),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let r = c.get(&worker.url("/metered"), &headers).await;
    r.expect_status(StatusCode::OK);
    let forwarded = r.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(!forwarded.contains("00f067aa0ba902b7"));
    c.get(&worker.url("/metered"), &headers)
        .await
        .expect_status(StatusCode::OK);

    // The audit events, and the quota alert the second call raised (kept
    // after its answer), are read back from the shared event log.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let events = loop {
        let r = admin
            .call(
                Method::GET,
                "/api/events?type=audit,alert",
                serde_json::Value::Null,
            )
            .await;
        r.expect_status(StatusCode::OK);
        let events = r.json()["events"].as_array().cloned().unwrap_or_default();
        if events
            .iter()
            .any(|e| e["type"] == "io.komainu.alert.quota_spent.v1")
        {
            break events;
        }
        assert!(std::time::Instant::now() < deadline, "{events:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert!(
        types.contains(&"io.komainu.audit.route.create.v1"),
        "{types:?}"
    );
    assert!(
        types.contains(&"io.komainu.audit.apikey.create.v1"),
        "{types:?}"
    );
    assert!(events.iter().all(|e| e["source"] == "/komainu/worker"));
    assert!(!serde_json::to_string(&events).unwrap().contains(&secret));
    let by_key = admin
        .call(Method::GET, "/api/events?key=w", serde_json::Value::Null)
        .await
        .json();
    let by_key = by_key["events"].as_array().unwrap();
    assert!(by_key.iter().all(|e| e["data"]["key"] == "w"
        || e["subject"] == "w"
        || e["data"]["identity"]["clientId"] == "w"));
    // The isolate that answered keeps its recent request events too.
    assert!(
        by_key
            .iter()
            .filter(|e| e["type"] == "io.komainu.request.v1")
            .count()
            >= 2,
        "{by_key:#?}"
    );

    // Exporters are configuration there too; what needs a process says so.
    admin
        .call(
            Method::POST,
            "/api/exporters",
            json!({ "id": "f", "kind": "file", "path": "-" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    for (method, path) in [
        (Method::GET, "/api/exporters/f/status"),
        (Method::GET, "/api/events/stream"),
    ] {
        admin
            .call(method, path, serde_json::Value::Null)
            .await
            .expect_error(StatusCode::NOT_IMPLEMENTED, "not_offered");
    }
}

#[tokio::test]
async fn the_worker_sends_each_requests_events_to_webhooks_after_the_answer() {
    use komainu_e2e::receiver::Mode;
    use komainu_e2e::Receiver;
    let up = Upstream::start().await;
    let receiver = Receiver::start(Mode::Accept).await;
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let admin = Admin::new(&worker.admin_base());
    admin.create("/api/routes", json!({ "id": "open", "paths": ["/open"], "public": true, "backend": { "targets": [{ "url": up.url() }] } })).await;
    let secret = "edge-webhook-secret-0123";
    admin
        .call(
            Method::POST,
            "/api/exporters",
            json!({ "id": "hook", "kind": "webhook", "url": receiver.url(), "secret": secret,
                    "include": ["request", "audit"] }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    Client::default()
        .get(&worker.url("/open"), &[])
        .await
        .expect_status(StatusCode::OK);
    let got = receiver
        .wait_for(std::time::Duration::from_secs(10), |d| {
            d.iter().any(|d| {
                d.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["type"] == "io.komainu.request.v1")
            })
        })
        .await;
    let delivery = got
        .iter()
        .find(|d| d.json()[0]["type"] == "io.komainu.request.v1")
        .unwrap();
    assert_eq!(
        delivery.headers["content-type"],
        "application/cloudevents-batch+json"
    );
    let event = &delivery.json()[0];
    assert_eq!(event["source"], "/komainu/worker");
    assert_eq!(event["data"]["routeId"], "open");
    delivery.assert_signed_with(secret);

    // A test event goes to that webhook, past its type filters.
    let r = admin
        .call(
            Method::POST,
            "/api/exporters/hook/test",
            serde_json::Value::Null,
        )
        .await;
    r.expect_status(StatusCode::ACCEPTED);
    let test_id = r.json()["eventId"].as_str().unwrap().to_owned();
    let got = receiver
        .wait_for(std::time::Duration::from_secs(10), |d| {
            d.iter().any(|d| {
                d.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["id"] == test_id.as_str())
            })
        })
        .await;
    let delivery = got
        .iter()
        .find(|d| {
            d.json()
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["id"] == test_id.as_str())
        })
        .unwrap();
    assert!(delivery
        .json()
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "io.komainu.test.v1"));
    delivery.assert_signed_with(secret);
}
