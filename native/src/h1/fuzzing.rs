//! The HTTP/1 path's parsers for the fuzz targets (see `crate::fuzzing`).

use super::chunked::ChunkedScanner;
use super::request::{header_slots, HeaderSlots, Request};
use super::response::ResponseFraming;
use super::{head_end, HeadKind};

/// See [`crate::fuzzing::request_head`].
pub fn request_head(data: &[u8]) {
    let mut slots: HeaderSlots = header_slots!();
    if let Ok((_, len)) = Request::parse(data, &mut slots) {
        assert_eq!(head_end(data, HeadKind::Request), Some(len), "one head end");
    }
}

/// See [`crate::fuzzing::chunked`].
pub fn chunked(data: &[u8]) {
    let whole = scan(data, data.len().max(1));
    for step in [1, 2, 3, 7, 64] {
        let split = scan(data, step);
        // The verdict and the data; how many bytes were taken before an
        // error depends on the pieces, and matters to nobody.
        assert_eq!(split.0, whole.0, "verdict, split every {step} bytes");
        assert_eq!(split.2, whole.2, "data, split every {step} bytes");
        if whole.0.is_ok() {
            assert_eq!(split.1, whole.1, "length, split every {step} bytes");
        }
    }
}

/// (verdict, bytes of the body, data) scanning `data` in pieces of `step`.
fn scan(data: &[u8], step: usize) -> (Result<bool, super::chunked::ChunkError>, usize, Vec<u8>) {
    let mut scanner = ChunkedScanner::default();
    let mut used = 0;
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        match scanner.scan(piece, |r| out.extend_from_slice(&piece[r])) {
            Ok(n) => used += n,
            Err(e) => return (Err(e), used, out),
        }
        if scanner.is_done() {
            break;
        }
    }
    (Ok(scanner.is_done()), used, out)
}

/// See [`crate::fuzzing::response_head`].
pub fn response_head(data: &[u8]) {
    let Some(end) = head_end(data, HeadKind::Response) else {
        return;
    };
    let mut slots: HeaderSlots = header_slots!();
    let mut response = httparse::Response::new(&mut []);
    if let Ok(httparse::Status::Complete(n)) = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut response, &data[..end], &mut slots)
    {
        assert_eq!(n, end, "one head end");
        let _ = ResponseFraming::of(&response, false);
        let _ = ResponseFraming::of(&response, true);
    }
}
