//! Assembling a running server from the command line: load the plugins the
//! operator named (or the built-in defaults), build the portal, bind the
//! listeners.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{ArgMatches, FromArgMatches as _};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::config::{self, CheckerEntry, Listener, ListenerTls, Protocol};
use crate::cli::{Args, AuthSpec, DEFAULT_USER, GrantArg, LimitArgs, PluginArg, PluginOptions};
use crate::echo::EchoConfig;
use crate::plugin::{
    Grant, Limits, Plugin, PluginKind, PluginSpec, Runtime, RuntimeConfig, WasmChecker,
    WasmMechanism, WasmRealm, builtin,
};
use crate::portal::AvatarInterface;
use crate::portal::Portal;
use crate::sasl::{Mechanisms, Mechname};
use crate::server::Sessions;
pub use crate::services::{Live, Services};
use crate::smtp::{AuthPolicy, SessionLimits, SmtpConfig};
use crate::tls::{self, Tls};

/// Runs the server until SIGINT or SIGTERM. `matches` are the command
/// line's, kept so that a reload lays them over the re-read file again.
pub async fn run(args: Args, matches: ArgMatches) -> anyhow::Result<()> {
    // Take over SIGHUP and SIGTERM first: their default is to end the
    // process, and an init system may send them while plugins load.
    let signals = Signals::new()?;
    raise_open_files(args.max_sessions);
    let runtime = runtime_for(&args)?;
    if args.auth.is_empty() && args.extra.checkers.is_empty() {
        let (user, pass) = DEFAULT_USER;
        println!(
            "portcullis: no --auth given; serving user '{user}' with password '{pass}' from memory"
        );
    }
    let live = Live::new(Services::build(&args, &runtime).await?);
    if let Some(dir) = &args.maildir {
        // Nothing is being delivered yet: whatever is in a tmp/ was left
        // by a delivery that never finished (a crash, a kill -9).
        clean_maildir_tmp(dir);
    }
    let (generated_cert, tls) = tls_for(&args)?;
    println!("portcullis: TLS uses a {}", tls.source);

    let penalty = Arc::new(crate::penalty::Penalty::new(
        args.auth_penalty,
        args.auth_penalty_cap,
        args.auth_penalty_trusted.0.clone(),
    ));
    let (stop, shutdown) = watch::channel(false);
    let clients = crate::limits::ClientLimits::new(
        args.max_connections_per_address,
        args.max_exchanges_per_address,
        args.client_limit_exempt.0.clone(),
    );
    let sessions = Sessions::with_limits(args.max_sessions, shutdown, clients.clone());
    let smtp_config = |tls: Option<Tls>| {
        Arc::new(SmtpConfig {
            services: live.clone(),
            server_name: args.server_name.clone(),
            tls,
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
                bare_newline: args.bare_newline,
                ..SessionLimits::default()
            },
            penalty: penalty.clone(),
            clients: clients.clone(),
            step_timeout: args.auth_step_timeout,
        })
    };
    let smtp_tls = smtp_config(Some(tls));
    let smtp_plain = smtp_config(None);
    let mut echo = EchoConfig::new(live.clone());
    echo.server_name = args.server_name.clone();
    echo.idle_timeout = args.idle_timeout;
    echo.penalty = penalty;
    echo.clients = clients.clone();
    echo.step_timeout = args.auth_step_timeout;
    let echo = Arc::new(echo);

    // Bind everything first: a port that is taken stops the start before
    // anything is served, and binding may need the privileges dropped below.
    let mut bound = Vec::new();
    for listener in listeners(&args) {
        let what = match (listener.protocol, listener.tls) {
            (Protocol::Echo, _) => "the echo service",
            (Protocol::Smtp, ListenerTls::Implicit) => "SMTP with implicit TLS",
            (Protocol::Smtp, _) => "SMTP",
        };
        bound.push((listener, bind(listener.address, what).await?));
    }
    let metrics = match args.metrics_listen {
        Some(addr) => Some(bind(addr, "metrics").await?),
        None => None,
    };
    let control = match &args.control_socket {
        Some(path) => Some(control_socket(path)?),
        None => None,
    };
    if let Some(user) = &args.user {
        let who = drop_privileges(user, args.group.as_deref())?;
        println!("portcullis: running as {who}");
    }

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(listener) = metrics {
        println!(
            "portcullis: metrics listening on http://{}/metrics",
            listener.local_addr()?
        );
        tasks.spawn(crate::metrics::serve(listener, runtime.budgets().total()));
    }
    let offered = offered(&live.get());
    for (listener, socket) in bound {
        let addr = socket.local_addr()?;
        match (listener.protocol, listener.tls) {
            (Protocol::Smtp, tls) => {
                let (name, note, config) = match tls {
                    ListenerTls::Starttls => ("smtp", "STARTTLS", smtp_tls.clone()),
                    ListenerTls::Implicit => ("smtps", "implicit TLS", smtp_tls.clone()),
                    ListenerTls::None => ("smtp", "no TLS", smtp_plain.clone()),
                };
                println!(
                    "portcullis: {name} service listening on {addr} ({note}; mechanisms: {offered})"
                );
                tasks.spawn(smtp_listener(
                    socket,
                    sessions.clone(),
                    config,
                    tls == ListenerTls::Implicit,
                ));
            }
            (Protocol::Echo, _) => {
                println!("portcullis: echo service listening on {addr} (mechanisms: {offered})");
                let echo = echo.clone();
                let sessions = sessions.clone();
                tasks.spawn(async move {
                    let shutdown = sessions.shutdown();
                    crate::server::accept_loop(
                        socket,
                        sessions,
                        "echo",
                        crate::echo::refuse,
                        move |stream, peer| {
                            crate::echo::serve(stream, peer, echo.clone(), shutdown.clone())
                        },
                    )
                    .await;
                });
            }
        }
    }

    let reloader = Arc::new(Reloader {
        matches,
        runtime,
        live: live.clone(),
        lock: tokio::sync::Mutex::new(()),
    });
    tasks.spawn(reload_on_sighup(signals.hangup, reloader.clone()));
    if let Some(listener) = control {
        tasks.spawn(serve_control(listener, reloader.clone()));
    }

    shutdown_signal(signals.terminate).await;
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
    if let Some(path) = &args.control_socket {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// `portcullis check-config`: builds everything a start would (plugins,
/// checkers, databases, TLS) without listening. Returns a summary.
///
/// It has no side effects: no certificate is generated (a start would make
/// a self-signed one), no Maildir folder is created. The summary uses the
/// file's own words (`protocol = "smtp"`, `tls = "starttls"`).
pub async fn check(args: &Args) -> anyhow::Result<String> {
    let runtime = runtime_for(args)?;
    let services = Services::build_with(args, &runtime, false).await?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(_), Some(_)) => tls_for(args)?.1.source,
        _ => format!(
            "a self-signed certificate for {}, made at start",
            args.server_name
        ),
    };
    if let Some(user) = &args.user {
        lookup_user(user, args.group.as_deref())?;
    }
    let mut out = String::new();
    for l in listeners(args) {
        out.push_str(&format!(
            "listener protocol = \"{}\" address = \"{}\" tls = \"{}\"\n",
            l.protocol.as_str(),
            l.address,
            l.tls.as_str()
        ));
    }
    for (kind, plugin) in services.portal.checkers() {
        out.push_str(&format!("checker {} for {kind}\n", plugin.name()));
    }
    for interface in [AvatarInterface::Echo, AvatarInterface::MessageDelivery] {
        if let Some(realm) = services.portal.realm_for(interface) {
            out.push_str(&format!(
                "realm {} for {}",
                realm.name(),
                interface.as_str()
            ));
            if let Some(settings) = realm.settings() {
                out.push_str(&format!(" {settings}"));
            }
            out.push('\n');
        }
    }
    out.push_str(&format!("mechanisms {}\n", offered(&services)));
    out.push_str(&format!(
        "bare-newline = \"{}\"\n",
        args.bare_newline.as_str()
    ));
    out.push_str(&format!("tls {tls}\n"));
    Ok(out)
}

