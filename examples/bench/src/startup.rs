//! Start-up time: from spawning portcullis to its last listener (the echo
//! service's) accepting, with the compiled-plugin cache cold (an empty
//! folder) and then warm (the same folder again).

use std::time::{Duration, Instant};

use crate::servers::{Paths, Server, free_port};

/// One start: spawn, wait for the echo port, stop.
async fn once(paths: &Paths, cache: &std::path::Path) -> anyhow::Result<Duration> {
    let (smtp, echo) = (free_port()?, free_port()?);
    let cache = cache.display().to_string();
    let cmd = paths.portcullis(smtp, echo, None, &["--cache-dir", &cache]);
    let since = Instant::now();
    let mut server = Server::spawn("portcullis", cmd)?;
    let took = server.wait(echo, since).await?;
    server.child.kill().await?;
    Ok(took)
}

/// Cold, then the median of `warm_runs` warm starts.
pub async fn measure(paths: &Paths, warm_runs: usize) -> anyhow::Result<(Duration, Duration)> {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cold = once(paths, &dir).await?;
    let mut warm = Vec::new();
    for _ in 0..warm_runs.max(1) {
        warm.push(once(paths, &dir).await?);
    }
    warm.sort();
    let _ = std::fs::remove_dir_all(&dir);
    Ok((cold, warm[warm.len() / 2]))
}
