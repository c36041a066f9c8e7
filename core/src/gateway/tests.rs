//! Pipeline tests with a manual clock and the in-memory counter store.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::{Method, Request, StatusCode};

use super::*;
use crate::auth::jwt;
use crate::secret::SecretHash;
use crate::store::MemoryCounterStore;
use crate::testing::block_on;
use crate::time::parse_rfc3339;

const DOC: &str = r#"{
  "format": 1, "revision": 9,
  "groups": [{ "id": "default", "name": "Default" }],
  "routes": [
    { "id": "users", "hosts": ["api.example.com"], "paths": ["/users", "/users/{*rest}"],
      "backend": { "targets": [{ "url": "http://10.0.0.1:9000/base" }], "timeoutMs": 1500 },
      "groups": ["default"] },
    { "id": "admin", "paths": ["/admin"], "backend": { "targets": [{ "url": "http://10.0.0.2" }] } },
    { "id": "open", "paths": ["/open"], "public": true,
      "backend": { "targets": [{ "url": "https://10.0.0.3" }] } },
    { "id": "drained", "paths": ["/drained"], "public": true,
      "backend": { "targets": [{ "url": "http://10.0.0.4", "weight": 0 }] } }
  ],
  "apikeys": [
    { "clientId": "mobile", "clientSecret": "mobile-s3cret-0123", "groups": ["default"],
      "quotas": { "perSecond": 100, "perDay": 2 } }
  ]
}"#;

const CLAIM_SECRET: &[u8] = b"claim-secret";

fn gateway() -> Gateway {
    Gateway::compile(&Document::load(DOC.as_bytes()).unwrap(), CLAIM_SECRET, None).unwrap()
}

fn now() -> u64 {
    parse_rfc3339("2026-11-26T23:59:58Z").unwrap()
}

fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

fn run(
    gw: &Gateway,
    store: &MemoryCounterStore,
    parts: &mut http::request::Parts,
    at: u64,
) -> (RequestContext, Outcome) {
    let client = ClientInfo {
        addr: Some("192.0.2.7".parse().unwrap()),
        tls: false,
    };
    block_on(gw.handle_request(store, parts, &client, at, RequestId::from_random(42)))
}

fn error_of(outcome: Outcome) -> (StatusCode, serde_json::Value, http::HeaderMap) {
    match outcome {
        Outcome::Respond(r) => {
            let (parts, body) = r.into_parts();
            (
                parts.status,
                serde_json::from_str(&body).unwrap(),
                parts.headers,
            )
        }
        Outcome::Forward(_) => panic!("forwarded"),
        Outcome::Login(step) => panic!("a login path: {step:?}"),
    }
}

fn pair() -> [(&'static str, &'static str); 2] {
    [
        ("komainu-client-id", "mobile"),
        ("komainu-client-secret", "mobile-s3cret-0123"),
    ]
}

#[test]
fn forwards_with_rewritten_head_and_verifiable_claim() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    let mut parts = request(
        Method::GET,
        "/users/42?x=1",
        &[
            ("komainu-client-id", "mobile"),
            ("komainu-client-secret", "mobile-s3cret-0123"),
            ("x-forwarded-for", "198.51.100.1"),
            ("connection", "x-private"),
            ("x-private", "1"),
            ("komainu-claim", "forged"),
        ],
    );
    let (ctx, outcome) = run(&gw, &store, &mut parts, now());
    assert_eq!(
        outcome,
        Outcome::Forward(Forward {
            timeouts: crate::gateway::Timeouts {
                head_ms: 1500,
                idle_ms: 1500,
                // (`timeoutMs` names the idle gap.)
                body_watched: true,
                ..Default::default()
            },
            max_body_bytes: None,
            upgrade: false,
        })
    );
    assert_eq!(parts.uri, "http://10.0.0.1:9000/base/users/42?x=1");
    let h = &parts.headers;
    assert!(h.get("komainu-client-id").is_none() && h.get("komainu-client-secret").is_none());
    assert!(h.get("x-private").is_none() && h.get("connection").is_none());
    assert_eq!(h["x-forwarded-for"], "198.51.100.1, 192.0.2.7");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
    assert_eq!(h["host"], "10.0.0.1:9000");
    assert_eq!(h["komainu-request-id"], ctx.request_id.as_str());

    let claim = h["komainu-claim"].to_str().unwrap();
    let parsed = jwt::parse(claim).unwrap();
    assert!(parsed.signed_by(&SecretHash::from_secret(CLAIM_SECRET)));
    let payload: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(claim.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], "mobile");
    assert_eq!(payload["aud"], "users");
    assert_eq!(payload["jti"], ctx.request_id.as_str());
    assert_eq!(
        payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(),
        30
    );

    let mut response = http::HeaderMap::new();
    response.insert("keep-alive", "timeout=5".parse().unwrap());
    gw.handle_response(&ctx, &mut response);
    assert!(response.get("keep-alive").is_none());
    assert_eq!(response["komainu-daily-calls-remaining"], "1");
    assert_eq!(response["komainu-request-id"], ctx.request_id.as_str());
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Self) -> bool {
        matches!((self, other), (Outcome::Forward(a), Outcome::Forward(b)) if a == b)
    }
}

