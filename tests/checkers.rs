//! Credential checkers through the command line: password files (plain and
//! hashed, with Twisted's layout options) and third-party checkers loaded
//! from `.wasm` files.

use crate::common;

use common::{LOGIN_DENIED, LOGIN_OK, Server, guest_wasm};

fn password_file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords.txt");
    std::fs::write(&path, contents).unwrap();
    (dir, path.display().to_string())
}

fn login(server: &Server, user: &str, pass: &str) -> String {
    server.connect().ask(&format!("{user} {pass}"))
}

#[test]
fn file_with_plain_passwords() {
    let (_dir, path) = password_file("# users\nalice:wonderland\nbob:builder\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "alice", "wonderland"), LOGIN_OK);
    assert_eq!(login(&server, "bob", "builder"), LOGIN_OK);
    assert_eq!(login(&server, "bob", "wonderland"), LOGIN_DENIED);
    assert_eq!(login(&server, "carol", "x"), LOGIN_DENIED);
    assert_eq!(
        login(&server, "Alice", "wonderland"),
        LOGIN_DENIED,
        "case-sensitive by default"
    );
}

#[test]
fn file_with_hashed_passwords() {
    let argon = argon2_of("argon-pass");
    let bcrypt = bcrypt::hash("bcrypt-pass", 4).unwrap();
    // `openssl passwd -6 -salt saltsalt password`
    let sha512 = "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/";
    let (_dir, path) = password_file(&format!(
        "ann:{argon}\nben:{bcrypt}\ncid:{sha512}\ndee:$1$old$md5crypt\n"
    ));
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert!(argon.starts_with("$argon2id$"));
    assert_eq!(login(&server, "ann", "argon-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ann", "argon-pasS"), LOGIN_DENIED);
    assert_eq!(login(&server, "ben", "bcrypt-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ben", "bcrypt-pas"), LOGIN_DENIED);
    assert_eq!(login(&server, "cid", "password"), LOGIN_OK);
    assert_eq!(login(&server, "cid", "passwort"), LOGIN_DENIED);
    // An entry the checker cannot use is its failure, not the user's.
    assert_eq!(login(&server, "dee", "x"), common::TEMPORARY);
    server.wait_for_log("unsupported hash scheme");
}

/// Slow hashes are verified natively by the host's `password-hash`
/// import (counted on the metrics page); one past the host's caps (a
/// SHA-crypt password over 256 bytes) is declined there and verified
/// inside the checker, with the same answer.
#[test]
fn slow_hashes_are_verified_by_the_host_within_its_caps() {
    let argon = argon2_of("argon-pass");
    let bcrypt = bcrypt::hash("bcrypt-pass", 4).unwrap();
    let long = "p".repeat(300);
    let sha512 = sha_crypt(&long);
    let (_dir, path) = password_file(&format!("ann:{argon}\nben:{bcrypt}\ncid:{sha512}\n"));
    let server = hash_server(&path, &[]);
    assert_eq!(login(&server, "ann", "argon-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ann", "argon-pasS"), LOGIN_DENIED);
    assert_eq!(login(&server, "ben", "bcrypt-pass"), LOGIN_OK);
    // Absent: the time of a check against another entry, spent natively.
    assert_eq!(login(&server, "zed", "bcrypt-pass"), LOGIN_DENIED);
    assert_eq!(hash_calls(&server, "verified"), 4);
    assert_eq!(hash_calls(&server, "over_limit"), 0);
    // Past the caps: the guest verifies it, and still tells right from wrong.
    assert_eq!(login(&server, "cid", &long), LOGIN_OK);
    assert_eq!(login(&server, "cid", &"q".repeat(300)), LOGIN_DENIED);
    assert_eq!(hash_calls(&server, "over_limit"), 2);
}

/// A native verification waits for the turn of the client the login is
/// for (echo and SMTP, from their own source addresses): the address
/// reaches the host's verifier through the checker's call into the
/// sandbox. A client whose last verification did not match waits in the
/// other class, until one matches. Which turn comes first is `fair`'s unit
/// tests.
#[test]
fn a_slow_hash_waits_in_its_own_clients_turn() {
    let bcrypt = bcrypt::hash("bcrypt-pass", 4).unwrap();
    let (_dir, path) = password_file(&format!("ben:{bcrypt}\n"));
    let server = hash_server(&path, &[]);
    let mut echo = common::Client::connect_from("127.3.4.5".parse().unwrap(), server.addr);
    assert_eq!(echo.ask("ben bcrypt-pass"), LOGIN_OK);
    server.wait_for_log("password-hash waits for its turn client=127.3.4.5 class=Preferred");
    // The class each next verification of 127.3.4.5 waits in, and how
    // many of that class its log then has said.
    for (password, reply, class, count) in [
        ("wrong", LOGIN_DENIED, "Preferred", 2),
        ("wrong", LOGIN_DENIED, "Other", 1),
        ("bcrypt-pass", LOGIN_OK, "Other", 2),
        ("bcrypt-pass", LOGIN_OK, "Preferred", 3),
    ] {
        let mut again = common::Client::connect_from("127.3.4.5".parse().unwrap(), server.addr);
        assert_eq!(again.ask(&format!("ben {password}")), reply);
        let line = format!("password-hash waits for its turn client=127.3.4.5 class={class}");
        let said = |logs: &str| logs.matches(line.as_str()).count();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while said(&server.logs()) < count && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert_eq!(said(&server.logs()), count, "{line}");
    }
    let mut smtp = common::Client::connect_from("127.3.4.6".parse().unwrap(), server.smtp);
    assert_eq!(smtp.reply().code, 220);
    smtp.cmd("EHLO client.example").expect(250, None);
    smtp.cmd(&format!(
        "AUTH PLAIN {}",
        common::b64(b"\0ben\0bcrypt-pass")
    ))
    .expect(235, Some("2.7.0"));
    server.wait_for_log("password-hash waits for its turn client=127.3.4.6 class=Preferred");
    assert_eq!(hash_calls(&server, "verified"), 6);
}

/// `--plugin-native-hashes no`: the host declines every hash and the
/// checker verifies it inside the sandbox, with the same answers.
#[test]
fn with_native_hashes_off_the_checker_verifies_every_hash_itself() {
    let bcrypt = bcrypt::hash("bcrypt-pass", 4).unwrap();
    let sha512 = sha_crypt("sha-pass");
    let (_dir, path) = password_file(&format!("ben:{bcrypt}\ncid:{sha512}\n"));
    let server = hash_server(&path, &["--plugin-native-hashes", "no"]);
    assert_eq!(login(&server, "ben", "bcrypt-pass"), LOGIN_OK);
    assert_eq!(login(&server, "ben", "bcrypt-pasS"), LOGIN_DENIED);
    assert_eq!(login(&server, "cid", "sha-pass"), LOGIN_OK);
    assert_eq!(hash_calls(&server, "unsupported"), 3);
    assert_eq!(hash_calls(&server, "verified"), 0);
}

/// A server with the file checker over `path`, no failure delay and a
/// metrics page.
fn hash_server(path: &str, more: &[&str]) -> Server {
    let auth = format!("file:{path}");
    let mut args = vec![
        "--auth",
        &auth,
        "--auth-failure-delay",
        "0s",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(more);
    Server::start(&args)
}

/// `password-hash` calls with `outcome` so far, from the metrics page.
fn hash_calls(server: &Server, outcome: &str) -> u64 {
    let page = server.metrics();
    let series = format!("portcullis_password_hash_total{{outcome=\"{outcome}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |n| n.parse().unwrap())
}

/// An Argon2id hash of `password` (the crate's defaults).
fn argon2_of(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    argon2::Argon2::default()
        .hash_password(
            password.as_bytes(),
            &SaltString::encode_b64(b"0123456789abcdef").unwrap(),
        )
        .unwrap()
        .to_string()
}

/// A SHA-512-crypt hash of `password` (glibc's default 5,000 rounds).
fn sha_crypt(password: &str) -> String {
    use sha_crypt::password_hash::PasswordHasher;
    sha_crypt::ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), b"saltsalt")
        .unwrap()
        .to_string()
}

#[test]
fn file_layout_options() {
    let (_dir, path) = password_file("1001|Alice|wonder:land\n1002|bob|builder\n");
    let spec =
        format!("file:{path}:delimiter=pipe:username-field=1:password-field=2:case-insensitive");
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "alice", "wonder:land"), LOGIN_OK);
    assert_eq!(login(&server, "BOB", "builder"), LOGIN_OK);
    assert_eq!(login(&server, "1001", "Alice"), LOGIN_DENIED);
}

