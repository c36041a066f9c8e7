//! The core decision on the request path, at realistic sizes: route match,
//! key check (secret hash, constant-time compare), quota step (in-memory
//! counters), and the whole request phase (the three, plus target choice,
//! head rewrite and the signed claim).
//!
//! The `balancing` group: the decision on a public route of 8 targets, per
//! load-balancing strategy (the difference to `roundRobin` is what a
//! strategy costs per request).
//!
//! `log_counters` / `log_event`: the log phase after a call, without and
//! with its request event written (what events cost the proxy per call).
//!
//! Run: `cargo bench -p komainu-core --bench decision`.

#![allow(missing_docs)]

use std::borrow::Cow;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use http::{Method, Request};
use komainu_core::auth::Credentials;
use komainu_core::events::{Event, EventSink};
use komainu_core::gateway::response_headers;
use komainu_core::gateway::{ClientInfo, Decision, Exchange, RequestId, Timings};
use komainu_core::model::{ApiKey, Backend, Document, Group, Quotas, Route, Target};
use komainu_core::quota::Plan;
use komainu_core::routing::RouteTable;
use komainu_core::secret::{SecretHash, Verifier};
use komainu_core::store::MemoryCounterStore;
use komainu_core::{Gateway, Outcome};

const KEYS: usize = 100_000;
const NOW_MS: u64 = 1_795_000_000_000;

fn document(routes: usize) -> Document {
    let groups = (0..100).map(|g| Group {
        id: format!("g{g}"),
        name: String::new(),
        description: String::new(),
    });
    let routes = (0..routes).map(|i| Route {
        id: format!("r{i}"),
        hosts: if i % 2 == 0 {
            vec![format!("api{}.example.com", i % 50)]
        } else {
            vec![]
        },
        paths: vec![format!("/svc{i}"), format!("/svc{i}/{{*rest}}")],
        methods: if i % 3 == 0 {
            vec!["GET".into(), "POST".into()]
        } else {
            vec![]
        },
        backend: Backend {
            targets: vec![Target {
                url: format!("http://10.0.{}.{}:8080", i / 250, i % 250),
                weight: 1,
                backup: false,
            }],
            timeout_ms: Some(5_000),
            ..Backend::default()
        },
        public: false,
        groups: vec![format!("g{}", i % 100)],
        ..Route::default()
    });
    // One secret for all keys keeps set-up fast (each key's verifier is
    // still its own); lookups go through the full 100,000-entry index.
    let secret = SecretHash::from_secret(b"secret-of-the-bench-key-0123456789");
    let apikeys = (0..KEYS).map(|k| ApiKey {
        client_id: format!("client-{k}"),
        client_secret: None,
        client_secret_hash: Some(Verifier::new(&format!("client-{k}"), &secret).to_text()),
        client_secret_sealed: None,
        jwks: Vec::new(),
        jwt_algorithms: vec![komainu_core::model::HmacAlg::Hs256],
        name: String::new(),
        description: String::new(),
        tags: Vec::new(),
        metadata: Default::default(),
        read_only: false,
        allow_client_id_only: false,
        enabled: true,
        expires_at: None,
        routes: vec![],
        groups: vec![format!("g{}", k % 100)],
        quotas: Quotas {
            per_second: Some(u64::MAX / 2),
            per_day: Some(u64::MAX / 2),
            per_month: Some(u64::MAX / 2),
        },
        rotation: Default::default(),
    });
    Document {
        routes: routes.collect(),
        apikeys: apikeys.collect(),
        groups: groups.collect(),
        ..Document::default()
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match std::pin::pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("the memory store never waits"),
    }
}

