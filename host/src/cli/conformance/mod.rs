//! `portcullis plugin test FILE.wasm[:grant=DIR]...[:{JSON}]`: the
//! conformance kit. It loads the plugin with the server's own runtime
//! (same sandbox, same limits, same contract checks) and drives it through
//! the rules of its WIT contract, one report line per rule. A plugin that
//! traps, times out or breaks the contract on any rule fails it.
//!
//! One file per plugin kind ([`mechanism`], [`checker`], [`realm`]); the
//! rules every kind shares (`grants-untouched`, `sandbox`) are here.
//!
//! What it can and cannot tell: it calls the plugin with hostile and
//! ordinary inputs and judges the answers; it does not know a mechanism's
//! protocol, so "never succeeds twice" is checked on whatever successes
//! generic messages reach. It sees what changed in the granted folders,
//! but not what the plugin tried to read outside them: such a read fails
//! inside the sandbox, which grants exactly the folders given here.

mod checker;
mod mechanism;
mod realm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context as _;

use super::plugin_arg::PluginArg;
use crate::plugin::{Grant, Plugin, PluginKind, PluginSpec, Runtime, RuntimeConfig, WIT_PACKAGE};
use crate::portal::Fault;

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin, as for --mechanism / --auth wasm:
    /// PATH[:grant=DIR[@GUEST]]...[:{JSON}].
    #[arg(value_name = "FILE[:grant=DIR]...[:{JSON}]")]
    pub plugin: PluginArg,
    /// A user the checker should accept (with --password).
    #[arg(long, value_name = "NAME", requires = "password")]
    pub user: Option<String>,
    /// That user's password.
    #[arg(long, value_name = "PASSWORD", requires = "user")]
    pub password: Option<String>,
    /// Grant a SQL checker the default `credentials` query on this
    /// database (as --auth sql:DSN does).
    #[arg(long, value_name = "DSN")]
    pub sql: Option<String>,
}

/// How one rule went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass(String),
    Fail(String),
    /// Not applicable, or not checkable without more input.
    Skip(String),
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct RuleResult {
    pub rule: &'static str,
    pub outcome: Outcome,
}

/// The whole report.
#[derive(Debug)]
pub struct Report {
    pub plugin: String,
    pub kind: PluginKind,
    pub results: Vec<RuleResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_)))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    pub fn to_text(&self) -> String {
        let mut out = format!("{} ({})\n", self.plugin, self.kind.as_str());
        for r in &self.results {
            let (word, why) = match &r.outcome {
                Outcome::Pass(why) => ("pass", why),
                Outcome::Fail(why) => ("FAIL", why),
                Outcome::Skip(why) => ("skip", why),
            };
            out.push_str(&format!("{word}  {:<22} {why}\n", r.rule));
        }
        out.push_str(&format!(
            "{} rules: {} passed, {} failed, {} skipped\n",
            self.results.len(),
            self.count(|o| matches!(o, Outcome::Pass(_))),
            self.failed(),
            self.count(|o| matches!(o, Outcome::Skip(_))),
        ));
        out
    }
}

/// Loads the plugin and runs every rule of its kind.
pub async fn run(args: &TestArgs) -> anyhow::Result<Report> {
    let runtime = Runtime::new(&RuntimeConfig {
        budgets: crate::plugin::Budgets {
            exchanges: 16,
            checks: 16,
            avatars: 16,
        },
        ..RuntimeConfig::default()
    })?;
    let mut spec = PluginSpec::from_file(&args.plugin.path)?;
    spec.config = args.plugin.config.to_string();
    for g in &args.plugin.grants {
        spec.grants.push(Grant {
            host_path: g.host_path.clone(),
            guest_path: g.guest_path.clone(),
            writable: g.writable,
        });
    }
    if let Some(dsn) = &args.sql {
        spec.sql = Some(Arc::new(sql_grant(dsn).await?));
    }
    let grants: Vec<String> = spec
        .grants
        .iter()
        .map(|g| {
            format!(
                "{} as {}{}",
                g.host_path.display(),
                g.guest_path,
                if g.writable { " (read-write)" } else { "" }
            )
        })
        .collect();
    let folders: Vec<PathBuf> = spec.grants.iter().map(|g| g.host_path.clone()).collect();
    let plugin = runtime.load(spec).await?;
    let before = snapshot(&folders);
    let mut results = match plugin.kind() {
        PluginKind::Mechanism => mechanism::mechanism_rules(&plugin).await,
        PluginKind::Checker => checker::checker_rules(&plugin, args).await,
        PluginKind::Realm => realm::realm_rules(&plugin).await,
    };
    results.push(untouched_rule(&before, &snapshot(&folders)));
    results.push(sandbox_rule(&plugin, &grants));
    Ok(Report {
        plugin: args.plugin.path.display().to_string(),
        kind: plugin.kind(),
        results,
    })
}

