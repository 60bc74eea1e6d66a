//! Dovecot's auth protocol, server side (version 1.2, as Dovecot 2.3
//! speaks it): Postfix (`smtpd_sasl_type = dovecot`) and Exim (`driver =
//! dovecot`) hand their clients' SASL exchanges to portcullis over it, and
//! the same portal, mechanisms, checkers, realm, penalty and limits decide
//! as for SMTP AUTH.
//!
//! The peers are MTAs, trusted to report their client's address (`rip`):
//! the penalty and the per-address limits count by that address. A TCP
//! listener serves only peers in `[dovecot] trusted-networks` (loopback
//! unless set); a UNIX socket is guarded by its mode and owner.
//!
//! How each outcome reaches the MTA:
//! - success: `OK id user=NAME`, where NAME is the identity the checker
//!   established. The realm that serves message delivery is asked for the
//!   avatar, so it can still refuse the login; the MTA delivers itself, so
//!   the avatar is logged out at once.
//! - denial: `FAIL id reason=…` after the failure delay and the address's
//!   penalty, together at most [`MAX_FAIL_DELAY`] (Postfix waits 10 s for
//!   a reply before it gives up with a 454). The MTA answers 535.
//! - a plugin fault: the connection is closed without a reply. Both MTAs
//!   answer a lost connection with a temporary failure (454), where a
//!   `FAIL` would be a 535 at Postfix whatever it carried.

mod connection;
mod listener;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

pub use connection::PeerInfo;
pub use connection::serve;
pub use listener::{UnixSocket, bind_unix, connection_cap, serve_tcp, serve_unix};

use crate::limits::ClientLimits;
use crate::penalty::{Network, Penalty};
use crate::services::Live;
use crate::smtp::TlsOnly;

/// The longest pause before a `FAIL`, failure delay and penalty together.
pub const MAX_FAIL_DELAY: Duration = Duration::from_secs(5);

/// Settings shared by every connection of the auth service.
pub struct DovecotConfig {
    /// The plugins, replaced as a whole by a reload.
    pub services: Arc<Live>,
    pub server_name: String,
    /// When plaintext mechanisms need `secured` (the MTA's client is on
    /// TLS); `auto` also allows them for clients on loopback.
    pub tls_only: TlsOnly,
    pub failure_delay: Duration,
    /// Failed logins per client address (the `rip`), shared with SMTP.
    pub penalty: Arc<Penalty>,
    /// Exchanges in flight per client address (the `rip`), shared with
    /// SMTP.
    pub clients: Arc<ClientLimits>,
    /// How long an exchange waits for the MTA's next `CONT`.
    pub step_timeout: Duration,
    /// Requests in flight on one connection (Postfix and Exim have one).
    pub max_requests: usize,
    /// Longest line accepted, in bytes.
    pub max_line: usize,
    /// Connections at once, every listener of the service together.
    pub max_connections: usize,
    /// Peers a TCP listener serves.
    pub trusted_networks: Vec<Network>,
}

impl DovecotConfig {
    pub fn new(services: Arc<Live>) -> DovecotConfig {
        DovecotConfig {
            services,
            server_name: "localhost".into(),
            tls_only: TlsOnly::Auto,
            failure_delay: Duration::ZERO,
            penalty: Arc::new(Penalty::new(Duration::ZERO, Duration::ZERO, Vec::new())),
            clients: ClientLimits::unlimited(),
            step_timeout: Duration::from_secs(20),
            max_requests: 32,
            // A SASL response of 12288 octets is 16 KiB of base64; the
            // parameters before it are a few hundred bytes.
            max_line: 17 << 10,
            max_connections: 1024,
            trusted_networks: default_trusted(),
        }
    }
}

/// Loopback, both families.
pub fn default_trusted() -> Vec<Network> {
    ["127.0.0.0/8", "::1"]
        .iter()
        .map(|n| n.parse().expect("a valid network"))
        .collect()
}

/// The flags a mechanism carries in the handshake, after Dovecot's own
/// (`mech-*.c`): Postfix's `smtpd_sasl_security_options` filters on them.
pub fn mechanism_flags(name: &str, plaintext: bool, anonymous: bool) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if anonymous {
        flags.push("anonymous");
    }
    if plaintext {
        flags.push("plaintext");
    }
    if name == "CRAM-MD5" || name == "DIGEST-MD5" {
        flags.extend(["dictionary", "active"]);
    }
    if name.starts_with("SCRAM-") {
        flags.push("mutual-auth");
    }
    flags
}
