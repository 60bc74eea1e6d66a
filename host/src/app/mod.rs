//! The application: a [`ServerPlan`](crate::plan::ServerPlan) assembled
//! and run. Start-up, `check-config` and reload share one path: plan (in
//! [`crate::plan`]), then assemble ([`services`], [`assemble`]); a reload
//! re-plans from the same flags and the re-read file.
//!
//! - `assemble`: the engine, TLS and each protocol's configuration.
//! - [`services`]: every plugin loaded and registered in the portal.
//! - `specs`: what the runtime loads for each checker, mechanism and realm.
//! - `run`: bind, drop privileges, serve, drain.
//! - `check`: `check-config`'s summary, without side effects.
//! - `reload`: SIGHUP and the control socket.
//! - `system`: signals, rlimits, users, the control socket's file.
//!
//! Only the binary uses this module; nothing else in the library does.

mod assemble;
mod check;
mod reload;
mod run;
pub mod services;
mod specs;
mod system;

pub use check::check;
pub use reload::send_reload;
pub use run::run;
