//! The fleet, for real (issue 14): `examples/fleet/fleet.sh` brings up
//! Debian's HAProxy 2.6 (TCP mode, send-proxy-v2, health checks), one
//! Redis, one PostgreSQL and three portcullis nodes on loopback, and this
//! test drives it through HAProxy: logins spread over the nodes, a brute
//! force spread over them penalised as on one node and in the real
//! client's name, a node killed under load losing no acknowledged message,
//! a rolling restart dropping no session but the restarted node's (which
//! get 421), and a PostgreSQL restart answered with 454, never 535.

use crate::common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Client, b64};

/// A base for the fleet's fixed ports (BASE+1..4 for HAProxy's SMTP and
/// SMTPS, Redis and PostgreSQL; BASE+10N+1..4 for node N), all free now,
/// and below the kernel's ephemeral range: every outgoing connection on
/// this machine (the fleet's own: HAProxy to the nodes, the nodes to
/// PostgreSQL and Redis) takes a local port from that range, and one
/// could take a node's port while it restarts.
fn fleet_ports() -> u16 {
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let top = ephemeral_low.saturating_sub(100).max(10_100);
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    (0..200u64)
        .map(|i| {
            let span = u64::from(top - 10_000) / 100;
            10_000
                + (seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(i * 7919)
                    % span) as u16
                    * 100
        })
        .find(|base| (1..=40).all(|o| std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok()))
        .expect("a free range of ports below the ephemeral range")
}

/// A fleet brought up by the script; brought down on drop (its folder is
/// kept, and named, if the test failed).
struct Fleet {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    smtp: SocketAddr,
    base: u16,
}