/// Removes what abandoned deliveries left in each Maildir's `tmp/` under
/// `spool` (only at start, when no delivery can be running).
fn clean_maildir_tmp(spool: &Path) {
    let Ok(users) = std::fs::read_dir(spool) else {
        return;
    };
    let mut removed = 0;
    for user in users.flatten() {
        let Ok(files) = std::fs::read_dir(user.path().join("tmp")) else {
            continue;
        };
        for file in files.flatten() {
            if file.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(file.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::warn!(spool = %spool.display(), removed,
            "removed files left in tmp/ by deliveries that never finished");
    }
}

/// The engine, sized and cached as the operator asked.
fn runtime_for(args: &Args) -> anyhow::Result<Arc<Runtime>> {
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    Runtime::new(&RuntimeConfig {
        budgets: crate::plugin::Budgets {
            exchanges: args.max_exchanges,
            checks: args.max_checks,
            avatars: args.max_avatars.unwrap_or(args.max_sessions),
        },
        max_lookups: args.max_lookups,
        max_wasm_stack: args
            .plugin_wasm_stack
            .unwrap_or(crate::plugin::Limits::WASM_STACK),
        cache_dir,
    })
}

/// The TLS acceptor, and the path of the certificate generated for it if
/// the operator gave none.
fn tls_for(args: &Args) -> anyhow::Result<(Option<PathBuf>, Tls)> {
    Ok(match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            if let Some((cert_line, key_line)) = args.extra.tls_lines {
                // Named by the file: say so, and where, not a flag.
                for (what, path, line) in [("cert", cert, cert_line), ("key", key, key_line)] {
                    if let Err(e) = std::fs::File::open(path) {
                        let resolved = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                        bail!(
                            "{}:{line}: [tls] {what} = {}: cannot read ({e}). Fix the path (a relative one is relative to the configuration file's folder), or remove cert and key from [tls] to use a self-signed certificate",
                            file_display(args),
                            resolved.display()
                        );
                    }
                }
                let tls =
                    Tls::from_files(cert, key, args.tls_client_ca.as_deref()).map_err(|e| {
                        anyhow::anyhow!("{}:{cert_line}: [tls]: {e:#}", file_display(args))
                    })?;
                return Ok((None, tls));
            }
            (
                None,
                Tls::from_files(cert, key, args.tls_client_ca.as_deref())?,
            )
        }
        _ => {
            let out = args
                .tls_cert_out
                .clone()
                .unwrap_or_else(tls::default_cert_path);
            let tls = Tls::self_signed(&args.server_name, &out, args.tls_client_ca.as_deref())?;
            (Some(out), tls)
        }
    })
}

