//! Listeners: accept connections and run each in its own task.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::echo::{self, EchoConfig};

/// Accepts echo connections forever.
pub async fn serve_echo(listener: TcpListener, config: Arc<EchoConfig>) -> anyhow::Result<()> {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            if let Err(e) = echo::serve(stream, peer, config).await {
                tracing::debug!(protocol = "echo", %peer, "connection ended: {e}");
            }
        });
    }
}
