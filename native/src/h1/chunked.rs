//! The chunked transfer coding (RFC 9112, section 7.1), scanned as bytes
//! go by: the proxy passes a chunked body on as it is (or, for an HTTP/1.0
//! client, only its data), and needs to know where it ends.

use std::ops::Range;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 64 * 1024;

/// Why a chunked body is malformed: each a framing a lenient peer might
/// read differently, so the body is refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// No hex digit where a chunk size starts.
    #[error("malformed chunked body: chunk size expected")]
    SizeExpected,
    /// More than 15 hex digits (over 2^60 bytes).
    #[error("malformed chunked body: chunk size too large")]
    SizeTooLarge,
    /// A byte that has no place in a chunk-size line.
    #[error("malformed chunked body: invalid byte in the chunk size line")]
    InvalidSizeLine,
    /// A chunk-size line longer than the limit.
    #[error("malformed chunked body: chunk size line too long")]
    LineTooLong,
    /// A line feed without its carriage return (a bare LF).
    #[error("malformed chunked body: bare LF (line feed without CR)")]
    BareLf,
    /// A carriage return not followed by a line feed (a bare CR).
    #[error("malformed chunked body: bare CR (carriage return without LF)")]
    BareCr,
    /// Chunk data not followed by CR LF.
    #[error("malformed chunked body: CR LF expected after chunk data")]
    DataEnd,
    /// A trailer line that is not `name: value`.
    #[error("malformed chunked body: invalid trailer field")]
    InvalidTrailer,
    /// Trailers larger than the limit.
    #[error("malformed chunked body: trailer section too large")]
    TrailersTooLarge,
}

/// Where the scanner is, as in hyper's `ChunkedState` (`src/proto/h1/decode.rs`),
/// and as strict: every line ends in CR LF, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size { digits: u32 },
    /// Spaces or tabs after the size: no more digits may come.
    SizeLws,
    /// Extensions after the size, up to CR.
    Extension,
    /// The LF ending the size line.
    SizeLf,
    /// Chunk data still to come.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The start of a trailer line, or of the final empty line.
    LineStart,
    /// In a trailer line; `colon`: its name has ended with `:`.
    Trailer { colon: bool },
    /// The LF ending a trailer line.
    TrailerLf,
    /// The LF of the final empty line.
    EndLf,
    /// The body is complete.
    Done,
}

/// Where a chunked body is, byte by byte.
#[derive(Debug, Clone)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            line: 0,
            trailers: 0,
        }
    }
}

impl ChunkedScanner {
    /// Whether the last chunk and the trailers have gone by.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`, a next piece of the body: how many of its bytes
    /// belong to the body (all of them, unless the body ends inside).
    /// `data` is told the ranges of `input` that are chunk data.
    pub fn scan(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    data(i..i + take);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::Done => break,
                _ => {}
            }
            let b = input[i];
            i += 1;
            self.state = self.step(b)?;
        }
        Ok(i)
    }

    /// One byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        use State::*;
        if matches!(self.state, Size { .. } | SizeLws | Extension | SizeLf) {
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(ChunkError::LineTooLong);
            }
        }
        if matches!(self.state, LineStart | Trailer { .. } | TrailerLf | EndLf) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError::TrailersTooLarge);
            }
        }
        Ok(match (self.state, b) {
            (Size { digits }, _) if hex(b).is_some() => {
                if digits >= 15 {
                    return Err(ChunkError::SizeTooLarge);
                }
                self.size = self.size << 4 | u64::from(hex(b).unwrap_or(0));
                Size { digits: digits + 1 }
            }
            (Size { digits: 0 }, _) => return Err(ChunkError::SizeExpected),
            (Size { .. } | SizeLws, b' ' | b'\t') => SizeLws,
            (Size { .. } | SizeLws, b';') => Extension,
            (Size { .. } | SizeLws | Extension, b'\r') => SizeLf,
            (Size { .. } | SizeLws | Extension, b'\n') => return Err(ChunkError::BareLf),
            (Size { .. } | SizeLws, _) => return Err(ChunkError::InvalidSizeLine),
            // Extensions are ignored, but only visible text may be in them.
            (Extension, b'\t' | 0x20..=0x7e | 0x80..=0xff) => Extension,
            (Extension, _) => return Err(ChunkError::InvalidSizeLine),
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    LineStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError::BareCr),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(ChunkError::DataEnd),
            (DataLf, b'\n') => Size { digits: 0 },
            (DataLf, _) => return Err(ChunkError::DataEnd),
            (LineStart, b'\r') => EndLf,
            (LineStart, b'\n') => return Err(ChunkError::BareLf),
            (LineStart, _) if is_token(b) => Trailer { colon: false },
            (LineStart, _) => return Err(ChunkError::InvalidTrailer),
            (Trailer { colon: false }, b':') => Trailer { colon: true },
            (Trailer { colon: false }, _) if is_token(b) => Trailer { colon: false },
            (Trailer { colon: false }, _) => return Err(ChunkError::InvalidTrailer),
            (Trailer { colon: true }, b'\r') => TrailerLf,
            (Trailer { colon: true }, b'\n') => return Err(ChunkError::BareLf),
            (Trailer { colon: true }, b'\t' | 0x20..=0x7e | 0x80..=0xff) => Trailer { colon: true },
            (Trailer { colon: true }, _) => return Err(ChunkError::InvalidTrailer),
            (TrailerLf, b'\n') => LineStart,
            (TrailerLf, _) => return Err(ChunkError::BareCr),
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(ChunkError::BareCr),
            (Data | Done, _) => unreachable!("handled by scan"),
        })
    }
}

