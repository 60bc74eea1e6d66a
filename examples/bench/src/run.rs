//! `portcullis-bench all`: starts every server, runs every measurement with
//! the same generator in one run, and hands the numbers to [`report`].
//!
//! [`report`]: crate::report

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::echo::{self, Echo};
use crate::metrics::{self, Snapshot};
use crate::scram::ScramClient;
use crate::servers::{NOT_INSTALLED, Paths, Server, free_port, raise_nofile};
use crate::smtp::{self, Mech};
use crate::stats::{self, Bounds, Rate};

#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// A smoke run: short loads and small counts, to check that everything
    /// works end to end. Its numbers mean little.
    #[arg(long)]
    pub quick: bool,
    /// Seconds per load [default: 5; with --quick 0.5].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Operations per load, at most [default: 200000; with --quick 2000].
    #[arg(long)]
    pub max_count: Option<u64>,
    /// Concurrent clients of the login loads.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64])]
    pub clients: Vec<usize>,
    /// Logged-in echo connections for lines/s [default: 64; with --quick 8].
    #[arg(long)]
    pub echo_conns: Option<usize>,
    /// Lines each echo connection sends.
    #[arg(long, default_value_t = 1000)]
    pub lines: usize,
    /// Lines per pipelined batch.
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Idle SMTP sessions for the memory measurement [default: 10000;
    /// with --quick 500].
    #[arg(long)]
    pub idle_sessions: Option<usize>,
    /// Warm starts timed (the median is reported) [default: 5; with
    /// --quick 2].
    #[arg(long)]
    pub warm_starts: Option<usize>,
    /// The venv examples/bench/setup.sh made.
    #[arg(long, default_value = "/tmp/portcullis-bench-venv")]
    pub venv: PathBuf,
    /// Leave out the peers (smtp-sink, Twisted, aiosmtpd).
    #[arg(long)]
    pub no_peers: bool,
    /// Do not build portcullis first (when run by `cargo run`).
    #[arg(long)]
    pub no_build: bool,
    /// Also write the report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The counts and durations in force.
#[derive(Clone, Debug)]
pub struct Plan {
    pub quick: bool,
    pub seconds: f64,
    pub max_count: u64,
    pub clients: Vec<usize>,
    pub echo_conns: usize,
    pub lines: usize,
    pub batch: usize,
    pub idle_sessions: usize,
    pub warm_starts: usize,
}

impl Options {
    pub fn plan(&self) -> Plan {
        let q = self.quick;
        Plan {
            quick: q,
            seconds: self.seconds.unwrap_or(if q { 0.5 } else { 5.0 }),
            max_count: self.max_count.unwrap_or(if q { 2000 } else { 200_000 }),
            clients: self.clients.clone(),
            echo_conns: self.echo_conns.unwrap_or(if q { 8 } else { 64 }),
            lines: self.lines,
            batch: self.batch,
            idle_sessions: self.idle_sessions.unwrap_or(if q { 500 } else { 10_000 }),
            warm_starts: self.warm_starts.unwrap_or(if q { 2 } else { 5 }),
        }
    }
}

/// Where every login load comes from (exempt from per-address limits);
/// the session-memory loads come from 127.1.0.0/16 and are not.
pub const LOAD_NET: &str = "127.0.0.1/32";
pub const USER: &str = "guest";
pub const PASS: &str = "password";
const SCRAM_USER: &str = "bench";

/// The servers, by the names the report uses.
pub const WASM: &str = "portcullis";
pub const NATIVE: &str = "portcullis native";
pub const SCRAM: &str = "portcullis scram";
pub const BARE: &str = "bare echo";
pub const SINK: &str = "smtp-sink";
pub const TWISTED: &str = "Twisted";
pub const AIOSMTPD: &str = "aiosmtpd";
pub const TWISTED_ECHO: &str = "Twisted echo";

/// What the metrics page said about one load on a portcullis server.
#[derive(Clone, Debug)]
pub struct Hook {
    pub what: String,
    pub server: &'static str,
    /// The load's successful operations (logins or lines).
    pub ops: u64,
    pub delta: Snapshot,
}

/// Everything measured.
#[derive(Default)]
pub struct Results {
    /// By (measurement, server).
    pub rates: BTreeMap<(String, String), Rate>,
    /// Servers not measured, and why.
    pub missing: BTreeMap<String, String>,
    /// Echo lines/s by server, or what went wrong.
    pub lines: BTreeMap<String, Result<f64, String>>,
    pub hooks: Vec<Hook>,
    /// Set when the native server turned out to run the Wasm path.
    pub native_problem: Option<String>,
    /// Server RSS in KiB before and with the idle SMTP sessions.
    pub rss: Option<Result<(u64, u64), String>>,
    /// The same with logged-in echo sessions.
    pub echo_rss: Option<Result<(u64, u64), String>>,
    /// The file and SQLite checkers at several sizes
    /// (`portcullis-bench files`), as Markdown.
    pub files: Option<Result<crate::files::Measured, String>>,
    /// Cold and warm start.
    pub startup: Option<Result<(Duration, Duration), String>>,
    /// The host's `sandbox_cost` example: its report, and its summary
    /// (plugin µs per login in process, µs floor of one fresh instance).
    pub sandbox: Option<Result<Sandbox, String>>,
}

/// What the `sandbox_cost` example printed.
pub struct Sandbox {
    pub text: String,
    pub login_us: f64,
    pub floor_us: f64,
    /// Fresh instances one login makes.
    pub instances: u32,
}

/// Runs the host's `sandbox_cost` example (alone: every server of the
/// loads is gone) and reads its summary line.
fn sandbox_cost(paths: &Paths) -> anyhow::Result<Sandbox> {
    let Some(path) = &paths.sandbox_cost else {
        anyhow::bail!(
            "not built: cargo build --release -p portcullis --example sandbox_cost \
             (portcullis-bench builds it unless --no-build)"
        );
    };
    let out = std::process::Command::new(path)
        .arg("30000")
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let summary = text
        .lines()
        .find_map(|l| l.strip_prefix("summary: "))
        .context("no summary line")?;
    let words: Vec<&str> = summary.split_whitespace().collect();
    let (login_us, floor_us, instances) = match words[..] {
        ["login", login, "floor", floor, "instances", n] => {
            (login.parse()?, floor.parse()?, n.parse()?)
        }
        _ => anyhow::bail!("unexpected summary line {summary:?}"),
    };
    let text = text
        .lines()
        .filter(|l| !l.starts_with("summary: "))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Sandbox {
        text,
        login_us,
        floor_us,
        instances,
    })
}