/// The file's listeners, or the flags'.
fn listeners(args: &Args) -> Vec<Listener> {
    if let Some(listeners) = &args.extra.listeners {
        return listeners.clone();
    }
    let mut out = vec![Listener {
        protocol: Protocol::Smtp,
        address: args.smtp_listen,
        tls: ListenerTls::Starttls,
    }];
    if let Some(address) = args.smtps_listen {
        out.push(Listener {
            protocol: Protocol::Smtp,
            address,
            tls: ListenerTls::Implicit,
        });
    }
    out.push(Listener {
        protocol: Protocol::Echo,
        address: args.echo_listen,
        tls: ListenerTls::None,
    });
    out
}

/// Re-reads the configuration and reloads every plugin; one at a time.
struct Reloader {
    matches: ArgMatches,
    runtime: Arc<Runtime>,
    live: Arc<Live>,
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Builds the new services completely before swapping them in: on any
    /// error the old ones stay and the error is returned.
    async fn reload(&self) -> anyhow::Result<String> {
        let _one_at_a_time = self.lock.lock().await;
        let started = std::time::Instant::now();
        let mut args = Args::from_arg_matches(&self.matches)?;
        if let Some(path) = args.config.clone() {
            config::load(&path)?.apply(&mut args, &self.matches)?;
        }
        let services = Services::build(&args, &self.runtime).await?;
        let offered = offered(&services);
        self.live.replace(services);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(elapsed_ms, mechanisms = %offered, "reloaded");
        Ok(format!(
            "reloaded in {elapsed_ms} ms; mechanisms: {offered}"
        ))
    }

