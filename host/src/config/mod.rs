//! The configuration file (`--config FILE`, TOML), one module per section.
//! Every setting of the command line has a place in it, plus what a flag
//! cannot say well: several listeners, which checker serves which
//! credential kind, per-plugin grants, pins and limits.
//!
//! Two steps, both pure: [`parse`] turns the text into typed tables (or an
//! error with the file's line and what to write instead), and
//! [`ConfigFile::lay_under`] writes each section into its part of the
//! [`ServerPlan`], under the flags the command line gave.
//! `examples/portcullis.toml` documents every field.

mod auth;
mod checkers;
mod dovecot;
mod listeners;
mod plugins;
mod realms;
mod service;
mod sessions;
#[cfg(test)]
pub(crate) mod tests;
mod tls;
mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize as _;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use crate::plan::{Listener, ListenerTls, Protocol};

use clap::ArgMatches;

use crate::cli::Args;
use crate::plan::{At, Origin, ServerPlan, Setting};

/// A configuration error: where, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The file's sections. `[[checker]]` is read apart, by [`checkers`].
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    server_name: Option<Spanned<String>>,
    #[serde(default)]
    listener: Vec<Spanned<listeners::ListenerTable>>,
    tls: Option<Spanned<tls::TlsTable>>,
    auth: Option<auth::AuthTable>,
    sessions: Option<sessions::SessionsTable>,
    plugins: Option<plugins::PluginsTable>,
    #[serde(default)]
    mechanism: Vec<Spanned<plugins::MechanismTable>>,
    #[serde(default)]
    realm: Vec<Spanned<realms::RealmTable>>,
    log: Option<service::LogTable>,
    metrics: Option<service::MetricsTable>,
    service: Option<service::ServiceTable>,
    dovecot: Option<dovecot::DovecotTable>,
}

/// The settings of one configuration file, checked and typed.
#[derive(Debug)]
pub struct ConfigFile {
    source: Source,
    file: File,
    checkers: Vec<checkers::CheckerTable>,
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read the configuration file: {e}"),
    })?;
    parse(path, text)
}

/// Parses a configuration file's text (`path` only names it in errors).
pub fn parse(path: &Path, text: String) -> Result<ConfigFile, ConfigError> {
    let source = Source {
        path: Arc::new(path.to_owned()),
        text,
    };
    let mut root = DeTable::parse(&source.text).map_err(|e| source.toml_error(&e))?;
    let checker = root.get_mut().remove("checker");
    let file =
        File::deserialize(toml::de::Deserializer::from(root)).map_err(|e| source.toml_error(&e))?;
    let checkers = match checker {
        Some(tables) => checkers::parse(&source, tables)?,
        None => Vec::new(),
    };
    Ok(ConfigFile {
        source,
        file,
        checkers,
    })
}

impl ConfigFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.source.path
    }

    /// Lays the file's settings under the flags in `plan`: a setting the
    /// command line gave keeps its value.
    pub fn lay_under(&self, plan: &mut ServerPlan) -> Result<(), ConfigError> {
        let (src, f) = (&self.source, &self.file);
        if let Some(name) = &f.server_name {
            let origin = src.origin(name.span().start, "server-name");
            plan.server_name
                .offer(Some(name.get_ref().clone()), || origin);
        }
        listeners::plan(src, &f.listener, plan)?;
        if let Some(tls) = &f.tls {
            tls::plan(src, tls, &mut plan.tls)?;
        }
        if let Some(a) = &f.auth {
            a.plan(src, &mut plan.auth)?;
        }
        if let Some(s) = &f.sessions {
            s.plan(src, &mut plan.sessions)?;
        }
        if let Some(p) = &f.plugins {
            p.plan(src, &mut plan.plugins)?;
        }
        plan.checkers = self
            .checkers
            .iter()
            .map(|c| c.plan(src))
            .collect::<Result<_, _>>()?;
        plan.mechanisms = f
            .mechanism
            .iter()
            .map(|m| plugins::mechanism(src, m))
            .collect::<Result<_, _>>()?;
        for r in &f.realm {
            realms::plan(src, r, &mut plan.realms)?;
        }
        if let Some(l) = &f.log {
            l.plan(src, &mut plan.log);
        }
        if let Some(m) = &f.metrics {
            m.plan(src, &mut plan.metrics_listen)?;
        }
        if let Some(s) = &f.service {
            s.plan(src, &mut plan.service)?;
        }
        if let Some(d) = &f.dovecot {
            d.plan(src, &mut plan.dovecot)?;
        }
        Ok(())
    }
}

