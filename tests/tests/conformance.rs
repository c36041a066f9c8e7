//! One HTTP conformance suite, the same cases run against the native
//! binary and against the Worker in workerd (Miniflare). Where a case
//! cannot apply the same way to both, it says why, in place.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, StatusCode};
use komainu_e2e::gateway::CLAIM_SECRET;
use komainu_e2e::raw::RawConn;
use komainu_e2e::{jwt, upstream, Admin, Client, Komainu, Upstream, Worker};
use serde_json::{json, Value};

/// The deployment under test.
enum Server {
    Native(Komainu),
    Edge(Worker),
}

impl Server {
    fn url(&self, path: &str) -> String {
        match self {
            Server::Native(k) => k.url(path),
            Server::Edge(w) => w.url(path),
        }
    }

    fn admin(&self) -> Admin {
        match self {
            Server::Native(k) => Admin::new(&k.admin_base()),
            Server::Edge(w) => Admin::new(&w.admin_base()),
        }
    }

    fn is_edge(&self) -> bool {
        matches!(self, Server::Edge(_))
    }

    /// Replaces the configuration (through the admin API, as a user would).
    async fn seed(&self, doc: Value) {
        let r = self.admin().call(Method::POST, "/api/import", doc).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "import: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

const SECRET: &str = "conformance-secret-0123456789";

fn base_doc(up: &Upstream) -> Value {
    let url = up.url();
    json!({
        "format": 1,
        "groups": [{ "id": "team" }],
        "routes": [
            { "id": "exact", "hosts": ["api.example.com"], "paths": ["/where"], "public": true,
              "backend": { "targets": [{ "url": format!("{url}/exact") }] } },
            { "id": "wild", "hosts": ["*.example.com"], "paths": ["/where"], "public": true,
              "backend": { "targets": [{ "url": format!("{url}/wild") }] } },
            { "id": "any", "paths": ["/where"], "public": true,
              "backend": { "targets": [{ "url": format!("{url}/any") }] } },
            { "id": "write", "paths": ["/items"], "methods": ["POST"], "public": true,
              "backend": { "targets": [{ "url": format!("{url}/write") }] } },
            { "id": "echo", "paths": ["/echo", "/echo/{*rest}", "/stream"], "groups": ["team"],
              "backend": { "targets": [{ "url": url }] } },
            { "id": "other", "paths": ["/other"], "backend": { "targets": [{ "url": url }] } },
            { "id": "down", "paths": ["/down"], "public": true, "backend": { "targets": [{ "url": "http://127.0.0.1:9" }] } },
            { "id": "drained", "paths": ["/drained"], "public": true,
              "backend": { "targets": [{ "url": url, "weight": 0 }] } },
            { "id": "slow", "paths": ["/slow/{ms}"], "public": true,
              "backend": { "targets": [{ "url": url }], "timeoutMs": 300 } }
        ],
        "apikeys": [
            { "clientId": "app", "clientSecret": SECRET, "groups": ["team"] },
            { "clientId": "off", "clientSecret": SECRET, "groups": ["team"], "enabled": false },
            { "clientId": "old", "clientSecret": SECRET, "groups": ["team"], "expiresAt": "2020-01-01T00:00:00Z" },
            { "clientId": "metered", "clientSecret": SECRET, "routes": ["echo"], "quotas": { "perDay": 3 } }
        ]
    })
}

fn pair(id: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![("komainu-client-id", id), ("komainu-client-secret", SECRET)]
}

async fn routing(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let c = Client::default();
    for (host, expected) in [
        ("api.example.com", "/exact/where?q=1"),
        ("web.example.com", "/wild/where?q=1"),
        ("elsewhere.org", "/any/where?q=1"),
    ] {
        let r = c.get(&s.url("/where?q=1"), &[("host", host)]).await;
        assert_eq!(r.status, StatusCode::OK, "{host}");
        assert_eq!(
            r.json()["uri"],
            expected,
            "{host}: path and query forwarded unchanged after the target's path"
        );
    }
    let r = c
        .send(Method::POST, &s.url("/items"), &[], Bytes::new())
        .await;
    assert_eq!(r.json()["uri"], "/write/items");
    c.get(&s.url("/items"), &[])
        .await
        .expect_error(StatusCode::NOT_FOUND, "route_not_found");
    c.get(&s.url("/nowhere"), &[])
        .await
        .expect_error(StatusCode::NOT_FOUND, "route_not_found");
}

async fn credentials(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let c = Client::default();
    let basic = format!("Basic {}", STANDARD.encode(format!("app:{SECRET}")));
    let token = jwt::sign(
        &format!(r#"{{"iss":"app","exp":{}}}"#, jwt::now_s() + 60),
        SECRET.as_bytes(),
    );
    let bearer = format!("Bearer {token}");
    for headers in [
        pair("app"),
        vec![("authorization", basic.as_str())],
        vec![("authorization", bearer.as_str())],
    ] {
        let r = c.get(&s.url("/echo/x"), &headers).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{headers:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let seen = &r.json()["headers"];
        for absent in [
            "komainu-client-id",
            "komainu-client-secret",
            "authorization",
        ] {
            assert!(seen.get(absent).is_none(), "{absent} reached the backend");
        }
    }
}

async fn errors(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let c = Client::default();
    let r = c.get(&s.url("/echo"), &[]).await;
    r.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    assert!(!r.header("www-authenticate").is_empty());
    let none = jwt::sign_with_header(
        r#"{"alg":"none"}"#,
        &format!(r#"{{"iss":"app","exp":{}}}"#, jwt::now_s() + 60),
        b"",
    );
    let none = format!("Bearer {}.", none.rsplit_once('.').unwrap().0);
    let no_colon = format!("Basic {}", STANDARD.encode("app"));
    for headers in [
        vec![
            ("komainu-client-id", "app"),
            ("komainu-client-secret", "wrong"),
        ],
        vec![
            ("komainu-client-id", "nobody"),
            ("komainu-client-secret", SECRET),
        ],
        pair("off"),
        pair("old"),
        vec![("authorization", none.as_str())],
        vec![("authorization", no_colon.as_str())],
    ] {
        c.get(&s.url("/echo"), &headers)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    c.get(&s.url("/other"), &pair("app"))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    c.get(&s.url("/down"), &[])
        .await
        .expect_error(StatusCode::BAD_GATEWAY, "bad_gateway");
    c.get(&s.url("/drained"), &[])
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "no_healthy_target");
    c.get(&s.url("/slow/3000"), &[])
        .await
        .expect_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
    assert_eq!(c.get(&s.url("/slow/5"), &[]).await.status, StatusCode::OK);
}

async fn quotas(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let c = Client::default();
    for remaining in ["2", "1", "0"] {
        let r = c.get(&s.url("/echo"), &pair("metered")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("komainu-daily-calls-remaining"), remaining);
        assert_eq!(r.header("ratelimit-policy"), "\"day\";q=3;w=86400");
        assert!(r
            .header("ratelimit")
            .starts_with(&format!("\"day\";r={remaining};t=")));
    }
    let r = c.get(&s.url("/echo"), &pair("metered")).await;
    r.expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    assert!(r.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1));

    // Consumption reset by an admin: the windows start over at once.
    let r = s
        .admin()
        .call(Method::DELETE, "/api/apikeys/metered/quotas", Value::Null)
        .await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.json()["windows"][0]["used"], 0);
    let r = c.get(&s.url("/echo"), &pair("metered")).await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.header("komainu-daily-calls-remaining"), "2");
    let r = s
        .admin()
        .call(Method::GET, "/api/events?type=audit", Value::Null)
        .await;
    assert!(
        r.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "io.komainu.audit.apikey.quotas.reset.v1"),
        "the reset is an audit event"
    );
}

async fn upstream_headers_and_claim(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let c = Client::default();
    let r = c
        .get(
            &s.url("/echo/h?x=1"),
            &[pair("app")[0], pair("app")[1], ("komainu-claim", "forged")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let seen = &r.json()["headers"];
    let id = r.header("komainu-request-id");
    assert_eq!(seen["komainu-request-id"], id);
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert!(seen["x-forwarded-host"]
        .as_str()
        .is_some_and(|h| h.starts_with("127.0.0.1:")));
    if s.is_edge() {
        // The client address comes from CF-Connecting-IP, which Cloudflare
        // sets; Miniflare sets none, so no X-Forwarded-For is added there.
    } else {
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    }
    let claims = jwt::verify(
        seen["komainu-claim"].as_str().unwrap(),
        CLAIM_SECRET.as_bytes(),
    )
    .expect("a verifiable claim");
    assert_eq!(
        (
            claims["sub"].as_str(),
            claims["aud"].as_str(),
            claims["jti"].as_str()
        ),
        (Some("app"), Some("echo"), Some(id))
    );

    // The gateway's own session cookie never reaches a backend; the
    // client's other cookies do.
    for (sent, forwarded) in [
        ("a=1; komainu_session=v1.x.y; b=2", Some("a=1; b=2")),
        ("komainu_session=v1.x.y", None),
        ("theme=dark", Some("theme=dark")),
    ] {
        let r = c
            .get(
                &s.url("/echo/cookies"),
                &[pair("app")[0], pair("app")[1], ("cookie", sent)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["headers"]["cookie"].as_str(), forwarded, "{sent}");
    }
}

async fn streaming(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let sent = upstream::pattern(3 * 1024 * 1024 + 7);
    let r = Client::default()
        .send(
            Method::POST,
            &s.url("/stream"),
            &pair("app"),
            Bytes::from(sent.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body == sent, "the body came back altered");
}

async fn admin_and_hot_changes(s: &Server, up: &Upstream) {
    s.seed(json!({ "format": 1 })).await;
    let admin = s.admin();
    let c = Client::default();
    assert_eq!(
        admin
            .with_auth(None)
            .call(Method::GET, "/api/routes", Value::Null)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let r = admin
        .call(Method::POST, "/api/routes", json!({ "id": "live", "paths": ["/live"], "backend": { "targets": [{ "url": up.url() }] } }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let created = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "u", "routes": ["live"] }),
        )
        .await
        .json();
    let secret = created["clientSecret"].as_str().unwrap().to_owned();
    let headers = [
        ("komainu-client-id", "u"),
        ("komainu-client-secret", secret.as_str()),
    ];
    assert_eq!(
        c.get(&s.url("/live"), &headers).await.status,
        StatusCode::OK
    );
    admin
        .call(
            Method::PATCH,
            "/api/apikeys/u",
            json!({ "quotas": { "perDay": 1 } }),
        )
        .await;
    assert_eq!(
        c.get(&s.url("/live"), &headers)
            .await
            .header("komainu-daily-calls-remaining"),
        "0",
        "the next call obeys the change"
    );
    c.get(&s.url("/live"), &headers)
        .await
        .expect_error(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded");
    let r = admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "bad", "paths": ["nope"], "backend": {} }),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("paths[0]"))
    );
    assert_eq!(
        admin
            .call(Method::DELETE, "/api/routes/live", Value::Null)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    c.get(&s.url("/live"), &headers)
        .await
        .expect_error(StatusCode::NOT_FOUND, "route_not_found");
    let export = admin.call(Method::GET, "/api/export", Value::Null).await;
    assert!(!String::from_utf8_lossy(&export.body).contains(&secret));
}

async fn exact_quotas_under_concurrency(s: &Server, up: &Upstream) {
    // A fresh key: counters outlive configuration changes (by design).
    let mut doc = base_doc(up);
    doc["apikeys"].as_array_mut().unwrap().push(json!({
        "clientId": "racer", "clientSecret": SECRET, "routes": ["echo"], "quotas": { "perDay": 20 }
    }));
    s.seed(doc).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (ok, url) = (ok.clone(), s.url("/echo"));
            tokio::spawn(async move {
                let r = Client::default().get(&url, &pair("racer")).await;
                if r.status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        ok.load(Ordering::SeqCst),
        20,
        "64 concurrent calls, a daily quota of 20"
    );
}

async fn large_configuration(s: &Server, up: &Upstream) {
    // ~600 KB: more than one value of Durable Object storage at the edge.
    let routes: Vec<Value> = (0..3000)
        .map(|i| {
            json!({ "id": format!("r{i}"), "name": format!("route number {i} with a longer name to take some space"),
                    "paths": [format!("/svc{i}"), format!("/svc{i}/{{*rest}}")], "public": true,
                    "backend": { "targets": [{ "url": up.url() }] } })
        })
        .collect();
    s.seed(json!({ "format": 1, "routes": routes })).await;
    let admin = s.admin();
    let export = admin
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(export["routes"].as_array().unwrap().len(), 3000);
    let r = Client::default().get(&s.url("/svc2999/x"), &[]).await;
    r.expect_status(StatusCode::OK);
    // Then smaller again: nothing of the larger one is left behind.
    s.seed(json!({ "format": 1, "routes": [route_json("only", up)] }))
        .await;
    let export = admin
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .json();
    assert_eq!(export["routes"].as_array().unwrap().len(), 1);
}

/// Paths are normalized before routing, the same way on both deployments
/// (a dot-segment, plain or encoded, never walks from a public route to a
/// keyed one), and no credential reaches a backend, on public routes too.
async fn paths_and_public_credentials(s: &Server, up: &Upstream) {
    let mut doc = base_doc(up);
    doc["routes"].as_array_mut().unwrap().push(json!({
        "id": "public", "paths": ["/public/{*rest}"], "public": true,
        "backend": { "targets": [{ "url": up.url() }] }
    }));
    doc["routes"].as_array_mut().unwrap().push(json!({
        "id": "self-auth", "paths": ["/self-auth"], "public": true, "passAuthorization": true,
        "backend": { "targets": [{ "url": up.url() }] }
    }));
    s.seed(doc).await;
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n{extra}Connection: close\r\n\r\n")
    };
    for path in [
        "/public/../echo/x",
        "/public/%2e%2e/echo/x",
        "/public/%2E%2e/echo/x",
        "/public/.%2e/echo/x",
        "/public/x/../../echo/x",
    ] {
        let mut conn = RawConn::connect(&s.url("/")).await;
        conn.send(get(path, "").as_bytes()).await;
        let r = conn.response(false).await;
        assert_eq!(r.status, 401, "{path} reached a keyed route without a key");
        assert_eq!(r.json()["error"], "missing_credentials", "{path}");
    }
    for (path, seen) in [
        ("/public/./a/../hello", "/public/hello"),
        ("/public/%68ello", "/public/hello"),
        ("/public/a%2Fb", "/public/a%2Fb"),
    ] {
        let mut conn = RawConn::connect(&s.url("/")).await;
        conn.send(get(path, "").as_bytes()).await;
        let r = conn.response(false).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.json()["uri"],
            seen,
            "{path}: the backend sees the path routed on"
        );
    }
    // A malformed escape is refused, not guessed at.
    for path in [
        "/public/%zz",
        "/public/%4%44",
        "/public/..%2Fecho/x",
        "/public/%2e%2e%2fecho/x",
    ] {
        let mut conn = RawConn::connect(&s.url("/")).await;
        conn.send(get(path, "").as_bytes()).await;
        let r = conn.response(false).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.json()["error"], "bad_request", "{path}");
    }
    let c = Client::default();
    let token = jwt::sign(r#"{"iss":"app","exp":99999999999}"#, SECRET.as_bytes());
    let bearer = format!("Bearer {token}");
    let basic = format!("Basic {}", STANDARD.encode("x:y"));
    for auth in [basic.as_str(), bearer.as_str()] {
        let r = c
            .get(
                &s.url("/public/hello"),
                &[
                    ("authorization", auth),
                    ("komainu-client-id", "app"),
                    ("komainu-client-secret", SECRET),
                ],
            )
            .await;
        r.expect_status(StatusCode::OK);
        let seen = &r.json()["headers"];
        for absent in [
            "authorization",
            "komainu-client-id",
            "komainu-client-secret",
        ] {
            assert!(
                seen.get(absent).is_none(),
                "{absent} reached the backend of a public route"
            );
        }
    }
    // A route that passes Authorization on, to a backend doing its own checks.
    let r = c
        .get(
            &s.url("/self-auth"),
            &[("authorization", "Bearer backend-token")],
        )
        .await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.json()["headers"]["authorization"], "Bearer backend-token");
}

/// The admin API reads no body from a caller without valid credentials:
/// a head announcing a huge (or endless chunked) body gets its 401 at once.
async fn admin_reads_no_body_without_credentials(s: &Server, _up: &Upstream) {
    let base = match s {
        Server::Native(k) => k.admin_base(),
        Server::Edge(w) => w.admin_base(),
    };
    let prefix = base
        .trim_start_matches("http://")
        .split_once('/')
        .map_or(String::new(), |(_, p)| format!("/{p}"));
    for framing in ["Content-Length: 104857600", "Transfer-Encoding: chunked"] {
        let mut conn = RawConn::connect(&base).await;
        let head = format!(
            "POST {prefix}/api/routes HTTP/1.1\r\nHost: admin.test\r\nAuthorization: Basic {}\r\n{framing}\r\n\r\n",
            STANDARD.encode("ops:wrong-secret-0123456789")
        );
        conn.send(head.as_bytes()).await;
        if framing.starts_with("Transfer") {
            conn.send(b"5\r\nhello\r\n").await; // and never the end
        }
        let r = conn.response(false).await;
        assert_eq!(r.status, 401, "{framing}");
        assert_eq!(r.json()["error"], "unauthorized");
    }
}

/// Callers that sign their JWTs with a private key (ES256, EdDSA, RS256)
/// and registered only the public key: nothing secret is stored for them.
async fn jwts_signed_with_registered_public_keys(s: &Server, up: &Upstream) {
    use ed25519_dalek::Signer as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let ec = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let point = ec.verifying_key().to_encoded_point(false);
    let ed = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let rsa_key = komainu_e2e::keys::rsa_private_key();
    let rsa_public = rsa::RsaPublicKey::from(&rsa_key);
    use rsa::traits::PublicKeyParts as _;
    let mut doc = base_doc(up);
    doc["apikeys"].as_array_mut().unwrap().push(json!({
        "clientId": "signer", "groups": ["team"],
        "jwks": [
            { "kty": "EC", "crv": "P-256", "kid": "ec-1",
              "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()) },
            { "kty": "OKP", "crv": "Ed25519", "x": b64(ed.verifying_key().as_bytes()) },
            { "kty": "RSA", "alg": "RS256",
              "n": b64(&rsa_public.n().to_bytes_be()), "e": b64(&rsa_public.e().to_bytes_be()) }
        ]
    }));
    s.seed(doc).await;
    let payload = format!(r#"{{"iss":"signer","exp":{}}}"#, jwt::now_s() + 60);
    let token = |alg: &str, sign: &dyn Fn(&[u8]) -> Vec<u8>| {
        let input = format!(
            "{}.{}",
            b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
            b64(payload.as_bytes())
        );
        let signature = sign(input.as_bytes());
        format!("Bearer {input}.{}", b64(&signature))
    };
    let rsa_signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key);
    let good = [
        token("ES256", &|m| {
            let sig: p256::ecdsa::Signature = ec.sign(m);
            sig.to_bytes().to_vec()
        }),
        token("EdDSA", &|m| ed.sign(m).to_bytes().to_vec()),
        token("RS256", &|m| {
            use rsa::signature::{SignatureEncoding as _, Signer as _};
            rsa_signer.sign(m).to_vec()
        }),
    ];
    let c = Client::default();
    for auth in &good {
        let r = c
            .get(&s.url("/echo/x"), &[("authorization", auth.as_str())])
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{auth}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["headers"].get("authorization").is_none());
    }
    // A stranger's key, and an HMAC token for a key with no secret: refused.
    let stranger = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
    let forged = token("ES256", &|m| {
        let sig: p256::ecdsa::Signature = stranger.sign(m);
        sig.to_bytes().to_vec()
    });
    let hmac = format!(
        "Bearer {}",
        jwt::sign(&payload, b"signer-has-no-secret-at-all")
    );
    for auth in [forged, hmac] {
        c.get(&s.url("/echo/x"), &[("authorization", auth.as_str())])
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // A private key registered by mistake is refused, naming it.
    let r = s
        .admin()
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "oops", "jwks": [{ "kty": "OKP", "crv": "Ed25519",
                    "x": b64(ed.verifying_key().as_bytes()), "d": b64(&[9u8; 32]) }] }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "jwks[0]", "{error}");
}

