//! Worker-only behaviour: settings it can do without.

use http::{Method, StatusCode};
use komainu_e2e::{Admin, Client, Upstream, Worker};
use serde_json::json;

#[tokio::test]
async fn without_a_claim_secret_the_worker_generates_and_keeps_one() {
    let up = Upstream::start().await;
    let worker = tokio::task::spawn_blocking(|| Worker::start_with(""))
        .await
        .unwrap();
    let admin = Admin::new(&worker.admin_base());
    let r = admin
        .call(
            Method::POST,
            "/api/routes",
            json!({ "id": "open", "paths": ["/open"], "public": true, "backend": { "targets": [{ "url": up.url() }] } }),
        )
        .await;
    r.expect_status(StatusCode::CREATED);
    let c = Client::default();
    let claims: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let r = c.get(&worker.url("/open"), &[]).await;
            r.expect_status(StatusCode::OK);
            v.push(
                r.json()["headers"]["komainu-claim"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        v
    };
    for claim in &claims {
        assert_eq!(claim.split('.').count(), 3, "a signed JWT: {claim}");
    }
}