/// The file's path and text: what every section needs to name a line and
/// resolve a relative path.
#[derive(Debug)]
struct Source {
    path: Arc<PathBuf>,
    text: String,
}

impl Source {
    /// The 1-based line of byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            line: self.line_of(offset),
            message: message.into(),
        }
    }

    /// The origin of a setting at `offset`, under `key`.
    fn origin(&self, offset: usize, key: &'static str) -> Origin {
        Origin::File(
            At {
                file: self.path.clone(),
                line: self.line_of(offset),
            },
            key,
        )
    }

    /// The file's `value`, read from `spanned`, for `setting` (see
    /// [`Setting::offer`]).
    fn offer<T, S>(
        &self,
        setting: &mut Setting<T>,
        value: Option<T>,
        spanned: &Option<Spanned<S>>,
        key: &'static str,
    ) {
        if let Some(spanned) = spanned {
            setting.offer(value, || self.origin(spanned.span().start, key));
        }
    }

    /// toml's errors, with the advice an operator needs.
    fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim();
        let message = if message.starts_with("unknown field") {
            format!("{message} (see examples/portcullis.toml for every field)")
        } else if message.starts_with("data did not match any variant of untagged enum Size") {
            "expected a size: a number of bytes, or text such as \"64M\" or \"512K\"".into()
        } else if message
            .starts_with("data did not match any variant of untagged enum TlsOnlyValue")
        {
            "expected tls-only = \"auto\", true or false".into()
        } else {
            message.to_owned()
        };
        ConfigError {
            file: self.path.to_path_buf(),
            line: e.span().map_or(0, |s| self.line_of(s.start)),
            message,
        }
    }

    /// A spanned text value parsed by `parse`; its error at the value's line.
    fn at<T, E: std::fmt::Display>(
        &self,
        spanned: &Spanned<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        parse(spanned.get_ref()).map_err(|e| self.error(spanned.span().start, e.to_string()))
    }

    /// Relative paths in the file are relative to the file's folder.
    fn relative(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_owned();
        }
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(path),
            _ => path.to_owned(),
        }
    }
}

/// A value of the document, spanned, as toml's own deserializer reads it
/// (keeping every position for errors).
fn deserialize<T: serde::de::DeserializeOwned>(
    src: &Source,
    value: Spanned<DeValue<'_>>,
) -> Result<T, ConfigError> {
    T::deserialize(toml::de::ValueDeserializer::from(value)).map_err(|e| src.toml_error(&e))
}

/// Plans from the command line and the file it names (`--config`), read
/// now: what start-up and every reload do.
pub fn load_plan(args: &Args, matches: &ArgMatches) -> Result<ServerPlan, ConfigError> {
    let file = match &args.config {
        Some(path) => Some(load(path)?),
        None => None,
    };
    plan(args, matches, file.as_ref())
}

/// The plan of the flags (`args`, `matches` saying which were given) over
/// the file. Pure.
pub fn plan(
    args: &Args,
    matches: &ArgMatches,
    file: Option<&ConfigFile>,
) -> Result<ServerPlan, ConfigError> {
    let flags = crate::plan::of_flags(args, matches);
    let mut plan = flags.plan();
    if let Some(file) = file {
        plan.file = Some(file.path().to_owned());
        file.lay_under(&mut plan)?;
    }
    flags.finish(&mut plan);
    Ok(plan)
}