async fn sql_grant(dsn: &str) -> anyhow::Result<crate::sql::SqlGrant> {
    let text = if dsn.starts_with("sqlite:") {
        crate::sql::DEFAULT_SQLITE_QUERY
    } else {
        crate::sql::DEFAULT_POSTGRES_QUERY
    };
    let queries = std::collections::BTreeMap::from([(
        crate::sql::DEFAULT_QUERY_NAME.to_owned(),
        text.to_owned(),
    )]);
    crate::sql::SqlGrant::open(dsn, queries, None)
        .await
        .context("--sql")
}

fn rule(rule: &'static str, outcome: Outcome) -> RuleResult {
    RuleResult { rule, outcome }
}

fn pass(why: impl Into<String>) -> Outcome {
    Outcome::Pass(why.into())
}

fn fail(why: impl Into<String>) -> Outcome {
    Outcome::Fail(why.into())
}

fn faulted(what: &str, fault: &Fault) -> Outcome {
    fail(format!("{what}: {}: {}", fault.kind, fault.detail))
}

/// Every file and folder under the grants: its size and modification time.
type Snapshot = BTreeMap<PathBuf, Option<(u64, SystemTime)>>;

fn snapshot(folders: &[PathBuf]) -> Snapshot {
    let mut out = Snapshot::new();
    let mut todo = folders.to_vec();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = entry.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                todo.push(path.clone());
            }
            let seen = meta.and_then(|m| Some((m.len(), m.modified().ok()?)));
            out.insert(path, seen);
        }
    }
    out
}

/// Checking, exchanging and answering avatar calls short of delivery
/// must leave the granted folders as they were.
fn untouched_rule(before: &Snapshot, after: &Snapshot) -> RuleResult {
    let mut changed: Vec<String> = after
        .iter()
        .filter(|(path, seen)| before.get(*path) != Some(*seen))
        .map(|(path, _)| path.display().to_string())
        .chain(
            before
                .keys()
                .filter(|path| !after.contains_key(*path))
                .map(|path| format!("{} (removed)", path.display())),
        )
        .collect();
    changed.sort();
    rule(
        "grants-untouched",
        if before.is_empty() && after.is_empty() {
            pass("nothing granted, or the grants are empty and stayed so")
        } else if changed.is_empty() {
            pass(format!(
                "{} granted file(s) and folder(s) as they were",
                after.len()
            ))
        } else {
            fail(format!(
                "changed while being tested: {}",
                changed.join(", ")
            ))
        },
    )
}

/// What the plugin may touch, read off its imports; the sandbox enforces
/// it, whatever the plugin tries. A plugin built to use the network fails:
/// no plugin is ever granted one, so the code that needs it cannot work.
fn sandbox_rule(plugin: &Plugin, grants: &[String]) -> RuleResult {
    let imports = plugin.imports();
    let has = |prefix: &str| imports.iter().any(|i| i.starts_with(prefix));
    let mut notes = Vec::new();
    if has("wasi:filesystem/") {
        notes.push(if grants.is_empty() {
            "imports wasi:filesystem but was granted no folder: it can open no file".to_owned()
        } else {
            format!(
                "imports wasi:filesystem; it could open only {}",
                grants.join(", ")
            )
        });
    } else {
        notes.push("imports no file system".to_owned());
    }
    if has(&format!("{WIT_PACKAGE}/sql")) {
        notes.push("imports sql: only queries the operator names".to_owned());
    }
    if has("wasi:sockets/") {
        return rule(
            "sandbox",
            fail(format!(
                "imports wasi:sockets, but no plugin is granted a network: drop the code \
                 that opens connections (std::net), or ask the operator for a host \
                 import instead ({})",
                notes.join("; ")
            )),
        );
    }
    rule("sandbox", pass(notes.join("; ")))
}

/// The exit status for a report: failure when any rule failed.
pub fn exit_code(report: &Report) -> std::process::ExitCode {
    if report.failed() == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
