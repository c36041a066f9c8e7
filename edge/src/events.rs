//! The Worker's event sink: JSON lines in the Worker's log (`wrangler tail`).

use komainu_core::events::{Event, EventSink};

/// Writes every event as one JSON line with `console.log`.
pub struct ConsoleEventSink;

impl EventSink for ConsoleEventSink {
    fn emit(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            worker::console_log!("{line}");
        }
    }
}
