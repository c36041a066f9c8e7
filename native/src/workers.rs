//! Proxy workers, one per core: each is an OS thread with its own
//! single-threaded tokio runtime, its own listening socket (the port is
//! shared with `SO_REUSEPORT`, the kernel spreads connections) and its own
//! pool of upstream connections. A request is served start to finish on
//! one thread: no work stealing, no cross-thread wake-ups, no lock on the
//! upstream pool shared with other cores.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::events::{Events, FLUSH_EVERY};
use crate::h1;
use crate::state::State;

/// Binds `workers` listening sockets on `addr`, sharing one port (an
/// ephemeral port, when `addr` asks for port 0, is chosen once).
pub fn bind(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<std::net::TcpListener>, SocketAddr), String> {
    let mut listeners = Vec::with_capacity(workers);
    let mut bound = addr;
    for _ in 0..workers.max(1) {
        let listener = bind_one(bound)
            .map_err(|e| format!("cannot listen on {bound} for the proxy listener: {e}"))?;
        bound = listener.local_addr().map_err(|e| e.to_string())?;
        listeners.push(listener);
    }
    Ok((listeners, bound))
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// Starts one worker thread serving `listener` until `shutdown`.
pub fn spawn(
    index: usize,
    listener: std::net::TcpListener,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(format!("komainu-proxy-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, worker = index, "cannot start a proxy worker");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, worker = index, "proxy listener unusable"),
                };
                // This thread's events go in batches, handed over at least
                // every FLUSH_EVERY (and what is left, at the end).
                Events::batch_on_this_thread();
                let flusher = tokio::spawn({
                    let state = state.clone();
                    async move {
                        let mut every = tokio::time::interval(FLUSH_EVERY);
                        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            every.tick().await;
                            state.events.flush();
                        }
                    }
                });
                h1::serve(listener, state.clone(), shutdown, grace).await;
                flusher.abort();
                state.events.flush();
            });
        })
        .map_err(|e| format!("cannot start proxy worker {index}: {e}"))
}

/// The default number of workers: the CPUs this process may run on.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
