//! Starting the servers under test (portcullis, the peers, the bare echo)
//! as child processes, and waiting until they listen.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A port nobody listens on now.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A child process killed when dropped.
pub struct Server {
    pub name: String,
    pub child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub fn spawn(name: &str, mut cmd: Command) -> anyhow::Result<Server> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Server {
            name: name.to_owned(),
            child,
        })
    }

    /// Waits until `addr` accepts a connection; returns how long that took
    /// from `since`.
    pub async fn wait(&mut self, addr: SocketAddr, since: Instant) -> anyhow::Result<Duration> {
        let limit = since + Duration::from_secs(30);
        loop {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(since.elapsed());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited before listening ({status})", self.name);
            }
            if Instant::now() > limit {
                bail!("{} is not listening on {addr} after 30 s", self.name);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// What a peer that cannot run is reported as.
pub const NOT_INSTALLED: &str = "not installed (run examples/bench/setup.sh)";

/// Where things are.
#[derive(Clone, Debug)]
pub struct Paths {
    pub portcullis: PathBuf,
    pub python: PathBuf,
    pub peers: PathBuf,
    /// Postfix's smtp-sink, when installed.
    pub smtp_sink: Option<PathBuf>,
    /// The host's `sandbox_cost` example (the sandbox's cost in process),
    /// when built beside the portcullis binary.
    pub sandbox_cost: Option<PathBuf>,
}

impl Paths {
    /// The portcullis binary beside this one; the venv setup.sh made.
    pub fn find(venv: &Path) -> anyhow::Result<Paths> {
        let me = std::env::current_exe()?;
        let portcullis = me.with_file_name("portcullis");
        if !portcullis.is_file() {
            bail!(
                "{} is missing: build it with \
                 cargo build --release -p portcullis --features bench-native",
                portcullis.display()
            );
        }
        let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers");
        let path = std::env::var_os("PATH").unwrap_or_default();
        let smtp_sink = ["/usr/sbin".into(), "/usr/libexec/postfix".into()]
            .into_iter()
            .chain(std::env::split_paths(&path))
            .map(|dir: PathBuf| dir.join("smtp-sink"))
            .find(|p| p.is_file());
        let sandbox_cost =
            Some(me.with_file_name("examples").join("sandbox_cost")).filter(|p| p.is_file());
        Ok(Paths {
            portcullis,
            python: venv.join("bin/python"),
            peers,
            smtp_sink,
            sandbox_cost,
        })
    }

    /// Whether the venv's Python can import `module`.
    pub fn python_has(&self, module: &str) -> bool {
        std::process::Command::new(&self.python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// portcullis with its SMTP, echo and metrics listeners on the given
    /// addresses.
    pub fn portcullis(
        &self,
        smtp: SocketAddr,
        echo: SocketAddr,
        metrics: Option<SocketAddr>,
        extra: &[&str],
    ) -> Command {
        let mut cmd = Command::new(&self.portcullis);
        cmd.arg("--smtp-listen")
            .arg(smtp.to_string())
            .arg("--echo-listen")
            .arg(echo.to_string())
            .args(["--log", "warn", "--auth-failure-delay", "0s"])
            .args(extra);
        if let Some(metrics) = metrics {
            cmd.arg("--metrics-listen").arg(metrics.to_string());
        }
        cmd
    }

    pub fn python_peer(&self, script: &str, port: u16, user: &str, pass: &str) -> Command {
        let mut cmd = Command::new(&self.python);
        cmd.arg(self.peers.join(script))
            .arg(port.to_string())
            .args([user, pass]);
        cmd
    }

    /// smtp-sink (when installed): `-c` counts, 1024 the backlog; as root it
    /// must be told whom to run as.
    pub fn smtp_sink(&self, addr: SocketAddr) -> Option<Command> {
        let mut cmd = Command::new(self.smtp_sink.as_ref()?);
        cmd.arg("-c");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg(addr.to_string()).arg("1024");
        Some(cmd)
    }
}

/// When run by `cargo run`, builds the portcullis binary beside this one
/// with the `bench-native` feature first (same profile), and the host's
/// `sandbox_cost` example, so one command measures the current tree.
/// Outside cargo it does nothing.
pub fn build_portcullis() -> anyhow::Result<()> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let me = std::env::current_exe()?;
    let release = me
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "-p", "portcullis", "--features", "bench-native"])
        .args(["--bins", "--example", "sandbox_cost"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "portcullis-bench: building portcullis with the bench-native feature (--no-build skips this)"
    );
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building portcullis with the bench-native feature failed ({status})");
    }
    Ok(())
}

/// User and system CPU time of a process, from /proc/PID/stat.
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_micros(ticks * 1_000_000 / hz))
}

/// CPU time of a process and every process below it (Dovecot's master
/// and its auth and worker processes), from /proc.
pub fn tree_cpu(root: u32) -> anyhow::Result<Duration> {
    let mut parents = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.insert(pid, ppid);
        }
    }
    let below = |mut pid: u32| {
        while let Some(&parent) = parents.get(&pid) {
            if parent == root {
                return true;
            }
            if parent <= 1 {
                return false;
            }
            pid = parent;
        }
        false
    };
    let mut total = process_cpu(root)?;
    for &pid in parents.keys() {
        if below(pid) {
            // A process that ended since the listing took its time along.
            total += process_cpu(pid).unwrap_or_default();
        }
    }
    Ok(total)
}

/// VmRSS of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("bad VmRSS line")?
        .parse()?)
}

/// Raises this process's open-file limit to its hard limit (children
/// inherit it).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read only the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}
