//! What the server asks of the system: signals, the open-file limit,
//! switching users, the control socket's file, leftovers in Maildirs.

use std::path::Path;

use anyhow::{Context as _, bail};

use crate::plan::{ServicePlan, Setting};

/// The signals the server handles, registered as it starts.
pub(super) struct Signals {
    pub(super) hangup: tokio::signal::unix::Signal,
    pub(super) terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
            terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }
}

/// Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

/// Raises the soft open-file limit to the hard one: every session holds a
/// socket, and the usual soft limit (1024) is far below --max-sessions.
/// Warns when even the hard limit cannot hold them all.
pub(super) fn raise_open_files(max_sessions: u32) {
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

/// The user and group the plan switches to, looked up (none if it names
/// no user).
pub(super) fn lookup_user(
    service: &ServicePlan,
) -> anyhow::Result<Option<(nix::unistd::User, nix::unistd::Gid)>> {
    use nix::unistd::{Gid, Group, Uid, User};
    let Some(user) = service.user.as_deref() else {
        return Ok(None);
    };
    let named = service.user.origin.naming(user);
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .with_context(|| format!("{named}: cannot read the user database"))?
    .with_context(|| format!("{named}: no such user"))?;
    let gid = match service.group.as_deref() {
        None => found.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                let named = service.group.origin.naming(g);
                Group::from_name(g)
                    .with_context(|| format!("{named}: cannot read the group database"))?
                    .with_context(|| format!("{named}: no such group"))?
                    .gid
            }
        },
    };
    Ok(Some((found, gid)))
}

/// Switches the whole process to the plan's user (and group) for good;
/// says who it runs as now.
pub(super) fn drop_privileges(service: &ServicePlan) -> anyhow::Result<Option<String>> {
    use nix::unistd::{Uid, setgid, setgroups, setuid};
    let Some((found, gid)) = lookup_user(service)? else {
        return Ok(None);
    };
    let user: &Setting<Option<String>> = &service.user;
    let (named, flag) = (
        user.origin.naming(user.as_deref().unwrap_or_default()),
        user.origin.name(),
    );
    if !Uid::effective().is_root() {
        bail!("{named}: only root can switch users; start as root or leave {flag} out");
    }
    setgroups(&[gid]).with_context(|| format!("{flag}: setgroups"))?;
    setgid(gid).with_context(|| format!("{flag}: setgid"))?;
    setuid(found.uid).with_context(|| format!("{flag}: setuid"))?;
    if found.uid.is_root() {
        return Ok(Some(format!("{} (uid 0: still root)", found.name)));
    }
    if setuid(Uid::from_raw(0)).is_ok() {
        bail!("{named}: root privileges could be regained after switching; refusing to run");
    }
    Ok(Some(format!(
        "{} (uid {}, gid {})",
        found.name, found.uid, gid
    )))
}

/// Binds the control socket, readable and writable by the owner only.
pub(super) fn control_socket(
    socket: &Setting<Option<std::path::PathBuf>>,
) -> anyhow::Result<Option<tokio::net::UnixListener>> {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = socket.as_deref() else {
        return Ok(None);
    };
    let named = socket.origin.naming(path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if !meta.file_type().is_socket() {
            bail!("{named}: a file that is not a socket is in the way");
        }
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path).context(named)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(Some(listener))
}

/// Removes what abandoned deliveries left in each Maildir's `tmp/` under
/// `spool` (only at start, when no delivery can be running).
pub(super) fn clean_maildir_tmp(spool: &Path) {
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
