//! What a loaded plugin can hold or make the host hold: file descriptors,
//! a logout that never returns, secret lookups it did not declare, output
//! that is small in bytes and huge in elements, memory it asks for at
//! instantiation, and its stderr. Each is the plugin's own failure.

use std::time::{Duration, Instant};

use super::common::{
    Client, LOGIN_DENIED, LOGIN_OK, Server, StartFailure, TEMPORARY, b64, guest_wasm,
};
use super::*;

fn trap_checker(options: &str) -> String {
    format!("wasm:{}{options}", guest_wasm("trap-checker").display())
}

// ---- File descriptors ------------------------------------------------------

/// More descriptors than the host may have open (the test machine's hard
/// limit is 20,000): without a per-store cap the guest takes them all.
const FDS: usize = 30_000;

/// A checker with a read-only grant opens the granted file 30,000 times
/// and holds the descriptors for a second: the per-store cap stops it
/// (454 for that exchange), the server's own descriptor count stays far
/// below, its listeners never see EMFILE, and others log in meanwhile.
#[test]
fn a_checker_cannot_exhaust_the_hosts_file_descriptors() {
    let grant = tempfile::tempdir().unwrap();
    std::fs::write(grant.path().join("f"), "x").unwrap();
    let server = Server::start(&[
        "--auth",
        &trap_checker(&format!(":grant={}", grant.path().display())),
        "--plugin-call-time",
        "5s",
    ]);
    // The control: a few descriptors are fine.
    assert_eq!(server.connect().ask("fds:/grant/f:10 pw"), LOGIN_OK);
    let at_rest = fd_count(server.pid());

    let pid = server.pid();
    let peak = sample_peak(move || fd_count(pid) as u64);
    let attacks: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || Client::connect(addr).ask(&format!("fds:/grant/f:{FDS} pw")))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // While the attackers hold what they got, others log in promptly.
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let started = Instant::now();
        let mut c = server.smtp_client();
        c.cmd("EHLO bystander.example").expect(250, None);
        c.cmd(&auth_plain("ok", "pw")).expect(235, Some("2.7.0"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    for attack in attacks {
        assert_eq!(attack.join().unwrap(), TEMPORARY);
    }
    let peak = peak();
    eprintln!("server fds: {at_rest} at rest, {peak} at the peak of the attack");
    assert!(
        peak < at_rest as u64 + 1_000,
        "the server's descriptors rose from {at_rest} to {peak}"
    );
    let logs = server.wait_for_log("plugin fault");
    assert!(!logs.contains("accept failed"), "{logs}");
    assert!(logs.contains("plugin=trap_checker"), "{logs}");
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}

/// The per-plugin `max-resources` option lowers the cap for one plugin.
#[test]
fn a_plugins_own_resource_cap_wins() {
    let grant = tempfile::tempdir().unwrap();
    std::fs::write(grant.path().join("f"), "x").unwrap();
    let spec = trap_checker(&format!(
        ":grant={}:max-resources=16",
        grant.path().display()
    ));
    let server = Server::start(&["--auth", &spec, "--plugin-max-resources", "1000"]);
    assert_eq!(server.connect().ask("fds:/grant/f:4 pw"), LOGIN_OK);
    assert_eq!(server.connect().ask("fds:/grant/f:100 pw"), TEMPORARY);
    server.wait_for_log("plugin fault");
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}

// ---- Logout ----------------------------------------------------------------

/// Avatars of the trap realm for `sleepy` sleep an hour in their drop.
/// Logout is abandoned at the realm's call time, so a pool of two avatars
/// and four sessions serve five such logins in a row, and then two users
/// at once.
#[test]
fn a_logout_that_sleeps_is_abandoned_and_its_slots_come_back() {
    let realm = format!("echo={}", guest_wasm("trap-realm").display());
    let delivery = format!("message-delivery={}", guest_wasm("trap-realm").display());
    let server = Server::start(&[
        "--auth",
        &memory_auth("sleepy:zzz"),
        "--realm",
        &realm,
        "--realm",
        &delivery,
        "--plugin-call-time",
        "1s",
        "--max-avatars",
        "2",
        "--max-sessions",
        "4",
    ]);
    for round in 1..=5 {
        let mut c = server.connect();
        assert_eq!(c.ask("sleepy zzz"), LOGIN_OK, "round {round}");
        assert_eq!(c.ask("hello"), "hello");
        drop(c);
        // The session ends (after logout) within its call time and some.
        wait_for_log_count(&server, "session ended", round, Duration::from_secs(5));
    }
    let logs = server.logs();
    assert!(
        logs.contains("plugin=trap_realm"),
        "the abandoned drop is logged:\n{logs}"
    );
    // Both avatar slots and the session permits are free again.
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(a.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    assert_eq!(b.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    assert_eq!(a.ask("a"), "a");
    assert_eq!(b.ask("b"), "b");
    drop((a, b));
    // SMTP logouts (QUIT) are bounded the same way; each is abandoned
    // after its call time (1 s), so one every 1.5 s always finds a slot.
    for _ in 0..3 {
        let mut c = server.smtp_client();
        smtp_login(&mut c, "sleepy", "zzz").expect(235, Some("2.7.0"));
        c.cmd("QUIT").expect(221, Some("2.0.0"));
        std::thread::sleep(Duration::from_millis(1500));
    }
    bystander_smtp_login(&server, LOOPBACK, Duration::from_secs(2));
}

// ---- Lookups ---------------------------------------------------------------

/// A mechanism that declares only username-password looks up admin's
/// SCRAM keys and claims to have verified them: the lookup is refused,
/// the claim is a contract fault (454), the client never sees admin's
/// keys, and nobody is logged in as admin. Granting the plugin lookups
/// does not widen what it declared. A real SCRAM login as admin works.
#[test]
fn a_mechanism_cannot_steal_a_secret_it_did_not_declare() {
    let mechanism = guest_wasm("trap-mechanism").display().to_string();
    let granted = format!("{mechanism}:lookup-secrets");
    for spec in [&mechanism, &granted] {
        let server = Server::start(&[
            "--auth",
            &memory_auth("admin:hunter2"),
            "--mechanism",
            spec,
            "--auth-failure-delay",
            "0s",
        ]);
        let mut c = server.smtp_client();
        c.cmd("EHLO thief.example").expect(250, None);
        let reply = c.cmd(&format!("AUTH X-TRAP {}", b64(b"steal")));
        assert_ne!(
            reply.code, 334,
            "{spec}: admin's keys reached the client: {:?}",
            reply.lines
        );
        reply.expect(454, Some("4.7.0"));
        c.cmd("NOOP").expect(250, Some("2.0.0"));
        let logs = server.wait_for_log("plugin fault");
        assert!(logs.contains("plugin=trap_mechanism"), "{logs}");
        assert!(
            !logs.contains("avatar_id=admin"),
            "{spec}: logged in as admin:\n{logs}"
        );
        assert_eq!(scram_sha256_login(&server, "admin", "hunter2"), LOGIN_OK);
        bystander_echo_login(&server, LOOPBACK, Duration::from_secs(2));
    }
}

/// Lookups an exchange of X-TRAP `lookups:10` made that reached the
/// checker (which counts them in `/state/n`); the exchange's reply code.
fn lookups_reaching_the_checker(extra: &[&str], mechanism_options: &str) -> (u32, u16) {
    let state = tempfile::tempdir().unwrap();
    let checker = trap_checker(&format!(":grant-rw={}@/state", state.path().display()));
    let mechanism = format!(
        "{}{mechanism_options}",
        guest_wasm("trap-mechanism").display()
    );
    let mut args = vec![
        "--auth",
        &checker,
        "--mechanism",
        &mechanism,
        "--auth-failure-delay",
        "0s",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let mut c = server.smtp_client();
    c.cmd("EHLO greedy.example").expect(250, None);
    let code = c
        .cmd(&format!(
            "AUTH X-TRAP {}",
            b64(b"lookups:10:count:/state/n")
        ))
        .code;
    c.cmd("NOOP").expect(250, Some("2.0.0"));
    // Others are served meanwhile, through the same checker.
    let mut other = server.smtp_client();
    smtp_login(&mut other, "ok", "pw").expect(235, Some("2.7.0"));
    let n = std::fs::read_to_string(state.path().join("n"))
        .map(|t| t.trim().parse().unwrap())
        .unwrap_or(0);
    (n, code)
}

/// A third-party mechanism looks secrets up only when the operator says
/// so, and then at most `--max-lookups` times per exchange.
#[test]
fn lookups_need_the_operators_grant_and_are_few_per_exchange() {
    let (n, code) = lookups_reaching_the_checker(&[], "");
    assert_eq!(n, 0, "an ungranted mechanism's lookups reached the checker");
    assert!(matches!(code, 535 | 454), "{code}");
    let (n, code) = lookups_reaching_the_checker(&["--max-lookups", "4"], ":lookup-secrets");
    assert_eq!(n, 4, "lookups reaching the checker with --max-lookups 4");
    assert!(matches!(code, 535 | 454), "{code}");
}

// ---- Output ----------------------------------------------------------------

fn trap_realm_server() -> Server {
    let realm = format!("echo={}", guest_wasm("trap-realm").display());
    Server::start(&["--auth", &memory_auth(""), "--realm", &realm])
}

/// What one echo session of alice receives after sending `line`.
fn echo_attack(addr: std::net::SocketAddr, line: &str) -> (Vec<String>, usize) {
    let mut c = Client::connect(addr);
    assert_eq!(c.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    c.send(line);
    drain(&mut c, usize::MAX)
}

/// 4,000,000 empty lines weigh nothing in bytes and 8 MB on the wire:
/// counting list elements makes the reply a fault, four at once leave
/// the server's memory bounded, and a session logged in before goes on.
#[test]
fn an_echo_reply_of_millions_of_empty_lines_is_a_fault() {
    let server = trap_realm_server();
    let mut before = server.connect();
    assert_eq!(before.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    // Warm up the pool and the allocator with one ordinary session.
    assert_eq!(
        echo_attack(server.addr, "hello")
            .0
            .first()
            .map(String::as_str),
        Some("hello")
    );
    let rss_before = rss_kib(server.pid());
    let pid = server.pid();
    let peak = sample_peak(move || rss_kib(pid));
    let bombs: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr;
            std::thread::spawn(move || echo_attack(addr, "bomb"))
        })
        .collect();
    let received: Vec<_> = bombs.into_iter().map(|b| b.join().unwrap()).collect();
    let peak = peak();
    eprintln!("server RSS {rss_before} KiB before, {peak} KiB at the peak of four bombs");
    for (lines, bytes) in received {
        assert!(
            bytes < 64 << 10,
            "the client received {bytes} bytes (stopped at 1 MiB)"
        );
        assert_eq!(lines, [TEMPORARY], "{} lines", lines.len());
    }
    // Each guest may use its own 96 MiB; the host's copies must not add
    // hundreds of MB on top (issue 12 measured ~170 MB per call).
    assert!(
        peak < rss_before + 4 * 96 * 1024 + 64 * 1024,
        "RSS rose from {rss_before} KiB to {peak} KiB"
    );
    server.wait_for_log("plugin=trap_realm");
    assert_eq!(before.ask("still here"), "still here");
    bystander_echo_login(&server, LOOPBACK, Duration::from_secs(2));
}

/// An echo reply has at most 256 lines; 300 are a fault, not 300 lines.
#[test]
fn an_echo_reply_of_too_many_lines_is_a_fault() {
    let server = trap_realm_server();
    let (lines, _) = echo_attack(server.addr, "many");
    assert_eq!(lines, [TEMPORARY], "{} lines", lines.len());
    server.wait_for_log("plugin=trap_realm");
    bystander_echo_login(&server, LOOPBACK, Duration::from_secs(2));
}

/// A reply line with a CR LF inside would let the realm write lines of its
/// choosing, outside the protocol's framing: a contract fault.
#[test]
fn an_echo_reply_line_with_a_line_break_is_a_contract_fault() {
    let server = trap_realm_server();
    let (lines, _) = echo_attack(server.addr, "crlf");
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("FORGED-LINE") || l.contains('\r')),
        "the raw line reached the client: {lines:?}"
    );
    assert_eq!(lines, [TEMPORARY]);
    let logs = server.wait_for_log("plugin=trap_realm");
    assert!(logs.contains("contract violation"), "{logs}");
    bystander_echo_login(&server, LOOPBACK, Duration::from_secs(2));
}

// ---- Instantiation at load --------------------------------------------------

/// The fat realm's memory minimum (129 MiB) is over the default limit
/// (96 MiB): it can never be instantiated, so it is refused when loaded
/// rather than failing every login afterwards.
#[test]
fn a_realm_that_cannot_be_instantiated_is_refused_at_start_and_on_reload() {
    let fat = guest_wasm("fat-realm");
    let failure: StartFailure =
        Server::try_start(&["--realm", &format!("echo={}", fat.display())]).unwrap_err();
    assert_ne!(failure.code, Some(0));
    assert!(failure.stderr.contains("fat_realm"), "{}", failure.stderr);
    assert!(
        failure.stderr.to_lowercase().contains("memory"),
        "{}",
        failure.stderr
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    let checker =
        format!("[[checker]]\ntype = \"memory\"\nusers = {{ {ALICE} = \"{ALICE_PASSWORD}\" }}\n");
    std::fs::write(
        &config,
        format!("{checker}[[realm]]\nserves = \"echo\"\nbuiltin = \"echo\"\n"),
    )
    .unwrap();
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    let mut before = server.connect();
    assert_eq!(before.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    std::fs::write(
        &config,
        format!(
            "{checker}[[realm]]\nserves = \"echo\"\nplugin = \"{}\"\n",
            fat.display()
        ),
    )
    .unwrap();
    server.signal("HUP");
    let logs = server.wait_for_log("reload failed");
    assert!(logs.contains("fat_realm"), "{logs}");
    // The old realm serves on.
    assert_eq!(before.ask("still here"), "still here");
    bystander_echo_login(&server, LOOPBACK, Duration::from_secs(2));
}

// ---- Stderr ----------------------------------------------------------------

/// A guest's stderr is a bounded ring: 100 KiB of it is no trap.
#[test]
fn a_checker_that_floods_stderr_still_answers() {
    let server = Server::start(&["--auth", &trap_checker("")]);
    assert_eq!(server.connect().ask("stderr pw"), LOGIN_OK);
    assert_eq!(server.connect().ask("deny pw"), LOGIN_DENIED);
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}
