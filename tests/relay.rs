//! The relay realm against real next hops (issue 15): a private Postfix
//! over SMTP and a private Dovecot over LMTP, each delivering into
//! Maildirs the tests count. A 250 from portcullis must mean the next hop
//! has the message, exactly once; the next hop's 4xx and 5xx, and a next
//! hop that is down, must reach the client as 4xx and 5xx.

use crate::common;

use std::net::IpAddr;

use common::mta::{Dovecot, Postfix, free_port};
use common::{Client, Server, SmtpReply, b64};

/// The address the test client connects from: not the 127.0.0.1 that
/// portcullis connects to the next hop from, so the two can be told
/// apart in the next hop's headers and log.
const CLIENT_IP: &str = "127.0.0.2";

/// A portcullis whose message-delivery realm relays to `next_hop`; alice
/// logs in with password `pw`.
fn relay_server(next_hop: &str, extra: &str) -> (Server, tempfile::TempDir) {
    relay_server_with(next_hop, extra, &[])
}

/// [`relay_server`] with more command-line flags.
fn relay_server_with(next_hop: &str, extra: &str, flags: &[&str]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[[realm]]\nserves = \"message-delivery\"\nbuiltin = \"relay\"\n\
             next-hop = \"{next_hop}\"\n{extra}\n"
        ),
    )
    .unwrap();
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--auth",
        "memory:alice:pw",
        "--auth-failure-delay",
        "0s",
        "--server-name",
        "portcullis.test",
    ];
    args.extend_from_slice(flags);
    let server = Server::start(&args);
    (server, dir)
}

fn logged_in(server: &Server) -> Client {
    let mut c = Client::connect_from(CLIENT_IP.parse::<IpAddr>().unwrap(), server.smtp);
    c.reply().expect(220, None);
    c.cmd("EHLO client.example").expect(250, None);
    c.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0pw")))
        .expect(235, Some("2.7.0"));
    c
}

#[track_caller]
fn assert_250(reply: SmtpReply) {
    assert_eq!(reply.code, 250, "{:?}", reply.lines);
}

/// DATA and a message; the reply to the final dot.
fn send_message(c: &mut Client, subject: &str) -> SmtpReply {
    c.cmd("DATA").expect(354, None);
    c.send(&format!("Subject: {subject}"));
    c.send("");
    c.send("first line");
    // Dot-stuffed by the client, as SMTP wants.
    c.send("..a line that starts with a dot");
    c.cmd(".")
}

/// One whole transaction to `to`; the reply to the final dot.
fn mail(c: &mut Client, to: &str, subject: &str) -> SmtpReply {
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    assert_250(c.cmd(&format!("RCPT TO:<{to}>")));
    send_message(c, subject)
}

#[test]
fn relay_smtp_accepted_once_with_xclient() {
    let postfix = Postfix::start("127.0.0.1");
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(&url, "xclient = true");
    let mut c = logged_in(&server);
    let reply = mail(&mut c, "alice@example.test", "via xclient");
    reply.expect(250, Some("2.0.0"));
    c.cmd("QUIT");
    let got = postfix.wait_messages("alice", 1);
    assert_eq!(got.len(), 1, "delivered exactly once: {got:?}");
    let message = &got[0];
    assert!(message.contains("Subject: via xclient"), "{message}");
    // Dot-stuffing undone by the next hop: the line is as the client meant it.
    assert!(
        message.contains("\n.a line that starts with a dot"),
        "{message}"
    );
    // Postfix saw the real client (XCLIENT ADDR) and its login (LOGIN).
    let log = postfix.log();
    assert!(
        log.contains(&format!(
            "client=unknown[{CLIENT_IP}], sasl_method=XCLIENT, sasl_username=alice"
        )),
        "Postfix did not log the XCLIENT client:\n{log}"
    );
    let postfix_received = message
        .split("\nReceived: ")
        .find(|h| h.contains("by mta.test"))
        .unwrap_or_else(|| panic!("no Received by mta.test in {message}"));
    assert!(postfix_received.contains(CLIENT_IP), "{postfix_received}");
}

