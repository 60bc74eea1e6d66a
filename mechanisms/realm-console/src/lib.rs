//! The console realm of the Twisted mail example (seeds/000) as a portcullis
//! realm plugin: only mail to `console@…` is accepted, and each message is
//! printed to the host's standard output (the host grants this plugin its
//! stdout). It offers no echo avatar. No configuration.

use std::io::Write;

use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, DeliveryAvatar, Mind, NoAvatar, Realm as SdkRealm,
    ReceivedInfo, Rejection,
};
use portcullis_sdk::types::Denial;

/// Whether a recipient is the console user: local part `console`, any
/// domain, ASCII case-insensitive.
fn is_console(recipient: &str) -> bool {
    recipient
        .rsplit_once('@')
        .is_some_and(|(local, _)| local.eq_ignore_ascii_case("console"))
}

struct Console;

impl DeliveryAvatar for Console {
    fn validate_from(&self, _helo: String, _sender: String) -> Result<(), Rejection> {
        Ok(())
    }

    fn validate_to(&self, recipient: String) -> Result<(), Rejection> {
        if is_console(&recipient) {
            Ok(())
        } else {
            Err(Rejection {
                permanent: true,
                text: "Only mail to console@ is accepted here".into(),
            })
        }
    }

    fn received_header(&self, _info: ReceivedInfo) -> Option<String> {
        None
    }

    fn deliver(&self, info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection> {
        let mut out = std::io::stdout().lock();
        let written = writeln!(
            out,
            "New message received (id {}, from <{}>):",
            info.id, info.sender
        )
        .and_then(|()| out.write_all(&message))
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
        written.map_err(|e| Rejection {
            permanent: false,
            text: format!("cannot print the message: {e}"),
        })
    }
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = NoAvatar;
    type Delivery = Console;

    fn request_avatar(
        _avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        match interface {
            AvatarInterface::MessageDelivery => Ok(Avatar::MessageDelivery(Console)),
            AvatarInterface::Echo => Err(Denial::Unsupported.into()),
        }
    }
}

portcullis_sdk::export_realm!(Realm);

#[cfg(test)]
mod tests {
    use super::is_console;

    #[test]
    fn console_recipients() {
        for (rcpt, want) in [
            ("console@example.com", true),
            ("Console@localhost", true),
            ("consoles@example.com", false),
            ("bob@example.com", false),
            ("console", false),
        ] {
            assert_eq!(is_console(rcpt), want, "{rcpt}");
        }
    }
}
