//! The Worker's event sink: CloudEvents JSON lines in the Worker's log
//! (`wrangler tail`, Workers Logs).

use komainu_core::events::{Event, EventSink};

/// The `source` of the Worker's events.
pub const SOURCE: &str = "/komainu/worker";

/// Writes every event as one CloudEvents JSON line with `console.log`.
pub struct ConsoleEventSink;

impl EventSink for ConsoleEventSink {
    fn emit(&self, event: Event) {
        worker::console_log!("{}", event.to_cloudevent(SOURCE));
    }
}
