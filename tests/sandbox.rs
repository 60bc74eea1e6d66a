//! The sandbox around each plugin: no ambient authority (files beyond the
//! grants, the environment, sockets), grants read-only unless said
//! otherwise, path escapes refused; the operator's limits reach the
//! plugin; the instance pool makes exchanges wait rather than fail; and a
//! plugin's identity (sha256 pin, WIT version) is checked before it runs.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{LOGIN_DENIED, LOGIN_OK, Server, TEMPORARY, guest_wasm};

fn trap_checker(options: &str) -> String {
    format!("wasm:{}{options}", guest_wasm("trap-checker").display())
}

/// The trap checker's probes are accepted only if they work, so every
/// `LOGIN_DENIED` below is the sandbox saying no; the accepted controls
/// show the probes can succeed.
#[test]
fn a_plugin_sees_only_its_grants_and_no_ambient_authority() {
    let mine = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    std::fs::write(mine.path().join("readable"), "mine").unwrap();
    std::fs::write(theirs.path().join("secret"), "theirs").unwrap();
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, mine.path().join(name)).unwrap();
    };
    link(Path::new("/etc/passwd"), "passwd");
    link(theirs.path(), "theirs");
    link(&theirs.path().join("secret"), "secret");
    let spec = trap_checker(&format!(":grant={}", mine.path().display()));
    // The maildir realm is another plugin, granted `theirs`.
    let maildir = theirs.path().to_str().unwrap();
    let server = Server::start(&["--auth", &spec, "--maildir", maildir]);
    let probe = |user: &str| server.connect().ask(&format!("{user} pw"));

    assert_eq!(probe("read:/grant/readable"), LOGIN_OK, "the control");
    let theirs_abs = format!("read:{}/secret", theirs.path().display());
    for escape in [
        "read:/etc/passwd",
        "read:/grant/../etc/passwd",
        "read:/grant/../../etc/passwd",
        "read:/grant/passwd",
        "read:/grant/theirs/secret",
        "read:/grant/secret",
        "read:/spool/secret",
        theirs_abs.as_str(),
        "read:/proc/self/environ",
        "write:/grant/new",
        "write:/grant/readable",
        "write:/tmp/escaped",
        "env",
    ] {
        assert_eq!(probe(escape), LOGIN_DENIED, "{escape}");
    }
    let smtp = format!("socket:{}", server.smtp);
    assert_eq!(probe(&smtp), LOGIN_DENIED, "{smtp}");
    // Nothing was written, and the host is unharmed.
    assert!(!mine.path().join("new").exists());
    assert_eq!(
        std::fs::read_to_string(mine.path().join("readable")).unwrap(),
        "mine"
    );
    assert_eq!(probe("ok"), LOGIN_OK);
}

#[test]
fn a_read_write_grant_is_writable_only_when_the_operator_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spec = trap_checker(&format!(":grant-rw={}", dir.path().display()));
    let server = Server::start(&["--auth", &spec]);
    assert_eq!(server.connect().ask("write:/grant/new pw"), LOGIN_OK);
    assert!(dir.path().join("new").exists());
    // Still nothing outside it.
    assert_eq!(server.connect().ask("write:/grant/../new pw"), LOGIN_DENIED);
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_pin_on_the_command_line_is_checked_before_compiling() {
    let wasm = guest_wasm("trap-checker");
    let wrong = "0".repeat(64);
    let failure =
        Server::try_start(&["--auth", &trap_checker(&format!(":sha256={wrong}"))]).unwrap_err();
    let actual = sha256_hex(&wasm);
    assert!(
        failure.stderr.contains(&format!(
            "plugin trap_checker: sha256 is {actual}, but the configuration pins {wrong}"
        )),
        "{}",
        failure.stderr
    );
    // Not even a WebAssembly file: the pin refuses it before the compiler
    // sees it.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let spec = format!("wasm:{}:sha256={wrong}", junk.display());
    let failure = Server::try_start(&["--auth", &spec]).unwrap_err();
    assert!(failure.stderr.contains("sha256 is"), "{}", failure.stderr);
    assert!(!failure.stderr.contains("not a WebAssembly component"));

    let server = Server::start(&["--auth", &trap_checker(&format!(":sha256={actual}"))]);
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
    let failure = Server::try_start(&["--auth", &trap_checker(":sha256=abc")]).unwrap_err();
    assert!(
        failure.stderr.contains("write the 64 hexadecimal digits"),
        "{}",
        failure.stderr
    );
}