#[test]
fn every_credential_form_is_accepted_and_removed() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    let basic = format!("Basic {}", STANDARD.encode("mobile:mobile-s3cret-0123"));
    let token = jwt::sign(
        &SecretHash::from_secret(b"mobile-s3cret-0123"),
        format!(r#"{{"iss":"mobile","exp":{}}}"#, now() / 1000 + 60),
    );
    let bearer = format!("Bearer {token}");
    for auth in [basic, bearer] {
        let mut parts = request(Method::GET, "/users", &[("authorization", &auth)]);
        let (_, outcome) = run(&gw, &store, &mut parts, now());
        assert!(matches!(outcome, Outcome::Forward(_)), "{auth}");
        assert!(parts.headers.get("authorization").is_none());
    }
}

#[test]
fn errors_of_the_contract() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    let cases: Vec<(http::request::Parts, StatusCode, &str)> = vec![
        (
            request(Method::GET, "/nowhere", &[]),
            StatusCode::NOT_FOUND,
            "route_not_found",
        ),
        (
            request(Method::GET, "/users", &[]),
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
        ),
        (
            request(
                Method::GET,
                "/users",
                &[
                    ("komainu-client-id", "mobile"),
                    ("komainu-client-secret", "nope"),
                ],
            ),
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        ),
        (
            request(Method::GET, "/admin", &pair()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            request(Method::GET, "/drained", &[]),
            StatusCode::SERVICE_UNAVAILABLE,
            "no_healthy_target",
        ),
    ];
    for (mut parts, status, code) in cases {
        let (ctx, outcome) = run(&gw, &store, &mut parts, now());
        let (got, body, headers) = error_of(outcome);
        assert_eq!((got, body["error"].as_str().unwrap()), (status, code));
        assert_eq!(body["requestId"], ctx.request_id.as_str());
        assert_eq!(headers["komainu-request-id"], ctx.request_id.as_str());
        assert_eq!(
            headers.contains_key("www-authenticate"),
            status == StatusCode::UNAUTHORIZED
        );
    }
}

#[test]
fn quota_runs_out_then_resets_at_midnight() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    for remaining in ["1", "0"] {
        let (ctx, outcome) = run(
            &gw,
            &store,
            &mut request(Method::GET, "/users", &pair()),
            now(),
        );
        assert!(matches!(outcome, Outcome::Forward(_)));
        let mut h = http::HeaderMap::new();
        gw.handle_response(&ctx, &mut h);
        assert_eq!(h["komainu-daily-calls-remaining"], remaining);
    }
    let (_, outcome) = run(
        &gw,
        &store,
        &mut request(Method::GET, "/users", &pair()),
        now(),
    );
    let (status, body, headers) = error_of(outcome);
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["message"], "daily quota of 2 calls reached");
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(headers["komainu-daily-calls-remaining"], "0");
    let tomorrow = parse_rfc3339("2026-11-27T00:00:00Z").unwrap();
    let (_, outcome) = run(
        &gw,
        &store,
        &mut request(Method::GET, "/users", &pair()),
        tomorrow,
    );
    assert!(matches!(outcome, Outcome::Forward(_)));
}

