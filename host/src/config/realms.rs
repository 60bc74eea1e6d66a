//! `[[realm]]`: which realm serves each avatar interface, a built-in one
//! (with its limits) or a plugin.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::plugins::{GrantTable, PluginRef};
use super::values::LimitsTable;
use super::{ConfigError, Source};
use crate::plan::{PluginPlan, RealmsPlan, RelayPlan};
use crate::portal::AvatarInterface;
use crate::relay::{Timeouts, TlsSetting};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RealmTable {
    serves: Spanned<String>,
    builtin: Option<Spanned<String>>,
    maildir: Option<Spanned<PathBuf>>,
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
    limits: Option<LimitsTable>,
    // The relay realm's next hop.
    next_hop: Option<Spanned<String>>,
    xclient: Option<bool>,
    tls: Option<Spanned<String>>,
    tls_ca: Option<PathBuf>,
    tls_insecure_skip_verify: Option<bool>,
    helo: Option<String>,
    connect_timeout: Option<Spanned<String>>,
    command_timeout: Option<Spanned<String>>,
    data_timeout: Option<Spanned<String>>,
    allow_anonymous: Option<bool>,
    /// The realm gives every identity a delivery avatar: SMTP asks for it
    /// at MAIL FROM, not at AUTH.
    defer_avatar: Option<bool>,
}

impl RealmTable {
    fn has_relay_fields(&self) -> bool {
        self.next_hop.is_some()
            || self.xclient.is_some()
            || self.tls.is_some()
            || self.tls_ca.is_some()
            || self.tls_insecure_skip_verify.is_some()
            || self.helo.is_some()
            || self.connect_timeout.is_some()
            || self.command_timeout.is_some()
            || self.data_timeout.is_some()
            || self.allow_anonymous.is_some()
    }
}

/// `builtin = "relay"`: the next hop and how to talk to it.
fn relay(src: &Source, t: &RealmTable, offset: usize) -> Result<RelayPlan, ConfigError> {
    let Some(url) = &t.next_hop else {
        return Err(src.error(
            offset,
            "the relay realm needs next-hop = \"smtp://HOST:PORT\" (or lmtp://HOST:PORT, \
             lmtp:unix:/PATH)",
        ));
    };
    crate::relay::hop::parse_url(url.get_ref())
        .map_err(|e| src.error(url.span().start, e.to_string()))?;
    let tls = match t
        .tls
        .as_ref()
        .map(|s| (s.get_ref().as_str(), s.span().start))
    {
        None | Some(("none", _)) => {
            if t.tls_ca.is_some() || t.tls_insecure_skip_verify.is_some() {
                return Err(src.error(
                    offset,
                    "tls-ca and tls-insecure-skip-verify go with tls = \"starttls\"",
                ));
            }
            TlsSetting::None
        }
        Some(("starttls", at)) => {
            let insecure = t.tls_insecure_skip_verify.unwrap_or(false);
            match (&t.tls_ca, insecure) {
                (Some(_), true) => {
                    return Err(src.error(
                        at,
                        "give either tls-ca = \"FILE\" or tls-insecure-skip-verify = true, not both",
                    ));
                }
                (None, false) => {
                    return Err(src.error(
                        at,
                        "tls = \"starttls\" needs tls-ca = \"FILE\" (the CA of the next hop's \
                         certificate), or tls-insecure-skip-verify = true to accept any",
                    ));
                }
                _ => {}
            }
            TlsSetting::StartTls {
                ca: t.tls_ca.as_ref().map(|p| src.relative(p)),
                insecure_skip_verify: insecure,
            }
        }
        Some((other, at)) => {
            return Err(src.error(
                at,
                format!("unknown tls = \"{other}\"; write \"none\" or \"starttls\""),
            ));
        }
    };
    let mut timeouts = Timeouts::default();
    for (value, slot) in [
        (&t.connect_timeout, &mut timeouts.connect),
        (&t.command_timeout, &mut timeouts.command),
        (&t.data_timeout, &mut timeouts.data),
    ] {
        if let Some(v) = value {
            *slot = src.duration(v)?;
            if slot.is_zero() {
                return Err(src.error(v.span().start, "a timeout must be more than 0s"));
            }
        }
    }
    if let Some(helo) = &t.helo
        && (helo.is_empty()
            || !helo
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c)))
    {
        return Err(src.error(offset, format!("helo = \"{helo}\" is no host name")));
    }
    Ok(RelayPlan {
        url: url.get_ref().clone(),
        xclient: t.xclient.unwrap_or(false),
        tls,
        helo: t.helo.clone(),
        timeouts,
        allow_anonymous: t.allow_anonymous.unwrap_or(false),
        origin: src.origin(offset, "[[realm]] builtin = \"relay\""),
    })
}

