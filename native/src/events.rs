//! The native event sink: JSON lines in the log (target `komainu::audit`).

use komainu_core::events::{Event, EventSink};

/// Writes every event as one JSON line through `tracing`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogEventSink;

impl EventSink for LogEventSink {
    fn emit(&self, event: &Event) {
        match serde_json::to_string(event) {
            Ok(line) => tracing::info!(target: "komainu::audit", "{line}"),
            Err(e) => tracing::warn!(error = %e, "an event could not be written"),
        }
    }
}
