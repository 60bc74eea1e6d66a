//! An avatar asked of its realm at its first call instead of at login.
//!
//! A login the protocol uses only through the avatar's calls (SMTP: the
//! delivery avatar, first called at MAIL FROM) need not hold one before
//! then, when the realm gives every identity an avatar anyway
//! ([`Realm::grants_every_identity`]): a session that authenticates and
//! sends nothing never instantiates the realm, and holds no avatar slot.
//! The realm is asked with the login's identity and mind, exactly as it
//! would have been at login, only later. A refusal then breaks the
//! realm's promise: it is a contract fault, which the protocol answers
//! like any realm fault (SMTP: 451 at MAIL FROM).

use std::sync::Arc;

use async_trait::async_trait;

use super::realm::{Avatar, AvatarInterface, EchoReply, Mind, Realm, ReceivedInfo, Rejection};
use super::{Fault, FaultKind};

/// A login's avatar, not asked for yet.
pub struct Deferred {
    realm: Arc<dyn Realm>,
    avatar_id: Option<String>,
    interface: AvatarInterface,
    mind: Mind,
    avatar: Option<Box<dyn Avatar>>,
}

impl Deferred {
    pub fn new(
        realm: Arc<dyn Realm>,
        avatar_id: Option<String>,
        interface: AvatarInterface,
        mind: Mind,
    ) -> Deferred {
        Deferred {
            realm,
            avatar_id,
            interface,
            mind,
            avatar: None,
        }
    }

    /// The realm's avatar, asked for now if it was not yet.
    async fn avatar(&mut self) -> Result<&mut Box<dyn Avatar>, Fault> {
        let avatar = match self.avatar.take() {
            Some(avatar) => avatar,
            None => self.request().await?,
        };
        Ok(self.avatar.insert(avatar))
    }

    /// Asks the realm, as the login would have; a denial breaks its word.
    /// (`&mut`: a shared borrow held across the await would need the
    /// avatar to be `Sync`.)
    async fn request(&mut self) -> Result<Box<dyn Avatar>, Fault> {
        let answer = self
            .realm
            .request_avatar(self.avatar_id.as_deref(), self.interface, &self.mind)
            .await?;
        answer.map_err(|denial| {
            Fault::new(
                self.realm.name(),
                FaultKind::Contract,
                format!(
                    "refused the {} avatar it was to grant every identity (defer-avatar): \
                     {denial}",
                    self.interface.as_str()
                ),
            )
        })
    }
}

#[async_trait]
impl Avatar for Deferred {
    fn interface(&self) -> AvatarInterface {
        self.interface
    }

    fn realm_name(&self) -> &str {
        self.realm.name()
    }

    fn is_poisoned(&self) -> bool {
        self.avatar.as_ref().is_some_and(|a| a.is_poisoned())
    }

    async fn echo_line(&mut self, line: &str) -> Result<EchoReply, Fault> {
        self.avatar().await?.echo_line(line).await
    }

    async fn validate_from(
        &mut self,
        helo: &str,
        sender: &str,
    ) -> Result<Result<(), Rejection>, Fault> {
        self.avatar().await?.validate_from(helo, sender).await
    }

    async fn validate_to(&mut self, recipient: &str) -> Result<Result<(), Rejection>, Fault> {
        self.avatar().await?.validate_to(recipient).await
    }

    async fn received_header(&mut self, info: &ReceivedInfo) -> Result<Option<String>, Fault> {
        self.avatar().await?.received_header(info).await
    }

    async fn deliver(
        &mut self,
        info: &ReceivedInfo,
        message: &[u8],
    ) -> Result<Result<(), Rejection>, Fault> {
        self.avatar().await?.deliver(info, message).await
    }

    /// Logs out the realm's avatar, if it was ever asked for.
    async fn logout(self: Box<Self>) {
        if let Some(avatar) = self.avatar {
            avatar.logout().await;
        }
    }
}
