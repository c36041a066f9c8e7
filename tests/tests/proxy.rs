//! The proxy, end to end: the real binary, a real upstream, every answer of
//! the contract's section 4, headers both ways, streaming, quotas, restart.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use komainu_e2e::gateway::{run_to_exit, temp_dir, CLAIM_SECRET};
use komainu_e2e::{jwt, upstream, Client, Komainu, Upstream};

const SECRET: &str = "mobile-secret-0123456789";

/// A configuration exercising every case, forwarding to `up`.
fn document(up: &Upstream) -> String {
    let url = up.url();
    serde_json::json!({
        "format": 1,
        "revision": 1,
        "groups": [{ "id": "default", "name": "Default" }, { "id": "other", "name": "Other" }],
        "routes": [
            { "id": "users", "hosts": ["api.example.com"], "paths": ["/users", "/users/{*rest}"],
              "backend": { "targets": [{ "url": url }] }, "groups": ["default"] },
            { "id": "any-host", "paths": ["/echo", "/echo/{*rest}", "/stream", "/big/{n}"],
              "backend": { "targets": [{ "url": url }] }, "groups": ["default"] },
            { "id": "public", "paths": ["/public"], "public": true,
              "backend": { "targets": [{ "url": url }] } },
            { "id": "private", "paths": ["/private"], "backend": { "targets": [{ "url": url }] },
              "groups": ["other"] },
            { "id": "slow", "paths": ["/slow/{ms}"], "public": true,
              "backend": { "targets": [{ "url": url }], "timeoutMs": 300 } },
            { "id": "down", "paths": ["/down"], "public": true,
              "backend": { "targets": [{ "url": "http://127.0.0.1:9" }] } },
            { "id": "drained", "paths": ["/drained"], "public": true,
              "backend": { "targets": [{ "url": url, "weight": 0 }] } },
            { "id": "limited", "paths": ["/limited"], "backend": { "targets": [{ "url": url }] },
              "groups": ["default"] }
        ],
        "apikeys": [
            { "clientId": "mobile", "clientSecret": SECRET, "groups": ["default"] },
            { "clientId": "disabled", "clientSecret": SECRET, "enabled": false, "groups": ["default"] },
            { "clientId": "expired", "clientSecret": SECRET, "expiresAt": "2020-01-01T00:00:00Z",
              "groups": ["default"] },
            { "clientId": "metered", "clientSecret": SECRET, "routes": ["limited"],
              "quotas": { "perDay": 3, "perMonth": 100 } }
        ]
    })
    .to_string()
}

fn pair(id: &'static str) -> [(&'static str, &'static str); 2] {
    [("komainu-client-id", id), ("komainu-client-secret", SECRET)]
}

