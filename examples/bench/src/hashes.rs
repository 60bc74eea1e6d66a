//! `portcullis-bench hashes`: what checking an expensive password hash
//! costs portcullis, against the same check compiled natively and against
//! Dovecot checking the same hash. The file checker hands slow hashes to
//! the host's native verifier (the `password-hash` import) when they are
//! within its caps, as these are, or checks them in Wasm when the operator
//! turns that off.
//!
//! For each scheme (Argon2id and bcrypt made by `portcullis password` with
//! its defaults, SHA-512-crypt made by `doveadm pw`):
//!
//! - **native**: `password_fields::verify`, the code the file checker
//!   runs, compiled into this binary and timed on one thread (CPU time per
//!   check);
//! - **portcullis**: the file checker (Wasm, the hash verified through
//!   `password-hash`) behind portcullis's Dovecot auth listener; server CPU
//!   per login, logins/s, and the checker call's time per login from the
//!   metrics page; then the same with `--plugin-native-hashes no`, the
//!   hash verified inside the sandbox;
//! - **Dovecot**: `dovecot` with a passwd-file holding the same hash (with
//!   its `{SCHEME}` prefix) on its auth socket; CPU per login of all its
//!   processes.
//!
//! Both servers get the same client: Dovecot's auth protocol (`VERSION`,
//! `CPID`, `AUTH … PLAIN resp=…`), a new connection per login, from one
//! load thread. Loads are bounded in time and count.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};

use crate::servers::{self, Paths, Server};
use crate::stats::{self, Bounds, Rate};

const USER: &str = "guest";
pub(crate) const PASS: &str = "password";

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Concurrent clients of each load, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub clients: Vec<usize>,
    /// Seconds of load per server and client count.
    #[arg(long, default_value_t = 4.0)]
    pub seconds: f64,
    /// Logins per load, at most.
    #[arg(long, default_value_t = 2000)]
    pub max_count: u64,
    /// Leave Dovecot out.
    #[arg(long)]
    pub no_dovecot: bool,
}

/// One scheme's stored forms.
struct Hash {
    scheme: &'static str,
    /// As the file checker reads it (PHC or crypt string).
    field: String,
    /// As Dovecot reads it: `{SCHEME}` and the same string.
    dovecot: String,
}

/// Runs `portcullis password` (or `doveadm pw`) with the password on
/// stdin; its output line.
pub(crate) fn generate(program: &Path, args: &[&str]) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    // `portcullis password` reads one line; `doveadm pw -p` ignores stdin.
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{PASS}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn hashes(paths: &Paths) -> anyhow::Result<Vec<Hash>> {
    let mut out = Vec::new();
    for (scheme, name) in [("argon2id", "ARGON2ID"), ("bcrypt", "BLF-CRYPT")] {
        let field = generate(&paths.portcullis, &["password", "--scheme", scheme])?;
        out.push(Hash {
            scheme: name,
            dovecot: format!("{{{name}}}{field}"),
            field,
        });
    }
    let doveadm = which("doveadm").context("doveadm not found (apt-get install dovecot-core)")?;
    let dovecot = generate(&doveadm, &["pw", "-s", "SHA512-CRYPT", "-p", PASS])?;
    let field = dovecot
        .strip_prefix("{SHA512-CRYPT}")
        .with_context(|| format!("doveadm pw printed {dovecot:?}"))?
        .to_owned();
    out.push(Hash {
        scheme: "SHA512-CRYPT",
        field,
        dovecot,
    });
    Ok(out)
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

/// CPU time per native check, on one thread, over at least `at_least`.
fn native(field: &str, at_least: Duration) -> anyhow::Result<(Duration, u32)> {
    let field = field.to_owned();
    let (result, cpu) = stats::on_one_thread(move || async move {
        let start = Instant::now();
        let mut n = 0u32;
        while n < 3 || start.elapsed() < at_least {
            anyhow::ensure!(
                password_fields::hash::verify(PASS, &field) == Ok(true),
                "the native check refused the password"
            );
            n += 1;
        }
        anyhow::Ok(n)
    });
    let n = result?;
    Ok((cpu / n, n))
}

/// One login over Dovecot's auth protocol on `stream`.
async fn auth_login<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> anyhow::Result<()> {
    let mut stream = BufReader::new(stream);
    let resp = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let request = format!(
        "VERSION\t1\t2\nCPID\t{}\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp={resp}\n",
        std::process::id()
    );
    stream.get_mut().write_all(request.as_bytes()).await?;
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            bail!("the server closed the connection");
        }
        if line.starts_with("OK\t1") {
            return Ok(());
        }
        if line.starts_with("FAIL\t1") {
            bail!("login failed: {}", line.trim_end());
        }
    }
}