pub fn note(text: &str) {
    eprintln!("portcullis-bench: {text}");
}

/// A server under load.
#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
}

fn clients_text(clients: usize) -> String {
    match clients {
        1 => "1 client".into(),
        n => format!("{n} clients"),
    }
}
pub fn plain_what(clients: usize) -> String {
    format!("AUTH PLAIN, {}", clients_text(clients))
}
pub fn scram_what(clients: usize) -> String {
    format!("SCRAM-SHA-256, {}", clients_text(clients))
}
pub fn echo_what(clients: usize) -> String {
    format!("echo logins, {}", clients_text(clients))
}
pub fn lines_what(plan: &Plan) -> String {
    format!(
        "echo lines, {} connections × {} lines",
        plan.echo_conns, plan.lines
    )
}

impl Results {
    /// Runs one bounded load, and for a server with a metrics page takes
    /// the plugin times it spent.
    async fn measure<F, Fut>(&mut self, what: String, target: Target, bounds: Bounds, op: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send,
    {
        let before = match target.metrics {
            Some(m) => metrics::scrape(m).await.ok(),
            None => None,
        };
        // One load thread, as an independent single-threaded client.
        let rate = stats::run_on_one_thread_async(bounds, op).await;
        note(&format!("{what}, {}: {}", target.name, rate.summary()));
        if let (Some(m), Some(before)) = (target.metrics, before)
            && let Ok(after) = metrics::scrape(m).await
        {
            self.hooks.push(Hook {
                what: what.clone(),
                server: target.name,
                ops: rate.ok,
                delta: after.since(&before),
            });
        }
        self.rates.insert((what, target.name.to_owned()), rate);
    }
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let plan = opts.plan();
    let nofile = raise_nofile();
    note(&format!("open-file limit raised to {nofile}"));
    if (nofile as usize) < plan.idle_sessions + 1000 {
        note(&format!(
            "the open-file hard limit {nofile} is too low for {} idle sessions: raise it (ulimit -Hn)",
            plan.idle_sessions
        ));
    }
    let paths = Paths::find(&opts.venv)?;
    let mut results = Results::default();
    let mut servers: Vec<(SocketAddr, Server)> = Vec::new();

    // portcullis: the Wasm path, the native path, SCRAM with stored keys.
    let max_sessions = (plan.idle_sessions + 2000).to_string();
    let mem = format!("memory:{USER}:{PASS}");
    // The load comes from one address, as from an MTA or proxy in front,
    // which an operator exempts from the per-address limits: at 64
    // clients, sessions still closing would otherwise count against it.
    let common = [
        "--max-sessions",
        max_sessions.as_str(),
        "--auth",
        mem.as_str(),
        "--client-limit-exempt",
        LOAD_NET,
    ];
    let mut portcullis =
        |name: &'static str, extra: &[&str], native: bool| -> anyhow::Result<(Target, Target)> {
            let (smtp, echo, metrics) = (free_port()?, free_port()?, free_port()?);
            let mut cmd = paths.portcullis(smtp, echo, Some(metrics), extra);
            if native {
                cmd.env("PORTCULLIS_BENCH_NATIVE", format!("{USER}:{PASS}"));
            }
            // The echo listener is bound last: once it accepts, all do.
            servers.push((echo, Server::spawn(name, cmd)?));
            let metrics = Some(metrics);
            Ok((
                Target {
                    name,
                    addr: smtp,
                    metrics,
                },
                Target {
                    name,
                    addr: echo,
                    metrics,
                },
            ))
        };
    let (w_smtp, w_echo) = portcullis(WASM, &common, false)?;
    let (n_smtp, n_echo) = portcullis(NATIVE, &common, true)?;
    let scram_dir = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scram_dir)?;
    let scram_file = scram_dir.join("passwords.txt");
    let entry = scram_entry(&paths, PASS).await?;
    std::fs::write(&scram_file, format!("{SCRAM_USER}:{entry}\n"))?;
    let file = format!("file:{}", scram_file.display());
    let (s_smtp, _) = portcullis(
        SCRAM,
        &["--auth", &file, "--client-limit-exempt", LOAD_NET],
        false,
    )?;
    // The bare echo, in its own process like every other server.
    let bare = Target {
        name: BARE,
        addr: free_port()?,
        metrics: None,
    };
    let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
    cmd.args(["bare-echo", "--listen", &bare.addr.to_string()]);
    servers.push((bare.addr, Server::spawn(BARE, cmd)?));
    for (addr, server) in &mut servers {
        server.wait(*addr, Instant::now()).await?;
    }

    // The peers: each one that is installed and starts.
    let mut peers: Vec<Target> = Vec::new();
    let mut echo_peer = None;
    if opts.no_peers {
        for name in [SINK, TWISTED, AIOSMTPD, TWISTED_ECHO] {
            results
                .missing
                .insert(name.into(), "left out (--no-peers)".into());
        }
    } else {
        let has_python = paths.python.is_file();
        let twisted = has_python && paths.python_has("twisted.mail.smtp");
        let aiosmtpd = has_python && paths.python_has("aiosmtpd.smtp");
        let candidates: [(&'static str, bool); 4] = [
            (SINK, paths.smtp_sink.is_some()),
            (TWISTED, twisted),
            (AIOSMTPD, aiosmtpd),
            (TWISTED_ECHO, twisted),
        ];
        for (name, installed) in candidates {
            if !installed {
                results.missing.insert(name.into(), NOT_INSTALLED.into());
                continue;
            }
            let addr = free_port()?;
            let cmd = match name {
                SINK => paths.smtp_sink(addr).context("smtp-sink")?,
                TWISTED => paths.python_peer("twisted_smtp.py", addr.port(), USER, PASS),
                AIOSMTPD => paths.python_peer("aiosmtpd_smtp.py", addr.port(), USER, PASS),
                _ => paths.python_peer("twisted_echo.py", addr.port(), USER, PASS),
            };
            let started = match Server::spawn(name, cmd) {
                Ok(mut server) => server.wait(addr, Instant::now()).await.map(|_| server),
                Err(e) => Err(e),
            };
            match started {
                Ok(server) => {
                    servers.push((addr, server));
                    let target = Target {
                        name,
                        addr,
                        metrics: None,
                    };
                    if name == TWISTED_ECHO {
                        echo_peer = Some(target);
                    } else {
                        peers.push(target);
                    }
                }
                Err(e) => {
                    note(&format!("{name}: {e:#}"));
                    results
                        .missing
                        .insert(name.into(), format!("failed to start: {e:#}"));
                }
            }
        }
    }
    note("all servers listening");

    let bounds = |clients| Bounds {
        clients,
        duration: Duration::from_secs_f64(plan.seconds),
        max_count: plan.max_count,
    };
    let plain = Mech::Plain {
        user: USER.into(),
        pass: PASS.into(),
    };
    let mut smtp_targets = vec![w_smtp, n_smtp];
    smtp_targets.extend(peers.iter().copied());
    for &clients in &plan.clients {
        for target in &smtp_targets {
            let (m, addr) = (plain.clone(), target.addr);
            let op = move || {
                let m = m.clone();
                async move { smtp::login(addr, &m).await }
            };
            results
                .measure(plain_what(clients), *target, bounds(clients), op)
                .await;
        }
    }
    let scram = Mech::Scram(Arc::new(ScramClient::new(SCRAM_USER, PASS)));
    for &clients in &plan.clients {
        let m = scram.clone();
        let op = move || {
            let m = m.clone();
            async move { smtp::login(s_smtp.addr, &m).await }
        };
        results
            .measure(scram_what(clients), s_smtp, bounds(clients), op)
            .await;
    }

    let mut echo_targets = vec![(w_echo, false), (n_echo, false), (bare, true)];
    echo_targets.extend(echo_peer.map(|t| (t, false)));
    for &clients in &plan.clients {
        for (target, is_bare) in &echo_targets {
            let (addr, is_bare) = (target.addr, *is_bare);
            let op = move || async move { Echo::login(addr, USER, PASS, is_bare).await.map(drop) };
            results
                .measure(echo_what(clients), *target, bounds(clients), op)
                .await;
        }
    }
    for (target, is_bare) in &echo_targets {
        let what = lines_what(&plan);
        let before = match target.metrics {
            Some(m) => metrics::scrape(m).await.ok(),
            None => None,
        };
        let limit = Duration::from_secs(120);
        let (addr, bare, conns, lines, batch) = (
            target.addr,
            *is_bare,
            plan.echo_conns,
            plan.lines,
            plan.batch,
        );
        // One load thread, like the login loads.
        let load = tokio::task::spawn_blocking(move || {
            stats::on_one_thread(move || async move {
                let lines = echo::lines_per_second(addr, USER, PASS, bare, conns, lines, batch);
                tokio::time::timeout(limit, lines).await
            })
        });
        let (outcome, cpu) = load.await.expect("the load thread panicked");
        let outcome = match outcome {
            Ok(Ok((rate, took))) => {
                let share = 100.0 * cpu.as_secs_f64() / took.as_secs_f64().max(1e-9);
                note(&format!(
                    "{what}, {}: {rate:.0}/s in {took:?}, load thread {share:.0} % CPU",
                    target.name
                ));
                Ok(rate)
            }
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("not done after {limit:?}")),
        };
        if let (Some(m), Some(before)) = (target.metrics, before)
            && let Ok(after) = metrics::scrape(m).await
        {
            let ops = (plan.echo_conns * plan.lines) as u64;
            results.hooks.push(Hook {
                what: what.clone(),
                server: target.name,
                ops,
                delta: after.since(&before),
            });
        }
        results.lines.insert(target.name.into(), outcome);
    }
    results.native_problem = native_problem(&results, &plan);

    // Memory per session, each kind on a fresh server (one that served
    // the loads above would reuse their freed memory and look cheaper),
    // the sessions from many addresses as in `portcullis-bench resources`.
    for echo in [false, true] {
        let kind = if echo {
            "logged-in echo sessions"
        } else {
            "idle SMTP sessions"
        };
        let limit = Duration::from_secs(300);
        let rss = match tokio::time::timeout(limit, session_rss(&paths, &plan, echo)).await {
            Ok(Ok(rss)) => Ok(rss),
            Ok(Err(e)) => Err(format!("{e:#}")),
            Err(_) => Err(format!("not done after {limit:?}")),
        };
        note(&format!(
            "RSS before and with {} {kind} (KiB): {rss:?}",
            plan.idle_sessions
        ));
        if echo {
            results.echo_rss = Some(rss);
        } else {
            results.rss = Some(rss);
        }
    }

    drop(servers);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let startup = crate::startup::measure(&paths, plan.warm_starts)
        .await
        .map_err(|e| format!("{e:#}"));
    note(&format!("start-up (cold, warm): {startup:?}"));
    results.startup = Some(startup);
    let sandbox = sandbox_cost(&paths).map_err(|e| format!("{e:#}"));
    note(&format!(
        "sandbox in process: {:?}",
        sandbox.as_ref().map(|s| (s.login_us, s.floor_us))
    ));
    results.sandbox = Some(sandbox);

    // The file checker against SQLite at several sizes, 16 clients.
    let files = crate::files::Options {
        sizes: if plan.quick {
            vec![1_000, 10_000]
        } else {
            vec![1_000, 100_000, 1_000_000]
        },
        clients: 16,
        seconds: plan.seconds,
        dir: std::env::temp_dir(),
    };
    let files = crate::files::measure(&files)
        .await
        .map_err(|e| format!("{e:#}"));
    note("password files measured");
    results.files = Some(files);
    let _ = std::fs::remove_dir_all(&scram_dir);

    let text = crate::report::markdown(&plan, &results);
    print!("{text}");
    if let Some(out) = &opts.out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
        note(&format!("report written to {}", out.display()));
    }
    Ok(())
}

