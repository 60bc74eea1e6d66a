//! Password fields as the file and SQL checkers store them: [`hash`]
//! checks a password against a field (plain text compared in constant
//! time, or a hash recognised by its prefix), [`scram`] reads or derives
//! SCRAM keys from one, [`cost`] reads a slow hash's work parameters. Pure
//! functions, no I/O, so the checkers that read the fields from different
//! places, and the host that verifies slow hashes for them, share one
//! implementation. With the `sdk` feature, [`hash::verify_via_host`] hands
//! slow hashes to the host's native verifier when run as a plugin.

pub mod cost;
pub mod hash;
pub mod scram;
