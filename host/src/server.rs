//! Listeners: accept connections and run each in its own task, under a cap
//! on concurrent sessions shared by every listener and a cap per client
//! address, until shutdown. A listener behind a load balancer reads the
//! PROXY protocol header first ([`accept_loop_with`]), and the client it
//! names is the client from then on.
//!
//! A refused connection is answered by its protocol (SMTP's 421 after the
//! TLS handshake on an implicit-TLS port, the echo service's busy line) in
//! a task of its own, at most [`MAX_REFUSALS`] at once: past that a
//! refused connection is just closed, so a flood of refusals cannot hold
//! more than a bounded number of tasks and descriptors.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::limits::{ClientLimits, Counted, Held};
use crate::penalty::Network;
use crate::proxy::Proxied;

/// Refusals being written at once, all listeners together.
pub const MAX_REFUSALS: usize = 256;
/// PROXY protocol headers being read at once, all listeners together;
/// past it a new connection is closed at once.
pub const MAX_PENDING_HEADERS: usize = 1024;
/// How long a refusal may take (a TLS handshake included).
pub const REFUSAL_TIME: Duration = Duration::from_secs(5);
/// The longest pause after a failed accept (out of descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Accept failures are logged at most this often.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What every listener shares.
#[derive(Clone)]
pub struct Sessions {
    permits: Arc<Semaphore>,
    max: u32,
    shutdown: watch::Receiver<bool>,
    clients: Arc<ClientLimits>,
    refusals: Arc<Semaphore>,
    headers: Arc<Semaphore>,
    /// How many accept loops are running and connections are between
    /// accept and admission (their PROXY header being read): [`drain`]
    /// waits for them to become sessions before it waits for the sessions.
    ///
    /// [`drain`]: Sessions::drain
    admitting: Arc<watch::Sender<usize>>,
}

/// One accept loop running, or one connection not admitted yet; counted
/// in [`Sessions::admitting`] until dropped.
struct Admitting(Arc<watch::Sender<usize>>);

impl Admitting {
    fn new(count: &Arc<watch::Sender<usize>>) -> Admitting {
        count.send_modify(|n| *n += 1);
        Admitting(count.clone())
    }
}

impl Drop for Admitting {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Why a connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Every session permit is taken.
    SessionCap,
    /// This client address holds all the connections it may.
    PerAddress,
}

impl Sessions {
    pub fn new(max: u32, shutdown: watch::Receiver<bool>) -> Sessions {
        Sessions::with_limits(max, shutdown, ClientLimits::unlimited())
    }

    pub fn with_limits(
        max: u32,
        shutdown: watch::Receiver<bool>,
        clients: Arc<ClientLimits>,
    ) -> Sessions {
        Sessions {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            shutdown,
            clients,
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            headers: Arc::new(Semaphore::new(MAX_PENDING_HEADERS)),
            admitting: Arc::new(watch::channel(0).0),
        }
    }

    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Once shutdown is requested: waits until every accept loop has
    /// admitted what the kernel had already accepted for it, then until
    /// every session has ended, or `grace` has passed; returns how many
    /// were still running.
    pub async fn drain(&self, grace: Duration) -> usize {
        let mut admitting = self.admitting.subscribe();
        let all_ended = async {
            let _ = admitting.wait_for(|n| *n == 0).await;
            self.permits.acquire_many(self.max).await
        };
        match tokio::time::timeout(grace, all_ended).await {
            Ok(_) => 0,
            Err(_) => {
                let running = self.max as usize - self.permits.available_permits();
                running + *self.admitting.borrow()
            }
        }
    }
}

/// A listener that requires the PROXY protocol, and the peers it takes
/// the header from (the load balancers).
#[derive(Clone, Debug)]
pub struct ProxyPolicy {
    pub trusted: Arc<Vec<Network>>,
}

impl ProxyPolicy {
    fn trusts(&self, ip: std::net::IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }
}

