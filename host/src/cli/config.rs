//! The configuration file (`--config FILE`, TOML). Every setting of the
//! command line has a place in it, plus what a flag cannot say well: several
//! listeners, which checker serves which credential kind, per-plugin grants,
//! pins and limits. Flags given on the command line override the file.
//!
//! Loading is two steps, both pure: [`parse`] turns the text into typed
//! settings (or an error with the file's line and what to write instead),
//! and [`ConfigFile::apply`] lays them under the command line's [`Args`].
//! `examples/portcullis.toml` documents every field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use toml::Spanned;

use super::plugin_arg::{GrantArg, PluginArg, RealmArg};
use super::plugin_options::{
    LimitArgs, PluginOptions, parse_call_time, parse_deliver_time, parse_max_output,
    parse_max_resources, parse_memory, parse_wasm_stack,
};
use super::{Args, AuthSpec, LogFormat, Networks, parse_duration, parse_size};
use crate::plugin::Sha256Pin;
use crate::portal::AvatarInterface;
use crate::portal::CredentialKind;
use crate::smtp::TlsOnly;

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

/// The protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    Smtp,
    Echo,
}

impl Protocol {
    /// The file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Smtp => "smtp",
            Protocol::Echo => "echo",
        }
    }
}

/// How a listener uses TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListenerTls {
    /// SMTP offers STARTTLS (the default for SMTP).
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
    /// No TLS at all (the only choice for echo).
    None,
}

impl ListenerTls {
    /// The file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerTls::Starttls => "starttls",
            ListenerTls::Implicit => "implicit",
            ListenerTls::None => "none",
        }
    }
}

/// One socket the server listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub protocol: Protocol,
    pub address: SocketAddr,
    pub tls: ListenerTls,
}

/// A checker from the file: the `--auth` it stands for, and what the file
/// can add to it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerEntry {
    pub spec: AuthSpec,
    /// Serve only these of the checker's kinds (all it declares if `None`).
    pub kinds: Option<Vec<CredentialKind>>,
    /// Its pin and limits (every checker is a plugin, built-in or not);
    /// kept here rather than in a wasm checker's [`PluginArg`].
    pub options: PluginOptions,
    /// The line of its `[[checker]]` table, for errors found later.
    pub line: usize,
}

impl CheckerEntry {
    /// A checker from the command line, its own options (`--auth
    /// wasm:…:memory=64M`) moved to the entry.
    pub fn new(mut spec: AuthSpec) -> CheckerEntry {
        let options = match &mut spec {
            AuthSpec::Wasm(arg) => std::mem::take(&mut arg.options),
            _ => PluginOptions::default(),
        };
        CheckerEntry {
            spec,
            kinds: None,
            options,
            line: 0,
        }
    }
}

/// A mechanism or realm plugin from the file (its pin and limits in
/// `plugin.options`).
#[derive(Clone, Debug, PartialEq)]
pub struct PluginEntry {
    pub plugin: PluginArg,
    pub line: usize,
}

/// What the file configures beyond the command line's flags; kept in
/// [`Args`] (its fields there are `#[arg(skip)]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extra {
    /// The file the settings came from.
    pub source: Option<PathBuf>,
    /// Every listener, when the file lists them (replacing the flags'
    /// defaults).
    pub listeners: Option<Vec<Listener>>,
    pub checkers: Vec<CheckerEntry>,
    pub mechanisms: Vec<PluginEntry>,
    /// Realm plugins, by the interface they serve.
    pub realms: Vec<(AvatarInterface, PluginEntry)>,
    /// The limits the file gives a built-in realm (`echo`, `console`,
    /// `maildir`), and the line of its `[[realm]]`.
    pub builtin_realms: BTreeMap<String, (PluginOptions, usize)>,
    /// The lines of `[tls] cert` and `key`, when the file gave them.
    pub tls_lines: Option<(usize, usize)>,
}

