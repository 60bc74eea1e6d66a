//! Maildir delivery as a portcullis realm plugin; what `--maildir DIR`
//! loads. Each accepted message is written into the Maildir of every
//! recipient under a spool folder the operator grants read-write:
//! `SPOOL/USER/{tmp,new,cur}`, USER being the recipient's local part in
//! lower case.
//!
//! Configuration (JSON, defaults shown):
//!
//! ```json
//! {"spool": "/spool", "domains": null, "create": true, "hostname": "portcullis"}
//! ```
//!
//! - `spool`: the guest path of the granted folder.
//! - `domains`: recipient domains accepted (ASCII case-insensitive); `null`
//!   accepts any.
//! - `create`: create a user's Maildir on first delivery; with `false` only
//!   users whose folder exists are valid recipients.
//! - `hostname`: the host part of the unique file names.
//! - `deliver-time-ms`: the host's deadline for one delivery (the host sets
//!   it for the built-in realm); past three quarters of it the realm gives
//!   up before committing, with a temporary failure.
//!
//! Recipients are checked at RCPT time: a local part must be a safe folder
//! name (`a-z 0-9 . _ + -`, not starting with a dot, at most 64 bytes).
//! Delivery follows the Maildir rules: the message is written to `tmp/`,
//! synced, then renamed into `new/` under a unique name (the commit); the
//! folders are synced after the renames. All recipients' `tmp/` files are
//! written before any is moved, and a failure removes them (and moves back
//! copies already renamed), so a temporary failure (the client retries)
//! never leaves half a delivery; if a copy cannot be taken back, the answer
//! is a permanent failure, so the client does not send it again. Files an
//! abandoned delivery left in `tmp/` are removed by the next delivery to
//! that Maildir once older than 15 minutes (and by the host at start).
//! No echo avatar.

mod address;
mod maildir;

use std::path::PathBuf;

use portcullis_sdk::realm::{
    Avatar, AvatarError, AvatarInterface, DeliveryAvatar, Mind, NoAvatar, Realm as SdkRealm,
    ReceivedInfo, Rejection,
};
use portcullis_sdk::types::{Denial, LogLevel};

#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_spool")]
    spool: PathBuf,
    #[serde(default)]
    domains: Option<Vec<String>>,
    #[serde(default = "default_true")]
    create: bool,
    #[serde(default = "default_hostname")]
    hostname: String,
    /// The host's deadline for one `deliver`; the realm gives up before
    /// its commit once three quarters of it are gone.
    #[serde(default, rename = "deliver-time-ms")]
    deliver_time_ms: Option<u64>,
}

fn default_spool() -> PathBuf {
    PathBuf::from("/spool")
}
fn default_true() -> bool {
    true
}
fn default_hostname() -> String {
    "portcullis".into()
}

struct Mailbox {
    config: Config,
}

fn refuse(permanent: bool, text: impl Into<String>) -> Rejection {
    Rejection {
        permanent,
        text: text.into(),
    }
}

impl DeliveryAvatar for Mailbox {
    fn validate_from(&self, _helo: String, _sender: String) -> Result<(), Rejection> {
        Ok(())
    }

    fn validate_to(&self, recipient: String) -> Result<(), Rejection> {
        let user = address::mailbox_user(&recipient, self.config.domains.as_deref())
            .map_err(|why| refuse(true, why))?;
        if !self.config.create && !self.config.spool.join(&user).is_dir() {
            return Err(refuse(true, format!("No mailbox here for {user}")));
        }
        Ok(())
    }

    fn received_header(&self, _info: ReceivedInfo) -> Option<String> {
        None
    }

    fn deliver(&self, info: ReceivedInfo, message: Vec<u8>) -> Result<(), Rejection> {
        let started = std::time::Instant::now();
        let mut users = Vec::new();
        for recipient in &info.recipients {
            let user = address::mailbox_user(recipient, self.config.domains.as_deref())
                .map_err(|why| refuse(true, why))?;
            if !users.contains(&user) {
                users.push(user);
            }
        }
        let spool = maildir::Spool {
            root: self.config.spool.clone(),
            hostname: self.config.hostname.clone(),
        };
        let deadline = self
            .config
            .deliver_time_ms
            .map(|ms| started + std::time::Duration::from_millis(ms * 3 / 4));
        match spool.deliver(&users, &message, unique_part, deadline) {
            Ok(names) => {
                let text = format!("message {} stored as {}", info.id, names.join(", "));
                portcullis_sdk::host::log(LogLevel::Debug, &text);
                Ok(())
            }
            Err(maildir::DeliverError::NotStored(e)) => {
                let text = format!("message {} not stored: {e}", info.id);
                portcullis_sdk::host::log(LogLevel::Warn, &text);
                Err(refuse(false, "Mailbox temporarily unavailable"))
            }
            Err(e @ maildir::DeliverError::Partial { .. }) => {
                // Some copies are in new/: a temporary failure would make
                // the client send them again.
                let text = format!("message {} stored only in part: {e}", info.id);
                portcullis_sdk::host::log(LogLevel::Error, &text);
                Err(refuse(
                    true,
                    "Delivered to some recipients only; not retrying, ask the postmaster",
                ))
            }
        }
    }
}

/// Random hex for unique names (WASI's random source).
fn unique_part() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness then rests on the time and the counter.
        return "0".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Realm;

impl SdkRealm for Realm {
    type Echo = NoAvatar;
    type Delivery = Mailbox;

    fn request_avatar(
        _avatar_id: Option<String>,
        interface: AvatarInterface,
        _mind: Mind,
    ) -> Result<Avatar<Self::Echo, Self::Delivery>, AvatarError> {
        if interface == AvatarInterface::Echo {
            return Err(Denial::Unsupported.into());
        }
        let config: Config = serde_json::from_str(&portcullis_sdk::host::config())
            .map_err(|e| AvatarError::Unavailable(format!("bad configuration: {e}")))?;
        Ok(Avatar::MessageDelivery(Mailbox { config }))
    }
}

portcullis_sdk::export_realm!(Realm);
