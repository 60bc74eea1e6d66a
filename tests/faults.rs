//! Broken plugins fail the exchange they serve, never the host: traps,
//! endless loops, unbounded allocation and contract breaches become a
//! temporary failure, logged with the plugin's name, while other sessions
//! go on.

mod common;

use std::time::{Duration, Instant};

use common::{LOGIN_DENIED, LOGIN_OK, Server, TEMPORARY, b64, guest_wasm};

fn trap_checker_server() -> Server {
    let spec = format!("wasm:{}", guest_wasm("trap-checker").display());
    Server::start(&["--auth", &spec])
}

#[test]
fn a_trapping_checker_fails_the_exchange_not_the_host() {
    let mut server = trap_checker_server();
    let mut c = server.connect();
    assert_eq!(c.ask("panic now"), TEMPORARY);
    c.expect_closed();
    let logs = server.wait_for_log("plugin fault");
    // Plugins loaded from files are named after the file.
    assert!(logs.contains("plugin=trap_checker"), "{logs}");
    assert!(logs.contains("fault=trap"), "{logs}");
    assert!(logs.contains("unreachable"), "{logs}");
    assert!(
        logs.contains("the guest said: trap-checker: deliberate trap"),
        "{logs}"
    );
    assert!(server.is_alive());
    // The next exchange gets a fresh instance and works.
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
    assert_eq!(server.connect().ask("deny pw"), LOGIN_DENIED);
}

#[test]
fn an_empty_avatar_id_is_a_contract_violation() {
    let server = trap_checker_server();
    assert_eq!(server.connect().ask("garbage pw"), TEMPORARY);
    server.wait_for_log("contract violation");
}

#[test]
fn a_looping_checker_is_stopped_at_its_deadline_while_others_go_on() {
    let server = trap_checker_server();
    let addr = server.addr;
    let started = Instant::now();
    let looping = std::thread::spawn(move || common::Client::connect(addr).ask("loop pw"));
    // While the guest spins, other sessions are served promptly.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a login took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(looping.join().unwrap(), TEMPORARY);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    server.wait_for_log("ran past its time limit");
}

/// A guest asleep in WASI's clock runs no wasm for the epoch deadline to
/// interrupt; the call's own timeout ends it (regression: it used to hold
/// the exchange for the whole 30 s sleep).
#[test]
fn a_sleeping_checker_is_stopped_at_its_deadline_while_others_go_on() {
    let server = trap_checker_server();
    let addr = server.addr;
    let started = Instant::now();
    let sleeping: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || common::Client::connect(addr).ask("sleep pw")))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
    }
    for s in sleeping {
        assert_eq!(s.join().unwrap(), TEMPORARY);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    server.wait_for_log("fault=timeout");
}

#[test]
fn a_checker_that_allocates_without_bound_hits_its_memory_limit() {
    let mut server = trap_checker_server();
    assert_eq!(server.connect().ask("alloc pw"), TEMPORARY);
    let logs = server.wait_for_log("plugin fault");
    assert!(
        logs.contains("fault=memory limit") || logs.contains("fault=trap"),
        "{logs}"
    );
    assert!(server.is_alive());
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}

#[test]
fn a_broken_mechanism_loaded_from_a_file() {
    let spec = guest_wasm("trap-mechanism").display().to_string();
    let mut server = Server::start(&["--mechanism", &spec]);
    assert!(server.banner.contains("X-TRAP"), "{}", server.banner);

    // Success with an empty user name: refused as a contract violation.
    let mut c = server.connect();
    assert_eq!(
        c.ask(&format!("AUTH X-TRAP {}", b64(b"garbage"))),
        TEMPORARY
    );
    server.wait_for_log("succeeded with an empty user name");

    // A 20 MiB challenge: over the output limit.
    assert_eq!(
        server
            .connect()
            .ask(&format!("AUTH X-TRAP {}", b64(b"big"))),
        TEMPORARY
    );
    server.wait_for_log("more than its limit");

    // A panic: a trap.
    assert_eq!(server.connect().ask("AUTH X-TRAP"), TEMPORARY);

    // The well-behaved path through the same plugin reaches the checker.
    assert_eq!(
        server.connect().ask(&format!("AUTH X-TRAP {}", b64(b"ok"))),
        LOGIN_DENIED
    );
    assert!(server.is_alive());
    assert_eq!(server.connect().ask("guest password"), LOGIN_OK);
}

#[test]
fn secrets_never_reach_the_logs() {
    let secret = "Tr0ub4dor-and-3";
    let server = Server::start(&["--auth", &format!("memory:alice:{secret}")]);
    let wrong = "correct-horse-battery";
    assert_eq!(server.connect().ask(&format!("alice {secret}")), LOGIN_OK);
    assert_eq!(
        server.connect().ask(&format!("alice {wrong}")),
        LOGIN_DENIED
    );
    let plain = b64(format!("\0alice\0{secret}").as_bytes());
    assert_eq!(
        server.connect().ask(&format!("AUTH PLAIN {plain}")),
        LOGIN_OK
    );
    let mut c = server.connect();
    c.ask("AUTH LOGIN");
    c.ask(&b64(b"alice"));
    assert_eq!(c.ask(&b64(wrong.as_bytes())), LOGIN_DENIED);
    let logs = server.wait_for_log("bad credentials");
    for needle in [secret, wrong, plain.as_str(), &b64(wrong.as_bytes())] {
        assert!(
            !logs.contains(needle),
            "{needle:?} leaked into the logs:\n{logs}"
        );
    }
    assert!(logs.contains("alice"), "user names are logged: {logs}");
}