/// A route in maintenance, then the whole gateway, then back: 503
/// `maintenance` with `Retry-After` and the configured message, before any
/// credential is looked at; nothing reaches the backend.
async fn maintenance(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let admin = s.admin();
    let c = Client::default();
    admin
        .call(
            Method::PATCH,
            "/api/routes/any",
            json!({ "maintenance": true }),
        )
        .await
        .expect_status(StatusCode::OK);
    let r = c.get(&s.url("/where"), &[]).await;
    let body = r.expect_error(StatusCode::SERVICE_UNAVAILABLE, "maintenance");
    assert_eq!(r.header("retry-after"), "300");
    assert!(body["message"].as_str().unwrap().contains("maintenance"));
    // Other routes go on.
    c.get(&s.url("/echo"), &pair("app"))
        .await
        .expect_status(StatusCode::OK);

    // The whole gateway, with its own message and wait.
    admin
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "maintenance": {
                "enabled": true, "retryAfterSeconds": 120, "message": "upgrading the database until 14:00 UTC" } } }),
        )
        .await
        .expect_status(StatusCode::OK);
    // Before credentials: no key needed to learn it, a wrong one is not judged.
    for headers in [
        vec![],
        pair("app"),
        vec![
            ("komainu-client-id", "app"),
            ("komainu-client-secret", "wrong-secret-0123456789"),
        ],
    ] {
        let r = c.get(&s.url("/echo"), &headers).await;
        let body = r.expect_error(StatusCode::SERVICE_UNAVAILABLE, "maintenance");
        assert_eq!(r.header("retry-after"), "120");
        assert_eq!(body["message"], "upgrading the database until 14:00 UTC");
    }
    // Unknown paths are still 404: maintenance is a route's state.
    c.get(&s.url("/nowhere"), &[])
        .await
        .expect_error(StatusCode::NOT_FOUND, "route_not_found");

    // Bad settings are refused, naming the field; nothing changes.
    let r = admin
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "maintenance": { "enabled": false, "retryAfterSeconds": 0 } } }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "settings.maintenance.retryAfterSeconds");
    c.get(&s.url("/echo"), &pair("app"))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "maintenance");

    // Back.
    admin
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "maintenance": { "enabled": false } } }),
        )
        .await
        .expect_status(StatusCode::OK);
    admin
        .call(
            Method::PATCH,
            "/api/routes/any",
            json!({ "maintenance": false }),
        )
        .await
        .expect_status(StatusCode::OK);
    c.get(&s.url("/where"), &[])
        .await
        .expect_status(StatusCode::OK);
    c.get(&s.url("/echo"), &pair("app"))
        .await
        .expect_status(StatusCode::OK);
}

