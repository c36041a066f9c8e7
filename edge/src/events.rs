//! Events at the edge: every event is a CloudEvents JSON line in the
//! Worker's log (`wrangler tail`, Workers Logs); audit events and alerts
//! are also kept in the configuration Durable Object's event log (shared
//! with every isolate, read by `GET /api/events`); webhook exporters get
//! the events of each request after its answer (`waitUntil`). Each isolate
//! also keeps the last [`RECENT`] events it emitted (request events
//! included), which `GET /api/events` adds when answered by that isolate.

use std::borrow::Cow;
use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use komainu_core::events::{
    webhook, Event, EventQuery, EventSink, LogEntry, NotOffered, TypeFilter,
};
use komainu_core::model::ExporterKind;
use komainu_core::store::ConfigStore as _;
use komainu_core::Gateway;
use worker::{Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::config_object::DoConfigStore;
use crate::now_ms;

/// The `source` of the Worker's events.
pub const SOURCE: &str = "/komainu/worker";

/// Most attempts at one webhook delivery from the edge.
const ATTEMPTS: u32 = 3;

/// How many of its recent events an isolate keeps.
pub const RECENT: usize = 500;

/// An event this isolate emitted, with what queries filter on.
struct Recent {
    kind: Cow<'static, str>,
    route: Option<String>,
    key: Option<String>,
    json: String,
}

thread_local! {
    /// This isolate's recent events, oldest first (a Worker isolate runs
    /// one thread).
    static RING: RefCell<std::collections::VecDeque<Recent>> = const { RefCell::new(std::collections::VecDeque::new()) };
}

/// One event as emitted: its type and its CloudEvents JSON.
struct Emitted {
    kind: Cow<'static, str>,
    json: String,
}

/// Writes every event to the log and gathers them for what follows the
/// answer: [`EdgeEvents::keep`] and [`EdgeEvents::deliver`].
#[derive(Default)]
pub struct EdgeEvents {
    emitted: RefCell<Vec<Emitted>>,
    kept: RefCell<Vec<String>>,
    /// Test events, each for one webhook exporter (past its filters).
    tests: RefCell<Vec<(String, String)>>,
}

impl EventSink for EdgeEvents {
    fn emit(&self, event: Event) {
        let json = event.to_cloudevent(SOURCE);
        worker::console_log!("{json}");
        if LogEntry::is_kept(&event) {
            self.kept
                .borrow_mut()
                .push(LogEntry::with_json(&event, &json));
        }
        let kind = event.type_name();
        RING.with(|ring| {
            let mut ring = ring.borrow_mut();
            if ring.len() == RECENT {
                ring.pop_front();
            }
            ring.push_back(Recent {
                kind: kind.clone(),
                route: event.route().map(str::to_owned),
                key: event.key().map(str::to_owned),
                json: json.clone(),
            });
        });
        self.emitted.borrow_mut().push(Emitted { kind, json });
    }

    fn exporter_status(
        &self,
        _id: &str,
    ) -> Result<Option<komainu_core::events::ExporterStatus>, NotOffered> {
        Err(NotOffered(
            "the Worker keeps no exporter queue to report on: it sends webhooks after each answer (waitUntil, three attempts) and logs their failures (wrangler tail)",
        ))
    }

    fn test_exporter(&self, id: &str, event: Event) -> Result<bool, NotOffered> {
        let webhook = crate::live::current().is_some_and(|g| {
            g.exporters()
                .iter()
                .any(|e| e.config.id == id && e.config.kind == ExporterKind::Webhook)
        });
        if !webhook {
            return Err(NotOffered(
                "file and redis-stream exporters run natively only: the Worker sends webhooks",
            ));
        }
        let json = event.to_cloudevent(SOURCE);
        worker::console_log!("{json}");
        self.tests.borrow_mut().push((id.to_owned(), json));
        Ok(true)
    }

    fn recent(&self, query: &EventQuery) -> Result<Vec<String>, NotOffered> {
        Ok(RING.with(|ring| {
            let ring = ring.borrow();
            let mut found: Vec<String> = ring
                .iter()
                .rev()
                .filter(|r| query.accepts_parts(&r.kind, r.route.as_deref(), r.key.as_deref()))
                .take(query.limit)
                .map(|r| r.json.clone())
                .collect();
            found.reverse();
            found
        }))
    }
}

impl EdgeEvents {
    /// Whether anything was emitted.
    pub fn is_empty(&self) -> bool {
        self.emitted.borrow().is_empty() && self.tests.borrow().is_empty()
    }

    /// Appends the audit events and alerts gathered to the Durable
    /// Object's event log; a failure is logged (the events are in the
    /// Worker's log already).
    pub async fn keep(&self, store: &DoConfigStore<'_>) {
        let entries = std::mem::take(&mut *self.kept.borrow_mut());
        if entries.is_empty() {
            return;
        }
        if let Err(e) = store.append_events(&entries).await {
            worker::console_error!(
                "{} events could not be kept in the event log: {e}",
                entries.len()
            );
        }
    }

    /// Sends the events gathered to `gateway`'s webhook exporters (those
    /// whose filters take them), one batch each, retried a few times
    /// within the exporter's limits. File and Redis-stream exporters need
    /// a process: they run natively only.
    pub async fn deliver(&self, gateway: &Gateway) {
        let emitted = std::mem::take(&mut *self.emitted.borrow_mut());
        let tests = std::mem::take(&mut *self.tests.borrow_mut());
        for exporter in gateway.exporters() {
            let config = &exporter.config;
            if config.kind != ExporterKind::Webhook {
                continue;
            }
            let filter = TypeFilter::new(&config.include, &config.exclude);
            let batch: Vec<&str> = emitted
                .iter()
                .filter(|e| filter.accepts(&e.kind))
                .map(|e| e.json.as_str())
                .chain(
                    tests
                        .iter()
                        .filter(|(id, _)| *id == config.id)
                        .map(|(_, json)| json.as_str()),
                )
                .collect();
            if batch.is_empty() {
                continue;
            }
            let url = config.url.as_deref().unwrap_or_default();
            let body = webhook::batch_body(batch.iter().copied());
            let started = now_ms();
            for attempt in 0..ATTEMPTS {
                match post(
                    url,
                    &body,
                    batch.len(),
                    exporter.secret.as_deref(),
                    config.timeout_ms,
                )
                .await
                {
                    Ok(()) => break,
                    Err(why) => {
                        let wait = 250u64 << attempt;
                        let spent = now_ms().saturating_sub(started);
                        if attempt + 1 == ATTEMPTS || spent + wait > config.retry_limit_ms {
                            worker::console_error!(
                                "exporter \"{}\": {} events dropped after {} attempts: {why}",
                                config.id,
                                batch.len(),
                                attempt + 1
                            );
                            break;
                        }
                        Delay::from(Duration::from_millis(wait)).await;
                    }
                }
            }
        }
    }
}

/// One delivery: 2xx within `timeout_ms`, or why not.
async fn post(
    url: &str,
    body: &[u8],
    count: usize,
    secret: Option<&[u8]>,
    timeout_ms: u64,
) -> Result<(), String> {
    let headers = Headers::new();
    let set = |name: &str, value: &str| {
        headers
            .set(name, value)
            .map_err(|e| format!("header {name}: {e}"))
    };
    set("content-type", webhook::CONTENT_TYPE)?;
    set(webhook::COUNT_HEADER, &count.to_string())?;
    if let Some(secret) = secret {
        set(
            webhook::SIGNATURE_HEADER,
            &webhook::signature(secret, now_ms() / 1000, body),
        )?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(js_sys::Uint8Array::from(body).into()));
    let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let fetch = Fetch::Request(request);
    let sent = pin!(fetch.send());
    let timeout = pin!(Delay::from(Duration::from_millis(timeout_ms)));
    match select(sent, timeout).await {
        Either::Left((Ok(response), _)) => match response.status_code() {
            200..=299 => Ok(()),
            status => Err(format!("{url} answered {status}")),
        },
        Either::Left((Err(e), _)) => Err(format!("{url}: {e}")),
        Either::Right(_) => Err(format!("no answer from {url} within {timeout_ms} ms")),
    }
}
