//! Where a message body ends, whatever its framing.

use std::ops::Range;

use super::chunked::{ChunkError, ChunkedScanner};
use super::request::Framing;

/// A body going by, piece by piece.
pub struct Body {
    framing: Framing,
    /// Bytes still to come (`Length`).
    left: u64,
    chunked: ChunkedScanner,
    /// The end of stream was seen (`UntilClose`).
    closed: bool,
}

impl Body {
    /// A body framed so.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunked: ChunkedScanner::default(),
            closed: false,
        }
    }

    /// Whether the whole body has gone by.
    pub fn done(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunked.is_done(),
            Framing::UntilClose => self.closed,
        }
    }

    /// Notes the end of the stream: the end of an `UntilClose` body, an
    /// error for the others (`false`).
    pub fn end_of_stream(&mut self) -> bool {
        self.closed = self.framing == Framing::UntilClose;
        self.closed
    }

    /// Counts the next `input` bytes: how many belong to the body. `data`
    /// is told which ranges are content (all but the chunked framing).
    pub fn scan(
        &mut self,
        input: &[u8],
        mut data: impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkError> {
        match self.framing {
            Framing::Empty => Ok(0),
            Framing::Length(_) => {
                let n = (input.len() as u64).min(self.left) as usize;
                self.left -= n as u64;
                data(0..n);
                Ok(n)
            }
            Framing::UntilClose => {
                data(0..input.len());
                Ok(input.len())
            }
            Framing::Chunked => self.chunked.scan(input, data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_framing() {
        let mut b = Body::new(Framing::Length(3));
        assert_eq!(b.scan(b"ab", |_| {}), Ok(2));
        assert!(!b.done());
        assert_eq!(b.scan(b"cdef", |_| {}), Ok(1));
        assert!(b.done());
        let mut b = Body::new(Framing::UntilClose);
        assert_eq!(b.scan(b"abc", |_| {}), Ok(3));
        assert!(!b.done() && b.end_of_stream() && b.done());
        assert!(!Body::new(Framing::Length(1)).end_of_stream());
        let mut b = Body::new(Framing::Chunked);
        let mut data = Vec::new();
        let input = b"2\r\nhi\r\n0\r\n\r\nrest";
        assert_eq!(b.scan(input, |r| data.extend_from_slice(&input[r])), Ok(12));
        assert!(b.done());
        assert_eq!(data, b"hi");
        assert!(Body::new(Framing::Empty).done());
    }
}
