//! `portcullis-bench relay`: messages/s accepted by a real Postfix
//! directly against the same Postfix behind portcullis's relay realm, at
//! 1 and 16 clients, in one run.
//!
//! Each operation is one submission as a mail client makes it: connect,
//! EHLO, (AUTH PLAIN at portcullis), MAIL, RCPT, DATA, a 1 KiB message,
//! QUIT; its 250 after the dot is the count. Through portcullis that 250
//! comes only after Postfix's own 250 to the same message (portcullis opens
//! its connection to Postfix at MAIL, passes the client on with XCLIENT,
//! and relays each command), so the ratio is what the extra hop costs a
//! client. Postfix takes the direct load from its `mynetworks` without
//! AUTH, since it has no SASL here; portcullis's figure includes its
//! login. Postfix queues every message (written and synced in its queue)
//! and hands it to `discard`, so nothing grows on disk.
//!
//! The load runs on one thread (a current-thread tokio runtime), as an
//! independent single-threaded client would; Postfix, portcullis and the
//! load share the machine's cores.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::process::Command;

use crate::postfix::Postfix;
use crate::servers::{Server, free_port};
use crate::smtp::Conn;
use crate::stats::{self, Bounds, Rate};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The portcullis binary (default: beside this one).
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    /// Length of each load.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Messages started per load, at most.
    #[arg(long, default_value_t = 20_000)]
    pub max_count: u64,
    /// Concurrent clients of each load, comma-separated.
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    pub clients: Vec<usize>,
}

const USER: &str = "guest";
const PASS: &str = "password";

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::servers::raise_nofile();
    if !Path::new("/usr/sbin/postfix").exists() {
        bail!("/usr/sbin/postfix is not installed: run tests/setup.sh (as root)");
    }
    let dir = crate::postfix::scratch_dir("relay")?;
    let result = measure(&opts, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(opts: &Options, dir: &Path) -> anyhow::Result<()> {
    let postfix_addr = free_port()?;
    let _postfix = Postfix::start(
        dir,
        "mynetworks = 127.0.0.0/8\nsmtpd_relay_restrictions = permit_mynetworks, reject\n\
         smtpd_authorized_xclient_hosts = 127.0.0.0/8\n\
         default_transport = discard\nrelay_transport = discard\n",
        &[(postfix_addr, String::new())],
    )
    .await?;
    let portcullis_addr = free_port()?;
    let mut portcullis = start_portcullis(opts, dir, portcullis_addr, postfix_addr)?;
    portcullis.wait(portcullis_addr, Instant::now()).await?;

    println!(
        "Messages/s accepted (250 after the dot) by Postfix {} directly and through \
         portcullis's relay realm (XCLIENT on; one message per connection; one load \
         generator thread; {} s per load):\n",
        crate::postfix::version().await,
        opts.seconds
    );
    println!("| clients | Postfix directly | through portcullis | ratio |");
    println!("| --- | --- | --- | --- |");
    for &clients in &opts.clients {
        let direct = load(postfix_addr, false, clients, opts).await?;
        let relayed = load(portcullis_addr, true, clients, opts).await?;
        println!(
            "| {clients} | {} | {} | {:.2} |",
            direct.summary(),
            relayed.summary(),
            relayed.per_second() / direct.per_second().max(1e-9)
        );
    }
    Ok(())
}

/// One submission: connect, EHLO, AUTH PLAIN when `login`, one message, QUIT.
async fn submit(addr: SocketAddr, login: bool, body: &str) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    c.expect(220, "greeting").await?;
    c.command("EHLO bench.invalid", 250).await?;
    if login {
        let ir = B64.encode(format!("\0{USER}\0{PASS}"));
        c.command(&format!("AUTH PLAIN {ir}"), 235).await?;
    }
    c.command("MAIL FROM:<bench@example.test>", 250).await?;
    c.command("RCPT TO:<sink@example.test>", 250).await?;
    c.command("DATA", 354).await?;
    c.send(body).await?;
    c.command(".", 250).await?;
    c.command("QUIT", 221).await?;
    Ok(())
}

/// A message of about 1 KiB, CRLF-terminated lines, no final dot.
fn message() -> String {
    let mut m = String::from(
        "From: <bench@example.test>\r\nTo: <sink@example.test>\r\nSubject: relay bench\r\n\r\n",
    );
    while m.len() < 1024 {
        m += "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    }
    m.truncate(m.len() - 2);
    m
}

/// One load, on a thread of its own with a current-thread runtime.
async fn load(
    addr: SocketAddr,
    login: bool,
    clients: usize,
    opts: &Options,
) -> anyhow::Result<Rate> {
    let bounds = Bounds {
        clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count: opts.max_count,
    };
    let body = std::sync::Arc::new(message());
    let (rate, _cpu) = tokio::task::spawn_blocking(move || {
        stats::run_on_one_thread(bounds, move || {
            let body = body.clone();
            async move { submit(addr, login, &body).await }
        })
    })
    .await?;
    Ok(rate)
}

fn start_portcullis(
    opts: &Options,
    dir: &Path,
    listen: SocketAddr,
    next_hop: SocketAddr,
) -> anyhow::Result<Server> {
    let binary = match &opts.portcullis {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("portcullis"),
    };
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nprotocol = \"smtp\"\naddress = \"{listen}\"\n\n\
             [[realm]]\nserves = \"message-delivery\"\nbuiltin = \"relay\"\n\
             next-hop = \"smtp://{next_hop}\"\nxclient = true\n"
        ),
    )?;
    let mut cmd = Command::new(&binary);
    cmd.arg("--config")
        .arg(&config)
        .args(["--auth", &format!("memory:{USER}:{PASS}")])
        .args(["--auth-failure-delay", "0s", "--log", "warn"]);
    Server::spawn("portcullis", cmd).with_context(|| format!("starting {}", binary.display()))
}
