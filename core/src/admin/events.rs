//! The admin API's event endpoints: recent events, and each exporter's
//! health and test. (The live stream, `GET /api/events/stream`, is served
//! by the adapter: it is a response that never ends.)

use http::{Method, StatusCode};

use super::{json_response, AdminError, AdminReply, Op};
use crate::events::{Event, EventData, EventQuery, EventSink, NotOffered, TestEvent};
use crate::model::Exporter;
use crate::store::{ConfigStore, CounterStore};

/// `GET /api/events?type=…&route=…&key=…&limit=…`.
pub(crate) fn list<S, C, E: EventSink>(op: &Op<'_, S, C, E>) -> Result<AdminReply, AdminError> {
    let query = parse_query(op.req.query)?;
    let events = op.ctx.events.recent(&query).map_err(not_offered)?;
    let mut body = String::with_capacity(16 + events.iter().map(|e| e.len() + 1).sum::<usize>());
    body.push_str("{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str("]}");
    Ok(AdminReply {
        response: json_response(StatusCode::OK, body),
        applied: None,
    })
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
            let event_id = event.id.clone();
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
