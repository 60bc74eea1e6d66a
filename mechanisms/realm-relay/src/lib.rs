//! Relay delivery as a portcullis realm plugin: each message goes to the
//! operator's MTA through a next hop the operator granted (the host's
//! `relay` import), so that portcullis can be the submission server in
//! front of Postfix. What `[[realm]] builtin = "relay"` loads.
//!
//! Configuration (JSON, defaults shown):
//!
//! ```json
//! {"hop": "next-hop", "allow-anonymous": false}
//! ```
//!
//! - `hop`: the name of the granted next hop.
//! - `allow-anonymous`: give an avatar to an unauthenticated session too
//!   (off: only logged-in users may send through this realm).
//!
//! The next hop decides: MAIL FROM goes to it at `validate-from`, each
//! RCPT TO at `validate-to`, the message at `deliver`, and each of its
//! answers becomes this realm's: 2xx accepted, 4xx a temporary refusal,
//! 5xx a permanent one. A next hop the host could not reach or that timed
//! out is a temporary refusal, so the client hears 250 only when the next
//! hop said 250 to the final dot. After DATA every reply must be 2xx for
//! the message to be accepted; through LMTP the host lets one recipient
//! into each transaction, so there is only one. The Received header is the
//! host's (it names the client's address and login); the host also passes
//! them with XCLIENT where the next hop allows it. No echo avatar.

use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, DeliveryAvatar, Mind, NoAvatar, Realm as SdkRealm,
    ReceivedInfo, Rejection,
};
use portcullis_sdk::relay::{self, RelayError, Reply};
use portcullis_sdk::types::{Denial, LogLevel};

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_hop")]
    hop: String,
    #[serde(default)]
    allow_anonymous: bool,
}

fn default_hop() -> String {
    "next-hop".into()
}

struct Relay {
    hop: String,
}

/// The next hop's text without its enhanced status code (the host puts
/// its own in front).
fn text_of(reply: &Reply) -> String {
    let text = reply.text.trim();
    let mut words = text.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    let enhanced = first.split('.').count() == 3
        && first
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
    if enhanced {
        words.next().unwrap_or("").trim().to_owned()
    } else {
        text.to_owned()
    }
}

/// A next hop's answer as this realm's.
fn answer(reply: &Reply) -> Result<(), Rejection> {
    match reply.code {
        200..=399 => Ok(()),
        code => Err(Rejection {
            permanent: code >= 500,
            text: format!("Next hop: {}", text_of(reply)),
        }),
    }
}

/// A command that could not be carried out: try again later.
fn trouble(error: RelayError, call: &str) -> Rejection {
    let (level, why) = match &error {
        RelayError::UnknownHop(t) => (LogLevel::Error, t.as_str()),
        RelayError::Unavailable(t) => (LogLevel::Warn, t.as_str()),
        RelayError::NoTransaction => (LogLevel::Warn, "no transaction open at the next hop"),
    };
    portcullis_sdk::host::log(level, &format!("{call}: {why}"));
    Rejection {
        permanent: false,
        text: "Next hop unavailable, try again later".into(),
    }
}

impl DeliveryAvatar for Relay {
    fn validate_from(&self, _helo: String, sender: String) -> Result<(), Rejection> {
        match relay::mail(&self.hop, &sender) {
            Ok(reply) => answer(&reply),
            Err(e) => Err(trouble(e, "MAIL")),
        }
    }

    fn validate_to(&self, recipient: String) -> Result<(), Rejection> {
        match relay::rcpt(&recipient) {
            Ok(reply) => answer(&reply),
            Err(e) => Err(trouble(e, "RCPT")),
        }
    }

    fn deliver(&self, _info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection> {
        let replies = match relay::data(&message) {
            Ok(replies) => replies,
            Err(e) => return Err(trouble(e, "DATA")),
        };
        for r in replies.iter().filter(|r| answer(r).is_err()) {
            portcullis_sdk::host::log(
                LogLevel::Error,
                &format!("next hop refused after the dot: {} {}", r.code, r.text),
            );
        }
        outcome(&replies)
    }
}

/// The one answer for the client from the replies to the final dot: ok
/// when all accepted. None accepted: the first refusal. Some accepted and
/// some not (which one recipient per LMTP transaction rules out): ok, as
/// the message is stored for some recipients and any failure now would
/// make the client send it to them again (`deliver` logs the refused
/// ones).
fn outcome(replies: &[Reply]) -> Result<(), Rejection> {
    let refused: Vec<&Reply> = replies.iter().filter(|r| answer(r).is_err()).collect();
    match refused.first() {
        None if !replies.is_empty() => Ok(()),
        None => Err(Rejection {
            permanent: false,
            text: "Next hop gave no answer".into(),
        }),
        Some(first) if refused.len() == replies.len() => answer(first),
        Some(_) => Ok(()),
    }
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = NoAvatar;
    type Delivery = Relay;

    fn request_avatar(
        avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        if !matches!(interface, AvatarInterface::MessageDelivery) {
            return Err(Denial::Unsupported.into());
        }
        let config: Config = serde_json::from_str(&portcullis_sdk::host::config())
            .map_err(|e| AvatarError::Unavailable(format!("bad configuration: {e}")))?;
        if avatar_id.is_none() && !config.allow_anonymous {
            return Err(Denial::NotAuthorized.into());
        }
        Ok(Avatar::MessageDelivery(Relay { hop: config.hop }))
    }
}

portcullis_sdk::export_realm!(Realm);

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    #[test]
    fn answers() {
        assert!(answer(&reply(250, "2.1.0 Ok")).is_ok());
        let r = answer(&reply(450, "4.2.0 <a@b>: try later")).unwrap_err();
        assert!(!r.permanent);
        assert_eq!(r.text, "Next hop: <a@b>: try later");
        let r = answer(&reply(550, "no such user")).unwrap_err();
        assert!(r.permanent);
        assert_eq!(r.text, "Next hop: no such user");
    }

    #[test]
    fn outcomes() {
        assert!(outcome(&[reply(250, "ok")]).is_ok());
        assert!(outcome(&[reply(250, "ok"), reply(250, "ok")]).is_ok());
        assert!(!outcome(&[]).unwrap_err().permanent);
        assert!(outcome(&[reply(554, "no")]).unwrap_err().permanent);
        assert!(
            !outcome(&[reply(451, "later"), reply(554, "no")])
                .unwrap_err()
                .permanent
        );
        // Stored for one: never a failure that makes the client resend.
        assert!(outcome(&[reply(250, "ok"), reply(452, "full")]).is_ok());
    }
}
