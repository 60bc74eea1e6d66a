//! portcullis: an authentication host in the shape of Twisted Cred, with
//! every piece of authentication logic in a sandboxed WebAssembly component.
//!
//! - [`plugin`]: the wasmtime runtime: one engine, pre-instantiated
//!   plugins, a fresh store per exchange and per avatar.
//! - [`portal`]: the native portal that routes credentials to checkers and
//!   avatar requests to realms.
//! - [`sasl`]: mechanism registry, base64 framing and the exchange driver
//!   shared by every protocol.
//! - [`proto`]: line framing with limits.
//! - [`echo`]: the authenticating echo service (seeds/001, Example 9-1).
//! - [`limits`]: per-client-address limits on connections and exchanges
//!   (Postfix's anvil).
//! - [`logtext`]: escaping of client and plugin text in log lines.
//! - [`metrics`]: Prometheus counters and the opt-in metrics listener.
//! - [`penalty`]: per-address brute-force penalty (Dovecot's).
//! - [`cli`] and [`app`]: the command line, and assembling a server from it.
//! - [`server`]: listeners and connection tasks.
//! - [`smtp`]: the ESMTP service with AUTH, STARTTLS and delivery through
//!   realm avatars.
//! - [`sql`]: named queries granted to checker plugins (SQLite, PostgreSQL).
//! - [`tls`]: rustls configuration, from files or generated.
//! - `bench_native` (feature `bench-native`, off by default): a native
//!   PLAIN and memory checker the benchmark compares the sandbox with.

pub mod app;
#[cfg(feature = "bench-native")]
pub mod bench_native;
pub mod cli;
pub mod echo;
pub mod limits;
pub mod logtext;
pub mod metrics;
pub mod penalty;
pub mod plugin;
pub mod portal;
pub mod proto;
pub mod sasl;
pub mod server;
pub mod services;
pub mod smtp;
pub mod sql;
pub mod tls;
