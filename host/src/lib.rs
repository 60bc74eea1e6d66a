//! portcullis: an authentication host in the shape of Twisted Cred, with
//! every piece of authentication logic in a sandboxed WebAssembly component.
//!
//! The dependency direction is protocols ([`smtp`], [`echo`]) → [`sasl`] →
//! [`portal`] ← [`plugin`]: the portal defines the roles, the plugin
//! runtime implements them, and neither protocols nor SASL know how.
//!
//! - [`portal`]: the native portal (Twisted's `Portal`) and the roles it
//!   routes to, as traits: `Checker`, `SecretSource`, `Realm`, `Avatar`,
//!   `Mechanism`, `Exchange`; `Portal::login` from a proof to an avatar.
//! - [`plugin`]: the Wasm implementations of those roles over the
//!   wasmtime runtime: one engine, pre-instantiated plugins, a fresh store
//!   per exchange and per avatar.
//! - [`sasl`]: mechanism registry, base64 framing, the authenticator, and
//!   `sasl::line`: one SASL exchange over lines, which every protocol
//!   drives and maps to its own replies.
//! - [`proto`]: line framing with limits.
//! - [`echo`]: the authenticating echo service (seeds/001, Example 9-1).
//! - [`limits`]: per-client-address limits on connections and exchanges
//!   (Postfix's anvil).
//! - [`logtext`]: escaping of client and plugin text in log lines.
//! - [`metrics`]: Prometheus counters and the opt-in metrics listener.
//! - [`penalty`]: the brute-force penalty (Dovecot's), per address and
//!   user name, counted in-process or in a shared Redis/Valkey store.
//! - [`proxy`]: the PROXY protocol header a trusted load balancer sends.
//! - [`cli`]: the command line: flags, `--auth`, plugin arguments, the
//!   `password`, `plugin inspect` and `plugin test` tools.
//! - [`config`]: the configuration file, one module per section.
//! - [`plan`]: flags over the file, as one typed [`plan::ServerPlan`] with
//!   each setting's origin; pure.
//! - [`app`]: the plan assembled (plugins, portal, TLS, listeners), run and
//!   reloaded; used by the binary only, nothing in the library imports it.
//! - [`services`]: the services sessions authenticate with, and the live
//!   set a reload replaces.
//! - [`server`]: listeners and connection tasks.
//! - [`smtp`]: the ESMTP service with AUTH, STARTTLS and delivery through
//!   realm avatars: a state machine (`smtp::state`) and the connection
//!   that performs its effects.
//! - [`sql`]: named queries granted to checker plugins (SQLite, PostgreSQL).
//! - [`keyed_file`]: lines of granted files found by key, through an index
//!   the host keeps per file version (password files, passwd, shadow).
//! - [`password_hash`]: slow password hashes verified natively for checker
//!   plugins, within caps set before the work starts.
//! - [`tls`]: rustls configuration, from files or generated.
//! - `bench_native` (feature `bench-native`, off by default): a native
//!   PLAIN and memory checker the benchmark compares the sandbox with.

pub mod app;
#[cfg(feature = "bench-native")]
pub mod bench_native;
pub mod cli;
pub mod config;
pub mod dovecot;
pub mod echo;
pub mod fair;
pub mod keyed_file;
pub mod limits;
pub mod logtext;
pub mod metrics;
pub mod password_hash;
pub mod penalty;
pub mod plan;
pub mod plugin;
pub mod portal;
pub mod proto;
pub mod proxy;
pub mod relay;
pub mod sasl;
pub mod server;
pub mod services;
pub mod smtp;
pub mod sql;
pub mod tls;