#[test]
fn relay_xclient_login_is_a_login_at_postfix_for_a_client_outside_mynetworks() {
    // XCLIENT ADDR replaces the client's address for the rest of Postfix's
    // session, so permit_mynetworks no longer matches portcullis, and
    // permit_sasl_authenticated needs SASL enabled at that smtpd before
    // XCLIENT LOGIN counts. examples/relay/postfix-master.cf points the
    // listener's SASL at portcullis's own Dovecot auth socket; the client
    // here (127.0.0.2) is outside mynetworks.
    let auth_port = free_port();
    let postfix = Postfix::start_with(
        "127.0.0.1",
        &format!(
            "mynetworks = 127.0.0.1/32\n\
             smtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = dovecot\n\
             smtpd_sasl_path = inet:127.0.0.1:{auth_port}\n\
             smtpd_recipient_restrictions = permit_sasl_authenticated, reject\n"
        ),
    );
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server_with(
        &url,
        "xclient = true",
        &["--dovecot-listen", &format!("127.0.0.1:{auth_port}")],
    );
    let mut c = logged_in(&server);
    let reply = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(reply.code, 250, "{:?}\n{}", reply.lines, postfix.log());
    let reply = c.cmd("RCPT TO:<alice@example.test>");
    assert_eq!(reply.code, 250, "{:?}\n{}", reply.lines, postfix.log());
    send_message(&mut c, "from outside").expect(250, Some("2.0.0"));
    c.cmd("QUIT");
    assert_eq!(postfix.wait_messages("alice", 1).len(), 1);
    let log = postfix.log();
    assert!(
        log.contains(&format!(
            "client=unknown[{CLIENT_IP}], sasl_method=XCLIENT, sasl_username=alice"
        )),
        "{log}"
    );
}

#[test]
fn relay_smtp_without_xclient_records_the_client_in_received() {
    // The next hop would allow XCLIENT, but the operator did not ask.
    let allowing = Postfix::start("127.0.0.1");
    // This one does not offer XCLIENT to us at all.
    let refusing = Postfix::start("");
    for (postfix, extra) in [
        (&allowing, "xclient = false"),
        (&refusing, "xclient = true"),
    ] {
        let url = format!("smtp://127.0.0.1:{}", postfix.port);
        let (server, _dir) = relay_server(&url, extra);
        let mut c = logged_in(&server);
        mail(&mut c, "bob@example.test", extra).expect(250, Some("2.0.0"));
        c.cmd("QUIT");
        let got = postfix.wait_messages("bob", 1);
        assert_eq!(got.len(), 1, "{extra}: delivered exactly once");
        let log = postfix.log();
        assert!(
            !log.contains("XCLIENT"),
            "{extra}: XCLIENT was used:\n{log}"
        );
        assert!(
            log.contains("client=localhost[127.0.0.1]"),
            "{extra}:\n{log}"
        );
        // portcullis's own Received header names the client and the login.
        let ours = got[0]
            .split("\nReceived: ")
            .chain(got[0].strip_prefix("Received: "))
            .find(|h| h.contains("(portcullis)"))
            .unwrap_or_else(|| panic!("no portcullis Received header in {}", got[0]))
            .to_owned();
        assert!(ours.contains(&format!("[{CLIENT_IP}]")), "{ours}");
        assert!(ours.contains("authenticated as alice"), "{ours}");
    }
}

