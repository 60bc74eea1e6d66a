//! Memory with many idle SMTP sessions: open them (each reads the 220
//! greeting, then says nothing), then read the server's VmRSS.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::AsyncBufReadExt as _;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::servers::rss_kib;

/// Server RSS before and with `sessions` idle sessions, in KiB.
pub async fn idle_rss(addr: SocketAddr, pid: u32, sessions: usize) -> anyhow::Result<(u64, u64)> {
    let before = rss_kib(pid)?;
    // A few hundred connects in flight at once: well inside the backlog.
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        let permit = gate.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let stream = TcpStream::connect(addr).await.context("connect")?;
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            drop(permit);
            anyhow::ensure!(line.starts_with("220"), "greeting {line:?}");
            anyhow::Ok(reader)
        });
    }
    let mut open = Vec::with_capacity(sessions);
    while let Some(done) = tasks.join_next().await {
        open.push(done??);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let with = rss_kib(pid)?;
    drop(open);
    Ok((before, with))
}
