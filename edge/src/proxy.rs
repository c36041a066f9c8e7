//! The request path at the edge: the core decides, the Worker forwards
//! with `fetch`, streaming bodies both ways.

use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use http::StatusCode;
use komainu_core::error::Blame;
use komainu_core::gateway::{
    ClientInfo, Exchange, Outcome, RequestHead, RequestId, Timeout, Timings,
};
use komainu_core::GatewayError;
use worker::{Context, Delay, Env, Fetch, Request, Response, Result};

use crate::config_object::DoConfigStore;
use crate::counters::DoCounterStore;
use crate::events::EdgeEvents;
use crate::settings::Settings;
use crate::{head, live, now_ms, random_bytes};

/// Handles one proxied request; its alerts join the shared event log after
/// the answer (`waitUntil`).
pub async fn handle(
    req: Request,
    env: &Env,
    settings: &Settings,
    wctx: &Context,
) -> Result<Response> {
    let events = EdgeEvents::default();
    let response = serve(req, env, settings, &events).await;
    if !events.is_empty() {
        let env = env.clone();
        let gateway = live::current();
        wctx.wait_until(async move {
            events.keep(&DoConfigStore { env: &env }).await;
            if let Some(gateway) = gateway {
                events.deliver(&gateway).await;
            }
        });
    }
    response
}

async fn serve(
    mut req: Request,
    env: &Env,
    settings: &Settings,
    events: &EdgeEvents,
) -> Result<Response> {
    let claim_secret = match settings.claim_secret(env).await {
        Ok(secret) => secret,
        Err(e) => return store_unavailable(&format!("the claim secret cannot be read: {e}")),
    };
    let now = now_ms();
    let gateway = match live::gateway(env, &claim_secret, settings, now).await {
        Ok(g) => g,
        Err(e) => return store_unavailable(&e),
    };
    let mut parts = head::parts_of(&req)?;
    let client = ClientInfo {
        addr: parts
            .headers
            .get("cf-connecting-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        tls: req.url().is_ok_and(|u| u.scheme() == "https"),
    };
    let random = random_bytes();
    let request_id = RequestId::from_random(u128::from_le_bytes(
        random[..16].try_into().unwrap_or_default(),
    ));
    let counters = DoCounterStore { env };
    let method = parts.method.clone();
    let host = parts.host().to_owned();
    let path = match komainu_core::path::normalize(parts.path_and_query()) {
        Ok(pq) => pq.split('?').next().unwrap_or("/").to_owned(),
        Err(_) => parts.uri.path().to_owned(),
    };
    let (mut ctx, outcome) = gateway
        .handle_request(&counters, &mut parts, &client, now, request_id)
        .await;
    if let Some(why) = &ctx.quota_unchecked {
        worker::console_warn!("quotas not checked (policy open): {why}");
    }
    // The log phase, once the answer's head is known (the Worker streams
    // the body on after this function returns: its size is not known here).
    let log = |ctx: &komainu_core::gateway::RequestContext,
               status: u16,
               error: Option<&GatewayError>,
               backend_ms: Option<u64>| {
        let elapsed_us = now_ms().saturating_sub(now) * 1000;
        let exchange = Exchange {
            method: Some(&method),
            host: host.clone(),
            path: path.clone(),
            status,
            error,
            client_ip: client.addr,
            bytes_in: 0,
            bytes_out: 0,
            attempts: u32::from(
                backend_ms.is_some() || error.is_some_and(|e| e.blame() == Blame::Backend),
            ) + ctx.retries,
            timings: Timings {
                total_us: elapsed_us,
                head_us: elapsed_us,
                backend_us: backend_ms.map(|ms| ms * 1000),
            },
        };
        gateway.log(ctx, exchange, events);
    };
    let forward = match outcome {
        Outcome::Respond(response) => {
            log(&ctx, response.status().as_u16(), ctx.refusal.as_ref(), None);
            return head::core_response(response);
        }
        Outcome::Login(step) => {
            let random = crate::random_secret_bytes()?;
            let mut form = Vec::new();
            if step.wants_body() {
                if let Ok(bytes) = req.bytes().await {
                    if bytes.len() <= komainu_core::gateway::login::MAX_FORM_BYTES {
                        form = bytes;
                    }
                }
            }
            let response = gateway
                .login_step(
                    &step,
                    &form,
                    Some(&crate::provider_fetch::WorkerFetch),
                    now_ms(),
                    random,
                )
                .await;
            log(&ctx, response.status().as_u16(), None, None);
            return head::core_response(response);
        }
        Outcome::Forward(forward) => forward,
    };
    // `fetch` does not say whether anything was sent: only a request that
    // may go twice goes to another target (idempotent, without a body).
    let replayable =
        req.inner().body().is_none() && komainu_core::gateway::is_idempotent(&parts.method);
    let error = loop {
        let target = parts
            .uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let upstream = head::upstream_request(&parts, req.inner().body())?;
        let fetch = Fetch::Request(upstream);
        let sent_at = now_ms();
        let sent = pin!(fetch.send());
        // `fetch` opens the connection itself: at the edge `headMs` counts
        // from the request sent, connecting included (and `totalMs` cuts it).
        let elapsed = Duration::from_millis(sent_at.saturating_sub(now));
        let (limit, which) = forward.timeouts.limit(Timeout::Head, elapsed);
        let timeout = pin!(Delay::from(limit));
        let error = match select(sent, timeout).await {
            Either::Left((Ok(mut response), _)) => {
                let mut headers = head::header_map(response.headers());
                if let Err(error) = gateway.check_response(&ctx, &headers, now_ms()) {
                    break error;
                }
                gateway.handle_response(&ctx, &mut headers);
                let status = response.status_code();
                let backend_ms = now_ms().saturating_sub(sent_at);
                let proxy_ms = sent_at.saturating_sub(now);
                gateway.latency_headers(proxy_ms * 1000, backend_ms * 1000, |name, value| {
                    if let Ok(v) = http::HeaderValue::from_bytes(value) {
                        headers.insert(name, v);
                    }
                });
                log(&ctx, status, None, Some(backend_ms));
                // A route that names idleMs or totalMs has its body watched
                // here, chunk by chunk; otherwise the runtime streams it
                // without the body passing through wasm.
                if forward.timeouts.body_watched {
                    if let Ok(body) = response.stream() {
                        let watched = watch_body(body, forward.timeouts, now);
                        let relay = web_sys::Response::from(Response::from_stream(watched)?);
                        // With its length known, a body cut short is seen
                        // as cut by the client (not as a shorter answer).
                        let length = headers
                            .get(http::header::CONTENT_LENGTH)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        let body = match (relay.body(), length) {
                            (Some(body), Some(n)) => fixed_length(body, n),
                            (body, _) => body,
                        };
                        return head::streamed_response(status, &headers, body);
                    }
                }
                let raw = web_sys::Response::from(response);
                return head::streamed_response(status, &headers, raw.body());
            }
            Either::Left((Err(e), _)) => {
                GatewayError::BadGateway(format!("cannot reach {target}: {e}"))
            }
            Either::Right(_) => break forward.timeouts.error(which),
        };
        if !replayable {
            break error;
        }
        let Some(wait_ms) = gateway.retry_request(&mut ctx, &mut parts, now_ms()) else {
            break error;
        };
        if wait_ms > 0 {
            Delay::from(Duration::from_millis(wait_ms)).await;
        }
    };
    let response = gateway.error_response(&ctx, &error);
    log(&ctx, response.status().as_u16(), Some(&error), None);
    head::core_response(response)
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Result<Response> {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    head::core_response(response)
}

/// 503: the Worker's state cannot be read.
pub fn store_unavailable(message: &str) -> Result<Response> {
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        message,
    )
}

/// A backend's body, cut when no byte comes for `idleMs` or the exchange
/// outlives `totalMs` (counted from the request's arrival at `arrived`
/// Unix ms): the client's connection is then cut, as natively once an
/// answer has begun.
fn watch_body(
    body: worker::ByteStream,
    timeouts: komainu_core::gateway::Timeouts,
    arrived: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>>> {
    futures_util::stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        let elapsed = Duration::from_millis(now_ms().saturating_sub(arrived));
        let (limit, which) = timeouts.limit(Timeout::Idle, elapsed);
        let next = pin!(futures_util::StreamExt::next(&mut body));
        match select(next, Delay::from(limit)).await {
            Either::Left((Some(chunk), _)) => Some((chunk, Some(body))),
            Either::Left((None, _)) => None,
            Either::Right(_) => {
                let error = timeouts.error(which);
                worker::console_warn!("{error}: the answer is cut");
                Some((Err(worker::Error::RustError(error.to_string())), None))
            }
        }
    })
}

