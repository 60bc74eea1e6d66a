//! The SMTP service over real TCP (and TLS): every reply code the AUTH and
//! transaction rules produce, pipelining, limits, garbage, TLS upgrades,
//! the session cap, timeouts and shutdown.

use crate::common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Server, SmtpReply, TlsClient, b64};

const DEFAULT: &[&str] = &["--auth-failure-delay", "0s"];

fn plain(user: &str, pass: &str) -> String {
    b64(format!("\0{user}\0{pass}").as_bytes())
}

fn ehlo(client: &mut Client) -> SmtpReply {
    let reply = client.cmd("EHLO client.example");
    reply.expect(250, None);
    reply
}

fn login(client: &mut Client) {
    ehlo(client);
    client
        .cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
}

#[test]
fn greeting_ehlo_and_simple_commands() {
    let server = Server::start(DEFAULT);
    let mut c = Client::connect(server.smtp);
    let greeting = c.reply();
    assert_eq!(greeting.code, 220);
    assert!(greeting.text().contains("ESMTP"), "{greeting:?}");
    let ehlo = ehlo(&mut c);
    let text = ehlo.text();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    for ext in [
        "PIPELINING",
        "SIZE 10485760",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "STARTTLS",
        "AUTH CRAM-MD5 LOGIN PLAIN SCRAM-SHA-1 SCRAM-SHA-256",
        "HELP",
    ] {
        assert!(lines.contains(&ext), "{ext} missing from {lines:?}");
    }
    c.cmd("HELO client.example").expect(250, None);
    c.cmd("NOOP").expect(250, Some("2.0.0"));
    c.cmd("NOOP ignored text").expect(250, Some("2.0.0"));
    c.cmd("VRFY someone").expect(252, Some("2.5.0"));
    c.cmd("EXPN list").expect(502, Some("5.5.1"));
    c.cmd("HELP").expect(214, Some("2.0.0"));
    c.cmd("RSET").expect(250, Some("2.0.0"));
    c.cmd("QUIT").expect(221, Some("2.0.0"));
    c.expect_closed();
}

#[test]
fn auth_reply_codes() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(503, Some("5.5.1"));
    c.cmd("HELO client.example").expect(250, None);
    c.cmd("AUTH PLAIN").expect(503, Some("5.5.1"));
    ehlo(&mut c);
    c.cmd("AUTH X-NOPE").expect(504, Some("5.5.4"));
    c.cmd("AUTH PLAIN !!!notbase64").expect(501, Some("5.5.2"));
    // No initial response: an empty 334, then cancel.
    let challenge = c.cmd("AUTH PLAIN");
    assert_eq!(challenge.lines, ["334 "]);
    c.cmd("*").expect(501, Some("5.7.0"));
    let challenge = c.cmd("AUTH LOGIN");
    assert_eq!(challenge.lines, ["334 VXNlcm5hbWU6"]);
    c.cmd("%%%").expect(501, Some("5.5.2"));
    // `=` is an empty initial response, which PLAIN cannot use.
    c.cmd("AUTH PLAIN =").expect(535, Some("5.7.8"));
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "wrong")))
        .expect(535, Some("5.7.8"));
    // LOGIN through its two challenges.
    c.cmd("AUTH LOGIN").expect(334, None);
    c.cmd(&b64(b"guest")).expect(334, None);
    c.cmd(&b64(b"password")).expect(235, Some("2.7.0"));
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(503, Some("5.5.1"));
    assert!(
        server
            .wait_for_log("result=\"success\"")
            .contains("mechanism=LOGIN")
    );
}

