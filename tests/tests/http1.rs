//! HTTP/1 on the wire, through the real binary: framings both ways,
//! HTTP/1.0 clients, `Expect: 100-continue`, pipelining, HEAD, malformed
//! heads, and backends that close, answer until close, or send interim
//! responses.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use komainu_e2e::raw::{RawConn, ScriptedUpstream};
use komainu_e2e::{upstream, Komainu, Upstream};

const SECRET: &str = "raw-secret-0123456789";

fn document(up: &str, scripted: &str) -> String {
    serde_json::json!({
        "format": 1,
        "routes": [
            { "id": "open", "paths": ["/stream", "/big/{n}", "/echo"], "public": true,
              "backend": { "targets": [{ "url": up }] } },
            { "id": "keyed", "paths": ["/stream/keyed"], "backend": { "targets": [{ "url": up }] } },
            { "id": "scripted", "paths": ["/scripted"], "public": true,
              "backend": { "targets": [{ "url": scripted }] } },
            { "id": "down", "paths": ["/down"], "public": true,
              "backend": { "targets": [{ "url": "http://127.0.0.1:9" }] } },
            { "id": "static", "paths": ["/static"], "public": true,
              "respond": { "body": "twelve bytes" } },
            { "id": "small", "paths": ["/small"], "public": true, "maxBodyBytes": 8,
              "backend": { "targets": [{ "url": scripted }] } }
        ],
        "apikeys": [{ "clientId": "raw", "clientSecret": SECRET, "routes": ["keyed"] }]
    })
    .to_string()
}

async fn setup(
    script: impl Fn(usize) -> (Vec<u8>, bool) + Send + Sync + 'static,
) -> (Upstream, ScriptedUpstream, Komainu) {
    let up = Upstream::start().await;
    let scripted = ScriptedUpstream::start(script).await;
    let gw = Komainu::start(&document(&up.url(), &scripted.url()));
    (up, scripted, gw)
}

fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-seen: scripted\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn chunked_uploads_and_chunked_answers_pass_through() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(b"6;ext=1\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert!(r.header("komainu-request-id").is_some());
    // The connection is kept: the next request on it works.
    c.send(b"GET /big/70000 HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, upstream::pattern(70_000));
}

#[tokio::test]
async fn http10_clients_get_a_body_they_can_read() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    // The backend answers chunked (streamed echo): an HTTP/1.0 client gets
    // the data, delimited by the close.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"POST /stream HTTP/1.0\r\nContent-Length: 4\r\n\r\nabcd")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.body, b"abcd");
    // Keep-alive asked for and possible (known length): kept.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /big/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.len()), (200, 10));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /big/20 HTTP/1.0\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.len()), (200, 20));
    assert!(c.closed().await, "HTTP/1.0 without keep-alive is closed");
}

#[tokio::test]
async fn expect_continue_is_answered_only_once_the_call_is_admitted() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    let head = format!(
        "PUT /stream/keyed HTTP/1.1\r\nHost: t\r\nKomainu-Client-Id: raw\r\n\
         Komainu-Client-Secret: {SECRET}\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    );
    c.send(head.as_bytes()).await;
    assert_eq!(c.response(false).await.status, 100);
    c.send(b"abc").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));

    // A refused key gets its 401 at once; the body is never asked for.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"PUT /stream/keyed HTTP/1.1\r\nHost: t\r\nKomainu-Client-Id: raw\r\nKomainu-Client-Secret: wrong\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_credentials");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /big/3 HTTP/1.1\r\nHost: t\r\n\r\nGET /nowhere HTTP/1.1\r\nHost: t\r\n\r\nHEAD /big/5 HTTP/1.1\r\nHost: t\r\n\r\nGET /big/7 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.len()), (200, 3));
    let r = c.response(false).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "route_not_found");

    let r = c.response(true).await;
    assert_eq!((r.status, r.header("content-length")), (200, Some("5")));
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.len()), (200, 7));

    // A backend failure ends the exchange, not the connection.
    c.send(b"GET /down HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");
    assert_eq!(r.header("connection"), None);
    c.send(b"GET /big/2 HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.response(false).await.body.len(), 2);
    // The server as a whole: no route serves it.
    c.send(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.response(false).await.json()["error"], "route_not_found");
}

