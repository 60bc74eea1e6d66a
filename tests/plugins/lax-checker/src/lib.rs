//! Test fixture: a checker that breaks the checker contract, for the
//! conformance kit's tests (`portcullis plugin test` must fail it). Never
//! shipped, never embedded in the host. No configuration; declares
//! username-password only.
//!
//! It accepts every credential of every kind (declared or not) as avatar
//! `lax`, finds a secret for any user, and appends a line to
//! `/grant/lax.log` at every check: a checker that writes into its grant
//! while checking (when the grant is read-write; a read-only grant makes
//! the write fail, which it ignores).

// A native build (`cargo build --workspace`) compiles the fixture without
// its wasm32-only exports, which are all that use most of it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::io::Write as _;

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::types::{CredentialKind, Credentials, ScramKeys, SecretEntry, StoredSecret};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "checker-plugin",
});

struct Lax;

impl Guest for Lax {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(_credentials: Credentials) -> Verdict {
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("/grant/lax.log")
        {
            let _ = writeln!(log, "checked");
        }
        Verdict::Accepted("lax".into())
    }

    fn lookup_secret(username: String, _kind: CredentialKind) -> SecretAnswer {
        SecretAnswer::Found(SecretEntry {
            avatar_id: username,
            secret: StoredSecret::Scram(ScramKeys {
                salt: vec![0; 16],
                iterations: 4096,
                stored_key: vec![0; 32],
                server_key: vec![0; 32],
            }),
        })
    }
}

// Only a wasm32 build exports: the WIT export names are not symbols a
// native linker accepts (see the SDK's export macros).
#[cfg(target_arch = "wasm32")]
export!(Lax);
