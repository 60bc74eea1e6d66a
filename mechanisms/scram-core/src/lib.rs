//! The server side of SCRAM (RFC 5802; SCRAM-SHA-256 in RFC 7677) as pure
//! functions, shared by the `mech-scram-sha-1` and `mech-scram-sha-256`
//! plugins and by the checkers that answer their `lookup-secret`.
//!
//! A plain library, not a plugin (a component exports one mechanism, so
//! each SCRAM variant is its own small plugin crate over this one):
//!
//! - [`algorithm`]: the hash a variant uses, and the keys RFC 5802 §3
//!   derives from a password ([`Keys::derive`], with SASLprep). Checkers
//!   use it to answer lookups for users whose password they know.
//! - [`gs2`]: the GS2 header (`n,,`, `y,,`, `p=…`, `a=authzid`) and
//!   saslname decoding, also used by OAUTHBEARER (RFC 7628 reuses it).
//! - [`message`]: parsers for the client-first and client-final messages,
//!   `&str -> Result<_, Error>`.
//! - [`exchange`]: the exchange as a state machine,
//!   `advance(algorithm, state, call, env) -> (state, outcome)`. The
//!   environment (secret lookup, nonce) is a trait, so tests inject the RFC
//!   vectors' nonces and salts.
//! - `plugin` (feature `sdk`): the mechanism over the plugin SDK, generic
//!   in its variant, which the mechanism crates export.
//!
//! Decisions worth knowing, all in [`exchange`]: no channel binding (we
//! offer no `-PLUS` variant, so `p=` is refused and `y` accepted); an
//! unknown or refused user gets a server-first message with a
//! deterministic salt ([`derived_salt`]) and fails only after the proof, so
//! the exchange does not tell which users exist; a wrong proof ends in
//! failure (the host's failure reply), not in a server-final `e=`, since a
//! mechanism's `failure` carries no data for the client.

pub mod algorithm;
pub mod exchange;
pub mod gs2;
pub mod message;
#[cfg(feature = "sdk")]
pub mod plugin;

pub use algorithm::{Algorithm, DEFAULT_ITERATIONS, Keys, derived_salt};
pub use exchange::{Call, Env, Lookup, Outcome, State, Verified, advance, random_nonce};
