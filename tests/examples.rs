//! The third-party example plugins under examples/plugins, built as an
//! outside author builds them (`cargo build --release --target
//! wasm32-wasip2` in their own folder, against the SDK by path), loaded
//! into the real server from the command line, and logged in through.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Client, LOGIN_DENIED, LOGIN_OK, Server, b64};
use hmac::{Hmac, Mac};

/// `cargo ARGS...` in an example's folder, as its author runs it, with
/// the examples' shared target folder under the workspace's; the output.
fn cargo_in(name: &str, args: &[&str]) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("examples/plugins").join(name))
        .args(args)
        .arg("--target-dir")
        .arg(target_dir());
    // The test build's settings are for the host, not for the example.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("running cargo");
    assert!(
        out.status.success(),
        "cargo {} in {name} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples")
}

/// Builds an example once per test run; returns its `.wasm`.
fn build(name: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static JSON: OnceLock<PathBuf> = OnceLock::new();
    static TOTP: OnceLock<PathBuf> = OnceLock::new();
    let cell = match name {
        "json-checker" => &JSON,
        "x-totp" => &TOTP,
        other => panic!("no example {other}"),
    };
    cell.get_or_init(|| {
        // One build at a time: they share a target folder.
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        cargo_in(name, &["build", "--release", "--target", "wasm32-wasip2"]);
        let wasm = target_dir()
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.is_file(), "{} is missing", wasm.display());
        wasm
    })
    .clone()
}

/// `portcullis plugin test`: exit code and report.
fn plugin_test(spec: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["--log", "error", "plugin", "test", spec])
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// alice's password is `correct horse` (argon2-cffi, see the README).
const USERS: &str = r#"{
  "alice": {"argon2": "$argon2id$v=19$m=1024,t=2,p=1$cG9ydGN1bGxpcy1zYWx0$7Hpyn/C9EGJvquemQibsZGQnL+Moe06TUores36YN08"},
  "bob":   {"plain": "hunter2"},
  "carol": {"plain": "secret", "disabled": true}
}"#;

#[test]
fn json_checker_logs_users_in_over_echo_and_smtp() {
    let wasm = build("json-checker");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.json"), USERS).unwrap();
    let spec = format!(
        r#"wasm:{}:grant={}@/data:{{"users": "/data/users.json"}}"#,
        wasm.display(),
        dir.path().display()
    );
    let server = Server::start(&["--auth", &spec, "--auth-failure-delay", "0s"]);
    for (line, want) in [
        ("bob hunter2", LOGIN_OK),
        ("alice correct horse", LOGIN_OK),
        ("bob hunter3", LOGIN_DENIED),
        ("alice correct-horse", LOGIN_DENIED),
        ("carol secret", LOGIN_DENIED),
        ("mallory hunter2", LOGIN_DENIED),
    ] {
        assert_eq!(server.connect().ask(line), want, "{line}");
    }
    // SMTP AUTH PLAIN reaches the same checker.
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    c.cmd(&format!("AUTH PLAIN {}", b64(b"\0bob\0hunter2")))
        .expect(235, Some("2.7.0"));
    let mut c = server.smtp_client();
    c.cmd("EHLO client.example").expect(250, None);
    c.cmd(&format!("AUTH PLAIN {}", b64(b"\0bob\0wrong")))
        .expect(535, Some("5.7.8"));

    // The plugin is read at every login: a changed file counts at once.
    std::fs::write(
        dir.path().join("users.json"),
        r#"{"bob": {"plain": "new"}}"#,
    )
    .unwrap();
    assert_eq!(server.connect().ask("bob new"), LOGIN_OK);
    assert_eq!(server.connect().ask("bob hunter2"), LOGIN_DENIED);
}

#[test]
fn json_checker_passes_the_conformance_kit() {
    let wasm = build("json-checker");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("users.json"), USERS).unwrap();
    let spec = format!(
        r#"{}:grant={}:{{"users": "/grant/users.json"}}"#,
        wasm.display(),
        dir.path().display()
    );
    let (code, out) = plugin_test(&spec, &["--user", "bob", "--password", "hunter2"]);
    assert_eq!(code, 0, "{out}");
    for rule in [
        "unknown-user",
        "wrong-password",
        "accepts-user",
        "undeclared-kind",
    ] {
        assert!(out.contains(&format!("pass  {rule} ")), "{rule}:\n{out}");
    }
}

