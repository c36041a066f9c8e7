//! Admin handlers over the in-memory stores, with a manual clock.

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};

use super::*;
use crate::events::{AuditEvent, Event, EventData, EventSink};
use crate::model::{AdminKey, QuotaFailure};
use crate::secret::{SealingKey, SecretHash, Verifier};
use crate::store::{MemoryConfigStore, MemoryCounterStore};
use crate::testing::block_on;

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

struct Harness {
    config: MemoryConfigStore,
    counters: MemoryCounterStore,
    events: Recorder,
    keys: KeyIndex,
    sealing: SealingKey,
    sessions: SessionKey,
    now_ms: u64,
    calls: std::cell::Cell<u8>,
    live_revision: u64,
    throttle: crate::login::LoginThrottle,
    fetch: Option<FakeProvider>,
}

impl Harness {
    fn new() -> Self {
        Self {
            config: MemoryConfigStore::default(),
            counters: MemoryCounterStore::new(),
            events: Recorder::default(),
            keys: admin_key_index(
                &[AdminKey {
                    client_id: "ops".into(),
                    client_secret: Some("admin-secret".into()),
                    client_secret_hash: None,
                    client_secret_sealed: None,
                }],
                None,
            )
            .unwrap(),
            sealing: SealingKey::from_text("the-admin-tests-deployment-key-0123456789").unwrap(),
            sessions: SessionKey::from_material(b"the admin tests' sessions"),
            now_ms: 1_790_000_000_000,
            calls: std::cell::Cell::new(0),
            live_revision: 0,
            throttle: Default::default(),
            fetch: None,
        }
    }

    fn call_as(
        &self,
        secret: &str,
        method: Method,
        path: &str,
        body: Value,
    ) -> (StatusCode, Value, AdminReply) {
        let mut headers = HeaderMap::new();
        headers.insert("komainu-client-id", "ops".parse().unwrap());
        headers.insert("komainu-client-secret", secret.parse().unwrap());
        self.call_with(method, path, headers, body)
    }

    fn call_with(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Value,
    ) -> (StatusCode, Value, AdminReply) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        // The auth modules of the stored revision, as the live gateway
        // of an adapter would have them.
        let logins = crate::login::Directory::compile(
            &self.stored().unwrap_or_default(),
            Some(&self.sealing),
        );
        let ctx = AdminContext {
            config: &self.config,
            counters: &self.counters,
            events: &self.events,
            auth: AdminAuth {
                keys: &self.keys,
                sessions: Some(&self.sessions),
                logins: Some(&logins),
            },
            throttle: &self.throttle,
            fetch: self
                .fetch
                .as_ref()
                .map(|f| f as &crate::login::oidc::DynFetch),
            deployment: "native",
            proxy_port: None,
            claim_secret: b"claim",
            sealing: Some(&self.sealing),
            live_revision: self.live_revision,
            live: None,
            base_path: "",
            now_ms: self.now_ms,
            random: {
                self.calls.set(self.calls.get().wrapping_add(1));
                [self.calls.get(); 32]
            },
        };
        let req = AdminRequest {
            method: &method,
            path,
            query,
            headers: &headers,
            https: false,
            body: &body,
        };
        let reply = block_on(handle(&ctx, &req));
        let status = reply.response.status();
        let json = serde_json::from_str(reply.response.body()).unwrap_or(Value::Null);
        (status, json, reply)
    }

    fn call(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, json, _) = self.call_as("admin-secret", method, path, body);
        (status, json)
    }

    fn stored(&self) -> Option<Document> {
        block_on(self.config.load()).unwrap()
    }
}

fn route(id: &str) -> Value {
    json!({ "id": id, "paths": [format!("/{id}")], "backend": { "targets": [{ "url": "http://127.0.0.1:9000" }] } })
}

