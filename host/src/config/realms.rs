//! `[[realm]]`: which realm serves each avatar interface, a built-in one
//! (with its limits) or a plugin.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::plugins::{GrantTable, PluginRef};
use super::values::LimitsTable;
use super::{ConfigError, Source};
use crate::plan::{PluginPlan, RealmsPlan};
use crate::portal::AvatarInterface;

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
                "a realm needs builtin = \"echo\" | \"console\" | \"maildir\", or plugin = \
                 \"PATH.wasm\"",
            ));
        }
        (None, Some(_)) => {
            if t.maildir.is_some() {
                return Err(src.error(offset, "maildir = … goes with builtin = \"maildir\""));
            }
            let fields = PluginRef {
                plugin: t.plugin.as_ref(),
                sha256: t.sha256.as_ref(),
                grants: &t.grants,
                config: t.config.as_ref(),
                limits: t.limits.as_ref(),
            };
            let plugin = src.plugin(fields, offset, "a realm")?;
            plan.plugins
                .push((interface, PluginPlan { plugin, origin }));
            return Ok(());
        }
        (Some(name), None) => name,
    };
    let wanted = match name.get_ref().as_str() {
        "echo" => AvatarInterface::Echo,
        "console" | "maildir" => AvatarInterface::MessageDelivery,
        other => {
            return Err(src.error(
                name.span().start,
                format!("unknown built-in realm \"{other}\"; write echo, console or maildir"),
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
    if !t.grants.is_empty() || t.config.is_some() || t.sha256.is_some() {
        return Err(src.error(
            offset,
            "a built-in realm takes no grants, config or sha256 (limits it does)",
        ));
    }
    let options = src.options(None, t.limits.as_ref())?;
    plan.builtin
        .insert(name.get_ref().clone(), (options, origin));
    Ok(())
}
