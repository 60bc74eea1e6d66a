//! `[[checker]]`: which plugin decides which credentials. A checker table
//! is a tagged enum: `type = "file"` picks the variant, and each variant
//! takes its own fields and no other (`deny_unknown_fields`), besides the
//! `kinds` and `limits` every type takes.
//!
//! serde's internally tagged enums buffer the table before they look at
//! the tag, which loses the positions errors need; so the `type` key is
//! taken out and made the enum's external tag (`{ file = { … } }`), which
//! toml's own deserializer reads with every position kept.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::plugins::{GrantTable, PluginRef};
use super::values::LimitsTable;
use super::{ConfigError, Source};
use crate::cli::{AuthSpec, PluginArg, PluginOptions};
use crate::plan::CheckerPlan;
use crate::portal::CredentialKind;

/// One `[[checker]]`, typed.
#[derive(Debug)]
pub(super) struct CheckerTable {
    /// Where the table starts.
    offset: usize,
    common: Common,
    checker: Checker,
}

/// What every type of checker takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    kinds: Option<Spanned<Vec<String>>>,
    limits: Option<LimitsTable>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Checker {
    Memory(MemoryChecker),
    File(FileChecker),
    Anonymous(NoFields),
    External(ExternalChecker),
    Sql(SqlChecker),
    Unix(UnixChecker),
    Token(TokenChecker),
    Wasm(WasmChecker),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryChecker {
    users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileChecker {
    path: Option<PathBuf>,
    delimiter: Option<String>,
    username_field: Option<u32>,
    password_field: Option<u32>,
    case_insensitive: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoFields {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalChecker {
    allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlChecker {
    database: Option<Spanned<String>>,
    pool: Option<usize>,
    query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnixChecker {
    passwd: Option<PathBuf>,
    shadow: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenChecker {
    tokens: Option<PathBuf>,
    jwt: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WasmChecker {
    plugin: Option<PathBuf>,
    sha256: Option<Spanned<String>>,
    #[serde(default)]
    grants: Vec<GrantTable>,
    config: Option<Value>,
}

/// The `checker` array of the document.
pub(super) fn parse(
    src: &Source,
    tables: Spanned<DeValue<'_>>,
) -> Result<Vec<CheckerTable>, ConfigError> {
    let span = tables.span();
    let DeValue::Array(tables) = tables.into_inner() else {
        return Err(src.error(span.start, "write each checker as a [[checker]] table"));
    };
    tables.into_iter().map(|t| one(src, t)).collect()
}

fn one(src: &Source, table: Spanned<DeValue<'_>>) -> Result<CheckerTable, ConfigError> {
    let span = table.span();
    let DeValue::Table(mut table) = table.into_inner() else {
        return Err(src.error(span.start, "write each checker as a [[checker]] table"));
    };
    let Some(kind) = table.remove("type") else {
        return Err(src.error(
            span.start,
            "a checker needs type = \"TYPE\": memory, file, anonymous, external, sql, unix, \
             token or wasm",
        ));
    };
    let kind_span = kind.span();
    let DeValue::String(name) = kind.into_inner() else {
        return Err(src.error(
            kind_span.start,
            "write type = \"file\" (or another type, in quotes)",
        ));
    };
    let mut common = DeTable::new();
    for key in ["kinds", "limits"] {
        if let Some((k, v)) = table.remove_entry(key) {
            common.insert(k, v);
        }
    }
    let common = super::deserialize(src, Spanned::new(span.clone(), DeValue::Table(common)))?;
    let mut tagged = DeTable::new();
    tagged.insert(
        Spanned::new(kind_span.clone(), name.clone()),
        Spanned::new(span.clone(), DeValue::Table(table)),
    );
    let tagged = Spanned::new(span.clone(), DeValue::Table(tagged));
    let checker = Checker::deserialize(toml::de::ValueDeserializer::from(tagged))
        .map_err(|e| explain(src, &e, &name, kind_span))?;
    Ok(CheckerTable {
        offset: span.start,
        common,
        checker,
    })
}

/// serde's messages about a checker, in the checker's terms.
fn explain(src: &Source, e: &toml::de::Error, kind: &str, kind_span: Range<usize>) -> ConfigError {
    let message = e.message().trim();
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let types = rest.split_once("expected one of ").map_or("", |(_, t)| t);
        return src.error(
            kind_span.start,
            format!(
                "unknown checker type \"{kind}\"; write one of {}",
                types.replace('`', "")
            ),
        );
    }
    let mut error = src.toml_error(e);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let (field, expected) = rest.split_once(", ").unwrap_or((rest, ""));
        // serde writes `a`, `a` or `b`, or one of `a`, `b`, `c`.
        let takes = match expected.strip_prefix("expected ") {
            Some(list) => {
                let list = list.strip_prefix("one of ").unwrap_or(list);
                let list = list.replace(" or ", ", ").replace('`', "");
                format!("it takes {list}, kinds and limits")
            }
            None => "it takes only kinds and limits".to_owned(),
        };
        error.message = format!("a checker of type \"{kind}\" takes no {field} ({takes})");
    }
    error
}

impl CheckerTable {
    pub(super) fn plan(&self, src: &Source) -> Result<CheckerPlan, ConfigError> {
        let offset = self.offset;
        let spec = match &self.checker {
            Checker::Memory(t) => {
                let users = t.users.clone().unwrap_or_default();
                if users.is_empty() {
                    return Err(src.error(
                        offset,
                        "a memory checker needs users = { name = \"password\" }",
                    ));
                }
                AuthSpec::Memory(users.into_iter().collect())
            }
            Checker::File(t) => t.spec(src, offset)?,
            Checker::Anonymous(NoFields {}) => AuthSpec::Anonymous,
            Checker::External(t) => AuthSpec::External(t.allow.clone().unwrap_or_default()),
            Checker::Sql(t) => t.spec(src, offset)?,
            Checker::Unix(t) => AuthSpec::Unix {
                passwd: t
                    .passwd
                    .as_deref()
                    .map_or_else(|| "/etc/passwd".into(), |p| src.relative(p)),
                shadow: t
                    .shadow
                    .as_deref()
                    .map_or_else(|| "/etc/shadow".into(), |p| src.relative(p)),
            },
            Checker::Token(t) => t.spec(src, offset)?,
            Checker::Wasm(t) => {
                let fields = PluginRef {
                    plugin: t.plugin.as_ref(),
                    sha256: None,
                    grants: &t.grants,
                    config: t.config.as_ref(),
                    limits: None,
                };
                // The pin and limits stay with the plan, as for every checker.
                AuthSpec::Wasm(PluginArg {
                    options: PluginOptions::default(),
                    ..src.plugin(fields, offset, "a wasm checker")?
                })
            }
        };
        let sha256 = match &self.checker {
            Checker::Wasm(t) => t.sha256.as_ref(),
            _ => None,
        };
        Ok(CheckerPlan {
            spec,
            kinds: self.kinds(src)?,
            options: src.options(sha256, self.common.limits.as_ref())?,
            origin: src.origin(offset, "[[checker]]"),
        })
    }

    fn kinds(&self, src: &Source) -> Result<Option<Vec<CredentialKind>>, ConfigError> {
        let Some(kinds) = &self.common.kinds else {
            return Ok(None);
        };
        let parsed = kinds
            .get_ref()
            .iter()
            .map(|k| {
                CredentialKind::ALL
                    .into_iter()
                    .find(|c| c.as_str() == k)
                    .ok_or_else(|| {
                        src.error(
                            kinds.span().start,
                            format!(
                                "unknown credential kind \"{k}\"; write some of {}",
                                CredentialKind::ALL.map(|c| c.as_str()).join(", ")
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(src.error(self.offset, "kinds = [] serves nothing; remove the checker"));
        }
        Ok(Some(parsed))
    }
}

impl FileChecker {
    fn spec(&self, src: &Source, offset: usize) -> Result<AuthSpec, ConfigError> {
        let Some(path) = &self.path else {
            return Err(src.error(offset, "a file checker needs path = \"PATH\""));
        };
        let mut options = Map::new();
        if let Some(d) = &self.delimiter {
            if d.chars().count() != 1 {
                return Err(src.error(
                    offset,
                    format!("delimiter = \"{d}\": write one character, e.g. \":\""),
                ));
            }
            options.insert("delimiter".into(), json!(d));
        }
        if let Some(n) = self.username_field {
            options.insert("username-field".into(), json!(n));
        }
        if let Some(n) = self.password_field {
            options.insert("password-field".into(), json!(n));
        }
        if self.username_field.is_some() && self.username_field == self.password_field {
            return Err(src.error(offset, "username-field and password-field must differ"));
        }
        if self.case_insensitive == Some(true) {
            options.insert("case-sensitive".into(), json!(false));
        }
        Ok(AuthSpec::File {
            path: src.relative(path),
            options,
        })
    }
}

impl SqlChecker {
    fn spec(&self, src: &Source, offset: usize) -> Result<AuthSpec, ConfigError> {
        let Some(database) = &self.database else {
            return Err(src.error(
                offset,
                "an sql checker needs database = \"sqlite:PATH\" or \
                 \"postgresql://user@host/db\"",
            ));
        };
        let mut arg = database.get_ref().clone();
        if let Some(n) = self.pool {
            arg.push_str(&format!(":pool={n}"));
        }
        if let Some(q) = &self.query {
            arg.push_str(":query=");
            arg.push_str(q);
        }
        Ok(
            match src.at(&Spanned::new(database.span(), arg), |a| {
                format!("sql:{a}").parse::<AuthSpec>()
            })? {
                AuthSpec::Sql { dsn, query, pool } => AuthSpec::Sql {
                    dsn: match dsn.strip_prefix("sqlite:") {
                        Some(p) => format!("sqlite:{}", src.relative(Path::new(p)).display()),
                        None => dsn,
                    },
                    query,
                    pool,
                },
                other => other,
            },
        )
    }
}

impl TokenChecker {
    fn spec(&self, src: &Source, offset: usize) -> Result<AuthSpec, ConfigError> {
        let mut config = Map::new();
        match &self.jwt {
            None => {}
            Some(v @ Value::Object(_)) => {
                config.insert("jwt".into(), v.clone());
            }
            Some(_) => {
                return Err(src.error(
                    offset,
                    "jwt must be a table, e.g. jwt = { hs256-secret = \"…\" }",
                ));
            }
        }
        if self.tokens.is_none() && config.is_empty() {
            return Err(src.error(
                offset,
                "a token checker needs tokens = \"PATH\", a jwt table, or both",
            ));
        }
        Ok(AuthSpec::Token {
            tokens: self.tokens.as_deref().map(|p| src.relative(p)),
            config,
        })
    }
}
