//! Test fixture: a mechanism named X-TRAP that misbehaves on request, for
//! the host's fault-isolation tests. Never shipped, never embedded in the
//! host. No configuration.
//!
//! The initial response picks the behaviour: `garbage` succeeds with an
//! empty user name, `big` sends a 20 MiB challenge, `huge` a 100 MB one,
//! `ok` succeeds as user `ok` with password `ok`, `claim` succeeds with a
//! `verified-secret` for `ok` without ever looking its secret up, `utf8`
//! fails with a reason that is not UTF-8, `steps` answers with challenges
//! and traps on its third call (start, step, step: the instance lives for
//! the whole exchange, so a counter in it counts the exchange's calls);
//! anything else panics.

use std::sync::atomic::{AtomicU32, Ordering};

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword, VerifiedSecret};

/// Calls into this instance so far.
static CALLS: AtomicU32 = AtomicU32::new(0);

fn count() -> u32 {
    CALLS.fetch_add(1, Ordering::Relaxed) + 1
}

wit_bindgen::generate!({
    path: "../../../wit",
    world: "mechanism-plugin",
});

fn user(name: &str) -> StepResult {
    StepResult::Success(Success {
        credentials: Credentials::UsernamePassword(UsernamePassword {
            authzid: None,
            username: name.into(),
            password: "ok".into(),
        }),
        additional_data: None,
    })
}

struct TrapMechanism;

impl Guest for TrapMechanism {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "X-TRAP".into(),
            plaintext: false,
            credential_kinds: vec![CredentialKind::UsernamePassword],
        }
    }

    fn start(initial_response: Option<Vec<u8>>) -> StepResult {
        count();
        match initial_response.as_deref() {
            Some(b"garbage") => user(""),
            Some(b"ok") => user("ok"),
            Some(b"big") => StepResult::Challenge(vec![b'x'; 20 << 20]),
            Some(b"huge") => StepResult::Challenge(vec![b'x'; 100_000_000]),
            Some(b"claim") => StepResult::Success(Success {
                credentials: Credentials::VerifiedSecret(VerifiedSecret {
                    authzid: None,
                    username: "ok".into(),
                    kind: CredentialKind::UsernamePassword,
                }),
                additional_data: None,
            }),
            // SAFETY: deliberately not UTF-8: the bytes only cross the
            // boundary, where the host must refuse them.
            Some(b"utf8") => {
                StepResult::Failure(unsafe { String::from_utf8_unchecked(vec![b'n', 0xc3]) })
            }
            Some(b"steps") => StepResult::Challenge(b"call 1".to_vec()),
            _ => panic!("trap-mechanism: deliberate trap"),
        }
    }

    fn step(_response: Vec<u8>) -> StepResult {
        match count() {
            1 => panic!("trap-mechanism: deliberate trap in step"),
            3 => panic!("trap-mechanism: third call"),
            n => StepResult::Challenge(format!("call {n}").into_bytes()),
        }
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(TrapMechanism);
