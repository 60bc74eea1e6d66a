//! Running as a service: the configuration file, `check-config`, reloads
//! (SIGHUP and `portcullis reload`) and dropping privileges after binding.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{LOGIN_DENIED, LOGIN_OK, Server, b64, guest_wasm};

/// Runs the binary to completion: exit code, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--cache-dir", cache])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn echo_login(server: &Server, user: &str, password: &str) -> String {
    server.connect().ask(&format!("{user} {password}"))
}

#[test]
fn the_file_configures_listeners_checkers_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "portcullis.toml",
        r#"
server-name = "cfg.example"

[[listener]]
protocol = "smtp"
address = "127.0.0.1:0"
tls = "implicit"

[auth]
failure-delay = "0s"
exclude-mechanisms = ["LOGIN"]

[[checker]]
type = "memory"
users = { carol = "c4rol:with:colons" }
kinds = ["username-password"]
"#,
    );
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    assert!(
        server.smtps.is_some(),
        "the file's implicit-TLS listener is up"
    );

    assert_eq!(echo_login(&server, "carol", "c4rol:with:colons"), LOGIN_OK);
    assert_eq!(echo_login(&server, "guest", "password"), LOGIN_DENIED);

    let mut smtp = server.smtp_client();
    let ehlo = smtp.cmd("EHLO me");
    ehlo.expect(250, None);
    let text = ehlo.text();
    assert!(text.starts_with("cfg.example"), "{text}");
    // Only username-password is served, and LOGIN is excluded: PLAIN is
    // the one password mechanism; CRAM-MD5 and SCRAM have no checker.
    let auth_line = text.lines().find(|l| l.starts_with("AUTH ")).unwrap();
    assert!(auth_line.contains("PLAIN"), "{auth_line}");
    for absent in ["LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        assert!(!auth_line.contains(absent), "{absent} in {auth_line}");
    }
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0carol\0wrong")))
        .expect(535, Some("5.7.8"));
}

#[test]
fn flags_on_the_command_line_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "p.toml",
        "server-name = \"file.example\"\n[[checker]]\ntype = \"memory\"\nusers = { a = \"b\" }\n",
    );
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--server-name",
        "flag.example",
        "--auth",
        "memory:x:y",
    ]);
    let ehlo = server.smtp_client().cmd("EHLO me");
    assert!(ehlo.text().starts_with("flag.example"), "{ehlo:?}");
    // --auth replaces the file's checkers.
    assert_eq!(echo_login(&server, "x", "y"), LOGIN_OK);
    assert_eq!(echo_login(&server, "a", "b"), LOGIN_DENIED);
}

