//! Reloading: SIGHUP and the control socket re-plan from the same flags and
//! the re-read file, assemble new services, and swap them in as a whole.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{ArgMatches, FromArgMatches as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

use super::services::{self, Disk};
use crate::cli::Args;
use crate::plugin::Runtime;
use crate::services::Live;

/// Re-reads the configuration and reloads every plugin; one at a time.
pub(super) struct Reloader {
    /// The command line's, laid over the re-read file again.
    pub(super) matches: ArgMatches,
    pub(super) runtime: Arc<Runtime>,
    pub(super) live: Arc<Live>,
    pub(super) lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Builds the new services completely before swapping them in: on any
    /// error the old ones stay and the error is returned.
    async fn reload(&self) -> anyhow::Result<String> {
        let _one_at_a_time = self.lock.lock().await;
        let started = std::time::Instant::now();
        let args = Args::from_arg_matches(&self.matches)?;
        let plan = crate::config::load_plan(&args, &self.matches)?;
        let services = services::build(&plan, &self.runtime, Disk::Write).await?;
        let offered = services::offered(&services);
        self.live.replace(services);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(elapsed_ms, mechanisms = %offered, "reloaded");
        Ok(format!(
            "reloaded in {elapsed_ms} ms; mechanisms: {offered}"
        ))
    }

    async fn reload_logged(&self, trigger: &str) -> Result<String, String> {
        self.reload().await.map_err(|e| {
            tracing::error!(trigger, "reload failed, keeping the running plugins: {e:#}");
            format!("{e:#}")
        })
    }
}

pub(super) async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    reloader: Arc<Reloader>,
) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        let _ = reloader.reload_logged("SIGHUP").await;
    }
}

/// One command per connection: `reload`, answered `ok: …` or `error: …`.
pub(super) async fn serve_control(listener: tokio::net::UnixListener, reloader: Arc<Reloader>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut read = tokio::io::BufReader::new(read.take(256));
            if read.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim() {
                "reload" => match reloader.reload_logged("control socket").await {
                    Ok(summary) => format!("ok: {summary}\n"),
                    Err(e) => format!("error: {e}\n"),
                },
                other => format!("error: unknown command {other:?}; the only command is reload\n"),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// `portcullis reload`: the client side of the control socket.
pub async fn send_reload(socket: &Path) -> anyhow::Result<String> {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach the server at {}", socket.display()))?;
    stream.write_all(b"reload\n").await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    match answer.trim().strip_prefix("ok: ") {
        Some(summary) => Ok(summary.to_owned()),
        None => bail!(
            "{}",
            answer
                .trim()
                .strip_prefix("error: ")
                .unwrap_or(answer.trim())
        ),
    }
}