#[test]
fn file_changes_are_noticed() {
    let (_dir, path) = password_file("alice:one\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "alice", "one"), LOGIN_OK);
    assert_eq!(login(&server, "zed", "new"), LOGIN_DENIED);
    std::fs::write(&path, "alice:two\nzed:new\n").unwrap();
    assert_eq!(login(&server, "zed", "new"), LOGIN_OK);
    assert_eq!(login(&server, "alice", "one"), LOGIN_DENIED);
    assert_eq!(login(&server, "alice", "two"), LOGIN_OK);
}

#[test]
fn file_removed_while_running_is_a_temporary_failure() {
    let (dir, path) = password_file("alice:one\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    std::fs::remove_file(dir.path().join("passwords.txt")).unwrap();
    let mut c = server.connect();
    assert_eq!(c.ask("alice one"), common::TEMPORARY);
    c.expect_closed();
    let logs = server.wait_for_log("cannot read password file");
    assert!(
        logs.contains("plugin=checker-file"),
        "the log names the plugin: {logs}"
    );
}

#[test]
fn third_party_checker_from_a_wasm_file() {
    // The built-in memory checker, loaded as any third-party file would be,
    // with its configuration as JSON.
    let wasm = guest_wasm("checker-memory");
    let spec = format!(r#"wasm:{}:{{"users":{{"carol":"c:o:l"}}}}"#, wasm.display());
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "carol", "c:o:l"), LOGIN_OK);
    assert_eq!(login(&server, "carol", "x"), LOGIN_DENIED);
}

#[test]
fn third_party_checker_with_a_grant() {
    let (dir, path) = password_file("dave:pw\n");
    let wasm = guest_wasm("checker-file");
    let spec = format!(
        r#"wasm:{}:grant={}@/data:{{"path":"/data/passwords.txt"}}"#,
        wasm.display(),
        dir.path().display()
    );
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "dave", "pw"), LOGIN_OK);

    // Without the grant the same plugin cannot see the file.
    let spec = format!(r#"wasm:{}:{{"path":"{}"}}"#, wasm.display(), path);
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(login(&server, "dave", "pw"), common::TEMPORARY);
    server.wait_for_log("cannot read password file");
}