#[test]
fn auth_during_a_transaction_and_the_anonymous_avatar() {
    let server = Server::start(&[
        "--auth-failure-delay",
        "0s",
        "--auth",
        "memory:guest:password",
        "--auth",
        "anonymous",
    ]);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    // Anonymous access: the realm's anonymous avatar takes the mail.
    c.cmd("MAIL FROM:<someone@example.com>")
        .expect(250, Some("2.1.0"));
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(503, Some("5.5.1"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(250, Some("2.1.5"));
    c.cmd("DATA").expect(354, None);
    c.send("Subject: anonymous\r\n\r\nno login\r\n.");
    c.reply().expect(250, Some("2.0.0"));
    let out = server.wait_for_stdout("no login");
    assert!(out.contains("with ESMTP id"), "{out}");
    assert!(!out.contains("authenticated as"), "{out}");
}

#[test]
fn without_anonymous_access_mail_needs_auth() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(530, Some("5.7.0"));
}

#[test]
fn auth_required_covers_mail_rcpt_and_data() {
    let server = Server::start(&[
        "--auth-required",
        "--auth",
        "memory:guest:password",
        "--auth",
        "anonymous",
    ]);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(530, Some("5.7.0"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(530, Some("5.7.0"));
    c.cmd("DATA").expect(530, Some("5.7.0"));
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(250, Some("2.1.0"));
}

#[test]
fn plugin_faults_are_454_and_the_session_goes_on() {
    let trap = common::guest_wasm("trap-checker");
    let spec = format!("wasm:{}", trap.display());
    let server = Server::start(&["--auth", &spec]);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    c.cmd(&format!("AUTH PLAIN {}", plain("boom", "x")))
        .expect(454, Some("4.7.0"));
    c.cmd("NOOP").expect(250, Some("2.0.0"));
    c.cmd(&format!("AUTH PLAIN {}", plain("ok", "x")))
        .expect(235, Some("2.7.0"));
    let logs = server.wait_for_log("plugin fault");
    assert!(logs.contains("trap-checker"), "{logs}");
}

#[test]
fn tls_only_withholds_plaintext_mechanisms_until_starttls() {
    let server = Server::start(&["--auth-tls-only", "yes"]);
    let mut c = server.smtp_client();
    let reply = ehlo(&mut c);
    // Only the mechanisms that do not reveal the password.
    assert!(
        reply
            .text()
            .contains("AUTH CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256\n"),
        "{reply:?}"
    );
    assert!(reply.text().contains("STARTTLS"), "{reply:?}");
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(538, Some("5.7.11"));
    c.cmd("STARTTLS").expect(220, Some("2.0.0"));
    let mut tls = TlsClient::upgrade(c, &server.cert_path());
    let reply = tls.cmd("EHLO client.example");
    assert!(
        reply
            .text()
            .contains("AUTH CRAM-MD5 LOGIN PLAIN SCRAM-SHA-1 SCRAM-SHA-256"),
        "{reply:?}"
    );
    assert!(!reply.text().contains("STARTTLS"), "{reply:?}");
    tls.cmd("STARTTLS").expect(503, Some("5.5.1"));
    tls.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
    tls.cmd("MAIL FROM:<a@example.com>")
        .expect(250, Some("2.1.0"));
    tls.cmd("RCPT TO:<console@localhost>")
        .expect(250, Some("2.1.5"));
    tls.cmd("DATA").expect(354, None);
    tls.send("Subject: over tls\r\n\r\nsecret\r\n.");
    tls.reply().expect(250, Some("2.0.0"));
    let out = server.wait_for_stdout("secret");
    assert!(out.contains("with ESMTPSA"), "{out}");
}

#[test]
fn starttls_discards_plaintext_pipelined_after_it() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    // An attacker's injection: commands in the same packet as STARTTLS.
    c.send_raw(b"STARTTLS\r\nMAIL FROM:<injected@example.com>\r\n");
    c.reply().expect(220, Some("2.0.0"));
    let mut tls = TlsClient::upgrade(c, &server.cert_path());
    // The first reply over TLS answers our NOOP, not the injected MAIL;
    // and the session starts over (no EHLO yet).
    tls.cmd("NOOP").expect(250, Some("2.0.0"));
    tls.cmd("MAIL FROM:<a@example.com>")
        .expect(503, Some("5.5.1"));
}

#[test]
fn implicit_tls_listener() {
    let server = Server::start(&["--smtps-listen", "127.0.0.1:0", "--auth-tls-only", "yes"]);
    let addr = server.smtps.expect("an smtps listener");
    let tcp = TcpStream::connect(addr).unwrap();
    let mut tls = TlsClient::connect(tcp, &server.cert_path());
    tls.reply().expect(220, None);
    let reply = tls.cmd("EHLO client.example");
    assert!(
        reply
            .text()
            .contains("AUTH CRAM-MD5 LOGIN PLAIN SCRAM-SHA-1 SCRAM-SHA-256"),
        "{reply:?}"
    );
    assert!(!reply.text().contains("STARTTLS"), "{reply:?}");
    tls.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
}

#[test]
fn excluded_mechanisms_are_neither_offered_nor_run() {
    let server = Server::start(&["--exclude-mechanism", "LOGIN"]);
    let mut c = server.smtp_client();
    let reply = ehlo(&mut c);
    assert!(
        reply
            .lines
            .iter()
            .any(|l| l.ends_with("AUTH CRAM-MD5 PLAIN SCRAM-SHA-1 SCRAM-SHA-256")),
        "{reply:?}"
    );
    c.cmd("AUTH LOGIN").expect(504, Some("5.5.4"));
}

#[test]
fn failures_are_delayed_and_limited() {
    let server = Server::start(&["--auth-failure-delay", "300ms", "--max-auth-failures", "2"]);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    let started = Instant::now();
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "nope")))
        .expect(535, Some("5.7.8"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "nope again")))
        .expect(535, Some("5.7.8"));
    c.reply().expect(421, Some("4.7.0"));
    c.expect_closed();
}