/// Request-smuggling shapes: each refused with a 400 and a close, and the
/// backend receives nothing (the body bytes that come with the head are
/// judged before anything is sent on).
#[tokio::test]
async fn smuggling_shapes_are_refused_and_never_reach_the_backend() {
    let (_up, scripted, gw) = setup(|_| (ok_response("x"), false)).await;
    let chunked = "POST /scripted HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let smuggled = "GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n";
    let cases: Vec<String> = vec![
        format!("{chunked}3\nabc\r\n0\r\n\r\n"),
        format!("{chunked}3\r\nabc\n0\r\n\r\n"),
        format!("{chunked}3\r\nabc\r0\r\n\r\n"),
        format!("{chunked}3;a\rb\r\nabc\r\n0\r\n\r\n"),
        format!("{chunked}3;a\nabc\r\n0\r\n\r\n"),
        format!("{chunked}0\n\n{smuggled}"),
        format!("{chunked}0\r\n\n{smuggled}"),
        format!("{chunked}1 2\r\nab\r\n0\r\n\r\n"),
        format!("{chunked}0\r\nnot a trailer\r\n\r\n"),
        format!("POST /scripted HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        "GET /scripted HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n  folded\r\n\r\n".into(),
        format!("POST /scripted HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        format!("POST /scripted HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n{smuggled}"),
        "POST /scripted HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc".into(),
        "POST /scripted HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 40\r\n\r\nabc".into(),
        "POST /scripted HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc".into(),
        "POST /scripted HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".into(),
        "POST /scripted HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
        "GET /scripted HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n".into(),
        "GET /scripted\\..\\x HTTP/1.1\r\nHost: t\r\n\r\n".into(),
    ];
    for bad in &cases {
        let mut c = RawConn::connect(&gw.url("/")).await;
        c.send(bad.as_bytes()).await;
        let r = c.response(false).await;
        assert_eq!(r.status, 400, "{}", bad.escape_debug());
        assert_eq!(r.json()["error"], "bad_request", "{}", bad.escape_debug());
        assert!(c.closed().await, "closed after {}", bad.escape_debug());
    }
    assert_eq!(
        scripted.connections.load(Ordering::SeqCst),
        0,
        "the backend received nothing"
    );
}

/// The end of a backend's interim head is found by the parser that reads
/// it: an interim head ending in LF LF is not merged with the final one.
#[tokio::test]
async fn an_interim_head_with_bare_line_feeds_is_one_head() {
    let (_up, _s, gw) = setup(|_| {
        (
            b"HTTP/1.1 100 Continue\n\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            false,
        )
    })
    .await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok");
}

/// A backend that stops reading an upload, or stops sending its answer,
/// does not hold the exchange beyond the route's timeout.
#[tokio::test]
async fn a_stalled_backend_loses_the_exchange_within_the_route_timeout() {
    // Reads the head, then nothing; answers a GET with 10 of 100 bytes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 1024];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                    }
                }
                if got.starts_with(b"GET") {
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                        .await;
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(s);
            });
        }
    });
    let doc = serde_json::json!({ "format": 1, "routes": [
        { "id": "stall", "paths": ["/stall"], "public": true,
          "backend": { "targets": [{ "url": format!("http://{addr}") }], "timeoutMs": 700 } }
    ]});
    let gw = Komainu::start(&doc.to_string());

    // An upload the backend never reads: 504 once writes stall that long.
    let total = 64 * 1024 * 1024;
    let stream = gw.connect().await;
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let head = format!("POST /stall HTTP/1.1\r\nHost: t\r\nContent-Length: {total}\r\n\r\n");
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..total / chunk.len() {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    writer.abort();

    // An answer the backend stops sending: the client's connection is
    // closed once the body has stalled that long.
    let mut s = gw.connect().await;
    s.write_all(b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let all = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(all.is_ok(), "the stalled answer is cut");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("0123456789"),
        "{text}"
    );

    // The same over HTTP/2: the stream is reset once the body stalls.
    let url = gw.url("/stall");
    let started = std::time::Instant::now();
    let h2 = tokio::spawn(async move { komainu_e2e::Client::http2().get(&url, &[]).await });
    let outcome = tokio::time::timeout(Duration::from_secs(10), h2).await;
    let finished = outcome.expect("the h2 stream still hangs after 10 s");
    assert!(finished.is_err(), "the stalled h2 body cannot complete");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A reused connection that closes without answering: a GET is sent again
/// on a new connection, a POST never (the backend may have acted on it).
#[tokio::test]
async fn a_post_is_never_replayed_once_sent() {
    // The second request (on the reused connection) gets no answer.
    let (_up, scripted, gw) = setup(|n| match n {
        1 | 3 => (Vec::new(), true),
        _ => (ok_response(&format!("answer {n}")), false),
    })
    .await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.response(false).await.status, 200);
    c.send(b"POST /scripted HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        scripted.requests.load(Ordering::SeqCst),
        2,
        "the POST was sent once"
    );
    // A GET in the same spot is replayed on a new connection.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.response(false).await.status, 200);
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(c.response(false).await.status, 200);
    assert_eq!(scripted.requests.load(Ordering::SeqCst), 5);
}