/// IP allow and block lists, and trusted proxies. The client's address is
/// the connection's peer natively and `CF-Connecting-IP` at the edge (the
/// platform sets it; the test sends it, ignored natively): 127.0.0.1 both.
async fn ip_lists(s: &Server, up: &Upstream) {
    s.seed(base_doc(up)).await;
    let admin = s.admin();
    let c = Client::default();
    let me = [("cf-connecting-ip", "127.0.0.1")];
    let patch = |body: Value| {
        let admin = admin.clone();
        async move {
            admin
                .call(Method::PATCH, "/api/routes/any", body)
                .await
                .expect_status(StatusCode::OK);
        }
    };
    patch(json!({ "ipBlock": ["127.0.0.0/8", "::1"] })).await;
    let body = c
        .get(&s.url("/where"), &me)
        .await
        .expect_error(StatusCode::FORBIDDEN, "ip_forbidden");
    assert!(body["message"].as_str().unwrap().contains("127.0.0.1"));
    patch(json!({ "ipBlock": null, "ipAllow": ["10.0.0.0/8", "2001:db8::/32"] })).await;
    c.get(&s.url("/where"), &me)
        .await
        .expect_error(StatusCode::FORBIDDEN, "ip_forbidden");
    patch(json!({ "ipAllow": ["10.0.0.0/8", "127.0.0.1"] })).await;
    c.get(&s.url("/where"), &me)
        .await
        .expect_status(StatusCode::OK);

    // Behind a trusted proxy, X-Forwarded-For names the client; from
    // anywhere else it is not believed.
    patch(json!({ "ipAllow": null, "ipBlock": ["203.0.113.0/24"] })).await;
    let forwarded = [
        ("cf-connecting-ip", "127.0.0.1"),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    c.get(&s.url("/where"), &forwarded)
        .await
        .expect_status(StatusCode::OK);
    s.admin()
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "trustedProxies": ["127.0.0.0/8", "::1"] } }),
        )
        .await
        .expect_status(StatusCode::OK);
    c.get(&s.url("/where"), &forwarded)
        .await
        .expect_error(StatusCode::FORBIDDEN, "ip_forbidden");
    c.get(
        &s.url("/where"),
        &[
            ("cf-connecting-ip", "127.0.0.1"),
            ("x-forwarded-for", "198.51.100.4"),
        ],
    )
    .await
    .expect_status(StatusCode::OK);

    // A network that does not parse: 400 naming it, nothing changed.
    let r = admin
        .call(
            Method::PATCH,
            "/api/routes/any",
            json!({ "ipBlock": ["10.0.0.0/33"] }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "ipBlock[0]");
    let r = admin
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "ipAllow": ["not-an-ip"] } }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "settings.ipAllow[0]");
    c.get(&s.url("/where"), &forwarded)
        .await
        .expect_error(StatusCode::FORBIDDEN, "ip_forbidden");
    s.admin()
        .call(
            Method::POST,
            "/api/import?merge=true",
            json!({ "format": 1, "settings": { "trustedProxies": [] } }),
        )
        .await
        .expect_status(StatusCode::OK);
}

