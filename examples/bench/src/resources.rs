//! `portcullis-bench resources`: the figures of issue 12's resource
//! model, against a portcullis binary as it is (no build, no peers).
//!
//! - RSS and echo logins/s with N logged-in idle echo sessions, and RSS
//!   and SMTP AUTH logins/s with N idle SMTP sessions. The sessions come
//!   from many addresses in 127.0.0.0/8 (at most [`PER_ADDRESS`] each), so
//!   per-address limits see what many real clients would look like.
//! - Echo login latency p50/p99 while a SIGHUP reload adds the
//!   big-mechanism fixture (one huge function, about a second to
//!   compile, with a fresh cache so it must compile), against a baseline.
//! - Echo login latency while other clients run X-TRAP `lookups:N`
//!   exchanges of the trap-mechanism fixture, against a baseline.
//!
//! Every load is bounded in time and count; numbers go to stdout as
//! Markdown. Timings are for comparison between runs on one machine only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::servers::{Server, free_port, rss_kib};
use crate::stats::{self, Bounds, Rate};

/// Idle sessions per source address.
pub const PER_ADDRESS: usize = 50;

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The portcullis binary (default: beside this one).
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    /// Where the fixture components are (big_mechanism.wasm,
    /// trap_mechanism.wasm): the guest folder of a host build.
    #[arg(long)]
    pub guests: PathBuf,
    /// Idle sessions for the memory figures.
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Length of each login load.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Concurrent clients of each login load.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Lookups per X-TRAP exchange, and `:scram-sha256` to make them
    /// PBKDF2-heavy (e.g. `1000:guest:scram-sha256`).
    #[arg(long, default_value = "1000:guest:scram-sha256")]
    pub lookups: String,
    /// Extra arguments for every server (e.g. `--max-avatars=12000`).
    #[arg(long, allow_hyphen_values = true)]
    pub server_arg: Vec<String>,
}

/// The `i`th source address: 127.1.0.1, 127.1.0.2, ...
pub(crate) fn source(i: usize) -> IpAddr {
    let n = i as u32 + 1;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
    ))
}

pub(crate) async fn connect_from(ip: IpAddr, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    Ok(socket.connect(addr).await?)
}

/// Reads one line; the SMTP reply's last line for SMTP.
pub(crate) async fn line(reader: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        bail!("connection closed");
    }
    Ok(line.trim_end().to_owned())
}

/// Opens `n` idle sessions from many addresses: echo sessions logged in
/// as guest, or SMTP sessions that read the greeting. Returns them (to
/// keep them open) and how many failed.
pub async fn open_idle(
    addr: SocketAddr,
    n: usize,
    echo: bool,
) -> (Vec<BufReader<TcpStream>>, usize, Option<String>) {
    let gate = Arc::new(Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            let stream = connect_from(source(i / PER_ADDRESS), addr).await?;
            let mut reader = BufReader::new(stream);
            if echo {
                reader.get_mut().write_all(b"guest password\r\n").await?;
                let got = line(&mut reader).await?;
                anyhow::ensure!(got == crate::echo::LOGIN_OK, "echo login: {got:?}");
            } else {
                let got = line(&mut reader).await?;
                anyhow::ensure!(got.starts_with("220"), "greeting {got:?}");
            }
            anyhow::Ok(reader)
        });
    }
    let (mut open, mut failed, mut first) = (Vec::new(), 0, None);
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(r) => open.push(r),
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    (open, failed, first)
}

fn echo_load(
    addr: SocketAddr,
    opts: &Options,
    max_count: u64,
) -> impl Future<Output = Rate> + use<> {
    let bounds = Bounds {
        clients: opts.clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count,
    };
    stats::run(bounds, move || async move {
        crate::echo::Echo::login(addr, "guest", "password", false)
            .await
            .map(drop)
    })
}

fn smtp_load(addr: SocketAddr, opts: &Options) -> impl Future<Output = Rate> + use<> {
    let bounds = Bounds {
        clients: opts.clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count: 100_000,
    };
    let mech = crate::smtp::Mech::Plain {
        user: "guest".into(),
        pass: "password".into(),
    };
    stats::run(bounds, move || {
        let mech = mech.clone();
        async move { crate::smtp::login(addr, &mech).await }
    })
}

/// A started portcullis and its addresses.
struct Running {
    server: Server,
    smtp: SocketAddr,
    echo: SocketAddr,
}

async fn start(opts: &Options, extra: &[&str]) -> anyhow::Result<Running> {
    let binary = match &opts.portcullis {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("portcullis"),
    };
    let (smtp, echo) = (free_port()?, free_port()?);
    let mut cmd = tokio::process::Command::new(binary);
    cmd.arg("--smtp-listen")
        .arg(smtp.to_string())
        .arg("--echo-listen")
        .arg(echo.to_string())
        .args(["--log", "warn", "--auth-failure-delay", "0s"])
        .args(["--max-sessions", &(opts.sessions + 2_000).to_string()])
        .args(&opts.server_arg)
        .args(extra);
    let mut server = Server::spawn("portcullis", cmd)?;
    server.wait(echo, Instant::now()).await?;
    Ok(Running { server, smtp, echo })
}

fn row(what: &str, value: String) {
    println!("| {what} | {value} |");
}