#[test]
fn public_routes_need_no_key_and_claim_has_no_subject() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    let mut parts = request(
        Method::POST,
        "/open",
        &[("authorization", "Bearer backend-token")],
    );
    let (_, outcome) = run(&gw, &store, &mut parts, now());
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert_eq!(parts.uri, "https://10.0.0.3/open");
    // Credentials never reach a backend, on public routes too.
    assert!(parts.headers.get("authorization").is_none());
    let claim = parts.headers["komainu-claim"].to_str().unwrap();
    let payload: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(claim.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(payload.get("sub").is_none());
    assert_eq!(payload["aud"], "open");
    let mut parts = request(Method::GET, "/open", &[("authorization", "Basic eDp5")]);
    let (_, outcome) = run(&gw, &store, &mut parts, now());
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert!(parts.headers.get("authorization").is_none());
    let mut parts = request(Method::GET, "/open", &[("authorization", "Digest x")]);
    run(&gw, &store, &mut parts, now());
    assert_eq!(parts.headers["authorization"], "Digest x");
    // A route may pass it on, to a backend that authenticates callers itself.
    let mut doc = Document::load(DOC.as_bytes()).unwrap();
    doc.routes
        .iter_mut()
        .for_each(|r| r.pass_authorization = true);
    let gw = Gateway::compile(&doc, CLAIM_SECRET, None).unwrap();
    let mut parts = request(
        Method::GET,
        "/open",
        &[("authorization", "Bearer backend-token")],
    );
    run(&gw, &store, &mut parts, now());
    assert_eq!(parts.headers["authorization"], "Bearer backend-token");
}

#[test]
fn dot_segments_are_resolved_before_routing() {
    let gw = gateway();
    let store = MemoryCounterStore::new();
    for path in [
        "/open/../users/1",
        "/open/%2e%2e/users/1",
        "/open/%2E%2E/users/1",
    ] {
        let mut parts = request(Method::GET, path, &[]);
        let (_, outcome) = run(&gw, &store, &mut parts, now());
        let Outcome::Respond(response) = outcome else {
            panic!("{path} was forwarded without a key");
        };
        assert_eq!(response.status(), 401, "{path}");
    }
    let mut parts = request(Method::GET, "/open/a\\..\\b", &[]);
    let (_, outcome) = run(&gw, &store, &mut parts, now());
    assert!(matches!(outcome, Outcome::Respond(r) if r.status() == 400));
}

#[test]
fn invalid_documents_do_not_compile() {
    let bad = DOC.replace("/users/{*rest}", "/users/{*rest}/x");
    let doc = Document::from_json(bad.as_bytes()).unwrap();
    let err = Gateway::compile(&doc, CLAIM_SECRET, None).err().unwrap();
    assert_eq!(err.first().unwrap().field, "routes[0].paths[1]");
}

/// A counter store that is down.
struct DownStore;

impl crate::store::CounterStore for DownStore {
    async fn acquire(
        &self,
        _: &str,
        _: &[crate::quota::Bump],
    ) -> Result<crate::quota::Acquired, crate::store::StoreError> {
        Err(crate::store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }

    async fn peek(
        &self,
        _: &str,
        _: &[crate::quota::Bump],
    ) -> Result<[u64; 3], crate::store::StoreError> {
        Err(crate::store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }

    async fn reset(
        &self,
        _: &str,
        _: &[crate::quota::Bump],
    ) -> Result<(), crate::store::StoreError> {
        Err(crate::store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
}

#[test]
fn a_failed_counter_store_follows_the_quota_failure_policy() {
    let client = ClientInfo {
        addr: None,
        tls: false,
    };
    let open = gateway();
    let mut parts = request(Method::GET, "/users", &pair());
    let (ctx, outcome) = block_on(open.handle_request(
        &DownStore,
        &mut parts,
        &client,
        now(),
        RequestId::from_random(1),
    ));
    assert!(matches!(outcome, Outcome::Forward(_)), "open by default");
    assert!(ctx
        .quota_unchecked
        .as_deref()
        .unwrap()
        .contains("connection refused"));

    let closed = DOC.replace(
        r#""groups": ["default"] },"#,
        r#""groups": ["default"], "quotaFailure": "closed" },"#,
    );
    let closed = Gateway::compile(
        &Document::load(closed.as_bytes()).unwrap(),
        CLAIM_SECRET,
        None,
    )
    .unwrap();
    let mut parts = request(Method::GET, "/users", &pair());
    let (_, outcome) = block_on(closed.handle_request(
        &DownStore,
        &mut parts,
        &client,
        now(),
        RequestId::from_random(2),
    ));
    let (status, body, _) = error_of(outcome);
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("store_unavailable"))
    );
}
