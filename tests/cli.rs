//! The command line: strcred-style help, and errors that say what is wrong
//! and how to fix it.

use crate::common;

use std::process::Command;

use common::{Server, guest_wasm};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_auth_lists_the_types() {
    let (code, out, _) = run(&["--help-auth"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(
        "Usage: --auth AuthType[:ArgString]\nFor detailed help: --help-auth-type AuthType"
    ));
    for line in [
        "memory     A colon-separated list (name:password:...)",
        "file       Location of a FilePasswordDB-formatted file",
        "anonymous  No argstring required.",
        "wasm       Path of a checker component (.wasm)",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn help_auth_type_explains_one_type() {
    let (code, out, _) = run(&["--help-auth-type", "file"]);
    assert_eq!(code, 0);
    assert!(out.contains("Usage: --auth file:PATH[:option...]"));
    assert!(out.contains("$argon2id$"));
    let (code, _, err) = run(&["--help-auth-type", "ldap"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown auth type 'ldap'"), "{err}");
}

#[test]
fn bad_auth_flags_say_how_to_fix_them() {
    for (arg, says) in [
        ("ldap:x", "unknown auth type 'ldap'"),
        ("memory:alice", "memory needs name:password pairs"),
        ("file", "file needs a path"),
        ("file:p.txt:colour=blue", "unknown option 'colour=blue'"),
        ("wasm:x.wasm:{broken", "not valid JSON"),
    ] {
        let (code, _, err) = run(&["--auth", arg]);
        assert_eq!(code, 2, "{arg}");
        assert!(
            err.contains(says),
            "--auth {arg}: expected {says:?} in\n{err}"
        );
    }
}

#[test]
fn a_missing_password_file_is_refused_at_start() {
    let err = Server::try_start(&["--auth", "file:/nonexistent/passwords.txt"]).unwrap_err();
    assert_eq!(err.code, Some(1));
    assert!(err.stderr.contains("no such file"), "{}", err.stderr);
}

#[test]
fn two_checkers_for_one_kind_are_a_configuration_error() {
    let err = Server::try_start(&["--auth", "memory:a:b", "--auth", "memory:c:d"]).unwrap_err();
    assert!(
        err.stderr
            .contains("two checkers for username-password credentials"),
        "{}",
        err.stderr
    );
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm but not really").unwrap();
    let err = Server::try_start(&["--auth", &format!("wasm:{}", bogus.display())]).unwrap_err();
    assert!(
        err.stderr.contains("not a WebAssembly component"),
        "{}",
        err.stderr
    );

    let missing = Server::try_start(&["--auth", "wasm:/nonexistent.wasm"]).unwrap_err();
    assert!(
        missing.stderr.contains("cannot read plugin file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn plugins_of_the_wrong_kind_are_refused() {
    let mech = guest_wasm("mech-plain").display().to_string();
    let err = Server::try_start(&["--auth", &format!("wasm:{mech}")]).unwrap_err();
    assert!(
        err.stderr.contains("mechanism plugin, not a checker"),
        "{}",
        err.stderr
    );
    let checker = guest_wasm("checker-memory").display().to_string();
    let err = Server::try_start(&["--mechanism", &checker]).unwrap_err();
    assert!(
        err.stderr.contains("checker plugin, not a mechanism"),
        "{}",
        err.stderr
    );
}

/// `defer-avatar` is a delivery realm's option: on an echo realm, whose
/// session needs its avatar at login, or on a checker, it is refused.
#[test]
fn defer_avatar_goes_only_with_a_delivery_realm() {
    let realm = guest_wasm("realm-echo").display().to_string();
    let err = Server::try_start(&["--realm", &format!("echo={realm}:defer-avatar")]).unwrap_err();
    assert!(
        err.stderr
            .contains("defer-avatar goes with --realm message-delivery"),
        "{}",
        err.stderr
    );
    let checker = guest_wasm("checker-memory").display().to_string();
    let err = Server::try_start(&["--auth", &format!("wasm:{checker}:defer-avatar")]).unwrap_err();
    assert!(
        err.stderr.contains("defer-avatar is a realm's option"),
        "{}",
        err.stderr
    );
}

#[test]
fn excluded_mechanisms_are_not_offered() {
    let server = Server::start(&["--exclude-mechanism", "login"]);
    assert!(
        server
            .banner
            .contains("(mechanisms: CRAM-MD5 PLAIN SCRAM-SHA-1 SCRAM-SHA-256)"),
        "{}",
        server.banner
    );
    let mut c = server.connect();
    assert!(c.ask("AUTH LOGIN").contains("not available"));
    let err = Server::try_start(&["--exclude-mechanism", "NOPE"]).unwrap_err();
    assert!(err.stderr.contains("no such mechanism"), "{}", err.stderr);
}

#[test]
fn a_realm_loaded_from_a_file_serves_the_echo_interface() {
    let realm = guest_wasm("realm-echo").display().to_string();
    let server = Server::start(&["--realm", &format!("echo={realm}")]);
    let mut c = server.connect();
    assert_eq!(c.ask("guest password"), common::LOGIN_OK);
    assert_eq!(c.ask("from a file"), "from a file");
}

/// `portcullis password` with the password on standard input.
fn password_tool(args: &[&str], password: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("password")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn password_tool_entries_log_in_through_the_file_checker() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::new();
    for (user, scheme) in [("ann", "argon2id"), ("ben", "bcrypt"), ("cid", "plain")] {
        let (code, out, err) = password_tool(&["--user", user, "--scheme", scheme], "tr0ub4dor");
        assert_eq!(code, 0, "{err}");
        assert!(out.starts_with(&format!("{user}:")), "{out}");
        assert!(!err.contains("tr0ub4dor"));
        file.push_str(&out);
    }
    let (code, out, _) = password_tool(&["--scheme", "scram-sha-256"], "pencil");
    assert_eq!(code, 0);
    assert!(out.starts_with("{SCRAM-SHA-256}4096,"), "{out}");
    let (code, _, err) = password_tool(&["--scheme", "scram-sha-1", "--rounds", "10"], "x");
    assert_eq!(code, 1);
    assert!(err.contains("at least 4096"), "{err}");
    let path = dir.path().join("passwords.txt");
    std::fs::write(&path, file).unwrap();
    let spec = format!("file:{}", path.display());
    let server = Server::start(&["--auth", &spec]);
    for user in ["ann", "ben", "cid"] {
        let mut c = server.connect();
        assert_eq!(
            c.ask(&format!("{user} tr0ub4dor")),
            common::LOGIN_OK,
            "{user}"
        );
        let mut c = server.connect();
        assert_eq!(
            c.ask(&format!("{user} wrong")),
            common::LOGIN_DENIED,
            "{user}"
        );
    }
}

#[test]
fn plugin_inspect_describes_each_kind_and_refuses_non_plugins() {
    let (code, out, err) = run(&[
        "plugin",
        "inspect",
        guest_wasm("mech-login").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "kind                     mechanism",
        "world                    portcullis:auth/mechanism-plugin@0.2.0",
        "mechanism                LOGIN",
        "plaintext                true",
        "credential kinds         username-password",
    ] {
        assert!(out.contains(want), "{want:?} missing from\n{out}");
    }
    let (code, out, _) = run(&[
        "plugin",
        "inspect",
        "--json",
        guest_wasm("checker-sql").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["world"], "portcullis:auth/sql-checker-plugin@0.2.0");
    assert_eq!(
        report["credential-kinds"],
        serde_json::json!(["username-password", "scram-sha1", "scram-sha256"])
    );
    assert!(
        report["needs"][0].as_str().unwrap().starts_with("sql:"),
        "{report}"
    );
    let (code, out, _) = run(&[
        "plugin",
        "inspect",
        "--json",
        guest_wasm("checker-file").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["world"], "portcullis:auth/file-checker-plugin@0.2.0");
    assert!(
        report["needs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("keyed-file:")),
        "{report}"
    );
    let (code, out, _) = run(&[
        "plugin",
        "inspect",
        guest_wasm("realm-maildir").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("avatar message-delivery  yes"), "{out}");
    assert!(
        out.contains("avatar echo              no (unsupported)"),
        "{out}"
    );
    assert!(out.contains("needs                    files:"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0").unwrap();
    let (code, _, err) = run(&["plugin", "inspect", junk.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not a WebAssembly component this host can compile"),
        "{err}"
    );
}