#[test]
fn relay_smtp_next_hop_refusals_reach_the_client() {
    let postfix = Postfix::start("127.0.0.1");
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(&url, "xclient = true");
    let mut c = logged_in(&server);
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    // RCPT: Postfix's 450 and 550 as the realm's temporary and permanent
    // refusals.
    let deferred = c.cmd("RCPT TO:<defer@example.test>");
    assert_eq!(deferred.code / 100, 4, "{:?}", deferred.lines);
    assert!(
        deferred.text().contains("try later"),
        "{:?}",
        deferred.lines
    );
    let unknown = c.cmd("RCPT TO:<nobody@example.test>");
    assert_eq!(unknown.code / 100, 5, "{:?}", unknown.lines);
    assert_250(c.cmd("RSET"));
    // After the final dot: 451 and 554 from Postfix.
    let later = mail(&mut c, "late4@example.test", "late 4");
    assert_eq!(later.code / 100, 4, "{:?}", later.lines);
    let never = mail(&mut c, "late5@example.test", "late 5");
    assert_eq!(never.code / 100, 5, "{:?}", never.lines);
    // The connection to the next hop goes on serving the session.
    mail(&mut c, "alice@example.test", "after refusals").expect(250, Some("2.0.0"));
    c.cmd("QUIT");
    assert_eq!(postfix.wait_messages("alice", 1).len(), 1);
    for user in ["defer", "late4", "late5"] {
        assert!(postfix.messages(user).is_empty(), "{user} got mail");
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as
/// `NAME.pem` and `NAME.key` under `dir`; the certificate's path.
fn self_signed(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pem = dir.join(format!("{name}.pem"));
    std::fs::write(&pem, cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), signing_key.serialize_pem()).unwrap();
    pem
}

/// A Postfix offering STARTTLS with a certificate made for the test, and
/// that certificate's path (the CA portcullis is told to trust).
fn postfix_with_tls(certs: &std::path::Path) -> (Postfix, std::path::PathBuf) {
    // smtpd reads its certificate as Postfix's own user.
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(certs)
        .status()
        .unwrap();
    let cert = self_signed(certs, "mta");
    std::process::Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(certs)
        .status()
        .unwrap();
    let key = certs.join("mta.key");
    let postfix = Postfix::start_with(
        "",
        &format!(
            "smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {}\n\
             smtpd_tls_key_file = {}\nsmtpd_tls_received_header = yes\n",
            cert.display(),
            key.display()
        ),
    );
    (postfix, cert)
}

#[test]
fn relay_starttls_to_the_next_hop_verified_against_the_operators_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (postfix, ca) = postfix_with_tls(certs.path());
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(
        &url,
        &format!("tls = \"starttls\"\ntls-ca = \"{}\"", ca.display()),
    );
    let mut c = logged_in(&server);
    let reply = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(reply.code, 250, "{:?}\n{}", reply.lines, postfix.log());
    assert_250(c.cmd("RCPT TO:<alice@example.test>"));
    send_message(&mut c, "over tls").expect(250, Some("2.0.0"));
    c.cmd("QUIT");
    let got = postfix.wait_messages("alice", 1);
    assert_eq!(got.len(), 1, "{got:?}");
    // Postfix's own Received header says the hop came over TLS.
    let postfix_received = got[0]
        .split("\nReceived: ")
        .find(|h| h.contains("by mta.test"))
        .unwrap_or_else(|| panic!("no Received by mta.test in {}", got[0]));
    assert!(
        postfix_received.contains("(using TLS"),
        "{postfix_received}"
    );
}

#[test]
fn relay_starttls_with_an_untrusted_certificate_delivers_nothing_and_is_temporary() {
    let certs = tempfile::tempdir().unwrap();
    let (postfix, _mta_ca) = postfix_with_tls(certs.path());
    // portcullis trusts another CA than the one that made Postfix's.
    let other = self_signed(certs.path(), "other");
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(
        &url,
        &format!("tls = \"starttls\"\ntls-ca = \"{}\"", other.display()),
    );
    let mut c = logged_in(&server);
    let reply = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(reply.code / 100, 4, "{:?}", reply.lines);
    let logs = server.wait_for_log("next hop failed");
    assert!(
        logs.to_lowercase().contains("certificate"),
        "the log should say why TLS failed:\n{logs}"
    );
    c.cmd("QUIT");
    assert!(postfix.messages("alice").is_empty());
}