    async fn reload_logged(&self, trigger: &str) -> Result<String, String> {
        self.reload().await.map_err(|e| {
            tracing::error!(trigger, "reload failed, keeping the running plugins: {e:#}");
            format!("{e:#}")
        })
    }
}

/// The signals the server handles, registered as it starts.
struct Signals {
    hangup: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }
}

async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, reloader: Arc<Reloader>) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading");
        let _ = reloader.reload_logged("SIGHUP").await;
    }
}

/// Binds the control socket, readable and writable by the owner only.
fn control_socket(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            bail!(
                "--control-socket {}: a file that is not a socket is in the way",
                path.display()
            );
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("--control-socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// One command per connection: `reload`, answered `ok: …` or `error: …`.
async fn serve_control(listener: tokio::net::UnixListener, reloader: Arc<Reloader>) {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut read = tokio::io::BufReader::new(read.take(256));
            if read.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = match line.trim() {
                "reload" => match reloader.reload_logged("control socket").await {
                    Ok(summary) => format!("ok: {summary}\n"),
                    Err(e) => format!("error: {e}\n"),
                },
                other => format!("error: unknown command {other:?}; the only command is reload\n"),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        });
    }
}

/// `portcullis reload`: the client side of the control socket.
pub async fn send_reload(socket: &Path) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach the server at {}", socket.display()))?;
    stream.write_all(b"reload\n").await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    match answer.trim().strip_prefix("ok: ") {
        Some(summary) => Ok(summary.to_owned()),
        None => bail!(
            "{}",
            answer
                .trim()
                .strip_prefix("error: ")
                .unwrap_or(answer.trim())
        ),
    }
}

/// The user and group `--user`/`--group` name.
fn lookup_user(
    user: &str,
    group: Option<&str>,
) -> anyhow::Result<(nix::unistd::User, nix::unistd::Gid)> {
    use nix::unistd::{Gid, Group, Uid, User};
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .with_context(|| format!("--user {user}: cannot read the user database"))?
    .with_context(|| format!("--user {user}: no such user"))?;
    let gid = match group {
        None => found.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                Group::from_name(g)
                    .with_context(|| format!("--group {g}: cannot read the group database"))?
                    .with_context(|| format!("--group {g}: no such group"))?
                    .gid
            }
        },
    };
    Ok((found, gid))
}

/// Switches the whole process to `user` (and `group`) for good.
fn drop_privileges(user: &str, group: Option<&str>) -> anyhow::Result<String> {
    use nix::unistd::{Uid, setgid, setgroups, setuid};
    let (found, gid) = lookup_user(user, group)?;
    if !Uid::effective().is_root() {
        bail!("--user {user}: only root can switch users; start as root or leave --user out");
    }
    setgroups(&[gid]).context("--user: setgroups")?;
    setgid(gid).context("--user: setgid")?;
    setuid(found.uid).context("--user: setuid")?;
    if found.uid.is_root() {
        return Ok(format!("{} (uid 0: still root)", found.name));
    }
    if setuid(Uid::from_raw(0)).is_ok() {
        bail!("--user {user}: root privileges could be regained after switching; refusing to run");
    }
    Ok(format!("{} (uid {}, gid {})", found.name, found.uid, gid))
}

/// Raises the soft open-file limit to the hard one: every session holds a
/// socket, and the usual soft limit (1024) is far below --max-sessions.
/// Warns when even the hard limit cannot hold them all.
fn raise_open_files(max_sessions: u32) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    // Room for the listeners, the plugin cache, metrics and control sockets.
    let spare = 64;
    if limit < u64::from(max_sessions) + spare {
        tracing::warn!(
            open_files = limit,
            max_sessions,
            "the open-file limit is below --max-sessions: raise it (ulimit -n, systemd's \
             LimitNOFILE=) or lower --max-sessions, or sessions past it will fail to start"
        );
    }
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

