//! Issue 17: mail that cannot be smuggled, lost or duplicated, over the
//! real server with the built-in Maildir realm and open (anonymous)
//! delivery, as an inbound MX runs.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, Server, b64};

/// The files in `spool/USER/SUB`.
fn files(spool: &Path, user: &str, sub: &str) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(spool.join(user).join(sub)) else {
        return Vec::new();
    };
    dir.map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

/// Every user folder in the spool.
fn users(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn open_mx(spool: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--auth", "anonymous", "--maildir", spool.to_str().unwrap()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn start_mail(c: &mut Client, to: &str) {
    c.cmd("EHLO attacker.example").expect(250, None);
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(250, Some("2.1.0"));
    c.cmd(&format!("RCPT TO:<{to}>")).expect(250, Some("2.1.5"));
    c.cmd("DATA").expect(354, None);
}

/// Every published smuggling sequence, sent by an unauthenticated client
/// to an open MX: exactly one message is stored, to the real recipient,
/// and the smuggled MAIL/RCPT/DATA never run (no second reply, no mail for
/// the smuggled recipient).
#[test]
fn smuggled_transactions_are_message_text_not_commands() {
    let ends: &[&[u8]] = &[
        b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n.\r", b"\r.\n",
    ];
    for policy in ["normalize", "reject"] {
        let spool = tempfile::tempdir().unwrap();
        let server = open_mx(spool.path(), &["--bare-newline", policy]);
        for end in ends {
            let mut c = server.smtp_client();
            start_mail(&mut c, "rcpt@example.com");
            let mut body = b"From: a@example.com\r\n\r\nhello".to_vec();
            body.extend_from_slice(end);
            body.extend_from_slice(
                b"MAIL FROM:<boss@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\n\
                  From: boss@bank.example\r\n\r\nPay now\r\n.\r\nNOOP\r\n",
            );
            c.send_raw(&body);
            let answer = c.reply();
            let want = if policy == "normalize" {
                (250, Some("2.0.0"))
            } else {
                (550, Some("5.6.0"))
            };
            answer.expect(want.0, want.1);
            // The next reply is NOOP's: nothing smuggled was answered.
            c.reply().expect(250, Some("2.0.0"));
            c.cmd("QUIT").expect(221, Some("2.0.0"));
        }
        let stored = files(spool.path(), "rcpt", "new");
        let expected = if policy == "normalize" { ends.len() } else { 0 };
        assert_eq!(stored.len(), expected, "{policy}");
        for message in &stored {
            let text = String::from_utf8_lossy(message);
            // The smuggled lines are text of the one message, with CRLF.
            assert!(
                text.contains("\r\nMAIL FROM:<boss@bank.example>\r\n"),
                "{text:?}"
            );
            assert!(
                !message.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
                "{text:?}"
            );
        }
        let want: Vec<String> = if expected > 0 {
            vec!["rcpt".into()]
        } else {
            Vec::new()
        };
        assert_eq!(users(spool.path()), want, "{policy}");
        assert!(files(spool.path(), "victim", "new").is_empty());
    }
}

/// A command line is CRLF-terminated: a bare LF neither ends it nor
/// starts another command, and the session stays in step.
#[test]
fn bare_newlines_in_commands_are_refused() {
    let spool = tempfile::tempdir().unwrap();
    let server = open_mx(spool.path(), &[]);
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    c.send_raw(b"NOOP\nRSET\r\n");
    c.reply().expect(500, Some("5.5.2"));
    c.send_raw(b"NOOP\rQUIT\r\n");
    c.reply().expect(500, Some("5.5.2"));
    // An LF alone ends nothing: the command runs once its CRLF comes.
    c.send_raw(b"NOOP");
    c.send_raw(b"\r\n");
    c.reply().expect(250, Some("2.0.0"));
    c.cmd("QUIT").expect(221, Some("2.0.0"));
}

/// The issue's reproducer: `--plugin-call-time 10ms` and a 5 MB message.
/// `deliver` has its own deadline, so the message is stored once and
/// acknowledged; nothing stays in tmp/.
#[test]
fn deliver_has_its_own_deadline_apart_from_the_call_time() {
    let spool = tempfile::tempdir().unwrap();
    let server = open_mx(spool.path(), &["--plugin-call-time", "10ms"]);
    let mut c = server.smtp_client();
    start_mail(&mut c, "big@example.com");
    let line = "x".repeat(998);
    let mut body = String::from("Subject: big\r\n\r\n");
    while body.len() < 5 << 20 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    c.send_raw(body.as_bytes());
    c.reply().expect(250, Some("2.0.0"));
    c.cmd("QUIT").expect(221, Some("2.0.0"));
    assert_eq!(files(spool.path(), "big", "new").len(), 1);
    assert!(files(spool.path(), "big", "tmp").is_empty());
}

/// A delivery that cannot finish within its deadline: the answer is a
/// temporary failure only when nothing was stored, never a 451 for a
/// message in new/; the session then gets a fresh avatar (the next message
/// is delivered) and no "while borrowed" trap is logged.
#[test]
fn a_delivery_past_its_deadline_is_never_acknowledged_ambiguously() {
    let spool = tempfile::tempdir().unwrap();
    let server = open_mx(spool.path(), &["--plugin-deliver-time", "10ms"]);
    let mut c = server.smtp_client();
    let mut body = String::from("Subject: big\r\n\r\n");
    let line = "y".repeat(998);
    while body.len() < 8 << 20 {
        body.push_str(&line);
        body.push_str("\r\n");
    }
    body.push_str(".\r\n");
    let mut codes = Vec::new();
    for round in 0..3 {
        if round == 0 {
            start_mail(&mut c, "slow@example.com");
        } else {
            c.cmd("MAIL FROM:<a@example.com>")
                .expect(250, Some("2.1.0"));
            c.cmd("RCPT TO:<slow@example.com>")
                .expect(250, Some("2.1.5"));
            c.cmd("DATA").expect(354, None);
        }
        let before = files(spool.path(), "slow", "new").len();
        c.send_raw(body.as_bytes());
        let answer = c.reply();
        let after = files(spool.path(), "slow", "new").len();
        codes.push(answer.code);
        match answer.code {
            250 => assert_eq!(after, before + 1, "{answer:?}"),
            451 => {
                assert_eq!(after, before, "a 451 for a stored message: {answer:?}");
            }
            554 => assert!(after <= before + 1, "{answer:?}"),
            _ => panic!("unexpected {answer:?}"),
        }
    }
    // Whatever happened to the big ones, the session's avatar is alive:
    // MAIL and RCPT (under the 2s call time) are answered by a fresh one.
    c.cmd("MAIL FROM:<a@example.com>")
        .expect(250, Some("2.1.0"));
    c.cmd("RCPT TO:<small@example.com>")
        .expect(250, Some("2.1.5"));
    c.cmd("QUIT").expect(221, Some("2.0.0"));
    let logs = server.wait_for_log("session ended");
    assert!(!logs.contains("while borrowed"), "{logs}");
    eprintln!("answers to the late deliveries: {codes:?}");
}

/// The session deadline is checked before every pipelined command: a
/// batch of slow commands does not keep a session open past it.
#[test]
fn the_session_timeout_holds_for_pipelined_commands() {
    let server = Server::start(&[
        "--auth",
        "memory:guest:password",
        "--session-timeout",
        "1s",
        "--auth-failure-delay",
        "300ms",
        "--max-auth-failures",
        "100",
        "--auth-penalty",
        "0s",
    ]);
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    let started = Instant::now();
    let bad = format!("AUTH PLAIN {}\r\n", b64(b"\0guest\0wrong"));
    c.send_raw(bad.repeat(20).as_bytes());
    let mut denied = 0;
    loop {
        let answer = c.reply();
        if answer.code == 535 {
            denied += 1;
            continue;
        }
        answer.expect(421, Some("4.4.2"));
        break;
    }
    c.expect_closed();
    assert!(denied < 20, "every pipelined command ran");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