/// Routes the gateway answers itself: a redirect from a template, a static
/// response; on a keyed route, only after the key and its quota.
async fn redirects_and_static_responses(s: &Server, up: &Upstream) {
    let mut doc = base_doc(up);
    let routes = doc["routes"].as_array_mut().unwrap();
    routes.push(
        json!({ "id": "moved", "paths": ["/old/{*rest}"], "public": true,
        "redirect": { "to": "https://new.example.com{path}{query}", "status": 308 } }),
    );
    routes.push(json!({ "id": "teapot", "paths": ["/teapot"], "public": true,
        "respond": { "status": 418, "headers": { "content-type": "application/json", "x-brewed": "yes" },
                     "body": "{\"short\":\"and stout\"}" } }));
    routes.push(
        json!({ "id": "keyed-static", "paths": ["/keyed-static"], "groups": ["team"],
        "respond": { "body": "for team members" } }),
    );
    s.seed(doc).await;
    let c = Client::default();

    let r = c.get(&s.url("/old/a/b?x=1&y=2"), &[]).await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.header("location"),
        "https://new.example.com/old/a/b?x=1&y=2"
    );
    assert!(!r.header("komainu-request-id").is_empty());
    let r = c.get(&s.url("/old/c"), &[]).await;
    assert_eq!(r.header("location"), "https://new.example.com/old/c");

    let r = c.get(&s.url("/teapot"), &[]).await;
    assert_eq!(r.status.as_u16(), 418);
    assert_eq!(r.header("x-brewed"), "yes");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.json()["short"], "and stout");

    c.get(&s.url("/keyed-static"), &[])
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    let r = c.get(&s.url("/keyed-static"), &pair("app")).await;
    r.expect_status(StatusCode::OK);
    assert_eq!(&r.body[..], b"for team members");
    assert!(r.header("content-type").starts_with("text/plain"));

    // Bad ones are refused, naming the field.
    let admin = s.admin();
    for (body, field) in [
        (
            json!({ "id": "r1", "paths": ["/r1"], "redirect": { "to": "https://x{pth}" } }),
            "redirect.to",
        ),
        (
            json!({ "id": "r2", "paths": ["/r2"], "redirect": { "to": "/x", "status": 200 } }),
            "redirect.status",
        ),
        (
            json!({ "id": "r3", "paths": ["/r3"], "respond": { "status": 99 } }),
            "respond.status",
        ),
        (
            json!({ "id": "r4", "paths": ["/r4"], "respond": { "headers": { "content-length": "3" } } }),
            "respond.headers.content-length",
        ),
        (
            json!({ "id": "r5", "paths": ["/r5"], "redirect": { "to": "/x" }, "respond": {} }),
            "respond",
        ),
    ] {
        let r = admin.call(Method::POST, "/api/routes", body.clone()).await;
        let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert_eq!(error["field"], field, "{body}");
    }
}

