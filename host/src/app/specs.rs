//! From what the plan names to what the runtime loads: a [`PluginSpec`]
//! for each checker (built-in or wasm), mechanism and realm, with its
//! grants, configuration, limits and pin.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::cli::{AuthSpec, GrantArg, LimitArgs, PluginArg, PluginOptions};
use crate::plan::Origin;
use crate::plugin::{Grant, Limits, Plugin, PluginKind, PluginSpec, builtin};

/// The operator's limits (the plugin's own, else the global ones, else
/// [`Limits::default`]) and pin; `Runtime::load` checks the pin before it
/// compiles the plugin.
pub(super) fn apply_options(spec: &mut PluginSpec, defaults: &LimitArgs, own: &PluginOptions) {
    spec.limits = own.limits.apply(defaults.apply(Limits::default()));
    spec.sha256 = own.sha256;
    spec.lookup_secrets |= own.lookup_secrets;
    spec.defer_avatar |= own.defer_avatar;
}

pub(super) fn expect_kind(plugin: &Plugin, kind: PluginKind, flag: &str) -> anyhow::Result<()> {
    if plugin.kind() != kind {
        bail!(
            "{flag} {}: this is a {} plugin, not a {}",
            plugin.name(),
            plugin.kind().as_str(),
            kind.as_str()
        );
    }
    Ok(())
}

/// A plugin file named by the configuration file must exist; the error
/// says where it was looked for and how the file's paths resolve.
pub(super) fn file_plugin_exists(origin: &Origin, path: &Path) -> anyhow::Result<()> {
    let Some(at) = origin.at() else {
        return Ok(());
    };
    if path.is_file() {
        return Ok(());
    }
    let resolved = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let why = match std::fs::metadata(path) {
        Ok(_) => "is not a file".to_owned(),
        Err(e) => format!("cannot be read ({e})"),
    };
    bail!(
        "{at}: plugin file {} {why}. A relative plugin = \"…\" is relative to the configuration \
         file's folder; fix the path in this table, or remove the table",
        resolved.display()
    )
}

pub(super) fn builtin_spec(name: &str, config: Value) -> anyhow::Result<PluginSpec> {
    let wasm = builtin::get(name).with_context(|| format!("built-in plugin {name} is missing"))?;
    let mut spec = PluginSpec::new(name, wasm);
    spec.config = config.to_string();
    // The built-in SCRAM and CRAM-MD5 look secrets up; they are ours.
    spec.lookup_secrets = name.starts_with("mech-");
    Ok(spec)
}

/// The memory checker's configuration: the users, and their SCRAM keys
/// derived here once (natively, on start and reload) so that no SCRAM
/// login runs PBKDF2 inside the sandbox.
pub(super) fn memory_config(users: &[(String, String)]) -> Value {
    use scram_core::{Algorithm, DEFAULT_ITERATIONS, Keys, derived_salt};
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let keys = |algorithm, user: &str, password: &str| {
        let k = Keys::derive(algorithm, password, &derived_salt(user), DEFAULT_ITERATIONS);
        json!({ "stored-key": hex(&k.stored_key), "server-key": hex(&k.server_key) })
    };
    let mut passwords = serde_json::Map::new();
    let mut scram = serde_json::Map::new();
    for (user, password) in users {
        passwords.insert(user.clone(), Value::String(password.clone()));
        scram.insert(
            user.clone(),
            json!({
                "sha1": keys(Algorithm::Sha1, user, password),
                "sha256": keys(Algorithm::Sha256, user, password),
            }),
        );
    }
    json!({ "users": passwords, "scram": scram })
}

/// The plugin for one `--auth` specification.
pub(super) async fn checker_spec(spec: &AuthSpec) -> anyhow::Result<PluginSpec> {
    match spec {
        AuthSpec::Memory(users) => builtin_spec("checker-memory", memory_config(users)),
        AuthSpec::Anonymous => builtin_spec("checker-anonymous", json!({})),
        AuthSpec::External(ids) if ids.is_empty() => builtin_spec("checker-external", json!({})),
        AuthSpec::External(ids) => builtin_spec("checker-external", json!({ "allow": ids })),
        AuthSpec::Sql { dsn, query, pool } => sql_checker_spec(dsn, query.as_deref(), *pool).await,
        AuthSpec::File { path, options } => {
            let (folder, file_name) = split_file(path)?;
            let mut config = options.clone();
            config.insert("path".into(), json!(format!("/grant/{file_name}")));
            let mut spec = builtin_spec("checker-file", Value::Object(config))?;
            spec.grants.push(read_only(folder, "/grant"));
            Ok(spec)
        }
        AuthSpec::Unix { passwd, shadow } => unix_spec(passwd, shadow),
        AuthSpec::Token { tokens, config } => {
            let mut config = config.clone();
            let mut grants = Vec::new();
            if let Some(path) = tokens {
                let (folder, name) = granted_file("token:tokens=", path)?;
                config.insert("tokens".into(), json!(format!("/grant/{name}")));
                grants.push(read_only(folder, "/grant"));
            }
            let mut spec = builtin_spec("checker-token", Value::Object(config))?;
            spec.grants = grants;
            Ok(spec)
        }
        AuthSpec::Wasm(arg) => plugin_spec(arg),
    }
}

