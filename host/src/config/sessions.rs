//! `[sessions]`: how many sessions, per address and in all, and how long
//! and large each may be.

use serde::Deserialize;
use toml::Spanned;

use super::values::Size;
use super::{ConfigError, Source};
use crate::plan::SessionsPlan;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SessionsTable {
    max: Option<Spanned<u32>>,
    max_per_address: Option<Spanned<u32>>,
    max_exchanges_per_address: Option<Spanned<u32>>,
    limit_exempt: Option<Spanned<Vec<String>>>,
    proxy_trusted_networks: Option<Spanned<Vec<String>>>,
    bare_newline: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    session_timeout: Option<Spanned<String>>,
    max_message_size: Option<Spanned<Size>>,
}

impl SessionsTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut SessionsPlan) -> Result<(), ConfigError> {
        let at = |offset: usize, key| move || src.origin(offset, key);
        for (setting, value, key) in [
            (&mut plan.max, &self.max, "[sessions] max"),
            (
                &mut plan.max_per_address,
                &self.max_per_address,
                "[sessions] max-per-address",
            ),
            (
                &mut plan.max_exchanges_per_address,
                &self.max_exchanges_per_address,
                "[sessions] max-exchanges-per-address",
            ),
        ] {
            if let Some(v) = value {
                setting.offer(Some(*v.get_ref()), at(v.span().start, key));
            }
        }
        if let Some(v) = &self.limit_exempt {
            let nets = src.networks(Some(v), "limit-exempt")?;
            plan.limit_exempt
                .offer(nets, at(v.span().start, "[sessions] limit-exempt"));
        }
        if let Some(v) = &self.proxy_trusted_networks {
            let nets = src.networks(Some(v), "proxy-trusted-networks")?;
            plan.proxy_trusted.offer(
                nets,
                at(v.span().start, "[sessions] proxy-trusted-networks"),
            );
        }
        if let Some(v) = &self.bare_newline {
            let policy = src.at(v, |word| {
                word.parse().map_err(|_| {
                    format!("bare-newline = \"{word}\": write \"normalize\" or \"reject\"")
                })
            })?;
            plan.bare_newline
                .offer(Some(policy), at(v.span().start, "[sessions] bare-newline"));
        }
        for (setting, value, key) in [
            (
                &mut plan.idle_timeout,
                &self.idle_timeout,
                "[sessions] idle-timeout",
            ),
            (
                &mut plan.session_timeout,
                &self.session_timeout,
                "[sessions] session-timeout",
            ),
        ] {
            if let Some(v) = value {
                setting.offer(Some(src.duration(v)?), at(v.span().start, key));
            }
        }
        if let Some(v) = &self.max_message_size {
            plan.max_message_size.offer(
                Some(src.size(v)?),
                at(v.span().start, "[sessions] max-message-size"),
            );
        }
        Ok(())
    }
}
