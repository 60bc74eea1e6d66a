//! `[plugins]` (the engine, and the limits of every plugin), the fields
//! every plugin table shares (`plugin`, `sha256`, `grants`, `config`,
//! `limits`), and `[[mechanism]]`.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::values::{LimitsTable, Size};
use super::{ConfigError, Source};
use crate::cli::GrantArg;
use crate::cli::PluginArg;
use crate::cli::plugin_options::parse_wasm_stack;
use crate::plan::{Cache, PluginPlan, PluginsPlan};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct PluginsTable {
    max_exchanges: Option<Spanned<u32>>,
    max_checks: Option<Spanned<u32>>,
    max_avatars: Option<Spanned<u32>>,
    max_resources: Option<Spanned<Size>>,
    cache_dir: Option<Spanned<PathBuf>>,
    cache: Option<Spanned<bool>>,
    memory: Option<Spanned<Size>>,
    call_time: Option<Spanned<String>>,
    deliver_time: Option<Spanned<String>>,
    max_output: Option<Spanned<Size>>,
    wasm_stack: Option<Spanned<Size>>,
    native_hashes: Option<Spanned<bool>>,
}

impl PluginsTable {
    pub(super) fn plan(&self, src: &Source, plan: &mut PluginsPlan) -> Result<(), ConfigError> {
        let at = |offset: usize, key| move || src.origin(offset, key);
        for (setting, value, name, key) in [
            (
                &mut plan.max_exchanges,
                &self.max_exchanges,
                "max-exchanges",
                "[plugins] max-exchanges",
            ),
            (
                &mut plan.max_checks,
                &self.max_checks,
                "max-checks",
                "[plugins] max-checks",
            ),
        ] {
            let n = src.number_within(value.as_ref(), name, 1..=100_000)?;
            if let Some(v) = value {
                setting.offer(n, at(v.span().start, key));
            }
        }
        if let Some(v) = &self.max_avatars {
            let n = src.number_within(Some(v), "max-avatars", 1..=100_000)?;
            plan.max_avatars
                .offer(n.map(Some), at(v.span().start, "[plugins] max-avatars"));
        }
        match (&self.cache, &self.cache_dir) {
            (Some(off), _) if !*off.get_ref() => {
                plan.cache
                    .offer(Some(Cache::Off), at(off.span().start, "[plugins] cache"));
            }
            (_, Some(dir)) => plan.cache.offer(
                Some(Cache::Dir(src.relative(dir.get_ref()))),
                at(dir.span().start, "[plugins] cache-dir"),
            ),
            _ => {}
        }
        let limits = src.limit_values(
            self.memory.as_ref(),
            self.call_time.as_ref(),
            self.deliver_time.as_ref(),
            self.max_output.as_ref(),
            self.max_resources.as_ref(),
        )?;
        for (setting, value, spanned, key) in [
            (
                &mut plan.memory,
                limits.memory,
                &self.memory,
                "[plugins] memory",
            ),
            (
                &mut plan.max_output,
                limits.max_output,
                &self.max_output,
                "[plugins] max-output",
            ),
            (
                &mut plan.max_resources,
                limits.max_resources,
                &self.max_resources,
                "[plugins] max-resources",
            ),
        ] {
            src.offer(setting, value.map(Some), spanned, key);
        }
        for (setting, value, spanned, key) in [
            (
                &mut plan.call_time,
                limits.call_time,
                &self.call_time,
                "[plugins] call-time",
            ),
            (
                &mut plan.deliver_time,
                limits.deliver_time,
                &self.deliver_time,
                "[plugins] deliver-time",
            ),
        ] {
            src.offer(setting, value.map(Some), spanned, key);
        }
        if let Some(v) = &self.wasm_stack {
            let stack = src.size_with(v, parse_wasm_stack)?;
            plan.wasm_stack.offer(
                Some(Some(stack)),
                at(v.span().start, "[plugins] wasm-stack"),
            );
        }
        if let Some(v) = &self.native_hashes {
            plan.native_hashes.offer(
                Some(*v.get_ref()),
                at(v.span().start, "[plugins] native-hashes"),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct GrantTable {
    /// The host folder.
    dir: PathBuf,
    /// Where the guest sees it (default `/grant`).
    at: Option<String>,
    #[serde(default)]
    writable: bool,
}

/// A `[[mechanism]]`. (Each plugin table lists the plugin fields rather
/// than `#[serde(flatten)]`ing them: flattening loses the positions errors
/// need.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct MechanismTable {
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
    limits: Option<LimitsTable>,
    /// A mechanism the operator lets call `lookup-secret`.
    lookup_secrets: Option<bool>,
}

pub(super) fn mechanism(
    src: &Source,
    table: &Spanned<MechanismTable>,
) -> Result<PluginPlan, ConfigError> {
    let t = table.get_ref();
    let offset = table.span().start;
    let fields = PluginRef {
        plugin: t.plugin.as_ref(),
        sha256: t.sha256.as_ref(),
        grants: &t.grants,
        config: t.config.as_ref(),
        limits: t.limits.as_ref(),
    };
    let mut plugin = src.plugin(fields, offset, "a mechanism")?;
    plugin.options.lookup_secrets = t.lookup_secrets.unwrap_or(false);
    Ok(PluginPlan {
        plugin,
        origin: src.origin(offset, "[[mechanism]]"),
    })
}

/// The plugin fields of any table, borrowed.
pub(super) struct PluginRef<'a> {
    pub(super) plugin: Option<&'a PathBuf>,
    pub(super) sha256: Option<&'a Spanned<String>>,
    pub(super) grants: &'a [GrantTable],
    pub(super) config: Option<&'a Value>,
    pub(super) limits: Option<&'a LimitsTable>,
}

impl Source {
    /// A plugin file with its grants, configuration, pin and limits.
    pub(super) fn plugin(
        &self,
        table: PluginRef<'_>,
        offset: usize,
        what: &str,
    ) -> Result<PluginArg, ConfigError> {
        let Some(path) = table.plugin else {
            return Err(self.error(offset, format!("{what} needs plugin = \"PATH.wasm\"")));
        };
        Ok(PluginArg {
            path: self.relative(path),
            grants: table
                .grants
                .iter()
                .map(|g| self.grant(g, offset))
                .collect::<Result<_, _>>()?,
            config: self.config(table.config, offset)?,
            options: self.options(table.sha256, table.limits)?,
        })
    }

    fn config(&self, config: Option<&Value>, offset: usize) -> Result<Value, ConfigError> {
        match config {
            None => Ok(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(_) => Err(self.error(
                offset,
                "config must be a table, e.g. config = { key = \"value\" }",
            )),
        }
    }

    fn grant(&self, grant: &GrantTable, offset: usize) -> Result<GrantArg, ConfigError> {
        let guest_path = grant.at.clone().unwrap_or_else(|| "/grant".into());
        if !guest_path.starts_with('/') {
            return Err(self.error(
                offset,
                format!(
                    "grant at = \"{guest_path}\": the guest path must be absolute, e.g. \"/data\""
                ),
            ));
        }
        Ok(GrantArg {
            host_path: self.relative(&grant.dir),
            guest_path,
            writable: grant.writable,
        })
    }
}
