//! Test fixture: a checker built against `portcullis:auth@0.1.0`, the
//! contract before the realm's `avatar-error`, from the copy of that WIT in
//! this crate's own `wit/` (never updated). The host implements 0.2 and
//! must refuse to load it, saying how to rebuild it. Never shipped, never
//! embedded in the host. It would accept everyone as `v01`.

// A native build (`cargo build --workspace`) compiles the fixture without
// its wasm32-only exports, which are all that use it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use exports::portcullis::auth::checker::{Guest, SecretAnswer, Verdict};
use portcullis::auth::types::{CredentialKind, Credentials, Denial};

wit_bindgen::generate!({
    path: "wit",
    world: "checker-plugin",
});

struct V01;

impl Guest for V01 {
    fn credential_kinds() -> Vec<CredentialKind> {
        vec![CredentialKind::UsernamePassword]
    }

    fn check(_credentials: Credentials) -> Verdict {
        Verdict::Accepted("v01".into())
    }

    fn lookup_secret(_username: String, _kind: CredentialKind) -> SecretAnswer {
        SecretAnswer::Denied(Denial::Unsupported)
    }
}

// Only a wasm32 build exports: the WIT export names are not symbols a
// native linker accepts (see the SDK's export macros).
#[cfg(target_arch = "wasm32")]
export!(V01);
