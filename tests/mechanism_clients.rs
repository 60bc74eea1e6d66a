//! Every SASL mechanism against real clients nobody here wrote: gsasl
//! (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, ANONYMOUS; SCRAM also after
//! STARTTLS), msmtp (SCRAM-SHA-256, XOAUTH2), curl (XOAUTH2, OAUTHBEARER)
//! and Python's smtplib (CRAM-MD5), each with the right secret and a wrong
//! one, against the memory, file and token checkers.

use crate::common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Server, describe, tool};

const TOKEN: &str = "ya29.a0-test-token-for-user";

/// A server with `user`/`pencil` in memory, a token file and anonymous
/// access.
fn server(dir: &Path, extra: &[&str]) -> Server {
    let tokens = dir.join("tokens.txt");
    std::fs::write(&tokens, format!("user:{TOKEN}\n")).unwrap();
    let token_spec = format!("token:tokens={}", tokens.display());
    let mut args = vec![
        "--auth-failure-delay",
        "0s",
        "--max-auth-failures",
        "20",
        "--auth",
        &token_spec,
        "--auth",
        "anonymous",
    ];
    args.extend(extra);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&refs)
}

fn gsasl(server: &Server, mech: &str, password: &str, tls: bool) -> Output {
    let connect = format!("127.0.0.1:{}", server.smtp.port());
    let mut cmd = tool("gsasl");
    cmd.args(["--smtp", "--connect", &connect, "--mechanism", mech])
        .args(["--authentication-id", "user", "--password", password])
        .args(["--anonymous-token", "trace@example.com", "--quiet"])
        .stdin(Stdio::null());
    if tls {
        cmd.arg("--x509-ca-file")
            .arg(server.cert_path())
            .arg("--no-cb");
    } else {
        cmd.arg("--no-starttls");
    }
    cmd.output().unwrap()
}

#[test]
fn gsasl_every_mechanism_against_the_memory_checker() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--auth", "memory:user:pencil"]);
    for mech in [
        "PLAIN",
        "LOGIN",
        "CRAM-MD5",
        "SCRAM-SHA-256",
        "SCRAM-SHA-1",
        "ANONYMOUS",
    ] {
        let output = gsasl(&server, mech, "pencil", false);
        assert!(output.status.success(), "{mech}: {}", describe(&output));
        if mech != "ANONYMOUS" {
            let output = gsasl(&server, mech, "wrong", false);
            assert!(
                !output.status.success(),
                "{mech} with a wrong password: {}",
                describe(&output)
            );
        }
    }
    // SCRAM after STARTTLS too.
    let output = gsasl(&server, "SCRAM-SHA-256", "pencil", true);
    assert!(
        output.status.success(),
        "SCRAM over TLS: {}",
        describe(&output)
    );
    let logs = server.logs();
    for mech in ["CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-1", "ANONYMOUS"] {
        assert!(
            logs.contains(&format!("mechanism={mech} user=\"user\" avatar_id="))
                || mech == "ANONYMOUS",
            "no success logged for {mech}:\n{logs}"
        );
    }
    assert!(!logs.contains("pencil"), "a password reached the log");
}

