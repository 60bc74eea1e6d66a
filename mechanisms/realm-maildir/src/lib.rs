//! A delivery realm that stores each accepted message in a Maildir per
//! recipient (<https://cr.yp.to/proto/maildir.html>), the way Twisted's
//! `MaildirMessageWriter` does. It offers no echo avatar.
//!
//! Configuration (JSON; every field optional, defaults shown):
//!
//! ```json
//! {"spool": "/spool", "domains": ["example.com"], "create": true,
//!  "hostname": "portcullis"}
//! ```
//!
//! - `spool`: the guest path of the spool folder. The operator grants it
//!   writable (`grant-rw=HOSTDIR@/spool`); the realm can touch nothing else.
//!   Each user's Maildir is `spool/<user>/` with `tmp/`, `new/` and `cur/`.
//! - `domains`: the recipient domains accepted, compared ASCII
//!   case-insensitively. Absent: any domain. An empty list is refused as a
//!   configuration error (it would refuse every recipient).
//! - `create`: `true` creates a user's Maildir on first delivery; `false`
//!   makes only existing `spool/<user>/` folders valid recipients (`tmp/`,
//!   `new/` and `cur/` inside them are still created as needed).
//! - `hostname`: the host part of the Maildir file names (`/` and `:` are
//!   escaped as the spec says). Must be non-empty, without control
//!   characters.
//!
//! Recipients are `local@domain`; the user is the local part in lower case
//! and must be a safe folder name (see [`address`]). `validate-to` applies
//! every rule, including "the folder exists" when `create` is false, so a
//! refused recipient is refused at RCPT time with a permanent rejection.
//!
//! `deliver` writes the message (which already carries the Received header;
//! `received-header` returns `none`) once per distinct user among the
//! recipients, as described in [`maildir`]: into `tmp/`, `sync_all`, rename
//! into `new/`, then `fsync` of `new/`, and of the parent folders it
//! created. Every failure is a temporary rejection (4xx), with the details
//! in the host's log, and leaves no partial files in `tmp/`. WASI gives a
//! guest no file modes: files and folders get the host process's defaults
//! (its umask), so run the host with a umask such as `077`.
//!
//! Unique names are `SECONDS.MMICROSRRANDOM.HOST`: the WASI wall clock and
//! 128 random bits from `wasi:random` (through `getrandom`).

pub mod address;
pub mod maildir;

use std::path::PathBuf;
use std::time::SystemTime;

use address::User;
use exports::portcullis::auth::realm::{
    Avatar, AvatarInterface, DeliveryAvatar, EchoReply, Guest, GuestDeliveryAvatar,
    GuestEchoAvatar, Mind, ReceivedInfo, Rejection,
};
use maildir::Spool;
use portcullis::auth::host::log;
use portcullis::auth::types::{Denial, LogLevel};
use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../wit",
    world: "realm-plugin",
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Config {
    #[serde(default = "default_spool")]
    spool: String,
    #[serde(default)]
    domains: Option<Vec<String>>,
    #[serde(default = "default_true")]
    create: bool,
    #[serde(default = "default_hostname")]
    hostname: String,
}

fn default_spool() -> String {
    "/spool".into()
}
fn default_true() -> bool {
    true
}
fn default_hostname() -> String {
    "portcullis".into()
}

impl Config {
    /// Parses and checks the JSON the host hands over.
    fn parse(json: &str) -> Result<Config, String> {
        let config: Config = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if config.spool.is_empty() {
            return Err("spool is empty; give the guest path of the granted spool folder".into());
        }
        if config.domains.as_ref().is_some_and(Vec::is_empty) {
            return Err("domains is empty; leave it out to accept any domain".into());
        }
        if config.hostname.is_empty() || config.hostname.chars().any(char::is_control) {
            return Err("hostname must be non-empty and printable".into());
        }
        Ok(config)
    }
}

/// One session's delivery avatar.
struct Maildir {
    spool: Spool,
    domains: Option<Vec<String>>,
    hostname: String,
}

impl Maildir {
    fn new(config: Config) -> Maildir {
        Maildir {
            spool: Spool {
                root: PathBuf::from(config.spool),
                create: config.create,
            },
            domains: config.domains,
            hostname: config.hostname,
        }
    }

    fn user(&self, recipient: &str) -> Result<User, Rejection> {
        address::mailbox(recipient, self.domains.as_deref()).map_err(|r| permanent(r.text()))
    }