/// Resolves when the server starts shutting down; never if it cannot
/// (the sender gone). A watch `Ref` is not held across the await, so the
/// future stays `Send`.
pub async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Accepts connections on `listener` until shutdown; `handle` serves one
/// (holding its per-address share for as long as it runs), `refuse`
/// answers one over a limit.
pub async fn accept_loop<F, Fut, R, RFut>(
    listener: TcpListener,
    sessions: Sessions,
    protocol: &'static str,
    refuse: R,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    R: Fn(TcpStream, Refusal) -> RFut + Send + Sync + 'static,
    RFut: Future<Output = ()> + Send + 'static,
{
    accept_loop_with(listener, sessions, protocol, None, refuse, handle).await;
}

/// [`accept_loop`], with the PROXY protocol when `proxy` is given: each
/// connection's header is read in a task of its own (at most
/// [`MAX_PENDING_HEADERS`] at once, each within
/// [`proxy::HEADER_TIME`]), so a slow peer never holds up the accept
/// loop; from then on the client the header names is the peer everywhere
/// (its per-address share, logs, penalty, metrics). A v2 LOCAL header (a
/// health check) is served as the proxy's own connection, without a
/// per-address share and without counting as a session.
pub async fn accept_loop_with<F, Fut, R, RFut>(
    listener: TcpListener,
    sessions: Sessions,
    protocol: &'static str,
    proxy: Option<ProxyPolicy>,
    refuse: R,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    R: Fn(TcpStream, Refusal) -> RFut + Send + Sync + 'static,
    RFut: Future<Output = ()> + Send + 'static,
{
    let _running = Admitting::new(&sessions.admitting);
    let mut shutdown = sessions.shutdown.clone();
    let mut backoff = AcceptBackoff::default();
    let serve = Arc::new(Serve {
        sessions,
        protocol,
        refuse,
        handle,
    });
    let mut closing = false;
    loop {
        let accepted = if closing {
            // Shutting down: the kernel has finished the handshake of every
            // connection in the accept queue (a load balancer may have sent
            // one just before it stopped sending), and closing the listener
            // would reset them. Admit them, so each is told 421 like any
            // running session; then close.
            match accept_queued(&listener) {
                Some(accepted) => accepted,
                None => return,
            }
        } else {
            tokio::select! {
                _ = shutdown.wait_for(|down| *down) => {
                    closing = true;
                    continue;
                }
                accepted = listener.accept() => accepted,
            }
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff.reset();
                conn
            }
            Err(_) if closing => return,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep
                // serving the sessions already running, try again.
                let pause = backoff.failed(protocol, &e);
                tokio::select! {
                    _ = shutdown.wait_for(|down| *down) => closing = true,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(policy) = &proxy else {
            serve.admit(stream, peer, true);
            continue;
        };
        if !policy.trusts(peer.ip()) {
            tracing::info!(protocol, %peer, "PROXY protocol listener: peer not in proxy-trusted-networks; closing");
            crate::metrics::METRICS.proxy_header("untrusted");
            continue;
        }
        let Ok(pending) = serve.sessions.headers.clone().try_acquire_owned() else {
            tracing::warn!(protocol, %peer, "too many PROXY headers being read; closing");
            crate::metrics::METRICS.proxy_header("busy");
            continue;
        };
        let serve = serve.clone();
        let admitting = Admitting::new(&serve.sessions.admitting);
        tokio::spawn(async move {
            let mut stream = stream;
            let header = crate::proxy::read_header(&mut stream).await;
            drop(pending);
            match header {
                Ok(Proxied::Client(client)) => {
                    crate::metrics::METRICS.proxy_header("client");
                    serve.admit(stream, client, true);
                }
                Ok(Proxied::Local) => {
                    crate::metrics::METRICS.proxy_header("local");
                    serve.admit(stream, peer, false);
                }
                Err(e) => {
                    tracing::info!(protocol, %peer, "closing: {e}");
                    crate::metrics::METRICS.proxy_header(e.outcome());
                }
            }
            // Admitted (a session permit taken) or closed: shutdown's
            // drain sees one or the other, never neither.
            drop(admitting);
        });
    }
}

/// One connection from the listener's accept queue, asked of the kernel
/// directly (`accept(2)` on the non-blocking socket); `None` once the
/// queue is empty. Not through the reactor: a connection queued while the
/// process could not run (stopped, starved) may not have been seen by the
/// reactor yet when shutdown begins, and `poll_accept` would then answer
/// Pending with a connection still waiting, which closing resets.
fn accept_queued(listener: &TcpListener) -> Option<std::io::Result<(TcpStream, SocketAddr)>> {
    let accepted = socket2::SockRef::from(listener)
        .accept()
        .and_then(|(socket, addr)| {
            let peer = addr
                .as_socket()
                .ok_or_else(|| std::io::Error::other("not an internet address"))?;
            socket.set_nonblocking(true)?;
            Ok((TcpStream::from_std(socket.into())?, peer))
        });
    match accepted {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        accepted => Some(accepted),
    }
}

/// What a listener needs to start a session.
struct Serve<F, R> {
    sessions: Sessions,
    protocol: &'static str,
    refuse: R,
    handle: F,
}

impl<F, Fut, R, RFut> Serve<F, R>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    R: Fn(TcpStream, Refusal) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    /// Starts a session for `peer` (the client's address), or refuses it
    /// over a limit. A `client` takes a per-address share and counts as a
    /// session; the proxy's own health check does neither.
    fn admit(&self, stream: TcpStream, peer: SocketAddr, client: bool) {
        let (sessions, protocol) = (&self.sessions, self.protocol);
        let share = if client {
            let Some(share) = sessions.clients.acquire(peer.ip(), Counted::Connections) else {
                tracing::info!(protocol, %peer, "too many connections from this address; refusing");
                send_refusal(sessions, stream, Refusal::PerAddress, &self.refuse);
                return;
            };
            Some(share)
        } else {
            None
        };
        let Ok(permit) = sessions.permits.clone().try_acquire_owned() else {
            tracing::warn!(protocol, %peer, "session limit reached; refusing connection");
            send_refusal(sessions, stream, Refusal::SessionCap, &self.refuse);
            return;
        };
        let session = (self.handle)(stream, peer);
        if client {
            crate::metrics::METRICS.session_started(protocol);
        }
        tokio::spawn(async move {
            if let Err(e) = session.await {
                tracing::debug!(protocol, %peer, "connection ended: {e}");
            }
            if client {
                crate::metrics::METRICS.session_ended(protocol);
            }
            drop(permit);
            drop::<Option<Held>>(share);
        });
    }
}

/// Answers a refused connection in a task of its own, if fewer than
/// [`MAX_REFUSALS`] are being answered; otherwise closes it at once.
fn send_refusal<R, RFut>(sessions: &Sessions, stream: TcpStream, why: Refusal, refuse: &R)
where
    R: Fn(TcpStream, Refusal) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    let Ok(permit) = sessions.refusals.clone().try_acquire_owned() else {
        return;
    };
    let answer = refuse(stream, why);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
        drop(permit);
    });
}

/// Pauses after failed accepts: doubling from 10 ms to a second, logged
/// at most once per [`ACCEPT_LOG_INTERVAL`] with a count of the rest.
#[derive(Default)]
struct AcceptBackoff {
    pause: Duration,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    fn failed(&mut self, protocol: &'static str, e: &std::io::Error) -> Duration {
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_INTERVAL)
        {
            tracing::warn!(
                protocol,
                suppressed = self.unlogged,
                "accept failed: {e}; backing off up to {} ms",
                MAX_ACCEPT_BACKOFF.as_millis()
            );
            self.last_log = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        self.pause
    }

    fn reset(&mut self) {
        self.pause = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_cap_and_logs_seldom() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::other("Too many open files");
        let pauses: Vec<u128> = (0..10).map(|_| b.failed("t", &e).as_millis()).collect();
        assert_eq!(pauses[..4], [10, 20, 40, 80]);
        assert_eq!(*pauses.last().unwrap(), 1000);
        assert_eq!(b.unlogged, 9, "one line for ten failures");
        b.reset();
        assert_eq!(b.failed("t", &e).as_millis(), 10);
    }
}
