//! Quota counters in Redis over a lean client of our own, for the request
//! path: every proxy worker thread keeps its own idle connections, and a
//! call takes one, sends one `EVALSHA` and reads the reply in the
//! request's own task (no multiplexing task, no channel, no extra timer:
//! each connection keeps its own). A connection that fails is dropped;
//! the next call opens a new one, so a Redis that restarts is found again
//! without a restart of ours. Calls are never retried: a retry could count
//! a call twice.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use komainu_core::quota::Acquired;
use redis::ConnectionAddr;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::resp::{self, Reply};
use crate::h1::{deadline, still_open, ReadBuf, Stream};

/// Idle connections kept per worker thread and store, at most.
const MAX_IDLE: usize = 256;
/// Largest reply read (counter replies are a few bytes).
const REPLY_LIMIT: usize = 64 * 1024;

/// Where and how to reach Redis.
struct Target {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

/// The counter client of one store.
pub struct LeanCounters {
    target: Target,
    script: &'static str,
    sha: String,
    /// Tells this store's idle connections from other stores'.
    id: u64,
}

struct Conn {
    io: Stream,
    buf: ReadBuf,
    timer: Pin<Box<Sleep>>,
}

thread_local! {
    /// Idle connections of this thread, by store id.
    static IDLE: RefCell<HashMap<u64, Vec<Conn>>> = RefCell::new(HashMap::new());
}

impl LeanCounters {
    /// A client for `info`, running `script` (by its SHA-1, loading it when
    /// Redis does not know it). `None` for connections it does not speak
    /// (TLS without verification): the caller keeps the general client.
    pub fn new(info: &redis::ConnectionInfo, script: &'static str, sha: &str) -> Option<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let (host, port, tls) = match &info.addr {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port, None),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            } => {
                let config = crate::tls::client_config(None).ok()?;
                (
                    host.clone(),
                    *port,
                    Some(tokio_rustls::TlsConnector::from(config)),
                )
            }
            _ => return None,
        };
        Some(Self {
            target: Target {
                host,
                port,
                tls,
                username: info.redis.username.clone(),
                password: info.redis.password.clone(),
                db: info.redis.db,
            },
            script,
            sha: sha.to_owned(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Runs the counting script on `keys` and `args`: its reply.
    pub async fn eval(&self, keys: &[String], args: &[u64]) -> Result<Reply, String> {
        let reply = self
            .call(&self.script_command("EVALSHA", keys, args))
            .await?;
        match reply {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                self.call(&self.script_command("EVAL", keys, args)).await
            }
            reply => Ok(reply),
        }
    }

    /// `MGET keys`.
    pub async fn mget(&self, keys: &[String]) -> Result<Reply, String> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        parts.push(b"MGET");
        parts.extend(keys.iter().map(|k| k.as_bytes()));
        let mut cmd = Vec::with_capacity(64 + keys.len() * 48);
        resp::command(&mut cmd, &parts);
        self.call(&cmd).await
    }

    fn script_command(&self, verb: &str, keys: &[String], args: &[u64]) -> Vec<u8> {
        let numbers: Vec<Vec<u8>> = std::iter::once(keys.len() as u64)
            .chain(args.iter().copied())
            .map(|n| {
                let mut text = Vec::with_capacity(20);
                komainu_core::text::push_u64(&mut text, n);
                text
            })
            .collect();
        let body: &[u8] = if verb == "EVAL" {
            self.script.as_bytes()
        } else {
            self.sha.as_bytes()
        };
        let mut parts: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + args.len());
        parts.push(verb.as_bytes());
        parts.push(body);
        parts.push(&numbers[0]);
        parts.extend(keys.iter().map(|k| k.as_bytes()));
        parts.extend(numbers[1..].iter().map(Vec::as_slice));
        let mut cmd = Vec::with_capacity(64 + body.len() + keys.len() * 48 + args.len() * 24);
        resp::command(&mut cmd, &parts);
        cmd
    }

    /// Sends one command on an idle or new connection and reads its reply.
    async fn call(&self, cmd: &[u8]) -> Result<Reply, String> {
        let mut conn = match self.checkout() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let reply = deadline(conn.timer.as_mut(), super::redis::OP_TIMEOUT, async {
            conn.io.write_all(cmd).await.map_err(|e| e.to_string())?;
            read_reply(&mut conn.io, &mut conn.buf).await
        })
        .await
        .unwrap_or_else(|| Err("timed out".into()))?;
        self.checkin(conn);
        Ok(reply)
    }

