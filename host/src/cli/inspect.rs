//! `portcullis plugin inspect FILE.wasm`: what a plugin is and what it
//! needs, found by loading it the way the server would (so a file the
//! server would refuse is refused here with the same reason).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::plugin::{PluginKind, PluginSpec, Runtime, RuntimeConfig, WIT_PACKAGE, WIT_VERSION};
use crate::portal::{Avatar as _, AvatarInterface, Mind};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The plugin component.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Loads the plugin and describes it; an error says why it cannot load.
pub async fn inspect(file: &Path) -> anyhow::Result<Value> {
    let runtime = Runtime::new(&RuntimeConfig {
        budgets: crate::plugin::Budgets {
            exchanges: 4,
            checks: 4,
            avatars: 4,
        },
        ..RuntimeConfig::default()
    })?;
    let plugin = runtime.load(PluginSpec::from_file(file)?).await?;
    let imports = plugin.imports().to_vec();
    let sql = imports
        .iter()
        .any(|i| i.starts_with(&format!("{WIT_PACKAGE}/sql")));
    let files = imports
        .iter()
        .any(|i| i.starts_with(&format!("{WIT_PACKAGE}/keyed-file")));
    let world = match plugin.kind() {
        PluginKind::Checker if sql && files => "any-checker-plugin".to_owned(),
        PluginKind::Checker if sql => "sql-checker-plugin".to_owned(),
        PluginKind::Checker if files => "file-checker-plugin".to_owned(),
        kind => format!("{}-plugin", kind.as_str()),
    };
    let mut report = json!({
        "file": file.display().to_string(),
        "kind": plugin.kind().as_str(),
        "world": format!("{WIT_PACKAGE}/{world}@{WIT_VERSION}"),
        "imports": imports,
        "needs": needs(&imports),
    });
    match plugin.kind() {
        PluginKind::Mechanism => {
            let info = plugin
                .mechanism_info()
                .await
                .map_err(|f| anyhow::anyhow!("info() failed: {}: {}", f.kind, f.detail))?;
            report["mechanism"] = json!({
                "name": info.name,
                "plaintext": info.plaintext,
                "credential-kinds": info.kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
            });
        }
        PluginKind::Checker => {
            let kinds = plugin.credential_kinds().await.map_err(|f| {
                anyhow::anyhow!("credential-kinds() failed: {}: {}", f.kind, f.detail)
            })?;
            report["credential-kinds"] =
                json!(kinds.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        }
        PluginKind::Realm => {
            // Which avatar interfaces it serves, asked for an anonymous
            // user with its default configuration.
            let mind = Mind {
                peer: "127.0.0.1:0".into(),
                protocol: "inspect",
                mechanism: None,
                secure: false,
            };
            let mut served = serde_json::Map::new();
            for interface in [AvatarInterface::Echo, AvatarInterface::MessageDelivery] {
                let answer = match plugin.request_avatar(None, interface, &mind).await {
                    Ok(Ok(avatar)) => {
                        Box::new(avatar).logout().await;
                        "yes".to_owned()
                    }
                    Ok(Err(denial)) => format!("no ({denial})"),
                    Err(fault) => format!("fault: {}: {}", fault.kind, fault.detail),
                };
                served.insert(interface.as_str().to_owned(), json!(answer));
            }
            report["avatar-interfaces"] = Value::Object(served);
        }
    }
    Ok(report)
}

/// The capabilities an operator may have to grant, read off the imports.
fn needs(imports: &[String]) -> Vec<&'static str> {
    let has = |prefix: &str| imports.iter().any(|i| i.starts_with(prefix));
    let mut needs = Vec::new();
    if has("wasi:filesystem/") {
        needs.push("files: only what is granted (grant=DIR, read-only; grant-rw=DIR to write)");
    }
    if has(&format!("{WIT_PACKAGE}/sql")) {
        needs.push("sql: named queries granted by the operator (--auth sql:...)");
    }
    if has(&format!("{WIT_PACKAGE}/keyed-file")) {
        needs.push("keyed-file: lines of granted files by key, through the host's index");
    }
    if has(&format!("{WIT_PACKAGE}/password-hash")) {
        needs.push(
            "password-hash: slow hashes verified natively by the host, within its caps (no grant)",
        );
    }
    if has(&format!("{WIT_PACKAGE}/session")) {
        needs.push("session: stored secrets and the TLS identity, looked up through the host");
    }
    if has("wasi:sockets/") {
        needs.push("sockets: imported, but the host grants no network access");
    }
    needs
}

/// The report as text.
pub fn to_text(report: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, key: &str, value: String| {
        out.push_str(&format!("{key:<24} {value}\n"));
    };
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(s_of).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    };
    line(&mut out, "file", s(&report["file"]));
    line(&mut out, "kind", s(&report["kind"]));
    line(&mut out, "world", s(&report["world"]));
    if let Some(m) = report.get("mechanism") {
        line(&mut out, "mechanism", s(&m["name"]));
        line(&mut out, "plaintext", s(&m["plaintext"]));
        line(&mut out, "credential kinds", s(&m["credential-kinds"]));
    }
    if let Some(k) = report.get("credential-kinds") {
        line(&mut out, "credential kinds", s(k));
    }
    if let Some(Value::Object(served)) = report.get("avatar-interfaces") {
        for (interface, answer) in served {
            line(&mut out, &format!("avatar {interface}"), s(answer));
        }
    }
    let needs = report["needs"].as_array().cloned().unwrap_or_default();
    if needs.is_empty() {
        line(
            &mut out,
            "needs",
            "nothing beyond the host's own imports".into(),
        );
    }
    for need in needs {
        line(&mut out, "needs", s_of(&need));
    }
    line(&mut out, "imports", s(&report["imports"]));
    out
}

fn s_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
