//! Running a planned server: assemble, bind every socket, drop privileges,
//! serve until SIGINT or SIGTERM, drain.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use clap::ArgMatches;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::reload::{Reloader, reload_on_sighup, serve_control};
use super::services::{self, Disk};
use super::{assemble, system};
use crate::cli::DEFAULT_USER;
use crate::config::{ListenerTls, Protocol};
use crate::plan::ServerPlan;
use crate::server::{ProxyPolicy, Sessions};
use crate::services::Live;
use crate::smtp::SmtpConfig;

/// Runs the server until SIGINT or SIGTERM. `matches` are the command
/// line's, kept so that a reload lays them over the re-read file again.
pub async fn run(plan: ServerPlan, matches: ArgMatches) -> anyhow::Result<()> {
    // Take over SIGHUP and SIGTERM first: their default is to end the
    // process, and an init system may send them while plugins load.
    let signals = system::Signals::new()?;
    system::raise_open_files(*plan.sessions.max);
    let runtime = assemble::runtime(&plan)?;
    if plan.default_checkers() {
        let (user, pass) = DEFAULT_USER;
        println!(
            "portcullis: no --auth given; serving user '{user}' with password '{pass}' from memory"
        );
    }
    let live = Live::new(services::build(&plan, &runtime, Disk::Write).await?);
    if let Some(dir) = plan.realms.maildir.as_deref() {
        // Nothing is being delivered yet: whatever is in a tmp/ was left
        // by a delivery that never finished (a crash, a kill -9).
        system::clean_maildir_tmp(dir);
    }
    let (generated_cert, tls) = assemble::tls(&plan)?;
    println!("portcullis: TLS uses a {}", tls.source);

    let (stop, shutdown) = watch::channel(false);
    let shared = assemble::Shared::new(&plan)?;
    let sessions = Sessions::with_limits(*plan.sessions.max, shutdown, shared.clients.clone());
    let smtp_tls = assemble::smtp(&plan, &live, &shared, Some(tls));
    let smtp_plain = assemble::smtp(&plan, &live, &shared, None);
    let echo = assemble::echo(&plan, &live, &shared);
    let dovecot = assemble::dovecot(&plan, &live, &shared);
    let dovecot_cap = crate::dovecot::connection_cap(&dovecot);

    // Bind everything first: a port that is taken stops the start before
    // anything is served, and binding may need the privileges dropped below.
    let mut bound = Vec::new();
    for listener in &plan.listeners {
        let what = listener.describe();
        let proxy = assemble::proxy(&plan, listener)?;
        bound.push((listener.value, proxy, bind(listener.address, what).await?));
    }
    let mut sockets = Vec::new();
    for socket in &plan.dovecot.sockets {
        let listener = crate::dovecot::bind_unix(socket)
            .with_context(|| format!("{}: the Dovecot auth socket", socket.origin))?;
        sockets.push((socket.path.clone(), listener));
    }
    let metrics = match *plan.metrics_listen {
        Some(addr) => Some(bind(addr, "metrics").await?),
        None => None,
    };
    let control = system::control_socket(&plan.service.control_socket)?;
    if let Some(who) = system::drop_privileges(&plan.service)? {
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
    let offered = services::offered(&live.get());
    for (listener, proxy, socket) in bound {
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
                    proxy,
                    config,
                    tls == ListenerTls::Implicit,
                ));
            }
            (Protocol::Dovecot, _) => {
                println!(
                    "portcullis: dovecot auth service listening on {addr} (mechanisms: {offered})"
                );
                tasks.spawn(crate::dovecot::serve_tcp(
                    socket,
                    dovecot.clone(),
                    dovecot_cap.clone(),
                    sessions.shutdown(),
                ));
            }
            (Protocol::Echo, _) => {
                println!("portcullis: echo service listening on {addr} (mechanisms: {offered})");
                let echo = echo.clone();
                let sessions = sessions.clone();
                tasks.spawn(async move {
                    let shutdown = sessions.shutdown();
                    crate::server::accept_loop_with(
                        socket,
                        sessions,
                        "echo",
                        proxy,
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

    for (path, listener) in sockets {
        println!(
            "portcullis: dovecot auth service listening on {} (mechanisms: {offered})",
            path.display()
        );
        tasks.spawn(crate::dovecot::serve_unix(
            listener,
            path,
            dovecot.clone(),
            dovecot_cap.clone(),
            sessions.shutdown(),
        ));
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

    system::shutdown_signal(signals.terminate).await;
    let _ = stop.send(true);
    let grace = *plan.service.shutdown_grace;
    tracing::info!("shutting down; waiting up to {grace:?} for sessions");
    let left = sessions.drain(grace).await;
    if left > 0 {
        tracing::warn!("{left} sessions still running at the end of the grace period");
    }
    tasks.abort_all();
    if let Some(path) = generated_cert {
        let _ = std::fs::remove_file(path);
    }
    if let Some(path) = plan.service.control_socket.as_deref() {
        let _ = std::fs::remove_file(path);
    }
    for socket in &plan.dovecot.sockets {
        let _ = std::fs::remove_file(&socket.path);
    }
    Ok(())
}

async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for {what}"))
}

async fn smtp_listener(
    listener: TcpListener,
    sessions: Sessions,
    proxy: Option<ProxyPolicy>,
    config: Arc<SmtpConfig>,
    implicit_tls: bool,
) {
    let shutdown = sessions.shutdown();
    let protocol = if implicit_tls { "smtps" } else { "smtp" };
    let refusing = config.clone();
    crate::server::accept_loop_with(
        listener,
        sessions,
        protocol,
        proxy,
        move |stream, why| crate::smtp::refuse(stream, refusing.clone(), implicit_tls, why),
        move |stream, peer| {
            crate::smtp::serve(stream, peer, config.clone(), shutdown.clone(), implicit_tls)
        },
    )
    .await;
}