/// A declared body over the route's limit (or the settings' default) is
/// refused before anything is forwarded or counted.
async fn body_limits(s: &Server, up: &Upstream) {
    let mut doc = base_doc(up);
    doc["settings"] = json!({ "maxRequestBodyBytes": 1000 });
    let routes = doc["routes"].as_array_mut().unwrap();
    for r in routes.iter_mut() {
        if r["id"] == "echo" {
            r["maxBodyBytes"] = json!(10);
        }
    }
    s.seed(doc).await;
    let c = Client::default();
    let r = c
        .send(Method::POST, &s.url("/echo"), &pair("app"), "0123456789")
        .await;
    r.expect_status(StatusCode::OK);
    let body = c
        .send(Method::POST, &s.url("/echo"), &pair("app"), "0123456789A")
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(body["message"].as_str().unwrap().contains("10 bytes"));
    // The settings' default on the other routes. (A new client: workerd
    // closes a connection whose request body the Worker left unread, which
    // a pooled connection would trip over.)
    let c = Client::default();
    c.send(Method::POST, &s.url("/items"), &[], vec![b'x'; 1000])
        .await
        .expect_status(StatusCode::OK);
    c.send(Method::POST, &s.url("/items"), &[], vec![b'x'; 1001])
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A limit that is not a number: 400 naming it.
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/echo",
            json!({ "maxBodyBytes": -1 }),
        )
        .await;
    let error = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(error["field"], "maxBodyBytes");
}

