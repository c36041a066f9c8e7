//! The mapping of real Otoroshi exports (read from the shared data folder
//! beside the project, never copied into it).

use super::*;
use crate::migrate::Status;

fn export(name: &str) -> Vec<u8> {
    let dir = std::env::var("KOMAINU_OTOROSHI_DATA")
        .unwrap_or_else(|_| format!("{}/../../shared/data/otoroshi", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn entity<'a>(m: &'a Migration, kind: &str, id: &str) -> &'a EntityReport {
    m.report
        .entities
        .iter()
        .find(|e| e.kind == kind && e.id == id)
        .unwrap_or_else(|| panic!("no report for {kind} {id}: {:#?}", m.report))
}

fn route<'a>(doc: &'a Document, id: &str) -> &'a Route {
    doc.routes
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no route {id}"))
}

#[test]
fn new_engine_routes_keys_and_groups() {
    let m = from_export(&export("otoroshi-routes.json"), Some("secret")).unwrap();
    let doc = &m.document;
    doc.validate().unwrap();
    assert_eq!(m.report.summary.errors, 0, "{:#?}", m.report);
    // Groups.
    let groups: Vec<&str> = doc.groups.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(groups, ["default", "partners"]);
    // users-api: host + path prefix, stripped, header added, key needed.
    let users = route(doc, "route_4f1c2a8b3-7d2e-4c61-9a0b-5e8f7d6c1b2a");
    assert_eq!(users.hosts, ["api.oto.tools"]);
    assert_eq!(users.paths, ["/users", "/users/{*rest}"]);
    assert_eq!(users.strip_prefix.as_deref(), Some("/users"));
    assert!(!users.public);
    assert_eq!(users.request_headers.set["X-Users-Api"], "v2");
    assert_eq!(users.backend.targets[0].url, "http://users-1.internal:8080");
    // orders-api: the stored backend, root /v2, a backup target, custom headers.
    let orders = route(doc, "route_9b7e3d1c5-2a4f-4e88-b1c3-0d9e8f7a6b5c");
    assert_eq!(orders.backend.targets.len(), 2);
    assert_eq!(
        orders.backend.targets[0].url,
        "https://orders-1.internal:8443/v2"
    );
    assert!(orders.backend.targets[1].backup);
    let p = orders.otoroshi.as_ref().unwrap();
    assert_eq!(p.client_id_header.as_deref(), Some("api-key-header-id"));
    assert_eq!(
        p.client_secret_header.as_deref(),
        Some("api-key-header-secret")
    );
    // invoices: info token Latest, challenge V2, headers both ways.
    let invoices = route(doc, "route_5d4c3b2a1-0f9e-4d8c-b7a6-9e8d7c6b5a4f");
    let p = invoices.otoroshi.as_ref().unwrap();
    assert_eq!(p.info_token, Some(InfoToken::Latest));
    assert_eq!(p.challenge, Some(Challenge::V2));
    assert!(p.headers_in && p.headers_back);
    assert_eq!(p.audience.as_deref(), Some("invoices-api"));
    // portal: public, /api/ behind a key (a route of its own).
    let portal = route(doc, "route_1a2b3c4d5-6e7f-4a8b-9c0d-1e2f3a4b5c6d");
    assert!(portal.public);
    let api = doc
        .routes
        .iter()
        .find(|r| r.id.starts_with("route_1a2b3c4d5") && r.id != portal.id)
        .unwrap();
    assert!(!api.public);
    assert_eq!(api.paths, ["/api/{*rest}"]);
    // docs: no ApikeyCalls → public.
    assert!(route(doc, "route_7c6b5a4d3-2e1f-4b0a-8c9d-6e5f4a3b2c1d").public);
    // Keys: route_ and group_ entities, quotas, unlimited, disabled, expired.
    let key = |id: &str| doc.apikeys.iter().find(|k| k.client_id == id).unwrap();
    let users_app = key("xQ3bT9mLpV2cR7sK");
    assert_eq!(users_app.routes, std::slice::from_ref(&users.id));
    assert!(!users_app.quotas.is_limited(), "10000000 is unlimited");
    assert_eq!(users_app.tags, ["mobile"]);
    assert_eq!(users_app.metadata["team"], "users");
    assert_eq!(
        users_app.jwt_algorithms,
        [HmacAlg::Hs256, HmacAlg::Hs384, HmacAlg::Hs512],
        "Otoroshi's clients sign JWTs HS256, HS384 or HS512"
    );
    let partner = key("P4tN8rWq1ZyE6hJd");
    assert_eq!(partner.groups, ["partners"]);
    assert!(partner.allow_client_id_only);
    assert_eq!(partner.quotas.per_second, Some(50));
    assert_eq!(partner.quotas.per_day, Some(1000));
    assert_eq!(partner.quotas.per_month, Some(30000));
    let portal_app = key("kR8sL2dF5gH1jK4m");
    assert_eq!(portal_app.groups, ["default"]);
    assert!(!key("dA7fG3hJ9kL1zX5c").enabled);
    assert_eq!(
        key("mN4bV6cX8zL2kJ0h").expires_at.as_deref(),
        Some("2020-01-01T00:00:00Z")
    );
    // The secrets are there to be sealed when saved, never exported.
    let mut sealed = doc.clone();
    let deployment =
        crate::secret::SealingKey::from_text("a-deployment-key-of-at-least-32-characters").unwrap();
    sealed.seal_secrets(Some(&deployment));
    let json = sealed.to_export().to_json();
    assert!(!json.contains("Vb0q7RkX2mNc9TzL4hWp1sYd8GfJ3uQe6aKr5iHo0vCnZ2xMb7tLs9wPe4yDg1jF"));
    assert!(!json.contains("\"sharedKey\""));
    // The stored backend is reported as copied into its route.
    assert_eq!(
        entity(
            &m,
            "backends",
            "backend_3e2d1c0b9-8a7f-4e6d-a5c4-b3a2918f7e6d"
        )
        .status,
        Status::Dropped
    );
    // The gateway compiles it.
    crate::Gateway::compile(&sealed, b"claim-secret", Some(&deployment)).unwrap();
}