// ---- The file's shape -------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    server_name: Option<String>,
    #[serde(default)]
    listener: Vec<Spanned<ListenerTable>>,
    tls: Option<TlsTable>,
    auth: Option<AuthTable>,
    sessions: Option<SessionsTable>,
    plugins: Option<PluginsTable>,
    #[serde(default)]
    checker: Vec<Spanned<CheckerTable>>,
    #[serde(default)]
    mechanism: Vec<Spanned<PluginTable>>,
    #[serde(default)]
    realm: Vec<Spanned<RealmTable>>,
    log: Option<LogTable>,
    metrics: Option<MetricsTable>,
    service: Option<ServiceTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ListenerTable {
    protocol: Protocol,
    address: Spanned<String>,
    tls: Option<ListenerTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TlsTable {
    cert: Option<Spanned<PathBuf>>,
    key: Option<Spanned<PathBuf>>,
    client_ca: Option<PathBuf>,
    cert_out: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AuthTable {
    required: Option<bool>,
    tls_only: Option<Spanned<TlsOnlyValue>>,
    failure_delay: Option<Spanned<String>>,
    max_failures: Option<u32>,
    #[serde(default)]
    exclude_mechanisms: Vec<String>,
    penalty: Option<Spanned<String>>,
    penalty_cap: Option<Spanned<String>>,
    penalty_trusted: Option<Spanned<Vec<String>>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SessionsTable {
    max: Option<u32>,
    max_per_address: Option<u32>,
    max_exchanges_per_address: Option<u32>,
    limit_exempt: Option<Spanned<Vec<String>>>,
    bare_newline: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    session_timeout: Option<Spanned<String>>,
    max_message_size: Option<Spanned<Size>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PluginsTable {
    max_exchanges: Option<Spanned<u32>>,
    max_checks: Option<Spanned<u32>>,
    max_avatars: Option<Spanned<u32>>,
    max_resources: Option<Spanned<Size>>,
    cache_dir: Option<PathBuf>,
    cache: Option<bool>,
    memory: Option<Spanned<Size>>,
    call_time: Option<Spanned<String>>,
    deliver_time: Option<Spanned<String>>,
    max_output: Option<Spanned<Size>>,
    wasm_stack: Option<Spanned<Size>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsTable {
    memory: Option<Spanned<Size>>,
    call_time: Option<Spanned<String>>,
    deliver_time: Option<Spanned<String>>,
    max_output: Option<Spanned<Size>>,
    max_resources: Option<Spanned<Size>>,
}

/// A size in bytes: a number, or text with K, M or G (powers of 1024).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct GrantTable {
    /// The host folder.
    dir: PathBuf,
    /// Where the guest sees it (default `/grant`).
    at: Option<String>,
    #[serde(default)]
    writable: bool,
}

/// A `[[mechanism]]`: the fields every plugin loaded from a file may have.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PluginTable {
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
    limits: Option<LimitsTable>,
    /// A mechanism the operator lets call `lookup-secret`.
    lookup_secrets: Option<bool>,
}

/// The plugin fields of a mechanism, checker or realm table. (Not
/// `#[serde(flatten)]`: flattening loses the positions errors need.)
struct PluginFields<'a> {
    plugin: Option<&'a PathBuf>,
    sha256: Option<&'a Spanned<String>>,
    grants: &'a [GrantTable],
    config: Option<&'a Value>,
    limits: Option<&'a LimitsTable>,
}

macro_rules! plugin_fields {
    ($table:ty) => {
        impl $table {
            fn fields(&self) -> PluginFields<'_> {
                PluginFields {
                    plugin: self.plugin.as_ref(),
                    sha256: self.sha256.as_ref(),
                    grants: &self.grants,
                    config: self.config.as_ref(),
                    limits: self.limits.as_ref(),
                }
            }
        }
    };
}
plugin_fields!(PluginTable);
plugin_fields!(CheckerTable);
plugin_fields!(RealmTable);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct CheckerTable {
    #[serde(rename = "type")]
    kind: Spanned<String>,
    kinds: Option<Spanned<Vec<String>>>,
    // memory
    users: Option<BTreeMap<String, String>>,
    // file, sql (sqlite), token
    path: Option<PathBuf>,
    delimiter: Option<String>,
    username_field: Option<u32>,
    password_field: Option<u32>,
    case_insensitive: Option<bool>,
    // external
    allow: Option<Vec<String>>,
    // sql
    database: Option<Spanned<String>>,
    query: Option<String>,
    // unix
    passwd: Option<PathBuf>,
    shadow: Option<PathBuf>,
    // token
    tokens: Option<PathBuf>,
    jwt: Option<Value>,
    // wasm (and limits, for every type)
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
    limits: Option<LimitsTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RealmTable {
    serves: Spanned<String>,
    builtin: Option<Spanned<String>>,
    maildir: Option<PathBuf>,
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
    limits: Option<LimitsTable>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LogTable {
    format: Option<LogFormatValue>,
    filter: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum LogFormatValue {
    Human,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MetricsTable {
    listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ServiceTable {
    user: Option<String>,
    group: Option<String>,
    control_socket: Option<PathBuf>,
    shutdown_grace: Option<Spanned<String>>,
}

// ---- Parsing -----------------------------------------------------------

/// The settings of one configuration file, checked and typed.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    file: File,
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
    match toml::from_str::<File>(&text) {
        Ok(file) => Ok(ConfigFile {
            path: path.to_owned(),
            text,
            file,
        }),
        Err(e) => Err(ConfigError {
            file: path.to_owned(),
            line: e.span().map_or(0, |s| line_of(&text, s.start)),
            message: explain_toml(e.message()),
        }),
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// toml's messages, with the advice an operator needs.
fn explain_toml(message: &str) -> String {
    let message = message.trim();
    if message.starts_with("unknown field") {
        format!("{message} (see examples/portcullis.toml for every field)")
    } else if message.starts_with("data did not match any variant of untagged enum Size") {
        "expected a size: a number of bytes, or text such as \"64M\" or \"512K\"".into()
    } else if message.starts_with("data did not match any variant of untagged enum TlsOnlyValue") {
        "expected tls-only = \"auto\", true or false".into()
    } else {
        message.to_owned()
    }
}

impl ConfigFile {
    fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: line_of(&self.text, offset),
            message: message.into(),
        }
    }

    fn at<T, E: std::fmt::Display>(
        &self,
        spanned: &Spanned<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        parse(spanned.get_ref()).map_err(|e| self.error(spanned.span().start, e.to_string()))
    }

    fn duration(&self, value: &Spanned<String>) -> Result<Duration, ConfigError> {
        self.at(value, parse_duration)
    }

    /// A whole number that must lie in `range`, named `key` in the error.
    fn number_within(
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
    fn networks(
        &self,
        value: Option<&Spanned<Vec<String>>>,
        key: &str,
    ) -> Result<Option<Networks>, ConfigError> {
        let Some(nets) = value else {
            return Ok(None);
        };
        let parsed = nets
            .get_ref()
            .iter()
            .map(|n| {
                n.parse()
                    .map_err(|e: String| self.error(nets.span().start, format!("{key}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Networks(parsed)))
    }

    /// A size parsed by `parse` (which checks its range), whether the
    /// file wrote it as a number or as text.
    fn size_with(
        &self,
        value: &Spanned<Size>,
        parse: fn(&str) -> Result<usize, String>,
    ) -> Result<usize, ConfigError> {
        let text = match value.get_ref() {
            Size::Bytes(n) => n.to_string(),
            Size::Text(text) => text.clone(),
        };
        parse(&text).map_err(|e| self.error(value.span().start, e))
    }

    fn size(&self, value: &Spanned<Size>) -> Result<usize, ConfigError> {
        let bytes = match value.get_ref() {
            Size::Bytes(n) => Ok(*n),
            Size::Text(text) => parse_size(text),
        };
        bytes
            .and_then(|n| usize::try_from(n).map_err(|_| "too large".to_owned()))
            .map_err(|e| self.error(value.span().start, e))
    }

    /// A `limits = { … }` table, or `[plugins]`'s limits for every plugin.
    fn limits(
        &self,
        memory: Option<&Spanned<Size>>,
        call_time: Option<&Spanned<String>>,
        deliver_time: Option<&Spanned<String>>,
        max_output: Option<&Spanned<Size>>,
        max_resources: Option<&Spanned<Size>>,
    ) -> Result<LimitArgs, ConfigError> {
        Ok(LimitArgs {
            max_resources: max_resources
                .map(|v| {
                    let text = match v.get_ref() {
                        Size::Bytes(n) => n.to_string(),
                        Size::Text(t) => t.clone(),
                    };
                    self.at(&Spanned::new(v.span(), text), parse_max_resources)
                })
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
    fn options(
        &self,
        sha256: Option<&Spanned<String>>,
        limits: Option<&LimitsTable>,
    ) -> Result<PluginOptions, ConfigError> {
        let limits = match limits {
            Some(t) => self.limits(
                t.memory.as_ref(),
                t.call_time.as_ref(),
                t.deliver_time.as_ref(),
                t.max_output.as_ref(),
                t.max_resources.as_ref(),
            )?,
            None => LimitArgs::default(),
        };
        Ok(PluginOptions {
            sha256: sha256
                .map(|pin| self.at(pin, str::parse::<Sha256Pin>))
                .transpose()?,
            limits,
            lookup_secrets: false,
        })
    }

    /// A plugin file with its grants, configuration, pin and limits.
    fn plugin(
        &self,
        table: PluginFields<'_>,
        offset: usize,
        what: &str,
    ) -> Result<PluginEntry, ConfigError> {
        let Some(path) = table.plugin else {
            return Err(self.error(offset, format!("{what} needs plugin = \"PATH.wasm\"")));
        };
        let plugin = PluginArg {
            path: self.relative(path),
            grants: table
                .grants
                .iter()
                .map(|g| self.grant(g, offset))
                .collect::<Result<_, _>>()?,
            config: match table.config {
                None => Value::Object(Map::new()),
                Some(v @ Value::Object(_)) => v.clone(),
                Some(_) => {
                    return Err(self.error(
                        offset,
                        "config must be a table, e.g. config = { key = \"value\" }",
                    ));
                }
            },
            options: self.options(table.sha256, table.limits)?,
        };
        Ok(PluginEntry {
            plugin,
            line: line_of(&self.text, offset),
        })
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

    fn checker(&self, spanned: &Spanned<CheckerTable>) -> Result<CheckerEntry, ConfigError> {
        let t = spanned.get_ref();
        let offset = spanned.span().start;
        let kind = t.kind.get_ref().as_str();
        let kind_at = t.kind.span().start;
        // Which fields each type takes, to refuse the others by name.
        let given: Vec<(&str, bool)> = vec![
            ("users", t.users.is_some()),
            ("path", t.path.is_some()),
            ("delimiter", t.delimiter.is_some()),
            ("username-field", t.username_field.is_some()),
            ("password-field", t.password_field.is_some()),
            ("case-insensitive", t.case_insensitive.is_some()),
            ("allow", t.allow.is_some()),
            ("database", t.database.is_some()),
            ("query", t.query.is_some()),
            ("passwd", t.passwd.is_some()),
            ("shadow", t.shadow.is_some()),
            ("tokens", t.tokens.is_some()),
            ("jwt", t.jwt.is_some()),
            ("plugin", t.plugin.is_some()),
            ("sha256", t.sha256.is_some()),
            ("grants", !t.grants.is_empty()),
            ("config", t.config.is_some()),
        ];
        let allowed: &[&str] = match kind {
            "memory" => &["users"],
            "file" => &[
                "path",
                "delimiter",
                "username-field",
                "password-field",
                "case-insensitive",
            ],
            "anonymous" => &[],
            "external" => &["allow"],
            "sql" => &["database", "query"],
            "unix" => &["passwd", "shadow"],
            "token" => &["tokens", "jwt"],
            "wasm" => &["plugin", "sha256", "grants", "config"],
            other => {
                return Err(self.error(
                    kind_at,
                    format!(
                        "unknown checker type \"{other}\"; write one of memory, file, \
                         anonymous, external, sql, unix, token, wasm"
                    ),
                ));
            }
        };
        if let Some((field, _)) = given
            .iter()
            .find(|(field, set)| *set && !allowed.contains(field))
        {
            let takes = if allowed.is_empty() {
                "no other fields".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(self.error(
                offset,
                format!("a checker of type \"{kind}\" takes no `{field}` (it takes {takes})"),
            ));
        }
        let spec = match kind {
            "memory" => {
                let users = t.users.clone().unwrap_or_default();
                if users.is_empty() {
                    return Err(self.error(
                        offset,
                        "a memory checker needs users = { name = \"password\" }",
                    ));
                }
                AuthSpec::Memory(users.into_iter().collect())
            }
            "file" => {
                let Some(path) = &t.path else {
                    return Err(self.error(offset, "a file checker needs path = \"PATH\""));
                };
                let mut options = Map::new();
                if let Some(d) = &t.delimiter {
                    if d.chars().count() != 1 {
                        return Err(self.error(
                            offset,
                            format!("delimiter = \"{d}\": write one character, e.g. \":\""),
                        ));
                    }
                    options.insert("delimiter".into(), json!(d));
                }
                if let Some(n) = t.username_field {
                    options.insert("username-field".into(), json!(n));
                }
                if let Some(n) = t.password_field {
                    options.insert("password-field".into(), json!(n));
                }
                if t.username_field.is_some() && t.username_field == t.password_field {
                    return Err(self.error(offset, "username-field and password-field must differ"));
                }
                if t.case_insensitive == Some(true) {
                    options.insert("case-sensitive".into(), json!(false));
                }
                AuthSpec::File {
                    path: self.relative(path),
                    options,
                }
            }
            "anonymous" => AuthSpec::Anonymous,
            "external" => AuthSpec::External(t.allow.clone().unwrap_or_default()),
            "sql" => {
                let Some(database) = &t.database else {
                    return Err(self.error(
                        offset,
                        "an sql checker needs database = \"sqlite:PATH\" or \
                         \"postgresql://user@host/db\"",
                    ));
                };
                let mut arg = database.get_ref().clone();
                if let Some(q) = &t.query {
                    arg.push_str(":query=");
                    arg.push_str(q);
                }
                match self.at(&Spanned::new(database.span(), arg), |a| {
                    format!("sql:{a}").parse::<AuthSpec>()
                })? {
                    AuthSpec::Sql { dsn, query } => AuthSpec::Sql {
                        dsn: match dsn.strip_prefix("sqlite:") {
                            Some(p) => format!("sqlite:{}", self.relative(Path::new(p)).display()),
                            None => dsn,
                        },
                        query,
                    },
                    other => other,
                }
            }
            "unix" => AuthSpec::Unix {
                passwd: t
                    .passwd
                    .as_deref()
                    .map_or_else(|| "/etc/passwd".into(), |p| self.relative(p)),
                shadow: t
                    .shadow
                    .as_deref()
                    .map_or_else(|| "/etc/shadow".into(), |p| self.relative(p)),
            },
            "token" => {
                let mut config = Map::new();
                match &t.jwt {
                    None => {}
                    Some(v @ Value::Object(_)) => {
                        config.insert("jwt".into(), v.clone());
                    }
                    Some(_) => {
                        return Err(self.error(
                            offset,
                            "jwt must be a table, e.g. jwt = { hs256-secret = \"…\" }",
                        ));
                    }
                }
                if t.tokens.is_none() && config.is_empty() {
                    return Err(self.error(
                        offset,
                        "a token checker needs tokens = \"PATH\", a jwt table, or both",
                    ));
                }
                AuthSpec::Token {
                    tokens: t.tokens.as_deref().map(|p| self.relative(p)),
                    config,
                }
            }
            _ => {
                let entry = self.plugin(t.fields(), offset, "a wasm checker")?;
                // The options stay with the entry, as for every checker.
                AuthSpec::Wasm(PluginArg {
                    options: PluginOptions::default(),
                    ..entry.plugin
                })
            }
        };
        let options = self.options(t.sha256.as_ref(), t.limits.as_ref())?;
        let kinds = t
            .kinds
            .as_ref()
            .map(|kinds| {
                kinds
                    .get_ref()
                    .iter()
                    .map(|k| {
                        CredentialKind::ALL
                            .into_iter()
                            .find(|c| c.as_str() == k)
                            .ok_or_else(|| {
                                self.error(
                                    kinds.span().start,
                                    format!(
                                        "unknown credential kind \"{k}\"; write some of {}",
                                        CredentialKind::ALL.map(|c| c.as_str()).join(", ")
                                    ),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        if kinds.as_ref().is_some_and(Vec::is_empty) {
            return Err(self.error(offset, "kinds = [] serves nothing; remove the checker"));
        }
        Ok(CheckerEntry {
            spec,
            kinds,
            options,
            line: line_of(&self.text, offset),
        })
    }

    fn realm(
        &self,
        spanned: &Spanned<RealmTable>,
        args: &mut Args,
        builtins: &mut BTreeMap<String, (PluginOptions, usize)>,
    ) -> Result<Option<(AvatarInterface, PluginEntry)>, ConfigError> {
        let t = spanned.get_ref();
        let offset = spanned.span().start;
        let interface = match t.serves.get_ref().as_str() {
            "echo" => AvatarInterface::Echo,
            "message-delivery" => AvatarInterface::MessageDelivery,
            other => {
                return Err(self.error(
                    t.serves.span().start,
                    format!("unknown avatar interface \"{other}\"; write serves = \"echo\" or \"message-delivery\""),
                ));
            }
        };
        match (&t.builtin, &t.plugin) {
            (Some(_), Some(_)) => Err(self.error(
                offset,
                "a realm is either builtin = \"NAME\" or plugin = \"PATH.wasm\", not both",
            )),
            (None, None) => Err(self.error(
                offset,
                "a realm needs builtin = \"echo\" | \"console\" | \"maildir\", or plugin = \"PATH.wasm\"",
            )),
            (None, Some(_)) => {
                if t.maildir.is_some() {
                    return Err(self.error(offset, "maildir = … goes with builtin = \"maildir\""));
                }
                let entry = self.plugin(t.fields(), offset, "a realm")?;
                Ok(Some((interface, entry)))
            }
            (Some(name), None) => {
                let wanted = match name.get_ref().as_str() {
                    "echo" => AvatarInterface::Echo,
                    "console" | "maildir" => AvatarInterface::MessageDelivery,
                    other => {
                        return Err(self.error(
                            name.span().start,
                            format!("unknown built-in realm \"{other}\"; write echo, console or maildir"),
                        ));
                    }
                };
                if wanted != interface {
                    return Err(self.error(
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
                    ("maildir", Some(dir)) => args.maildir = Some(self.relative(dir)),
                    ("maildir", None) => {
                        return Err(self.error(
                            offset,
                            "the maildir realm needs maildir = \"FOLDER\" (one Maildir per recipient)",
                        ));
                    }
                    (_, Some(_)) => {
                        return Err(self.error(offset, "maildir = … goes with builtin = \"maildir\""));
                    }
                    (_, None) => {}
                }
                if !t.grants.is_empty() || t.config.is_some() || t.sha256.is_some()
                {
                    return Err(self.error(
                        offset,
                        "a built-in realm takes no grants, config or sha256 (limits it does)",
                    ));
                }
                let options = self.options(None, t.limits.as_ref())?;
                builtins.insert(
                    name.get_ref().clone(),
                    (options, line_of(&self.text, offset)),
                );
                Ok(None)
            }
        }
    }

    /// Lays the file's settings under `args`: a setting the command line
    /// gave explicitly (`matches`) wins.
    pub fn apply(&self, args: &mut Args, matches: &ArgMatches) -> Result<(), ConfigError> {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        let f = &self.file;
        let mut extra = Extra {
            source: Some(self.path.clone()),
            ..Extra::default()
        };
        macro_rules! set {
            ($field:ident, $value:expr) => {
                if !given(stringify!($field)) {
                    if let Some(v) = $value {
                        args.$field = v;
                    }
                }
            };
        }

        set!(server_name, f.server_name.clone());

        // Listeners: the file's list; a listener flag on the command line
        // replaces the file's listeners of its kind.
        if !f.listener.is_empty() {
            let mut listeners = Vec::new();
            for l in &f.listener {
                let offset = l.span().start;
                let l = l.get_ref();
                let address = self.at(&l.address, |a| {
                    a.parse::<SocketAddr>()
                        .map_err(|_| format!("\"{a}\" is not an address; write e.g. \"127.0.0.1:2525\" or \"[::1]:2525\""))
                })?;
                let tls = match (l.protocol, l.tls) {
                    (Protocol::Smtp, None) => ListenerTls::Starttls,
                    (Protocol::Echo, None | Some(ListenerTls::None)) => ListenerTls::None,
                    (Protocol::Echo, Some(_)) => {
                        return Err(self.error(
                            offset,
                            "the echo service has no TLS; write tls = \"none\" or leave it out",
                        ));
                    }
                    (Protocol::Smtp, Some(tls)) => tls,
                };
                listeners.push(Listener {
                    protocol: l.protocol,
                    address,
                    tls,
                });
            }
            let flags = [
                ("smtp_listen", Protocol::Smtp, ListenerTls::Starttls),
                ("smtps_listen", Protocol::Smtp, ListenerTls::Implicit),
                ("echo_listen", Protocol::Echo, ListenerTls::None),
            ];
            for (id, protocol, tls) in flags {
                if given(id) {
                    listeners.retain(|l| !(l.protocol == protocol && l.tls == tls));
                    let address = match id {
                        "smtp_listen" => Some(args.smtp_listen),
                        "smtps_listen" => args.smtps_listen,
                        _ => Some(args.echo_listen),
                    };
                    if let Some(address) = address {
                        listeners.push(Listener {
                            protocol,
                            address,
                            tls,
                        });
                    }
                }
            }
            extra.listeners = Some(listeners);
        }

        if let Some(tls) = &f.tls {
            let (cert_given, key_given) = (given("tls_cert"), given("tls_key"));
            if !cert_given && !key_given {
                match (&tls.cert, &tls.key) {
                    (Some(c), Some(k)) => {
                        args.tls_cert = Some(self.relative(c.get_ref()));
                        args.tls_key = Some(self.relative(k.get_ref()));
                        extra.tls_lines = Some((
                            line_of(&self.text, c.span().start),
                            line_of(&self.text, k.span().start),
                        ));
                    }
                    (None, None) => {}
                    _ => {
                        return Err(self.error(
                            self.table_offset("tls"),
                            "[tls] needs both cert and key, or neither (a self-signed certificate)",
                        ));
                    }
                }
            }
            set!(
                tls_client_ca,
                tls.client_ca.as_deref().map(|p| Some(self.relative(p)))
            );
            set!(
                tls_cert_out,
                tls.cert_out.as_deref().map(|p| Some(self.relative(p)))
            );
        }

        if let Some(a) = &f.auth {
            set!(auth_required, a.required);
            let tls_only = match a.tls_only.as_ref().map(|v| (v.get_ref(), v.span())) {
                None => None,
                Some((TlsOnlyValue::Bool(true), _)) => Some(TlsOnly::Yes),
                Some((TlsOnlyValue::Bool(false), _)) => Some(TlsOnly::No),
                Some((TlsOnlyValue::Word(w), span)) => Some(match w.as_str() {
                    "auto" => TlsOnly::Auto,
                    "yes" => TlsOnly::Yes,
                    "no" => TlsOnly::No,
                    other => {
                        return Err(self.error(
                            span.start,
                            format!("tls-only = \"{other}\": write \"auto\", true or false"),
                        ));
                    }
                }),
            };
            set!(auth_tls_only, tls_only);
            set!(
                auth_failure_delay,
                a.failure_delay
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
            set!(max_auth_failures, a.max_failures);
            set!(
                auth_penalty,
                a.penalty.as_ref().map(|d| self.duration(d)).transpose()?
            );
            set!(
                auth_penalty_cap,
                a.penalty_cap
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
            let trusted = self.networks(a.penalty_trusted.as_ref(), "penalty-trusted")?;
            set!(auth_penalty_trusted, trusted);
            set!(
                auth_step_timeout,
                a.step_timeout
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
            let lookups = self.number_within(a.max_lookups.as_ref(), "max-lookups", 1..=64)?;
            set!(max_lookups, lookups);
            if !given("exclude_mechanisms") && !a.exclude_mechanisms.is_empty() {
                args.exclude_mechanisms = a.exclude_mechanisms.clone();
            }
        }

        if let Some(s) = &f.sessions {
            set!(max_sessions, s.max);
            set!(max_connections_per_address, s.max_per_address);
            set!(max_exchanges_per_address, s.max_exchanges_per_address);
            let exempt = self.networks(s.limit_exempt.as_ref(), "limit-exempt")?;
            set!(client_limit_exempt, exempt);
            let bare_newline = s
                .bare_newline
                .as_ref()
                .map(|v| {
                    self.at(v, |word| match word {
                        "normalize" => Ok(crate::smtp::BareNewline::Normalize),
                        "reject" => Ok(crate::smtp::BareNewline::Reject),
                        other => Err(format!(
                            "bare-newline = \"{other}\": write \"normalize\" or \"reject\""
                        )),
                    })
                })
                .transpose()?;
            set!(bare_newline, bare_newline);
            set!(
                idle_timeout,
                s.idle_timeout
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
            set!(
                session_timeout,
                s.session_timeout
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
            set!(
                max_message_size,
                s.max_message_size
                    .as_ref()
                    .map(|v| self.size(v))
                    .transpose()?
            );
        }

        if let Some(p) = &f.plugins {
            let budget =
                |n: Option<&Spanned<u32>>, key: &str| self.number_within(n, key, 1..=100_000);
            set!(
                max_exchanges,
                budget(p.max_exchanges.as_ref(), "max-exchanges")?
            );
            set!(max_checks, budget(p.max_checks.as_ref(), "max-checks")?);
            set!(
                max_avatars,
                budget(p.max_avatars.as_ref(), "max-avatars")?.map(Some)
            );
            if !given("cache_dir") && !given("no_cache") {
                if p.cache == Some(false) {
                    args.no_cache = true;
                    args.cache_dir = None;
                } else if let Some(dir) = &p.cache_dir {
                    args.cache_dir = Some(self.relative(dir));
                }
            }
            let limits = self.limits(
                p.memory.as_ref(),
                p.call_time.as_ref(),
                p.deliver_time.as_ref(),
                p.max_output.as_ref(),
                p.max_resources.as_ref(),
            )?;
            set!(plugin_max_resources, limits.max_resources.map(Some));
            set!(plugin_memory, limits.memory.map(Some));
            set!(plugin_call_time, limits.call_time.map(Some));
            set!(plugin_deliver_time, limits.deliver_time.map(Some));
            set!(plugin_max_output, limits.max_output.map(Some));
            let wasm_stack = p
                .wasm_stack
                .as_ref()
                .map(|v| self.size_with(v, parse_wasm_stack))
                .transpose()?;
            set!(plugin_wasm_stack, wasm_stack.map(Some));
        }

        if let Some(l) = &f.log {
            set!(
                log_format,
                l.format.as_ref().map(|f| match f {
                    LogFormatValue::Human => LogFormat::Human,
                    LogFormatValue::Json => LogFormat::Json,
                })
            );
            set!(log, l.filter.clone());
        }
        if let Some(m) = &f.metrics {
            let listen = m
                .listen
                .as_ref()
                .map(|a| {
                    self.at(a, |a| {
                        a.parse::<SocketAddr>().map(Some).map_err(|_| {
                            format!("\"{a}\" is not an address; write e.g. \"127.0.0.1:9100\"")
                        })
                    })
                })
                .transpose()?;
            set!(metrics_listen, listen);
        }
        if let Some(s) = &f.service {
            set!(user, s.user.clone().map(Some));
            set!(group, s.group.clone().map(Some));
            set!(
                control_socket,
                s.control_socket.as_deref().map(|p| Some(self.relative(p)))
            );
            set!(
                shutdown_grace,
                s.shutdown_grace
                    .as_ref()
                    .map(|d| self.duration(d))
                    .transpose()?
            );
        }

        // Plugins. `--auth`, `--mechanism` and `--realm` on the command line
        // replace the file's lists of their kind.
        for c in &f.checker {
            extra.checkers.push(self.checker(c)?);
        }
        if given("auth") {
            extra.checkers.clear();
        }
        for m in &f.mechanism {
            let mut entry = self.plugin(m.get_ref().fields(), m.span().start, "a mechanism")?;
            entry.plugin.options.lookup_secrets = m.get_ref().lookup_secrets.unwrap_or(false);
            extra.mechanisms.push(entry);
        }
        if given("mechanisms") {
            extra.mechanisms.clear();
        }
        let maildir_given = given("maildir");
        let maildir_before = args.maildir.clone();
        for r in &f.realm {
            if let Some(realm) = self.realm(r, args, &mut extra.builtin_realms)? {
                extra.realms.push(realm);
            }
        }
        if maildir_given {
            args.maildir = maildir_before;
        }
        if given("realms") {
            extra.realms.clear();
            extra.builtin_realms.clear();
        }
        args.extra = extra;
        Ok(())
    }

    /// Where `[name]` starts, for errors about a whole table.
    fn table_offset(&self, name: &str) -> usize {
        self.text.find(&format!("[{name}]")).unwrap_or(0)
    }
}

impl RealmArg {
    /// The realm a file entry stands for.
    pub fn from_entry(interface: AvatarInterface, entry: &PluginEntry) -> RealmArg {
        RealmArg {
            interface,
            plugin: entry.plugin.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    fn apply(text: &str, argv: &[&str]) -> Result<Args, ConfigError> {
        let matches = Args::command()
            .try_get_matches_from(std::iter::once("portcullis").chain(argv.iter().copied()))
            .unwrap();
        let mut args = Args::from_arg_matches(&matches).unwrap();
        parse(Path::new("/etc/portcullis/p.toml"), text.to_owned())?.apply(&mut args, &matches)?;
        Ok(args)
    }

    fn error(text: &str) -> String {
        apply(text, &[]).unwrap_err().to_string()
    }

    #[test]
    fn the_example_file_is_valid() {
        let text = include_str!("../../../examples/portcullis.toml");
        let args = apply(text, &[]).unwrap();
        assert!(args.extra.listeners.as_ref().is_some_and(|l| l.len() >= 2));
        assert!(!args.extra.checkers.is_empty());
    }

    #[test]
    fn settings_and_overrides() {
        let text = r#"
server-name = "mail.example.com"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:2587"
[[listener]]
protocol = "smtp"
address = "127.0.0.1:2465"
tls = "implicit"
[[listener]]
protocol = "echo"
address = "127.0.0.1:8001"
[auth]
required = true
tls-only = false
failure-delay = "250ms"
[sessions]
max-message-size = "1M"
[[checker]]
type = "memory"
users = { alice = "wonder:land" }
kinds = ["username-password"]
"#;
        let args = apply(text, &[]).unwrap();
        assert_eq!(args.server_name, "mail.example.com");
        assert!(args.auth_required);
        assert_eq!(args.auth_tls_only, TlsOnly::No);
        assert_eq!(args.auth_failure_delay, Duration::from_millis(250));
        assert_eq!(args.max_message_size, 1 << 20);
        let listeners = args.extra.listeners.as_ref().unwrap();
        assert_eq!(listeners.len(), 3);
        assert_eq!(listeners[1].tls, ListenerTls::Implicit);
        let c = &args.extra.checkers[0];
        assert_eq!(
            c.spec,
            AuthSpec::Memory(vec![("alice".into(), "wonder:land".into())])
        );
        assert_eq!(c.kinds, Some(vec![CredentialKind::UsernamePassword]));
        assert_eq!(c.line, 19, "the line of [[checker]]");

        // The command line wins.
        let args = apply(
            text,
            &[
                "--server-name",
                "cli.example",
                "--auth-failure-delay",
                "2s",
                "--echo-listen",
                "127.0.0.1:9",
                "--auth",
                "anonymous",
            ],
        )
        .unwrap();
        assert_eq!(args.server_name, "cli.example");
        assert_eq!(args.auth_failure_delay, Duration::from_secs(2));
        let listeners = args.extra.listeners.as_ref().unwrap();
        assert_eq!(
            listeners
                .iter()
                .filter(|l| l.protocol == Protocol::Echo)
                .map(|l| l.address.to_string())
                .collect::<Vec<_>>(),
            ["127.0.0.1:9"]
        );
        assert!(
            args.extra.checkers.is_empty(),
            "--auth replaces [[checker]]"
        );
    }

    #[test]
    fn plugins_relative_to_the_file() {
        let text = r#"
[[checker]]
type = "wasm"
plugin = "plugins/users.wasm"
sha256 = "AB00000000000000000000000000000000000000000000000000000000000000"
grants = [{ dir = "data" }, { dir = "/srv/spool", at = "/spool", writable = true }]
config = { file = "/grant/users.json" }
limits = { memory = "32M", call-time = "500ms" }
[[mechanism]]
plugin = "/opt/x-totp.wasm"
[[realm]]
serves = "message-delivery"
builtin = "maildir"
maildir = "mail"
"#;
        let args = apply(text, &[]).unwrap();
        let c = &args.extra.checkers[0];
        let AuthSpec::Wasm(PluginArg {
            path,
            grants,
            config,
            options,
        }) = &c.spec
        else {
            panic!("{:?}", c.spec)
        };
        assert_eq!(path, Path::new("/etc/portcullis/plugins/users.wasm"));
        assert_eq!(grants[0].host_path, Path::new("/etc/portcullis/data"));
        assert_eq!(grants[0].guest_path, "/grant");
        assert!(grants[1].writable);
        assert_eq!(config["file"], "/grant/users.json");
        assert_eq!(options, &PluginOptions::default(), "kept in the entry");
        assert_eq!(c.options.limits.memory, Some(32 << 20));
        assert_eq!(c.options.limits.call_time, Some(Duration::from_millis(500)));
        let pin = c.options.sha256.unwrap().to_string();
        assert!(pin.starts_with("ab00"), "{pin}");
        assert_eq!(
            args.extra.mechanisms[0].plugin.path,
            Path::new("/opt/x-totp.wasm")
        );
        assert_eq!(
            args.maildir.as_deref(),
            Some(Path::new("/etc/portcullis/mail"))
        );
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        let cases = [
            ("[auth]\nrequird = true\n", ":2: unknown field `requird`"),
            (
                "[[listener]]\nprotocol = \"smtp\"\naddress = \"localhost\"\n",
                ":3: \"localhost\" is not an address; write e.g.",
            ),
            (
                "[[listener]]\nprotocol = \"imap\"\naddress = \"127.0.0.1:1\"\n",
                ":2: unknown variant `imap`, expected `smtp` or `echo`",
            ),
            (
                "\n\n[auth]\nfailure-delay = \"1 s\"\n",
                ":4: \"1 s\" is not a duration (unknown unit",
            ),
            (
                "[[checker]]\ntype = \"fiel\"\n",
                ":2: unknown checker type \"fiel\"; write one of memory, file",
            ),
            (
                "[[checker]]\ntype = \"file\"\nusers = {a = \"b\"}\n",
                ":1: a checker of type \"file\" takes no `users`",
            ),
            (
                "[[checker]]\ntype = \"memory\"\nusers = {a = \"b\"}\nkinds = [\"scram\"]\n",
                ":4: unknown credential kind \"scram\"",
            ),
            (
                "[[checker]]\ntype = \"wasm\"\nplugin = \"x.wasm\"\nsha256 = \"abc\"\n",
                ":4: sha256 \"abc\" is not a SHA-256 digest; write the 64 hexadecimal digits",
            ),
            (
                "[plugins]\nmemory = \"4G\"\n",
                ":2: memory 4G is out of range; write a size from 1M to 512M",
            ),
            (
                "[plugins]\n\nmemory = 1024\n",
                ":3: memory 1024 is out of range",
            ),
            (
                "[plugins]\nmax-exchanges = 0\n",
                ":2: max-exchanges = 0 is out of range; write 1 to 100000",
            ),
            (
                "[[mechanism]]\nplugin = \"m.wasm\"\nlimits = { call-time = \"1h\" }\n",
                ":3: call-time 1h is out of range; write a duration from 10ms to 5m",
            ),
            (
                "[[checker]]\ntype = \"memory\"\nusers = {a = \"b\"}\nlimits = { max-output = \"1\" }\n",
                ":4: max-output 1 is out of range",
            ),
            (
                "[plugins]\nmemory = \"12Q\"\n",
                ":2: memory: unknown size unit \"Q\"",
            ),
            (
                "[[realm]]\nserves = \"echo\"\nbuiltin = \"maildir\"\n",
                ":3: the built-in realm \"maildir\" serves message-delivery, not echo",
            ),
            (
                "[tls]\ncert = \"c.pem\"\n",
                ":1: [tls] needs both cert and key",
            ),
            ("port = 25\n", ":1: unknown field `port`"),
            ("[auth\n", ":1: "),
        ];
        for (text, want) in cases {
            let got = error(text);
            assert!(
                got.starts_with("/etc/portcullis/p.toml") && got.contains(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }
}
