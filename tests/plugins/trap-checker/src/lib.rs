//! Test fixture: a checker that misbehaves on request, for the host's
//! fault-isolation tests. Never shipped, never embedded in the host. No
//! configuration; declares username-password.
//!
//! The user name picks the behaviour: `ok` is accepted, `deny` is denied,
//! `garbage` is "accepted" with an empty avatar id, `loop` spins forever,
//! `alloc` allocates 1 MiB chunks without bound, `sleep` sleeps 30 s in
//! WASI's clock; `read:PATH` tries to read
//! a file and `sql:NAME` to run a SQL query it may not have been granted
//! (accepted only if that works, so a test can assert it does not);
//! anything else panics, which traps in wasm.
//! `lookup-secret` always panics; other credential kinds are `unsupported`.

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::sql;
use portcullis::auth::types::{CredentialKind, Credentials, Denial};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "sql-checker-plugin",
});

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

    fn lookup_secret(_username: String, _kind: CredentialKind) -> SecretAnswer {
        panic!("trap-checker: deliberate trap in lookup-secret")
    }
}

export!(Trap);