#[test]
fn a_recent_export_with_a_legacy_descriptor() {
    let m = from_export(&export("otoroshi-exposition.json"), Some("secret")).unwrap();
    m.document.validate().unwrap();
    let doc = &m.document;
    let admin = route(doc, "admin-api-service");
    // hosts + subdomain.domain (env prod), deduplicated.
    assert_eq!(admin.hosts, ["otoroshi-api.oto.tools"]);
    assert_eq!(admin.paths, ["/", "/{*rest}"]);
    // The Host header became the host override.
    assert_eq!(
        admin.host_override.as_deref(),
        Some("otoroshi-admin-internal-api.oto.tools")
    );
    let p = admin.otoroshi.as_ref().unwrap();
    assert_eq!(p.info_token, Some(InfoToken::Legacy));
    assert_eq!(p.challenge, Some(Challenge::V1));
    assert_eq!(p.ttl_seconds, 30);
    // publicPatterns /health and /metrics: public routes of their own.
    let public: Vec<&Route> = doc
        .routes
        .iter()
        .filter(|r| r.id.starts_with("admin-api-service~"))
        .collect();
    assert_eq!(public.len(), 2);
    assert!(public.iter().all(|r| r.public));
    assert_eq!(public[0].paths, ["/health"]);
    // The tunnel plugin has no equivalent: reported.
    let e = entity(&m, "routes", "route_dd78a69e0-26b7-4587-b9e1-a9073cd18868");
    assert_eq!(e.status, Status::Approximated);
    assert!(
        e.notes.iter().any(|n| n.contains("TunnelPlugin")),
        "{:?}",
        e.notes
    );
    // Certificates are dropped, with what to do.
    let certs = m
        .report
        .entities
        .iter()
        .filter(|e| e.kind == "certificates")
        .count();
    assert_eq!(certs, 5);
    // A key on the legacy group: both fields read.
    let key = doc
        .apikeys
        .iter()
        .find(|k| k.client_id == "g2PRCmiUapQarhDv")
        .unwrap();
    assert_eq!(key.groups, ["default"]);
}

