//! What an SMTP listener is configured with: the shared settings, the
//! operator's AUTH policy and the limits on one session.

use std::sync::Arc;
use std::time::Duration;

use super::data::BareNewline;
use crate::tls::Tls;

/// Settings shared by every SMTP connection.
pub struct SmtpConfig {
    /// The plugins, replaced as a whole by a reload.
    pub services: Arc<crate::services::Live>,
    pub server_name: String,
    /// Offered as STARTTLS, and used by implicit-TLS listeners.
    pub tls: Option<Tls>,
    pub policy: AuthPolicy,
    pub limits: SessionLimits,
    /// Failed logins per client address, shared with the echo service.
    pub penalty: Arc<crate::penalty::Penalty>,
    /// Exchanges in flight per client address, shared with echo.
    pub clients: Arc<crate::limits::ClientLimits>,
    /// How long an AUTH exchange waits for the client's next response.
    pub step_timeout: Duration,
}

/// The operator's AUTH switches.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// MAIL, RCPT and DATA need a successful AUTH first (530 5.7.0).
    pub required: bool,
    /// When plaintext mechanisms (PLAIN, LOGIN) need TLS.
    pub tls_only: TlsOnly,
    /// Pause before each 535, to slow down guessing.
    pub failure_delay: Duration,
    /// Failed AUTHs tolerated per connection; then 421 and close.
    pub max_failures: u32,
}

/// When plaintext mechanisms are withheld until the connection is
/// encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsOnly {
    /// Over TLS only, except for clients on loopback.
    Auto,
    /// Always over TLS only.
    Yes,
    /// Allowed in the clear.
    No,
}

impl std::str::FromStr for TlsOnly {
    type Err = ();

    /// The spelling of the command line and the file: `auto`, `yes`, `no`.
    fn from_str(word: &str) -> Result<TlsOnly, ()> {
        match word {
            "auto" => Ok(TlsOnly::Auto),
            "yes" => Ok(TlsOnly::Yes),
            "no" => Ok(TlsOnly::No),
            _ => Err(()),
        }
    }
}

/// Sizes and times that bound one session.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Longest command line other than AUTH, without CRLF.
    pub max_command_line: usize,
    /// Longest AUTH command or SASL response line: RFC 4954's 12288
    /// octets, after base64.
    pub max_auth_line: usize,
    /// Longest line of message text, without CRLF (RFC 5321 §4.5.3.1.6).
    pub max_text_line: usize,
    pub idle_timeout: Duration,
    /// The longest a whole session may last.
    pub session_timeout: Duration,
    /// Bad commands tolerated before the connection is closed.
    pub max_errors: u32,
    /// What a bare CR or LF in message text does.
    pub bare_newline: BareNewline,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_size: 10 << 20,
            max_recipients: 100,
            max_command_line: 2048,
            max_auth_line: 16 << 10,
            max_text_line: 998,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(1800),
            max_errors: 10,
            bare_newline: BareNewline::Normalize,
        }
    }
}