/// The same component with every `portcullis:auth/…@0.2.0` name changed
/// to `@9.2.0` (same length, so the binary stays valid).
fn built_against_another_version(dir: &Path) -> std::path::PathBuf {
    let mut wasm = std::fs::read(guest_wasm("trap-checker")).unwrap();
    let (package, old, new) = (b"portcullis:auth/", b"@0.2.0", b"@9.2.0");
    let mut changed = 0;
    let mut at = 0;
    while let Some(i) = find(&wasm[at..], package) {
        let start = at + i + package.len();
        let window = start..(start + 40).min(wasm.len());
        if let Some(j) = find(&wasm[window], old) {
            wasm[start + j..start + j + old.len()].copy_from_slice(new);
            changed += 1;
        }
        at = start;
    }
    assert!(changed > 0, "no versioned names found");
    let path = dir.join("old_checker.wasm");
    std::fs::write(&path, wasm).unwrap();
    path
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_plugin_built_against_another_wit_version_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let old = built_against_another_version(dir.path());
    let spec = format!("wasm:{}", old.display());
    let failure = Server::try_start(&["--auth", &spec]).unwrap_err();
    assert!(
        failure.stderr.contains(
            "plugin old_checker: built against portcullis:auth@9.2.0, but this host implements \
             portcullis:auth@0.2.0: rebuild it against portcullis-sdk 0.2 (or the WIT in wit/ \
             of this host's source); PLUGINS.md lists what changed"
        ),
        "{}",
        failure.stderr
    );
}

/// A real 0.1 component (`tests/plugins/v01-checker`, built from its own
/// copy of the 0.1 WIT), not a patched one: refused at start, by name,
/// with how to rebuild it.
#[test]
fn a_plugin_built_against_wit_0_1_is_refused_with_how_to_rebuild_it() {
    let spec = format!("wasm:{}", guest_wasm("v01-checker").display());
    let failure = Server::try_start(&["--auth", &spec]).unwrap_err();
    assert_ne!(failure.code, Some(0));
    assert!(
        failure.stderr.contains(
            "plugin v01_checker: built against portcullis:auth@0.1.0, but this host implements \
             portcullis:auth@0.2.0: rebuild it against portcullis-sdk 0.2"
        ),
        "{}",
        failure.stderr
    );
}

#[test]
fn a_plugins_own_limits_win_over_the_global_ones() {
    // Globally 5 s, but this checker gets 300 ms and 8 MiB.
    let spec = trap_checker(":call-time=300ms:memory=8M");
    let server = Server::start(&["--auth", &spec, "--plugin-call-time", "5s"]);
    let started = Instant::now();
    assert_eq!(server.connect().ask("loop pw"), TEMPORARY);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(4),
        "{took:?}"
    );
    server.wait_for_log("ran past its time limit of 300 ms");
    assert_eq!(server.connect().ask("alloc pw"), TEMPORARY);
    server.wait_for_log("(limit 8388608 bytes)");

    let failure = Server::try_start(&["--auth", &trap_checker(":memory=4G")]).unwrap_err();
    assert!(
        failure
            .stderr
            .contains("memory 4G is out of range; write a size from 1M to 512M"),
        "{}",
        failure.stderr
    );
}

/// The wasm stack is the engine's, one size for every plugin: the same
/// bounded recursion fits 8M and traps in 64K (454, the log naming it).
#[test]
fn the_wasm_stack_size_is_the_operators() {
    let spec = trap_checker("");
    let roomy = Server::start(&["--auth", &spec, "--plugin-wasm-stack", "8M"]);
    assert_eq!(roomy.connect().ask("deep:50000 pw"), LOGIN_OK);
    let tight = Server::start(&["--auth", &spec, "--plugin-wasm-stack", "64K"]);
    assert_eq!(tight.connect().ask("deep:50000 pw"), TEMPORARY);
    tight.wait_for_log("call stack exhausted");
    // Logins that need little stack are unaffected.
    assert_eq!(tight.connect().ask("ok pw"), LOGIN_OK);

    let failure = Server::try_start(&["--auth", &spec, "--plugin-wasm-stack", "16K"]).unwrap_err();
    assert!(
        failure
            .stderr
            .contains("wasm-stack 16K is out of range; write a size from 64K to 8M"),
        "{}",
        failure.stderr
    );
}

/// With one avatar slot, a logged-in echo session holds it; the next
/// login waits for it instead of failing, and fails cleanly only when no
/// slot comes free within the plugin's call time.
#[test]
fn a_full_instance_pool_makes_exchanges_wait() {
    let server = Server::start(&[
        "--max-avatars",
        "1",
        "--plugin-call-time",
        "2s",
        "--auth",
        "memory:ok:pw",
    ]);
    let mut holder = server.connect();
    assert_eq!(holder.ask("ok pw"), LOGIN_OK);
    let addr = server.addr;
    let waiter = std::thread::spawn(move || common::Client::connect(addr).ask("ok pw"));
    std::thread::sleep(Duration::from_millis(300));
    drop(holder);
    assert_eq!(waiter.join().unwrap(), LOGIN_OK);

    let mut holder = server.connect();
    assert_eq!(holder.ask("ok pw"), LOGIN_OK);
    let started = Instant::now();
    assert_eq!(server.connect().ask("ok pw"), TEMPORARY);
    assert!(started.elapsed() >= Duration::from_secs(2));
    server.wait_for_log("no free instance slot within 2000 ms");
    drop(holder);
    assert_eq!(server.connect().ask("ok pw"), LOGIN_OK);
}