#[derive(Clone)]
enum Peer {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

async fn login(peer: &Peer) -> anyhow::Result<()> {
    match peer {
        Peer::Tcp(addr) => auth_login(tokio::net::TcpStream::connect(addr).await?).await,
        Peer::Unix(path) => auth_login(tokio::net::UnixStream::connect(path).await?).await,
    }
}

/// A load's figures.
struct Load {
    clients: usize,
    rate: Rate,
    /// Server CPU per successful login.
    cpu_per_login: Duration,
    /// portcullis only: the checker plugin's call time per login.
    checker_us: Option<f64>,
}

async fn load(
    peer: Peer,
    clients: usize,
    opts: &Options,
    cpu: impl Fn() -> anyhow::Result<Duration>,
    metrics: Option<SocketAddr>,
) -> anyhow::Result<Load> {
    // Warm up: compile, fill caches, start Dovecot's workers.
    login(&peer).await.context("the first login")?;
    let before_metrics = match metrics {
        Some(m) => Some(crate::metrics::scrape(m).await?),
        None => None,
    };
    let bounds = Bounds {
        clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count: opts.max_count,
    };
    let cpu_before = cpu()?;
    let rate = stats::run_on_one_thread_async(bounds, move || {
        let peer = peer.clone();
        async move { login(&peer).await }
    })
    .await;
    let used = cpu()?.saturating_sub(cpu_before);
    let checker_us = match (metrics, before_metrics) {
        (Some(m), Some(before)) => {
            let delta = crate::metrics::scrape(m).await?.since(&before);
            let call = delta.get("checker", crate::metrics::Phase::Call).seconds
                + delta
                    .get("checker", crate::metrics::Phase::Instantiate)
                    .seconds;
            Some(call * 1e6 / rate.ok.max(1) as f64)
        }
        _ => None,
    };
    Ok(Load {
        clients,
        cpu_per_login: used / rate.ok.max(1) as u32,
        rate,
        checker_us,
    })
}

/// portcullis's loads, the hash verified by the host (`native`) or inside
/// the checker (`--plugin-native-hashes no`).
async fn portcullis_loads(
    paths: &Paths,
    dir: &Path,
    hash: &Hash,
    opts: &Options,
    native: bool,
) -> anyhow::Result<Vec<Load>> {
    let file = dir.join(format!("{}.txt", hash.scheme));
    std::fs::write(&file, format!("{USER}:{}\n", hash.field))?;
    let (smtp, echo, metrics, dovecot) = (
        servers::free_port()?,
        servers::free_port()?,
        servers::free_port()?,
        servers::free_port()?,
    );
    let auth = format!("file:{}", file.display());
    let mut cmd = paths.portcullis(smtp, echo, Some(metrics), &["--auth", &auth]);
    cmd.arg("--dovecot-listen").arg(dovecot.to_string());
    cmd.arg("--plugin-native-hashes")
        .arg(if native { "yes" } else { "no" });
    let mut server = Server::spawn("portcullis", cmd)?;
    server.wait(echo, Instant::now()).await?;
    server.wait(dovecot, Instant::now()).await?;
    let pid = server.pid();
    let mut loads = Vec::new();
    for &clients in &opts.clients {
        let cpu = || servers::process_cpu(pid);
        loads.push(load(Peer::Tcp(dovecot), clients, opts, cpu, Some(metrics)).await?);
    }
    Ok(loads)
}

async fn dovecot_loads(dir: &Path, hash: &Hash, opts: &Options) -> anyhow::Result<Vec<Load>> {
    let root = dir.join(format!("dovecot-{}", hash.scheme));
    std::fs::create_dir_all(&root)?;
    let socket = root.join("auth");
    let server = crate::mta::start_dovecot(&root, &socket, &hash.dovecot).await?;
    let pid = server.pid();
    let mut loads = Vec::new();
    for &clients in &opts.clients {
        let cpu = || servers::tree_cpu(pid);
        loads.push(load(Peer::Unix(socket.clone()), clients, opts, cpu, None).await?);
    }
    drop(server);
    Ok(loads)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    servers::raise_nofile();
    let paths = Paths::find(Path::new(""))?;
    let dir = std::env::temp_dir().join(format!("portcullis-bench-hashes-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let started = Instant::now();
    let mut out = format!(
        "Checking one password hash: native (this binary, one thread), portcullis's file \
         checker (Wasm, handing the hash to the host's native verifier, `password-hash`) behind \
         its Dovecot auth listener, and Dovecot's passwd-file with the same hash. One load thread, Dovecot's auth protocol, a new connection per login, {} s \
         or {} logins per load. CPU is user + system time per successful login, of the whole \
         server (Dovecot: all its processes).\n\n\
         The file checker runs twice: as shipped, handing the hash to the host's native \
         verifier (`password-hash`), and with `--plugin-native-hashes no`, verifying it inside \
         the sandbox.\n\n\
         | scheme | clients | native CPU / check | portcullis CPU / login (checker call) | \
         logins/s | in Wasm: CPU / login (checker call) | logins/s | Dovecot CPU / login | \
         logins/s | portcullis ÷ native (CPU) | in Wasm ÷ native (CPU) | portcullis ÷ Dovecot \
         (CPU) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        opts.seconds, opts.max_count
    );
    for hash in hashes(&paths)? {
        eprintln!("portcullis-bench hashes: {}", hash.scheme);
        let (native, checks) = native(&hash.field, Duration::from_secs(2))?;
        eprintln!(
            "portcullis-bench hashes: {} native {} per check ({checks} checks)",
            hash.scheme,
            ms(native)
        );
        let ours = portcullis_loads(&paths, &dir, &hash, &opts, true).await?;
        let sandboxed = portcullis_loads(&paths, &dir, &hash, &opts, false).await?;
        let theirs = if opts.no_dovecot {
            Vec::new()
        } else {
            match dovecot_loads(&dir, &hash, &opts).await {
                Ok(loads) => loads,
                Err(e) => {
                    eprintln!("portcullis-bench hashes: Dovecot: {e:#}");
                    Vec::new()
                }
            }
        };
        let failed = |l: &Load| {
            if l.rate.failed > 0 {
                format!(
                    " ({} failed: {})",
                    l.rate.failed,
                    l.rate.first_error.as_deref().unwrap_or("?")
                )
            } else {
                String::new()
            }
        };
        let cpu = |l: &Load| {
            format!(
                "{} ({})",
                ms(l.cpu_per_login),
                l.checker_us
                    .map_or("–".into(), |us| format!("{:.2} ms", us / 1e3))
            )
        };
        let rate = |l: &Load| format!("{:.1}{}", l.rate.per_second(), failed(l));
        let ratio = |a: Duration, b: Duration| {
            format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
        };
        for ours in &ours {
            let theirs = theirs.iter().find(|l| l.clients == ours.clients);
            let wasm = sandboxed.iter().find(|l| l.clients == ours.clients);
            out += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                hash.scheme,
                ours.clients,
                ms(native),
                cpu(ours),
                rate(ours),
                wasm.map_or("–".into(), cpu),
                wasm.map_or("–".into(), rate),
                theirs.map_or("–".into(), |t| ms(t.cpu_per_login)),
                theirs.map_or("–".into(), rate),
                ratio(ours.cpu_per_login, native),
                wasm.map_or("–".into(), |w| ratio(w.cpu_per_login, native)),
                theirs.map_or("–".into(), |t| ratio(ours.cpu_per_login, t.cpu_per_login)),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    out += &format!(
        "\nOne run, {:.0} s in all.\n",
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
    Ok(())
}