fn offered(services: &Services) -> String {
    let names: Vec<String> = services
        .mechanisms
        .offered(&services.portal, true)
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
    let refusing = config.clone();
    crate::server::accept_loop(
        listener,
        sessions,
        protocol,
        move |stream, why| crate::smtp::refuse(stream, refusing.clone(), implicit_tls, why),
        move |stream, peer| {
            crate::smtp::serve(stream, peer, config.clone(), shutdown.clone(), implicit_tls)
        },
    )
    .await;
}

async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

impl Services {
    /// Loads every plugin and registers it: checkers from `auth`, the
    /// built-in mechanisms plus the operator's, the echo realm unless
    /// replaced.
    pub async fn build(args: &Args, runtime: &Arc<Runtime>) -> anyhow::Result<Services> {
        Services::build_with(args, runtime, true).await
    }

    /// As [`Services::build`]; with `create` false (check-config) nothing
    /// is made on disk.
    async fn build_with(
        args: &Args,
        runtime: &Arc<Runtime>,
        create: bool,
    ) -> anyhow::Result<Services> {
        let started = std::time::Instant::now();
        // Every plugin, built-in or not, gets the global limits; the
        // operator's own plugins may override them one by one.
        let defaults = &args.plugin_limits();
        let mut portal = Portal::default();
        // Which line of the file registered each kind's checker.
        let mut kind_lines = std::collections::HashMap::new();
        for entry in checkers(args) {
            let from = file_line(args, entry.line);
            if let AuthSpec::Wasm(arg) = &entry.spec {
                file_plugin_exists(args, &arg.path, entry.line)?;
            }
            let spec = match &entry.spec {
                AuthSpec::Sql { dsn, query } => sql_checker_spec(dsn, query.as_deref()).await,
                other => checker_spec(other),
            };
            let mut spec = spec.map_err(|e| from.wrap_as(e, "checker"))?;
            apply_options(&mut spec, defaults, &entry.options);
            let plugin = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
            expect_kind(&plugin, PluginKind::Checker, "--auth wasm:").map_err(|e| from.wrap(e))?;
            if entry.line > 0 {
                let kinds = match &entry.kinds {
                    Some(kinds) => kinds.clone(),
                    None => plugin
                        .credential_kinds()
                        .await
                        .map_err(|e| from.wrap(anyhow::anyhow!("{}: {}", e.plugin, e.detail)))?,
                };
                for kind in kinds {
                    if let (Some(existing), Some(first)) =
                        (portal.checker_for(kind), kind_lines.get(&kind))
                    {
                        bail!(
                            "{}:{}: two checkers for {kind} credentials: {} (the [[checker]] at line {first}) and {}. One checker serves each kind: remove one of the two [[checker]] tables, or give them kinds = [...] that do not overlap",
                            file_display(args),
                            entry.line,
                            existing.name(),
                            plugin.name()
                        );
                    }
                    kind_lines.insert(kind, entry.line);
                }
            }
            portal
                .register_checker_for(Arc::new(WasmChecker(plugin)), entry.kinds.as_deref())
                .await
                .map_err(|e| from.wrap(e))?;
        }

        // A built-in realm gets the global limits and those of its
        // [[realm]] table, as any plugin does.
        let builtin_options = |name: &str| {
            args.extra
                .builtin_realms
                .get(name)
                .map(|(options, line)| (options.clone(), file_line(args, *line)))
                .unwrap_or_else(|| (PluginOptions::default(), Origin(None)))
        };
        let (options, from) = builtin_options("echo");
        let mut echo = builtin_spec("realm-echo", json!({}))?;
        apply_options(&mut echo, defaults, &options);
        portal.register_realm(
            AvatarInterface::Echo,
            wasm_realm(runtime.load(echo).await.map_err(|e| from.wrap(e))?),
        );
        // The console realm of seeds/000 prints messages on our stdout.
        let (options, from) = builtin_options("console");
        let mut console = builtin_spec("realm-console", json!({}))?;
        console.stdout = true;
        apply_options(&mut console, defaults, &options);
        portal.register_realm(
            AvatarInterface::MessageDelivery,
            wasm_realm(runtime.load(console).await.map_err(|e| from.wrap(e))?),
        );
        if let Some(dir) = &args.maildir {
            let (options, from) = builtin_options("maildir");
            if create {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("--maildir {}: cannot create the folder", dir.display())
                })?;
            }
            let mut maildir = builtin_spec("realm-maildir", json!({}))?;
            let mut host_path = std::path::absolute(dir)?;
            if !create {
                // check-config: the folder a start would create does not
                // exist yet; check the grant on its nearest ancestor.
                while !host_path.exists() {
                    match host_path.parent() {
                        Some(parent) => host_path = parent.to_owned(),
                        None => break,
                    }
                }
            }
            maildir.grants.push(Grant {
                host_path,
                guest_path: "/spool".into(),
                writable: true,
            });
            apply_options(&mut maildir, defaults, &options);
            // The realm gives up before its commit (the renames into new/)
            // when too little of its deadline is left, so that the host's
            // deadline does not cut a commit half-way.
            maildir.config = json!({
                "spool": "/spool",
                "deliver-time-ms": maildir.limits.deliver_time.as_millis() as u64,
            })
            .to_string();
            portal.register_realm(
                AvatarInterface::MessageDelivery,
                wasm_realm(runtime.load(maildir).await.map_err(|e| from.wrap(e))?),
            );
        }
        for realm in &args.realms {
            let mut spec = plugin_spec(&realm.plugin)?;
            apply_options(&mut spec, defaults, &realm.plugin.options);
            let plugin = runtime.load(spec).await?;
            expect_kind(&plugin, PluginKind::Realm, "--realm")?;
            portal.register_realm(realm.interface, wasm_realm(plugin));
        }
        for (interface, entry) in &args.extra.realms {
            file_plugin_exists(args, &entry.plugin.path, entry.line)?;
            let from = file_line(args, entry.line);
            let mut spec = plugin_spec(&entry.plugin).map_err(|e| from.wrap(e))?;
            apply_options(&mut spec, defaults, &entry.plugin.options);
            let plugin = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
            expect_kind(&plugin, PluginKind::Realm, "realm").map_err(|e| from.wrap(e))?;
            portal.register_realm(*interface, wasm_realm(plugin));
        }

        let mut mechanisms = Mechanisms::default();
        for name in builtin::names().filter(|n| n.starts_with("mech-")) {
            mechanisms
                .register(wasm_mechanism(
                    load_builtin(runtime, defaults, name, json!({})).await?,
                ))
                .await?;
        }
        for arg in &args.mechanisms {
            let mut spec = plugin_spec(arg)?;
            apply_options(&mut spec, defaults, &arg.options);
            let plugin = runtime.load(spec).await?;
            expect_kind(&plugin, PluginKind::Mechanism, "--mechanism")?;
            mechanisms.register(wasm_mechanism(plugin)).await?;
        }
        for entry in &args.extra.mechanisms {
            file_plugin_exists(args, &entry.plugin.path, entry.line)?;
            let from = file_line(args, entry.line);
            let mut spec = plugin_spec(&entry.plugin).map_err(|e| from.wrap(e))?;
            apply_options(&mut spec, defaults, &entry.plugin.options);
            let plugin = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
            expect_kind(&plugin, PluginKind::Mechanism, "mechanism").map_err(|e| from.wrap(e))?;
            mechanisms.register(wasm_mechanism(plugin)).await?;
        }
        #[cfg(feature = "bench-native")]
        crate::bench_native::install(&mut portal, &mut mechanisms).await?;
        let portal = Arc::new(portal);
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
            portal,
            mechanisms: Arc::new(mechanisms),
        })
    }
}