#[test]
fn relay_a_large_message_arrives_whole() {
    let postfix = Postfix::start("127.0.0.1");
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(&url, "");
    let mut c = logged_in(&server);
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    assert_250(c.cmd("RCPT TO:<alice@example.test>"));
    c.cmd("DATA").expect(354, None);
    c.send("Subject: large");
    c.send("");
    // 4 MiB of lines, every 1000th starting with a (stuffed) dot.
    let line = "x".repeat(78);
    let mut body = String::new();
    for i in 0..50_000 {
        if i % 1000 == 0 {
            body.push_str("..dot ");
        }
        body.push_str(&line);
        body.push_str("\r\n");
    }
    c.send_raw(body.as_bytes());
    let reply = c.cmd(".");
    assert_eq!(reply.code, 250, "{:?}\n{}", reply.lines, server.logs());
    c.cmd("QUIT");
    let got = postfix.wait_messages("alice", 1);
    assert_eq!(got.len(), 1);
    let lines = got[0].lines().filter(|l| l.trim_end() == line).count();
    let dotted = got[0].lines().filter(|l| l.starts_with(".dot ")).count();
    assert_eq!((lines + dotted, dotted), (50_000, 50), "message not whole");
}

#[test]
fn relay_next_hop_down_is_a_temporary_failure_never_250() {
    // Nobody listens on the next hop's port.
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let (server, _dir) = relay_server(&url, "");
    let mut c = logged_in(&server);
    let reply = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(reply.code / 100, 4, "{:?}", reply.lines);
    c.cmd("QUIT");
    assert!(
        server.logs().contains("next hop failed"),
        "{}",
        server.logs()
    );

    // The next hop goes away in the middle of a transaction.
    let postfix = Postfix::start("127.0.0.1");
    let url = format!("smtp://127.0.0.1:{}", postfix.port);
    let (server, _dir) = relay_server(&url, "");
    let mut c = logged_in(&server);
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    assert_250(c.cmd("RCPT TO:<alice@example.test>"));
    postfix.kill();
    let reply = send_message(&mut c, "into the void");
    assert_eq!(reply.code / 100, 4, "{:?}", reply.lines);
}

#[test]
fn relay_lmtp_one_recipient_per_transaction_and_per_recipient_replies() {
    let dovecot = Dovecot::start();
    let url = format!("lmtp://127.0.0.1:{}", dovecot.port);
    let (server, _dir) = relay_server(&url, "");
    let mut c = logged_in(&server);
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    // Unknown to Dovecot at RCPT: permanent.
    let unknown = c.cmd("RCPT TO:<carol@example.test>");
    assert_eq!(unknown.code / 100, 5, "{:?}", unknown.lines);
    assert_250(c.cmd("RCPT TO:<alice@example.test>"));
    // A second recipient waits for a transaction of its own, so that the
    // one reply after the dot is alice's alone.
    let second = c.cmd("RCPT TO:<bob@example.test>");
    assert_eq!(second.code / 100, 4, "{:?}", second.lines);
    assert!(
        second.text().contains("One recipient per message"),
        "{:?}",
        second.lines
    );
    send_message(&mut c, "to alice").expect(250, Some("2.0.0"));
    // Bob is over quota: Dovecot accepts him at RCPT, refuses after the dot.
    assert_250(c.cmd("MAIL FROM:<alice@example.test>"));
    assert_250(c.cmd("RCPT TO:<bob@example.test>"));
    let full = send_message(&mut c, "to bob");
    assert_eq!(full.code / 100, 5, "{:?}\n{}", full.lines, dovecot.log());
    // Alice again, on the same connection.
    mail(&mut c, "alice@example.test", "to alice again").expect(250, Some("2.0.0"));
    c.cmd("QUIT");
    let alice = dovecot.messages("alice");
    assert_eq!(alice.len(), 2, "alice: {alice:?}");
    assert!(
        alice
            .iter()
            .any(|m| m.contains("Subject: to alice\r\n") || m.contains("Subject: to alice\n"))
    );
    assert!(dovecot.messages("bob").is_empty());
}

#[test]
fn relay_refuses_anonymous_senders() {
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let (server, _dir) = relay_server(&url, "");
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    let reply = c.cmd("MAIL FROM:<alice@example.test>");
    assert_eq!(reply.code, 530, "{:?}", reply.lines);
}
