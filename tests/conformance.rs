//! `portcullis plugin test`, the conformance kit: every built-in plugin
//! passes it (given the configuration it needs), and the broken fixtures
//! under tests/plugins fail exactly the rules they break: trap-* by
//! trapping, lax-* by answering what the contract forbids.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::guest_wasm;

/// Runs `portcullis plugin test SPEC ARGS...`: exit code and stdout.
fn plugin_test(spec: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log", "error", "plugin", "test", spec])
        .args(args)
        .output()
        .expect("running portcullis plugin test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

/// The report passes: exit 0, no FAIL line, and the given rules passed.
fn passes(spec: &str, args: &[&str], rules: &[&str]) -> String {
    let (code, out) = plugin_test(spec, args);
    assert_eq!(code, 0, "{spec}:\n{out}");
    assert!(!out.contains("FAIL"), "{out}");
    for rule in rules {
        assert!(
            out.lines()
                .any(|l| l.starts_with("pass") && l.contains(&format!(" {rule} "))),
            "rule {rule} did not pass:\n{out}"
        );
    }
    out
}

fn wasm(name: &str) -> String {
    guest_wasm(name).display().to_string()
}

const MECHANISM_RULES: &[&str] = &[
    "info",
    "info-stable",
    "garbage-input",
    "empty-input",
    "huge-input",
    "start-twice",
    "step-before-start",
    "step-after-failure",
    "grants-untouched",
    "sandbox",
];

#[test]
fn every_built_in_mechanism_conforms() {
    for name in [
        "mech-plain",
        "mech-login",
        "mech-anonymous",
        "mech-external",
        "mech-xoauth2",
        "mech-oauthbearer",
        "mech-cram-md5",
        "mech-scram-sha-1",
        "mech-scram-sha-256",
    ] {
        passes(&wasm(name), &[], MECHANISM_RULES);
    }
    // Generic messages reach a success with these, so what follows a
    // success is checked too.
    for name in [
        "mech-plain",
        "mech-anonymous",
        "mech-xoauth2",
        "mech-oauthbearer",
    ] {
        passes(&wasm(name), &[], &["success-is-final"]);
    }
}

const CHECKER_RULES: &[&str] = &[
    "kinds",
    "kinds-stable",
    "lookup-secret",
    "garbage-credentials",
    "grants-untouched",
    "sandbox",
];

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn every_built_in_checker_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    write(dir.path(), "passwords.txt", "tim:tanstaaf\n");
    write(dir.path(), "passwd", "tim:x:1000:1000::/home/tim:/bin/sh\n");
    // A locked account: the rules need the user to exist, not to log in.
    write(dir.path(), "shadow", "tim:*:19000:0:99999:7:::\n");
    let db = dir.path().join("users.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT);
         INSERT INTO users VALUES ('tim', 'tanstaaf');",
    )
    .unwrap();
    drop(conn);
    let user = ["--user", "tim", "--password", "tanstaaf"];
    let with_user: Vec<&str> = CHECKER_RULES
        .iter()
        .copied()
        .chain(["unknown-user", "wrong-password", "accepts-user"])
        .collect();

    passes(
        &format!(
            r#"{}:{{"users": {{"tim": "tanstaaf"}}}}"#,
            wasm("checker-memory")
        ),
        &user,
        &with_user,
    );
    passes(
        &format!(
            r#"{}:grant={d}:{{"path": "/grant/passwords.txt"}}"#,
            wasm("checker-file")
        ),
        &user,
        &with_user,
    );
    let sql = format!("sqlite:{}", db.display());
    passes(
        &format!(r#"{}:{{"query": "credentials"}}"#, wasm("checker-sql")),
        &[&user[..], &["--sql", &sql]].concat(),
        &with_user,
    );
    passes(
        &format!(
            r#"{}:grant={d}:{{"passwd": "/grant/passwd", "shadow": "/grant/shadow"}}"#,
            wasm("checker-unix")
        ),
        &[],
        &[CHECKER_RULES, &["unknown-user"]].concat(),
    );
    passes(
        &format!(
            r#"{}:{{"jwt": {{"hs256-secret": "conformance-secret-of-at-least-32-bytes"}}}}"#,
            wasm("checker-token")
        ),
        &[],
        &[CHECKER_RULES, &["unknown-user", "undeclared-kind"]].concat(),
    );
    passes(
        &wasm("checker-anonymous"),
        &[],
        &[CHECKER_RULES, &["undeclared-kind"]].concat(),
    );
    passes(
        &wasm("checker-external"),
        &[],
        &[CHECKER_RULES, &["undeclared-kind"]].concat(),
    );
}

#[test]
fn a_wrong_test_user_fails_the_acceptance_rule() {
    let spec = format!(
        r#"{}:{{"users": {{"tim": "tanstaaf"}}}}"#,
        wasm("checker-memory")
    );
    let (code, out) = plugin_test(&spec, &["--user", "tim", "--password", "nope"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  accepts-user"), "{out}");
    // A checker without its configuration cannot decide: that fails too,
    // with a hint.
    let (code, out) = plugin_test(&wasm("checker-memory"), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  unknown-user") && out.contains("grant=DIR"),
        "{out}"
    );
}

#[test]
fn every_built_in_realm_conforms() {
    let spool = tempfile::tempdir().unwrap();
    let out = passes(
        &wasm("realm-echo"),
        &[],
        &["echo-avatar", "serves-something"],
    );
    assert!(out.contains("skip  delivery-avatar"), "{out}");
    passes(
        &wasm("realm-console"),
        &[],
        &["delivery-avatar", "serves-something"],
    );
    passes(
        &format!(
            r#"{}:grant-rw={}@/spool:{{"spool": "/spool"}}"#,
            wasm("realm-maildir"),
            spool.path().display()
        ),
        &[],
        &["delivery-avatar", "serves-something", "grants-untouched"],
    );
    // Nothing was delivered.
    assert_eq!(std::fs::read_dir(spool.path()).unwrap().count(), 0);
}

/// The line of `rule`, which must have failed.
fn failed<'a>(out: &'a str, rule: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("FAIL  {rule} ")))
        .unwrap_or_else(|| panic!("{rule} did not fail:\n{out}"))
}

#[test]
fn the_trap_mechanism_fails_the_rules_it_breaks() {
    let (code, out) = plugin_test(&wasm("trap-mechanism"), &[]);
    assert_eq!(code, 1, "{out}");
    for rule in ["info", "info-stable", "sandbox"] {
        assert!(out.contains(&format!("pass  {rule} ")), "{rule}:\n{out}");
    }
    for rule in [
        "garbage-input",
        "empty-input",
        "huge-input",
        "start-twice",
        "step-before-start",
    ] {
        let line = failed(&out, rule);
        assert!(line.contains("trap"), "{line}");
    }
    assert!(
        out.contains("deliberate trap"),
        "the guest's panic is quoted:\n{out}"
    );
    assert!(out.contains("failed"), "{out}");
}

#[test]
fn the_lax_mechanism_fails_every_ordering_rule() {
    let (code, out) = plugin_test(&wasm("lax-mechanism"), &[]);
    assert_eq!(code, 1, "{out}");
    for rule in ["info", "info-stable", "grants-untouched"] {
        assert!(out.contains(&format!("pass  {rule} ")), "{rule}:\n{out}");
    }
    assert!(failed(&out, "garbage-input").contains("binary garbage: the exchange succeeded"));
    assert!(failed(&out, "empty-input").contains("the exchange succeeded"));
    assert!(failed(&out, "huge-input").contains("1 MiB"));
    assert!(failed(&out, "start-twice").contains("a second start succeeded"));
    assert!(failed(&out, "step-before-start").contains("succeeded"));
    assert!(failed(&out, "success-is-final").contains("after success succeeded again"));
    // It reaches for the network (std::net), which no plugin gets.
    assert!(failed(&out, "sandbox").contains("imports wasi:sockets"));
    assert!(
        out.contains("rules: 3 passed, 7 failed, 1 skipped"),
        "{out}"
    );
}

#[test]
fn the_lax_checker_fails_the_rules_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("{}:grant-rw={}", wasm("lax-checker"), dir.path().display());
    let (code, out) = plugin_test(&spec, &["--user", "tim", "--password", "tanstaaf"]);
    assert_eq!(code, 1, "{out}");
    assert!(failed(&out, "unknown-user").contains("accepted"));
    assert!(failed(&out, "undeclared-kind").contains("bearer-token: accepted"));
    assert!(failed(&out, "lookup-secret").contains("found a secret for an unknown user"));
    assert!(failed(&out, "garbage-credentials").contains("accepted"));
    assert!(failed(&out, "wrong-password").contains("accepted"));
    assert!(failed(&out, "grants-untouched").contains("lax.log"));
    // What it gets right passes: the kit does not fail everything.
    for rule in ["kinds", "kinds-stable", "accepts-user", "sandbox"] {
        assert!(out.contains(&format!("pass  {rule} ")), "{rule}:\n{out}");
    }

    // Granted read-only, its write fails: the folder stays as it was.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users"), "tim\n").unwrap();
    let spec = format!("{}:grant={}", wasm("lax-checker"), dir.path().display());
    let (code, out) = plugin_test(&spec, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pass  grants-untouched "), "{out}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn the_trap_checker_fails_where_it_traps() {
    let (code, out) = plugin_test(&wasm("trap-checker"), &[]);
    assert_eq!(code, 1, "{out}");
    // Unknown users and lookups panic in the guest.
    assert!(failed(&out, "unknown-user").contains("trap"), "{out}");
    assert!(failed(&out, "lookup-secret").contains("trap"), "{out}");
    assert!(out.contains("pass  kinds "), "{out}");
}

#[test]
fn a_file_that_is_not_a_plugin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let (code, out) = plugin_test(junk.to_str().unwrap(), &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("portcullis plugin test:") && out.contains("component"),
        "{out}"
    );
}
