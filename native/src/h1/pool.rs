//! Connections to backends for the HTTP/1 path: one pool per worker
//! thread, plain TCP or rustls, each connection with its read buffer.
//!
//! A request takes an idle connection for its backend (or opens one) and
//! owns it for the whole exchange, in its own task: no connection task,
//! no channel between the two. It gives the connection back when the
//! response has been read to its end and the backend keeps it open.
//! An idle connection the backend has closed in the meantime is noticed at
//! checkout (its socket turned readable: end of stream) without a system
//! call in the common case, and dropped.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use komainu_core::routing::TargetUrl;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf as TokioReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::buf::ReadBuf;
use crate::upstream::{root_cause, UpstreamError};

/// Idle connections kept per backend, at most.
const MAX_IDLE_PER_BACKEND: usize = 256;
/// Time allowed to open a connection (TCP and TLS).
/// Read buffer of a backend connection.
const BUFFER: usize = 16 * 1024;

/// A backend connection's transport.
pub enum Stream {
    /// Clear TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut TokioReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection to a backend.
pub struct Conn {
    /// The transport.
    pub io: Stream,
    /// Bytes read from the backend, not consumed yet.
    pub buf: ReadBuf,
    /// Taken from the pool (it may have been closed by the backend since).
    pub reused: bool,
}

/// Backends by authority: a short string, hashed on every request; the
/// multiply-rotate hash (as in rustc's `FxHasher`) costs a fraction of
/// SipHash, and the keys come from the configuration, not from clients.
type ByAuthority = HashMap<String, Vec<Conn>, BuildHasherDefault<FastHasher>>;

#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Idle connections by backend authority, clear and TLS apart.
#[derive(Default)]
struct Idle {
    plain: ByAuthority,
    tls: ByAuthority,
}

impl Idle {
    fn of(&mut self, target: &TargetUrl) -> &mut ByAuthority {
        if target.scheme == http::uri::Scheme::HTTPS {
            &mut self.tls
        } else {
            &mut self.plain
        }
    }
}

/// One worker's pool of backend connections (cheap to clone).
#[derive(Clone)]
pub struct Pool {
    tls: tokio_rustls::TlsConnector,
    idle: Arc<Mutex<Idle>>,
}

impl Pool {
    /// A pool verifying https backends with `tls`.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            tls: tokio_rustls::TlsConnector::from(tls),
            idle: Arc::new(Mutex::new(Idle::default())),
        }
    }

    /// An idle connection to `target`'s backend that is still open, if any.
    pub fn checkout(&self, target: &TargetUrl) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let conns = idle.of(target).get_mut(target.authority.as_str())?;
        while let Some(mut conn) = conns.pop() {
            if still_open(conn.io.tcp()) {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    }

    /// Gives back a connection whose exchange ended cleanly.
    pub fn checkin(&self, target: &TargetUrl, conn: Conn) {
        if !conn.buf.is_empty() {
            return; // the backend sent more than its response: not reusable
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let by_authority = idle.of(target);
        match by_authority.get_mut(target.authority.as_str()) {
            Some(conns) if conns.len() >= MAX_IDLE_PER_BACKEND => {}
            Some(conns) => conns.push(conn),
            None => {
                by_authority.insert(target.authority.as_str().to_owned(), vec![conn]);
            }
        }
    }

    /// Opens a new connection to `target`'s backend.
    pub async fn connect(&self, target: &TargetUrl) -> Result<Conn, UpstreamError> {
        // Bounded by the caller (the route's `timeouts.connectMs`).
        let io = self.open(target).await?;
        Ok(Conn {
            io,
            buf: ReadBuf::new(BUFFER),
            reused: false,
        })
    }

    async fn open(&self, target: &TargetUrl) -> Result<Stream, UpstreamError> {
        open_stream(
            &self.tls,
            &target.authority,
            target.scheme == http::uri::Scheme::HTTPS,
        )
        .await
    }
}

/// Opens a transport to a backend: TCP (no Nagle delay), then TLS for
/// https, verified by `tls`.
async fn open_stream(
    tls: &tokio_rustls::TlsConnector,
    authority: &http::uri::Authority,
    https: bool,
) -> Result<Stream, UpstreamError> {
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| UpstreamError::Connect(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    if !https {
        return Ok(Stream::Plain(tcp));
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| UpstreamError::Connect(format!("{host} is not a TLS server name: {e}")))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| UpstreamError::Connect(root_cause(&e)))?;
    Ok(Stream::Tls(Box::new(stream)))
}

/// Whether an idle connection is still open: nothing to read (the usual
/// case, answered from the socket's readiness without a system call).
/// End of stream, an error or unexpected bytes mean it cannot be used.
fn still_open(tcp: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
