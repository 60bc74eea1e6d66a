//! Test fixture: a checker that misbehaves on request, for the host's
//! fault-isolation tests. Never shipped, never embedded in the host. No
//! configuration; declares username-password.
//!
//! The user name picks the behaviour: `ok` is accepted, `deny` is denied,
//! `garbage` is "accepted" with an empty avatar id, `loop` spins forever,
//! `alloc` allocates 1 MiB chunks without bound, `sleep` sleeps 30 s in
//! WASI's clock, `stack` recurses without bound through big frames (which
//! live in linear memory, so the shadow stack overruns its region), `deep`
//! through small ones (exhausting the wasm call stack itself), `utf8`
//! "accepts" with an avatar id that is not UTF-8.
//!
//! Ambient authority probes, each accepted only if it works, so a test can
//! assert it does not: `read:PATH` reads a file, `write:PATH` writes one,
//! `sql:NAME` runs a SQL query, `socket:ADDR` opens a TCP connection, `env`
//! finds environment variables or arguments.
//!
//! `count:PATH` keeps a call counter in a file (under a read-write grant,
//! the only state that outlives an instance) and traps on the third call.
//!
//! Resource and log attacks (issue 12): `fds:PATH:N` opens the granted
//! file PATH N times, keeping every descriptor open, then holds them all
//! for a second and accepts; if an open fails it still holds the ones it
//! got for that second, then panics naming how far it came (so a cap on
//! descriptors shows as a fault, and a host without one runs out of its
//! own). `forge-deny` denies, and `forge-unavailable` answers
//! `unavailable`, with a text carrying CR LF, a fake log line and an ANSI
//! escape ([`FORGED`]). `stderr` writes 100 KiB to stderr, then accepts.
//!
//! Anything else panics, which traps in wasm.
//! `lookup-secret` panics, except for a user `count:PATH`: it adds one to
//! the counter in PATH (as `count:` does) and denies `unsupported`, so a
//! test can count the lookups an exchange made. Other credential kinds
//! are `unsupported`.

// A native build (`cargo build --workspace`) compiles the fixture without
// its wasm32-only exports, which are all that use most of it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::sql;
use portcullis::auth::types::{CredentialKind, Credentials, Denial};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "sql-checker-plugin",
});

/// The text `forge-deny` and `forge-unavailable` answer with (after a
/// word naming which): a CR LF, then what a log line of the host looks
/// like, then an ANSI escape that would turn an operator's terminal red.
pub const FORGED: &str = "\r\n2030-01-01T00:00:00.000000Z  INFO portcullis: FORGED authenticated \
                          user=admin result=success\x1b[31m";

/// Adds one to the counter in `path`; the new count.
fn bump(path: &str) -> Result<u32, String> {
    let calls = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    std::fs::write(path, calls.to_string()).map_err(|e| format!("cannot count in {path}: {e}"))?;
    Ok(calls)
}

