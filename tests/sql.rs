//! `--auth sql:…`: users from SQLite and from a real PostgreSQL server
//! (Debian's, installed by tests/setup.sh and started here in a private
//! cluster), through the sandboxed SQL checker and the queries the host
//! grants it, over the echo and SMTP services.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{LOGIN_DENIED, LOGIN_OK, Server, TEMPORARY, b64};

fn argon2_entry(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn sqlite_users(dir: &Path) -> PathBuf {
    let path = dir.join("users.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT);
         INSERT INTO users VALUES ('dave', 'plain-pass');
         INSERT INTO users VALUES ('locked', NULL);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO users VALUES ('alice', ?1)",
        [argon2_entry("wonderland")],
    )
    .unwrap();
    path
}

fn login(server: &Server, user: &str, pass: &str) -> String {
    server.connect().ask(&format!("{user} {pass}"))
}

#[test]
fn sqlite_users_log_in_over_echo_and_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_users(dir.path());
    let spec = format!("sql:sqlite:{}", db.display());
    let server = Server::start(&["--auth", &spec, "--auth-failure-delay", "0s"]);
    assert_eq!(login(&server, "alice", "wonderland"), LOGIN_OK);
    assert_eq!(login(&server, "dave", "plain-pass"), LOGIN_OK);
    assert_eq!(login(&server, "alice", "wrong"), LOGIN_DENIED);
    assert_eq!(login(&server, "nobody", "x"), LOGIN_DENIED);
    assert_eq!(login(&server, "locked", "x"), LOGIN_DENIED);
    let logs = server.wait_for_log("reason=account disabled");
    assert!(logs.contains("reason=unknown user"), "{logs}");

    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO client.example").expect(250, None);
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0wonderland")))
        .expect(235, Some("2.7.0"));
    assert!(!server.logs().contains("wonderland"));
}

#[test]
fn a_custom_query_and_a_broken_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_users(dir.path());
    let spec = format!(
        "sql:sqlite:{}:query=SELECT password FROM users WHERE upper(username) = upper(?)",
        db.display()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "DAVE", "plain-pass"), LOGIN_OK);
    // The file goes away under the server: a temporary failure, not a crash.
    std::fs::write(&db, b"not a database any more").unwrap();
    assert_eq!(login(&server, "dave", "plain-pass"), TEMPORARY);
    server.wait_for_log("query credentials");

    let bad = format!("sql:sqlite:{}:query=SELECT nonsense FROM", db.display());
    let failure = Server::try_start(&["--auth", &bad]).unwrap_err();
    assert!(
        failure.stderr.contains("does not prepare"),
        "{}",
        failure.stderr
    );
}

/// A plugin can run only the queries granted to it, and cannot open the
/// database file itself.
#[test]
fn a_checker_runs_nothing_but_its_grant() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_users(dir.path());
    let trap = common::guest_wasm("trap-checker");
    let spec = format!("wasm:{}", trap.display());
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "sql:credentials", "x"), LOGIN_DENIED);
    let logs = server.wait_for_log("UnknownQuery");
    assert!(logs.contains("granted no SQL queries"), "{logs}");
    let read = format!("read:{}", db.display());
    assert_eq!(login(&server, &read, "x"), LOGIN_DENIED);
    server.wait_for_log("cannot read");
}

/// A private PostgreSQL cluster on a free loopback port, stopped on drop.
struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    fn start() -> Postgres {
        let pg = Postgres::init();
        pg.run_server();
        pg
    }

    /// A cluster made but not running.
    fn init() -> Postgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed; run `sh tests/setup.sh` as root")
            .filter_map(|e| Some(e.ok()?.path().join("bin")))
            .find(|p| p.join("initdb").exists())
            .expect("no initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres { dir, bin, port };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-A",
                "trust",
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
            ],
        );
        pg
    }

    fn run_server(&self) {
        let (pg, port) = (self, self.port);
        let data = pg.dir.path().join("data");
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("log");
        pg.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Runs a PostgreSQL program, as the postgres user when we are root
    /// (initdb refuses to run as root), and returns what it printed.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let exe = self.bin.join(program);
        let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sql(&self, statements: &str) {
        self.psql(&["-v", "ON_ERROR_STOP=1", "-c", statements]);
    }

    /// The one value a query returns.
    fn query_one(&self, query: &str) -> String {
        self.psql(&["-qAt", "-c", query]).trim().to_owned()
    }

    /// psql against this cluster as postgres, with these arguments.
    fn psql(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut all = vec!["-h", "127.0.0.1", "-p", &port, "-U", "postgres"];
        all.extend_from_slice(args);
        self.run("psql", &all)
    }

    fn dsn(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = std::panic::catch_unwind(|| {
            self.run(
                "pg_ctl",
                &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
            );
        });
    }
}