fn bench(c: &mut Criterion) {
    let client = ClientInfo {
        addr: Some("192.0.2.1".parse().unwrap()),
        tls: false,
    };
    for routes in [10usize, 1_000, 10_000] {
        let doc = document(routes);
        let gateway = Gateway::compile(&doc, b"claim-secret", None).unwrap();
        let table = RouteTable::build(&doc.routes).unwrap();
        let counters = MemoryCounterStore::new();
        // A route in the middle of the table, a key sharing its group.
        let r = (routes / 2) | 1; // odd: a route for any host
        let k = (r % 100) + 100 * 7;
        let client_id = format!("client-{k}");
        let path = format!("/svc{r}/items/42");
        let template = Request::builder()
            .method(Method::GET)
            .uri(path.as_str())
            .header("host", "gateway.example.com")
            .header("komainu-client-id", client_id.as_str())
            .header(
                "komainu-client-secret",
                "secret-of-the-bench-key-0123456789",
            )
            .header("accept", "application/json")
            .header("user-agent", "bench/1.0")
            .body(())
            .unwrap()
            .into_parts()
            .0;

        let mut group = c.benchmark_group("decision");
        group.bench_with_input(BenchmarkId::new("route_match", routes), &routes, |b, _| {
            b.iter(|| {
                table
                    .find("gateway.example.com", &Method::GET, &path)
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("key_check", routes), &routes, |b, _| {
            let creds = Credentials::Secret {
                client_id: Cow::Borrowed(&client_id),
                secret: Cow::Borrowed(b"secret-of-the-bench-key-0123456789"),
                in_authorization: false,
            };
            b.iter(|| gateway.keys().authenticate(&creds, NOW_MS).unwrap().quotas)
        });
        group.bench_with_input(BenchmarkId::new("quota_step", routes), &routes, |b, _| {
            let quotas = gateway.keys().get(&client_id).unwrap().quotas;
            b.iter(|| {
                let plan = Plan::new(&quotas, NOW_MS);
                counters.acquire_now(&client_id, plan.bumps()).admitted
            })
        });
        group.bench_with_input(
            BenchmarkId::new("request_phase", routes),
            &routes,
            |b, _| {
                let mut n = 0u128;
                b.iter_batched_ref(
                    || template.clone(),
                    |parts| {
                        n += 1;
                        let (_, outcome) = block_on(gateway.handle_request(
                            &counters,
                            parts,
                            &client,
                            NOW_MS,
                            RequestId::from_random(n),
                        ));
                        assert!(matches!(outcome, Outcome::Forward(_)));
                    },
                    BatchSize::SmallInput,
                )
            },
        );
        // What the native HTTP/1 path asks of the core: the decision on a
        // head it does not rewrite, then the response headers.
        group.bench_with_input(BenchmarkId::new("decide", routes), &routes, |b, _| {
            let mut n = 0u128;
            b.iter(|| {
                n += 1;
                let (ctx, decision) = block_on(gateway.decide(
                    &counters,
                    &template,
                    &client,
                    NOW_MS,
                    RequestId::from_random(n),
                ));
                let Ok(Decision::Forward(forwarding)) = decision else {
                    panic!("the bench route forwards")
                };
                let mut bytes = 0;
                forwarding.added_headers(&template, &client, &ctx, |name, value| {
                    bytes += name.len() + value.len()
                });
                response_headers(&ctx, |name, value| bytes += name.len() + value.len());
                bytes
            })
        });
        // The log phase after a forwarded call: counters only (request
        // events off), and with the request event written as a native
        // proxy worker writes it (its CloudEvent at the end of a buffer).
        // The difference is what a request event costs the proxy.
        let (ctx, _) = block_on(gateway.decide(
            &counters,
            &template,
            &client,
            NOW_MS,
            RequestId::from_random(1),
        ));
        for (name, sink) in [
            ("log_counters", Writing::new(false)),
            ("log_event", Writing::new(true)),
        ] {
            group.bench_with_input(BenchmarkId::new(name, routes), &routes, |b, _| {
                b.iter(|| {
                    let wanted = sink.wanted;
                    gateway.log(
                        &ctx,
                        Exchange {
                            method: Some(&Method::GET),
                            host: if wanted {
                                "gateway.example.com".into()
                            } else {
                                String::new()
                            },
                            path: if wanted { path.clone() } else { String::new() },
                            status: 200,
                            error: None,
                            client_ip: client.addr,
                            bytes_in: 0,
                            bytes_out: 3,
                            attempts: 1,
                            timings: Timings {
                                total_us: 1_234,
                                head_us: 1_100,
                                backend_us: Some(1_000),
                            },
                        },
                        &sink,
                    );
                    sink.take()
                })
            });
        }
        group.finish();
    }
}

/// A sink that writes each event's CloudEvent into a buffer, as a native
/// proxy worker does with its chunk.
struct Writing {
    wanted: bool,
    out: std::cell::RefCell<String>,
}

impl Writing {
    fn new(wanted: bool) -> Self {
        Self {
            wanted,
            out: std::cell::RefCell::new(String::with_capacity(64 * 1024)),
        }
    }

    /// The bytes written since the last call.
    fn take(&self) -> usize {
        let mut out = self.out.borrow_mut();
        let n = out.len();
        out.clear();
        n
    }
}

impl EventSink for Writing {
    fn emit(&self, event: Event) {
        event.write_cloudevent("/komainu/bench", &mut self.out.borrow_mut());
    }

    fn wants_request_events(&self) -> bool {
        self.wanted
    }
}

fn bench_balancing(c: &mut Criterion) {
    let client = ClientInfo {
        addr: Some("192.0.2.1".parse().unwrap()),
        tls: false,
    };
    let counters = MemoryCounterStore::new();
    let template = Request::builder()
        .method(Method::GET)
        .uri("/lb/items/42")
        .header("host", "gateway.example.com")
        .header("x-user", "user-4711")
        .header("cookie", "theme=dark; sid=0123456789abcdef")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let mut group = c.benchmark_group("balancing");
    for (name, lb) in [
        ("roundRobin", serde_json::json!({})),
        ("random", serde_json::json!({ "strategy": "random" })),
        (
            "leastRequests",
            serde_json::json!({ "strategy": "leastRequests" }),
        ),
        ("hashClientIp", serde_json::json!({ "strategy": "hash" })),
        (
            "hashHeader",
            serde_json::json!({ "strategy": "hash", "header": "x-user" }),
        ),
        (
            "hashCookie",
            serde_json::json!({ "strategy": "hash", "cookie": "sid" }),
        ),
    ] {
        let targets: Vec<serde_json::Value> = (0..8)
            .map(|i| serde_json::json!({ "url": format!("http://10.0.0.{i}:8080"), "weight": 1 + i % 3 }))
            .collect();
        let doc: Document = serde_json::from_value(serde_json::json!({
            "format": 1,
            "routes": [{ "id": "lb", "paths": ["/lb/{*rest}"], "public": true,
                         "backend": { "targets": targets, "loadBalancing": lb } }],
        }))
        .unwrap();
        let gateway = Gateway::compile(&doc, b"claim-secret", None).unwrap();
        group.bench_function(BenchmarkId::new("decide", name), |b| {
            let mut n = 0u128;
            b.iter(|| {
                n += 1;
                let (_, decision) = block_on(gateway.decide(
                    &counters,
                    &template,
                    &client,
                    NOW_MS,
                    RequestId::from_random(n),
                ));
                let Ok(Decision::Forward(forwarding)) = decision else {
                    panic!("the bench route forwards")
                };
                forwarding.target.authority.as_str().len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_balancing);
criterion_main!(benches);