/// A fresh portcullis's RSS in KiB before and with `plan.idle_sessions`
/// sessions open: SMTP sessions that read the greeting, or echo sessions
/// logged in as guest.
async fn session_rss(paths: &Paths, plan: &Plan, echo: bool) -> anyhow::Result<(u64, u64)> {
    let (smtp, echo_addr) = (free_port()?, free_port()?);
    let max = (plan.idle_sessions + 2000).to_string();
    let cmd = paths.portcullis(smtp, echo_addr, None, &["--max-sessions", &max]);
    let mut server = Server::spawn(WASM, cmd)?;
    server.wait(echo_addr, Instant::now()).await?;
    let pid = server.pid();
    // One login first, so plugin compilation and the first pool slots are
    // in "before" and the difference is the sessions' own.
    Echo::login(echo_addr, USER, PASS, false).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = crate::servers::rss_kib(pid)?;
    let addr = if echo { echo_addr } else { smtp };
    let (open, failed, first) = crate::resources::open_idle(addr, plan.idle_sessions, echo).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with = crate::servers::rss_kib(pid)?;
    drop(open);
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} sessions failed: {}",
        plan.idle_sessions,
        first.unwrap_or_default()
    );
    Ok((before, with))
}

/// The native server must have made no mechanism instances under its PLAIN
/// load: if it did, the binary lacks the `bench-native` feature.
fn native_problem(results: &Results, plan: &Plan) -> Option<String> {
    let plain = plan
        .clients
        .iter()
        .map(|c| plain_what(*c))
        .collect::<Vec<_>>();
    let made: f64 = results
        .hooks
        .iter()
        .filter(|h| h.server == NATIVE && plain.contains(&h.what))
        .map(|h| h.delta.get("mechanism", metrics::Phase::Instantiate).count)
        .sum();
    (made > 0.0).then(|| {
        "the portcullis binary was built without the bench-native feature, so the native \
         column ran the Wasm path: build with `--features portcullis/bench-native` (or let \
         `cargo run` build it: leave out --no-build)"
            .to_owned()
    })
}

/// A SCRAM-SHA-256 stored-key entry, from `portcullis password`.
async fn scram_entry(paths: &Paths, pass: &str) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(&paths.portcullis)
        .args(["password", "--scheme", "scram-sha-256"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{pass}\n").as_bytes())
        .await?;
    let out = child.wait_with_output().await?;
    anyhow::ensure!(out.status.success(), "portcullis password failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}