    fn unique_name(&self) -> std::io::Result<String> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(maildir::unique_name(
            SystemTime::now(),
            &random,
            &self.hostname,
        ))
    }
}

fn permanent(text: &str) -> Rejection {
    Rejection {
        permanent: true,
        text: text.into(),
    }
}

fn temporary(text: &str) -> Rejection {
    Rejection {
        permanent: false,
        text: text.into(),
    }
}

impl GuestDeliveryAvatar for Maildir {
    fn validate_from(&self, _helo: String, _sender: String) -> Result<(), Rejection> {
        Ok(())
    }

    fn validate_to(&self, recipient: String) -> Result<(), Rejection> {
        let user = self.user(&recipient)?;
        match self.spool.accepts(&user) {
            Ok(true) => Ok(()),
            Ok(false) => Err(permanent("No such mailbox here")),
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("cannot look for the maildir of {user}: {e}"),
                );
                Err(temporary("Mailbox unavailable, try again later"))
            }
        }
    }

    fn received_header(&self, _info: ReceivedInfo) -> Option<String> {
        None
    }

    fn deliver(&self, info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection> {
        let mut users: Vec<User> = Vec::new();
        for recipient in &info.recipients {
            let user = self.user(recipient)?;
            if !users.contains(&user) {
                users.push(user);
            }
        }
        if users.is_empty() {
            return Err(permanent("No recipients"));
        }
        match self
            .spool
            .deliver(&users, &message, &mut || self.unique_name())
        {
            Ok(_) => {
                let names: Vec<&str> = users.iter().map(User::as_str).collect();
                log(
                    LogLevel::Info,
                    &format!(
                        "message {} ({} bytes) delivered to {}",
                        info.id,
                        message.len(),
                        names.join(", ")
                    ),
                );
                Ok(())
            }
            Err(e) => {
                log(
                    LogLevel::Warn,
                    &format!("message {} not delivered: {e}", info.id),
                );
                Err(temporary("Cannot store the message now, try again later"))
            }
        }
    }
}

/// This realm has no echo avatar: the type has no values.
enum NoEcho {}

impl GuestEchoAvatar for NoEcho {
    fn line(&self, _line: String) -> EchoReply {
        match *self {}
    }
}

struct Realm;

impl Guest for Realm {
    type EchoAvatar = NoEcho;
    type DeliveryAvatar = Maildir;

    fn request_avatar(
        _avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar, Denial> {
        if interface != AvatarInterface::MessageDelivery {
            return Err(Denial::Unsupported);
        }
        match Config::parse(&portcullis::auth::host::config()) {
            Ok(config) => Ok(Avatar::MessageDelivery(DeliveryAvatar::new(Maildir::new(
                config,
            )))),
            Err(e) => Err(Denial::Other(format!("bad configuration: {e}"))),
        }
    }
}

export!(Realm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs() {
        let c = Config::parse("{}").unwrap();
        assert_eq!(
            (c.spool.as_str(), c.domains, c.create, c.hostname.as_str()),
            ("/spool", None, true, "portcullis")
        );
        let c = Config::parse(
            r#"{"spool":"/m","domains":["Example.com"],"create":false,"hostname":"mx1"}"#,
        )
        .unwrap();
        assert_eq!(
            (c.spool.as_str(), c.domains, c.create, c.hostname.as_str()),
            ("/m", Some(vec!["Example.com".to_owned()]), false, "mx1")
        );
        for (bad, says) in [
            (r#"{"spool":""}"#, "spool is empty"),
            (r#"{"domains":[]}"#, "domains is empty"),
            (r#"{"hostname":""}"#, "hostname"),
            (r#"{"hostname":"a\nb"}"#, "hostname"),
            (r#"{"create":"yes"}"#, "invalid type"),
            (r#"{"spool":"/s","bogus":1}"#, "unknown field"),
            ("1", "invalid type"),
        ] {
            let e = Config::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn recipients_map_to_users_or_permanent_rejections() {
        let m = Maildir::new(Config::parse(r#"{"domains":["example.com"]}"#).unwrap());
        assert_eq!(m.user("Bob@EXAMPLE.com").unwrap().as_str(), "bob");
        for bad in ["bob@example.org", "../x@example.com", "bob"] {
            let r = m.user(bad).unwrap_err();
            assert!(r.permanent, "{bad}");
        }
    }
}