async fn transformations(s: &Server, up: &Upstream) {
    let url = up.url();
    s.seed(json!({
        "format": 1,
        "routes": [{
            "id": "shaped", "paths": ["/api", "/api/{*rest}"], "public": true,
            "stripPrefix": "/api", "hostOverride": "internal.example",
            "requestHeaders": { "set": { "X-Team": "shop" }, "append": { "x-via": "komainu" }, "remove": ["x-internal"] },
            "responseHeaders": { "set": { "x-served-by": "komainu" }, "remove": ["X-Upstream"] },
            "backend": { "targets": [{ "url": url }] }
        }]
    }))
    .await;
    let c = Client::default();
    let r = c
        .get(
            &s.url("/api/orders/7?x=1"),
            &[
                ("x-team", "client"),
                ("x-internal", "secret"),
                ("x-via", "client"),
            ],
        )
        .await;
    r.expect_status(StatusCode::OK);
    let seen = r.json();
    assert_eq!(seen["uri"], "/orders/7?x=1", "the prefix is taken off");
    let h = &seen["headers"];
    if s.is_edge() {
        // A Worker's fetch takes Host from the URL (overriding it needs
        // Cloudflare's Enterprise-only resolveOverride).
        assert!(h["host"]
            .as_str()
            .is_some_and(|v| v.starts_with("127.0.0.1")));
    } else {
        assert_eq!(h["host"], "internal.example");
    }
    assert_eq!(h["x-team"], "shop", "set replaces the client's value");
    assert!(h.get("x-internal").is_none(), "removed");
    assert_eq!(h["x-via"], "komainu", "appended after the client's");
    assert!(h["x-forwarded-host"]
        .as_str()
        .is_some_and(|v| v.starts_with("127.0.0.1")));
    assert_eq!(r.header("x-served-by"), "komainu");
    assert_eq!(r.header("x-upstream"), "", "removed from the response");
    assert!(!r.header("komainu-request-id").is_empty());
    let r = c.get(&s.url("/api"), &[]).await;
    assert_eq!(r.json()["uri"], "/");

    // A change to a header the gateway owns is refused, naming the field.
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/shaped",
            json!({ "requestHeaders": { "set": { "Komainu-Claim": "forged" } }, "stripPrefix": "api/" }),
        )
        .await;
    let body = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["requestHeaders.set.Komainu-Claim", "stripPrefix"]);
}