#[tokio::test]
async fn every_error_of_the_contract() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let c = Client::default();

    let r = c.get(&gw.url("/nowhere"), &[]).await;
    r.expect_error(StatusCode::NOT_FOUND, "route_not_found");
    // The route exists for another host only.
    let r = c.get(&gw.url("/users"), &pair("mobile")).await;
    r.expect_error(StatusCode::NOT_FOUND, "route_not_found");

    let r = c.get(&gw.url("/echo"), &[]).await;
    r.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    assert!(r.header("www-authenticate").contains("Basic"));

    for (id, secret) in [
        ("mobile", "wrong"),
        ("nobody", SECRET),
        ("disabled", SECRET),
        ("expired", SECRET),
    ] {
        let r = c
            .get(
                &gw.url("/echo"),
                &[("komainu-client-id", id), ("komainu-client-secret", secret)],
            )
            .await;
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(!r.header("www-authenticate").is_empty());
    }

    let r = c.get(&gw.url("/private"), &pair("mobile")).await;
    r.expect_error(StatusCode::FORBIDDEN, "forbidden");

    let r = c.get(&gw.url("/down"), &[]).await;
    r.expect_error(StatusCode::BAD_GATEWAY, "bad_gateway");
    let r = c.get(&gw.url("/drained"), &[]).await;
    r.expect_error(StatusCode::SERVICE_UNAVAILABLE, "no_healthy_target");
    let r = c.get(&gw.url("/slow/3000"), &[]).await;
    r.expect_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
    let r = c.get(&gw.url("/slow/10"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn quotas_count_down_then_refuse_with_retry_after() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let c = Client::default();
    for remaining in ["2", "1", "0"] {
        let r = c.get(&gw.url("/limited"), &pair("metered")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("komainu-daily-calls-remaining"), remaining);
        assert!(r.header("ratelimit-policy").contains("\"day\";q=3;w=86400"));
        assert!(r
            .header("ratelimit")
            .contains(&format!("\"day\";r={remaining};")));
    }
    let r = c.get(&gw.url("/limited"), &pair("metered")).await;
    r.expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    assert_eq!(r.json()["message"], "daily quota of 3 calls reached");
    let retry: u64 = r
        .header("retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=86_400).contains(&retry));
    assert_eq!(r.header("komainu-daily-calls-remaining"), "0");
    // A refused call does not consume the monthly quota.
    assert_eq!(r.header("komainu-monthly-calls-remaining"), "97");
    // The key has no access beyond its routes.
    let r = c.get(&gw.url("/echo"), &pair("metered")).await;
    r.expect_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn headers_both_ways_and_a_verifiable_claim() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let c = Client::default();
    let basic = format!("Basic {}", STANDARD.encode(format!("mobile:{SECRET}")));
    let token = jwt::sign(
        &format!(r#"{{"iss":"mobile","exp":{}}}"#, jwt::now_s() + 60),
        SECRET.as_bytes(),
    );
    let bearer = format!("Bearer {token}");
    let forms: [Vec<(&str, &str)>; 3] = [
        pair("mobile").to_vec(),
        vec![("authorization", basic.as_str())],
        vec![("authorization", bearer.as_str())],
    ];
    for headers in forms {
        let mut headers = headers.clone();
        headers.push(("x-forwarded-for", "198.51.100.9"));
        headers.push(("komainu-claim", "forged-by-client"));
        let r = c.get(&gw.url("/echo/a/b?q=1&r=2"), &headers).await;
        assert_eq!(r.status, StatusCode::OK, "{headers:?}");
        assert_eq!(r.header("x-upstream"), "test-upstream");
        let seen = r.json();
        assert_eq!(seen["uri"], "/echo/a/b?q=1&r=2");
        let h = &seen["headers"];
        for absent in [
            "komainu-client-id",
            "komainu-client-secret",
            "authorization",
        ] {
            assert!(
                h.get(absent).is_none(),
                "{absent} must not reach the backend"
            );
        }
        assert_eq!(h["x-forwarded-for"], "198.51.100.9, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], gw.proxy.to_string());
        let id = r.header("komainu-request-id");
        assert_eq!(h["komainu-request-id"], id);
        let claim = h["komainu-claim"].as_str().unwrap();
        let claims = jwt::verify(claim, CLAIM_SECRET.as_bytes())
            .expect("claim signed with the claim secret");
        assert_eq!(claims["sub"], "mobile");
        assert_eq!(claims["aud"], "any-host");
        assert_eq!(claims["jti"], id);
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert!(exp > iat && iat.abs_diff(jwt::now_s()) < 60);
        assert!(jwt::verify(claim, b"another secret").is_none());
    }
    // Public route: no subject; credentials in a form the gateway reads
    // (Basic, Bearer) never reach the backend, other schemes pass.
    let r = c
        .get(
            &gw.url("/public"),
            &[("authorization", "Bearer backend-token")],
        )
        .await;
    assert!(r.json()["headers"].get("authorization").is_none());
    let r = c
        .get(
            &gw.url("/public"),
            &[("authorization", "Digest username=x")],
        )
        .await;
    let h = &r.json()["headers"];
    assert_eq!(h["authorization"], "Digest username=x");
    let claims = jwt::verify(
        h["komainu-claim"].as_str().unwrap(),
        CLAIM_SECRET.as_bytes(),
    )
    .unwrap();
    assert!(claims.get("sub").is_none());
    assert_eq!(claims["aud"], "public");
    // Host routing, with upper case and a port.
    let r = c
        .get(
            &gw.url("/users/7"),
            &[
                pair("mobile")[0],
                pair("mobile")[1],
                ("host", "API.example.com:8080"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["headers"]["x-forwarded-host"],
        "API.example.com:8080"
    );
}

#[tokio::test]
async fn multi_megabyte_bodies_stream_intact_both_ways() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let c = Client::default();
    let sent = upstream::pattern(8 * 1024 * 1024 + 17);
    let r = c
        .send(
            Method::POST,
            &gw.url("/stream"),
            &pair("mobile"),
            Bytes::from(sent.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), sent.len());
    assert!(r.body == sent, "the body came back altered");
    let n = 12 * 1024 * 1024 + 5;
    let r = c.get(&gw.url(&format!("/big/{n}")), &pair("mobile")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body == upstream::pattern(n),
        "the download came back altered"
    );
}

#[tokio::test]
async fn http2_clients_are_served() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let r = Client::http2()
        .get(&gw.url("/echo/h2"), &pair("mobile"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["uri"], "/echo/h2");
    // Bodies both ways over h2, on the same backend pool as HTTP/1.
    let c = Client::http2();
    let sent = upstream::pattern(3 * 1024 * 1024 + 5);
    let r = c
        .send(
            Method::POST,
            &gw.url("/stream"),
            &pair("mobile"),
            sent.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body == sent, "the echoed body differs");
    for n in [0usize, 5, 70_000] {
        let r = c.get(&gw.url(&format!("/big/{n}")), &pair("mobile")).await;
        assert_eq!((r.status, r.body.len()), (StatusCode::OK, n));
        assert!(r.body == upstream::pattern(n));
    }
    let r = c
        .send(
            Method::HEAD,
            &gw.url("/big/9"),
            &pair("mobile"),
            Bytes::new(),
        )
        .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    assert!(!r.header("komainu-request-id").is_empty());
}

#[tokio::test]
async fn malformed_credentials_are_refused_clearly() {
    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    let c = Client::default();
    let no_colon = format!("Basic {}", STANDARD.encode(format!("mobile{SECRET}")));
    let alg_none = jwt::sign_with_header(
        r#"{"alg":"none"}"#,
        &format!(r#"{{"iss":"mobile","exp":{}}}"#, jwt::now_s() + 60),
        b"",
    );
    let alg_none = format!("Bearer {}.", alg_none.rsplit_once('.').unwrap().0);
    let wrong_key = format!(
        "Bearer {}",
        jwt::sign(
            &format!(r#"{{"iss":"mobile","exp":{}}}"#, jwt::now_s() + 60),
            b"not the secret"
        )
    );
    let expired = format!(
        "Bearer {}",
        jwt::sign(
            &format!(r#"{{"iss":"mobile","exp":{}}}"#, jwt::now_s() - 10),
            SECRET.as_bytes()
        )
    );
    for auth in [
        "Basic !!!not-base64",
        no_colon.as_str(),
        "Bearer not-a-jwt",
        alg_none.as_str(),
        wrong_key.as_str(),
        expired.as_str(),
        "Negotiate abc",
    ] {
        let r = c.get(&gw.url("/echo"), &[("authorization", auth)]).await;
        r.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let r = c
        .get(&gw.url("/echo"), &[("komainu-client-id", "mobile")])
        .await;
    r.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    // An over-long header is refused with a JSON error, and the gateway lives on.
    let huge = "x".repeat(40 * 1024);
    let r = c.get(&gw.url("/echo"), &[("x-huge", huge.as_str())]).await;
    r.expect_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    );
    // Beyond the HTTP layer's own limit, the connection is answered 431 too.
    let enormous = "x".repeat(1024 * 1024);
    let r = c
        .get(&gw.url("/echo"), &[("x-huge", enormous.as_str())])
        .await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let r = c.get(&gw.url("/public"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn configuration_and_claim_secret_survive_a_restart() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    std::fs::write(dir.join("data.json"), document(&up)).unwrap();
    // No --claim-secret: one is generated and kept in the store.
    let gw = Komainu::start_in(dir, &[]);
    let c = Client::default();
    let before = c.get(&gw.url("/echo"), &pair("mobile")).await;
    assert_eq!(before.status, StatusCode::OK);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gw.data_path()).unwrap()).unwrap();
    assert!(
        !stored.to_string().contains(SECRET),
        "clear secrets are never written to the store"
    );
    // Kept sealed with the deployment key (the key file beside the store).
    let sealed = stored["local"]["claimSecret"].as_str().unwrap().to_owned();
    let key_file = std::fs::read_to_string(format!("{}.key", gw.data_path().display())).unwrap();
    let deployment = komainu_core::secret::SealingKey::from_text(key_file.trim()).unwrap();
    let claim_secret = String::from_utf8(
        deployment
            .open_bytes(komainu_core::secret::CLAIM_SECRET_CONTEXT, &sealed)
            .unwrap(),
    )
    .unwrap();
    let gw = gw.restart();
    let after = c.get(&gw.url("/echo"), &pair("mobile")).await;
    assert_eq!(after.status, StatusCode::OK);
    let claim = after.json()["headers"]["komainu-claim"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(jwt::verify(&claim, claim_secret.as_bytes()).is_some());
    let health = c.get(&gw.admin_url("/api/health"), &[]).await;
    assert_eq!(health.json()["revision"], 1);
}

#[tokio::test]
async fn an_invalid_configuration_file_stops_the_start_and_is_left_untouched() {
    let dir = temp_dir();
    let path = dir.join("data.json");
    let text = r#"{"format":1,"routes":[{"id":"r","paths":["/a"],"backend":{"targets":[{"url":"ftp://x"}]}}]}"#;
    std::fs::write(&path, text).unwrap();
    let store = format!("file:{}", path.display());
    let (status, _, stderr) = run_to_exit(&[
        "serve",
        "--store",
        &store,
        "--proxy-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("routes[0].backend.targets[0].url"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    std::fs::write(&path, "{ not json").unwrap();
    let (status, _, stderr) = run_to_exit(&["serve", "--store", &store]);
    assert!(!status.success());
    assert!(stderr.contains("data.json"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{ not json");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let up = Upstream::start().await;
    let mut gw = Komainu::start(&document(&up).replace("\"timeoutMs\":300", "\"timeoutMs\":5000"));
    let url = gw.url("/slow/1500");
    let in_flight = tokio::spawn(async move { Client::default().get(&url, &[]).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || gw.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"slow done");
}

#[tokio::test]
async fn demo_mode_prints_curl_lines_that_work() {
    let dir = temp_dir();
    let gw = Komainu::start_in(dir, &["--demo"]);
    let printed = gw.wait_for_output("Komainu-Client-Secret: ");
    let secret = printed
        .split("Komainu-Client-Secret: ")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a curl line with the demo secret")
        .to_owned();
    assert!(
        printed.contains(&format!("http://{}/demo/hello", gw.proxy)),
        "{printed}"
    );
    let c = Client::default();
    let r = c
        .get(
            &gw.url("/demo/hello"),
            &[
                ("komainu-client-id", "demo"),
                ("komainu-client-secret", secret.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["backend"], "komainu demo echo");
    let basic = format!("Basic {}", STANDARD.encode(format!("demo:{secret}")));
    assert_eq!(
        c.get(&gw.url("/demo/x"), &[("authorization", basic.as_str())])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&gw.url("/demo/hello"), &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.get(&gw.url("/public/hello"), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn behind_a_tls_terminating_router_the_scheme_is_kept() {
    let up = Upstream::start().await;
    let dir = temp_dir();
    std::fs::write(dir.join("data.json"), document(&up)).unwrap();
    let gw = Komainu::start_in(dir, &["--claim-secret", CLAIM_SECRET, "--behind-proxy"]);
    let c = Client::default();
    let r = c
        .get(&gw.url("/public"), &[("x-forwarded-proto", "https")])
        .await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "https");
    let r = c.get(&gw.url("/public"), &[]).await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "http");
    // Without --behind-proxy, a client cannot claim https.
    let plain = Komainu::start(&document(&up));
    let r = c
        .get(&plain.url("/public"), &[("x-forwarded-proto", "https")])
        .await;
    assert_eq!(r.json()["headers"]["x-forwarded-proto"], "http");
}

/// An HTTP/2 client that stops reading its answer does not hold the
/// backend connection: it is dropped after 60 s without a read.
#[tokio::test]
async fn an_h2_client_that_stops_reading_releases_the_backend() {
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A backend writing a large answer as long as it is read.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let released: Arc<Mutex<Option<std::time::Instant>>> = Arc::new(Mutex::new(None));
    let seen = released.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = [0u8; 4096];
        let _ = s.read(&mut head).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000000\r\n\r\n")
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        while s.write_all(&chunk).await.is_ok() {}
        *seen.lock().unwrap() = Some(std::time::Instant::now());
    });
    let doc = serde_json::json!({ "format": 1, "routes": [
        { "id": "big", "paths": ["/big"], "public": true,
          "backend": { "targets": [{ "url": format!("http://{addr}") }] } }
    ]});
    let gw = Komainu::start(&doc.to_string());
    let stream = gw.connect().await;
    let (mut sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let started = std::time::Instant::now();
    let request = http::Request::get(gw.url("/big"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Never read the body: hold it, and wait for the backend to be let go.
    let _unread = response;
    let deadline = started + std::time::Duration::from_secs(90);
    loop {
        if let Some(at) = *released.lock().unwrap() {
            let after = at - started;
            assert!(
                after >= std::time::Duration::from_secs(55),
                "released after {after:?}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backend is still held after 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_http2_body_of_unknown_length_past_the_limit_is_refused() {
    use futures_util::stream;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let up = Upstream::start().await;
    let gw = Komainu::start(&document(&up));
    komainu_e2e::Admin::new(&gw.admin_base())
        .call(
            Method::POST,
            "/api/routes",
            serde_json::json!({ "id": "small", "paths": ["/stream"], "hosts": ["small.example"],
                "public": true, "maxBodyBytes": 10, "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await
        .expect_status(StatusCode::CREATED);
    for (pieces, expected) in [(vec![4usize, 4], 200u16), (vec![8, 8], 413)] {
        let io = TokioIo::new(gw.connect().await);
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("an h2c connection");
        tokio::spawn(conn);
        // A stream of frames: no length is declared, the gateway counts.
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = pieces
            .iter()
            .map(|&n| Ok(Frame::data(Bytes::from(vec![b'x'; n]))))
            .collect();
        // HTTP/2: the host is the URI's authority.
        let request = http::Request::post("http://small.example/stream")
            .body(StreamBody::new(stream::iter(frames)))
            .unwrap();
        assert!(request.headers().get("content-length").is_none());
        let response = send.send_request(request).await.expect("an answer");
        assert_eq!(response.status().as_u16(), expected, "{pieces:?}");
    }
}
