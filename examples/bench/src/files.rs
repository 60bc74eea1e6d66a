//! `portcullis-bench files`: AUTH PLAIN logins/s for the *last* user of a
//! password file (`--auth file:`) and of an SQLite database (`--auth
//! sql:sqlite:`) holding the same users, at several sizes, in one run.
//!
//! Each size gets a fresh portcullis. The first login builds the file's
//! index; the report gives its time and the server's resident memory
//! before and after it. The load runs on one thread of its own (a
//! current-thread tokio runtime), as an independent single-threaded
//! client would; its CPU share and the server's are measured from
//! `getrusage` and `/proc/PID/stat` over the load.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::servers::{self, Paths, Server};
use crate::smtp::{self, Mech};
use crate::stats::{self, Bounds, Rate};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Numbers of users, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub sizes: Vec<u64>,
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds of load per server.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Where the password files and databases are written (a fresh folder
    /// inside it, removed at the end).
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub dir: PathBuf,
}

/// The checkers' names in the report.
pub const FILE: &str = "file";
pub const SQLITE: &str = "sql (SQLite)";

/// One server's figures.
struct Row {
    checker: &'static str,
    users: u64,
    first_login: Duration,
    rss_before_kib: u64,
    rss_after_kib: u64,
    rate: Rate,
    /// CPU the load thread and the server used, in % of one core.
    client_cpu: f64,
    server_cpu: f64,
}

fn user(i: u64) -> (String, String) {
    (format!("user{i:07}"), format!("pass{i:07}"))
}

/// `users` lines of `userNNNNNNN:passNNNNNNN`.
fn write_file(path: &Path, users: u64) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..users {
        let (u, p) = user(i);
        writeln!(out, "{u}:{p}")?;
    }
    out.flush()?;
    Ok(())
}

/// The same users in an SQLite database, with the table the sql checker's
/// default query reads (`username` is the primary key).
fn write_db(path: &Path, users: u64) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut sql = String::from(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; BEGIN;\n\
         CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT NOT NULL);\n",
    );
    for i in 0..users {
        let (u, p) = user(i);
        sql.push_str(&format!("INSERT INTO users VALUES ('{u}','{p}');\n"));
    }
    sql.push_str("COMMIT;\n");
    let mut child = std::process::Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot run sqlite3 (apt-get install sqlite3)")?;
    child
        .stdin
        .take()
        .context("sqlite3 stdin")?
        .write_all(sql.as_bytes())?;
    if !child.wait()?.success() {
        bail!("sqlite3 failed to write {}", path.display());
    }
    Ok(())
}

/// The load on one thread; its rate and the thread's CPU time.
fn load_on_one_thread(addr: SocketAddr, mech: Mech, bounds: Bounds) -> (Rate, Duration) {
    stats::run_on_one_thread(bounds, move || {
        let mech = mech.clone();
        async move { smtp::login(addr, &mech).await }
    })
}