async fn cors(s: &Server, up: &Upstream) {
    let mut doc = base_doc(up);
    doc["routes"].as_array_mut().unwrap().push(json!({
        "id": "shared", "paths": ["/shared", "/shared/{*rest}"], "methods": ["GET", "POST"], "groups": ["team"],
        "cors": { "allowOrigins": ["https://app.example.com"], "allowCredentials": true },
        "backend": { "targets": [{ "url": up.url() }] }
    }));
    s.seed(doc).await;
    let app = "https://app.example.com";
    // A fresh connection for each call: the Worker in workerd resets one
    // whose body it did not read.
    let c = Client::default;
    let preflight = |origin: &'static str, method: &'static str| {
        vec![
            ("origin", origin),
            ("access-control-request-method", method),
            (
                "access-control-request-headers",
                "content-type, komainu-client-id",
            ),
        ]
    };
    // The preflight is the gateway's (the route does not even list OPTIONS).
    let r = c()
        .send(
            Method::OPTIONS,
            &s.url("/shared/x"),
            &preflight(app, "POST"),
            "",
        )
        .await;
    r.expect_status(StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), app);
    assert_eq!(r.header("access-control-allow-credentials"), "true");
    assert!(r.header("access-control-allow-methods").contains("POST"));
    assert!(r
        .header("access-control-allow-headers")
        .contains("content-type"));
    assert_eq!(r.header("access-control-max-age"), "600");
    assert_eq!(r.header("vary"), "Origin");
    assert_eq!(r.header("x-upstream"), "", "never forwarded");
    // Another origin, another method: refused, with a clear error.
    let r = c()
        .send(
            Method::OPTIONS,
            &s.url("/shared/x"),
            &preflight("https://evil.example", "POST"),
            "",
        )
        .await;
    r.expect_error(StatusCode::FORBIDDEN, "cors_refused");
    assert_eq!(r.header("access-control-allow-origin"), "");
    let r = c()
        .send(
            Method::OPTIONS,
            &s.url("/shared/x"),
            &preflight(app, "DELETE"),
            "",
        )
        .await;
    r.expect_error(StatusCode::FORBIDDEN, "cors_refused");
    // The real call: the answer names the origin and what a page may read.
    let mut headers = pair("app");
    headers.push(("origin", app));
    let r = c().get(&s.url("/shared/x"), &headers).await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), app);
    assert!(r
        .header("access-control-expose-headers")
        .contains("komainu-request-id"));
    assert!(r.headers.get_all("vary").iter().any(|v| v == "Origin"));
    assert_eq!(r.header("x-upstream"), "test-upstream");
    // The gateway's own refusals are readable by the page too.
    let r = c().get(&s.url("/shared/x"), &[("origin", app)]).await;
    r.expect_error(StatusCode::UNAUTHORIZED, "missing_credentials");
    assert_eq!(r.header("access-control-allow-origin"), app);
    // Another origin gets the answer without CORS headers (its browser
    // keeps it from the page).
    let mut headers = pair("app");
    headers.push(("origin", "https://evil.example"));
    let r = c().get(&s.url("/shared/x"), &headers).await;
    r.expect_status(StatusCode::OK);
    assert_eq!(r.header("access-control-allow-origin"), "");
    // Credentials with any origin: refused, naming the field.
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/shared",
            json!({ "cors": { "allowOrigins": ["*"] } }),
        )
        .await;
    let body = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["field"], "cors.allowOrigins[0]");
}

async fn load_balancing(s: &Server, up: &Upstream) {
    let url = up.url();
    let target = |name: &str, extra: Value| {
        let mut t = json!({ "url": format!("{url}/{name}") });
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    };
    s.seed(json!({
        "format": 1,
        "routes": [
            { "id": "sticky", "paths": ["/sticky"], "public": true, "backend": {
                "targets": [target("a", json!({})), target("b", json!({})), target("c", json!({}))],
                "loadBalancing": { "strategy": "hash", "header": "x-user" } } },
            { "id": "spare", "paths": ["/spare"], "public": true, "backend": {
                "targets": [target("main", json!({ "weight": 0 })), target("spare", json!({ "backup": true }))],
                "loadBalancing": { "strategy": "leastRequests" } } },
            { "id": "rr", "paths": ["/rr"], "public": true, "backend": {
                "targets": [target("one", json!({ "weight": 2 })), target("two", json!({}))] } }
        ]
    }))
    .await;
    let c = Client::default();
    let served_by = |r: &komainu_e2e::Reply| {
        r.json()["uri"]
            .as_str()
            .unwrap()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    // The same key, the same target; keys spread over the targets.
    let mut seen = std::collections::BTreeSet::new();
    for user in 0..30 {
        let header = format!("user-{user}");
        let mut targets = std::collections::BTreeSet::new();
        for _ in 0..3 {
            let r = c
                .get(&s.url("/sticky"), &[("x-user", header.as_str())])
                .await;
            r.expect_status(StatusCode::OK);
            targets.insert(served_by(&r));
        }
        assert_eq!(targets.len(), 1, "{header} moved: {targets:?}");
        seen.extend(targets);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    // No primary takes traffic: the backup does.
    for _ in 0..3 {
        let r = c.get(&s.url("/spare"), &[]).await;
        assert_eq!(served_by(&r), "spare");
    }
    // Weighted round robin: 2 to 1.
    let mut one = 0;
    for _ in 0..30 {
        if served_by(&c.get(&s.url("/rr"), &[]).await) == "one" {
            one += 1;
        }
    }
    assert_eq!(one, 20);
    // Hashing on a header and a cookie at once is refused, naming the field.
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/sticky",
            json!({ "backend": { "loadBalancing": { "cookie": "sid" } } }),
        )
        .await;
    let body = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["field"], "backend.loadBalancing.cookie");
}

/// An unreachable target is retried on another and taken out by the
/// circuit breaker; the route's health says so.
async fn breaker_and_retries(s: &Server, up: &Upstream) {
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    s.seed(json!({
        "format": 1,
        "routes": [{ "id": "flaky", "paths": ["/flaky"], "public": true, "backend": {
            "targets": [{ "url": format!("http://{dead}") }, { "url": up.url() }],
            "circuitBreaker": { "consecutiveFailures": 2, "openSeconds": 60 } } }]
    }))
    .await;
    for i in 0..10 {
        // A fresh connection each time (workerd resets a connection whose
        // backend failed).
        let r = Client::default().get(&s.url("/flaky"), &[]).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "call {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = s
        .admin()
        .call(Method::GET, "/api/routes/flaky/health", Value::Null)
        .await;
    if r.status == StatusCode::OK {
        let h = r.json();
        assert_eq!(h["status"], "healthy");
        assert_eq!(h["targets"][0]["status"], "down", "{h}");
        assert_eq!(h["targets"][0]["breaker"], "open", "{h}");
        assert_eq!(h["targets"][1]["status"], "up", "{h}");
    } else {
        // At the edge, health is per isolate: the one answering the admin
        // API may not have served the route yet.
        assert!(s.is_edge(), "{}", String::from_utf8_lossy(&r.body));
    }
    // A name that does not exist is refused, naming the field.
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/flaky",
            json!({ "backend": { "circuitBreaker": { "openSeconds": -1 } } }),
        )
        .await;
    r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
}