#[test]
fn without_admin_credentials_nothing_happens() {
    let h = Harness::new();
    let (status, body, reply) = h.call_as("wrong", Method::POST, "/api/routes", route("a"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
    assert!(reply.applied.is_none());
    assert_eq!(h.stored(), None);
    assert_eq!(
        h.call_as("wrong", Method::GET, "/api/health", Value::Null)
            .0,
        StatusCode::OK
    );
}

#[test]
fn route_crud_bumps_the_revision_and_compiles() {
    let h = Harness::new();
    let (status, body, reply) = h.call_as("admin-secret", Method::POST, "/api/routes", route("a"));
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(reply.response.headers()["location"], "/api/routes/a");
    assert_eq!(reply.applied.unwrap().revision(), 1);
    assert_eq!(
        h.call(Method::POST, "/api/routes", route("a")).0,
        StatusCode::CONFLICT
    );
    let (status, body) = h.call(
        Method::PATCH,
        "/api/routes/a",
        json!({ "methods": ["GET"], "name": null }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["methods"], json!(["GET"]));
    assert_eq!(
        h.call(Method::GET, "/api/routes/a", Value::Null).1["methods"],
        json!(["GET"])
    );
    assert_eq!(
        h.call(Method::GET, "/api/routes", Value::Null)
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.call(Method::DELETE, "/api/routes/a", Value::Null).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.call(Method::GET, "/api/routes/a", Value::Null).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(h.stored().unwrap().revision, 3);
    let events = h.events.0.lock().unwrap();
    let audits: Vec<&AuditEvent> = events
        .iter()
        .filter_map(|e| match &e.data {
            EventData::Audit(a) => Some(a),
            _ => None,
        })
        .collect();
    let actions: Vec<&str> = audits.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["route.create", "route.patch", "route.delete"]);
    assert_eq!(audits[0].actor, "ops");
    assert_eq!(events[0].type_name(), "io.komainu.audit.route.create.v1");
    assert_ne!(events[0].id, events[1].id);
}

#[test]
fn rejected_changes_name_the_field_and_change_nothing() {
    let h = Harness::new();
    h.call(Method::POST, "/api/routes", route("a"));
    let before = h.stored();
    let cases = [
        (
            json!({ "id": "b", "paths": ["/b"], "backend": {}, "colour": 1 }),
            "colour",
        ),
        (json!({ "id": "b", "paths": "/b", "backend": {} }), "paths"),
        (
            json!({ "id": "b", "paths": ["/b/{"], "backend": {} }),
            "paths[0]",
        ),
        (
            json!({ "id": "b", "paths": ["/b"], "backend": { "targets": [{ "url": "ftp://x" }] } }),
            "backend.targets[0].url",
        ),
        (
            json!({ "id": "b", "paths": ["/b"], "backend": {}, "groups": ["nope"] }),
            "groups[0]",
        ),
    ];
    for (body, field) in cases {
        let (status, reply) = h.call(Method::POST, "/api/routes", body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["field"], field, "{reply}");
    }
    let (status, reply) = h.call(Method::PATCH, "/api/routes/a", json!({ "id": "renamed" }));
    assert_eq!(
        (status, reply["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id"))
    );
    assert_eq!(h.stored(), before);
}

#[test]
fn keys_get_a_generated_secret_once_and_keep_it_on_patch() {
    let h = Harness::new();
    let (status, body) = h.call(
        Method::POST,
        "/api/apikeys",
        json!({ "clientId": "app", "quotas": { "perDay": 5 } }),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["clientSecret"].as_str().unwrap().to_owned();
    assert!(body.get("clientSecretHash").is_none());
    let (_, shown) = h.call(Method::GET, "/api/apikeys/app", Value::Null);
    assert!(shown.get("clientSecret").is_none() && shown.get("clientSecretHash").is_none());
    h.call(
        Method::PATCH,
        "/api/apikeys/app",
        json!({ "quotas": { "perDay": 9 } }),
    );
    let doc = h.stored().unwrap();
    let hash = Verifier::parse(doc.apikeys[0].client_secret_hash.as_deref().unwrap()).unwrap();
    assert!(hash.verify("app", secret.as_bytes()));
    let sealed = doc.apikeys[0].client_secret_sealed.as_deref().unwrap();
    assert_eq!(
        h.sealing.open("app", sealed).unwrap(),
        SecretHash::from_secret(secret.as_bytes())
    );
    assert_eq!(doc.apikeys[0].quotas.per_day, Some(9));
    let (_, report) = h.call(Method::GET, "/api/apikeys/app/quotas", Value::Null);
    assert_eq!(report["windows"][0]["remaining"], 9);
}

#[test]
fn rotation_with_grace_keeps_the_old_secret_for_a_while() {
    let h = Harness::new();
    let (_, created) = h.call(Method::POST, "/api/apikeys", json!({ "clientId": "app" }));
    let old = created["clientSecret"].as_str().unwrap().to_owned();
    let (status, rotated) = h.call(
        Method::POST,
        "/api/apikeys/app/rotate",
        json!({ "graceSeconds": 60 }),
    );
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    let doc = h.stored().unwrap();
    let gw = Gateway::compile(&doc, b"claim", Some(&h.sealing)).unwrap();
    let pair = |s: &str| crate::auth::Credentials::Secret {
        client_id: "app".into(),
        secret: std::borrow::Cow::Owned(s.as_bytes().to_vec()),
        in_authorization: false,
    };
    assert!(gw.keys().authenticate(&pair(&new), h.now_ms).is_ok());
    assert!(gw
        .keys()
        .authenticate(&pair(&old), h.now_ms + 59_000)
        .is_ok());
    assert!(gw
        .keys()
        .authenticate(&pair(&old), h.now_ms + 60_000)
        .is_err());
    let (_, again) = h.call(Method::POST, "/api/apikeys/app/rotate", Value::Null);
    let doc = h.stored().unwrap();
    let gw = Gateway::compile(&doc, b"claim", Some(&h.sealing)).unwrap();
    assert!(
        gw.keys().authenticate(&pair(&new), h.now_ms).is_err(),
        "no grace: refused at once"
    );
    assert!(gw
        .keys()
        .authenticate(&pair(again["clientSecret"].as_str().unwrap()), h.now_ms)
        .is_ok());
}

#[test]
fn groups_in_use_cannot_be_deleted() {
    let h = Harness::new();
    h.call(Method::POST, "/api/groups", json!({ "id": "g" }));
    let mut r = route("a");
    r["groups"] = json!(["g"]);
    assert_eq!(
        h.call(Method::POST, "/api/routes", r).0,
        StatusCode::CREATED
    );
    let (status, body) = h.call(Method::DELETE, "/api/groups/g", Value::Null);
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["message"].as_str().unwrap().contains("route \"a\""));
}

#[test]
fn import_is_all_or_nothing_and_export_has_no_clear_secret() {
    let h = Harness::new();
    h.call(Method::POST, "/api/routes", route("keep"));
    let good = json!({ "format": 1, "routes": [route("x")], "apikeys": [{ "clientId": "k", "clientSecret": "plain-secret-0123456" }] });
    let mut bad = good.clone();
    bad["routes"] =
        json!([route("x"), route("y"), { "id": "z", "paths": ["nope"], "backend": {} }]);
    let before = h.stored();
    let (status, body) = h.call(Method::POST, "/api/import", bad);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "routes[2].paths[0]");
    assert_eq!(h.stored(), before);

    let (status, body) = h.call(Method::POST, "/api/import?merge=true", good.clone());
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["routes"], 2);
    let (status, body) = h.call(Method::POST, "/api/import", good);
    assert_eq!((status, body["routes"].as_u64()), (StatusCode::OK, Some(1)));
    let (_, export) = h.call(Method::GET, "/api/export", Value::Null);
    let text = export.to_string();
    assert!(!text.contains("plain-secret-0123456"));
    assert!(export["apikeys"][0]["clientSecretHash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert!(export["apikeys"][0]["clientSecretSealed"]
        .as_str()
        .unwrap()
        .starts_with(&format!("sealed-v1:{}:", h.sealing.id())));
}

#[test]
fn an_emptied_shared_store_is_not_overwritten_by_a_partial_change() {
    let mut h = Harness::new();
    h.live_revision = 12;
    let (status, body) = h.call(Method::POST, "/api/routes", route("a"));
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["message"].as_str().unwrap().contains("revision 12"));
    assert_eq!(h.stored(), None);
    let (status, _) = h.call(
        Method::POST,
        "/api/import?merge=true",
        json!({ "format": 1 }),
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, body) = h.call(
        Method::POST,
        "/api/import",
        json!({ "format": 1, "routes": [route("a")] }),
    );
    assert_eq!(
        status,
        StatusCode::OK,
        "a full import restores the store: {body}"
    );
}

#[test]
fn a_merge_import_keeps_the_settings_it_does_not_name() {
    let h = Harness::new();
    let full = json!({ "format": 1, "routes": [route("x")],
        "settings": { "quotaFailure": "closed", "claimTtlSeconds": 120 } });
    let (status, body) = h.call(Method::POST, "/api/import", full);
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h.call(
        Method::POST,
        "/api/import?merge=true",
        json!({ "format": 1, "routes": [route("y")] }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = h.stored().unwrap();
    assert_eq!(doc.routes.len(), 2);
    assert_eq!(doc.settings.quota_failure, QuotaFailure::Closed, "kept");
    assert_eq!(doc.settings.claim_ttl_seconds, 120, "kept");
    let (status, body) = h.call(
        Method::POST,
        "/api/import?merge=true",
        json!({ "format": 1, "settings": { "claimTtlSeconds": 30 } }),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let doc = h.stored().unwrap();
    assert_eq!(doc.settings.claim_ttl_seconds, 30, "named, changed");
    assert_eq!(
        doc.settings.quota_failure,
        QuotaFailure::Closed,
        "not named, kept"
    );
}

#[test]
fn a_session_opened_with_the_admin_key_reads_and_writes_with_its_csrf_value() {
    let h = Harness::new();
    let (status, json, reply) =
        h.call_as("admin-secret", Method::POST, "/api/session", Value::Null);
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let cookie = reply.response.headers()[http::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("komainu_session=")
        .unwrap()
        .to_owned();
    let csrf = json["csrfToken"].as_str().unwrap().to_owned();
    let with_cookie = |csrf: Option<&str>| {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("komainu_session={token}").parse().unwrap(),
        );
        if let Some(csrf) = csrf {
            headers.insert("komainu-csrf", csrf.parse().unwrap());
        }
        headers
    };
    let (status, json, _) =
        h.call_with(Method::GET, "/api/session", with_cookie(None), Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["actor"], "ops");
    assert_eq!(json["csrfToken"], csrf.as_str());
    let (status, _, _) = h.call_with(Method::GET, "/api/routes", with_cookie(None), Value::Null);
    assert_eq!(status, StatusCode::OK);
    // A write without the CSRF value (or with another one): refused, nothing stored.
    let route = json!({"id": "r", "paths": ["/r"], "backend": {"targets": [{"url": "http://127.0.0.1:9"}]}});
    for bad in [None, Some("not-the-value")] {
        let (status, json, _) =
            h.call_with(Method::POST, "/api/routes", with_cookie(bad), route.clone());
        assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
        assert_eq!(json["error"], "csrf");
        assert!(h.stored().is_none());
    }
    let (status, json, _) =
        h.call_with(Method::POST, "/api/routes", with_cookie(Some(&csrf)), route);
    assert_eq!(status, StatusCode::CREATED, "{json}");
    // The audit event names the admin key the session came from.
    assert!(h.events.0.lock().unwrap().iter().any(|e| matches!(
        &e.data, EventData::Audit(a) if a.actor == "ops" && a.action == "route.create"
    )));
    // Logging out clears the cookie.
    let (status, _, reply) = h.call_with(
        Method::DELETE,
        "/api/session",
        with_cookie(Some(&csrf)),
        Value::Null,
    );
    assert_eq!(status, StatusCode::OK);
    assert!(reply.response.headers()[http::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[test]
fn a_session_ends_with_its_time_and_is_refused_when_forged() {
    let mut h = Harness::new();
    let (_, _, reply) = h.call_as("admin-secret", Method::POST, "/api/session", Value::Null);
    let cookie = reply.response.headers()[http::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let headers = |cookie: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, cookie.parse().unwrap());
        headers
    };
    // Signed with another key: refused.
    let forged = session::Session::start(
        session::Principal::Key("ops".into()),
        h.now_ms,
        session::LIFETIME_MS,
        &[9; 32],
    )
    .token(&SessionKey::from_material(b"someone else's"));
    let (status, json, _) = h.call_with(
        Method::GET,
        "/api/routes",
        headers(&format!("komainu_session={forged}")),
        Value::Null,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    // Past its lifetime: refused.
    h.now_ms += session::LIFETIME_MS;
    let (status, _, _) = h.call_with(Method::GET, "/api/routes", headers(&cookie), Value::Null);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A session cannot open another one, and no cookie is no access.
    let (status, _, _) = h.call_with(Method::GET, "/api/routes", HeaderMap::new(), Value::Null);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn a_write_another_sites_page_sends_is_refused_even_with_the_key() {
    let h = Harness::new();
    let headers = |site: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("komainu-client-id", "ops".parse().unwrap());
        headers.insert("komainu-client-secret", "admin-secret".parse().unwrap());
        headers.insert("sec-fetch-site", site.parse().unwrap());
        headers
    };
    for site in ["cross-site", "same-site"] {
        let (status, json, _) = h.call_with(
            Method::POST,
            "/api/groups",
            headers(site),
            json!({"id": "g"}),
        );
        assert_eq!(status, StatusCode::FORBIDDEN, "{site}");
        assert_eq!(json["error"], "csrf");
        assert!(h.stored().is_none());
        // Reading is no change.
        let (status, _, _) = h.call_with(Method::GET, "/api/groups", headers(site), Value::Null);
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = h.call_with(
        Method::POST,
        "/api/groups",
        headers("same-origin"),
        json!({"id": "g"}),
    );
    assert_eq!(status, StatusCode::CREATED);
}

fn staff_module() -> Value {
    json!({
        "id": "staff",
        "name": "Staff",
        "kind": "local",
        "users": [
            { "username": "alice", "password": "alice's password", "roles": ["admin"], "email": "alice@example.com" },
            { "username": "bob", "password": "bob's password", "roles": ["viewer"] },
            { "username": "carol", "password": "carol's password" }
        ]
    })
}

/// Logs `username` in; the session cookie and its CSRF value.
fn login(
    h: &Harness,
    username: &str,
    password: &str,
) -> (StatusCode, Value, Option<(String, String)>) {
    let (status, json, reply) = h.call_with(
        Method::POST,
        "/api/login/staff",
        HeaderMap::new(),
        json!({ "username": username, "password": password }),
    );
    let cookie = reply
        .response
        .headers()
        .get(http::header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let csrf = json["csrfToken"].as_str().map(str::to_owned);
    (status, json, cookie.zip(csrf))
}

fn with_session(cookie: &(String, String)) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, cookie.0.parse().unwrap());
    headers.insert("komainu-csrf", cookie.1.parse().unwrap());
    headers
}

#[test]
fn local_users_log_in_with_a_role_and_their_changes_name_them() {
    let h = Harness::new();
    let (status, json) = h.call(Method::POST, "/api/auth-modules", staff_module());
    assert_eq!(status, StatusCode::CREATED, "{json}");
    // Neither the clear password nor its hash is shown.
    let text = json.to_string();
    assert!(
        !text.contains("password\"") && !text.contains("argon2"),
        "{text}"
    );
    assert_eq!(json["users"][0]["passwordSet"], true);
    let stored = h.stored().unwrap();
    assert!(stored.auth_modules[0].users[0]
        .password_hash
        .as_deref()
        .unwrap()
        .starts_with("$argon2id$"));
    // The login page needs no credentials to list the modules.
    let (status, json, _) = h.call_with(Method::GET, "/api/login", HeaderMap::new(), Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json["modules"],
        json!([{"id": "staff", "name": "Staff", "kind": "local"}])
    );

    let (status, json, none) = login(&h, "alice", "wrong password");
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    assert!(none.is_none(), "no session for a wrong password");
    let (status, json, _) = login(&h, "nobody", "alice's password");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    // Logged in, but no role on the admin API: no session either.
    let (status, json, none) = login(&h, "carol", "carol's password");
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("no_role"))
    );
    assert!(none.is_none());

    let (status, json, alice) = login(&h, "alice", "alice's password");
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["role"], "admin");
    assert_eq!(json["actor"], "alice@example.com");
    assert_eq!(json["user"]["subject"], "alice");
    let alice = alice.unwrap();
    let (status, json, _) = h.call_with(
        Method::GET,
        "/api/session",
        with_session(&alice),
        Value::Null,
    );
    assert_eq!(
        (status, json["role"].as_str()),
        (StatusCode::OK, Some("admin"))
    );
    let (status, json, _) = h.call_with(
        Method::POST,
        "/api/routes",
        with_session(&alice),
        route("r1"),
    );
    assert_eq!(status, StatusCode::CREATED, "{json}");
    let audit = h
        .events
        .0
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| match &e.data {
            EventData::Audit(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(audit.actor, "alice@example.com");
    assert_eq!(
        audit.user.as_ref().map(|u| u.subject.as_str()),
        Some("alice")
    );
    assert_eq!(
        audit.user.as_ref().map(|u| u.module.as_str()),
        Some("staff")
    );

    // A viewer reads, and every write is refused.
    let (_, _, bob) = login(&h, "bob", "bob's password");
    let bob = bob.unwrap();
    let (status, _, _) = h.call_with(Method::GET, "/api/routes", with_session(&bob), Value::Null);
    assert_eq!(status, StatusCode::OK);
    let revision = h.stored().unwrap().revision;
    for (method, path, body) in [
        (Method::POST, "/api/routes", route("r2")),
        (Method::DELETE, "/api/routes/r1", Value::Null),
        (Method::POST, "/api/import", json!({"format": 1})),
        (
            Method::POST,
            "/api/auth-modules/staff/revoke-sessions",
            Value::Null,
        ),
        (Method::GET, "/api/export", Value::Null),
    ] {
        let (status, json, _) = h.call_with(method.clone(), path, with_session(&bob), body);
        assert_eq!(
            (status, json["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("read_only")),
            "{method} {path}: {json}"
        );
    }
    assert_eq!(h.stored().unwrap().revision, revision, "nothing changed");
    let (status, _, _) = h.call_with(
        Method::DELETE,
        "/api/session",
        with_session(&bob),
        Value::Null,
    );
    assert_eq!(status, StatusCode::OK, "a viewer logs out");
}

#[test]
fn a_new_password_a_removed_user_or_a_revocation_ends_sessions() {
    let h = Harness::new();
    h.call(Method::POST, "/api/auth-modules", staff_module());
    let (_, _, alice) = login(&h, "alice", "alice's password");
    let alice = alice.unwrap();
    let (_, _, bob) = login(&h, "bob", "bob's password");
    let bob = bob.unwrap();
    // A replacement that sends no password keeps it (and the session).
    let mut module = staff_module();
    module["users"][0]
        .as_object_mut()
        .unwrap()
        .remove("password");
    module["users"][1]["password"] = json!("bob's new password");
    let (status, json) = h.call(Method::PUT, "/api/auth-modules/staff", module);
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, _, _) = h.call_with(
        Method::GET,
        "/api/routes",
        with_session(&alice),
        Value::Null,
    );
    assert_eq!(status, StatusCode::OK, "alice's password did not change");
    let (status, _, _) = h.call_with(Method::GET, "/api/routes", with_session(&bob), Value::Null);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "bob's did");
    let (status, _, _) = login(&h, "bob", "bob's new password");
    assert_eq!(status, StatusCode::CREATED);
    // Revoking the module's sessions ends alice's.
    let (status, json) = h.call(
        Method::POST,
        "/api/auth-modules/staff/revoke-sessions",
        Value::Null,
    );
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, _, _) = h.call_with(
        Method::GET,
        "/api/routes",
        with_session(&alice),
        Value::Null,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A session opened later holds; removing the module ends it.
    let mut h = h;
    h.now_ms += 1_000;
    let (_, _, alice) = login(&h, "alice", "alice's password");
    let alice = alice.unwrap();
    let (status, _, _) = h.call_with(
        Method::GET,
        "/api/routes",
        with_session(&alice),
        Value::Null,
    );
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.call(Method::DELETE, "/api/auth-modules/staff", Value::Null);
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = h.call_with(
        Method::GET,
        "/api/routes",
        with_session(&alice),
        Value::Null,
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn repeated_wrong_passwords_are_throttled() {
    let h = Harness::new();
    h.call(Method::POST, "/api/auth-modules", staff_module());
    for _ in 0..crate::login::FREE_FAILURES {
        let (status, _, _) = login(&h, "alice", "guess");
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, json, reply) = h.call_with(
        Method::POST,
        "/api/login/staff",
        HeaderMap::new(),
        json!({ "username": "alice", "password": "guess" }),
    );
    assert_eq!(
        (status, json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts"))
    );
    assert_eq!(reply.response.headers()[http::header::RETRY_AFTER], "1");
    // Locked out: even the right password waits.
    let (status, _, none) = login(&h, "alice", "alice's password");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(none.is_none());
    // Another user is not locked out.
    let (status, _, _) = login(&h, "bob", "bob's password");
    assert_eq!(status, StatusCode::CREATED);
}

#[test]
fn bad_auth_modules_are_refused_naming_the_field() {
    let h = Harness::new();
    for (body, field) in [
        (json!({"id": "x", "kind": "ldap"}), "kind"),
        (
            json!({"id": "x", "kind": "oidc", "clientId": "c"}),
            "issuer",
        ),
        (
            json!({"id": "x", "kind": "oidc", "issuer": "http://idp.example.com", "clientId": "c"}),
            "issuer",
        ),
        (
            json!({"id": "x", "kind": "local", "users": [{"username": "a", "password": "short"}]}),
            "users[0].password",
        ),
        (
            json!({"id": "x", "kind": "local", "users": [{"username": "a"}]}),
            "users[0].password",
        ),
        (
            json!({"id": "x", "kind": "local", "users": [{"username": "a b", "password": "long enough"}]}),
            "users[0].username",
        ),
        (
            json!({"id": "x", "kind": "local", "users": [{"username": "a", "passwordHash": "$2b$10$abc"}]}),
            "users[0].passwordHash",
        ),
        (
            json!({"id": "x", "kind": "local", "issuer": "https://idp.example.com"}),
            "issuer",
        ),
        (
            json!({"id": "x", "kind": "local", "sessionSeconds": 5}),
            "sessionSeconds",
        ),
        (json!({"id": "x", "kind": "local", "colour": "red"}), ""),
    ] {
        let (status, json) = h.call(Method::POST, "/api/auth-modules", body.clone());
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {json}");
        assert!(
            json["field"].as_str().unwrap_or_default().contains(field),
            "{body}: {json}"
        );
    }
    assert!(h.stored().is_none_or(|d| d.auth_modules.is_empty()));
    // A password sent to an oidc module, a password form for it.
    let (status, json) = h.call(
        Method::POST,
        "/api/auth-modules",
        json!({"id": "corp", "kind": "oidc", "issuer": "https://idp.example.com", "clientId": "komainu", "clientSecret": "s3cret"}),
    );
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["clientSecretSet"], true);
    assert!(!json.to_string().contains("s3cret"));
    let stored = h.stored().unwrap();
    assert!(stored.auth_modules[0].client_secret_sealed.is_some());
    assert!(!serde_json::to_string(&stored).unwrap().contains("s3cret"));
}

#[test]
fn auth_modules_travel_in_export_and_import_without_a_clear_password() {
    let h = Harness::new();
    h.call(Method::POST, "/api/auth-modules", staff_module());
    let (status, export) = h.call(Method::GET, "/api/export", Value::Null);
    assert_eq!(status, StatusCode::OK);
    let text = export.to_string();
    assert!(!text.contains("alice's password"), "{text}");
    assert!(export["authModules"][0]["users"][0]["passwordHash"]
        .as_str()
        .unwrap()
        .starts_with("$argon2id$"));
    // Into another deployment: the same people log in there.
    let other = Harness::new();
    let (status, json) = other.call(Method::POST, "/api/import?dryRun=true", export.clone());
    assert_eq!(status, StatusCode::OK, "{json}");
    assert!(json.to_string().contains("auth-module"), "{json}");
    let (status, json) = other.call(Method::POST, "/api/import", export.clone());
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, _, _) = login(&other, "alice", "alice's password");
    assert_eq!(status, StatusCode::CREATED);
    // A full import without modules removes them.
    let (status, _) = other.call(Method::POST, "/api/import", json!({"format": 1}));
    assert_eq!(status, StatusCode::OK);
    assert!(other.stored().unwrap().auth_modules.is_empty());
}

/// An identity provider answering from memory: its discovery document,
/// an empty key set (tokens are HS256 with the client secret), and a token
/// endpoint answering what the test sets.
struct FakeProvider {
    token: std::sync::Mutex<Result<String, (u16, &'static str)>>,
}

const IDP: &str = "https://idp.test";
const IDP_CLIENT_SECRET: &str = "the-fake-provider-client-secret-0123456789";

impl crate::login::oidc::Fetch for FakeProvider {
    fn fetch(
        &self,
        request: crate::login::oidc::HttpRequest,
    ) -> crate::login::oidc::FetchFuture<'_> {
        let (status, body) = match request.uri().path() {
            "/.well-known/openid-configuration" => (
                200,
                json!({
                    "issuer": IDP,
                    "authorization_endpoint": format!("{IDP}/auth"),
                    "token_endpoint": format!("{IDP}/token"),
                    "jwks_uri": format!("{IDP}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["HS256", "RS256"],
                })
                .to_string(),
            ),
            "/jwks" => (200, r#"{"keys":[]}"#.to_owned()),
            "/token" => {
                // The client authenticates with Basic.
                let basic = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let form = String::from_utf8_lossy(request.body()).into_owned();
                assert!(basic.starts_with("Basic "), "{basic}");
                assert!(form.contains("code_verifier="), "PKCE: {form}");
                match &*self.token.lock().unwrap() {
                    Ok(t) => (
                        200,
                        json!({"access_token": "at", "token_type": "Bearer", "id_token": t})
                            .to_string(),
                    ),
                    Err((status, error)) => (
                        *status,
                        json!({"error": error, "error_description": "as the test asked"})
                            .to_string(),
                    ),
                }
            }
            _ => (404, String::new()),
        };
        Box::pin(async move {
            Ok(http::Response::builder()
                .status(status)
                .body(body.into_bytes())
                .unwrap())
        })
    }
}

/// An HS256 JWT over `claims`, signed with `secret`.
fn hs256(claims: &Value, secret: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let signing_input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(&mac.finalize().into_bytes()))
}

fn query_of(url: &str, name: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    openidconnect::url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A harness with the fake provider and an `oidc` module `corp` for it.
fn with_provider() -> Harness {
    let mut h = Harness::new();
    h.fetch = Some(FakeProvider {
        token: std::sync::Mutex::new(Err((400, "invalid_grant"))),
    });
    let (status, json) = h.call(
        Method::POST,
        "/api/auth-modules",
        json!({
            "id": "corp", "kind": "oidc", "issuer": IDP, "clientId": "komainu",
            "clientSecret": IDP_CLIENT_SECRET, "rolesClaim": "groups",
            "adminRoles": ["ops"], "allowedEmailDomains": ["example.com"],
        }),
    );
    assert_eq!(status, StatusCode::CREATED, "{json}");
    h
}

/// Starts a login: the provider's URL and the login's cookie.
fn start_login(h: &Harness) -> (String, String) {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, "admin.test".parse().unwrap());
    let (status, _, reply) = h.call_with(
        Method::GET,
        "/api/login/corp?back=%23%2Froutes",
        headers,
        Value::Null,
    );
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = reply.response.headers()[http::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = reply.response.headers()[http::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    (location, cookie.split(';').next().unwrap().to_owned())
}

fn callback(h: &Harness, query: &str, cookie: Option<&str>) -> (StatusCode, Value, AdminReply) {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, "admin.test".parse().unwrap());
    if let Some(c) = cookie {
        headers.insert(http::header::COOKIE, c.parse().unwrap());
    }
    h.call_with(
        Method::GET,
        &format!("/api/login/corp/callback?{query}"),
        headers,
        Value::Null,
    )
}

fn good_claims(h: &Harness, nonce: &str) -> Value {
    let now = h.now_ms / 1000;
    json!({
        "iss": IDP, "aud": "komainu", "sub": "ann", "iat": now, "exp": now + 300,
        "nonce": nonce, "email": "ann@example.com", "email_verified": true,
        "name": "Ann", "groups": ["ops", "dev"],
    })
}

#[test]
fn a_provider_login_checks_state_code_and_id_token() {
    let h = with_provider();
    let (location, cookie) = start_login(&h);
    assert!(location.starts_with(&format!("{IDP}/auth?")), "{location}");
    assert_eq!(
        query_of(&location, "redirect_uri"),
        "http://admin.test/api/login/corp/callback"
    );
    assert_eq!(query_of(&location, "code_challenge_method"), "S256");
    assert_eq!(query_of(&location, "response_type"), "code");
    let (state, nonce) = (query_of(&location, "state"), query_of(&location, "nonce"));
    assert!(state.len() >= 32 && nonce.len() >= 32 && state != nonce);
    let set = |claims: &Value, secret: &str| {
        *h.fetch.as_ref().unwrap().token.lock().unwrap() = Ok(hs256(claims, secret));
    };
    let refused = |claims: Value, secret: &str, why: &str, expect: &str| {
        set(&claims, secret);
        let (status, json, reply) = callback(&h, &format!("code=c&state={state}"), Some(&cookie));
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {json}");
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains(expect), "{why}: {message}");
        assert!(
            reply
                .response
                .headers()
                .get(http::header::SET_COOKIE)
                .is_none(),
            "{why}: no session"
        );
    };
    let good = good_claims(&h, &nonce);
    let mut c = good.clone();
    c["nonce"] = json!("another nonce");
    refused(c, IDP_CLIENT_SECRET, "a wrong nonce", "nonce mismatch");
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("nonce");
    refused(c, IDP_CLIENT_SECRET, "no nonce", "missing nonce");
    let mut c = good.clone();
    c["iss"] = json!("https://evil.test");
    refused(c, IDP_CLIENT_SECRET, "another issuer", "Invalid issuer");
    let mut c = good.clone();
    c["aud"] = json!("someone-else");
    refused(
        c,
        IDP_CLIENT_SECRET,
        "another audience",
        "Invalid audiences",
    );
    let mut c = good.clone();
    c["exp"] = json!(h.now_ms / 1000 - 10);
    refused(c, IDP_CLIENT_SECRET, "expired", "Expired");
    refused(
        good.clone(),
        "not-the-client-secret-at-all-0123456789",
        "a forged signature",
        "Signature verification failed",
    );
    // The provider refuses the code (already used, or stolen).
    *h.fetch.as_ref().unwrap().token.lock().unwrap() = Err((400, "invalid_grant"));
    let (status, json, _) = callback(&h, &format!("code=c&state={state}"), Some(&cookie));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        json["message"].as_str().unwrap().contains("invalid_grant"),
        "{json}"
    );
    // State: missing, wrong, no login cookie, a tampered cookie.
    set(&good, IDP_CLIENT_SECRET);
    for (query, cookie) in [
        ("code=c".to_owned(), Some(cookie.as_str())),
        ("code=c&state=guessed".to_owned(), Some(cookie.as_str())),
        (format!("code=c&state={state}"), None),
        (
            format!("code=c&state={state}"),
            Some("komainu_login=eyJ4IjoxfQ.AAAA"),
        ),
        (
            format!("code=c&state={state}&redirect=https://evil.test/"),
            Some(cookie.as_str()),
        ),
    ] {
        let (status, json, reply) = callback(&h, &query, cookie);
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{query} {cookie:?}: {json}"
        );
        assert!(reply
            .response
            .headers()
            .get(http::header::SET_COOKIE)
            .is_none());
    }
    // The provider said no.
    let (status, _, _) = callback(
        &h,
        &format!("error=access_denied&state={state}"),
        Some(&cookie),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // All good: a session, and back to the page the login started from.
    let (status, json, reply) = callback(
        &h,
        &format!("code=c&state={state}&iss={IDP}"),
        Some(&cookie),
    );
    assert_eq!(status, StatusCode::SEE_OTHER, "{json}");
    assert_eq!(
        reply.response.headers()[http::header::LOCATION],
        "/#/routes"
    );
    let cookies: Vec<String> = reply
        .response
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("komainu_session=") && c.contains("SameSite=Strict")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("komainu_login=;")),
        "the login's cookie is cleared: {cookies:?}"
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("komainu_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::COOKIE, session.parse().unwrap());
    let (status, me, _) = h.call_with(Method::GET, "/api/session", headers, Value::Null);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["role"].as_str(), me["actor"].as_str()),
        (Some("admin"), Some("ann@example.com"))
    );
    assert_eq!(me["user"]["roles"], json!(["ops", "dev"]));
    // A login older than 10 minutes is over.
    let mut late = h;
    late.now_ms += 11 * 60 * 1000;
    let mut c = good_claims(&late, &nonce);
    c["iat"] = json!(late.now_ms / 1000);
    *late.fetch.as_ref().unwrap().token.lock().unwrap() = Ok(hs256(&c, IDP_CLIENT_SECRET));
    let (status, _, _) = callback(&late, &format!("code=c&state={state}"), Some(&cookie));
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[test]
fn a_provider_login_refuses_other_domains_no_role_and_open_redirects() {
    let h = with_provider();
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, "admin.test".parse().unwrap());
    for back in [
        "https%3A%2F%2Fevil.test%2F",
        "%2F%2Fevil.test",
        "javascript%3Aalert(1)",
    ] {
        let (status, _, reply) = h.call_with(
            Method::GET,
            &format!("/api/login/corp?back={back}"),
            headers.clone(),
            Value::Null,
        );
        assert_eq!(status, StatusCode::BAD_REQUEST, "{back}");
        assert!(reply
            .response
            .headers()
            .get(http::header::LOCATION)
            .is_none());
    }
    for (change, code) in [
        (json!({"email": "eve@elsewhere.test"}), "not_allowed"),
        (json!({"email_verified": false}), "not_allowed"),
        (json!({"groups": ["dev"]}), "no_role"),
        (json!({"groups": "ops"}), ""),
    ] {
        let (location, cookie) = start_login(&h);
        let (state, nonce) = (query_of(&location, "state"), query_of(&location, "nonce"));
        let mut claims = good_claims(&h, &nonce);
        for (k, v) in change.as_object().unwrap() {
            claims[k] = v.clone();
        }
        *h.fetch.as_ref().unwrap().token.lock().unwrap() = Ok(hs256(&claims, IDP_CLIENT_SECRET));
        let (status, json, _) = callback(&h, &format!("code=c&state={state}"), Some(&cookie));
        if code.is_empty() {
            assert_eq!(
                status,
                StatusCode::SEE_OTHER,
                "a single role as a string: {json}"
            );
        } else {
            assert_eq!(
                (status, json["error"].as_str()),
                (StatusCode::FORBIDDEN, Some(code)),
                "{change}"
            );
        }
    }
    // A browser gets a page, with nothing of the message unescaped.
    let mut html = headers.clone();
    html.insert(http::header::ACCEPT, "text/html".parse().unwrap());
    let (status, _, reply) = h.call_with(
        Method::GET,
        "/api/login/corp/callback?state=%3Cscript%3E&code=x",
        html,
        Value::Null,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body = reply.response.body();
    assert!(
        body.contains("<h1>This login cannot go on</h1>") && !body.contains("<script>"),
        "{body}"
    );
    assert_eq!(
        reply.response.headers()[http::header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert!(reply
        .response
        .headers()
        .contains_key(http::header::CONTENT_SECURITY_POLICY));
}
