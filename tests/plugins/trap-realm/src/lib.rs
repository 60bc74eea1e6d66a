//! Test fixture: a realm whose avatars misbehave on request, for the
//! host's resource tests (issue 12). Never shipped, never embedded in the
//! host. No configuration.
//!
//! Echo avatars answer by the line: `bomb` with 4,000,000 empty lines
//! (a list whose strings add up to nothing, so only counting its elements
//! bounds it), `many` with 300 lines `line N`, `crlf` with one line that
//! carries a CR LF and a fake echo line after it ([`CRLF_LINE`]);
//! anything else is echoed.
//!
//! The avatar id `sleepy` gets avatars (echo or delivery) whose drop,
//! that is logout, sleeps an hour in WASI's clock, where no wasm runs for
//! an epoch deadline to interrupt. Every other id gets avatars that drop
//! at once. Delivery avatars accept every sender, recipient and message
//! and leave the Received header to the host.
//!
//! The avatar id `broken` gets no avatar: the realm answers `unavailable`,
//! as a realm whose own configuration is broken should (never a denial).

use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, DeliveryAvatar, EchoAvatar, EchoReply, Mind,
    Realm as SdkRealm, ReceivedInfo, Rejection,
};

/// The `broken` user's answer, for the operator's log.
pub const BROKEN: &str = "the realm's store is unreachable";

/// The `crlf` answer: one line with a line break inside it.
pub const CRLF_LINE: &str = "crlf\r\nFORGED-LINE from the realm";

/// The echo avatar's answer to `line`.
fn answer(line: String) -> Vec<String> {
    match line.as_str() {
        "bomb" => vec![String::new(); 4_000_000],
        "many" => (1..=300).map(|n| format!("line {n}")).collect(),
        "crlf" => vec![CRLF_LINE.to_owned()],
        _ => vec![line],
    }
}

/// Logout for a `sleepy` avatar: an hour asleep.
fn logout(sleepy: bool) {
    if sleepy {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

struct Echo {
    sleepy: bool,
}

impl EchoAvatar for Echo {
    fn line(&self, line: String) -> EchoReply {
        EchoReply {
            lines: answer(line),
            close: false,
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        logout(self.sleepy);
    }
}

struct Delivery {
    sleepy: bool,
}

impl DeliveryAvatar for Delivery {
    fn validate_from(&self, _helo: String, _sender: String) -> Result<(), Rejection> {
        Ok(())
    }
    fn validate_to(&self, _recipient: String) -> Result<(), Rejection> {
        Ok(())
    }
    fn deliver(&self, _info: ReceivedInfo, _message: Vec<u8>) -> Result<(), Rejection> {
        Ok(())
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        logout(self.sleepy);
    }
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = Echo;
    type Delivery = Delivery;

    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        if avatar_id.as_deref() == Some("broken") {
            return Err(AvatarError::Unavailable(BROKEN.into()));
        }
        let sleepy = avatar_id.as_deref() == Some("sleepy");
        Ok(match interface {
            AvatarInterface::Echo => Avatar::Echo(Echo { sleepy }),
            AvatarInterface::MessageDelivery => Avatar::MessageDelivery(Delivery { sleepy }),
        })
    }
}

portcullis_sdk::export_realm!(Realm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(answer("bomb".into()).len(), 4_000_000);
        assert!(answer("bomb".into()).iter().all(String::is_empty));
        assert_eq!(answer("many".into()).len(), 300);
        assert_eq!(answer("crlf".into()), [CRLF_LINE]);
        assert_eq!(answer("hello".into()), ["hello"]);
    }
}
