//! Test fixture: a mechanism named X-LAX that breaks the ordering rules of
//! the mechanism contract, for the conformance kit's tests (`portcullis
//! plugin test` must fail it). Never shipped, never embedded in the host.
//!
//! Written against the raw bindings on purpose: the SDK's `Exchange`
//! enforces the call order, so a plugin built with it cannot break these
//! rules. Every `start` and every `step`, in any order and any number of
//! times, succeeds as user `lax`, whatever the client sent: garbage,
//! nothing, a megabyte. And `denied` tries to open a TCP connection, so
//! the component imports `wasi:sockets`, which the host never grants.

// A native build (`cargo build --workspace`) compiles the fixture without
// its wasm32-only exports, which are all that use most of it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::types::{CredentialKind, Credentials, UsernamePassword};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "mechanism-plugin",
});

fn success() -> StepResult {
    StepResult::Success(Success {
        credentials: Credentials::UsernamePassword(UsernamePassword {
            authzid: None,
            username: "lax".into(),
            password: "lax".into(),
        }),
        additional_data: None,
    })
}

struct Lax;

impl Guest for Lax {
    fn info() -> MechanismInfo {
        MechanismInfo {
            name: "X-LAX".into(),
            plaintext: false,
            credential_kinds: vec![CredentialKind::UsernamePassword],
        }
    }

    fn start(_initial_response: Option<Vec<u8>>) -> StepResult {
        success()
    }

    fn step(_response: Vec<u8>) -> StepResult {
        success()
    }

    fn denied() -> Option<Vec<u8>> {
        // Reaches for the network, which no plugin is granted.
        let _ = std::net::TcpStream::connect("127.0.0.1:9");
        None
    }
}

// Only a wasm32 build exports: the WIT export names are not symbols a
// native linker accepts (see the SDK's export macros).
#[cfg(target_arch = "wasm32")]
export!(Lax);
