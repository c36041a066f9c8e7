//! W3C Trace Context (`traceparent`): a valid incoming trace is continued
//! with a new span, anything else starts a new trace.
//!
//! ```text
//! traceparent: 00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>
//! ```
//!
//! The gateway is one hop of the trace: the backend receives the same
//! trace id with the gateway's span id as its parent, and the request's
//! event carries both. `tracestate` is vendor data and passes unchanged.

use crate::text::HEX_LOWER;

/// The trace context of one request, as forwarded to the backend.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (never all zeros).
    pub trace_id: [u8; 16],
    /// The gateway's span id (never all zeros).
    pub span_id: [u8; 8],
    /// The caller's span id, when the trace was continued.
    pub parent_id: Option<[u8; 8]>,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Continues the trace of a valid `traceparent` value, or starts one.
    /// `request_random` (the request id's 128 bits) becomes the trace id of
    /// a new trace, so that the two can be matched; the span id is mixed
    /// from it as well.
    pub fn continue_or_start(traceparent: Option<&[u8]>, request_random: u128) -> Self {
        let span_id = span_from(request_random);
        if let Some((trace_id, parent_id, flags)) = traceparent.and_then(parse) {
            return Self {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
            };
        }
        let mut trace_id = request_random.to_be_bytes();
        if trace_id == [0; 16] {
            trace_id[15] = 1;
        }
        Self {
            trace_id,
            span_id,
            parent_id: None,
            // Sampled: the gateway records every request.
            flags: 0x01,
        }
    }

    /// The `traceparent` value for the backend (55 bytes).
    pub fn header_value(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &self.span_id);
        hex_into(&mut out[53..55], &[self.flags]);
        out
    }

    /// The trace id in hex (32 characters).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The gateway's span id in hex (16 characters).
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The caller's span id in hex, when the trace was continued.
    pub fn parent_id_hex(&self) -> Option<String> {
        self.parent_id.as_ref().map(|p| hex(p))
    }
}

impl std::fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = self.header_value();
        f.write_str(std::str::from_utf8(&value).unwrap_or("invalid"))
    }
}

/// A span id from 128 random bits (splitmix64 of both halves): never zero.
fn span_from(random: u128) -> [u8; 8] {
    let mut z = (random as u64) ^ ((random >> 64) as u64).rotate_left(17);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if z == 0 {
        z = 1;
    }
    z.to_be_bytes()
}

/// Parses a `traceparent` value (W3C Trace Context, level 1): version 00
/// exactly 55 bytes; a future version at least as long, its known part
/// read. Lower-case hex only; all-zero ids and version `ff` are invalid.
fn parse(value: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    let value = value.trim_ascii();
    if value.len() < 55 {
        return None;
    }
    let version = unhex::<1>(&value[0..2])?[0];
    if version == 0xff || (version == 0 && value.len() != 55) {
        return None;
    }
    if version != 0 && value.len() > 55 && value[55] != b'-' {
        return None;
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = unhex::<16>(&value[3..35])?;
    let parent_id = unhex::<8>(&value[36..52])?;
    let flags = unhex::<1>(&value[53..55])?[0];
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some((trace_id, parent_id, flags))
}

fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX_LOWER[usize::from(b >> 4)];
        out[2 * i + 1] = HEX_LOWER[usize::from(b & 0xf)];
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_into(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let t = TraceContext::continue_or_start(Some(VALID), 42);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id_hex().as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        let sent = t.header_value();
        let sent = std::str::from_utf8(&sent).unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-01"));
        assert_eq!(&sent[36..52], t.span_id_hex());
    }

    #[test]
    fn invalid_values_start_a_new_trace() {
        for bad in [
            &b""[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            let t = TraceContext::continue_or_start(Some(bad), 0x1234);
            assert_eq!(t.parent_id, None, "{}", String::from_utf8_lossy(bad));
            assert_eq!(t.trace_id, 0x1234u128.to_be_bytes());
        }
    }

    #[test]
    fn a_future_version_is_read_for_its_known_part() {
        let t = TraceContext::continue_or_start(
            Some(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"),
            7,
        );
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // What goes on is version 00, the one this gateway speaks.
        assert!(t.header_value().starts_with(b"00-"));
    }

    #[test]
    fn ids_are_never_zero() {
        let t = TraceContext::continue_or_start(None, 0);
        assert_ne!(t.trace_id, [0; 16]);
        assert_ne!(t.span_id, [0; 8]);
    }
}
