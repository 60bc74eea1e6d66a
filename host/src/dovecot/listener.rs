//! The auth service's sockets: TCP, served to trusted networks only, and
//! UNIX sockets with the mode and owner the MTA needs (Postfix's
//! `private/auth`). Connections of every listener share one cap; past it
//! a new connection is closed at once, and the MTA answers its client
//! with a temporary failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::DovecotConfig;
use super::connection::{PeerInfo, serve};
use crate::server::shutdown_requested;

/// A UNIX socket to listen on, as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixSocket {
    pub path: PathBuf,
    /// Permission bits, e.g. `0o660`.
    pub mode: u32,
    /// Owner and group by name; `None` keeps the server's own.
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// Binds a UNIX socket: a stale socket at the path is replaced, anything
/// else there is an error. Mode and owner are set before anyone can
/// connect through a looser default.
pub fn bind_unix(socket: &UnixSocket) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    let path = &socket.path;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "{} exists and is not a socket; not replacing it",
            path.display()
        );
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the old socket {}", path.display()))?;
    }
    // Nobody may connect before the mode below is in place.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.with_context(|| format!("cannot listen on {}", path.display()))?;
    let uid = match &socket.owner {
        Some(name) => Some(
            nix::unistd::User::from_name(name)?
                .with_context(|| format!("no user {name:?} to own {}", path.display()))?
                .uid,
        ),
        None => None,
    };
    let gid = match &socket.group {
        Some(name) => Some(
            nix::unistd::Group::from_name(name)?
                .with_context(|| format!("no group {name:?} for {}", path.display()))?
                .gid,
        ),
        None => None,
    };
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(path, uid, gid)
            .with_context(|| format!("cannot give {} its owner", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(socket.mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(listener)
}

/// The one cap on connections, shared by the service's listeners.
pub fn connection_cap(config: &DovecotConfig) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(config.max_connections))
}

/// Serves a TCP listener until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    config: Arc<DovecotConfig>,
    cap: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            _ = shutdown_requested(&mut stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                accept_failed(&e, &mut stop).await;
                continue;
            }
        };
        if !config
            .trusted_networks
            .iter()
            .any(|n| n.contains(peer.ip()))
        {
            tracing::warn!(protocol = "dovecot", %peer,
                "connection from outside [dovecot] trusted-networks; closing");
            continue;
        }
        let Some(permit) = admit(&cap, &peer.to_string()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let info = PeerInfo {
            describe: peer.to_string(),
            ip: peer.ip(),
        };
        spawn(stream, info, config.clone(), shutdown.clone(), permit);
    }
}

/// Serves a UNIX socket until shutdown, then removes it.
pub async fn serve_unix(
    listener: UnixListener,
    path: PathBuf,
    config: Arc<DovecotConfig>,
    cap: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    let describe = path.display().to_string();
    loop {
        let accepted = tokio::select! {
            _ = shutdown_requested(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e, &mut stop).await;
                continue;
            }
        };
        let Some(permit) = admit(&cap, &describe) else {
            continue;
        };
        let info = PeerInfo {
            describe: describe.clone(),
            ip: std::net::Ipv4Addr::UNSPECIFIED.into(),
        };
        spawn(stream, info, config.clone(), shutdown.clone(), permit);
    }
    remove_socket(&path);
}

fn admit(cap: &Arc<Semaphore>, peer: &str) -> Option<OwnedSemaphorePermit> {
    let permit = cap.clone().try_acquire_owned().ok();
    if permit.is_none() {
        tracing::warn!(
            protocol = "dovecot",
            peer,
            "auth connection limit reached ([dovecot] max-connections); closing"
        );
    }
    permit
}

fn spawn<S>(
    stream: S,
    peer: PeerInfo,
    config: Arc<DovecotConfig>,
    shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    crate::metrics::METRICS.session_started("dovecot");
    tokio::spawn(async move {
        let describe = peer.describe.clone();
        if let Err(e) = serve(stream, peer, config, shutdown).await {
            tracing::debug!(protocol = "dovecot", peer = %describe, "connection ended: {e}");
        }
        crate::metrics::METRICS.session_ended("dovecot");
        drop(permit);
    });
}

/// Out of descriptors and the like: pause, then try again.
async fn accept_failed(e: &std::io::Error, stop: &mut watch::Receiver<bool>) {
    tracing::warn!(protocol = "dovecot", "accept failed: {e}");
    tokio::select! {
        _ = shutdown_requested(stop) => {}
        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
    }
}

fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt as _;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}