/// The SQL checker, granted one query on the operator's database.
async fn sql_checker_spec(
    dsn: &str,
    query: Option<&str>,
    pool: Option<usize>,
) -> anyhow::Result<PluginSpec> {
    let default = if dsn.starts_with("sqlite:") {
        crate::sql::DEFAULT_SQLITE_QUERY
    } else {
        crate::sql::DEFAULT_POSTGRES_QUERY
    };
    let queries = std::collections::BTreeMap::from([(
        crate::sql::DEFAULT_QUERY_NAME.to_owned(),
        query.unwrap_or(default).to_owned(),
    )]);
    let grant = crate::sql::SqlGrant::open(dsn, queries, pool)
        .await
        .context("--auth sql")?;
    let mut spec = builtin_spec(
        "checker-sql",
        json!({ "query": crate::sql::DEFAULT_QUERY_NAME }),
    )?;
    spec.sql = Some(Arc::new(grant));
    Ok(spec)
}

/// `--auth unix`: the folders of the passwd and shadow files granted
/// read-only, as one grant when they share a folder.
fn unix_spec(passwd: &Path, shadow: &Path) -> anyhow::Result<PluginSpec> {
    let (passwd_dir, passwd_name) = granted_file("unix:passwd=", passwd)?;
    let (shadow_dir, shadow_name) = granted_file("unix:shadow=", shadow)?;
    let mut grants = vec![read_only(passwd_dir.clone(), "/grant")];
    let shadow_guest = if shadow_dir == passwd_dir {
        "/grant"
    } else {
        grants.push(read_only(shadow_dir, "/grant-shadow"));
        "/grant-shadow"
    };
    let config = json!({
        "passwd": format!("/grant/{passwd_name}"),
        "shadow": format!("{shadow_guest}/{shadow_name}"),
    });
    let mut spec = builtin_spec("checker-unix", config)?;
    spec.grants = grants;
    Ok(spec)
}

fn read_only(host_path: PathBuf, guest_path: &str) -> Grant {
    Grant {
        host_path,
        guest_path: guest_path.into(),
        writable: false,
    }
}

/// A file a built-in checker reads (`flag` is how the command line named
/// it): its folder, to grant, and its name inside it.
fn granted_file(flag: &str, path: &Path) -> anyhow::Result<(PathBuf, String)> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("--auth {flag}{}: bad path", path.display()))?;
    if !absolute.is_file() {
        bail!("--auth {flag}{}: no such file", path.display());
    }
    let folder = absolute
        .parent()
        .with_context(|| format!("--auth {flag}{}: the file has no folder", path.display()))?
        .to_path_buf();
    let name = absolute
        .file_name()
        .with_context(|| format!("--auth {flag}{}: the file has no name", path.display()))?
        .to_string_lossy()
        .into_owned();
    Ok((folder, name))
}

/// The folder to grant and the file's name inside it.
fn split_file(path: &Path) -> anyhow::Result<(PathBuf, String)> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("--auth file:{}: bad path", path.display()))?;
    if !absolute.is_file() {
        bail!(
            "--auth file:{}: no such file; create it with one 'user:password' line per user",
            path.display()
        );
    }
    let folder = absolute
        .parent()
        .context("the password file has no folder")?
        .to_path_buf();
    let name = absolute
        .file_name()
        .context("the password file has no name")?
        .to_string_lossy()
        .into_owned();
    Ok((folder, name))
}

pub(super) fn plugin_spec(arg: &PluginArg) -> anyhow::Result<PluginSpec> {
    let mut spec = PluginSpec::from_file(&arg.path)?;
    spec.config = arg.config.to_string();
    let mut seen = std::collections::HashSet::new();
    for GrantArg {
        host_path,
        guest_path,
        writable,
    } in &arg.grants
    {
        if !seen.insert(guest_path.clone()) {
            bail!(
                "plugin {}: two grants at {guest_path}; give each a guest path with @",
                spec.name
            );
        }
        spec.grants.push(Grant {
            host_path: host_path.clone(),
            guest_path: guest_path.clone(),
            writable: *writable,
        });
    }
    Ok(spec)
}
