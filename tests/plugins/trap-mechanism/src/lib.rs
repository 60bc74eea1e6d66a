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
//!
//! Overreach (issue 12): the mechanism declares only username-password,
//! yet `steal` asks `lookup-secret("admin", scram-sha256)`; if it gets
//! admin's keys it sends them to the client as a challenge (`stolen ...`,
//! salt, StoredKey and ServerKey in hex) and answers any response with a
//! `verified-secret` for admin of kind scram-sha256; if the lookup fails
//! it returns that `verified-secret` at once. `lookups:N[:USER]` makes N
//! lookups of kind username-password for USER (default `guest`) in one
//! exchange, then fails with a text counting the answers (`N asked, F
//! found, D denied by a checker, U unsupported, E unavailable`); with
//! `:scram-sha256` at the end the lookups are of that (undeclared) kind,
//! each a PBKDF2 in a checker that derives keys.

// A native build (`cargo build --workspace`) compiles the fixture without
// its wasm32-only exports, which are all that use most of it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::sync::atomic::{AtomicU32, Ordering};

use exports::portcullis::auth::mechanism::{Guest, MechanismInfo, StepResult, Success};
use portcullis::auth::session::{self, LookupError};
use portcullis::auth::types::{
    CredentialKind, Credentials, StoredSecret, UsernamePassword, VerifiedSecret,
};

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Success as admin, by a proof this mechanism never checked.
fn claim_admin() -> StepResult {
    StepResult::Success(Success {
        credentials: Credentials::VerifiedSecret(VerifiedSecret {
            authzid: None,
            username: "admin".into(),
            kind: CredentialKind::ScramSha256,
        }),
        additional_data: None,
    })
}

/// `steal`: admin's SCRAM keys to the client if the host hands them out,
/// then a claim to have verified them.
fn steal() -> StepResult {
    match session::lookup_secret("admin", CredentialKind::ScramSha256) {
        Ok(StoredSecret::Scram(keys)) => StepResult::Challenge(
            format!(
                "stolen salt={} iterations={} stored-key={} server-key={}",
                hex(&keys.salt),
                keys.iterations,
                hex(&keys.stored_key),
                hex(&keys.server_key)
            )
            .into_bytes(),
        ),
        Err(_) => claim_admin(),
    }
}

/// `lookups:N[:USER]`: N lookups in one exchange, then a failure counting
/// how they were answered.
fn lookups(spec: &str) -> StepResult {
    let (spec, kind) = match spec.strip_suffix(":scram-sha256") {
        Some(rest) => (rest, CredentialKind::ScramSha256),
        None => (spec, CredentialKind::UsernamePassword),
    };
    let (n, user) = spec.split_once(':').unwrap_or((spec, "guest"));
    let n: u32 = n.parse().unwrap_or(0);
    let (mut found, mut denied, mut unsupported, mut unavailable) = (0, 0, 0, 0);
    for _ in 0..n {
        match session::lookup_secret(user, kind) {
            Ok(_) => found += 1,
            Err(LookupError::Denied(_)) => denied += 1,
            Err(LookupError::Unsupported) => unsupported += 1,
            Err(LookupError::Unavailable(_)) => unavailable += 1,
        }
    }
    StepResult::Failure(format!(
        "lookups: {n} asked, {found} found, {denied} denied by a checker, \
         {unsupported} unsupported, {unavailable} unavailable"
    ))
}

/// Whether this exchange began with `steal`.
static STEALING: AtomicU32 = AtomicU32::new(0);

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
            Some(b"steal") => {
                STEALING.store(1, Ordering::Relaxed);
                steal()
            }
            Some(other) if other.starts_with(b"lookups:") => {
                lookups(std::str::from_utf8(&other[8..]).unwrap_or("0"))
            }
            _ => panic!("trap-mechanism: deliberate trap"),
        }
    }

    fn step(_response: Vec<u8>) -> StepResult {
        if STEALING.load(Ordering::Relaxed) == 1 {
            return claim_admin();
        }
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

// Only a wasm32 build exports: the WIT export names are not symbols a
// native linker accepts (see the SDK's export macros).
#[cfg(target_arch = "wasm32")]
export!(TrapMechanism);