/// Whether `b` may be in a field name (RFC 9110 `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `input` in pieces of `step` bytes: (bytes of the body, data).
    fn scan_in_steps(input: &[u8], step: usize) -> Result<(usize, Vec<u8>), ChunkError> {
        let mut s = ChunkedScanner::default();
        let mut used = 0;
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            let n = s.scan(piece, |r| out.extend_from_slice(&piece[r]))?;
            used += n;
            if s.is_done() {
                break;
            }
        }
        assert!(s.is_done(), "not done");
        Ok((used, out))
    }

    #[test]
    fn finds_the_end_and_the_data_in_any_split() {
        let body =
            b"5\r\nhello\r\n1;ext=1\r\n \r\n1 \t;a=\"b c\"\r\n!\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (used, data) = scan_in_steps(body, step).unwrap();
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello !");
        }
        let (used, data) = scan_in_steps(b"A\r\n0123456789\r\n0\r\n\r\n", 7).unwrap();
        assert_eq!((used, data.as_slice()), (20, &b"0123456789"[..]));
    }

    fn refused(body: &[u8]) -> ChunkError {
        // Whole, and byte by byte: the verdict does not depend on the split.
        let mut whole = ChunkedScanner::default();
        let err = whole.scan(body, |_| {}).expect_err("refused");
        let mut bytes = ChunkedScanner::default();
        let err2 = body
            .chunks(1)
            .find_map(|b| bytes.scan(b, |_| {}).err())
            .expect("refused byte by byte");
        assert_eq!(err, err2);
        err
    }

    /// The cases hyper's decoder refuses (`src/proto/h1/decode.rs` tests),
    /// and the bare CR / bare LF shapes of request smuggling.
    #[test]
    fn refuses_what_hyper_refuses() {
        use ChunkError::*;
        for (body, why) in [
            (&b"x\r\n"[..], SizeExpected),
            (b"\r\n", SizeExpected),
            (b"3\r\nabcX", DataEnd),
            (b"3\r\nabc\rX", DataEnd),
            (b"3\r\nabc\n", DataEnd),
            (b"ffffffffffffffffff\r\n", SizeTooLarge),
            (b"3x\r\n", InvalidSizeLine),
            (b"F\rF", BareCr),
            (b"1 A\r\n", InvalidSizeLine),
            (b"1\n", BareLf),
            (b"0\n\n", BareLf),
            (b"1;ext\n", BareLf),
            (b"1;a\rb\r\n", BareCr),
            (b"1;a\x00\r\n", InvalidSizeLine),
            (b"0\r\n\n", BareLf),
            (b"0\r\n\rX", BareCr),
            (b"0\r\nx-t: 1\n\r\n", BareLf),
            (b"0\r\nx-t: 1\rX", BareCr),
            (b"0\r\nno colon\r\n\r\n", InvalidTrailer),
            (b"0\r\n: empty name\r\n\r\n", InvalidTrailer),
            (b"0\r\n folded: 1\r\n\r\n", InvalidTrailer),
        ] {
            assert_eq!(
                refused(body),
                why,
                "{}",
                String::from_utf8_lossy(body).escape_debug()
            );
        }
    }

    #[test]
    fn limits_hold() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(refused(&long), ChunkError::LineTooLong);
        let mut trailers = b"0\r\n".to_vec();
        while trailers.len() < MAX_TRAILERS + 100 {
            trailers.extend_from_slice(b"x-t: 0123456789\r\n");
        }
        assert_eq!(refused(&trailers), ChunkError::TrailersTooLarge);
    }
}
