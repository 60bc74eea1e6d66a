//! Logs cannot be forged: every text from a plugin or a client reaches
//! the human log with CR, LF, ESC and other controls shown escaped
//! (`\r`, `\n`, `\x1b`), so none of it starts a line of its own or
//! reaches the operator's terminal as an escape sequence.

use super::common::{LOGIN_DENIED, LOGIN_OK, Server, TEMPORARY, guest_wasm};
use super::*;

/// What the trap checker's `forge-*` texts carry after their first word
/// (the fixture's `FORGED`): a CR LF, a line that looks like the host's,
/// and an escape that turns a terminal red.
const FORGED: &str = "\r\n2030-01-01T00:00:00.000000Z  INFO portcullis: FORGED authenticated \
                      user=admin result=success\x1b[31m";
/// How a forged line starts, were it written raw.
const FORGED_LINE: &str = "2030-01-01T00:00:00.000000Z";

/// `text` as the log must show it.
fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The log has no raw CR or ESC at all, and no line (split at LF or CR)
/// that starts with `forged` or with a forged timestamp.
#[track_caller]
fn assert_unforged(logs: &str, forged: &[&str]) {
    assert!(
        !logs.contains('\x1b'),
        "a raw ESC reached the log:\n{logs:?}"
    );
    assert!(!logs.contains('\r'), "a raw CR reached the log:\n{logs:?}");
    for line in logs.split(['\n', '\r']) {
        let line = line.trim_start();
        assert!(!line.starts_with(FORGED_LINE), "forged log line: {line:?}");
        for f in forged {
            assert!(!line.starts_with(f), "a line starts with {f:?}: {line:?}");
        }
    }
}

/// A checker's denial text and its `unavailable` text.
#[test]
fn a_checkers_texts_cannot_forge_log_lines() {
    let spec = format!("wasm:{}", guest_wasm("trap-checker").display());
    let server = Server::start(&["--auth", &spec, "--auth-failure-delay", "0s"]);
    assert_eq!(server.connect().ask("forge-deny pw"), LOGIN_DENIED);
    assert_eq!(server.connect().ask("forge-unavailable pw"), TEMPORARY);
    let deny = escaped(&format!("forge-deny{FORGED}"));
    let unavailable = escaped(&format!("forge-unavailable{FORGED}"));
    server.wait_for_log(&deny);
    let logs = server.wait_for_log(&unavailable);
    assert_unforged(&logs, &[]);
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}

/// Client text: an echo user name with an escape, a quoted local part in
/// MAIL FROM with one (after AUTH), an EHLO name and a mechanism name.
#[test]
fn client_texts_cannot_forge_log_lines() {
    let server = Server::start(&["--auth", &memory_auth(""), "--auth-failure-delay", "0s"]);
    // The echo service's `user pass` line.
    let user = "evil\x1b[31mFORGED-USER";
    assert_eq!(server.connect().ask(&format!("{user} pw")), LOGIN_DENIED);
    server.wait_for_log(&escaped(user));

    // MAIL FROM after AUTH: a quoted local part may hold an ESC.
    let sender = "\"a\x1b[31mFORGED-FROM\"@example.com";
    let mut c = server.smtp_client();
    smtp_login(&mut c, ALICE, ALICE_PASSWORD).expect(235, Some("2.7.0"));
    let reply = c.cmd(&format!("MAIL FROM:<{sender}>"));
    if reply.code == 250 {
        c.cmd("RCPT TO:<console@example.com>")
            .expect(250, Some("2.1.5"));
        c.cmd("DATA").expect(354, None);
        c.send("Subject: forged\r\n\r\nbody\r\n.");
        c.reply().expect(250, Some("2.0.0"));
        // Accepted, so logged with the delivery: escaped.
        server.wait_for_log(&escaped(sender));
    } else {
        // Refusing such an address is containment too.
        assert_eq!(reply.code / 100, 5, "{:?}", reply.lines);
    }
    c.cmd("QUIT").expect(221, Some("2.0.0"));

    // The EHLO name, and a mechanism name: wherever they are logged, it
    // is escaped.
    let helo = "evil\x1b[31mFORGED-HELO";
    let mechanism = "X\x1b[31mFORGED-MECH";
    let mut c = server.smtp_client();
    c.cmd(&format!("EHLO {helo}"));
    c.cmd("EHLO fine.example").expect(250, None);
    c.cmd(&format!("AUTH {mechanism}"));
    c.cmd("QUIT").expect(221, Some("2.0.0"));
    bystander_echo_login(&server, LOOPBACK, std::time::Duration::from_secs(2));
    let logs = server.wait_for_log("session ended");
    for text in [helo, mechanism] {
        let marker = text.split('\x1b').nth(1).unwrap();
        for (at, _) in logs.match_indices(marker) {
            assert!(
                logs[..at].ends_with(&escaped(text)[..escaped(text).len() - marker.len()]),
                "{text:?} logged unescaped: {:?}",
                &logs[at.saturating_sub(40)..at + marker.len()]
            );
        }
    }
    assert_unforged(&logs, &["FORGED-USER", "[31m"]);
}
