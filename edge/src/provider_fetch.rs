//! How the admin API reaches identity providers at the edge (people's
//! logins through OpenID Connect): the Worker's `fetch`, a time limit on the
//! whole exchange, a size limit on the answer.

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use komainu_core::login::oidc::{Fetch, FetchFuture, HttpRequest, HttpResponse};
use worker::{Delay, Headers, Method, Request, RequestInit};

/// Time allowed for one call to a provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read of a provider's answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Calls identity providers with the Worker's `fetch`.
pub struct WorkerFetch;

impl Fetch for WorkerFetch {
    fn fetch(&self, request: HttpRequest) -> FetchFuture<'_> {
        Box::pin(async move {
            let exchange = pin!(send(request));
            let timeout = pin!(Delay::from(TIMEOUT));
            match select(exchange, timeout).await {
                Either::Left((answer, _)) => answer,
                Either::Right(_) => Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            }
        })
    }
}

async fn send(request: HttpRequest) -> Result<HttpResponse, String> {
    let (parts, body) = request.into_parts();
    let headers = Headers::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().map_err(|e| format!("header {name}: {e}"))?;
        headers
            .set(name.as_str(), value)
            .map_err(|e| format!("header {name}: {e}"))?;
    }
    let method = match parts.method {
        http::Method::POST => Method::Post,
        _ => Method::Get,
    };
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let url = parts.uri.to_string();
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let mut response = worker::Fetch::Request(request)
        .send()
        .await
        .map_err(|e| format!("unreachable: {e}"))?;
    let status = response.status_code();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("the answer could not be read: {e}"))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
    }
    http::Response::builder()
        .status(status)
        .body(bytes)
        .map_err(|e| e.to_string())
}
