//! `POST /api/try`: one call through this gateway's own proxy listener,
//! made for the UI's Try it page (natively the page and the proxy are on
//! different origins, so the browser cannot read the answer itself). The
//! call takes the whole proxy path, like any client's: routing, the key,
//! quotas, events.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use komainu_core::admin::AdminError;
use serde::Deserialize;

use crate::admin_client::http_client;
use crate::state::State;

/// The most of an answer's body shown.
const SHOWN_BODY: usize = 64 * 1024;

/// How long the call may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The call to make.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    method: String,
    path: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
}

/// Makes the call described by `body` (JSON) and answers what came back:
/// status, headers, the body (its first 64 KiB, as text), the timings.
pub async fn call(state: &State, body: &[u8]) -> Result<serde_json::Value, AdminError> {
    let call: Call = serde_json::from_slice(body).map_err(|e| AdminError::malformed_json(&e))?;
    let method = Method::from_bytes(call.method.as_bytes()).map_err(|_| {
        AdminError::bad_request(
            "method",
            format!("\"{}\" is not an HTTP method", call.method),
        )
    })?;
    if !call.path.starts_with('/') {
        return Err(AdminError::bad_request("path", "the path starts with /"));
    }
    let mut target = state.proxy_addr;
    if target.ip().is_unspecified() {
        target.set_ip(if target.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let uri: Uri = format!("http://{target}{}", call.path)
        .parse()
        .map_err(|e| AdminError::bad_request("path", format!("not a valid path: {e}")))?;
    let mut request = Request::builder().method(method).uri(uri);
    for (i, (name, value)) in call.headers.iter().enumerate() {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            AdminError::bad_request(
                &format!("headers[{i}]"),
                format!("\"{name}\" is not a header name"),
            )
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            AdminError::bad_request(
                &format!("headers[{i}]"),
                "a header value is visible ASCII text",
            )
        })?;
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(call.body)))
        .map_err(|e| AdminError::bad_request("", e.to_string()))?;
    let client = http_client(state.backend_tls.clone());
    let started = Instant::now();
    let unreachable = |e: String| {
        AdminError::bad_gateway(
            "try_failed",
            format!("the gateway's own proxy listener ({target}) did not answer: {e}"),
        )
    };
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| unreachable(format!("no answer in {} s", TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let (parts, mut incoming) = response.into_parts();
    let mut shown = Vec::new();
    let mut truncated = false;
    while let Some(frame) = tokio::time::timeout(TIMEOUT, incoming.frame())
        .await
        .map_err(|_| unreachable("the body stopped coming".into()))?
    {
        let frame = frame.map_err(|e| unreachable(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            let room = SHOWN_BODY.saturating_sub(shown.len());
            shown.extend_from_slice(&data[..data.len().min(room)]);
            if data.len() > room {
                truncated = true;
                break;
            }
        }
    }
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_end_matches("ms").trim().parse::<f64>().ok())
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(serde_json::json!({
        "status": parts.status.as_u16(),
        "headers": headers,
        "body": String::from_utf8_lossy(&shown),
        "truncated": truncated,
        "timings": {
            "totalMs": total_ms,
            "upstreamMs": header("komainu-upstream-latency"),
            "proxyMs": header("komainu-proxy-latency"),
        },
    }))
}