/// A backend's body framing reaches the client only in canonical form:
/// one `Content-Length`; lines that disagree or are not numbers are the
/// backend's fault (502), never passed on for the client to guess.
#[tokio::test]
async fn backend_lengths_are_passed_on_canonical_or_refused() {
    let (_up, _s, gw) = setup(|n| match n {
        0 => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            false,
        ),
        1 => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\nok".to_vec(),
            true,
        ),
        2 => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok".to_vec(),
            true,
        ),
        _ => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok".to_vec(),
            true,
        ),
    })
    .await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    let lengths: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(lengths, ["2"]);
    assert_eq!(r.body, b"ok");
    for _ in 1..4 {
        let mut c = RawConn::connect(&gw.url("/")).await;
        c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let r = c.response(false).await;
        assert_eq!(r.status, 502);
        assert_eq!(r.json()["error"], "bad_gateway");
    }
}

/// Slowloris: a head that trickles in a byte at a time is cut 30 s after
/// its first byte, however often bytes come.
#[tokio::test]
async fn a_trickling_head_is_cut_after_the_head_timeout() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    let stream = gw.connect().await;
    let (mut rd, mut wr) = stream.into_split();
    let started = std::time::Instant::now();
    let trickle = tokio::spawn(async move {
        if wr
            .write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .is_err()
        {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if wr.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    assert!(closed.is_ok(), "the connection is still open after 45 s");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(25) && after <= Duration::from_secs(40),
        "cut after {after:?}"
    );
}

#[tokio::test]
async fn malformed_heads_get_a_json_400_and_a_close() {
    let (_up, _s, gw) = setup(|_| (ok_response("x"), false)).await;
    for bad in [
        &b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET /echo HTTP/1.1\r\n\r\n",
        b"GET /echo HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut c = RawConn::connect(&gw.url("/")).await;
        c.send(bad).await;
        let r = c.response(false).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        assert_eq!(r.json()["error"], "bad_request");
        assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed().await);
    }
}