#[test]
fn password_file_checker_sees_only_its_folder() {
    // The checker is granted the password file's folder; a path outside it
    // (here /etc/passwd, through the configuration) cannot be opened.
    let wasm = guest_wasm("checker-file");
    let (dir, _) = password_file("x:y\n");
    for escape in ["/etc/passwd", "/grant/../../etc/passwd"] {
        let spec = format!(
            r#"wasm:{}:grant={}:{{"path":"{escape}"}}"#,
            wasm.display(),
            dir.path().display()
        );
        let server = Server::start(&["--auth", &spec]);
        assert_eq!(login(&server, "root", "x"), common::TEMPORARY, "{escape}");
        server.wait_for_log("cannot read password file");
    }
}

#[test]
fn the_example_password_file_works_as_documented() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/passwords.txt");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    for (user, pass) in [
        ("alice", "wonderland"),
        ("bob", "builder"),
        ("carol", "carol-pass"),
        ("dave", "plain-text-pass"),
        ("erin", "erin-pass"),
    ] {
        assert_eq!(login(&server, user, pass), LOGIN_OK, "{user}");
        assert_eq!(login(&server, user, "wrong"), LOGIN_DENIED, "{user}");
    }
}

/// Replaces the password file the way editors and `install` do: a new
/// file renamed over the old one.
fn replace(path: &str, contents: &str) {
    let new = format!("{path}.new");
    std::fs::write(&new, contents).unwrap();
    std::fs::rename(&new, path).unwrap();
}

