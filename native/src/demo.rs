//! `komainu serve --demo`: a built-in echo backend, a demo route and key,
//! and curl lines that work as pasted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use komainu_core::model::{ApiKey, Backend, Group, Quotas, Route, Target};
use komainu_core::Document;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http_server;

/// Starts the echo backend on a free loopback port; returns its address.
pub async fn start_backend(shutdown: watch::Receiver<bool>) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the demo backend: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(http_server::serve(
        listener,
        echo,
        shutdown,
        Duration::from_secs(1),
    ));
    Ok(addr)
}

/// Echoes the request it received, as the gateway forwarded it, in JSON.
async fn echo(
    req: Request<Incoming>,
    _peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let body = match Limited::new(body, 1 << 20).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => "(body over 1 MiB not echoed)".into(),
    };
    let reply = serde_json::json!({
        "backend": "komainu demo echo",
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": body,
    });
    let mut response = Response::new(Full::new(Bytes::from(format!("{reply:#}\n"))));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Puts the demo group, routes and key into `doc` (replacing earlier ones).
pub fn install(doc: &mut Document, backend: SocketAddr, secret: &str) {
    doc.groups.retain(|g| g.id != "demo");
    doc.groups.push(Group {
        id: "demo".into(),
        name: "Demo".into(),
        description: "Created by komainu serve --demo".into(),
    });
    doc.routes
        .retain(|r| r.id != "demo" && r.id != "demo-public");
    let route = |id: &str, prefix: &str, public: bool| Route {
        id: id.into(),
        name: format!("Demo ({})", if public { "public" } else { "API key" }),
        paths: vec![prefix.into(), format!("{prefix}/{{*rest}}")],
        methods: vec![],
        backend: Backend {
            targets: vec![Target {
                url: format!("http://{backend}"),
                weight: 1,
                backup: false,
            }],
            timeout_ms: Some(10_000),
            ..Backend::default()
        },
        public,
        groups: vec!["demo".into()],
        ..Route::default()
    };
    doc.routes.push(route("demo", "/demo", false));
    doc.routes.push(route("demo-public", "/public", true));
    doc.apikeys.retain(|k| k.client_id != "demo");
    doc.apikeys.push(ApiKey {
        client_id: "demo".into(),
        client_secret: Some(secret.into()),
        client_secret_hash: None,
        client_secret_sealed: None,
        jwks: Vec::new(),
        jwt_algorithms: vec![komainu_core::model::HmacAlg::Hs256],
        name: "Demo key".into(),
        description: String::new(),
        tags: Vec::new(),
        metadata: Default::default(),
        read_only: false,
        allow_client_id_only: false,
        enabled: true,
        expires_at: None,
        routes: vec![],
        groups: vec!["demo".into()],
        quotas: Quotas {
            per_second: Some(5),
            per_day: Some(1000),
            per_month: Some(20_000),
        },
        rotation: Default::default(),
    });
}

/// The curl lines printed at start.
pub fn instructions(proxy: SocketAddr, secret: &str) -> String {
    let host = if proxy.ip().is_unspecified() {
        format!("127.0.0.1:{}", proxy.port())
    } else {
        proxy.to_string()
    };
    format!(
        "\nDemo ready: route \"demo\" (/demo/...) needs the API key \"demo\"; route \"demo-public\" (/public/...) is open.\n\
         Its secret is shown once, now. Try:\n\n\
         \x20 curl -i http://{host}/demo/hello -H 'Komainu-Client-Id: demo' -H 'Komainu-Client-Secret: {secret}'\n\
         \x20 curl -i -u 'demo:{secret}' http://{host}/demo/hello\n\
         \x20 curl -i http://{host}/demo/hello          # 401 missing_credentials\n\
         \x20 curl -i http://{host}/public/hello        # public route, no key\n\
         \x20 curl -i http://{host}/nowhere             # 404 route_not_found\n"
    )
}
