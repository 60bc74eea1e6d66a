//! Password fields as the file and SQL checkers store them: [`hash`]
//! checks a password against a field (plain text compared in constant
//! time, or a hash recognised by its prefix), [`scram`] reads or derives
//! SCRAM keys from one. Pure functions, no I/O, so the checkers that read
//! the fields from different places share one implementation.

pub mod hash;
pub mod scram;
