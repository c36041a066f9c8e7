//! Events and metrics, end to end on the real binary: one request event
//! per call with its fields and no credential, audit events, quota alerts,
//! the live stream and its resumption, exporters (file, stdout, a real
//! webhook receiver that fails and hangs, a real Redis stream) and
//! `/metrics` checked by a real parser (`promtool`).

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::{Method, StatusCode};
use komainu_e2e::receiver::Mode;
use komainu_e2e::{jwt, Admin, Client, Komainu, Receiver, RedisServer, Upstream};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "events-secret-0123456789";

fn document(up: &Upstream, extra: Value) -> String {
    let mut doc = json!({
        "format": 1,
        "revision": 1,
        "routes": [
            { "id": "orders", "name": "Orders API", "paths": ["/orders", "/orders/{*rest}"],
              "backend": { "targets": [{ "url": up.url() }] } },
            { "id": "open", "paths": ["/open", "/open/{*rest}"], "public": true,
              "backend": { "targets": [{ "url": up.url() }] } }
        ],
        "apikeys": [
            { "clientId": "shop", "name": "The shop", "clientSecret": SECRET, "routes": ["orders"],
              "quotas": { "perDay": 5 } },
            { "clientId": "off", "clientSecret": SECRET, "enabled": false, "routes": ["orders"] }
        ]
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            doc.insert(k.clone(), v.clone());
        }
    }
    doc.to_string()
}

fn pair(id: &'static str) -> [(&'static str, &'static str); 2] {
    [("komainu-client-id", id), ("komainu-client-secret", SECRET)]
}