/// Echo login latency without and with a reload that compiles the big
/// mechanism in the middle of the load (the load's latencies are not
/// timestamped, so the reload's share shows in p99 and max).
async fn reload_figures(opts: &Options) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("p.toml");
    let checker = "[[checker]]\ntype = \"memory\"\nusers = { guest = \"password\" }\n";
    std::fs::write(&config, checker)?;
    let cache = dir.join("cache");
    let run = start(
        opts,
        &[
            "--config",
            config.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
    )
    .await?;
    let baseline = echo_load(run.echo, opts, 100_000).await;
    row("echo logins, no reload", baseline.summary());
    // Absolute: a configuration file's relative paths are its folder's.
    let big = std::fs::canonicalize(opts.guests.join("big_mechanism.wasm"))?;
    std::fs::write(
        &config,
        format!("{checker}[[mechanism]]\nplugin = \"{}\"\n", big.display()),
    )?;
    let load = tokio::spawn(echo_load(run.echo, opts, 100_000));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signalled = Instant::now();
    // SAFETY: kill with a pid of our own child and a valid signal.
    unsafe { libc::kill(run.server.pid() as i32, libc::SIGHUP) };
    // The reload is done when X-BIG is offered.
    let reloaded = loop {
        let mut c = BufReader::new(TcpStream::connect(run.echo).await?);
        c.get_mut().write_all(b"AUTH X-BIG\r\n").await?;
        let got = line(&mut c).await?;
        if !got.starts_with("Error: mechanism X-BIG is not available") {
            break signalled.elapsed();
        }
        if signalled.elapsed() > Duration::from_secs(30) {
            bail!("the reload did not finish in 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let during = load.await?;
    row(
        "reload adding big-mechanism (SIGHUP to X-BIG offered)",
        format!("{:.0} ms", reloaded.as_secs_f64() * 1e3),
    );
    row(
        "echo logins, a reload in the middle",
        format!(
            "{}, max {}",
            during.summary(),
            stats::ms(*during.latencies.last().unwrap_or(&Duration::ZERO))
        ),
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Echo login latency without and with two clients flooding lookups.
async fn lookup_figures(opts: &Options) -> anyhow::Result<()> {
    let trap = opts.guests.join("trap_mechanism.wasm");
    let mechanism = format!("{}:lookup-secrets", trap.display());
    let run = match start(opts, &["--mechanism", &mechanism]).await {
        Ok(run) => run,
        // A host that knows no lookup-secrets option: the plugin as is.
        Err(_) => start(opts, &["--mechanism", trap.to_str().unwrap()]).await?,
    };
    let baseline = echo_load(run.echo, opts, 100_000).await;
    row("echo logins, no lookup flood", baseline.summary());
    let initial =
        base64::engine::general_purpose::STANDARD.encode(format!("lookups:{}", opts.lookups));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = tokio::task::JoinSet::new();
    for i in 0..2 {
        let (stop, initial, echo) = (stop.clone(), initial.clone(), run.echo);
        attackers.spawn(async move {
            let mut exchanges = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(stream) = connect_from(source(1_000 + i), echo).await else {
                    break;
                };
                let mut c = BufReader::new(stream);
                if c.get_mut()
                    .write_all(format!("AUTH X-TRAP {initial}\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_secs(30), line(&mut c)).await;
                exchanges += 1;
            }
            exchanges
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = echo_load(run.echo, opts, 100_000).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut exchanges = 0;
    while let Some(n) = attackers.join_next().await {
        exchanges += n?;
    }
    row(
        &format!(
            "echo logins, 2 clients running X-TRAP lookups:{}",
            opts.lookups
        ),
        format!("{} ({exchanges} flood exchanges)", during.summary()),
    );
    Ok(())
}

/// Every figure, one server after another.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::servers::raise_nofile();
    println!("| measurement | result |\n| --- | --- |");

    let run1 = start(&opts, &[]).await?;
    let pid = run1.server.pid();
    let before = rss_kib(pid)?;
    let started = Instant::now();
    let (open, failed, first) = open_idle(run1.echo, opts.sessions, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = rss_kib(pid).context("server gone")?;
    row(
        &format!("RSS, {} logged-in idle echo sessions", opts.sessions),
        format!(
            "{before} KiB before, {with} KiB with {} ({:.1} KiB each; opened in {:.1} s{})",
            open.len(),
            (with.saturating_sub(before)) as f64 / open.len().max(1) as f64,
            started.elapsed().as_secs_f64(),
            if failed > 0 {
                format!("; {failed} FAILED: {}", first.unwrap_or_default())
            } else {
                String::new()
            }
        ),
    );
    row(
        "echo logins/s with them held",
        echo_load(run1.echo, &opts, 100_000).await.summary(),
    );
    drop(open);
    drop(run1);

    let run2 = start(&opts, &[]).await?;
    let pid = run2.server.pid();
    let before = rss_kib(pid)?;
    let (open, failed, first) = open_idle(run2.smtp, opts.sessions, false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = rss_kib(pid).context("server gone")?;
    row(
        &format!("RSS, {} idle SMTP sessions", opts.sessions),
        format!(
            "{before} KiB before, {with} KiB with {} ({:.1} KiB each{})",
            open.len(),
            (with.saturating_sub(before)) as f64 / open.len().max(1) as f64,
            if failed > 0 {
                format!("; {failed} FAILED: {}", first.unwrap_or_default())
            } else {
                String::new()
            }
        ),
    );
    row(
        "SMTP AUTH PLAIN logins/s with them held",
        smtp_load(run2.smtp, &opts).await.summary(),
    );
    drop(open);
    drop(run2);

    reload_figures(&opts).await?;
    lookup_figures(&opts).await?;
    Ok(())
}