/// The checkers to load: the command line's `--auth`, else the file's,
/// else the default user from memory.
fn checkers(args: &Args) -> Vec<CheckerEntry> {
    if !args.auth.is_empty() {
        return args.auth.iter().cloned().map(CheckerEntry::new).collect();
    }
    if !args.extra.checkers.is_empty() {
        return args.extra.checkers.clone();
    }
    let (user, pass) = DEFAULT_USER;
    vec![CheckerEntry::new(AuthSpec::Memory(vec![(
        user.into(),
        pass.into(),
    )]))]
}

/// Where an entry came from, to put in front of errors about it.
struct Origin(Option<String>);

impl Origin {
    /// `FILE:LINE: error` for an entry of the configuration file; the
    /// error alone for the command line's.
    fn wrap(&self, e: anyhow::Error) -> anyhow::Error {
        match &self.0 {
            Some(at) => e.context(at.clone()),
            None => e,
        }
    }

    /// As `wrap`, naming what the entry is when it is the file's.
    fn wrap_as(&self, e: anyhow::Error, what: &'static str) -> anyhow::Error {
        match &self.0 {
            Some(_) => self.wrap(e.context(what)),
            None => e,
        }
    }
}

/// A plugin file named by the configuration file must exist; the error
/// says where it was looked for and how the file's paths resolve.
fn file_plugin_exists(args: &Args, path: &Path, line: usize) -> anyhow::Result<()> {
    if line == 0 || path.is_file() {
        return Ok(());
    }
    let resolved = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let why = match std::fs::metadata(path) {
        Ok(_) => "is not a file".to_owned(),
        Err(e) => format!("cannot be read ({e})"),
    };
    bail!(
        "{}:{line}: plugin file {} {why}. A relative plugin = \"…\" is relative to the configuration file's folder; fix the path in this table, or remove the table",
        file_display(args),
        resolved.display()
    )
}

