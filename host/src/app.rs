//! Assembling a running server from the command line: load the plugins the
//! operator named (or the built-in defaults), build the portal, bind the
//! listeners.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{AuthSpec, DEFAULT_USER, GrantArg, PluginArg};
use crate::echo::EchoConfig;
use crate::plugin::realm::AvatarInterface;
use crate::plugin::{Grant, Plugin, PluginKind, PluginSpec, Runtime, RuntimeConfig, builtin};
use crate::portal::Portal;
use crate::sasl::{Mechanisms, Mechname};
use crate::server::Sessions;
use crate::smtp::{AuthPolicy, SessionLimits, SmtpConfig, reply};
use crate::tls::{self, Tls};

/// Everything a protocol needs to authenticate users.
pub struct Services {
    pub runtime: Arc<Runtime>,
    pub portal: Arc<Portal>,
    pub mechanisms: Arc<Mechanisms>,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: crate::cli::Args) -> anyhow::Result<()> {
    let mut auth = args.auth.clone();
    if auth.is_empty() {
        let (user, pass) = DEFAULT_USER;
        println!(
            "portcullis: no --auth given; serving user '{user}' with password '{pass}' from memory"
        );
        auth.push(AuthSpec::Memory(vec![(user.into(), pass.into())]));
    }
    let services = Services::build(&args, &auth).await?;
    let (generated_cert, tls) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (
            None,
            Tls::from_files(cert, key, args.tls_client_ca.as_deref())?,
        ),
        _ => {
            let out = args
                .tls_cert_out
                .clone()
                .unwrap_or_else(tls::default_cert_path);
            let tls = Tls::self_signed(&args.server_name, &out, args.tls_client_ca.as_deref())?;
            (Some(out), tls)
        }
    };
    println!("portcullis: TLS uses a {}", tls.source);

    let penalty = Arc::new(crate::penalty::Penalty::new(
        args.auth_penalty,
        args.auth_penalty_cap,
        args.auth_penalty_trusted.0.clone(),
    ));
    let (stop, shutdown) = watch::channel(false);
    let sessions = Sessions::new(args.max_sessions, shutdown);
    let smtp = Arc::new(SmtpConfig {
        portal: services.portal.clone(),
        mechanisms: services.mechanisms.clone(),
        server_name: args.server_name.clone(),
        tls: Some(tls),
        policy: AuthPolicy {
            required: args.auth_required,
            tls_only: args.auth_tls_only,
            failure_delay: args.auth_failure_delay,
            max_failures: args.max_auth_failures,
        },
        limits: SessionLimits {
            max_message_size: args.max_message_size,
            idle_timeout: args.idle_timeout,
            session_timeout: args.session_timeout,
            ..SessionLimits::default()
        },
        penalty: penalty.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();

    let listener = bind(args.smtp_listen, "SMTP").await?;
    println!(
        "portcullis: smtp service listening on {} (STARTTLS; mechanisms: {})",
        listener.local_addr()?,
        offered(&services, true)
    );
    tasks.spawn(smtp_listener(
        listener,
        sessions.clone(),
        smtp.clone(),
        false,
    ));
    if let Some(addr) = args.smtps_listen {
        let listener = bind(addr, "SMTP with implicit TLS").await?;
        println!(
            "portcullis: smtps service listening on {} (implicit TLS)",
            listener.local_addr()?
        );
        tasks.spawn(smtp_listener(
            listener,
            sessions.clone(),
            smtp.clone(),
            true,
        ));
    }

    if let Some(addr) = args.metrics_listen {
        let listener = bind(addr, "metrics").await?;
        println!(
            "portcullis: metrics listening on http://{}/metrics",
            listener.local_addr()?
        );
        tasks.spawn(crate::metrics::serve(listener, args.max_instances));
    }

    let listener = bind(args.echo_listen, "the echo service").await?;
    let mut echo = EchoConfig::new(services.portal.clone(), services.mechanisms.clone());
    echo.server_name = args.server_name.clone();
    echo.idle_timeout = args.idle_timeout;
    echo.penalty = penalty;
    let echo = Arc::new(echo);
    println!(
        "portcullis: echo service listening on {} (mechanisms: {})",
        listener.local_addr()?,
        offered(&services, true)
    );
    let echo_sessions = sessions.clone();
    tasks.spawn(async move {
        let shutdown = echo_sessions.shutdown();
        crate::server::accept_loop(
            listener,
            echo_sessions,
            "echo",
            b"Error: too many connections, try again later.\r\n",
            move |stream, peer| crate::echo::serve(stream, peer, echo.clone(), shutdown.clone()),
        )
        .await;
    });

    shutdown_signal().await;
    let _ = stop.send(true);
    tracing::info!(
        "shutting down; waiting up to {:?} for sessions",
        args.shutdown_grace
    );
    let left = sessions.drain(args.shutdown_grace).await;
    if left > 0 {
        tracing::warn!("{left} sessions still running at the end of the grace period");
    }
    tasks.abort_all();
    if let Some(path) = generated_cert {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

fn offered(services: &Services, allow_plaintext: bool) -> String {
    let names: Vec<String> = services
        .mechanisms
        .offered(&services.portal, allow_plaintext)
        .map(|m| m.to_string())
        .collect();
    names.join(" ")
}

async fn smtp_listener(
    listener: TcpListener,
    sessions: Sessions,
    config: Arc<SmtpConfig>,
    implicit_tls: bool,
) {
    let shutdown = sessions.shutdown();
    let protocol = if implicit_tls { "smtps" } else { "smtp" };
    crate::server::accept_loop(
        listener,
        sessions,
        protocol,
        reply::TOO_BUSY_WIRE,
        move |stream, peer| {
            crate::smtp::serve(stream, peer, config.clone(), shutdown.clone(), implicit_tls)
        },
    )
    .await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

impl Services {
    /// Loads every plugin and registers it: checkers from `auth`, the
    /// built-in mechanisms plus the operator's, the echo realm unless
    /// replaced.
    pub async fn build(args: &crate::cli::Args, auth: &[AuthSpec]) -> anyhow::Result<Services> {
        let started = std::time::Instant::now();
        let cache_dir = if args.no_cache {
            None
        } else {
            args.cache_dir.clone().or_else(default_cache_dir)
        };
        let runtime = Runtime::new(&RuntimeConfig {
            max_instances: args.max_instances,
            cache_dir,
            ..RuntimeConfig::default()
        })?;
        let mut portal = Portal::default();
        for spec in auth {
            let plugin = runtime.load(match spec {
                AuthSpec::Sql { dsn, query } => sql_checker_spec(dsn, query.as_deref()).await?,
                other => checker_spec(other)?,
            })?;
            if plugin.kind() != PluginKind::Checker {
                bail!(
                    "--auth wasm:{}: this is a {} plugin, not a checker",
                    plugin.name(),
                    plugin.kind().as_str()
                );
            }
            portal.register_checker(plugin).await?;
        }

        portal.register_realm(
            AvatarInterface::Echo,
            load_builtin(&runtime, "realm-echo", json!({}))?,
        );
        // The console realm of seeds/000 prints messages on our stdout.
        let mut console = builtin_spec("realm-console", json!({}))?;
        console.stdout = true;
        portal.register_realm(AvatarInterface::MessageDelivery, runtime.load(console)?);
        if let Some(dir) = &args.maildir {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("--maildir {}: cannot create the folder", dir.display())
            })?;
            let mut maildir = builtin_spec("realm-maildir", json!({ "spool": "/spool" }))?;
            maildir.grants.push(Grant {
                host_path: std::path::absolute(dir)?,
                guest_path: "/spool".into(),
                writable: true,
            });
            portal.register_realm(AvatarInterface::MessageDelivery, runtime.load(maildir)?);
        }
        for realm in &args.realms {
            let plugin = runtime.load(plugin_spec(&realm.plugin)?)?;
            expect_kind(&plugin, PluginKind::Realm, "--realm")?;
            portal.register_realm(realm.interface, plugin);
        }
        let portal = Arc::new(portal);

        let mut mechanisms = Mechanisms::default();
        for name in builtin::names().filter(|n| n.starts_with("mech-")) {
            mechanisms
                .register(load_builtin(&runtime, name, json!({}))?)
                .await?;
        }
        for arg in &args.mechanisms {
            let plugin = runtime.load(plugin_spec(arg)?)?;
            expect_kind(&plugin, PluginKind::Mechanism, "--mechanism")?;
            mechanisms.register(plugin).await?;
        }
        for name in &args.exclude_mechanisms {
            let parsed = Mechname::parse(name.as_bytes()).with_context(|| {
                format!("--exclude-mechanism {name}: not a SASL mechanism name")
            })?;
            if !mechanisms.remove(&parsed) {
                bail!("--exclude-mechanism {name}: no such mechanism is loaded");
            }
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            cache = if args.no_cache { "off" } else { "on" },
            "plugins loaded"
        );
        Ok(Services {
            runtime,
            portal,
            mechanisms: Arc::new(mechanisms),
        })
    }
}

/// `$XDG_CACHE_HOME/portcullis`, or `~/.cache/portcullis`.
fn default_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    Some(base.join("portcullis"))
}

fn expect_kind(plugin: &Plugin, kind: PluginKind, flag: &str) -> anyhow::Result<()> {
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

fn load_builtin(runtime: &Arc<Runtime>, name: &str, config: Value) -> anyhow::Result<Arc<Plugin>> {
    runtime.load(builtin_spec(name, config)?)
}

fn builtin_spec(name: &str, config: Value) -> anyhow::Result<PluginSpec> {
    let wasm = builtin::get(name).with_context(|| format!("built-in plugin {name} is missing"))?;
    let mut spec = PluginSpec::new(name, wasm);
    spec.config = config.to_string();
    Ok(spec)
}

/// The plugin for one `--auth` specification.
fn checker_spec(spec: &AuthSpec) -> anyhow::Result<PluginSpec> {
    match spec {
        AuthSpec::Memory(users) => {
            let users: serde_json::Map<String, Value> = users
                .iter()
                .map(|(u, p)| (u.clone(), Value::String(p.clone())))
                .collect();
            builtin_spec("checker-memory", json!({ "users": users }))
        }
        AuthSpec::Anonymous => builtin_spec("checker-anonymous", json!({})),
        AuthSpec::External(ids) if ids.is_empty() => builtin_spec("checker-external", json!({})),
        AuthSpec::External(ids) => builtin_spec("checker-external", json!({ "allow": ids })),
        AuthSpec::Sql { .. } => unreachable!("sql checkers are opened by sql_checker_spec"),
        AuthSpec::File { path, options } => {
            let (folder, file_name) = split_file(path)?;
            let mut config = options.clone();
            config.insert("path".into(), json!(format!("/grant/{file_name}")));
            let mut spec = builtin_spec("checker-file", Value::Object(config))?;
            spec.grants.push(Grant {
                host_path: folder,
                guest_path: "/grant".into(),
                writable: false,
            });
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
        AuthSpec::Wasm {
            path,
            grants,
            config,
        } => plugin_spec(&PluginArg {
            path: path.clone(),
            grants: grants.clone(),
            config: config.clone(),
        }),
    }
}

/// The SQL checker, granted one query on the operator's database.
async fn sql_checker_spec(dsn: &str, query: Option<&str>) -> anyhow::Result<PluginSpec> {
    let default = if dsn.starts_with("sqlite:") {
        crate::sql::DEFAULT_SQLITE_QUERY
    } else {
        crate::sql::DEFAULT_POSTGRES_QUERY
    };
    let queries = std::collections::BTreeMap::from([(
        crate::sql::DEFAULT_QUERY_NAME.to_owned(),
        query.unwrap_or(default).to_owned(),
    )]);
    let grant = crate::sql::SqlGrant::open(dsn, queries)
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

fn read_only(host_path: std::path::PathBuf, guest_path: &str) -> Grant {
    Grant {
        host_path,
        guest_path: guest_path.into(),
        writable: false,
    }
}

/// A file a built-in checker reads (`flag` is how the command line named
/// it): its folder, to grant, and its name inside it.
fn granted_file(flag: &str, path: &Path) -> anyhow::Result<(std::path::PathBuf, String)> {
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
fn split_file(path: &Path) -> anyhow::Result<(std::path::PathBuf, String)> {
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

fn plugin_spec(arg: &PluginArg) -> anyhow::Result<PluginSpec> {
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
