//! `portcullis-bench hash-flood`: one user's echo logins against a
//! password file whose users have Argon2id hashes (the host verifies them
//! natively, at most one per CPU at a time), alone and while clients from
//! other addresses keep sending wrong passwords for another user, as fast
//! as their replies come back. How long the user waits is how fairly the
//! host shares its verifications among clients.
//!
//! The user's load is one client from 127.0.0.1; the flood comes from
//! `--addresses` addresses in 127.1.0.0/16, each with `--per-address`
//! connections in flight. Every load is bounded in time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncWriteExt as _, BufReader};

use crate::resources::{connect_from, line, source};
use crate::servers::{Server, free_port};
use crate::stats::{self, Bounds, Rate};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The portcullis binary (default: beside this one).
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    /// Flooding client addresses.
    #[arg(long, default_value_t = 16)]
    pub addresses: usize,
    /// Connections in flight per flooding address.
    #[arg(long, default_value_t = 8)]
    pub per_address: usize,
    /// Length of each of the user's loads.
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
}

fn user_load(echo: std::net::SocketAddr, seconds: f64) -> impl Future<Output = Rate> {
    let bounds = Bounds {
        clients: 1,
        duration: Duration::from_secs_f64(seconds),
        max_count: 10_000,
    };
    stats::run(bounds, move || async move {
        crate::echo::Echo::login(echo, "alice", crate::hashes::PASS, false)
            .await
            .map(drop)
    })
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::servers::raise_nofile();
    let binary = match &opts.portcullis {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("portcullis"),
    };
    let dir = std::env::temp_dir().join(format!("portcullis-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let hash = crate::hashes::generate(&binary, &["password", "--scheme", "argon2id"])?;
    let file = dir.join("passwords");
    std::fs::write(&file, format!("alice:{hash}\nmallory:{hash}\n"))?;
    let (smtp, echo) = (free_port()?, free_port()?);
    let mut cmd = tokio::process::Command::new(&binary);
    cmd.arg("--smtp-listen")
        .arg(smtp.to_string())
        .arg("--echo-listen")
        .arg(echo.to_string())
        .args(["--log", "warn", "--auth-failure-delay", "0s"])
        .arg("--auth")
        .arg(format!("file:{}", file.display()));
    let mut server = Server::spawn("portcullis", cmd)?;
    server.wait(echo, Instant::now()).await?;

    println!(
        "| echo logins of one user (Argon2id: {}), 1 client, {:.0} s | result |\n| --- | --- |",
        hash.split('$').nth(3).unwrap_or("?"),
        opts.seconds
    );
    let alone = user_load(echo, opts.seconds).await;
    println!("| no flood | {} |", alone.summary());

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for a in 0..opts.addresses {
        for _ in 0..opts.per_address {
            let (stop, attempts) = (stop.clone(), attempts.clone());
            flood.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(stream) = connect_from(source(a), echo).await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let mut c = BufReader::new(stream);
                    if c.get_mut().write_all(b"mallory wrong\r\n").await.is_ok() {
                        let reply = tokio::time::timeout(Duration::from_secs(10), line(&mut c));
                        if reply.await.is_ok() {
                            attempts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counted = attempts.load(Ordering::Relaxed);
    let started = Instant::now();
    let during = user_load(echo, opts.seconds).await;
    let flooded = attempts.load(Ordering::Relaxed) - counted;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
    println!(
        "| {} addresses × {} connections sending wrong passwords for another user ({:.0} answered/s) | {} |",
        opts.addresses,
        opts.per_address,
        flooded as f64 / elapsed,
        during.summary()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
