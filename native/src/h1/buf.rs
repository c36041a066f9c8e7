//! A read buffer: bytes received and not consumed yet, between `start`
//! and `end`; reads go after `end`. Consuming is moving `start`, so parsing
//! a head and passing a body on never shifts bytes around.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncRead;

/// Bytes read from a socket, not consumed yet.
pub struct ReadBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    /// An empty buffer of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            data: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// The bytes not consumed yet.
    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// How many bytes are waiting.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` waiting bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `io` (at most `limit` bytes waiting in all, growing
    /// the buffer up to that): the number of bytes read, 0 at end of stream.
    pub async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read_from(cx, io, limit)).await
    }

    /// [`ReadBuf::read_from`], as a poll (for body types).
    pub fn poll_read_from<R: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut R,
        limit: usize,
    ) -> Poll<io::Result<usize>> {
        self.make_room(limit);
        if self.end == self.data.len() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "read buffer full",
            )));
        }
        let mut room = tokio::io::ReadBuf::new(&mut self.data[self.end..]);
        match Pin::new(io).poll_read(cx, &mut room) {
            Poll::Ready(Ok(())) => {
                let n = room.filled().len();
                self.end += n;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Whether the buffer holds `limit` bytes or more (no room to read).
    pub fn is_full(&self, limit: usize) -> bool {
        self.len() >= limit
    }

    fn make_room(&mut self, limit: usize) {
        if self.end < self.data.len() {
            return;
        }
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() && self.data.len() < limit {
            let grown = (self.data.len() * 2).clamp(1, limit);
            self.data.resize(grown, 0);
        }
    }

    /// Gives memory back after an unusually large head, once drained.
    pub fn shrink_to(&mut self, capacity: usize) {
        if self.is_empty() && self.data.len() > capacity {
            self.data.truncate(capacity);
            self.data.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_consumes_and_grows_up_to_the_limit() {
        let mut buf = ReadBuf::new(4);
        let mut src: &[u8] = b"hello world";
        assert_eq!(buf.read_from(&mut src, 8).await.unwrap(), 4);
        assert_eq!(buf.filled(), b"hell");
        buf.consume(2);
        assert_eq!(buf.read_from(&mut src, 8).await.unwrap(), 2);
        assert_eq!(buf.filled(), b"llo ");
        assert_eq!(buf.read_from(&mut src, 8).await.unwrap(), 4);
        assert_eq!(buf.filled(), b"llo worl");
        assert!(buf.is_full(8));
        buf.consume(8);
        assert!(buf.is_empty());
        buf.shrink_to(4);
        assert_eq!(buf.read_from(&mut src, 8).await.unwrap(), 1);
        assert_eq!(buf.filled(), b"d");
    }
}
