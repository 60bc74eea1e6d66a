//! Listeners: accept connections and run each in its own task, under a cap
//! on concurrent sessions shared by every listener, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// What every listener shares.
#[derive(Clone)]
pub struct Sessions {
    permits: Arc<Semaphore>,
    max: u32,
    shutdown: watch::Receiver<bool>,
}

impl Sessions {
    pub fn new(max: u32, shutdown: watch::Receiver<bool>) -> Sessions {
        Sessions {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            shutdown,
        }
    }

    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Waits until every session has ended, or `grace` has passed; returns
    /// how many were still running.
    pub async fn drain(&self, grace: Duration) -> usize {
        match tokio::time::timeout(grace, self.permits.acquire_many(self.max)).await {
            Ok(_) => 0,
            Err(_) => self.max as usize - self.permits.available_permits(),
        }
    }
}

/// Accepts connections on `listener` until shutdown; `handle` serves one.
/// A connection over the cap gets `busy` (a protocol's "try later" line)
/// and is closed at once.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    sessions: Sessions,
    protocol: &'static str,
    busy: &'static [u8],
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let mut shutdown = sessions.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|down| *down) => return,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!(protocol, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = sessions.permits.clone().try_acquire_owned() else {
            tracing::warn!(protocol, %peer, "session limit reached; refusing connection");
            tokio::spawn(async move {
                let _ = stream.write_all(busy).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let session = handle(stream, peer);
        crate::metrics::METRICS.session_started(protocol);
        tokio::spawn(async move {
            if let Err(e) = session.await {
                tracing::debug!(protocol, %peer, "connection ended: {e}");
            }
            crate::metrics::METRICS.session_ended(protocol);
            drop(permit);
        });
    }
}