#[test]
fn a_legacy_export() {
    let m = from_export(&export("otoroshi-state.json"), Some("secret")).unwrap();
    m.document.validate().unwrap();
    let doc = &m.document;
    // subdomain.domain for env prod, root /api/ on the target.
    let api = route(doc, "basicsetup-prod-tenant1-api");
    assert_eq!(api.hosts, ["api-tenant1.oto.tools"]);
    assert_eq!(
        api.backend.targets[0].url,
        "http://basicsetup-prod-instance-1:8080/api"
    );
    assert!(!api.public);
    assert_eq!(api.request_headers.set["BasicSetup-Tenant"], "tenant1");
    assert_eq!(api.backend.retries.attempts, 3);
    // publicPatterns /.* → public.
    assert!(route(doc, "kibana").public);
    // authorizedGroup only.
    let key = doc
        .apikeys
        .iter()
        .find(|k| k.client_id == "basicsetup-es-apikey")
        .unwrap();
    assert_eq!(key.groups, ["basicsetup-es"]);
}

#[test]
fn without_the_shared_key_otoroshis_default_is_used_and_said() {
    let m = from_export(&export("otoroshi-routes.json"), None).unwrap();
    assert_eq!(m.report.summary.errors, 0);
    assert_eq!(
        m.document.settings.otoroshi.shared_key.as_deref(),
        Some(OTOROSHI_DEFAULT_SHARED_KEY)
    );
    let said = entity(&m, "config", "app.claim.sharedKey");
    assert_eq!(said.status, Status::Approximated);
    assert!(said.notes[0].contains("--otoroshi-shared-key"), "{said:?}");
    // Without routes that sign, no key is set, nothing is said.
    let plain = serde_json::json!({ "serviceGroups": [{ "id": "g", "name": "G" }], "apiKeys": [] });
    let m = from_export(plain.to_string().as_bytes(), None).unwrap();
    assert!(m.document.settings.otoroshi.shared_key.is_none());
    assert!(m
        .report
        .entities
        .iter()
        .all(|e| e.id != "app.claim.sharedKey"));
}

