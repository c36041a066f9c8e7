//! Each named timeout (`backend.timeouts`: connect, head, idle, total) on
//! a backend that stalls at that very point, on the real binary over
//! HTTP/1 and HTTP/2: 504 `gateway_timeout` naming the timeout, in about
//! its time; an answer already begun is cut instead. No task is held.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use komainu_e2e::raw::{RawConn, ScriptedUpstream};
use komainu_e2e::{Client, Komainu, Upstream};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A listener whose accept queue is full and never drained: connecting
/// to it hangs (the SYN goes unanswered). Keep the returned parts alive.
async fn unanswering() -> (std::net::SocketAddr, TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    // Fill the queue: connections that complete but are never accepted.
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    (addr, listener, held)
}

/// A backend that accepts and never reads: an upload to it stalls once
/// the socket buffers are full.
async fn never_reading() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    (addr, task)
}

fn route(id: &str, targets: &[String], timeouts: serde_json::Value) -> serde_json::Value {
    let targets: Vec<_> = targets.iter().map(|u| json!({ "url": u })).collect();
    json!({ "id": id, "paths": [format!("/{id}"), format!("/{id}/{{*rest}}")], "public": true,
            "stripPrefix": format!("/{id}"),
            "backend": { "targets": targets, "timeouts": timeouts } })
}

fn assert_timed_out(r: &komainu_e2e::Reply, field: &str, took: Duration, about_ms: u64) {
    let body = r.expect_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains(field), "{field}: {message}");
    assert!(
        took >= Duration::from_millis(about_ms) && took < Duration::from_millis(about_ms + 1500),
        "{field}: answered after {took:?}"
    );
}

#[tokio::test]
async fn each_named_timeout_answers_when_the_backend_stalls_there() {
    let (blackhole, _listener, _held) = unanswering().await;
    let (deaf, _deaf_task) = never_reading().await;
    let up = Upstream::start().await;
    // Head and part of a body, then nothing.
    let trickle = ScriptedUpstream::start(|_| {
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello".to_vec(),
            false,
        )
    })
    .await;
    let doc = json!({ "format": 1,
        "settings": { "timeouts": { "headMs": 400 } },
        "routes": [
            route("connect", &[format!("http://{blackhole}")], json!({ "connectMs": 300 })),
            route("connect-retry", &[format!("http://{blackhole}"), up.url()], json!({ "connectMs": 300 })),
            route("head", &[up.url()], json!({})),
            route("total", &[up.url()], json!({ "headMs": 5000, "totalMs": 600 })),
            route("upload", &[format!("http://{deaf}")], json!({ "idleMs": 400, "headMs": 10000 })),
            route("trickle", &[trickle.url()], json!({ "idleMs": 400 })),
        ]
    });
    let k = Komainu::start(&doc.to_string());
    for client in [Client::http1(), Client::http2()] {
        // connect: nothing answers the connection.
        let t = Instant::now();
        let r = client.get(&k.url("/connect"), &[]).await;
        assert_timed_out(&r, "connectMs", t.elapsed(), 300);
        // ... and nothing was sent: another target takes it.
        for _ in 0..4 {
            let r = client.get(&k.url("/connect-retry"), &[]).await;
            assert_eq!(r.status, StatusCode::OK);
        }
        // head: from the settings (400 ms), the backend taking 3 s.
        let t = Instant::now();
        let r = client.get(&k.url("/head/slow/3000"), &[]).await;
        assert_timed_out(&r, "headMs", t.elapsed(), 400);
        // total: cuts the head wait short.
        let t = Instant::now();
        let r = client.get(&k.url("/total/slow/3000"), &[]).await;
        assert_timed_out(&r, "totalMs", t.elapsed(), 600);
    }

    // idle, upload: the backend stops reading a large body.
    let mut conn = RawConn::connect(&k.url("/upload")).await;
    let size = 64 * 1024 * 1024;
    conn.send(
        format!("POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n").as_bytes(),
    )
    .await;
    let t = Instant::now();
    let writer = tokio::spawn({
        let mut stream = conn.into_stream();
        async move {
            let chunk = vec![b'x'; 64 * 1024];
            let mut answer = Vec::new();
            let (mut read, mut write) = stream.split();
            loop {
                tokio::select! {
                    w = write.write_all(&chunk) => if w.is_err() { break; },
                    n = read.read_buf(&mut answer) => match n {
                        Ok(0) | Err(_) => break,
                        Ok(_) if answer.windows(4).any(|w| w == b"\r\n\r\n") => break,
                        Ok(_) => {}
                    },
                }
            }
            // The rest of the answer (its JSON body).
            while !answer.ends_with(b"}") {
                match tokio::time::timeout(Duration::from_secs(2), read.read_buf(&mut answer)).await
                {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
            }
            answer
        }
    });
    let answer = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("an answer to the stalled upload")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(text.contains("idleMs"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // idle, answer: the backend sends 5 of 100 bytes and stops; the
    // answer has begun, so the connection is cut after idleMs.
    for http2 in [false, true] {
        let t = Instant::now();
        let client = if http2 {
            Client::http2()
        } else {
            Client::http1()
        };
        let failed = tokio::time::timeout(
            Duration::from_secs(5),
            client.try_send(Method::GET, &k.url("/trickle"), &[], ""),
        )
        .await
        .expect("the stalled answer is cut");
        assert!(
            failed.is_err(),
            "http2={http2}: a body of 100 bytes cannot arrive whole"
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "http2={http2}: cut after {took:?}"
        );
    }
}

#[tokio::test]
async fn timeouts_are_checked_and_the_old_name_still_works() {
    let up = Upstream::start().await;
    let k = Komainu::start(
        &json!({ "format": 1, "routes": [{ "id": "old", "paths": ["/old/{*rest}"], "public": true,
            "stripPrefix": "/old",
            "backend": { "targets": [{ "url": up.url() }], "timeoutMs": 300 } }] })
        .to_string(),
    );
    let t = Instant::now();
    let r = Client::default().get(&k.url("/old/slow/3000"), &[]).await;
    assert_timed_out(&r, "headMs", t.elapsed(), 300);
    let admin = komainu_e2e::Admin::new(&k.admin_base());
    for (timeouts, field) in [
        (json!({ "connectMs": 0 }), "timeouts.connectMs"),
        (json!({ "idleMs": 3_600_001 }), "timeouts.idleMs"),
        (json!({ "totalMs": -5 }), "totalMs"),
        (json!({ "readMs": 5 }), "readMs"),
    ] {
        let r = admin
            .call(
                Method::PATCH,
                "/api/routes/old",
                json!({ "backend": { "timeouts": timeouts } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{timeouts}");
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains(field), "{timeouts}: {text}");
    }
    let r = admin
        .call(
            Method::POST,
            "/api/import?dryRun=true",
            json!({ "format": 1, "settings": { "timeouts": { "headMs": 0 } } }),
        )
        .await;
    let text = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("settings.timeouts.headMs"), "{text}");
    let r = admin
        .call(Method::GET, "/api/routes/old", serde_json::Value::Null)
        .await;
    assert!(
        r.json()["backend"].get("timeouts").is_none(),
        "nothing stored"
    );
}
