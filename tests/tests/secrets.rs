//! Secrets at rest, tried as an attacker would: whoever holds an export, a
//! file store or a Redis dump (but not the deployment key) derives every
//! credential it can from them, and the gateway refuses every one.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use http::{Method, StatusCode};
use komainu_core::secret::SecretHash;
use komainu_e2e::gateway::{temp_dir, CLAIM_SECRET, SECRET_KEY};
use komainu_e2e::{jwt, Admin, Client, Komainu, RedisServer, Upstream, Worker};
use serde_json::{json, Value};

/// Every string in a JSON document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// What an attacker derives from dumped text: each string, its parts
/// around `:`, and the bytes they decode to (base64url or base64).
fn candidates(dumps: &[String]) -> (Vec<Vec<u8>>, Vec<SecretHash>) {
    let mut texts = Vec::new();
    for dump in dumps {
        match serde_json::from_str::<Value>(dump) {
            Ok(v) => strings(&v, &mut texts),
            Err(_) => texts.extend(dump.split_whitespace().map(str::to_owned)),
        }
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut states = Vec::new();
    for text in &texts {
        let mut parts = vec![text.clone()];
        parts.extend(text.split(':').map(str::to_owned));
        for part in parts {
            keys.push(part.as_bytes().to_vec());
            for decoded in [URL_SAFE_NO_PAD.decode(&part), STANDARD.decode(&part)]
                .into_iter()
                .flatten()
            {
                // A 64-byte blob could be an HMAC key state: finish HMACs
                // from it; any blob could be a key; so could its slices.
                if decoded.is_empty() {
                    continue;
                }
                for window in decoded.windows(64.min(decoded.len())) {
                    if let Some(state) = SecretHash::from_bytes(window) {
                        states.push(state);
                    }
                }
                for len in [16usize, 32, 64] {
                    for chunk in decoded.chunks(len) {
                        keys.push(chunk.to_vec());
                    }
                }
                keys.push(decoded);
            }
        }
    }
    keys.sort();
    keys.dedup();
    (keys, states)
}

/// A JWT "signed" with an HMAC key state taken from a dump.
fn forge_with_state(state: &SecretHash, payload: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(payload);
    let input = format!("{header}.{body}");
    let tag = state.mac(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Tries every credential form with every candidate, for every client id,
/// on the proxy and on the admin API: all refused.
/// Where a deployment answers: a proxied URL and the admin API's routes URL.
struct Target {
    proxy: String,
    admin_routes: String,
}

impl Target {
    fn native(gw: &Komainu, path: &str) -> Self {
        Self {
            proxy: gw.url(path),
            admin_routes: gw.admin_url("/api/routes"),
        }
    }
}

async fn nothing_in_the_dumps_calls(at: &Target, ids: &[&str], dumps: &[String]) {
    let (keys, states) = candidates(dumps);
    assert!(keys.len() > 10, "the dumps were read");
    let c = Client::default();
    let exp = jwt::now_s() + 600;
    let mut tried = 0usize;
    for id in ids {
        let payload = format!(r#"{{"iss":"{id}","sub":"{id}","exp":{exp}}}"#);
        let mut attempts: Vec<Vec<(&str, String)>> = Vec::new();
        for key in &keys {
            if let Ok(text) = std::str::from_utf8(key) {
                if !text.is_empty() && text.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                    attempts.push(vec![
                        ("komainu-client-id", (*id).to_owned()),
                        ("komainu-client-secret", text.to_owned()),
                    ]);
                    attempts.push(vec![(
                        "authorization",
                        format!("Basic {}", STANDARD.encode(format!("{id}:{text}"))),
                    )]);
                }
            }
            attempts.push(vec![(
                "authorization",
                format!("Bearer {}", jwt::sign(&payload, key)),
            )]);
        }
        for state in &states {
            attempts.push(vec![(
                "authorization",
                format!("Bearer {}", forge_with_state(state, &payload)),
            )]);
        }
        for headers in attempts {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = c.get(&at.proxy, &h).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{id} got in with {headers:?}"
            );
            let r = c.get(&at.admin_routes, &h).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{id} got into the admin API with {headers:?}"
            );
            tried += 2;
        }
    }
    assert!(tried > 100, "only {tried} attempts");
}

/// The configuration document as exported, as text (what an attacker holds).
async fn export_text(admin: &Admin) -> String {
    let body = admin
        .call(Method::GET, "/api/export", Value::Null)
        .await
        .body;
    String::from_utf8(body.to_vec()).expect("an export is UTF-8 JSON")
}

async fn populate(admin: &Admin, up: &Upstream) -> (String, String) {
    admin
        .call(Method::POST, "/api/routes", json!({ "id": "svc", "paths": ["/svc/{*rest}"], "backend": { "targets": [{ "url": up.url() }] } }))
        .await
        .expect_status(StatusCode::CREATED);
    let generated = admin
        .call(
            Method::POST,
            "/api/apikeys",
            json!({ "clientId": "gen", "routes": ["svc"] }),
        )
        .await
        .json()["clientSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .call(Method::POST, "/api/apikeys", json!({ "clientId": "given", "clientSecret": "a-given-secret-0123", "routes": ["svc"] }))
        .await
        .expect_status(StatusCode::CREATED);
    // A rotation with grace keeps the previous secret's forms too.
    let rotated = admin
        .call(
            Method::POST,
            "/api/apikeys/given/rotate",
            json!({ "graceSeconds": 3600 }),
        )
        .await
        .json()["clientSecret"]
        .as_str()
        .unwrap()
        .to_owned();
    (generated, rotated)
}

/// The real secrets work in every form: the refusals above are not a
/// gateway that refuses everything.
async fn real_secrets_work(url: &str, id: &str, secret: &str) {
    let c = Client::default();
    let token = jwt::sign(
        &format!(r#"{{"iss":"{id}","exp":{}}}"#, jwt::now_s() + 60),
        secret.as_bytes(),
    );
    for headers in [
        vec![
            ("komainu-client-id", id.to_owned()),
            ("komainu-client-secret", secret.to_owned()),
        ],
        vec![(
            "authorization",
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        )],
        vec![("authorization", format!("Bearer {token}"))],
    ] {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.get(url, &h).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{headers:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
}

#[tokio::test]
async fn an_export_and_a_file_store_give_no_usable_credential() {
    let up = Upstream::start().await;
    // No --admin-key: the generated admin key is kept in the store.
    let gw = Komainu::start_in(temp_dir(), &["--claim-secret", CLAIM_SECRET]);
    let printed = gw.wait_for_output("admin key (shown once");
    let admin_key = printed
        .split("admin key (shown once, stored hashed): ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_owned();
    let admin = Admin::new(&gw.admin_base())
        .with_auth(Some(&format!("Basic {}", STANDARD.encode(&admin_key))));
    let (generated, rotated) = populate(&admin, &up).await;
    real_secrets_work(&gw.url("/svc/x"), "gen", &generated).await;
    real_secrets_work(&gw.url("/svc/x"), "given", &rotated).await;
    real_secrets_work(&gw.url("/svc/x"), "given", "a-given-secret-0123").await;

    let export = export_text(&admin).await;
    let file = std::fs::read_to_string(gw.data_path()).unwrap();
    for dump in [&export, &file] {
        for secret in [&generated, &rotated] {
            assert!(!dump.contains(secret.as_str()));
        }
        assert!(!dump.contains("hmac-sha256:"), "no signing key is stored");
    }
    let key_file = std::fs::read_to_string(format!("{}.key", gw.data_path().display())).unwrap();
    assert!(!file.contains(key_file.trim()) && !export.contains(key_file.trim()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(format!("{}.key", gw.data_path().display()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    nothing_in_the_dumps_calls(
        &Target::native(&gw, "/svc/x"),
        &["gen", "given", "admin"],
        &[export, file],
    )
    .await;
}

#[tokio::test]
async fn a_redis_dump_gives_no_usable_credential() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let gw = Komainu::start_shared(&redis.url(), &["--secret-key", SECRET_KEY]);
    let admin = Admin::new(&gw.admin_base());
    let (generated, _) = populate(&admin, &up).await;
    real_secrets_work(&gw.url("/svc/x"), "gen", &generated).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut dump = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "hash" => redis::cmd("HVALS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "string" => vec![redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap()],
            _ => Vec::new(),
        };
        dump.extend(values);
    }
    assert!(
        dump.iter().any(|v| v.contains("\"gen\"")),
        "the configuration was dumped"
    );
    assert!(!dump
        .iter()
        .any(|v| v.contains(&generated) || v.contains("hmac-sha256:")));
    nothing_in_the_dumps_calls(&Target::native(&gw, "/svc/x"), &["gen", "given"], &dump).await;
}

/// The claim secret the gateway generates is kept sealed too: a copy of the
/// store does not let anyone sign claims backends would trust.
#[tokio::test]
async fn a_generated_claim_secret_is_stored_sealed() {
    let gw = Komainu::start_in(temp_dir(), &[]);
    gw.wait_for_output("admin key (shown once");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.data_path()).unwrap()).unwrap();
    let claim = stored["local"]["claimSecret"].as_str().unwrap().to_owned();
    assert!(claim.starts_with("sealed-v1:"), "{claim}");
    // It opens again after a restart: claims stay the same kind.
    let gw = gw.restart();
    let printed = gw.stdout.lock().unwrap().clone();
    assert!(!printed.contains("admin key (shown once"));
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.data_path()).unwrap()).unwrap();
    assert_eq!(
        stored["local"]["claimSecret"],
        claim.as_str(),
        "unchanged by a restart"
    );
}

/// At the edge: what the Worker exports lets nobody call it either.
#[tokio::test]
async fn an_export_of_the_worker_gives_no_usable_credential() {
    let up = Upstream::start().await;
    let worker = tokio::task::spawn_blocking(Worker::start).await.unwrap();
    let admin = Admin::new(&worker.admin_base());
    let (generated, rotated) = populate(&admin, &up).await;
    real_secrets_work(&worker.url("/svc/x"), "gen", &generated).await;
    real_secrets_work(&worker.url("/svc/x"), "given", &rotated).await;
    let export = export_text(&admin).await;
    assert!(!export.contains(&generated) && !export.contains("hmac-sha256:"));
    let at = Target {
        proxy: worker.url("/svc/x"),
        admin_routes: format!("{}/api/routes", worker.admin_base()),
    };
    nothing_in_the_dumps_calls(&at, &["gen", "given", "ops"], &[export]).await;
}