// X-TOTP.

/// "12345678901234567890", the RFC 6238 SHA-1 seed, in base32.
const SECRET: &[u8] = b"12345678901234567890";
const SECRET_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// The RFC 6238 code of now (SHA-1, 6 digits, 30 s), computed here with
/// the host's own HMAC crates.
fn current_code() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET).unwrap();
    mac.update(&(now / 30).to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = u32::from_be_bytes(hash[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", binary % 1_000_000)
}

/// The data of a `+ base64` challenge line (an empty one is a bare `+`).
fn challenge(line: &str) -> Vec<u8> {
    let data = line
        .strip_prefix('+')
        .unwrap_or_else(|| panic!("expected a challenge, got {line:?}"));
    STANDARD.decode(data.trim_start()).unwrap()
}

/// One X-TOTP exchange over the echo port; the server's last line.
fn x_totp(server: &Server, login: &[u8], code: &str) -> String {
    let mut c: Client = server.connect();
    let asked = c.ask(&format!("AUTH X-TOTP {}", b64(login)));
    if !asked.starts_with('+') {
        return asked;
    }
    assert_eq!(challenge(&asked), b"TOTP code:");
    c.ask(&b64(code.as_bytes()))
}

/// The built x-totp plugin as a `--mechanism` argument, with bob's secret
/// in `dir` granted to it.
fn x_totp_spec(dir: &Path) -> String {
    let wasm = build("x-totp");
    std::fs::write(
        dir.join("totp.json"),
        format!(r#"{{"bob": "{SECRET_B32}"}}"#),
    )
    .unwrap();
    format!(
        r#"{}:grant={}:{{"secrets": "/grant/totp.json"}}"#,
        wasm.display(),
        dir.display()
    )
}

#[test]
fn x_totp_needs_the_password_and_the_current_code() {
    let dir = tempfile::tempdir().unwrap();
    let mechanism = x_totp_spec(dir.path());
    let server = Server::start(&[
        "--auth",
        "memory:bob:hunter2:alice:wonderland",
        "--mechanism",
        &mechanism,
        "--auth-failure-delay",
        "0s",
    ]);
    assert!(server.banner.contains("X-TOTP"), "{}", server.banner);

    let code = current_code();
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(x_totp(&server, b"\0bob\0hunter2", &code), LOGIN_OK);
    assert_eq!(x_totp(&server, b"\0bob\0hunter2", wrong), LOGIN_DENIED);
    assert_eq!(x_totp(&server, b"\0bob\0wrong", &code), LOGIN_DENIED);
    assert_eq!(x_totp(&server, b"\0bob\0hunter2", "12345"), LOGIN_DENIED);
    // alice has a password but no TOTP secret.
    assert_eq!(x_totp(&server, b"\0alice\0wonderland", &code), LOGIN_DENIED);
    // Without an initial response the server asks for the login first.
    let mut c = server.connect();
    assert_eq!(challenge(&c.ask("AUTH X-TOTP")), b"");
    assert_eq!(challenge(&c.ask(&b64(b"\0bob\0hunter2"))), b"TOTP code:");
    assert_eq!(c.ask(&b64(current_code().as_bytes())), LOGIN_OK);
    // The log says why, without the code or the secret.
    let logs = server.logs();
    assert!(logs.contains("wrong or expired TOTP code"), "{logs}");
    assert!(
        !logs.contains(SECRET_B32) && !logs.contains("hunter2"),
        "{logs}"
    );
}

#[test]
fn x_totp_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let spec = x_totp_spec(dir.path());
    let (code, out) = plugin_test(&spec, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pass  info ") && out.contains("X-TOTP"),
        "{out}"
    );
    assert!(
        out.contains("/grant"),
        "the sandbox rule names the grant:\n{out}"
    );
}

#[test]
fn x_totp_unit_tests_pass_the_rfc_vectors() {
    // Natively, as the author runs them: RFC 6238 Appendix B and RFC 4226
    // Appendix D, which the loaded plugin cannot be shown (it reads the
    // real clock).
    let out = cargo_in("x-totp", &["test", "--lib"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for test in ["rfc_6238_appendix_b", "rfc_4226_appendix_d"] {
        assert!(
            text.contains(&format!("totp::tests::{test} ... ok")),
            "{text}"
        );
    }
}
