//! The SMTP service against mail clients nobody here wrote: Python's
//! smtplib, the lettre crate, swaks and curl (installed by tests/setup.sh),
//! over plain TCP on loopback and after STARTTLS, with the right password
//! and a wrong one.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::{Server, describe, tool};

const ARGS: &[&str] = &["--auth-failure-delay", "0s"];

/// Sends one message with smtplib; prints `sent` or `error CODE`.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
port, mech, user, password, cafile, tag = sys.argv[1:7]
s = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
if cafile:
    s.starttls(context=ssl.create_default_context(cafile=cafile))
s.ehlo("smtplib.example")
s.user, s.password = user, password
try:
    s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")), initial_response_ok=(mech != "LOGIN"))
except smtplib.SMTPAuthenticationError as e:
    print("error", e.smtp_code)
    sys.exit(0)
s.sendmail("a@example.com", ["console@localhost"], "Subject: %s\r\n\r\nfrom smtplib\r\n" % tag)
s.quit()
print("sent")
"#;

fn smtplib(server: &Server, mech: &str, password: &str, tls: bool, tag: &str) -> String {
    let cert = server.cert_path();
    let cafile = if tls { cert.to_str().unwrap() } else { "" };
    let port = server.smtp.port().to_string();
    let output = tool("python3")
        .args(["-c", SMTPLIB, &port, mech, "guest", password, cafile, tag])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn python_smtplib_plain_login_and_starttls() {
    let server = Server::start(ARGS);
    assert_eq!(
        smtplib(&server, "PLAIN", "password", false, "py-plain"),
        "sent"
    );
    assert_eq!(
        smtplib(&server, "LOGIN", "password", false, "py-login"),
        "sent"
    );
    assert_eq!(
        smtplib(&server, "PLAIN", "password", true, "py-tls"),
        "sent"
    );
    assert_eq!(
        smtplib(&server, "LOGIN", "password", true, "py-tls-login"),
        "sent"
    );
    assert_eq!(smtplib(&server, "PLAIN", "wrong", false, "x"), "error 535");
    assert_eq!(smtplib(&server, "LOGIN", "wrong", true, "x"), "error 535");
    let out = server.wait_for_stdout("Subject: py-tls-login");
    for tag in ["py-plain", "py-login", "py-tls"] {
        assert!(out.contains(&format!("Subject: {tag}\r\n")), "{out}");
    }
    assert!(out.contains("with ESMTPSA"), "{out}");
}

#[tokio::test]
async fn lettre_plain_and_login_over_starttls() {
    use lettre::transport::smtp::authentication::{Credentials, Mechanism};
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let server = Server::start(&["--auth-failure-delay", "0s", "--auth-tls-only", "yes"]);
    let pem = std::fs::read(server.cert_path()).unwrap();
    let transport = |mechanism: Mechanism, password: &str| {
        let tls = TlsParameters::builder("localhost".into())
            .add_root_certificate(Certificate::from_pem(&pem).unwrap())
            .build_rustls()
            .unwrap();
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(server.smtp.port())
            .tls(Tls::Required(tls))
            .credentials(Credentials::new("guest".into(), password.into()))
            .authentication(vec![mechanism])
            .build()
    };
    for (mechanism, tag) in [
        (Mechanism::Plain, "lettre-plain"),
        (Mechanism::Login, "lettre-login"),
    ] {
        let message = Message::builder()
            .from("Alice <a@example.com>".parse().unwrap())
            .to("console@localhost".parse().unwrap())
            .subject(tag)
            .body(String::from("from lettre"))
            .unwrap();
        let response = transport(mechanism, "password")
            .send(message)
            .await
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(u16::from(response.code()), 250);
        server.wait_for_stdout(&format!("Subject: {tag}"));
    }
    let message = Message::builder()
        .from("a@example.com".parse().unwrap())
        .to("console@localhost".parse().unwrap())
        .body(String::from("x"))
        .unwrap();
    let error = transport(Mechanism::Plain, "wrong")
        .send(message)
        .await
        .unwrap_err();
    assert_eq!(error.status().map(u16::from), Some(535), "{error}");
}

fn swaks(server: &Server, mech: &str, password: &str, tls: bool, tag: &str) -> Output {
    let port = format!("127.0.0.1:{}", server.smtp.port());
    let mut cmd = tool("swaks");
    cmd.args(["--server", &port, "--auth", mech, "--auth-user", "guest"])
        .args(["--auth-password", password])
        .args(["--from", "a@example.com", "--to", "console@localhost"])
        .args([
            "--header",
            &format!("Subject: {tag}"),
            "--body",
            "from swaks",
        ]);
    if tls {
        cmd.arg("-tls");
    }
    cmd.output().unwrap()
}

#[test]
fn swaks_plain_and_login_with_and_without_starttls() {
    let server = Server::start(ARGS);
    for (mech, tls) in [
        ("PLAIN", false),
        ("LOGIN", false),
        ("PLAIN", true),
        ("LOGIN", true),
    ] {
        let tag = format!("swaks-{mech}-{tls}");
        let output = swaks(&server, mech, "password", tls, &tag);
        assert!(output.status.success(), "{tag}: {}", describe(&output));
        let transcript = String::from_utf8_lossy(&output.stdout);
        assert!(transcript.contains("235 2.7.0"), "{transcript}");
        let out = server.wait_for_stdout(&format!("Subject: {tag}"));
        let with = if tls { "with ESMTPSA" } else { "with ESMTPA" };
        assert!(out.contains(with), "{out}");
    }
    let output = swaks(&server, "PLAIN", "wrong", true, "denied");
    assert_eq!(output.status.code(), Some(28), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("535 5.7.8"));
}

fn curl(server: &Server, mech: &str, password: &str, tls: bool, body: &Path) -> Output {
    let url = format!("smtp://127.0.0.1:{}", server.smtp.port());
    let user = format!("guest:{password}");
    let options = format!("AUTH={mech}");
    let mut cmd = tool("curl");
    cmd.args(["-sS", "--url", &url, "--mail-from", "a@example.com"])
        .args(["--mail-rcpt", "console@localhost", "--upload-file"])
        .arg(body)
        .args(["--user", &user, "--login-options", &options]);
    if tls {
        cmd.args(["--ssl-reqd", "--cacert"]).arg(server.cert_path());
    }
    cmd.output().unwrap()
}

#[test]
fn curl_plain_and_login_with_and_without_starttls() {
    let server = Server::start(ARGS);
    let dir = tempfile::tempdir().unwrap();
    for (mech, tls) in [
        ("PLAIN", false),
        ("LOGIN", false),
        ("PLAIN", true),
        ("LOGIN", true),
    ] {
        let tag = format!("curl-{mech}-{tls}");
        let body = dir.path().join(format!("{tag}.txt"));
        std::fs::write(&body, format!("Subject: {tag}\r\n\r\nfrom curl\r\n")).unwrap();
        let output = curl(&server, mech, "password", tls, &body);
        assert!(output.status.success(), "{tag}: {}", describe(&output));
        let out = server.wait_for_stdout(&format!("Subject: {tag}"));
        assert!(out.contains("from curl"), "{out}");
    }
    let body = dir.path().join("denied.txt");
    std::fs::write(&body, "Subject: denied\r\n\r\nx\r\n").unwrap();
    let output = curl(&server, "PLAIN", "wrong", true, &body);
    assert_eq!(output.status.code(), Some(67), "{}", describe(&output));
}

/// The issue's "done": swaks over STARTTLS delivers into the maildir
/// realm's folder; a wrong password gets 535 and stores nothing.
#[test]
fn swaks_over_starttls_delivers_into_the_maildir() {
    let spool = tempfile::tempdir().unwrap();
    let spool_arg = spool.path().to_str().unwrap();
    let server = Server::start(&["--auth-failure-delay", "0s", "--maildir", spool_arg]);
    let port = format!("127.0.0.1:{}", server.smtp.port());
    let swaks = |password: &str| {
        tool("swaks")
            .args(["--server", &port, "--auth", "PLAIN", "--auth-user", "guest"])
            .args(["--auth-password", password, "-tls"])
            .args(["--from", "a@example.com", "--to", "guest@localhost"])
            .args([
                "--header",
                "Subject: into the maildir",
                "--body",
                "stored safely",
            ])
            .output()
            .unwrap()
    };
    let output = swaks("password");
    assert!(output.status.success(), "{}", describe(&output));
    let new = spool.path().join("guest/new");
    let files: Vec<_> = std::fs::read_dir(&new).unwrap().collect();
    assert_eq!(files.len(), 1);
    let message = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(message.starts_with("Received: from "), "{message}");
    assert!(message.contains("with ESMTPSA id"), "{message}");
    assert!(message.contains("(authenticated as guest)"), "{message}");
    assert!(message.contains("Subject: into the maildir"), "{message}");
    assert!(message.contains("stored safely"), "{message}");
    assert_eq!(
        std::fs::read_dir(spool.path().join("guest/tmp"))
            .unwrap()
            .count(),
        0
    );

    let output = swaks("wrong");
    assert_eq!(output.status.code(), Some(28), "{}", describe(&output));
    assert_eq!(std::fs::read_dir(&new).unwrap().count(), 1);
}