async fn measure_one(
    paths: &Paths,
    opts: &Options,
    checker: &'static str,
    users: u64,
    auth: &str,
) -> anyhow::Result<Row> {
    let (smtp_addr, echo_addr) = (servers::free_port()?, servers::free_port()?);
    let cmd = paths.portcullis(
        smtp_addr,
        echo_addr,
        None,
        &[
            "--auth",
            auth,
            "--client-limit-exempt",
            crate::run::LOAD_NET,
        ],
    );
    let mut server = Server::spawn(checker, cmd)?;
    server.wait(smtp_addr, Instant::now()).await?;
    let (u, p) = user(users - 1);
    let mech = Mech::Plain { user: u, pass: p };
    let rss_before_kib = servers::rss_kib(server.pid())?;
    let t = Instant::now();
    smtp::login(smtp_addr, &mech)
        .await
        .with_context(|| format!("{checker} at {users} users: the first login"))?;
    let first_login = t.elapsed();
    // Warm up, then measure.
    let warm = Bounds {
        clients: opts.clients,
        duration: Duration::from_millis(500),
        max_count: u64::MAX,
    };
    let _ = load_on_one_thread(smtp_addr, mech.clone(), warm);
    let bounds = Bounds {
        clients: opts.clients,
        duration: Duration::from_secs_f64(opts.seconds),
        max_count: u64::MAX,
    };
    let server_before = servers::process_cpu(server.pid())?;
    let (rate, client_cpu) = load_on_one_thread(smtp_addr, mech, bounds);
    let server_cpu = servers::process_cpu(server.pid())? - server_before;
    let rss_after_kib = servers::rss_kib(server.pid())?;
    let share = |cpu: Duration| 100.0 * cpu.as_secs_f64() / rate.elapsed.as_secs_f64();
    Ok(Row {
        checker,
        users,
        first_login,
        rss_before_kib,
        rss_after_kib,
        client_cpu: share(client_cpu),
        server_cpu: share(server_cpu),
        rate,
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    servers::raise_nofile();
    print!("{}", measure(&opts).await?.text);
    Ok(())
}

/// What [`measure`] found: the report, and each row's logins/s.
pub struct Measured {
    pub text: String,
    /// (checker, users, logins/s), for rows without failures.
    pub rates: Vec<(&'static str, u64, f64)>,
}

/// Runs every size against both checkers; the report, as Markdown.
pub async fn measure(opts: &Options) -> anyhow::Result<Measured> {
    let paths = Paths::find(Path::new(""))?;
    let dir = opts
        .dir
        .join(format!("portcullis-bench-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let load_before = loadavg();
    let started = Instant::now();
    let mut rows = Vec::new();
    for &users in &opts.sizes {
        if users == 0 {
            bail!("--sizes: each size must be at least 1");
        }
        let file = dir.join(format!("passwords-{users}.txt"));
        let db = dir.join(format!("users-{users}.db"));
        eprintln!("portcullis-bench files: writing {users} users");
        write_file(&file, users)?;
        write_db(&db, users)?;
        for (checker, auth) in [
            ("file", format!("file:{}", file.display())),
            (SQLITE, format!("sql:sqlite:{}", db.display())),
        ] {
            eprintln!("portcullis-bench files: {checker}, {users} users");
            rows.push(measure_one(&paths, opts, checker, users, &auth).await?);
        }
    }
    let load_after = loadavg();
    let _ = std::fs::remove_dir_all(&dir);
    let rates = rows
        .iter()
        .filter(|r| r.rate.failed == 0)
        .map(|r| (r.checker, r.users, r.rate.per_second()))
        .collect();
    Ok(Measured {
        text: report(opts, &rows, &load_before, &load_after, started.elapsed()),
        rates,
    })
}

fn report(
    opts: &Options,
    rows: &[Row],
    load_before: &str,
    load_after: &str,
    took: Duration,
) -> String {
    let mut out = format!(
        "AUTH PLAIN logins/s for the last user, {} clients on one load thread, {} s per server, \
         one run ({:.0} s in all). Load average before: {load_before}; after: {load_after}.\n\n\
         | checker | users | logins/s | p50 | p99 | failed | first login (builds the index) \
         | server RSS before → after | server CPU | load thread CPU |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        opts.clients,
        opts.seconds,
        took.as_secs_f64()
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {:.1} → {:.1} MiB | {:.0} % | {:.0} % |\n",
            r.checker,
            r.users,
            r.rate.per_second(),
            stats::ms(r.rate.percentile(0.5)),
            stats::ms(r.rate.percentile(0.99)),
            r.rate.failed,
            stats::ms(r.first_login),
            r.rss_before_kib as f64 / 1024.0,
            r.rss_after_kib as f64 / 1024.0,
            r.server_cpu,
            r.client_cpu,
        );
    }
    let rate = |checker: &str, users: u64| {
        rows.iter()
            .find(|r| r.checker == checker && r.users == users)
            .map(|r| r.rate.per_second())
    };
    if let Some(smallest) = opts.sizes.iter().min().copied() {
        out += "\n";
        for &users in &opts.sizes {
            if let (Some(a), Some(b)) = (rate("file", smallest), rate("file", users))
                && users != smallest
            {
                out += &format!(
                    "- file at {users} users ÷ file at {smallest} users: {:.2}\n",
                    b / a
                );
            }
            if let (Some(a), Some(b)) = (rate("file", users), rate(SQLITE, users)) {
                out += &format!("- file ÷ SQLite at {users} users: {:.2}\n", a / b);
            }
        }
    }
    if let Some(failure) = rows.iter().find_map(|r| r.rate.first_error.as_deref()) {
        out += &format!("\nfirst failure: {failure}\n");
    }
    out
}
