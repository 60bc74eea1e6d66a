//! Test fixture: a mechanism named X-TRAP that misbehaves on request, for
//! the host's fault-isolation tests. Never shipped, never embedded in the
//! host. No configuration.
//!
//! The initial response picks the behaviour: `garbage` succeeds with an
//! empty user name, `big` sends a 20 MiB challenge, `ok` succeeds as user
//! `ok` with password `ok`, anything else panics.

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

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
        match initial_response.as_deref() {
            Some(b"garbage") => user(""),
            Some(b"ok") => user("ok"),
            Some(b"big") => StepResult::Challenge(vec![b'x'; 20 << 20]),
            _ => panic!("trap-mechanism: deliberate trap"),
        }
    }

    fn step(_response: Vec<u8>) -> StepResult {
        panic!("trap-mechanism: deliberate trap in step")
    }

    fn denied() -> Option<Vec<u8>> {
        None
    }
}

export!(TrapMechanism);