/// The events `query` selects (`type=…&route=…`).
async fn events(admin: &Admin, query: &str) -> Vec<Value> {
    let r = admin
        .call(Method::GET, &format!("/api/events?{query}"), Value::Null)
        .await;
    r.expect_status(StatusCode::OK);
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

/// Waits until `query` selects at least `n` events (dispatch is asynchronous).
async fn wait_events(admin: &Admin, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = events(admin, query).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} events for {query}, got {}: {found:#?}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_call_is_one_request_event_with_its_fields_and_no_credential() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let c = Client::default();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = pair("shop").to_vec();
    headers.push(("traceparent", traceparent));
    let r = c
        .send(
            Method::POST,
            &gw.url("/orders/7?token=do-not-log"),
            &headers,
            "0123456789",
        )
        .await;
    r.expect_status(StatusCode::OK);
    let request_id = r.header("komainu-request-id").to_owned();
    // The backend continues the trace: same trace id, the gateway's span as parent.
    let seen = r.json();
    let forwarded = seen["headers"]["traceparent"].as_str().unwrap();
    assert!(forwarded.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(
        !forwarded.contains("00f067aa0ba902b7"),
        "a new span: {forwarded}"
    );

    let found = wait_events(&admin, "type=request&route=orders", 1).await;
    assert_eq!(found.len(), 1, "exactly one event per call: {found:#?}");
    let e = &found[0];
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["type"], "io.komainu.request.v1");
    assert_eq!(e["id"], request_id.as_str());
    assert!(e["source"].as_str().unwrap().starts_with("/komainu/"));
    assert_eq!(e["subject"], "orders");
    let d = &e["data"];
    assert_eq!(d["requestId"], request_id.as_str());
    assert_eq!(d["routeId"], "orders");
    assert_eq!(d["routeName"], "Orders API");
    assert_eq!(
        d["identity"],
        json!({ "type": "key", "clientId": "shop", "name": "The shop" })
    );
    assert_eq!(d["method"], "POST");
    assert_eq!(d["path"], "/orders/7", "no query string in events");
    assert_eq!(d["status"], 200);
    assert_eq!(d["error"], Value::Null);
    assert_eq!(d["clientIp"], "127.0.0.1");
    assert_eq!(d["bytesIn"], 10);
    assert!(d["bytesOut"].as_u64().unwrap() > 0);
    assert_eq!(d["attempts"], 1);
    for field in ["totalMs", "backendMs", "overheadMs"] {
        assert!(d["durations"][field].as_f64().is_some(), "{field}: {d}");
    }
    assert_eq!(d["quotas"][0]["window"], "day");
    assert_eq!(d["quotas"][0]["remaining"], 4);
    assert_eq!(d["trace"]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(d["trace"]["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(
        forwarded,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            d["trace"]["spanId"].as_str().unwrap()
        )
    );

    // Refusals are events too, blaming the client; no credential in any of them.
    let basic = format!("Basic {}", STANDARD.encode(format!("shop:{SECRET}")));
    let bearer = format!(
        "Bearer {}",
        jwt::sign(r#"{"iss":"shop","exp":99999999999}"#, SECRET.as_bytes())
    );
    c.get(&gw.url("/orders"), &[("authorization", basic.as_str())])
        .await;
    c.get(&gw.url("/orders"), &[("authorization", bearer.as_str())])
        .await;
    c.get(&gw.url("/orders"), &pair("off"))
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
    c.get(&gw.url("/nowhere"), &[])
        .await
        .expect_status(StatusCode::NOT_FOUND);
    let all = wait_events(&admin, "type=request", 5).await;
    let text = serde_json::to_string(&all).unwrap();
    for secret in [
        SECRET,
        basic.as_str(),
        bearer.as_str(),
        &STANDARD.encode(format!("shop:{SECRET}")),
    ] {
        assert!(!text.contains(secret), "an event carries a credential");
    }
    assert!(!text.contains("do-not-log"));
    assert_eq!(
        all.iter()
            .filter(|e| e["id"] == request_id.as_str())
            .count(),
        1,
        "one event per call"
    );
    let refused = all.iter().find(|e| e["data"]["status"] == 401).unwrap();
    assert_eq!(refused["data"]["error"], "invalid_credentials");
    assert_eq!(refused["data"]["blame"], "client");
    assert_eq!(
        refused["data"]["identity"],
        json!({ "type": "refused", "clientId": "off" })
    );
    let missing = all.iter().find(|e| e["data"]["status"] == 404).unwrap();
    assert_eq!(missing["data"]["routeId"], Value::Null);
    assert_eq!(missing["data"]["error"], "route_not_found");

    // Filters: by key, by type family, and a bad parameter named.
    let by_key = events(&admin, "key=shop&type=request").await;
    assert!(by_key
        .iter()
        .all(|e| e["data"]["identity"]["clientId"] == "shop"));
    admin
        .call(Method::GET, "/api/events?limit=5000", Value::Null)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    admin
        .with_auth(None)
        .call(Method::GET, "/api/events", Value::Null)
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn latency_headers_are_added_when_the_settings_say_so() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(
        &up,
        json!({ "settings": { "latencyHeaders": true } }),
    ));
    Admin::new(&gw.admin_base())
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "slow", "paths": ["/slow/{ms}"], "public": true,
                    "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    for client in [Client::http1(), Client::http2()] {
        let r = client.get(&gw.url("/slow/60"), &[]).await;
        r.expect_status(StatusCode::OK);
        let upstream: u64 = r.header("komainu-upstream-latency").parse().unwrap();
        let proxy: u64 = r.header("komainu-proxy-latency").parse().unwrap();
        assert!(upstream >= 60, "the backend waited 60 ms: {upstream}");
        assert!(proxy < upstream, "{proxy} {upstream}");
    }
    // Off by default.
    let plain = Komainu::start(&document(&up, json!({})));
    let r = Client::default().get(&plain.url("/open/x"), &[]).await;
    assert!(r.headers.get("komainu-upstream-latency").is_none());
    assert!(r.headers.get("komainu-proxy-latency").is_none());
}

#[tokio::test]
async fn audit_events_and_alerts_outlive_a_restart_and_are_shared_on_redis() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    Admin::new(&gw.admin_base())
        .call(
            Method::PATCH,
            "/api/routes/open",
            json!({ "name": "Before the restart" }),
        )
        .await
        .expect_status(StatusCode::OK);
    wait_events(&Admin::new(&gw.admin_base()), "type=audit", 1).await;
    // The log is written just after dispatch: give it a moment, then restart.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gw = gw.restart();
    let kept = wait_events(&Admin::new(&gw.admin_base()), "type=audit&route=open", 1).await;
    assert_eq!(kept[0]["type"], "io.komainu.audit.route.patch.v1");
    assert_eq!(kept[0]["data"]["after"]["name"], "Before the restart");

    // Two instances on one Redis: a change made on one is read on the other.
    let redis = RedisServer::start();
    let a = Komainu::start_shared(&redis.url(), &[]);
    let b = Komainu::start_shared(&redis.url(), &[]);
    Admin::new(&a.admin_base())
        .call(
            Method::POST,
            "/api/groups",
            json!({ "id": "shared", "name": "Shared" }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let seen = wait_events(
        &Admin::new(&b.admin_base()),
        "type=io.komainu.audit.group.*",
        1,
    )
    .await;
    assert_eq!(seen[0]["subject"], "shared");
}

#[tokio::test]
async fn the_store_going_away_and_coming_back_are_alerts() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = Komainu::start_shared(&redis.url(), &[]);
    let admin = Admin::new(&gw.admin_base());
    admin.create("/api/routes", json!({ "id": "api", "paths": ["/api"], "backend": { "targets": [{ "url": up.url() }] } })).await;
    let secret = admin
        .create_key(json!({ "clientId": "k", "routes": ["api"], "quotas": { "perDay": 1000 } }))
        .await;
    let headers = [
        ("komainu-client-id", "k"),
        ("komainu-client-secret", secret.as_str()),
    ];
    let c = Client::default();
    c.get(&gw.url("/api"), &headers)
        .await
        .expect_status(StatusCode::OK);

    redis.kill();
    // Admitted uncounted (the default policy is open); the failure is an alert.
    c.get(&gw.url("/api"), &headers)
        .await
        .expect_status(StatusCode::OK);
    let down = wait_events(&admin, "type=io.komainu.alert.store_unavailable.v1", 1).await;
    assert_eq!(down[0]["data"]["severity"], "critical");
    assert!(down[0]["data"]["message"]
        .as_str()
        .unwrap()
        .contains("store"));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.get(&gw.url("/api"), &headers).await;
        let up_again = events(&admin, "type=io.komainu.alert.store_recovered.v1").await;
        if !up_again.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no store_recovered alert");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = admin.call(Method::GET, "/metrics", Value::Null).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        sample(
            &text,
            r#"komainu_store_operations_total{store="counters",result="error"}"#
        ) >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn calls_refused_before_their_head_was_read_are_events_too() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    for (raw, status) in [
        (
            b"GET /open HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n".to_vec(),
            400,
        ),
        (
            [&b"GET /open HTTP/1.1\r\nhost: x\r\nx-big: "[..], &vec![b'a'; 70 * 1024], b"\r\n\r\n"].concat(),
            431,
        ),
    ] {
        let mut s = gw.connect().await;
        let _ = s.write_all(&raw).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        assert!(
            String::from_utf8_lossy(&answer).starts_with(&format!("HTTP/1.1 {status}")),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    let found = wait_events(&admin, "type=request", 2).await;
    let statuses: Vec<u64> = found
        .iter()
        .map(|e| e["data"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [400, 431]);
    assert!(found
        .iter()
        .all(|e| e["data"]["method"].is_null() && e["data"]["blame"] == "client"));
    let text =
        String::from_utf8_lossy(&admin.call(Method::GET, "/metrics", Value::Null).await.body)
            .into_owned();
    assert_eq!(
        sample(
            &text,
            r#"komainu_requests_total{route="(none)",method="other",status_class="4xx",outcome="refused"}"#
        ),
        2.0
    );
}

#[tokio::test]
async fn http2_calls_are_logged_with_their_bytes() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let r = Client::http2()
        .send(Method::POST, &gw.url("/open/stream"), &[], vec![b'x'; 3000])
        .await;
    r.expect_status(StatusCode::OK);
    let found = wait_events(&admin, "type=request&route=open", 1).await;
    let d = &found[0]["data"];
    assert_eq!(d["identity"]["type"], "public");
    assert_eq!(d["bytesIn"], 3000);
    assert_eq!(d["bytesOut"], r.body.len());
    assert_eq!(d["status"], 200);
    assert!(d["durations"]["backendMs"].as_f64().is_some());
}

#[tokio::test]
async fn changes_are_audit_events_and_quotas_raise_alerts_once() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let c = Client::default();

    admin
        .call(Method::PATCH, "/api/routes/open", json!({ "name": "Open" }))
        .await
        .expect_status(StatusCode::OK);
    let audit = wait_events(&admin, "type=audit", 1).await;
    assert_eq!(audit[0]["type"], "io.komainu.audit.route.patch.v1");
    assert_eq!(audit[0]["data"]["actor"], "ops");
    assert_eq!(audit[0]["data"]["after"]["name"], "Open");
    let applied = wait_events(&admin, "type=io.komainu.alert.revision_applied.v1", 1).await;
    assert_eq!(applied[0]["data"]["details"]["revision"], 2);

    // perDay 5: the 4th call uses 80 % (almost spent), the 5th the last one.
    for i in 1..=7 {
        let r = c.get(&gw.url("/orders"), &pair("shop")).await;
        let expected = if i <= 5 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        r.expect_status(expected);
    }
    let alerts = wait_events(&admin, "type=io.komainu.alert.quota_*", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts_after = events(&admin, "type=io.komainu.alert.quota_*").await;
    assert_eq!(
        alerts_after.len(),
        2,
        "each alert once per window: {alerts_after:#?}"
    );
    assert_eq!(alerts[0]["type"], "io.komainu.alert.quota_almost_spent.v1");
    assert_eq!(alerts[0]["data"]["details"]["used"], 4);
    assert_eq!(alerts[1]["type"], "io.komainu.alert.quota_spent.v1");
    assert_eq!(alerts[1]["data"]["key"], "shop");
    assert_eq!(alerts[1]["data"]["severity"], "warning");
    let refused = events(&admin, "type=request&key=shop").await;
    assert_eq!(
        refused
            .iter()
            .filter(|e| e["data"]["error"] == "quota_exceeded")
            .count(),
        2
    );

    // A rotated secret is an alert.
    admin
        .call(
            Method::POST,
            "/api/apikeys/shop/rotate",
            json!({ "graceSeconds": 60 }),
        )
        .await
        .expect_status(StatusCode::OK);
    // Its grace ends within 15 minutes: announced once, by the dispatcher.
    let rotated = wait_events(&admin, "type=io.komainu.alert.secret_rotated.v1", 1).await;
    assert_eq!(rotated[0]["data"]["key"], "shop");
    let ending = wait_events(&admin, "type=io.komainu.alert.rotation_grace_ending.v1", 1).await;
    assert_eq!(ending[0]["data"]["key"], "shop");

    // A refused key that keeps coming.
    for _ in 0..10 {
        c.get(&gw.url("/orders"), &pair("off")).await;
    }
    let repeated = wait_events(&admin, "type=io.komainu.alert.key_refused_repeatedly.v1", 1).await;
    assert_eq!(repeated[0]["data"]["key"], "off");
    assert_eq!(repeated[0]["data"]["route"], "orders");
}

/// Reads an SSE response until `n` events arrived; returns their ids and the raw text.
async fn read_stream(
    gw: &Komainu,
    query: &str,
    last_id: Option<&str>,
    n: usize,
    trigger: impl std::future::Future<Output = ()>,
) -> (Vec<String>, String) {
    let addr = gw.admin_base().trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let auth = STANDARD.encode(komainu_e2e::gateway::ADMIN_KEY);
    let resume = last_id
        .map(|id| format!("last-event-id: {id}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET /api/events/stream?{query} HTTP/1.1\r\nhost: x\r\nauthorization: Basic {auth}\r\n{resume}\r\n").as_bytes(),
    )
    .await
    .unwrap();
    // The stream is open once its head arrived.
    let mut text = String::new();
    let mut buf = vec![0u8; 65536];
    while !text.contains("komainu event stream") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    trigger.await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .map(str::to_owned)
            .collect();
        if ids.len() >= n {
            return (ids, text);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let read = tokio::time::timeout(left, s.read(&mut buf)).await;
        let Ok(Ok(n)) = read else {
            panic!("{n} events did not arrive: {text}");
        };
        assert!(n > 0, "the stream closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[tokio::test]
async fn the_stream_delivers_live_events_and_resumes_after_last_event_id() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let c = Client::default();
    let url = gw.url("/open/a");
    let (ids, text) = read_stream(&gw, "type=request&route=open", None, 3, async {
        for _ in 0..3 {
            c.get(&url, &[]).await.expect_status(StatusCode::OK);
        }
    })
    .await;
    assert!(text.contains("content-type: text/event-stream"));
    assert!(text.contains("event: io.komainu.request.v1"));
    assert_eq!(ids.len(), 3);
    // More events while nobody listens; a reader resuming after the first
    // gets the two that followed it, then these.
    c.get(&gw.url("/open/b"), &[]).await;
    c.get(&gw.url("/nowhere"), &[]).await; // filtered out: another route
    let (resumed, _) =
        read_stream(&gw, "type=request&route=open", Some(&ids[0]), 3, async {}).await;
    assert_eq!(&resumed[..2], &ids[1..3]);
    assert!(!resumed.contains(&ids[0]));
}

#[tokio::test]
async fn a_stream_reader_that_does_not_read_is_dropped_and_calls_go_on() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let addr: std::net::SocketAddr = gw
        .admin_base()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    // A small receive buffer (set before connecting: no autotuning), so
    // that what the gateway sends fills it whatever the machine's limits.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut reader = socket.connect(addr).await.unwrap();
    let auth = STANDARD.encode(komainu_e2e::gateway::ADMIN_KEY);
    reader
        .write_all(
            format!(
                "GET /api/events/stream HTTP/1.1\r\nhost: x\r\nauthorization: Basic {auth}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    // Thousands of events the reader never reads: more than its socket and
    // the gateway's send buffer hold (~10 MB; loopback buffers grow to
    // 4 MB and more).
    let c = Client::default();
    let started = Instant::now();
    for _ in 0..15_000 {
        c.get(&gw.url("/open/flood"), &[])
            .await
            .expect_status(StatusCode::OK);
    }
    let flood = started.elapsed();
    // Dropped within its time limit: the stream ends (EOF) instead of
    // holding events for it.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let mut all = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut all)).await;
    assert!(ended.is_ok(), "the slow reader was not disconnected");
    // The proxy kept its pace meanwhile, and the events are all there.
    assert!(flood < Duration::from_secs(60), "{flood:?}");
    let kept = events(&Admin::new(&gw.admin_base()), "type=request&limit=1000").await;
    assert_eq!(kept.len(), 1000);
}

#[tokio::test]
async fn a_webhook_gets_signed_batches_survives_downtime_and_counts_drops() {
    let up = Upstream::start().await;
    let receiver = Receiver::start(Mode::Fail).await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let c = Client::default();
    let hook_secret = "whsec-0123456789abcdef";
    admin
        .call(
            Method::POST,
            "/api/exporters",
            json!({ "id": "hook", "kind": "webhook", "url": receiver.url(), "secret": hook_secret,
                    "include": ["request"], "batchSize": 3, "flushIntervalMs": 50, "retryLimitMs": 30000 }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    let shown = admin
        .call(Method::GET, "/api/exporters/hook", Value::Null)
        .await
        .json();
    assert!(shown.get("secret").is_none(), "the secret is write-only");

    // The receiver answers 500: retried with backoff, nothing lost, the proxy unaffected.
    for _ in 0..3 {
        c.get(&gw.url("/open/x"), &[])
            .await
            .expect_status(StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let s = admin
            .call(Method::GET, "/api/exporters/hook/status", Value::Null)
            .await
            .json();
        if s["failures"].as_u64() >= Some(2) {
            break s;
        }
        assert!(Instant::now() < deadline, "no retry: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["retrying"], true);
    assert_eq!(status["sent"], 0);
    assert!(
        status["lastError"].as_str().unwrap().contains("500"),
        "{status}"
    );
    receiver.set_mode(Mode::Accept);
    let got = receiver
        .wait_for(Duration::from_secs(15), |d| {
            d.iter()
                .map(|d| d.json().as_array().map_or(0, Vec::len))
                .sum::<usize>()
                >= 3
        })
        .await;
    let first = &got[0];
    assert_eq!(
        first.headers["content-type"],
        "application/cloudevents-batch+json"
    );
    let batch = first.json();
    assert_eq!(batch.as_array().unwrap().len(), 3, "one batch of three");
    assert!(batch
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["type"] == "io.komainu.request.v1"));
    // The signature: HMAC-SHA256 of "<t>.<body>" with the exporter's secret.
    first.assert_signed_with(hook_secret);
    let s = admin
        .call(Method::GET, "/api/exporters/hook/status", Value::Null)
        .await
        .json();
    assert_eq!(s["sent"], 3);
    assert_eq!(s["dropped"], 0);

    // A test event goes through, past the type filter.
    let r = admin
        .call(Method::POST, "/api/exporters/hook/test", Value::Null)
        .await;
    r.expect_status(StatusCode::ACCEPTED);
    let test_id = r.json()["eventId"].as_str().unwrap().to_owned();
    receiver
        .wait_for(Duration::from_secs(10), |d| {
            d.iter().any(|d| {
                d.json()
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["id"] == test_id.as_str())
            })
        })
        .await;

    // A receiver that hangs, a small queue: the oldest are dropped and
    // counted, and calls keep their pace.
    receiver.set_mode(Mode::Hang);
    admin
        .call(
            Method::PATCH,
            "/api/exporters/hook",
            json!({ "maxQueue": 5, "timeoutMs": 200, "retryLimitMs": 300, "batchSize": 1 }),
        )
        .await
        .expect_status(StatusCode::OK);
    let started = Instant::now();
    for _ in 0..40 {
        c.get(&gw.url("/open/y"), &[])
            .await
            .expect_status(StatusCode::OK);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "calls slowed down by a hanging receiver"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = admin
            .call(Method::GET, "/api/exporters/hook/status", Value::Null)
            .await
            .json();
        let timed_out = s["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("no answer"));
        if s["dropped"].as_u64() >= Some(30) && timed_out {
            assert!(s["queued"].as_u64() <= Some(6), "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "drops not counted: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = admin.call(Method::GET, "/metrics", Value::Null).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("komainu_exporter_dropped_total{exporter=\"hook\",kind=\"webhook\"}")),
        "{text}"
    );
}

#[tokio::test]
async fn file_and_stdout_exporters_write_json_lines() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let path = gw.dir().join("audit.jsonl");
    admin
        .call(
            Method::POST,
            "/api/exporters",
            json!({ "id": "audit-file", "kind": "file", "path": path, "include": ["audit", "alert"],
                    "exclude": ["io.komainu.alert.revision_applied.v1"], "flushIntervalMs": 20 }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    admin
        .call(
            Method::POST,
            "/api/exporters",
            json!({ "id": "out", "kind": "file", "path": "-", "include": ["request"], "flushIntervalMs": 20 }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    Client::default()
        .get(&gw.url("/open/stdout-check"), &[])
        .await;
    let line = gw.wait_for_output("/open/stdout-check");
    let event: Value = serde_json::from_str(
        line.lines()
            .find(|l| l.contains("/open/stdout-check"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(event["type"], "io.komainu.request.v1");

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(Instant::now() < deadline, "the file got {text:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Its own creation, then the stdout exporter's (no revision alerts, no requests).
    assert_eq!(lines[0]["type"], "io.komainu.audit.exporter.create.v1");
    assert_eq!(lines[1]["subject"], "out");
    assert!(lines
        .iter()
        .all(|l| l["type"].as_str().unwrap().starts_with("io.komainu.audit.")));
}

#[tokio::test]
async fn the_redis_stream_exporter_writes_to_a_real_redis() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(
        &up,
        json!({
            "exporters": [{ "id": "stream", "kind": "redis-stream", "url": redis.url(),
                            "stream": "komainu:test", "maxLen": 1000, "flushIntervalMs": 20 }]
        }),
    ));
    let c = Client::default();
    for _ in 0..4 {
        c.get(&gw.url("/open/r"), &[])
            .await
            .expect_status(StatusCode::OK);
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("komainu:test")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let requests: Vec<Value> = entries
            .iter()
            .filter(|(_, f)| {
                f.iter()
                    .any(|(k, v)| k == "type" && v == "io.komainu.request.v1")
            })
            .map(|(_, f)| {
                let json = &f.iter().find(|(k, _)| k == "event").unwrap().1;
                serde_json::from_str(json).unwrap()
            })
            .collect();
        if requests.len() >= 4 {
            assert!(requests.iter().all(|e| e["data"]["path"] == "/open/r"));
            break;
        }
        assert!(Instant::now() < deadline, "the stream has {entries:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

#[tokio::test]
async fn bad_exporters_are_refused_naming_the_field_and_nothing_is_stored() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let stored = std::fs::read(gw.data_path()).unwrap();
    for (body, field) in [
        (
            json!({ "id": "a", "kind": "webhook", "url": "not a url" }),
            "url",
        ),
        (
            json!({ "id": "a", "kind": "webhook", "url": "ftp://example.com/x" }),
            "url",
        ),
        (json!({ "id": "a", "kind": "webhook" }), "url"),
        (json!({ "id": "a", "kind": "pigeon" }), "kind"),
        (
            json!({ "id": "a", "kind": "webhook", "url": "http://127.0.0.1:1/", "batchSize": -1 }),
            "batchSize",
        ),
        (
            json!({ "id": "a", "kind": "webhook", "url": "http://127.0.0.1:1/", "batchSize": 0 }),
            "batchSize",
        ),
        (
            json!({ "id": "a", "kind": "webhook", "url": "http://127.0.0.1:1/", "secret": "short" }),
            "secret",
        ),
        (json!({ "id": "a", "kind": "file" }), "path"),
        (
            json!({ "id": "a", "kind": "file", "path": "x", "url": "http://127.0.0.1:1/" }),
            "url",
        ),
        (
            json!({ "id": "a", "kind": "file", "path": "x", "include": ["a*b"] }),
            "include[0]",
        ),
        (
            json!({ "id": "a", "kind": "redis-stream", "url": "http://127.0.0.1:6379" }),
            "url",
        ),
        (
            json!({ "id": "a", "kind": "file", "path": "x", "colour": "red" }),
            "colour",
        ),
    ] {
        let r = admin
            .call(Method::POST, "/api/exporters", body.clone())
            .await;
        let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    admin
        .raw(Method::POST, "/api/exporters", "{\"id\": \"a\",")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(
        std::fs::read(gw.data_path()).unwrap(),
        stored,
        "nothing was written"
    );
    assert_eq!(
        admin
            .call(Method::GET, "/api/exporters", Value::Null)
            .await
            .json(),
        json!([])
    );
}

/// `promtool check metrics` on a scrape (the test command installs
/// Debian's prometheus package).
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by the test command");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `name{labels}` (labels in the order rendered).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_move_with_calls() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up, json!({})));
    let admin = Admin::new(&gw.admin_base());
    let c = Client::default();
    admin
        .with_auth(None)
        .call(Method::GET, "/metrics", Value::Null)
        .await
        .expect_status(StatusCode::UNAUTHORIZED);

    let before =
        String::from_utf8_lossy(&admin.call(Method::GET, "/metrics", Value::Null).await.body)
            .into_owned();
    promtool_check(&before);
    for _ in 0..3 {
        c.get(&gw.url("/orders"), &pair("shop"))
            .await
            .expect_status(StatusCode::OK);
    }
    c.get(&gw.url("/orders"), &[])
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
    c.get(&gw.url("/orders"), &pair("off"))
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
    c.get(&gw.url("/nowhere?user=attacker-chosen"), &[]).await;
    for _ in 0..3 {
        c.get(&gw.url("/orders"), &pair("shop")).await;
    }
    // A call is counted by the log phase, just after its answer left:
    // scrape until the last one shows.
    let quota = r#"komainu_quota_rejections_total{route="orders"}"#;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (r, after) = loop {
        let r = admin.call(Method::GET, "/metrics", Value::Null).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if sample(&text, quota) >= 1.0 || Instant::now() > deadline {
            break (r, text);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(r
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    promtool_check(&after);
    let ok = r#"komainu_requests_total{route="orders",method="GET",status_class="2xx",outcome="forwarded"}"#;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 5.0);
    assert_eq!(
        sample(&after, r#"komainu_quota_rejections_total{route="orders"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"komainu_auth_failures_total{route="orders",reason="missing_credentials"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"komainu_auth_failures_total{route="orders",reason="invalid_credentials"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            r#"komainu_requests_total{route="(none)",method="GET",status_class="4xx",outcome="refused"}"#
        ),
        1.0
    );
    assert!(
        sample(
            &after,
            r#"komainu_request_duration_seconds_count{route="orders"}"#
        ) >= 8.0
    );
    assert!(
        sample(
            &after,
            r#"komainu_backend_duration_seconds_count{route="orders"}"#
        ) >= 5.0
    );
    assert_eq!(sample(&after, "komainu_config_revision"), 1.0);
    assert!(after.contains("komainu_build_info{"));
    assert_eq!(sample(&after, "komainu_event_log_dropped_total"), 0.0);
    assert!(after.contains("komainu_event_log_dropped_total 0"));
    assert!(
        !after.contains("attacker-chosen"),
        "no label from a client's value"
    );

    // OpenMetrics for scrapers that ask for it; counters survive a change.
    let om = Client::default()
        .get(
            &gw.admin_url("/metrics"),
            &[
                ("accept", "application/openmetrics-text; version=1.0.0"),
                (
                    "authorization",
                    &format!("Basic {}", STANDARD.encode(komainu_e2e::gateway::ADMIN_KEY)),
                ),
            ],
        )
        .await;
    assert!(om
        .header("content-type")
        .starts_with("application/openmetrics-text"));
    assert!(String::from_utf8_lossy(&om.body).ends_with("# EOF\n"));
    admin
        .call(
            Method::PATCH,
            "/api/routes/orders",
            json!({ "name": "Renamed" }),
        )
        .await
        .expect_status(StatusCode::OK);
    let changed =
        String::from_utf8_lossy(&admin.call(Method::GET, "/metrics", Value::Null).await.body)
            .into_owned();
    assert_eq!(sample(&changed, ok), sample(&after, ok));
    assert_eq!(sample(&changed, "komainu_config_revision"), 2.0);
}

#[tokio::test]
async fn requests_are_counted_per_key_only_when_asked() {
    let up = Upstream::start().await;
    let c = Client::default();
    let series = r#"komainu_key_requests_total{key="shop",status_class="2xx",outcome="forwarded"}"#;
    for (per_key, expected) in [(false, 0.0), (true, 2.0)] {
        let gw = Komainu::start(&document(
            &up,
            json!({ "settings": { "metrics": { "perKey": per_key } } }),
        ));
        let admin = Admin::new(&gw.admin_base());
        for _ in 0..2 {
            c.get(&gw.url("/orders"), &pair("shop"))
                .await
                .expect_status(StatusCode::OK);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let text = loop {
            let r = admin.call(Method::GET, "/metrics", Value::Null).await;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            if sample(&text, series) >= expected || Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        promtool_check(&text);
        assert_eq!(sample(&text, series), expected, "perKey {per_key}");
        assert_eq!(text.contains("key=\"shop\""), per_key);
        // A refused key is not a series: ids come from the configuration only.
        c.get(
            &gw.url("/orders"),
            &[
                ("komainu-client-id", "intruder"),
                ("komainu-client-secret", SECRET),
            ],
        )
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
        let after =
            String::from_utf8_lossy(&admin.call(Method::GET, "/metrics", Value::Null).await.body)
                .into_owned();
        assert!(!after.contains("intruder"));
    }
}

#[tokio::test]
async fn metrics_open_serves_a_scraper_without_credentials() {
    let up = Upstream::start().await;
    let dir = komainu_e2e::gateway::temp_dir();
    std::fs::write(dir.join("data.json"), document(&up, json!({}))).unwrap();
    let gw = Komainu::start_in(
        dir,
        &[
            "--admin-key",
            komainu_e2e::gateway::ADMIN_KEY,
            "--metrics-open",
        ],
    );
    let admin = Admin::new(&gw.admin_base()).with_auth(None);
    let r = admin.call(Method::GET, "/metrics", Value::Null).await;
    r.expect_status(StatusCode::OK);
    promtool_check(&String::from_utf8_lossy(&r.body));
    // Only the metrics: the rest of the admin API still needs the key.
    admin
        .call(Method::GET, "/api/routes", Value::Null)
        .await
        .expect_status(StatusCode::UNAUTHORIZED);
}