impl Fleet {
    fn up() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let base = fleet_ports();
        let env = vec![
            ("FLEET_DIR".into(), dir.path().display().to_string()),
            ("PORTCULLIS".into(), env!("CARGO_BIN_EXE_portcullis").into()),
            ("FLEET_SMTP_PORT".into(), (base + 1).to_string()),
            ("FLEET_SMTPS_PORT".into(), (base + 2).to_string()),
            ("FLEET_REDIS_PORT".into(), (base + 3).to_string()),
            ("FLEET_PG_PORT".into(), (base + 4).to_string()),
            ("FLEET_NODE_BASE".into(), base.to_string()),
            (
                "FLEET_NODE_ARGS".into(),
                "--auth-failure-delay 0s --auth-penalty 100ms --auth-penalty-cap 10s \
                 --shutdown-grace 5s"
                    .into(),
            ),
        ];
        let smtp_port = base + 1;
        let fleet = Fleet {
            dir,
            env,
            smtp: SocketAddr::from(([127, 0, 0, 1], smtp_port)),
            base,
        };
        fleet.script(&["up"]);
        fleet.wait_all_up();
        fleet
    }

    fn script(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/fleet.sh");
        let out = Command::new("sh")
            .arg(script)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "fleet.sh {args:?} failed (tests/setup.sh installs haproxy, redis-server and postgresql):\n{}",
            common::describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Until HAProxy sees every node of the SMTP backend up (a generous
    /// deadline: beside the rest of the suite a node may start slowly).
    fn wait_all_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.script(&["status"]);
            let up = state
                .lines()
                .filter(|l| l.contains(" smtp_nodes ") && l.split(' ').nth(5) == Some("2"))
                .count();
            if up == 3 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes not up in HAProxy:\n{state}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Until a login succeeds on each of the three nodes (each reconnects
    /// to PostgreSQL by itself); every answer meanwhile is 235 or 454.
    fn wait_every_node_logs_in(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut recovered = BTreeMap::new();
        while recovered.len() < 3 {
            let (node, code) = login(self, "alice", "secret");
            assert!(code == 235 || code == 454, "{code} from node {node}");
            if code == 235 {
                recovered.insert(node, ());
            }
            assert!(
                Instant::now() < deadline,
                "not every node recovered: {recovered:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metrics(&self, node: u16) -> String {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.base + 10 * node + 4));
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).unwrap();
        out
    }

    fn log(&self, node: u16) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{node}.log"))).unwrap_or_default()
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "the fleet's logs are kept in {} (haproxy.log, node*.log)",
                self.dir.path().display()
            );
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/fleet.sh");
        let _ = Command::new("sh")
            .arg(script)
            .arg("down")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

fn counter_sum(metrics: &str, name: &str, label: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// The node that greeted: `220 nodeN.fleet.example …`.
fn greeted_by(greeting: &common::SmtpReply) -> u16 {
    let text = &greeting.lines[0];
    text.split("node")
        .nth(1)
        .and_then(|r| r[..1].parse().ok())
        .unwrap_or_else(|| panic!("no node in {text:?}"))
}

fn login(fleet: &Fleet, user: &str, pass: &str) -> (u16, u16) {
    login_at(fleet.smtp, user, pass)
}

/// One login through HAProxy: the node that served it and AUTH's code.
fn login_at(smtp: SocketAddr, user: &str, pass: &str) -> (u16, u16) {
    let mut c = Client::connect(smtp);
    let greeting = c.reply();
    assert_eq!(greeting.code, 220, "{greeting:?}");
    let node = greeted_by(&greeting);
    c.cmd("EHLO client.example");
    let reply = c.cmd(&format!(
        "AUTH PLAIN {}",
        b64(format!("\0{user}\0{pass}").as_bytes())
    ));
    (node, reply.code)
}

/// How one message session through HAProxy ended.
#[derive(Debug, Clone)]
enum Outcome {
    /// 250 after DATA, then QUIT answered.
    Delivered,
    /// 421 from the node that served it (shutting down).
    Refused421(u16),
    /// Anything else: an error, a closed connection.
    Broken(Option<u16>, String),
}

struct Session {
    id: String,
    started: Instant,
    ended: Instant,
    outcome: Outcome,
    /// 250 was seen for the message (whatever came after).
    acked: bool,
}

/// One session: greeting, EHLO, AUTH, a pause (`hold`), one message.
fn message_session(smtp: SocketAddr, user: &str, id: &str, hold: Duration) -> Session {
    let started = Instant::now();
    let mut acked = false;
    let mut node = None;
    let outcome = (|| -> Result<Outcome, String> {
        let stream = std::net::TcpStream::connect(smtp).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Client::from_stream(stream);
        let greeting = read_reply(&mut c).ok_or("closed before the greeting")?;
        if greeting.0 != 220 {
            return Ok(Outcome::Broken(None, greeting.1));
        }
        node = greeting
            .1
            .split("node")
            .nth(1)
            .and_then(|r| r[..1].parse().ok());
        let node = node;
        let step = |c: &mut Client, line: Option<&str>, want: u16| -> Result<(), Outcome> {
            if let Some(line) = line {
                c.send(line);
            }
            let r = read_reply(c).ok_or(Outcome::Broken(node, format!("closed after {line:?}")))?;
            if r.0 == want {
                return Ok(());
            }
            Err(match (r.0, node) {
                (421, Some(n)) => Outcome::Refused421(n),
                _ => Outcome::Broken(node, format!("{line:?}: {}", r.1)),
            })
        };
        let auth = format!("AUTH PLAIN {}", b64(format!("\0{user}\0secret").as_bytes()));
        for (line, want) in [("EHLO client.example", 250), (auth.as_str(), 235)] {
            if let Err(o) = step(&mut c, Some(line), want) {
                return Ok(o);
            }
        }
        std::thread::sleep(hold);
        let rcpt = format!("RCPT TO:<{user}@fleet.example>");
        for (line, want) in [
            ("MAIL FROM:<load@client.example>", 250),
            (rcpt.as_str(), 250),
            ("DATA", 354),
        ] {
            if let Err(o) = step(&mut c, Some(line), want) {
                return Ok(o);
            }
        }
        c.send_raw(format!("Message-ID: <{id}>\r\nSubject: {id}\r\n\r\nfleet\r\n.\r\n").as_bytes());
        if let Err(o) = step(&mut c, None, 250) {
            return Ok(o);
        }
        acked = true;
        if let Err(o) = step(&mut c, Some("QUIT"), 221) {
            return Ok(o);
        }
        Ok(Outcome::Delivered)
    })()
    .unwrap_or_else(|e| Outcome::Broken(node, e));
    Session {
        id: id.to_owned(),
        started,
        ended: Instant::now(),
        outcome,
        acked,
    }
}

/// A reply's code and last line, or `None` if the connection closed.
fn read_reply(c: &mut Client) -> Option<(u16, String)> {
    loop {
        let line = c.recv()?;
        let code = line.get(..3)?.parse().ok()?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Some((code, line));
        }
    }
}

/// Runs message sessions from `threads` threads until `stop`.
fn load(
    smtp: SocketAddr,
    threads: usize,
    hold: Duration,
    tag: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Session>> {
    std::thread::spawn(move || {
        let done = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (done, counter, stop) = (done.clone(), counter.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        let id = format!("{tag}-{n}@fleet.test");
                        let s = message_session(smtp, &format!("load{t}"), &id, hold);
                        done.lock().unwrap().push(s);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        std::mem::take(&mut *done.lock().unwrap())
    })
}

/// How many times each Message-ID is stored, over every node's spool.
fn stored_ids(spool: &Path) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    let mut stack = vec![spool.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent().is_some_and(|p| p.ends_with("new")) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if let Some(id) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Message-ID: <"))
                    .and_then(|r| r.strip_suffix('>'))
                {
                    *ids.entry(id.to_owned()).or_default() += 1;
                }
            }
        }
    }
    ids
}

fn assert_acked_stored_once(sessions: &[Session], spool: &Path) {
    let stored = stored_ids(spool);
    let acked: Vec<_> = sessions.iter().filter(|s| s.acked).collect();
    assert!(!acked.is_empty(), "no message was acknowledged");
    for s in acked {
        assert_eq!(
            stored.get(&s.id).copied(),
            Some(1),
            "{} got 250 but is stored {:?} times",
            s.id,
            stored.get(&s.id)
        );
    }
}

#[test]
fn a_fleet_behind_haproxy_shares_the_penalty_and_survives_kills_and_rolling_restarts() {
    let fleet = Fleet::up();

    // 1. Logins spread over all three nodes; each node's metrics show its share.
    let mut by_node = BTreeMap::new();
    for _ in 0..30 {
        let (node, code) = login(&fleet, "alice", "secret");
        assert_eq!(code, 235);
        *by_node.entry(node).or_insert(0) += 1;
    }
    assert_eq!(by_node.len(), 3, "{by_node:?}");
    let mut total = 0;
    for node in 1..=3 {
        let m = fleet.metrics(node);
        let successes = counter_sum(&m, "portcullis_auth_attempts_total", "outcome=\"success\"");
        assert_eq!(successes, by_node[&node], "node {node}'s share: {m}");
        total += successes;
    }
    assert_eq!(total, 30);

    // 2. A brute force from one client spread over the three nodes gets the
    // doubling pauses of one node, in the real client's name: the shared
    // count is the client's, and each pause is at least the one its rank
    // earns against a single node (counted per node, the third failure
    // would be each node's first: 100 ms, not 400).
    let attacker: IpAddr = "127.0.0.66".parse().unwrap();
    let mut pauses = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..5 {
        let mut c = Client::connect_from(attacker, fleet.smtp);
        let greeting = c.reply();
        nodes.push(greeted_by(&greeting));
        c.cmd("EHLO attacker.example");
        let started = Instant::now();
        let r = c.cmd(&format!(
            "AUTH PLAIN {}",
            b64(format!("\0guess{i}\0wrong").as_bytes())
        ));
        assert_eq!(r.code, 535, "{r:?}");
        pauses.push(started.elapsed());
    }
    let fallbacks: u64 = (1..=3)
        .map(|n| {
            counter_sum(
                &fleet.metrics(n),
                "portcullis_penalty_store_fallbacks_total",
                "",
            )
        })
        .sum();
    let shared_count = fleet.script(&["redis", "GET", "portcullis:penalty:addr:127.0.0.66"]);
    assert_eq!(
        shared_count.trim(),
        "5",
        "the shared count of the attacker's address (not HAProxy's); {fallbacks} store fallbacks"
    );
    let haproxy_count = fleet.script(&["redis", "EXISTS", "portcullis:penalty:addr:127.0.0.1"]);
    assert_eq!(haproxy_count.trim(), "0", "HAProxy's address was penalised");
    for (i, pause) in pauses.iter().enumerate() {
        let single_node = Duration::from_millis(100 << i);
        assert!(
            *pause >= single_node && *pause < single_node + Duration::from_secs(3),
            "failure {i} paused {pause:?}, against one node {single_node:?} \
             (all pauses: {pauses:?}; nodes {nodes:?}; {fallbacks} store fallbacks)"
        );
    }
    nodes.sort();
    nodes.dedup();
    assert!(nodes.len() >= 2, "the brute force hit one node only");
    let logs: String = (1..=3).map(|n| fleet.log(n)).collect();
    assert!(
        logs.contains("peer=127.0.0.66:") && logs.contains("result=\"denied\""),
        "{logs}"
    );

    // 3. kill -9 of one node under load: HAProxy takes it out, new logins
    // succeed, every acknowledged message is stored once.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(fleet.smtp, 4, Duration::ZERO, "kill", stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    // The script returns once the process is gone (its sockets closed).
    fleet.script(&["kill", "2"]);
    // Sessions begun after that must all succeed: HAProxy redispatches
    // refused connections until its checks mark the node down.
    let killed_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::SeqCst);
    let sessions = running.join().unwrap();
    let after: Vec<_> = sessions.iter().filter(|s| s.started > killed_at).collect();
    assert!(
        after.len() >= 10,
        "only {} sessions after the kill",
        after.len()
    );
    let broken: Vec<_> = after
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Delivered))
        .map(|s| (&s.id, &s.outcome))
        .collect();
    assert!(
        broken.is_empty(),
        "sessions begun after the kill failed: {broken:?}"
    );
    assert_acked_stored_once(&sessions, &fleet.spool());
    fleet.script(&["start", "2"]);
    fleet.wait_all_up();

    // 4. A rolling reload (SIGHUP, then restart, one node at a time) under
    // load: only the restarted node's sessions end, and with 421.
    let stop = Arc::new(AtomicBool::new(false));
    let running = load(
        fleet.smtp,
        6,
        Duration::from_millis(300),
        "roll",
        stop.clone(),
    );
    let mut windows = Vec::new();
    for node in 1..=3u16 {
        std::thread::sleep(Duration::from_millis(700));
        fleet.script(&["reload", &node.to_string()]);
        std::thread::sleep(Duration::from_millis(500));
        let from = Instant::now();
        fleet.script(&["restart", &node.to_string()]);
        windows.push((node, from, Instant::now()));
        fleet.wait_all_up();
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let sessions = running.join().unwrap();
    let mut refused = 0;
    for s in &sessions {
        match &s.outcome {
            Outcome::Delivered => {}
            Outcome::Refused421(node) => {
                refused += 1;
                let during = windows
                    .iter()
                    .any(|(n, from, to)| n == node && s.started <= *to && s.ended >= *from);
                assert!(
                    during,
                    "{} got 421 from node {node} outside its restart",
                    s.id
                );
            }
            Outcome::Broken(node, what) => {
                panic!("{} dropped (node {node:?}): {what}", s.id)
            }
        }
    }
    assert!(
        sessions.len() > 20,
        "only {} sessions during the rolling restart",
        sessions.len()
    );
    eprintln!(
        "rolling restart: {} sessions, {refused} got 421 from their restarting node",
        sessions.len()
    );
    assert_acked_stored_once(&sessions, &fleet.spool());

    // 5. PostgreSQL goes away and comes back: logins meanwhile get 454
    // (never 535) on every node and recover by themselves; each node keeps
    // a small, bounded pool.
    fleet.script(&["pg-stop"]);
    let mut down_nodes = BTreeMap::new();
    for _ in 0..6 {
        let (node, code) = login(&fleet, "alice", "secret");
        assert_eq!(code, 454, "a login during the outage, on node {node}");
        down_nodes.insert(node, ());
    }
    assert_eq!(down_nodes.len(), 3, "{down_nodes:?}");
    fleet.script(&["pg-start"]);
    fleet.wait_every_node_logs_in();

    // And a restart under load (a fast shutdown ends every connection
    // mid-use): every answer is 235 or 454, never 535.
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..3)
        .map(|t| {
            let (stop, smtp) = (stop.clone(), fleet.smtp);
            std::thread::spawn(move || {
                let mut codes = BTreeMap::new();
                while !stop.load(Ordering::SeqCst) {
                    let code = login_at(smtp, &format!("load{t}"), "secret").1;
                    *codes.entry(code).or_insert(0u32) += 1;
                }
                codes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    fleet.script(&["pg-restart"]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let mut codes = BTreeMap::new();
    for l in loaders {
        for (code, n) in l.join().unwrap() {
            *codes.entry(code).or_insert(0) += n;
        }
    }
    eprintln!("logins around a PostgreSQL restart: {codes:?}");
    assert!(
        codes.keys().all(|c| *c == 235 || *c == 454),
        "a login during the restart was answered otherwise: {codes:?}"
    );
    assert!(codes.contains_key(&235), "{codes:?}");
    fleet.wait_every_node_logs_in();
    let connections: u32 = fleet
        .script(&[
            "psql",
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'psql'",
        ])
        .trim()
        .parse()
        .unwrap();
    eprintln!("PostgreSQL connections from three nodes: {connections}");
    assert!(
        (3..=6).contains(&connections),
        "{connections} connections from three nodes"
    );
}