/// `body` through the runtime's `FixedLengthStream` of `length` bytes, so
/// that an answer cut short ends the client's response in error, its
/// `Content-Length` unmet; `body` itself when the runtime has none.
fn fixed_length(body: web_sys::ReadableStream, length: u64) -> Option<web_sys::ReadableStream> {
    use wasm_bindgen::JsCast;
    let piped = || -> Option<web_sys::ReadableStream> {
        let get = |target: &wasm_bindgen::JsValue, name: &str| {
            js_sys::Reflect::get(target, &wasm_bindgen::JsValue::from_str(name)).ok()
        };
        let class: js_sys::Function = get(&js_sys::global(), "FixedLengthStream")?
            .dyn_into()
            .ok()?;
        let args = js_sys::Array::of1(&wasm_bindgen::JsValue::from_f64(length as f64));
        let fixed = js_sys::Reflect::construct(&class, &args).ok()?;
        let (writable, readable) = (get(&fixed, "writable")?, get(&fixed, "readable")?);
        let pipe_to: js_sys::Function = get(&body, "pipeTo")?.dyn_into().ok()?;
        let done: js_sys::Promise = pipe_to.call1(&body, &writable).ok()?.dyn_into().ok()?;
        // The pipe ends when the body does, in error when it was cut:
        // awaited here, so that its rejection is handled.
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(done).await;
        });
        readable.dyn_into().ok()
    };
    piped().or(Some(body))
}
