//! The echo realm of Twisted Cred's Example 9-1 as a portcullis realm
//! plugin. No configuration.
//!
//! `request-avatar` for the `echo` interface returns an avatar that sends
//! every line back unchanged and never closes the connection; login and
//! logout (the avatar's drop) are logged at info level. The realm offers
//! no message-delivery avatar and answers such requests `unsupported`.

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

/// The reply to one line: the line itself.
fn echo(line: String) -> EchoReply {
    EchoReply {
        lines: vec![line],
        close: false,
    }
}

/// How the log names the avatar's user.
fn who(avatar_id: Option<String>) -> String {
    avatar_id.unwrap_or_else(|| "anonymous".into())
}

/// One logged-in user of the echo service.
struct Echo {
    who: String,
}

impl GuestEchoAvatar for Echo {
    fn line(&self, line: String) -> EchoReply {
        echo(line)
    }
}

impl Drop for Echo {
    /// Dropping the avatar is logout.
    fn drop(&mut self) {
        log(
            LogLevel::Info,
            &format!("avatar for {} logged out", self.who),
        );
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
                let who = who(avatar_id);
                log(LogLevel::Info, &format!("avatar for {who} logged in"));
                Ok(Avatar::Echo(EchoAvatar::new(Echo { who })))
            }
            AvatarInterface::MessageDelivery => Err(Denial::Unsupported),
        }
    }
}

export!(Realm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes() {
        for line in ["hello", "", "  spaced  ", "ünïcode ✓", "QUIT"] {
            let reply = echo(line.into());
            assert_eq!(reply.lines, [line]);
            assert!(!reply.close);
        }
    }

    #[test]
    fn names() {
        assert_eq!(who(Some("alice".into())), "alice");
        assert_eq!(who(None), "anonymous");
    }
}
