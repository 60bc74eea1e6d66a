//! `[auth]`: the AUTH policy, the per-address penalty and the limits of one
//! SASL exchange.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::plan::AuthPlan;
use crate::smtp::TlsOnly;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct AuthTable {
    required: Option<Spanned<bool>>,
    tls_only: Option<Spanned<TlsOnlyValue>>,
    failure_delay: Option<Spanned<String>>,
    max_failures: Option<Spanned<u32>>,
    exclude_mechanisms: Option<Spanned<Vec<String>>>,
    penalty: Option<Spanned<String>>,
    penalty_cap: Option<Spanned<String>>,
    penalty_trusted: Option<Spanned<Vec<String>>>,
    penalty_store: Option<Spanned<String>>,
    step_timeout: Option<Spanned<String>>,
    max_lookups: Option<Spanned<u32>>,
}

/// `tls-only = "auto"`, or a boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TlsOnlyValue {
    Bool(bool),
    Word(String),
}

impl AuthTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut AuthPlan) -> Result<(), ConfigError> {
        let at = |offset: usize, key| move || src.origin(offset, key);
        if let Some(v) = &self.required {
            plan.required
                .offer(Some(*v.get_ref()), at(v.span().start, "[auth] required"));
        }
        if let Some(v) = &self.tls_only {
            let tls_only = match v.get_ref() {
                TlsOnlyValue::Bool(true) => TlsOnly::Yes,
                TlsOnlyValue::Bool(false) => TlsOnly::No,
                TlsOnlyValue::Word(w) => w.parse().map_err(|_| {
                    src.error(
                        v.span().start,
                        format!("tls-only = \"{w}\": write \"auto\", true or false"),
                    )
                })?,
            };
            plan.tls_only
                .offer(Some(tls_only), at(v.span().start, "[auth] tls-only"));
        }
        for (setting, value, key) in [
            (
                &mut plan.failure_delay,
                &self.failure_delay,
                "[auth] failure-delay",
            ),
            (&mut plan.penalty, &self.penalty, "[auth] penalty"),
            (
                &mut plan.penalty_cap,
                &self.penalty_cap,
                "[auth] penalty-cap",
            ),
            (
                &mut plan.step_timeout,
                &self.step_timeout,
                "[auth] step-timeout",
            ),
        ] {
            if let Some(v) = value {
                setting.offer(Some(src.duration(v)?), at(v.span().start, key));
            }
        }
        if let Some(v) = &self.max_failures {
            plan.max_failures.offer(
                Some(*v.get_ref()),
                at(v.span().start, "[auth] max-failures"),
            );
        }
        if let Some(v) = &self.penalty_trusted {
            let nets = src.networks(Some(v), "penalty-trusted")?;
            plan.penalty_trusted
                .offer(nets, at(v.span().start, "[auth] penalty-trusted"));
        }
        if let Some(v) = &self.penalty_store {
            let url = src.at(v, |url| {
                crate::penalty::RedisStore::check_url(url).map(|()| url.to_owned())
            })?;
            plan.penalty_store
                .offer(Some(Some(url)), at(v.span().start, "[auth] penalty-store"));
        }
        if let Some(v) = &self.max_lookups {
            let n = src.number_within(Some(v), "max-lookups", 1..=64)?;
            plan.max_lookups
                .offer(n, at(v.span().start, "[auth] max-lookups"));
        }
        if let Some(exclude) = &self.exclude_mechanisms
            && !exclude.get_ref().is_empty()
        {
            plan.exclude_mechanisms.offer(
                Some(exclude.get_ref().clone()),
                at(exclude.span().start, "[auth] exclude-mechanisms"),
            );
        }
        Ok(())
    }
}
