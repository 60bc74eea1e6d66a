//! The sockets the server listens on, and what each speaks.

use std::net::SocketAddr;

use serde::Deserialize;

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Smtp,
    Echo,
    /// Dovecot's auth protocol, for MTAs that delegate SASL.
    Dovecot,
}

impl Protocol {
    /// The file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Echo => "echo",
            Protocol::Dovecot => "dovecot",
        }
    }
}

/// How a listener uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerTls {
    /// SMTP offers STARTTLS (the default for SMTP).
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
    /// No TLS at all (the only choice for echo).
    None,
}

impl ListenerTls {
    /// The file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerTls::Starttls => "starttls",
            ListenerTls::Implicit => "implicit",
            ListenerTls::None => "none",
        }
    }
}

/// One socket the server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub protocol: Protocol,
    pub address: SocketAddr,
    pub tls: ListenerTls,
    /// Every connection starts with a PROXY protocol header (v1 or v2)
    /// from one of `proxy-trusted-networks`.
    pub proxy_protocol: bool,
}

impl Listener {
    /// What the listener serves, for messages.
    pub fn describe(&self) -> &'static str {
        match (self.protocol, self.tls) {
            (Protocol::Echo, _) => "the echo service",
            (Protocol::Dovecot, _) => "the Dovecot auth protocol",
            (Protocol::Smtp, ListenerTls::Implicit) => "SMTP with implicit TLS",
            (Protocol::Smtp, _) => "SMTP",
        }
    }
}
