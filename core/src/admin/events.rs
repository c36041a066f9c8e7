//! The admin API's event endpoints: recent events, and each exporter's
//! health and test. (The live stream, `GET /api/events/stream`, is served
//! by the adapter: it is a response that never ends.)

use http::{Method, StatusCode};

use super::{AdminError, AdminReply, Op};
use crate::events::{Event, EventData, EventQuery, EventSink, LogEntry, NotOffered, TestEvent};
use crate::model::Exporter;
use crate::store::{ConfigStore, CounterStore, EVENT_LOG_KEEP};

/// `GET /api/events?type=…&route=…&key=…&limit=…`: the events this
/// instance keeps in memory (every kind), merged with the audit events and
/// alerts the store keeps for every instance; oldest first.
pub(crate) async fn list<S: ConfigStore, C, E: EventSink>(
    op: &Op<'_, S, C, E>,
) -> Result<AdminReply, AdminError> {
    let query = parse_query(op.req.query)?;
    let local = op.ctx.events.recent(&query);
    let kept = op.ctx.config.recent_events(EVENT_LOG_KEEP).await;
    if let (Err(why), Err(e)) = (&local, &kept) {
        return Err(AdminError::store_unavailable(format!(
            "{}, and the store's event log cannot be read: {e}",
            why.0
        )));
    }
    let mut events: Vec<serde_json::Value> = Vec::new();
    if let Ok(local) = local {
        events.extend(local.iter().filter_map(|e| serde_json::from_str(e).ok()));
    }
    if let Ok(kept) = kept {
        events.extend(
            kept.iter()
                .filter_map(|e| serde_json::from_str::<LogEntry>(e).ok())
                .filter(|e| query.accepts_parts(e.kind(), e.route.as_deref(), e.key.as_deref()))
                .map(|e| e.event),
        );
    }
    // One list, by time (then as found), each event once, the most recent `limit`.
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(e["id"].as_str().unwrap_or("").to_owned()));
    events.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    let skip = events.len().saturating_sub(query.limit);
    let body = serde_json::json!({ "events": &events[skip..] });
    Ok(super::ok(StatusCode::OK, &body))
}

/// The query of the event endpoints, or a 400 naming the parameter.
pub fn parse_query(query: Option<&str>) -> Result<EventQuery, AdminError> {
    EventQuery::parse(query).map_err(|(field, why)| AdminError::bad_request(&field, why))
}

/// `GET /api/exporters/{id}/status` and `POST /api/exporters/{id}/test`.
pub(crate) async fn exporter<S: ConfigStore, C: CounterStore, E: EventSink>(
    op: &Op<'_, S, C, E>,
    id: &str,
    action: &str,
) -> Result<AdminReply, AdminError> {
    let doc = op.load().await?;
    let exporter: &Exporter = doc
        .exporters
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| AdminError::not_found(format!("no exporter \"{id}\"")))?;
    match (action, op.req.method) {
        ("status", &Method::GET) => {
            let status = op.ctx.events.exporter_status(id).map_err(not_offered)?;
            let running = status.is_some();
            let mut body =
                serde_json::to_value(status.unwrap_or_default()).unwrap_or(serde_json::Value::Null);
            body["id"] = exporter.id.clone().into();
            body["kind"] = exporter.kind.name().into();
            body["enabled"] = exporter.enabled.into();
            body["running"] = running.into();
            Ok(super::ok(StatusCode::OK, &body))
        }
        ("test", &Method::POST) => {
            if !exporter.enabled {
                return Err(AdminError::conflict(format!(
                    "exporter \"{id}\" is disabled: enable it to send a test event"
                )));
            }
            let event = Event::new(
                super::event_random(&op.ctx.random),
                op.ctx.now_ms,
                EventData::Test(TestEvent {
                    exporter: id.to_owned(),
                    actor: op.actor.to_owned(),
                    message: format!("a test event for exporter \"{id}\", sent by {}", op.actor),
                }),
            );
            let event_id = event.id.as_str().to_owned();
            let queued = op
                .ctx
                .events
                .test_exporter(id, event)
                .map_err(not_offered)?;
            if !queued {
                return Err(AdminError::store_unavailable(format!(
                    "exporter \"{id}\" is not running on this instance yet (it starts within a second of a change); retry"
                )));
            }
            Ok(super::ok(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "queued": true, "eventId": event_id }),
            ))
        }
        ("status", _) => Err(AdminError::method_not_allowed(
            "GET",
            "an exporter's status answers GET",
        )),
        _ => Err(AdminError::method_not_allowed(
            "POST",
            "an exporter's test answers POST",
        )),
    }
}

fn not_offered(e: NotOffered) -> AdminError {
    AdminError::not_offered(e.0)
}