/// Opens `path` `n` times keeping every descriptor, holds them for a
/// second, and then accepts, or panics if an open failed.
fn open_many(path: &str, n: usize) -> Verdict {
    let mut open = Vec::new();
    let mut failure = None;
    for _ in 0..n {
        match std::fs::File::open(path) {
            Ok(file) => open.push(file),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    let got = open.len();
    drop(open);
    match failure {
        None => Verdict::Accepted(format!("opened {got}")),
        Some(e) => panic!("trap-checker: opened {path} {got} of {n} times, then: {e}"),
    }
}

struct Trap;

impl Guest for Trap {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(credentials: Credentials) -> Verdict {
        let Credentials::UsernamePassword(up) = credentials else {
            return Verdict::Denied(Denial::Unsupported);
        };
        if let Some(path) = up.username.strip_prefix("read:") {
            return match std::fs::read(path) {
                Ok(bytes) => Verdict::Accepted(format!("read {} bytes", bytes.len())),
                Err(e) => Verdict::Denied(Denial::Other(format!("cannot read {path}: {e}"))),
            };
        }
        if let Some(path) = up.username.strip_prefix("write:") {
            return match std::fs::write(path, b"written by trap-checker\n") {
                Ok(()) => Verdict::Accepted("wrote".into()),
                Err(e) => Verdict::Denied(Denial::Other(format!("cannot write {path}: {e}"))),
            };
        }
        if let Some(addr) = up.username.strip_prefix("socket:") {
            return match std::net::TcpStream::connect(addr) {
                Ok(_) => Verdict::Accepted("connected".into()),
                Err(e) => Verdict::Denied(Denial::Other(format!("cannot connect to {addr}: {e}"))),
            };
        }
        if let Some(path) = up.username.strip_prefix("count:") {
            let calls = match bump(path) {
                Ok(calls) => calls,
                Err(e) => return Verdict::Denied(Denial::Other(e)),
            };
            if calls == 3 {
                panic!("trap-checker: third call");
            }
            return Verdict::Accepted(format!("call {calls}"));
        }
        if let Some(spec) = up.username.strip_prefix("fds:") {
            let (path, n) = spec.rsplit_once(':').unwrap_or((spec, "1"));
            return open_many(path, n.parse().unwrap_or(1));
        }
        if let Some(depth) = up.username.strip_prefix("deep:") {
            // Bounded: fits a big enough wasm stack, traps on a small one.
            let depth = depth.parse().unwrap_or(0);
            return Verdict::Accepted(format!("depth {depth}: {}", deep(depth)));
        }
        if let Some(name) = up.username.strip_prefix("sql:") {
            return match sql::query(name, &[sql::Value::Text("x".into())]) {
                Ok(rows) => Verdict::Accepted(format!("{} rows", rows.len())),
                Err(e) => Verdict::Denied(Denial::Other(format!("query {name}: {e:?}"))),
            };
        }
        match up.username.as_str() {
            "ok" => Verdict::Accepted("ok".into()),
            "deny" => Verdict::Denied(Denial::BadCredentials),
            "garbage" => Verdict::Accepted(String::new()),
            "forge-deny" => Verdict::Denied(Denial::Other(format!("forge-deny{FORGED}"))),
            "forge-unavailable" => Verdict::Unavailable(format!("forge-unavailable{FORGED}")),
            "stderr" => {
                // eprintln! panics when a write fails, as a guest's
                // unbounded stderr used to once it passed 4 KiB.
                let line = "e".repeat(1023);
                for _ in 0..100 {
                    eprintln!("{line}");
                }
                Verdict::Accepted("stderr".into())
            }
            "env" => {
                let vars = std::env::vars_os().count();
                let args = std::env::args_os().count();
                if vars + args > 0 {
                    Verdict::Accepted(format!("{vars} variables, {args} arguments"))
                } else {
                    Verdict::Denied(Denial::Other("no environment".into()))
                }
            }
            "stack" => Verdict::Accepted(format!("depth {}", recurse(0))),
            "deep" => Verdict::Accepted(format!("depth {}", deep(u64::MAX))),
            "utf8" => {
                // SAFETY: deliberately not UTF-8: the bytes only cross the
                // boundary, where the host must refuse them; nothing here
                // reads them as a str.
                Verdict::Accepted(unsafe { String::from_utf8_unchecked(vec![b'o', 0xff, 0xfe]) })
            }
            "loop" => {
                // The opaque counter keeps the optimiser from proving the
                // loop side-effect free.
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                    std::hint::spin_loop();
                }
            }
            "sleep" => {
                // Blocks in WASI's clock, where no wasm runs for the epoch
                // deadline to interrupt.
                std::thread::sleep(std::time::Duration::from_secs(30));
                Verdict::Accepted("slept".into())
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            _ => panic!("trap-checker: deliberate trap"),
        }
    }

    fn lookup_secret(username: String, _kind: CredentialKind) -> SecretAnswer {
        if let Some(path) = username.strip_prefix("count:") {
            return match bump(path) {
                Ok(_) => SecretAnswer::Denied(Denial::Unsupported),
                Err(e) => SecretAnswer::Unavailable(e),
            };
        }
        panic!("trap-checker: deliberate trap in lookup-secret")
    }
}

/// Recursion the optimiser cannot turn into a loop: each frame keeps a
/// buffer alive across the call. Unbounded on purpose.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 32]);
    std::hint::black_box(recurse(depth + 1)) + frame[depth as usize % 32]
}

/// Recursion with almost nothing on the shadow stack: the call goes
/// through a function pointer the optimiser cannot see through, so it can
/// be neither inlined nor turned into a loop.
fn deep(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let next: fn(u64) -> u64 = std::hint::black_box(deep);
    next(n - 1) ^ n
}

// Only a wasm32 build exports: the WIT export names are not symbols a
// native linker accepts (see the SDK's export macros).
#[cfg(target_arch = "wasm32")]
export!(Trap);
