//! The kinds of value every section reads: durations, sizes, whole numbers
//! within a range, network lists, and a plugin's `limits` and pin. Each
//! reader names the key and the line in its error, and what to write.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::cli::plugin_options::{
    parse_call_time, parse_deliver_time, parse_max_output, parse_max_resources, parse_memory,
};
use crate::cli::{LimitArgs, PluginOptions, parse_duration, parse_size};
use crate::penalty::Network;
use crate::plugin::Sha256Pin;

/// A size in bytes: a number, or text with K, M or G (powers of 1024).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Size {
    Bytes(u64),
    Text(String),
}

impl Size {
    fn text(&self) -> String {
        match self {
            Size::Bytes(n) => n.to_string(),
            Size::Text(text) => text.clone(),
        }
    }
}

/// `limits = { … }` of one plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsTable {
    memory: Option<Spanned<Size>>,
    call_time: Option<Spanned<String>>,
    deliver_time: Option<Spanned<String>>,
    max_output: Option<Spanned<Size>>,
    max_resources: Option<Spanned<Size>>,
}

impl Source {
    pub(super) fn duration(&self, value: &Spanned<String>) -> Result<Duration, ConfigError> {
        self.at(value, parse_duration)
    }

    /// A whole number that must lie in `range`, named `key` in the error.
    pub(super) fn number_within(
        &self,
        value: Option<&Spanned<u32>>,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
    ) -> Result<Option<u32>, ConfigError> {
        value
            .map(|n| match *n.get_ref() {
                v if range.contains(&v) => Ok(v),
                other => Err(self.error(
                    n.span().start,
                    format!(
                        "{key} = {other} is out of range; write {} to {}",
                        range.start(),
                        range.end()
                    ),
                )),
            })
            .transpose()
    }

    /// A list of `ADDR/PREFIX` networks, named `key` in the error.
    pub(super) fn networks(
        &self,
        value: Option<&Spanned<Vec<String>>>,
        key: &str,
    ) -> Result<Option<Vec<Network>>, ConfigError> {
        let Some(nets) = value else {
            return Ok(None);
        };
        nets.get_ref()
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e: String| self.error(nets.span().start, format!("{key}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// A size parsed by `parse` (which checks its range), whether the
    /// file wrote it as a number or as text.
    pub(super) fn size_with(
        &self,
        value: &Spanned<Size>,
        parse: fn(&str) -> Result<usize, String>,
    ) -> Result<usize, ConfigError> {
        parse(&value.get_ref().text()).map_err(|e| self.error(value.span().start, e))
    }

    pub(super) fn size(&self, value: &Spanned<Size>) -> Result<usize, ConfigError> {
        let bytes = match value.get_ref() {
            Size::Bytes(n) => Ok(*n),
            Size::Text(text) => parse_size(text),
        };
        bytes
            .and_then(|n| usize::try_from(n).map_err(|_| "too large".to_owned()))
            .map_err(|e| self.error(value.span().start, e))
    }

    /// A `limits = { … }` table (`[plugins]` has the same keys, for every
    /// plugin).
    pub(super) fn limits(&self, t: &LimitsTable) -> Result<LimitArgs, ConfigError> {
        self.limit_values(
            t.memory.as_ref(),
            t.call_time.as_ref(),
            t.deliver_time.as_ref(),
            t.max_output.as_ref(),
            t.max_resources.as_ref(),
        )
    }

    pub(super) fn limit_values(
        &self,
        memory: Option<&Spanned<Size>>,
        call_time: Option<&Spanned<String>>,
        deliver_time: Option<&Spanned<String>>,
        max_output: Option<&Spanned<Size>>,
        max_resources: Option<&Spanned<Size>>,
    ) -> Result<LimitArgs, ConfigError> {
        Ok(LimitArgs {
            max_resources: max_resources
                .map(|v| self.size_with(v, parse_max_resources))
                .transpose()?,
            memory: memory
                .map(|v| self.size_with(v, parse_memory))
                .transpose()?,
            call_time: call_time.map(|v| self.at(v, parse_call_time)).transpose()?,
            deliver_time: deliver_time
                .map(|v| self.at(v, parse_deliver_time))
                .transpose()?,
            max_output: max_output
                .map(|v| self.size_with(v, parse_max_output))
                .transpose()?,
        })
    }

    /// A plugin's `sha256` and `limits`.
    pub(super) fn options(
        &self,
        sha256: Option<&Spanned<String>>,
        limits: Option<&LimitsTable>,
    ) -> Result<PluginOptions, ConfigError> {
        Ok(PluginOptions {
            sha256: sha256
                .map(|pin| self.at(pin, str::parse::<Sha256Pin>))
                .transpose()?,
            limits: match limits {
                Some(t) => self.limits(t)?,
                None => LimitArgs::default(),
            },
            lookup_secrets: false,
            defer_avatar: false,
        })
    }
}
