//! The echo realm of Twisted Cred's Example 9-1 as a portcullis realm
//! plugin: the echo avatar sends every line back. It offers no
//! message-delivery avatar. No configuration.

use exports::portcullis::auth::realm::{
    Avatar, AvatarInterface, EchoAvatar, EchoReply, Guest, GuestDeliveryAvatar, GuestEchoAvatar,
    Mind, ReceivedInfo, Rejection,
};
use portcullis::auth::host::log;
use portcullis::auth::types::{Denial, LogLevel};

wit_bindgen::generate!({
    path: "../../wit",
    world: "realm-plugin",
});

struct Echo {
    who: String,
}

impl GuestEchoAvatar for Echo {
    fn line(&self, line: String) -> EchoReply {
        EchoReply {
            lines: vec![line],
            close: false,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        log(LogLevel::Debug, &format!("{} logged out", self.who));
    }
}

/// This realm has no delivery avatar: the type has no values.
enum NoDelivery {}

impl GuestDeliveryAvatar for NoDelivery {
    fn validate_from(&self, _helo: String, _sender: String) -> Result<(), Rejection> {
        match *self {}
    }
    fn validate_to(&self, _recipient: String) -> Result<(), Rejection> {
        match *self {}
    }
    fn received_header(&self, _info: ReceivedInfo) -> Option<String> {
        match *self {}
    }
    fn deliver(&self, _info: ReceivedInfo, _message: Vec<u8>) -> Result<(), Rejection> {
        match *self {}
    }
}

struct Realm;

impl Guest for Realm {
    type EchoAvatar = Echo;
    type DeliveryAvatar = NoDelivery;

    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar, Denial> {
        match interface {
            AvatarInterface::Echo => {
                let who = avatar_id.unwrap_or_else(|| "anonymous".into());
                log(LogLevel::Debug, &format!("echo avatar for {who} logged in"));
                Ok(Avatar::Echo(EchoAvatar::new(Echo { who })))
            }
            AvatarInterface::MessageDelivery => Err(Denial::Unsupported),
        }
    }
}

export!(Realm);