#[test]
fn check_config_accepts_the_example_and_names_line_and_fix() {
    let example = examples().join("portcullis.toml");
    let (code, out, err) = run(&["check-config", example.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("portcullis.toml: ok"), "{out}");
    assert!(
        out.contains(
            "listener protocol = \"smtp\" address = \"127.0.0.1:2465\" tls = \"implicit\""
        ),
        "{out}"
    );
    assert!(
        out.contains("checker checker-file for username-password"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[auth]\nrequired = true\nmax-failurs = 3\n",
            1,
            "bad.toml:3: unknown field `max-failurs`, expected one of",
        ),
        (
            "[sessions]\nidle-timeout = \"soon\"\n",
            1,
            "bad.toml:2: \"soon\" is not a duration; write e.g. 250ms, 2s or 5m",
        ),
        (
            "\n[[checker]]\ntype = \"file\"\npath = \"missing.txt\"\n",
            1,
            "bad.toml:2: checker: --auth file:",
        ),
        (
            "[[checker]]\ntype = \"memory\"\nusers = { a = \"b\" }\nkinds = [\"bearer-token\"]\n",
            1,
            "bad.toml:1: checker checker-memory does not serve bearer-token credentials",
        ),
        (
            "[[checker]]\ntype = \"memory\"\nusers = { a = \"b\" }\n\
             [[checker]]\ntype = \"memory\"\nusers = { c = \"d\" }\n",
            1,
            "bad.toml:4: two checkers for username-password credentials",
        ),
    ];
    for (text, want_code, want) in cases {
        let bad = write(dir.path(), "bad.toml", text);
        let (code, out, err) = run(&["check-config", bad.to_str().unwrap()]);
        assert_eq!(code, want_code, "{text:?}\n{out}\n{err}");
        assert!(err.contains(want), "{text:?}: want {want:?} in\n{err}");
    }

    // The server refuses the same file at start, before listening.
    let bad = write(dir.path(), "bad.toml", "[auth]\nrequird = true\n");
    let failure = Server::try_start(&["--config", bad.to_str().unwrap()]).unwrap_err();
    assert_eq!(failure.code, Some(2));
    assert!(
        failure
            .stderr
            .contains("bad.toml:2: unknown field `requird`"),
        "{}",
        failure.stderr
    );
}

#[test]
fn a_pinned_plugin_must_match_its_digest() {
    let wasm = guest_wasm("trap_checker");
    let dir = tempfile::tempdir().unwrap();
    let table = |pin: &str| {
        format!(
            "[[checker]]\ntype = \"wasm\"\nplugin = \"{}\"\nsha256 = \"{pin}\"\n",
            wasm.display()
        )
    };
    let wrong = write(dir.path(), "wrong.toml", &table(&"0".repeat(64)));
    let failure = Server::try_start(&["--config", wrong.to_str().unwrap()]).unwrap_err();
    let actual = sha256_hex(&wasm);
    assert!(
        failure.stderr.contains(&format!(
            "wrong.toml:1: plugin trap_checker: sha256 is {actual}, but the configuration pins {}",
            "0".repeat(64)
        )),
        "{}",
        failure.stderr
    );

    let right = write(dir.path(), "right.toml", &table(&actual.to_uppercase()));
    let server = Server::start(&["--config", right.to_str().unwrap()]);
    assert_eq!(echo_login(&server, "ok", "x"), LOGIN_OK);
}

#[test]
fn sighup_reloads_checkers_and_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let users = |table: &str| format!("[[checker]]\ntype = \"memory\"\nusers = {table}\n");
    let config = write(dir.path(), "p.toml", &users("{ alice = \"one\" }"));
    let server = Server::start(&["--config", config.to_str().unwrap()]);

    let mut before = server.connect();
    assert_eq!(before.ask("alice one"), LOGIN_OK);

    write(dir.path(), "p.toml", &users("{ bob = \"two\" }"));
    server.signal("HUP");
    server.wait_for_log("reloaded");
    assert_eq!(echo_login(&server, "bob", "two"), LOGIN_OK);
    assert_eq!(echo_login(&server, "alice", "one"), LOGIN_DENIED);
    // The session logged in before the reload goes on.
    assert_eq!(before.ask("still here"), "still here");

    // A broken file is reported and the running plugins stay.
    write(dir.path(), "p.toml", "[[checker]]\ntype = \"memroy\"\n");
    server.signal("HUP");
    let logs = server.wait_for_log("reload failed");
    assert!(
        logs.contains("p.toml:2: unknown checker type \"memroy\""),
        "{logs}"
    );
    assert_eq!(echo_login(&server, "bob", "two"), LOGIN_OK);
    assert_eq!(before.ask("and here"), "and here");
}

