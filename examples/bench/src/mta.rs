//! `portcullis-bench mta`: logins/s through a real Postfix whose SASL is
//! portcullis (over Dovecot's auth protocol) against the same Postfix whose
//! SASL is Dovecot 2.3's own auth service, with the same user (a password
//! in memory for portcullis, a `{PLAIN}` passwd-file entry for Dovecot) and
//! no failure delay in either, at 1, 16 and 64 clients, in one run.
//!
//! One Postfix serves both: two smtpd ports, each with its own
//! `smtpd_sasl_path`. The load is this crate's SMTP login (connect, EHLO,
//! AUTH PLAIN, QUIT), run on one thread (a current-thread tokio runtime),
//! as an independent single-threaded client would; Postfix, the auth
//! server and the load share the machine's cores.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::process::Command;

use crate::postfix::Postfix;
use crate::servers::{Server, free_port};
use crate::smtp::{self, Mech};
use crate::stats::{self, Bounds, Rate};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// The portcullis binary (default: beside this one).
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    /// Length of each load.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Logins started per load, at most.
    #[arg(long, default_value_t = 40_000)]
    pub max_count: u64,
    /// Concurrent clients of each load, comma-separated.
    #[arg(long, default_value = "1,16,64", value_delimiter = ',')]
    pub clients: Vec<usize>,
}

const USER: &str = "guest";
const PASS: &str = "password";

pub async fn run(opts: Options) -> anyhow::Result<()> {
    crate::servers::raise_nofile();
    for tool in ["/usr/sbin/postfix", "/usr/sbin/dovecot"] {
        if !Path::new(tool).exists() {
            bail!("{tool} is not installed: run tests/setup.sh (as root)");
        }
    }
    let dir = crate::postfix::scratch_dir("mta")?;
    let result = measure(&opts, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn measure(opts: &Options, dir: &Path) -> anyhow::Result<()> {
    let portcullis_socket = dir.join("portcullis-auth");
    let dovecot_socket = dir.join("dovecot-auth");
    let _portcullis = start_portcullis(opts, dir, &portcullis_socket).await?;
    let _dovecot = start_dovecot(dir, &dovecot_socket, &format!("{{PLAIN}}{PASS}")).await?;
    let (ours, theirs) = (free_port()?, free_port()?);
    let sasl = |socket: &Path| format!("-o smtpd_sasl_path={}", socket.display());
    let _postfix = Postfix::start(
        dir,
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
         smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
        &[
            (ours, sasl(&portcullis_socket)),
            (theirs, sasl(&dovecot_socket)),
        ],
    )
    .await?;

    println!(
        "Logins/s through Postfix {} (connect, EHLO, AUTH PLAIN, QUIT; one load \
         generator thread; {} s per load):\n",
        crate::postfix::version().await,
        opts.seconds
    );
    println!("| clients | Postfix + portcullis | Postfix + Dovecot 2.3 auth | ratio |");
    println!("| --- | --- | --- | --- |");
    for &clients in &opts.clients {
        let ours = load(ours, clients, opts).await?;
        let theirs = load(theirs, clients, opts).await?;
        println!(
            "| {clients} | {} | {} | {:.2} |",
            ours.summary(),
            theirs.summary(),
            ours.per_second() / theirs.per_second().max(1e-9)
        );
    }
    Ok(())
}

/// One load, on a thread of its own with a current-thread runtime.
async fn load(addr: SocketAddr, clients: usize, opts: &Options) -> anyhow::Result<Rate> {
    let bounds = Bounds {
        clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count: opts.max_count,
    };
    let mech = Mech::Plain {
        user: USER.into(),
        pass: PASS.into(),
    };
    let (rate, _cpu) = tokio::task::spawn_blocking(move || {
        stats::run_on_one_thread(bounds, move || {
            let mech = mech.clone();
            async move { smtp::login(addr, &mech).await }
        })
    })
    .await?;
    Ok(rate)
}

async fn start_portcullis(opts: &Options, dir: &Path, socket: &Path) -> anyhow::Result<Server> {
    let binary = match &opts.portcullis {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("portcullis"),
    };
    let config = dir.join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nprotocol = \"dovecot\"\npath = \"{}\"\nmode = \"0666\"\n",
            socket.display()
        ),
    )?;
    let mut cmd = Command::new(&binary);
    cmd.arg("--config")
        .arg(&config)
        .args(["--auth", &format!("memory:{USER}:{PASS}")])
        .args(["--auth-failure-delay", "0s", "--log", "warn"]);
    let server = Server::spawn("portcullis", cmd)
        .with_context(|| format!("starting {}", binary.display()))?;
    wait_for_socket(socket).await?;
    Ok(server)
}

/// Dovecot's auth service on `socket`, with one passwd-file user: the
/// bench's user and `stored` (a Dovecot `{SCHEME}…` field).
pub async fn start_dovecot(dir: &Path, socket: &Path, stored: &str) -> anyhow::Result<Server> {
    let root = dir.join("dovecot");
    std::fs::create_dir_all(root.join("run"))?;
    std::fs::create_dir_all(root.join("state"))?;
    let users = root.join("users");
    std::fs::write(&users, format!("{USER}:{stored}\n"))?;
    let r = root.display();
    let config = root.join("dovecot.conf");
    std::fs::write(
        &config,
        format!(
            "base_dir = {r}/run\nstate_dir = {r}/state\nlog_path = {r}/dovecot.log\n\
             protocols =\nlisten = 127.0.0.1\nssl = no\n\
             auth_mechanisms = plain login\ndisable_plaintext_auth = no\n\
             auth_failure_delay = 0\n\
             passdb {{\n  driver = passwd-file\n  args = {}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n\
             service auth {{\n  unix_listener {} {{\n    mode = 0666\n  }}\n}}\n",
            users.display(),
            socket.display()
        ),
    )?;
    let mut cmd = Command::new("dovecot");
    cmd.arg("-c").arg(&config).arg("-F");
    let server = Server::spawn("dovecot", cmd)?;
    wait_for_socket(socket).await?;
    Ok(server)
}

async fn wait_for_socket(path: &Path) -> anyhow::Result<()> {
    let start = Instant::now();
    while tokio::net::UnixStream::connect(path).await.is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("nothing listens on {} after 30 s", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
