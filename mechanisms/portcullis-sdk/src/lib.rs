//! Write [portcullis](../../README.md) plugins in Rust without touching the
//! WIT bindings: implement a small trait and export it with one macro.
//!
//! | a plugin that is… | implements | exports with |
//! | --- | --- | --- |
//! | a SASL mechanism | [`Mechanism`] (or [`OneMessage`] for the common `[initial response]` shape) | [`export_mechanism!`] |
//! | a credentials checker | [`Checker`] | [`export_checker!`] |
//! | a realm | [`Realm`] with [`EchoAvatar`] / [`DeliveryAvatar`] | [`export_realm!`] |
//!
//! ```ignore
//! use portcullis_sdk::mechanism::{MechanismInfo, OneMessage, Step};
//! use portcullis_sdk::types::{CredentialKind, Credentials, UsernamePassword};
//!
//! struct Shout;
//!
//! impl OneMessage for Shout {
//!     fn info() -> MechanismInfo {
//!         MechanismInfo::new("X-SHOUT", [CredentialKind::UsernamePassword]).plaintext()
//!     }
//!     fn finish(message: &[u8]) -> Step {
//!         match std::str::from_utf8(message).ok().and_then(|m| m.split_once(' ')) {
//!             Some((user, password)) => Step::success(Credentials::UsernamePassword(UsernamePassword {
//!                 authzid: None,
//!                 username: user.into(),
//!                 password: password.into(),
//!             })),
//!             None => Step::failure("expected `user password`"),
//!         }
//!     }
//! }
//!
//! portcullis_sdk::export_mechanism!(portcullis_sdk::mechanism::OneMessageMechanism<Shout>);
//! ```
//!
//! The crate is built as a `cdylib` for `wasm32-wasip2`; see `PLUGINS.md`
//! at the top of the repository for the whole path from `cargo new` to a
//! loaded plugin.
//!
//! # What the SDK enforces
//!
//! The host checks every answer it gets, but a plugin that breaks the
//! contract is a faulty plugin. The SDK keeps the contract for you:
//!
//! - a mechanism's `start` runs once, first; `step` only after a
//!   challenge; after success or failure every further call fails
//!   ([`mechanism`]);
//! - a checker is handed only credentials of the kinds it declared, and
//!   asked `lookup-secret` only for those: anything else is denied
//!   `unsupported` before your code runs ([`checker`]);
//! - a realm's avatars are dropped at logout, so `Drop` is your logout hook
//!   ([`realm`]).
//!
//! # Modules
//!
//! - [`types`]: the vocabulary (credentials, kinds, denials, secrets).
//! - [`host`]: the plugin's configuration and the host's log, for every plugin.
//! - [`session`]: what a mechanism may ask mid-exchange (stored secrets, TLS).
//! - [`sql`]: the named queries an operator granted a checker.
//! - [`keyed_file`]: lines of a granted file found by key, through the
//!   host's index (password files at any size).
//! - [`password_hash`]: slow password hashes verified natively by the host.
//! - [`mechanism`], [`checker`], [`realm`]: the traits.
//!
//! Host imports are plain functions; calling one outside `wasm32` (in a
//! native unit test) panics, so keep the logic you unit-test pure.

extern crate self as portcullis_sdk;

#[doc(hidden)]
pub mod bindings;
pub mod checker;
pub mod host;
pub mod mechanism;
pub mod realm;

#[doc(hidden)]
pub use bindings as __bindings;
#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use checker::{Checker, SecretAnswer, Verdict};
pub use mechanism::{Mechanism, MechanismInfo, OneMessage, OneMessageMechanism, Step};
pub use realm::{DeliveryAvatar, EchoAvatar, Realm};

/// The types shared by mechanisms, checkers, realms and the host
/// (`interface types` in `wit/types.wit`).
pub mod types {
    pub use crate::bindings::mechanism::portcullis::auth::types::*;
}

/// What a mechanism may ask of the host during one exchange (`interface
/// session`). Only mechanisms may call these.
pub mod session {
    pub use crate::bindings::mechanism::portcullis::auth::session::*;
}

/// The next hops the operator granted a delivery realm (`interface
/// relay`). Only realms may call it; a realm that never does asks for no
/// next hop.
pub mod relay {
    pub use crate::bindings::realm::portcullis::auth::relay::*;
}

/// The named, parameterised queries the operator granted a checker
/// (`interface sql`): `query(name, params)` returns rows of [`Value`]s.
/// Only checkers may call it; a checker that never does asks for no SQL
/// grant.
///
/// [`Value`]: sql::Value
pub mod sql {
    pub use crate::bindings::checker::portcullis::auth::sql::*;
}

/// Slow password hashes (Argon2, bcrypt, SHA-crypt) verified natively by
/// the host (`interface password-hash` in `wit/password-hash.wit`):
/// `verify(password, stored)` answers whether they match, or why the host
/// would not verify it (then verify it yourself, under your own limits).
/// Only checkers may call it.
pub mod password_hash {
    pub use crate::bindings::checker::portcullis::auth::password_hash::*;
}

pub mod keyed_file;
