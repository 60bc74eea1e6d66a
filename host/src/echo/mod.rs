//! The authenticating echo service of Twisted Cred's Example 9-1.
//!
//! The first line is `user pass` (or a SASL exchange, `AUTH MECH
//! [initial-response]`); after a successful login every line goes to the
//! echo avatar, which sends it back.

pub mod codec;
pub mod replies;
pub mod session;

pub use session::{EchoConfig, serve};
