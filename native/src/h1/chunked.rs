//! The chunked transfer coding (RFC 9112, section 7.1), scanned as bytes
//! go by: the proxy passes a chunked body on as it is (or, for an HTTP/1.0
//! client, only its data), and needs to know where it ends.

use std::ops::Range;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 64 * 1024;

/// Why a chunked body is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size { digits: u32 },
    /// Extensions after the size, up to the line feed.
    Extension,
    /// Chunk data still to come.
    Data,
    /// The CR LF after chunk data (`lf`: the CR was seen).
    DataEnd { lf: bool },
    /// Trailer lines; `line` bytes seen on the current one.
    Trailer { line: usize },
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
                    let take = (self.size as usize).min(input.len() - i);
                    data(i..i + take);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataEnd { lf: false };
                    }
                    continue;
                }
                State::Done => break,
                _ => {}
            }
            let b = input[i];
            i += 1;
            self.state = match self.state {
                State::Size { digits } => match hex(b) {
                    Some(d) => {
                        if digits >= 15 {
                            return Err(ChunkError("chunk size too large"));
                        }
                        self.size = self.size << 4 | u64::from(d);
                        State::Size { digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(ChunkError("chunk size expected")),
                    None => {
                        self.line = 0;
                        self.after_size_byte(b)?
                    }
                },
                State::Extension => self.after_size_byte(b)?,
                State::DataEnd { lf: false } if b == b'\r' => State::DataEnd { lf: true },
                State::DataEnd { .. } if b == b'\n' => State::Size { digits: 0 },
                State::DataEnd { .. } => return Err(ChunkError("CR LF expected after chunk data")),
                State::Trailer { line } => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(ChunkError("trailer section too large"));
                    }
                    match b {
                        b'\n' if line == 0 => State::Done,
                        b'\n' => State::Trailer { line: 0 },
                        b'\r' => State::Trailer { line },
                        _ => State::Trailer { line: line + 1 },
                    }
                }
                State::Data | State::Done => unreachable!("handled above"),
            };
        }
        Ok(i)
    }

    /// A byte of the size line after the digits.
    fn after_size_byte(&mut self, b: u8) -> Result<State, ChunkError> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(ChunkError("chunk extension too long"));
        }
        Ok(match b {
            b'\n' if self.size == 0 => State::Trailer { line: 0 },
            b'\n' => State::Data,
            b'\r' | b';' | b' ' | b'\t' => State::Extension,
            _ if self.state == State::Extension => State::Extension,
            _ => return Err(ChunkError("invalid byte after the chunk size")),
        })
    }
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
        let body = b"5\r\nhello\r\n1;ext=1\r\n \r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (used, data) = scan_in_steps(body, step).unwrap();
            assert_eq!(used, body.len() - 4, "step {step}");
            assert_eq!(data, b"hello ");
        }
        let (used, data) = scan_in_steps(b"A\r\n0123456789\r\n0\r\n\r\n", 7).unwrap();
        assert_eq!((used, data.as_slice()), (20, &b"0123456789"[..]));
        assert_eq!(scan_in_steps(b"0\n\n", 1).unwrap().0, 3);
    }

    #[test]
    fn refuses_malformed_bodies() {
        let mut s = ChunkedScanner::default();
        assert!(s.scan(b"x\r\n", |_| {}).is_err());
        let mut s = ChunkedScanner::default();
        assert!(s.scan(b"3\r\nabcX", |_| {}).is_err());
        let mut s = ChunkedScanner::default();
        assert!(s.scan(b"ffffffffffffffffff\r\n", |_| {}).is_err());
        let mut s = ChunkedScanner::default();
        assert!(s.scan(b"3x\r\n", |_| {}).is_err());
    }
}