#[test]
fn reload_command_answers_through_the_control_socket() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("control.sock");
    let config = write(
        dir.path(),
        "p.toml",
        "[[checker]]\ntype = \"memory\"\nusers = { a = \"1\" }\n",
    );
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--control-socket",
        socket.to_str().unwrap(),
    ]);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the control socket is private");

    write(
        dir.path(),
        "p.toml",
        "[[checker]]\ntype = \"memory\"\nusers = { b = \"2\" }\n",
    );
    let (code, out, err) = run(&["reload", "--control-socket", socket.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("reloaded in"), "{out}");
    assert_eq!(echo_login(&server, "b", "2"), LOGIN_OK);

    write(dir.path(), "p.toml", "[[checker]]\ntype = \"file\"\n");
    let (code, _, err) = run(&["reload", "--control-socket", socket.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("p.toml:1: a file checker needs path = \"PATH\""),
        "{err}"
    );
    assert_eq!(echo_login(&server, "b", "2"), LOGIN_OK);
}

#[test]
fn drops_to_an_unprivileged_user_after_binding() {
    if !nix_is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let server = Server::start(&["--user", "nobody"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let uids: Vec<&str> = uid_line.split_whitespace().skip(1).collect();
    assert_eq!(uids, ["65534"; 4], "real, effective, saved and fs uid");
    let gid_line = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(!gid_line.split_whitespace().any(|g| g == "0"), "{gid_line}");
    // It still serves: plugins were loaded before the switch.
    assert_eq!(echo_login(&server, "guest", "password"), LOGIN_OK);

    let failure = Server::try_start(&["--user", "no-such-user-here"]).unwrap_err();
    assert!(
        failure
            .stderr
            .contains("--user no-such-user-here: no such user"),
        "{}",
        failure.stderr
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn the_sample_systemd_unit_runs_what_the_readme_says() {
    let unit = std::fs::read_to_string(examples().join("portcullis.service")).unwrap();
    for line in [
        "ExecStartPre=/usr/local/bin/portcullis check-config /etc/portcullis/portcullis.toml",
        "ExecStart=/usr/local/bin/portcullis --config /etc/portcullis/portcullis.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
}

/// An operator's first run: the annotated example file as shipped (only its
/// ports made free and its metrics listener switched on), a login from a
/// client, and the login seen in the logs and on the metrics page.
#[test]
fn the_example_file_alone_runs_a_server_whose_logins_show_in_logs_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(examples().join("portcullis.toml")).unwrap();
    let mut edited = example.clone();
    for (from, to) in [
        ("127.0.0.1:2525", "127.0.0.1:0"),
        ("127.0.0.1:2465", "127.0.0.1:0"),
        ("127.0.0.1:8000", "127.0.0.1:0"),
        ("# listen = \"127.0.0.1:9100\"", "listen = \"127.0.0.1:0\""),
    ] {
        assert!(edited.contains(from), "the example no longer has {from}");
        edited = edited.replace(from, to);
    }
    let config = write(dir.path(), "portcullis.toml", &edited);
    std::fs::copy(
        examples().join("passwords.txt"),
        dir.path().join("passwords.txt"),
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["check-config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    let server = Server::start(&["--config", config.to_str().unwrap()]);
    assert!(server.smtps.is_some(), "{}", server.banner);
    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO operator.example").expect(250, None);
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0dave\0plain-text-pass")))
        .expect(235, Some("2.7.0"));
    smtp.cmd("QUIT").expect(221, Some("2.0.0"));
    let mut smtp = server.smtp_client();
    smtp.cmd("EHLO operator.example").expect(250, None);
    smtp.cmd(&format!("AUTH PLAIN {}", b64(b"\0dave\0not-it")))
        .expect(535, Some("5.7.8"));
    smtp.cmd("QUIT").expect(221, Some("2.0.0"));

    let logs = server.wait_for_log("session ended");
    let line = |needle: &str| {
        logs.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} line in the logs:\n{logs}"))
            .to_owned()
    };
    let success = line("authenticated");
    for field in [
        "mechanism=PLAIN",
        "user=\"dave\"",
        "plugin=\"checker-file\"",
        "result=\"success\"",
        "peer=127.0.0.1:",
        "elapsed_us=",
    ] {
        assert!(success.contains(field), "{field} missing: {success}");
    }
    let denied = line("authentication denied");
    assert!(denied.contains("user=\"dave\""), "{denied}");
    assert!(!logs.contains("not-it") && !logs.contains("plain-text-pass"));

    let metrics = server.metrics();
    for sample in [
        "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"success\"} 1",
        "portcullis_auth_attempts_total{protocol=\"smtp\",mechanism=\"PLAIN\",outcome=\"denied\"} 1",
        "portcullis_auth_duration_seconds_count{protocol=\"smtp\",mechanism=\"PLAIN\"} 2",
    ] {
        assert!(metrics.contains(sample), "no {sample} in:\n{metrics}");
    }
    assert!(metrics.contains("portcullis_sessions_total{protocol=\"smtp\"}"));
}

/// An exchange that began before a reload finishes on the plugins it began
/// with; a reload naming a plugin that does not compile keeps the old set.
#[test]
fn a_reload_lets_exchanges_in_flight_finish_and_survives_a_broken_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let users = |table: &str| format!("[[checker]]\ntype = \"memory\"\nusers = {table}\n");
    let config = write(dir.path(), "p.toml", &users("{ alice = \"one\" }"));
    let server = Server::start(&["--config", config.to_str().unwrap()]);

    // Half-way through LOGIN when the reload lands.
    let mut in_flight = server.connect();
    assert_eq!(
        in_flight.ask("AUTH LOGIN"),
        format!("+ {}", b64(b"Username:"))
    );
    assert_eq!(
        in_flight.ask(&b64(b"alice")),
        format!("+ {}", b64(b"Password:"))
    );

    write(dir.path(), "p.toml", &users("{ bob = \"two\" }"));
    server.signal("HUP");
    server.wait_for_log("reloaded");
    assert_eq!(echo_login(&server, "alice", "one"), LOGIN_DENIED);
    assert_eq!(in_flight.ask(&b64(b"one")), LOGIN_OK);
    assert_eq!(
        in_flight.ask("old checker, new line"),
        "old checker, new line"
    );

    // A checker plugin that is not a component: reported, old set kept.
    let garbage = write(dir.path(), "broken.wasm", "\0asm but not really");
    write(
        dir.path(),
        "p.toml",
        &format!(
            "[[checker]]\ntype = \"wasm\"\nplugin = \"{}\"\n",
            garbage.display()
        ),
    );
    server.signal("HUP");
    let logs = server.wait_for_log("reload failed");
    assert!(
        logs.contains("plugin broken: not a WebAssembly component"),
        "{logs}"
    );
    assert_eq!(echo_login(&server, "bob", "two"), LOGIN_OK);
}

/// Issue 17: errors caused by the file name FILE:LINE and a fix written
/// in the file's terms (never a flag the operator did not give).
#[test]
fn file_errors_name_file_line_and_a_fix_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing_plugin = dir.path().join("nowhere/m.wasm");
    let missing_plugin = missing_plugin.to_str().unwrap();
    type Case<'a> = (&'a str, Vec<&'a str>, &'a [&'a str]);
    let cases: Vec<Case> = vec![
        (
            "[tls]\ncert = \"missing-cert.pem\"\nkey = \"missing-key.pem\"\n",
            vec![
                "bad.toml:2: [tls] cert = ",
                "missing-cert.pem: cannot read",
                "remove cert and key from [tls]",
            ],
            &["--tls-cert"],
        ),
        (
            "[[checker]]\ntype = \"memory\"\nusers = { a = \"b\" }\n\
             [[checker]]\ntype = \"memory\"\nusers = { c = \"d\" }\n",
            vec![
                "bad.toml:4: two checkers for username-password credentials",
                "remove one of the two [[checker]] tables",
            ],
            &["--auth"],
        ),
        (
            "\n[[mechanism]]\nplugin = \"nowhere/m.wasm\"\n",
            vec![
                "bad.toml:2: plugin file ",
                missing_plugin,
                "relative to the configuration file's folder",
            ],
            &[],
        ),
        (
            "[[realm]]\nserves = \"message-delivery\"\nbuiltin = \"maildir\"\nmaildir = \"spool\"\n\
             limits = { call-time = \"1ms\" }\n",
            vec!["bad.toml:5: call-time 1ms is out of range"],
            &[],
        ),
        (
            "[sessions]\nbare-newline = \"strip\"\n",
            vec!["bad.toml:2: bare-newline = \"strip\": write \"normalize\" or \"reject\""],
            &[],
        ),
        (
            "[plugins]\ndeliver-time = \"1h\"\n",
            vec!["bad.toml:2: deliver-time 1h is out of range"],
            &[],
        ),
    ];
    for (text, wanted, unwanted) in cases {
        let bad = write(dir.path(), "bad.toml", text);
        let (code, out, err) = run(&["check-config", bad.to_str().unwrap()]);
        assert_eq!(code, 1, "{text:?}\n{out}\n{err}");
        for want in wanted {
            assert!(err.contains(want), "{text:?}: want {want:?} in\n{err}");
        }
        for not in unwanted {
            assert!(!err.contains(not), "{text:?}: {not:?} in\n{err}");
        }
    }
}

/// Issue 17: a built-in realm's `limits` take effect (and check-config
/// shows them in the file's spelling), and check-config writes nothing: no
/// certificate in the temporary folder, no Maildir folder.
#[test]
fn built_in_realm_limits_apply_and_check_config_has_no_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "realm.toml",
        "[sessions]\nbare-newline = \"reject\"\n\
         [[realm]]\nserves = \"message-delivery\"\nbuiltin = \"maildir\"\nmaildir = \"spool\"\n\
         limits = { call-time = \"10ms\", deliver-time = \"45s\" }\n",
    );
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache");
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--cache-dir", cache, "check-config"])
        .arg(&config)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "realm realm-maildir for message-delivery limits = { memory = \"96M\", \
             call-time = \"10ms\", deliver-time = \"45s\" } defer-avatar = true"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("bare-newline = \"reject\""), "{stdout}");
    assert!(stdout.contains("tls = \"starttls\""), "{stdout}");
    assert!(
        !stdout.contains("Starttls") && !stdout.contains("Smtp"),
        "{stdout}"
    );
    let written: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(written.is_empty(), "check-config wrote {written:?}");
    assert!(
        !dir.path().join("spool").exists(),
        "check-config made the Maildir"
    );
}