#[test]
fn file_replaced_by_rename_applies_at_the_next_login() {
    let (_dir, path) = password_file("alice:one\nbob:builder\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "bob", "builder"), LOGIN_OK);
    replace(&path, "alice:two\ncarol:new\n");
    assert_eq!(
        login(&server, "bob", "builder"),
        LOGIN_DENIED,
        "bob was removed"
    );
    assert_eq!(login(&server, "alice", "one"), LOGIN_DENIED);
    assert_eq!(login(&server, "alice", "two"), LOGIN_OK);
    assert_eq!(login(&server, "carol", "new"), LOGIN_OK);
}

#[test]
fn a_truncated_or_half_written_file_lets_no_removed_user_in() {
    // Version 1 has alice and bob; version 2 (carol, dave) is written in
    // place, and logins are tried at each step of the write.
    let (_dir, path) = password_file("alice:one\nbob:builder\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "bob", "builder"), LOGIN_OK);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    // Truncated: nobody, not version 1's users.
    for (user, pass) in [("alice", "one"), ("bob", "builder"), ("carol", "c")] {
        assert_eq!(login(&server, user, pass), LOGIN_DENIED, "{user}");
    }
    use std::io::Write as _;
    file.write_all(b"carol:c\n").unwrap();
    file.flush().unwrap();
    // Half written: the half there is, nothing of version 1.
    assert_eq!(login(&server, "carol", "c"), LOGIN_OK);
    assert_eq!(login(&server, "bob", "builder"), LOGIN_DENIED);
    assert_eq!(login(&server, "dave", "d"), LOGIN_DENIED);
    file.write_all(b"dave:d\n").unwrap();
    drop(file);
    assert_eq!(login(&server, "dave", "d"), LOGIN_OK);
    assert_eq!(login(&server, "alice", "one"), LOGIN_DENIED);
}

#[test]
fn the_first_entry_of_a_user_wins_and_names_match_without_case_when_asked() {
    let (_dir, path) = password_file("Alice:first\nALICE:second\nalice:third\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "alice", "third"), LOGIN_OK);
    assert_eq!(login(&server, "ALICE", "second"), LOGIN_OK);
    assert_eq!(login(&server, "aLiCe", "first"), LOGIN_DENIED);
    let server = Server::start(&["--auth", &format!("file:{path}:case-insensitive")]);
    assert_eq!(login(&server, "aLiCe", "first"), LOGIN_OK);
    assert_eq!(login(&server, "alice", "third"), LOGIN_DENIED);
    assert_eq!(login(&server, "ALICE", "second"), LOGIN_DENIED);
}

#[test]
fn an_unusable_file_is_a_temporary_failure_never_a_denial() {
    let (dir, path) = password_file("alice:one\n");
    let server = Server::start(&["--auth", &format!("file:{path}")]);
    assert_eq!(login(&server, "alice", "one"), LOGIN_OK);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("other"), "alice:one\n").unwrap();
    let cases: [(&str, &dyn Fn()); 5] = [
        ("not UTF-8 text", &|| {
            std::fs::write(&path, b"alice:\xff\n").unwrap()
        }),
        ("line 2 is longer than 64 KiB", &|| {
            std::fs::write(&path, format!("alice:one\nbob:{}\n", "x".repeat(70_000))).unwrap()
        }),
        ("not a regular file", &|| {
            std::fs::remove_file(&path).unwrap();
            std::fs::create_dir(&path).unwrap();
        }),
        ("cannot read password file", &|| {
            std::fs::remove_dir(&path).unwrap();
            std::os::unix::fs::symlink(outside.path().join("other"), &path).unwrap();
        }),
        ("cannot read password file", &|| {
            std::fs::remove_file(&path).unwrap();
            std::os::unix::fs::symlink(dir.path().join("missing"), &path).unwrap();
        }),
    ];
    for (log, make) in cases {
        make();
        let mut c = server.connect();
        assert_eq!(c.ask("alice one"), common::TEMPORARY, "{log}");
        c.expect_closed();
        server.wait_for_log(log);
    }
    // Whole again: served again.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "alice:one\n").unwrap();
    assert_eq!(login(&server, "alice", "one"), LOGIN_OK);
}
