//! What a client without credentials can hold: connections and SASL
//! exchanges waiting for its next line. One address gets a small share
//! (per-address limits, 421 4.7.0 or the echo busy line past it), and an
//! exchange waiting for the client ends at the step timeout.

use std::time::{Duration, Instant};

use super::common::{Client, LOGIN_OK, Server};
use super::*;

/// Connections the attacker opens from 127.0.0.1: more than the old
/// instance pool (1,000) held, and than the default per-address limit.
const ATTACKERS: usize = 1_100;
/// The defaults of `--max-connections-per-address` and
/// `--max-exchanges-per-address`.
const CONNECTIONS_PER_ADDRESS: usize = 100;
const EXCHANGES_PER_ADDRESS: usize = 8;

/// How the attacker's connections were answered.
#[derive(Default)]
struct Tally {
    greeted: Vec<Client>,
    refused_at_connect: usize,
    in_flight: Vec<Client>,
    refused_at_auth: usize,
    other: Vec<String>,
}

/// Issue 12's lock-out: 1,100 connections from one address sit in
/// `AUTH LOGIN` and send nothing more. On a default run a login from
/// another address still gets 235 at once, and the attacker gets the
/// per-address 421 past its share.
#[test]
fn one_address_in_auth_login_cannot_lock_out_another() {
    assert!(raise_fd_limit() > ATTACKERS as u64 + 200, "too few fds");
    let server = Server::start(&[
        "--auth",
        &memory_auth(""),
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let mut tally = Tally::default();
    // Connect all first, then EHLO all, then AUTH LOGIN all: the server
    // works on them all at once, as it would for a real attacker.
    for _ in 0..ATTACKERS {
        let mut c = Client::connect(server.smtp);
        c.set_read_timeout(Duration::from_secs(10));
        let greeting = c.reply();
        match (greeting.code, greeting.enhanced()) {
            (220, _) => tally.greeted.push(c),
            (421, Some("4.7.0")) => {
                c.expect_closed();
                tally.refused_at_connect += 1;
            }
            _ => tally.other.push(format!("greeting {:?}", greeting.lines)),
        }
    }
    for c in &mut tally.greeted {
        c.send("EHLO x");
    }
    for c in &mut tally.greeted {
        c.reply().expect(250, None);
    }
    for c in &mut tally.greeted {
        c.send("AUTH LOGIN");
    }
    for mut c in std::mem::take(&mut tally.greeted) {
        let reply = c.reply();
        match (reply.code, reply.enhanced()) {
            (334, _) => tally.in_flight.push(c),
            (421, Some("4.7.0")) => {
                c.expect_closed();
                tally.refused_at_auth += 1;
            }
            _ => tally.other.push(format!("AUTH LOGIN {:?}", reply.lines)),
        }
    }

    // Meanwhile, someone else logs in at once, on both services.
    bystander_smtp_login(&server, OTHER, Duration::from_secs(1));
    bystander_echo_login(&server, OTHER, Duration::from_secs(1));

    let held = tally.in_flight.len();
    let greeted = held + tally.refused_at_auth;
    assert!(
        tally.other.is_empty(),
        "unexpected replies: {:?}",
        tally.other
    );
    assert!(
        greeted <= CONNECTIONS_PER_ADDRESS,
        "{greeted} connections from one address were greeted ({} refused at connect, {} \
         at AUTH)",
        tally.refused_at_connect,
        tally.refused_at_auth
    );
    assert_eq!(greeted + tally.refused_at_connect, ATTACKERS);
    assert!(
        held <= EXCHANGES_PER_ADDRESS,
        "{held} exchanges from one address in flight"
    );
    let refusals = metric_total(&server.metrics(), "portcullis_client_limit_refusals_total");
    let refused = (tally.refused_at_connect + tally.refused_at_auth) as f64;
    assert!(refusals >= refused, "metric {refusals}, refused {refused}");
    // The attacker's share still works for it (it is limited, not
    // banned), and alice is still served.
    for mut c in tally.in_flight {
        c.send("*");
        assert_eq!(c.reply().code, 501);
    }
    bystander_smtp_login(&server, LOOPBACK, Duration::from_secs(2));
}

/// The same attack on the echo service: past the per-address share the
/// attacker gets the busy line the session cap sends, and alice from
/// 127.0.0.2 logs in.
#[test]
fn echo_connections_past_the_per_address_limit_get_the_busy_line() {
    // The line a connection over the session cap gets.
    let capped = Server::start(&["--max-sessions", "1"]);
    let _holder = capped.connect();
    std::thread::sleep(Duration::from_millis(100));
    let busy = capped.connect().recv().expect("a busy line");

    let server = Server::start(&[
        "--auth",
        &memory_auth(""),
        "--max-connections-per-address",
        "5",
        "--max-exchanges-per-address",
        "2",
    ]);
    let mut held: Vec<Client> = (0..5).map(|_| server.connect()).collect();
    // The sixth connection is over the limit.
    let mut over = server.connect();
    assert_eq!(over.recv().as_deref(), Some(busy.as_str()));
    over.expect_closed();
    // Two exchanges wait for their client; the third is refused.
    for c in &mut held[..2] {
        assert!(c.ask("AUTH LOGIN").starts_with('+'));
    }
    assert_eq!(held[2].ask("AUTH LOGIN"), busy);
    held[2].expect_closed();
    bystander_echo_login(&server, OTHER, Duration::from_secs(1));
    // Trusted networks are exempt.
    let exempt = Server::start(&[
        "--auth",
        &memory_auth(""),
        "--max-connections-per-address",
        "2",
        "--client-limit-exempt",
        "127.0.0.0/8",
    ]);
    let _many: Vec<Client> = (0..5).map(|_| exempt.connect()).collect();
    assert_eq!(
        exempt.connect().ask(&format!("{ALICE} {ALICE_PASSWORD}")),
        LOGIN_OK
    );
}

/// An exchange waiting for the client's next line ends at
/// `--auth-step-timeout` (SMTP 501 5.7.0, echo's cancellation line), its
/// instance is freed, and the session goes on.
#[test]
fn a_stalled_exchange_is_cancelled_at_the_step_timeout() {
    let server = Server::start(&[
        "--auth",
        &memory_auth(""),
        "--auth-step-timeout",
        "1s",
        "--max-exchanges",
        "2",
    ]);
    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO staller.example").expect(250, None);
    let mut echo = server.connect();
    let started = Instant::now();
    assert_eq!(smtp.cmd("AUTH LOGIN").code, 334);
    assert!(echo.ask("AUTH LOGIN").starts_with('+'));
    // Both exchange slots are held; now the client sends nothing.
    let reply = smtp.reply();
    let took = started.elapsed();
    reply.expect(501, Some("5.7.0"));
    assert!(reply.text().contains("timed out"), "{:?}", reply.lines);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    smtp.cmd("NOOP").expect(250, Some("2.0.0"));
    assert_eq!(echo.recv().as_deref(), Some("Authentication cancelled."));
    // The echo session is back at its login prompt.
    assert_eq!(echo.ask(&format!("{ALICE} {ALICE_PASSWORD}")), LOGIN_OK);
    // The slots came back: two new exchanges run side by side.
    let mut a = server.smtp_client();
    let mut b = server.smtp_client();
    a.cmd("EHLO a.example").expect(250, None);
    b.cmd("EHLO b.example").expect(250, None);
    assert_eq!(a.cmd("AUTH LOGIN").code, 334);
    assert_eq!(b.cmd("AUTH LOGIN").code, 334);
    a.cmd(&b64(ALICE.as_bytes()));
    a.cmd(&b64(ALICE_PASSWORD.as_bytes()))
        .expect(235, Some("2.7.0"));
    // And the stalled session itself can log in after all.
    smtp.cmd(&auth_plain(ALICE, ALICE_PASSWORD))
        .expect(235, Some("2.7.0"));
}