pub(super) fn plan(
    src: &Source,
    table: &Spanned<RealmTable>,
    plan: &mut RealmsPlan,
) -> Result<(), ConfigError> {
    let t = table.get_ref();
    let offset = table.span().start;
    let interface = match t.serves.get_ref().as_str() {
        "echo" => AvatarInterface::Echo,
        "message-delivery" => AvatarInterface::MessageDelivery,
        other => {
            return Err(src.error(
                t.serves.span().start,
                format!(
                    "unknown avatar interface \"{other}\"; write serves = \"echo\" or \
                     \"message-delivery\""
                ),
            ));
        }
    };
    let origin = src.origin(offset, "[[realm]]");
    let defer_avatar = t.defer_avatar.unwrap_or(false);
    if defer_avatar && interface != AvatarInterface::MessageDelivery {
        return Err(src.error(
            offset,
            "defer-avatar goes with serves = \"message-delivery\": an echo session needs its \
             avatar at login",
        ));
    }
    let name = match (&t.builtin, &t.plugin) {
        (Some(_), Some(_)) => {
            return Err(src.error(
                offset,
                "a realm is either builtin = \"NAME\" or plugin = \"PATH.wasm\", not both",
            ));
        }
        (None, None) => {
            return Err(src.error(
                offset,
                "a realm needs builtin = \"echo\" | \"console\" | \"maildir\" | \"relay\", or \
                 plugin = \"PATH.wasm\"",
            ));
        }
        (None, Some(_)) => {
            if t.maildir.is_some() {
                return Err(src.error(offset, "maildir = … goes with builtin = \"maildir\""));
            }
            if t.has_relay_fields() {
                return Err(src.error(
                    offset,
                    "next-hop and its settings go with builtin = \"relay\"",
                ));
            }
            let fields = PluginRef {
                plugin: t.plugin.as_ref(),
                sha256: t.sha256.as_ref(),
                grants: &t.grants,
                config: t.config.as_ref(),
                limits: t.limits.as_ref(),
            };
            let mut plugin = src.plugin(fields, offset, "a realm")?;
            plugin.options.defer_avatar = defer_avatar;
            plan.plugins
                .push((interface, PluginPlan { plugin, origin }));
            return Ok(());
        }
        (Some(name), None) => name,
    };
    let wanted = match name.get_ref().as_str() {
        "echo" => AvatarInterface::Echo,
        "console" | "maildir" | "relay" => AvatarInterface::MessageDelivery,
        other => {
            return Err(src.error(
                name.span().start,
                format!(
                    "unknown built-in realm \"{other}\"; write echo, console, maildir or relay"
                ),
            ));
        }
    };
    if wanted != interface {
        return Err(src.error(
            name.span().start,
            format!(
                "the built-in realm \"{}\" serves {}, not {}",
                name.get_ref(),
                wanted.as_str(),
                interface.as_str()
            ),
        ));
    }
    match (name.get_ref().as_str(), &t.maildir) {
        ("maildir", Some(dir)) => plan
            .maildir
            .offer(Some(Some(src.relative(dir.get_ref()))), || {
                src.origin(dir.span().start, "[[realm]] maildir")
            }),
        ("maildir", None) => {
            return Err(src.error(
                offset,
                "the maildir realm needs maildir = \"FOLDER\" (one Maildir per recipient)",
            ));
        }
        (_, Some(_)) => {
            return Err(src.error(offset, "maildir = … goes with builtin = \"maildir\""));
        }
        (_, None) => {}
    }
    if name.get_ref() == "relay" {
        plan.relay = Some(relay(src, t, offset)?);
    } else if t.has_relay_fields() {
        return Err(src.error(
            offset,
            "next-hop, xclient, tls, tls-ca, helo and the timeouts go with builtin = \"relay\"",
        ));
    }
    if !t.grants.is_empty() || t.config.is_some() || t.sha256.is_some() {
        return Err(src.error(
            offset,
            "a built-in realm takes no grants, config or sha256 (limits it does)",
        ));
    }
    let mut options = src.options(None, t.limits.as_ref())?;
    options.defer_avatar = defer_avatar;
    plan.builtin
        .insert(name.get_ref().clone(), (options, origin));
    Ok(())
}
