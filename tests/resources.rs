//! The resource model (issue 12, DESIGN.md "The resource model"), tried
//! as an attacker would: every resource that outlives a call or that many
//! calls share has a bound, and at the bound only the attacker's own
//! exchange or connection fails. Each test runs the attack against the
//! real server with real hostile guests (`tests/plugins/trap-*`,
//! `fat-realm`) and shows, besides the containment, that someone else's
//! login still works.
//!
//! - `clients`: what a client without credentials can hold (connections,
//!   exchanges waiting for it): per-address limits and the step timeout.
//! - `plugins`: what a loaded plugin can hold or make the host hold
//!   (descriptors, logouts, lookups, output, memory at load, stderr).
//! - `logs`: text from clients and plugins cannot forge a log line.

use crate::common;

mod clients;
mod logs;
mod plugins;

use std::time::{Duration, Instant};

use common::{Client, Server, b64};

/// The user every "someone else" login uses.
pub const ALICE: &str = "alice";
pub const ALICE_PASSWORD: &str = "wonderland";

/// `--auth` for a memory checker knowing alice (and `extra`, `user:pass`
/// pairs joined by `:`).
pub fn memory_auth(extra: &str) -> String {
    let mut spec = format!("memory:{ALICE}:{ALICE_PASSWORD}");
    if !extra.is_empty() {
        spec.push(':');
        spec.push_str(extra);
    }
    spec
}

/// `AUTH PLAIN` with an initial response for `user`/`password`.
pub fn auth_plain(user: &str, password: &str) -> String {
    format!(
        "AUTH PLAIN {}",
        b64(format!("\0{user}\0{password}").as_bytes())
    )
}

/// A full SMTP login on `c` (greeting already read); the AUTH reply.
pub fn smtp_login(c: &mut Client, user: &str, password: &str) -> common::SmtpReply {
    c.cmd("EHLO bystander.example").expect(250, None);
    c.cmd(&auth_plain(user, password))
}

/// Alice logs in over SMTP from `source`, answered within `limit`.
#[track_caller]
pub fn bystander_smtp_login(server: &Server, source: std::net::IpAddr, limit: Duration) {
    let started = Instant::now();
    let mut c = Client::connect_from(source, server.smtp);
    let greeting = c.reply();
    assert_eq!(
        greeting.code, 220,
        "bystander greeting {:?}",
        greeting.lines
    );
    smtp_login(&mut c, ALICE, ALICE_PASSWORD).expect(235, Some("2.7.0"));
    let took = started.elapsed();
    assert!(took < limit, "the bystander's SMTP login took {took:?}");
    c.cmd("NOOP").expect(250, Some("2.0.0"));
}

/// Alice logs in over echo from `source`, answered within `limit`.
#[track_caller]
pub fn bystander_echo_login(server: &Server, source: std::net::IpAddr, limit: Duration) {
    let started = Instant::now();
    let mut c = Client::connect_from(source, server.addr);
    assert_eq!(
        c.ask(&format!("{ALICE} {ALICE_PASSWORD}")),
        common::LOGIN_OK
    );
    let took = started.elapsed();
    assert!(took < limit, "the bystander's echo login took {took:?}");
    assert_eq!(c.ask("still echoing"), "still echoing");
}

pub const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// Another client address on the loopback network.
pub const OTHER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Raises this process's open-file limit to its hard limit (an attacker
/// with 1,100 connections needs more than the usual 1,024).
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    }
    hard
}

/// The server's resident memory, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The server's open file descriptors, from /proc.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Samples `measure` every 10 ms on a thread until the returned stop
/// function is called; the stop function gives the largest sample.
pub fn sample_peak(measure: impl Fn() -> u64 + Send + 'static) -> impl FnOnce() -> u64 {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(measure());
            std::thread::sleep(Duration::from_millis(10));
        }
        peak.max(measure())
    });
    move || {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap()
    }
}

/// The sum of a metric's samples (all label sets) on the metrics page.
pub fn metric_total(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// How many log lines contain `needle`.
pub fn log_count(server: &Server, needle: &str) -> usize {
    server.logs().lines().filter(|l| l.contains(needle)).count()
}

/// Waits up to `limit` until `needle` appears on at least `n` log lines.
#[track_caller]
pub fn wait_for_log_count(server: &Server, needle: &str, n: usize, limit: Duration) {
    let started = Instant::now();
    while log_count(server, needle) < n {
        assert!(
            started.elapsed() < limit,
            "{needle:?} was logged {} times, not {n}, within {limit:?}:\n{}",
            log_count(server, needle),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Reads lines until the server closes the connection or sends nothing
/// for 3 s, at most `cap` of them and 1 MiB in all: what a client
/// received.
pub fn drain(c: &mut Client, cap: usize) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut bytes = 0;
    c.set_read_timeout(Duration::from_secs(3));
    while lines.len() < cap && bytes < 1 << 20 {
        match c.recv_or_timeout() {
            Some(line) => {
                bytes += line.len() + 2;
                lines.push(line);
            }
            None => break,
        }
    }
    (lines, bytes)
}

/// A SCRAM-SHA-256 login over echo (client side of RFC 5802/7677, the
/// client-first message as the initial response); the server's last line.
pub fn scram_sha256_login(server: &Server, user: &str, password: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    use sha2::Digest as _;
    let unb64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .unwrap_or_else(|e| panic!("{s:?} is not base64: {e}"))
    };
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    };
    let mut c = server.connect();
    let first_bare = format!("n={user},r=rOprNGfwEbeRWgbNEkqO");
    let reply = c.ask(&format!(
        "AUTH SCRAM-SHA-256 {}",
        b64(format!("n,,{first_bare}").as_bytes())
    ));
    let Some(data) = reply.strip_prefix("+ ") else {
        return reply;
    };
    let server_first = String::from_utf8(unb64(data)).unwrap();
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {server_first:?}"))
            .to_owned()
    };
    let (nonce, salt, iterations) = (field("r="), unb64(&field("s=")), field("i="));
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        password.as_bytes(),
        &salt,
        iterations.parse().unwrap(),
        &mut salted,
    );
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(k, s)| k ^ s)
        .collect();
    let reply = c.ask(&b64(format!("{without_proof},p={}", b64(&proof)).as_bytes()));
    if !reply.starts_with("+ ") {
        return reply;
    }
    c.ask("")
}