#[test]
fn postgresql_users_log_in() {
    let pg = Postgres::start();
    pg.sql(&format!(
        "CREATE TABLE accounts (login TEXT PRIMARY KEY, pw TEXT, active BOOLEAN);
         INSERT INTO accounts VALUES ('alice', '{}', true), ('dave', 'plain-pass', true),
                                     ('gone', 'plain-pass', false);",
        argon2_entry("wonderland")
    ));
    let default = format!("sql:{}", pg.dsn());
    // The default query expects a `users` table: refused at start, clearly.
    let failure = Server::try_start(&["--auth", &default]).unwrap_err();
    assert!(
        failure.stderr.contains("does not prepare"),
        "{}",
        failure.stderr
    );

    let spec = format!(
        "sql:{}:query=SELECT login, pw FROM accounts WHERE login = $1 AND active",
        pg.dsn()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "alice", "wonderland"), LOGIN_OK);
    assert_eq!(login(&server, "dave", "plain-pass"), LOGIN_OK);
    assert_eq!(login(&server, "alice", "nope"), LOGIN_DENIED);
    assert_eq!(login(&server, "gone", "plain-pass"), LOGIN_DENIED);
    assert_eq!(login(&server, "nobody", "x"), LOGIN_DENIED);
    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO client.example").expect(250, None);
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0dave\0plain-pass")))
        .expect(235, Some("2.7.0"));
}

/// A server started while PostgreSQL is down answers 454 (never a denial)
/// and logs in by itself once PostgreSQL is up; under concurrent logins it
/// opens no more connections than its pool.
#[test]
fn a_server_starts_while_postgresql_is_down_and_keeps_its_pool() {
    let pg = Postgres::init();
    let spec = format!(
        "sql:{}:pool=2:query=SELECT login, pw FROM accounts WHERE login = $1",
        pg.dsn()
    );
    let server = Server::start(&["--auth", &spec, "--auth-failure-delay", "0s"]);
    server.wait_for_log("PostgreSQL is unreachable");
    assert_eq!(login(&server, "dave", "plain-pass"), TEMPORARY);
    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO client.example").expect(250, None);
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0dave\0plain-pass")))
        .expect(454, Some("4.7.0"));

    pg.run_server();
    pg.sql(
        "CREATE TABLE accounts (login TEXT PRIMARY KEY, pw TEXT);
         INSERT INTO accounts VALUES ('dave', 'plain-pass');",
    );
    assert_eq!(login(&server, "dave", "plain-pass"), LOGIN_OK);
    assert_eq!(login(&server, "dave", "wrong"), LOGIN_DENIED);

    // Eight clients at once: every login succeeds, over at most two
    // connections.
    let logins: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| common::Client::connect(addr).ask("dave plain-pass"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for l in logins {
        for answer in l.join().unwrap() {
            assert_eq!(answer, LOGIN_OK);
        }
    }
    let count = pg.query_one(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND application_name <> 'psql'",
    );
    assert!(
        count == "1" || count == "2",
        "{count} connections for a pool of 2"
    );
}

/// SCRAM-SHA-256 from a real client (gsasl) against stored keys in SQLite,
/// printed by `portcullis password`.
#[test]
fn gsasl_scram_against_stored_keys_in_sqlite() {
    use std::io::Write as _;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["password", "--scheme", "scram-sha-256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"pencil\n").unwrap();
    let entry = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    let path = dir.path().join("users.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE users (username TEXT, password TEXT);")
        .unwrap();
    conn.execute("INSERT INTO users VALUES ('user', ?1)", [entry.trim()])
        .unwrap();
    drop(conn);
    let spec = format!("sql:sqlite:{}", path.display());
    let server = Server::start(&["--auth", &spec, "--auth-failure-delay", "0s"]);
    let connect = format!("127.0.0.1:{}", server.smtp.port());
    let gsasl = |password: &str| {
        Command::new("gsasl")
            .args(["--smtp", "--connect", &connect, "--no-starttls"])
            .args([
                "--mechanism",
                "SCRAM-SHA-256",
                "--authentication-id",
                "user",
            ])
            .args(["--password", password, "--quiet"])
            .stdin(Stdio::null())
            .output()
            .expect("gsasl is not installed; run `sh tests/setup.sh` as root")
    };
    let ok = gsasl("pencil");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!gsasl("wrong").status.success());
    // The same entry checks a plain password too, by deriving the keys.
    assert_eq!(login(&server, "user", "pencil"), LOGIN_OK);
}
