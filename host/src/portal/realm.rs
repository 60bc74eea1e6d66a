//! The realm's side of the portal: the avatar interfaces a protocol asks
//! for, what it tells the realm about the connection ([`Mind`]), the
//! vocabulary of a delivery avatar's answers, and the two roles, [`Realm`]
//! and [`Avatar`], that a realm implementation (the Wasm one in
//! `plugin::realm`, or an in-memory fake) fills.

use async_trait::async_trait;

use super::{Fault, Verdict};

/// The avatar interface a protocol asks the realm for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AvatarInterface {
    Echo,
    MessageDelivery,
}

impl AvatarInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            AvatarInterface::Echo => "echo",
            AvatarInterface::MessageDelivery => "message-delivery",
        }
    }
}

/// When a protocol needs a login's avatar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AvatarWhen {
    /// With the login: the avatar, or the realm's refusal, is part of it
    /// (echo, whose every line is the avatar's; Dovecot's auth protocol,
    /// whose OK is all the login grants).
    AtLogin,
    /// At its first call: the protocol uses the login only through the
    /// avatar's calls (SMTP's delivery avatar, first called at MAIL FROM).
    /// A realm that [grants every identity](Realm::grants_every_identity)
    /// is asked then, so a session that never calls it never
    /// instantiates the realm; any other realm is asked at login.
    FirstCall,
}

/// What the host tells the realm about the connection.
#[derive(Clone, Debug, Default)]
pub struct Mind {
    pub peer: String,
    pub protocol: &'static str,
    pub mechanism: Option<String>,
    pub secure: bool,
}

/// The realm's answer to one echo line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    pub lines: Vec<String>,
    pub close: bool,
}

/// Why the realm refused a sender, recipient or message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// 5xx when true, 4xx otherwise.
    pub permanent: bool,
    /// One printable line for the client.
    pub text: String,
}

/// What the host knows when a message arrives (RFC 5321 §4.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceivedInfo {
    pub helo: String,
    pub peer_ip: String,
    pub server_name: String,
    pub with_protocol: String,
    pub authenticated_id: Option<String>,
    pub id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub date: String,
}

/// Twisted's `IRealm`: hands out the avatar that acts for an identity.
#[async_trait]
pub trait Realm: Send + Sync {
    /// The implementation's name, for logs and faults.
    fn name(&self) -> &str;

    /// Its settings as the configuration file writes them, for
    /// `check-config` (a Wasm realm's limits).
    fn settings(&self) -> Option<String> {
        None
    }

    /// The operator's word (`defer-avatar`) that this realm gives every
    /// identity an avatar: a protocol that uses a login only through its
    /// avatar's calls may then ask for the avatar at the first call
    /// ([`AvatarWhen::FirstCall`]).
    fn grants_every_identity(&self) -> bool {
        false
    }

    /// The avatar of `avatar_id` (`None`: anonymous) for `interface`. A
    /// denial refuses this identity; a fault (the realm unavailable,
    /// broken or slow) is the realm's trouble, not the client's.
    async fn request_avatar(
        &self,
        avatar_id: Option<&str>,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<Box<dyn Avatar>>;
}

/// A logged-in user's avatar. It serves the one interface it was asked
/// for: the echo avatar answers [`Avatar::echo_line`], the delivery avatar
/// the other calls; the wrong call is a contract fault.
#[async_trait]
pub trait Avatar: Send {
    fn interface(&self) -> AvatarInterface;

    /// The realm's name, for the log.
    fn realm_name(&self) -> &str;

    /// Whether a call failed so that the avatar cannot be used again (the
    /// session asks the realm for a fresh one, or ends).
    fn is_poisoned(&self) -> bool;

    /// One line from an echo client.
    async fn echo_line(&mut self, line: &str) -> Result<EchoReply, Fault>;

    /// May this session send mail from `sender` (empty: the null path)?
    async fn validate_from(
        &mut self,
        helo: &str,
        sender: &str,
    ) -> Result<Result<(), Rejection>, Fault>;

    /// May mail be delivered to `recipient`?
    async fn validate_to(&mut self, recipient: &str) -> Result<Result<(), Rejection>, Fault>;

    /// The realm's own Received header, or `None` for the host's.
    async fn received_header(&mut self, info: &ReceivedInfo) -> Result<Option<String>, Fault>;

    /// Hands over a complete message; `Ok(Ok(()))` means it is safe and the
    /// client may be told so.
    async fn deliver(
        &mut self,
        info: &ReceivedInfo,
        message: &[u8],
    ) -> Result<Result<(), Rejection>, Fault>;

    /// Ends the login (the realm's logout), freeing what the avatar holds.
    async fn logout(self: Box<Self>);
}