    fn checkout(&self) -> Option<Conn> {
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let conns = idle.get_mut(&self.id)?;
            while let Some(conn) = conns.pop() {
                if conn.buf.is_empty() && still_open(conn.io.tcp()) {
                    return Some(conn);
                }
            }
            None
        })
    }

    fn checkin(&self, conn: Conn) {
        if !conn.buf.is_empty() {
            return;
        }
        IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let conns = idle.entry(self.id).or_default();
            if conns.len() < MAX_IDLE {
                conns.push(conn);
            }
        });
    }

    async fn connect(&self) -> Result<Conn, String> {
        let opened = tokio::time::timeout(super::redis::OP_TIMEOUT, self.open()).await;
        opened.unwrap_or_else(|_| Err("connection timed out".into()))
    }

    async fn open(&self) -> Result<Conn, String> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let io = match &t.tls {
            None => Stream::Plain(tcp),
            Some(connector) => {
                let name = ServerName::try_from(t.host.clone())
                    .map_err(|e| format!("{} is not a TLS server name: {e}", t.host))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| crate::upstream::root_cause(&e))?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Conn {
            io,
            buf: ReadBuf::new(512),
            timer: Box::pin(tokio::time::sleep(super::redis::OP_TIMEOUT)),
        };
        if let Some(password) = &t.password {
            let mut parts: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &t.username {
                parts.push(user.as_bytes());
            }
            parts.push(password.as_bytes());
            conn.expect_ok(&parts, "AUTH").await?;
        }
        if t.db != 0 {
            let db = t.db.to_string();
            conn.expect_ok(&[b"SELECT", db.as_bytes()], "SELECT")
                .await?;
        }
        Ok(conn)
    }
}

impl Conn {
    async fn expect_ok(&mut self, parts: &[&[u8]], what: &str) -> Result<(), String> {
        let mut cmd = Vec::new();
        resp::command(&mut cmd, parts);
        self.io.write_all(&cmd).await.map_err(|e| e.to_string())?;
        match read_reply(&mut self.io, &mut self.buf).await? {
            Reply::Status(_) => Ok(()),
            Reply::Error(e) => Err(format!("{what} refused: {e}")),
            other => Err(format!("{what}: unexpected reply {other:?}")),
        }
    }
}

async fn read_reply(io: &mut Stream, buf: &mut ReadBuf) -> Result<Reply, String> {
    loop {
        if let Some((reply, used)) = resp::parse(buf.filled())? {
            buf.consume(used);
            return Ok(reply);
        }
        if buf.is_full(REPLY_LIMIT) {
            return Err("reply too large".into());
        }
        match buf.read_from(io, REPLY_LIMIT).await {
            Ok(0) => return Err("connection closed".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The counts of an acquire reply: `[admitted, count…]`.
pub fn acquired(reply: Reply) -> Result<Acquired, String> {
    let items = match reply {
        Reply::Array(Some(items)) => items,
        Reply::Error(e) => return Err(e),
        other => return Err(format!("unexpected reply {other:?}")),
    };
    let mut numbers = items.into_iter().map(|item| match item {
        Reply::Int(n) => u64::try_from(n).map_err(|_| format!("negative count {n}")),
        other => Err(format!("unexpected reply item {other:?}")),
    });
    let admitted = numbers.next().ok_or("empty reply")?? == 1;
    let mut acquired = Acquired {
        admitted,
        counts: [0; 3],
    };
    for (slot, count) in acquired.counts.iter_mut().zip(numbers) {
        *slot = count?;
    }
    Ok(acquired)
}

/// The counters of an `MGET` reply (absent keys count 0).
pub fn counts(reply: Reply) -> Result<[u64; 3], String> {
    let items = match reply {
        Reply::Array(Some(items)) => items,
        Reply::Error(e) => return Err(e),
        other => return Err(format!("unexpected reply {other:?}")),
    };
    let mut counts = [0; 3];
    for (slot, item) in counts.iter_mut().zip(items) {
        *slot = match item {
            Reply::Bulk(None) => 0,
            Reply::Bulk(Some(text)) => std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or("a counter is not a number")?,
            other => return Err(format!("unexpected reply item {other:?}")),
        };
    }
    Ok(counts)
}
