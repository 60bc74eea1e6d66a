//! The mechanism's side of the portal: what the SASL driver needs from a
//! mechanism implementation (the Wasm one in `plugin::mechanism`, the
//! benchmark's native PLAIN, or a fake in a test). A mechanism produces
//! challenges and, at the end, credentials; it never decides who the user
//! is: the portal's checkers do.

use std::sync::Arc;

use async_trait::async_trait;

use super::{CredentialKind, Credentials, Fault, SecretSource};

/// What the transport knows, handed to a mechanism for one exchange.
#[derive(Clone, Debug, Default)]
pub struct ChannelInfo {
    /// The server's host name.
    pub server_name: String,
    /// Whether the transport is encrypted.
    pub secure: bool,
    /// The identity a verified TLS client certificate established.
    pub external_identity: Option<String>,
    /// The client's address, `ip:port`.
    pub peer: String,
}

/// What a mechanism says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechanismInfo {
    pub name: String,
    pub plaintext: bool,
    pub kinds: Vec<CredentialKind>,
}

/// One step of an exchange, as the host sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Challenge(Vec<u8>),
    Success {
        credentials: Credentials,
        additional_data: Option<Vec<u8>>,
    },
    /// The mechanism ended the exchange; the text is for the log.
    Failure(String),
}

/// A loaded mechanism: starts exchanges.
#[async_trait]
pub trait Mechanism: Send + Sync {
    /// The implementation's name (the plugin's), for logs and faults.
    fn name(&self) -> &str;

    /// What the mechanism says about itself; asked once, at registration.
    async fn info(&self) -> Result<MechanismInfo, Fault>;

    /// Begins an exchange on `channel`. `declared` are the kinds its info
    /// named: the only ones it may look up in `secrets`.
    async fn exchange(
        &self,
        secrets: Arc<dyn SecretSource>,
        channel: ChannelInfo,
        declared: &[CredentialKind],
    ) -> Result<Box<dyn Exchange>, Fault>;
}

/// One exchange in progress. Dropping it frees what it holds.
#[async_trait]
pub trait Exchange: Send {
    /// The client's first message (`None`: no initial response).
    async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Step, Fault>;

    /// A later client message.
    async fn step(&mut self, response: &[u8]) -> Result<Step, Fault>;

    /// The error challenge to send after a denial, if the mechanism has one.
    async fn denied(&mut self) -> Result<Option<Vec<u8>>, Fault>;

    /// The avatar id a checker vouched for when it handed this exchange
    /// `username`'s secret of `kind`.
    fn vouched_avatar(&self, username: &str, kind: CredentialKind) -> Option<String>;
}
