//! The shared penalty store (issue 14): nodes counting failures in one
//! private Redis (Debian's redis-server, installed by tests/setup.sh)
//! penalise a brute force spread over them as one node would, and a node
//! whose store dies goes on with its own counts, says so once, and comes
//! back to the store when it returns.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Server};

/// A private redis-server on a free loopback port; killed on drop.
pub struct Redis {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Redis {
        let exe = Path::new("/usr/bin/redis-server");
        assert!(
            exe.exists(),
            "redis-server is not installed; run `sh tests/setup.sh` (as root) first"
        );
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(exe)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server");
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.command("PING").as_deref() != Some("+PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// One inline command; its first reply line.
    pub fn command(&self, line: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).ok()?;
        Some(reply.trim_end().to_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec![
        "--auth",
        "memory:alice:secret",
        "--auth-failure-delay",
        "0s",
        "--auth-penalty",
        "100ms",
        "--auth-penalty-cap",
        "10s",
        "--auth-penalty-trusted",
        "none",
        "--auth-penalty-store",
        &url,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// One failed echo login from `source` as `user`; how long the denial took.
fn fail_from(source: IpAddr, server: SocketAddr, user: &str) -> Duration {
    let mut c = Client::connect_from(source, server);
    let started = Instant::now();
    assert_eq!(c.ask(&format!("{user} wrong")), common::LOGIN_DENIED);
    started.elapsed()
}

fn gauge(server: &Server, name: &str) -> String {
    let metrics = server.metrics();
    metrics
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .to_owned()
}

/// Rounds a pause to the penalty step it is (100 ms, 200 ms, …).
fn step(d: Duration) -> u128 {
    d.as_millis() / 100 * 100
}

#[test]
fn a_brute_force_spread_over_two_nodes_is_penalised_as_on_one() {
    let redis = Redis::start();
    let (a, b) = (node(&redis, &[]), node(&redis, &[]));
    let attacker: IpAddr = "127.0.0.77".parse().unwrap();
    let mut pauses = Vec::new();
    for i in 0..5 {
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        // Each try names another user: the address alone is counted.
        pauses.push(step(fail_from(attacker, server, &format!("user{i}"))));
    }
    assert_eq!(pauses, [100, 200, 400, 800, 1600], "doubling across nodes");
    let key = "GET portcullis:penalty:addr:127.0.0.77";
    assert_eq!(redis.command(key).as_deref(), Some("$1"), "five failures");

    // A spread over addresses on one user is counted by the user name.
    let mut user_pauses = Vec::new();
    for i in 0..3 {
        let source: IpAddr = format!("127.0.1.{}", i + 1).parse().unwrap();
        let server = if i % 2 == 0 { a.addr } else { b.addr };
        user_pauses.push(step(fail_from(source, server, "alice")));
    }
    assert_eq!(user_pauses, [100, 200, 400]);
    // A success clears the address and the user, on every node.
    let mut c = Client::connect_from("127.0.1.3".parse().unwrap(), b.addr);
    assert_eq!(c.ask("alice secret"), common::LOGIN_OK);
    assert_eq!(
        step(fail_from("127.0.1.9".parse().unwrap(), a.addr, "alice")),
        100
    );
    assert_eq!(gauge(&a, "portcullis_penalty_store_up"), "1");
}

#[test]
fn a_dead_store_falls_back_to_local_counts_logged_once_and_recovers() {
    let mut redis = Redis::start();
    let port = redis.port;
    let server = node(&redis, &[]);
    let attacker: IpAddr = "127.0.0.88".parse().unwrap();
    assert_eq!(step(fail_from(attacker, server.addr, "x")), 100);
    drop(redis);

    // Logins go on, never waiting on the dead store for long.
    for _ in 0..3 {
        let took = fail_from(attacker, server.addr, "x");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
    let logs = server.wait_for_log("penalty store failed");
    assert_eq!(
        logs.matches("penalty store failed").count(),
        1,
        "logged once:\n{logs}"
    );
    assert_eq!(gauge(&server, "portcullis_penalty_store_up"), "0");
    let fallbacks = server.metrics();
    assert!(
        fallbacks.contains("portcullis_penalty_store_fallbacks_total "),
        "{fallbacks}"
    );
    // The local counts carried on: the next pause is the fifth failure's.
    assert_eq!(step(fail_from(attacker, server.addr, "x")), 1600);

    // The store comes back (empty): the node counts there again by itself.
    redis = Redis::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        fail_from("127.0.0.89".parse().unwrap(), server.addr, "y");
        if redis
            .command("EXISTS portcullis:penalty:addr:127.0.0.89")
            .as_deref()
            == Some(":1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never used the store again"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    server.wait_for_log("penalty store answers again");
    assert_eq!(gauge(&server, "portcullis_penalty_store_up"), "1");
}
