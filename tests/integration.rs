//! The integration tests: one test binary (`--test integration`) whose
//! modules each start the real `portcullis` binary and talk to it, or run
//! it, with the real `.wasm` plugins. One binary rather than one per file
//! so that `common` and the test crate are compiled and linked once.
//!
//! A module is named after what it tries, and after the file it lives in:
//! run one with `cargo test --test integration smtp::`, one test with
//! `cargo test --test integration smtp::auth_plain_accepts_alice`.
//!
//! Tests share this process, and cargo runs them on several threads: a test
//! never changes the process's environment or working directory, and takes
//! every port from the OS (port 0).

mod common;

mod checkers;
mod cli;
mod config;
mod conformance;
mod crash;
mod dovecot;
mod echo;
mod examples;
mod external;
mod faults;
mod fleet;
mod mechanism_clients;
mod mechanisms;
mod penalty_store;
mod proxy;
mod realms;
mod relay;
mod resources;
mod sandbox;
mod smtp;
mod smtp_clients;
mod smtp_integrity;
mod sql;
mod token;
mod unix;