/// SCRAM against stored keys from `portcullis password`, CRAM-MD5 against
/// a plain entry, in a password file.
#[test]
fn gsasl_scram_and_cram_against_the_file_checker() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |scheme: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["password", "--scheme", scheme])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"pencil\n").unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let file = dir.path().join("passwords.txt");
    std::fs::write(
        &file,
        format!("user:{}\nplainuser:pencil\n", entry("scram-sha-256")),
    )
    .unwrap();
    let spec = format!("file:{}", file.display());
    let server = server(dir.path(), &["--auth", &spec]);
    let output = gsasl(&server, "SCRAM-SHA-256", "pencil", false);
    assert!(output.status.success(), "{}", describe(&output));
    let output = gsasl(&server, "SCRAM-SHA-256", "wrong", false);
    assert!(!output.status.success(), "{}", describe(&output));
    // CRAM-MD5 needs the shared secret: a plain entry works.
    let connect = format!("127.0.0.1:{}", server.smtp.port());
    let output = tool("gsasl")
        .args([
            "--smtp",
            "--connect",
            &connect,
            "--no-starttls",
            "--mechanism",
            "CRAM-MD5",
        ])
        .args([
            "--authentication-id",
            "plainuser",
            "--password",
            "pencil",
            "--quiet",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
}

fn msmtp(server: &Server, auth: &str, password: &str, dir: &Path) -> Output {
    let mut child = tool("msmtp")
        .args([
            "--host=127.0.0.1",
            &format!("--port={}", server.smtp.port()),
        ])
        .args(["--tls=on", "--tls-starttls=on"])
        .arg(format!("--tls-trust-file={}", server.cert_path().display()))
        .args([&format!("--auth={auth}"), "--user=user"])
        .arg(format!("--passwordeval=echo {password}"))
        .args(["--from=a@example.com", "console@localhost"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("Subject: msmtp {auth}\r\n\r\nhello\r\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn msmtp_scram_sha_256_and_xoauth2_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--auth", "memory:user:pencil"]);
    let output = msmtp(&server, "scram-sha-256", "pencil", dir.path());
    assert!(output.status.success(), "{}", describe(&output));
    server.wait_for_stdout("Subject: msmtp scram-sha-256");
    let output = msmtp(&server, "scram-sha-256", "wrong", dir.path());
    assert_eq!(output.status.code(), Some(77), "{}", describe(&output));
    let output = msmtp(&server, "xoauth2", TOKEN, dir.path());
    assert!(output.status.success(), "{}", describe(&output));
    server.wait_for_stdout("Subject: msmtp xoauth2");
    let output = msmtp(&server, "xoauth2", "not-the-token", dir.path());
    assert_eq!(output.status.code(), Some(77), "{}", describe(&output));
    assert!(!server.logs().contains(TOKEN), "a token reached the log");
}

fn curl_bearer(server: &Server, mech: &str, token: &str, body: &Path) -> Output {
    let url = format!("smtp://127.0.0.1:{}", server.smtp.port());
    tool("curl")
        .args(["-sS", "--url", &url, "--mail-from", "a@example.com"])
        .args(["--mail-rcpt", "console@localhost", "--upload-file"])
        .arg(body)
        .args(["--user", "user:", "--oauth2-bearer", token])
        .args(["--login-options", &format!("AUTH={mech}")])
        .output()
        .unwrap()
}

#[test]
fn curl_xoauth2_and_oauthbearer() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--auth", "memory:user:pencil"]);
    for mech in ["XOAUTH2", "OAUTHBEARER"] {
        let body = dir.path().join(format!("{mech}.txt"));
        std::fs::write(&body, format!("Subject: curl {mech}\r\n\r\nx\r\n")).unwrap();
        let output = curl_bearer(&server, mech, TOKEN, &body);
        assert!(output.status.success(), "{mech}: {}", describe(&output));
        server.wait_for_stdout(&format!("Subject: curl {mech}"));
        let output = curl_bearer(&server, mech, "wrong-token", &body);
        assert_eq!(
            output.status.code(),
            Some(67),
            "{mech}: {}",
            describe(&output)
        );
    }
}

#[test]
fn python_smtplib_cram_md5() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &["--auth", "memory:user:pencil"]);
    let script = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo()
try:
    s.login("user", sys.argv[2])
    print("ok")
except smtplib.SMTPAuthenticationError as e:
    print("error", e.smtp_code)
"#;
    let port = server.smtp.port().to_string();
    let run = |password: &str| {
        let out = tool("python3")
            .args(["-c", script, &port, password])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", describe(&out));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    // smtplib prefers CRAM-MD5 when offered.
    assert_eq!(run("pencil"), "ok");
    assert_eq!(run("wrong"), "error 535");
    let logs = server.wait_for_log("mechanism=CRAM-MD5 user=\"user\" avatar_id=");
    assert!(!logs.contains("pencil"));
}