/// The configuration file, for messages about it.
fn file_display(args: &Args) -> String {
    args.extra
        .source
        .as_deref()
        .map(|f| f.display().to_string())
        .unwrap_or_default()
}

fn file_line(args: &Args, line: usize) -> Origin {
    Origin(match &args.extra.source {
        Some(file) if line > 0 => Some(format!("{}:{line}", file.display())),
        _ => None,
    })
}

/// The operator's limits (the plugin's own, else the global ones, else
/// [`Limits::default`]) and pin; `Runtime::load` checks the pin before it
/// compiles the plugin.
fn apply_options(spec: &mut PluginSpec, defaults: &LimitArgs, own: &PluginOptions) {
    spec.limits = own.limits.apply(defaults.apply(Limits::default()));
    spec.sha256 = own.sha256;
    spec.lookup_secrets |= own.lookup_secrets;
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

fn wasm_realm(plugin: Arc<Plugin>) -> Arc<dyn crate::portal::Realm> {
    Arc::new(WasmRealm(plugin))
}

fn wasm_mechanism(plugin: Arc<Plugin>) -> Arc<dyn crate::portal::Mechanism> {
    Arc::new(WasmMechanism(plugin))
}

async fn load_builtin(
    runtime: &Arc<Runtime>,
    defaults: &LimitArgs,
    name: &str,
    config: Value,
) -> anyhow::Result<Arc<Plugin>> {
    let mut spec = builtin_spec(name, config)?;
    apply_options(&mut spec, defaults, &PluginOptions::default());
    runtime.load(spec).await
}

fn builtin_spec(name: &str, config: Value) -> anyhow::Result<PluginSpec> {
    let wasm = builtin::get(name).with_context(|| format!("built-in plugin {name} is missing"))?;
    let mut spec = PluginSpec::new(name, wasm);
    spec.config = config.to_string();
    // The built-in SCRAM and CRAM-MD5 look secrets up; they are ours.
    spec.lookup_secrets = name.starts_with("mech-");
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
        AuthSpec::Wasm(arg) => plugin_spec(arg),
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