#[test]
fn mail_transaction_reply_codes() {
    let server = Server::start(&["--max-message-size", "2000"]);
    let mut c = server.smtp_client();
    login(&mut c);
    c.cmd("RCPT TO:<console@localhost>")
        .expect(503, Some("5.5.1"));
    c.cmd("DATA").expect(503, Some("5.5.1"));
    c.cmd("MAIL FROM:a@example.com").expect(501, Some("5.5.4"));
    c.cmd("MAIL FROM:<a@example.com> RET=FULL")
        .expect(555, Some("5.5.4"));
    c.cmd("MAIL FROM:<a@example.com> SIZE=2001")
        .expect(552, Some("5.3.4"));
    c.cmd("MAIL FROM:<a@example.com> AUTH=bad+zz")
        .expect(501, Some("5.5.4"));
    c.cmd("MAIL FROM:<jörg@example.com>")
        .expect(553, Some("5.6.7"));
    c.cmd("MAIL FROM:<jörg@example.com> SMTPUTF8 BODY=8BITMIME SIZE=100 AUTH=guest+40localhost")
        .expect(250, Some("2.1.0"));
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(503, Some("5.5.1"));
    c.cmd("DATA").expect(554, Some("5.5.1"));
    c.cmd("RCPT TO:<bob@example.com>")
        .expect(550, Some("5.1.1"));
    c.cmd("RCPT TO:<console@localhost> NOTIFY=NEVER")
        .expect(555, Some("5.5.4"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(250, Some("2.1.5"));
    c.cmd("DATA").expect(354, None);
    c.send("Subject: dots\r\n\r\n..leading dot\r\n.");
    let accepted = c.reply();
    accepted.expect(250, Some("2.0.0"));
    let out = server.wait_for_stdout("leading dot");
    assert!(out.contains("\n.leading dot"), "dot-unstuffing: {out}");
    assert!(out.contains("with ESMTPA id"), "{out}");
    assert!(out.contains("(authenticated as guest)"), "{out}");
    // The transaction is over: a new one can start; RSET ends it.
    c.cmd("MAIL FROM:<>").expect(250, Some("2.1.0"));
    c.cmd("RSET").expect(250, Some("2.0.0"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(503, Some("5.5.1"));
    // HELO sessions take no ESMTP parameters.
    c.cmd("HELO client.example").expect(250, None);
    c.cmd("MAIL FROM:<a@example.com> SIZE=10")
        .expect(555, Some("5.5.4"));
}

#[test]
fn data_limits_reject_the_message_and_keep_the_session() {
    let server = Server::start(&["--max-message-size", "1000"]);
    let mut c = server.smtp_client();
    let reply = ehlo(&mut c);
    assert!(reply.text().contains("SIZE 1000"), "{reply:?}");
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
    let mut transaction = |body: String| {
        c.cmd("MAIL FROM:<a@example.com>")
            .expect(250, Some("2.1.0"));
        c.cmd("RCPT TO:<console@localhost>")
            .expect(250, Some("2.1.5"));
        c.cmd("DATA").expect(354, None);
        c.send(&format!("{body}\r\n."));
        c.reply()
    };
    transaction(format!("{}\r\n", "x".repeat(60)).repeat(30)).expect(552, Some("5.3.4"));
    transaction("y".repeat(1500)).expect(500, Some("5.5.6"));
    transaction("fits".into()).expect(250, Some("2.0.0"));
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    let batch = format!(
        "EHLO client.example\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@example.com>\r\n\
         RCPT TO:<console@localhost>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n",
        plain("guest", "password")
    );
    c.send_raw(batch.as_bytes());
    c.reply().expect(250, None);
    c.reply().expect(235, Some("2.7.0"));
    c.reply().expect(250, Some("2.1.0"));
    c.reply().expect(250, Some("2.1.5"));
    c.reply().expect(550, Some("5.1.1"));
    c.reply().expect(354, None);
    c.send_raw(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n");
    c.reply().expect(250, Some("2.0.0"));
    c.reply().expect(250, Some("2.0.0"));
    c.reply().expect(221, Some("2.0.0"));
    c.expect_closed();
}

#[test]
fn garbage_gets_clear_errors_then_the_door() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    c.cmd("FROBNICATE").expect(500, Some("5.5.2"));
    c.send_bytes(b"\xff\xfe\x00binary");
    c.reply().expect(501, Some("5.5.4"));
    c.cmd(&format!("NOOP {}", "x".repeat(3000)))
        .expect(500, Some("5.5.6"));
    // A megabyte without a line end is discarded, not buffered, and
    // reported once.
    c.send_raw(&vec![b'z'; 1 << 20]);
    c.send_raw(b"\r\n");
    c.reply().expect(500, Some("5.5.6"));
    c.cmd("NOOP").expect(250, Some("2.0.0"));
    for _ in 0..5 {
        c.cmd("MAIL").expect(501, Some("5.5.4"));
    }
    c.cmd("BOGUS").expect(500, Some("5.5.2"));
    c.reply().expect(421, Some("4.7.0"));
    c.expect_closed();
}

#[test]
fn auth_lines_up_to_12288_octets_are_read() {
    let server = Server::start(DEFAULT);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    // 12288 octets of base64 after "AUTH PLAIN ": a long password.
    let password = "p".repeat(9200);
    let ir = plain("guest", &password);
    assert!(ir.len() > 12200 && ir.len() <= 12288, "{}", ir.len());
    c.cmd(&format!("AUTH PLAIN {ir}"))
        .expect(535, Some("5.7.8"));
    // The same length as a response to a 334.
    c.cmd("AUTH PLAIN").expect(334, None);
    c.cmd(&ir).expect(535, Some("5.7.8"));
    // Far beyond the limit: refused as too long, the exchange abandoned.
    c.cmd("AUTH PLAIN").expect(334, None);
    c.cmd(&"A".repeat(40_000)).expect(500, Some("5.5.6"));
    c.cmd("NOOP").expect(250, Some("2.0.0"));
}

#[test]
fn session_cap_refuses_with_421() {
    let server = Server::start(&["--max-sessions", "1"]);
    let _first = server.smtp_client();
    let mut second = Client::connect(server.smtp);
    second.reply().expect(421, Some("4.3.2"));
    second.expect_closed();
}

#[test]
fn idle_sessions_are_closed_with_421() {
    let server = Server::start(&["--idle-timeout", "300ms"]);
    let mut c = server.smtp_client();
    c.reply().expect(421, Some("4.4.2"));
    c.expect_closed();
}

#[test]
fn shutdown_says_421_to_every_session() {
    let mut server = Server::start(DEFAULT);
    let mut smtp = server.smtp_client();
    ehlo(&mut smtp);
    let mut echo = server.connect();
    // Make sure both sessions are running before the signal.
    smtp.cmd("NOOP").expect(250, Some("2.0.0"));
    server.terminate();
    smtp.reply().expect(421, Some("4.3.2"));
    smtp.expect_closed();
    assert_eq!(
        echo.recv().as_deref(),
        Some("Error: the server is shutting down, goodbye.")
    );
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Regression (the fleet's rolling restart): closing a listener resets the
/// connections in its accept queue. A connection the kernel accepted
/// while the server could not run (stopped here; starved or busy in a
/// fleet) and that is still queued when shutdown begins is admitted and
/// told 421, never reset. (Before the fix this passed too, most times: the
/// runtime usually accepted it before it saw the signal. The header case
/// in `tests/proxy.rs` fails without the fix every time.)
#[test]
fn a_connection_queued_at_shutdown_gets_421_not_a_reset() {
    let mut server = Server::start(DEFAULT);
    server.signal("STOP");
    let mut c = Client::connect(server.smtp);
    server.terminate();
    server.signal("CONT");
    c.reply().expect(220, None);
    c.reply().expect(421, Some("4.3.2"));
    c.expect_closed();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Dovecot-style penalty: failures from one address double the pause,
/// across connections and services; a success clears it.
#[test]
fn the_penalty_doubles_per_address_and_clears_on_success() {
    let server = Server::start(&[
        "--auth-failure-delay",
        "0s",
        "--auth-penalty",
        "150ms",
        "--auth-penalty-trusted",
        "none",
        "--max-auth-failures",
        "10",
    ]);
    let timed_fail = |c: &mut Client| {
        let started = Instant::now();
        c.cmd(&format!("AUTH PLAIN {}", plain("guest", "nope")))
            .expect(535, Some("5.7.8"));
        started.elapsed()
    };
    let mut first = server.smtp_client();
    ehlo(&mut first);
    assert!(timed_fail(&mut first) >= Duration::from_millis(150));
    assert!(timed_fail(&mut first) >= Duration::from_millis(300));
    let mut second = server.smtp_client();
    ehlo(&mut second);
    assert!(timed_fail(&mut second) >= Duration::from_millis(600));
    // The echo service shares the record.
    let started = Instant::now();
    assert_eq!(server.connect().ask("guest nope"), common::LOGIN_DENIED);
    assert!(started.elapsed() >= Duration::from_millis(1200));
    second
        .cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
    // Cleared: back to the first step, far below the 2.4 s the next
    // doubling would have been.
    let pause = timed_fail(&mut first);
    assert!(pause >= Duration::from_millis(150) && pause < Duration::from_millis(2000));
}

/// The default run's console realm gives every identity its avatar
/// (`defer-avatar`): a session that authenticates and sends nothing never
/// instantiates it; its first MAIL FROM does, once.
#[test]
fn a_login_that_sends_nothing_never_instantiates_the_console_realm() {
    let server = Server::start(&["--metrics-listen", "127.0.0.1:0"]);
    let realm_instances = || -> u64 {
        let series =
            "portcullis_plugin_instantiate_seconds_count{plugin=\"realm-console\",kind=\"realm\"}";
        let page = server.metrics();
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from\n{page}"))
    };
    let at_start = realm_instances();
    for _ in 0..3 {
        let mut c = server.smtp_client();
        ehlo(&mut c);
        c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
            .expect(235, Some("2.7.0"));
        c.cmd("QUIT").expect(221, Some("2.0.0"));
    }
    assert_eq!(realm_instances(), at_start, "asked at AUTH");
    let mut c = server.smtp_client();
    ehlo(&mut c);
    c.cmd(&format!("AUTH PLAIN {}", plain("guest", "password")))
        .expect(235, Some("2.7.0"));
    c.cmd("MAIL FROM:<guest@example.com>")
        .expect(250, Some("2.1.0"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(250, Some("2.1.5"));
    c.cmd("RSET").expect(250, Some("2.0.0"));
    c.cmd("MAIL FROM:<guest@example.com>")
        .expect(250, Some("2.1.0"));
    assert_eq!(realm_instances(), at_start + 1, "one avatar per session");
}

#[test]
fn metrics_count_sessions_outcomes_faults_and_deliveries() {
    let trap = common::guest_wasm("trap-checker");
    let spec = format!("wasm:{}", trap.display());
    let server = Server::start(&[
        "--auth",
        &spec,
        "--auth-failure-delay",
        "0s",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let mut c = server.smtp_client();
    ehlo(&mut c);
    c.cmd(&format!("AUTH PLAIN {}", plain("deny", "x")))
        .expect(535, Some("5.7.8"));
    c.cmd(&format!("AUTH PLAIN {}", plain("boom", "x")))
        .expect(454, Some("4.7.0"));
    c.cmd(&format!("AUTH PLAIN {}", plain("ok", "secret-pw")))
        .expect(235, Some("2.7.0"));
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(250, Some("2.1.0"));
    c.cmd("RCPT TO:<console@localhost>")
        .expect(250, Some("2.1.5"));
    c.cmd("DATA").expect(354, None);
    c.send("Subject: counted\r\n\r\nx\r\n.");
    c.reply().expect(250, Some("2.0.0"));
    let page = server.metrics();
    for want in [
        "portcullis_sessions_total{protocol=\"smtp\"} 1",
        "portcullis_sessions_active{protocol=\"smtp\"} 1",
        "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"denied\"} 1",
        "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"fault\"} 1",
        "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"success\"} 1",
        "portcullis_plugin_faults_total{plugin=\"trap_checker\",kind=\"trap\"} 1",
        "portcullis_messages_delivered_total 1",
        "portcullis_auth_duration_seconds_count{protocol=\"smtp\",mechanism=\"PLAIN\"} 3",
        "portcullis_plugin_pool_size 12000",
    ] {
        assert!(page.contains(want), "{want} missing from\n{page}");
    }
    assert!(!page.contains("secret-pw"));
    // Each AUTH made a checker instance, called it and dropped it (start-up
    // may have too), and the delivery avatar's realm instance is timed as
    // well.
    for (series, at_least) in [
        (
            "portcullis_plugin_instantiate_seconds_count{plugin=\"trap_checker\",kind=\"checker\"}",
            3,
        ),
        (
            "portcullis_plugin_call_seconds_count{plugin=\"trap_checker\",kind=\"checker\"}",
            3,
        ),
        // Each check's store was dropped when its call ended.
        (
            "portcullis_plugin_release_seconds_count{plugin=\"trap_checker\",kind=\"checker\"}",
            3,
        ),
    ] {
        let count: u64 = page
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from\n{page}"));
        assert!(count >= at_least, "{series} is {count}");
    }
    assert!(
        page.contains("portcullis_plugin_instantiate_seconds_count{plugin=")
            && page.contains("kind=\"realm\"")
    );
    c.cmd("QUIT").expect(221, Some("2.0.0"));
    c.expect_closed();
    // Back to no sessions and, once the avatar is gone, no instances.
    let mut page = String::new();
    for _ in 0..100 {
        page = server.metrics();
        if page.contains("portcullis_sessions_active{protocol=\"smtp\"} 0")
            && page.contains("portcullis_plugin_instances 0")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sessions or instances left over:\n{page}");
}

#[test]
fn busy_sessions_still_end_at_the_session_timeout() {
    let server = Server::start(&["--session-timeout", "600ms"]);
    let mut c = server.smtp_client();
    let started = Instant::now();
    // Never idle, but the session's time runs out all the same.
    loop {
        let reply = c.cmd("NOOP");
        if reply.code == 421 {
            reply.expect(421, Some("4.4.2"));
            assert!(reply.text().contains("Session too long"), "{reply:?}");
            break;
        }
        reply.expect(250, Some("2.0.0"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never timed out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.expect_closed();
}