/// A path rewritten from a template of the route's parameters; a
/// template naming a variable the route does not have is refused.
async fn path_rewrite(s: &Server, up: &Upstream) {
    s.seed(json!({
        "format": 1,
        "routes": [{ "id": "users", "paths": ["/users/{id}/{*rest}"], "public": true,
                     "rewritePath": "/v2/accounts/{id}/{rest}",
                     "backend": { "targets": [{ "url": format!("{}/base", up.url()) }] } }]
    }))
    .await;
    let r = Client::default()
        .get(&s.url("/users/42/orders/7?x=1"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["uri"], "/base/v2/accounts/42/orders/7?x=1");
    let r = s
        .admin()
        .call(
            Method::PATCH,
            "/api/routes/users",
            json!({ "rewritePath": "/v2/{user}" }),
        )
        .await;
    let body = r.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(body["field"], "rewritePath", "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("{user}"),
        "{body}"
    );
}

/// Named timeouts: the response head, and the whole exchange cutting the
/// head wait short; 504 naming the one that ran out.
async fn named_timeouts(s: &Server, up: &Upstream) {
    let route = |id: &str, timeouts: Value| {
        json!({ "id": id, "paths": [format!("/{id}/{{*rest}}")], "public": true,
                "stripPrefix": format!("/{id}"),
                "backend": { "targets": [{ "url": up.url() }], "timeouts": timeouts } })
    };
    s.seed(json!({
        "format": 1,
        "routes": [
            route("t-head", json!({ "headMs": 300 })),
            route("t-total", json!({ "headMs": 5000, "totalMs": 400 }))
        ]
    }))
    .await;
    for (path, field) in [
        ("/t-head/slow/3000", "headMs"),
        ("/t-total/slow/3000", "totalMs"),
    ] {
        let started = std::time::Instant::now();
        let r = Client::default().get(&s.url(path), &[]).await;
        let body = r.expect_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");
        assert!(
            body["message"].as_str().unwrap_or("").contains(field),
            "{path}: {body}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_millis(2500),
            "{path}"
        );
    }
    let r = Client::default().get(&s.url("/t-head/slow/10"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    // Once the answer has begun: a backend that sends 5 of its 100 bytes
    // and stops has its answer cut after idleMs, or totalMs (on the Worker
    // too: a route naming them has its body watched there).
    let trickle = komainu_e2e::raw::ScriptedUpstream::start(|_| {
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello".to_vec(),
            false,
        )
    })
    .await;
    let stalled = |id: &str, timeouts: Value| {
        json!({ "id": id, "paths": [format!("/{id}")], "public": true,
                "backend": { "targets": [{ "url": trickle.url() }], "timeouts": timeouts } })
    };
    s.seed(json!({
        "format": 1,
        "routes": [
            stalled("b-idle", json!({ "idleMs": 400 })),
            stalled("b-total", json!({ "idleMs": 20000, "totalMs": 700 })),
            json!({ "id": "b-whole", "paths": ["/b-whole/{*rest}"], "public": true, "stripPrefix": "/b-whole",
                    "backend": { "targets": [{ "url": up.url() }], "timeouts": { "idleMs": 5000, "totalMs": 60000 } } }),
        ]
    }))
    .await;
    // A watched body that flows arrives whole, its length kept.
    let r = Client::default()
        .get(&s.url("/b-whole/big/3000000"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body == upstream::pattern(3_000_000),
        "a watched body arrives intact"
    );
    for (path, at_least) in [("/b-idle", 400), ("/b-total", 700)] {
        let started = std::time::Instant::now();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(8),
            Client::default().try_send(Method::GET, &s.url(path), &[], ""),
        )
        .await
        .unwrap_or_else(|_| panic!("{path}: the stalled answer is cut"));
        assert!(
            answer.is_err(),
            "{path}: 100 bytes cannot arrive whole: {:?}",
            answer
                .as_ref()
                .map(|r| (r.status, r.headers.clone(), r.body.len()))
        );
        let took = started.elapsed();
        assert!(
            took >= std::time::Duration::from_millis(at_least)
                && took < std::time::Duration::from_secs(4),
            "{path}: cut after {took:?}"
        );
    }
}

fn route_json(id: &str, up: &Upstream) -> Value {
    json!({ "id": id, "paths": [format!("/{id}")], "public": true, "backend": { "targets": [{ "url": up.url() }] } })
}

async fn run_all(s: Server) {
    let up = Upstream::start().await;
    macro_rules! case {
        ($name:ident) => {
            eprintln!(
                "conformance [{}] {}",
                if s.is_edge() { "edge" } else { "native" },
                stringify!($name)
            );
            $name(&s, &up).await;
        };
    }
    case!(routing);
    case!(credentials);
    case!(errors);
    case!(quotas);
    case!(upstream_headers_and_claim);
    case!(streaming);
    case!(admin_and_hot_changes);
    case!(exact_quotas_under_concurrency);
    case!(large_configuration);
    case!(paths_and_public_credentials);
    case!(admin_reads_no_body_without_credentials);
    case!(jwts_signed_with_registered_public_keys);
    case!(maintenance);
    case!(ip_lists);
    case!(redirects_and_static_responses);
    case!(body_limits);
    case!(transformations);
    case!(cors);
    case!(load_balancing);
    case!(breaker_and_retries);
    case!(named_timeouts);
    case!(path_rewrite);
}

#[tokio::test]
async fn native_conforms() {
    run_all(Server::Native(Komainu::start(r#"{"format":1}"#))).await;
}

#[tokio::test]
async fn edge_conforms() {
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    run_all(Server::Edge(worker)).await;
}