#[tokio::test]
async fn a_backend_closing_idle_connections_costs_no_request() {
    // Every answer is "keep-alive", then the backend closes anyway: the
    // pooled connection is stale when the next request comes.
    let (_up, scripted, gw) = setup(|n| (ok_response(&format!("answer {n}")), true)).await;
    for i in 0..5 {
        let mut c = RawConn::connect(&gw.url("/")).await;
        c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let r = c.response(false).await;
        assert_eq!(r.status, 200, "call {i}");
        assert_eq!(r.header("x-seen"), Some("scripted"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(scripted.requests.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn interim_and_close_delimited_answers_reach_the_client() {
    let (_up, scripted, gw) = setup(|n| match n {
        0 => (
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                .to_vec(),
            false,
        ),
        1 => (
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                .to_vec(),
            false,
        ),
        _ => (
            b"HTTP/1.1 200 OK\r\nconnection: close\r\nx-seen: scripted\r\n\r\nuntil the end".to_vec(),
            true,
        ),
    })
    .await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    // Chunks and a length: the chunks win, the length is not passed on.
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(r.header("content-length"), None);
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"until the end");
    assert_eq!(scripted.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn protocol_upgrades_are_tunnelled_both_ways() {
    // A backend that switches to an echo protocol after its 101.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let head = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let head = head.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&got).to_lowercase();
                *head.lock().unwrap() = text.clone();
                // Switches to what was asked, or (a lenient backend) to h2c.
                let protocol = text
                    .split("\r\n")
                    .find_map(|l| l.strip_prefix("upgrade: "))
                    .unwrap_or("h2c")
                    .to_owned();
                let switch = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n\r\nhello");
                if s.write_all(switch.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = [0u8; 4096];
                loop {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    let up = Upstream::start().await;
    let mut doc: serde_json::Value =
        serde_json::from_str(&document(&up.url(), &format!("http://{addr}"))).unwrap();
    doc["routes"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": "custom", "paths": ["/custom"], "public": true, "upgrades": ["echo"],
            "backend": { "targets": [{ "url": format!("http://{addr}") }] }
        }));
    let gw = Komainu::start(&doc.to_string());

    // A protocol the route allows (here "echo", not WebSocket) is tunnelled;
    // on a route that does not allow it, it goes on as a plain request.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /custom HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("echo"));
    assert_eq!(c.bytes(5).await, b"hello");
    c.send(b"ping").await;
    assert_eq!(c.bytes(4).await, b"ping");
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
        .await;
    assert_eq!(
        c.response(false).await.status,
        502,
        "echo is not allowed on /scripted"
    );

    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(r.header("connection"), Some("upgrade"));
    assert!(r.header("komainu-request-id").is_some());
    assert_eq!(c.bytes(5).await, b"hello");
    c.send(b"ping").await;
    assert_eq!(c.bytes(4).await, b"ping");
    c.send(&[0u8, 255, 7]).await;
    assert_eq!(c.bytes(3).await, [0u8, 255, 7]);

    let head = seen.lock().unwrap().clone();
    assert!(head.starts_with("get /scripted http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nkomainu-claim: "), "{head}");

    // Without the upgrade asked for, a 101 is the backend's fault: 502.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"], "bad_gateway");

    // An h2c upgrade would carry requests past routing, keys and quotas:
    // it is not asked of the backend, and a backend switching anyway is
    // refused.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"GET /scripted HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(r.status, 502);
    let head = seen.lock().unwrap().clone();
    assert!(
        !head.contains("upgrade: h2c") && !head.contains("http2-settings"),
        "{head}"
    );
}

#[tokio::test]
async fn answers_to_head_have_no_body_and_the_connection_goes_on() {
    let (_up, _scripted, gw) = setup(|_| (ok_response("x"), true)).await;
    let mut c = RawConn::connect(&gw.url("/")).await;
    // A refusal, a static answer, then a plain request on the same connection:
    // a body after either HEAD answer would be read as the next response.
    c.send(b"HEAD /nowhere HTTP/1.1\r\nHost: t\r\n\r\nHEAD /static HTTP/1.1\r\nHost: t\r\n\r\nGET /static HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let r = c.response(true).await;
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    let r = c.response(true).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("12"));
    assert!(r.body.is_empty());
    let r = c.response(false).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"twelve bytes");
}

#[tokio::test]
async fn a_body_of_unknown_length_past_the_limit_is_cut_and_refused() {
    let (_up, scripted, gw) = setup(|_| (ok_response("x"), true)).await;
    // Within the limit (chunk framing does not count): forwarded.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n")
        .await;
    assert_eq!(c.response(false).await.status, 200);
    // Past it, in a later chunk: 413, the connection closed.
    let mut c = RawConn::connect(&gw.url("/")).await;
    c.send(b"POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send(b"5\r\nefghi\r\n0\r\n\r\n").await;
    let r = c.response(false).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");
    assert!(c.closed().await);
    let _ = scripted;
}