#[test]
fn what_is_not_an_export_says_so() {
    assert!(from_export(b"not json", None)
        .unwrap_err()
        .0
        .contains("not JSON"));
    assert!(from_export(b"[]", None).is_err());
    let komainu = crate::model::Document::default().to_json();
    assert!(from_export(komainu.as_bytes(), None).is_err());
    assert!(from_export(br#"{"label":"x"}"#, None)
        .unwrap_err()
        .0
        .contains("none of"));
}

#[test]
fn bad_entities_are_reported() {
    let text = String::from_utf8(export("otoroshi-routes.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["apiKeys"][0]["clientSecret"] = "short".into();
    v["apiKeys"][1]["authorizedEntities"] = serde_json::json!(["group_nope", "route_nope"]);
    v["routes"][1]["backend_ref"] = "backend_missing".into();
    let m = from_export(v.to_string().as_bytes(), Some("secret")).unwrap();
    assert_eq!(
        entity(&m, "apiKeys", "xQ3bT9mLpV2cR7sK").status,
        Status::Error
    );
    let partner = entity(&m, "apiKeys", "P4tN8rWq1ZyE6hJd");
    assert!(
        partner.notes.iter().any(|n| n.contains("group_nope")),
        "{partner:?}"
    );
    assert!(
        partner.notes.iter().any(|n| n.contains("route_nope")),
        "{partner:?}"
    );
    let orders = entity(&m, "routes", "route_9b7e3d1c5-2a4f-4e88-b1c3-0d9e8f7a6b5c");
    assert_eq!(orders.status, Status::Error);
    assert_eq!(m.report.summary.errors, 2);
}

#[test]
fn path_patterns() {
    assert_eq!(pattern_paths("/.*"), Paths::All);
    assert_eq!(pattern_paths("^/.*$"), Paths::All);
    assert_eq!(
        pattern_paths("/health"),
        Paths::Some(vec!["/health".into()], true)
    );
    assert_eq!(
        pattern_paths("/api/.*"),
        Paths::Some(vec!["/api/{*rest}".into()], true)
    );
    assert_eq!(
        pattern_paths("/api.*"),
        Paths::Some(vec!["/api".into(), "/api/{*rest}".into()], false)
    );
    assert_eq!(pattern_paths("/users/[0-9]+"), Paths::Unsupported);
}

#[test]
fn one_route_per_path_each_stripped_and_the_legacy_domains() {
    let export = serde_json::json!({
        "serviceGroups": [],
        "serviceDescriptors": [{
            "id": "svc", "name": "svc", "env": "preprod", "domain": "oto.tools", "subdomain": "api",
            "hosts": [], "paths": ["/a"], "matchingRoot": "/b/", "stripPath": true,
            "targets": [{ "host": "10.0.0.1:8080", "scheme": "http" }],
            "enforceSecureCommunication": false, "forceHttps": false
        }, {
            "id": "bare", "name": "bare", "env": "prod", "domain": "example.com", "subdomain": "",
            "targets": [], "enforceSecureCommunication": false
        }],
        "routes": [{
            "id": "r", "name": "r",
            "frontend": { "domains": ["x.oto.tools/one", "y.oto.tools/two", "z.oto.tools/one"], "strip_path": true },
            "backend": { "targets": [{ "hostname": "10.0.0.2", "port": 80, "tls": false }], "root": "/" },
            "plugins": []
        }],
        "apiKeys": [{ "clientId": "k", "clientSecret": "a-secret-of-16-chars-or-more",
                      "authorizedEntities": ["route_r", "service_svc"] }]
    });
    let m = from_export(export.to_string().as_bytes(), None).unwrap();
    m.document.validate().unwrap();
    let doc = &m.document;
    let svc: Vec<&Route> = doc
        .routes
        .iter()
        .filter(|r| r.id.starts_with("svc"))
        .collect();
    assert_eq!(svc.len(), 2);
    assert_eq!(svc[0].hosts, ["api.preprod.oto.tools"]);
    assert_eq!(svc[0].strip_prefix.as_deref(), Some("/a"));
    assert_eq!(svc[1].strip_prefix.as_deref(), Some("/b"));
    assert_eq!(svc[1].paths, ["/b", "/b/{*rest}"]);
    assert!(svc
        .iter()
        .all(|r| r.otoroshi.as_ref().unwrap().info_token.is_none()));
    assert_eq!(route(doc, "bare").hosts, ["example.com"]);
    let r: Vec<&Route> = doc
        .routes
        .iter()
        .filter(|r| r.id.starts_with("r"))
        .collect();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].hosts, ["x.oto.tools", "z.oto.tools"]);
    assert_eq!(r[0].strip_prefix.as_deref(), Some("/one"));
    assert_eq!(r[1].hosts, ["y.oto.tools"]);
    let key = &doc.apikeys[0];
    assert_eq!(
        key.routes.len(),
        4,
        "every route made of its entities: {:?}",
        key.routes
    );
    // A descriptor without enforceSecureCommunication gets Otoroshi's default: on.
    let mut defaulted = export.clone();
    defaulted["serviceDescriptors"][0]
        .as_object_mut()
        .unwrap()
        .remove("enforceSecureCommunication");
    let m = from_export(defaulted.to_string().as_bytes(), Some("k")).unwrap();
    let p = route(&m.document, "svc").otoroshi.clone().unwrap();
    assert_eq!(p.info_token, Some(InfoToken::Legacy));
    assert_eq!(p.challenge, Some(Challenge::V1));
    assert!(p.headers_back, "sendOtoroshiHeadersBack defaults to true");
}
