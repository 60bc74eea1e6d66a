//! `[dovecot]`: who the Dovecot auth protocol service serves, and how many
//! connections at once. Its sockets are `[[listener]]`s with
//! `protocol = "dovecot"`.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::plan::DovecotPlan;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct DovecotTable {
    trusted_networks: Option<Spanned<Vec<String>>>,
    max_connections: Option<Spanned<u32>>,
}

impl DovecotTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut DovecotPlan) -> Result<(), ConfigError> {
        let nets = src.networks(self.trusted_networks.as_ref(), "trusted-networks")?;
        src.offer(
            &mut plan.trusted_networks,
            nets,
            &self.trusted_networks,
            "[dovecot] trusted-networks",
        );
        let max =
            src.number_within(self.max_connections.as_ref(), "max-connections", 1..=65_536)?;
        src.offer(
            &mut plan.max_connections,
            max,
            &self.max_connections,
            "[dovecot] max-connections",
        );
        Ok(())
    }
}
