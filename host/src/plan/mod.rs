//! The plan: flags and configuration file become one typed [`ServerPlan`],
//! every setting with its origin (flag, `FILE:LINE`, default) for error
//! messages. Planning is pure: no plugin is loaded, no socket bound, no file
//! read but the configuration file itself (by [`load`]). Start-up,
//! `check-config` and reload all plan, then assemble (`app`).
//!
//! Precedence: a flag given on the command line wins over the file, which
//! wins over the default. `--auth`, `--mechanism` and `--realm` replace
//! the file's list of their kind; a listener flag replaces the file's
//! listeners of its kind.

mod flags;
mod listener;
mod setting;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ArgMatches;

pub use listener::{Listener, ListenerTls, Protocol};
pub use setting::{At, Origin, Setting};

use crate::cli::{Args, AuthSpec, DEFAULT_USER, LimitArgs, LogFormat, PluginArg, PluginOptions};
use crate::penalty::Network;
use crate::portal::AvatarInterface;
use crate::portal::CredentialKind;
use crate::smtp::{BareNewline, TlsOnly};

/// Everything a server is made of, typed, before anything is made.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerPlan {
    /// The configuration file the plan read.
    pub file: Option<PathBuf>,
    pub server_name: Setting<String>,
    pub listeners: Vec<Setting<Listener>>,
    pub tls: TlsPlan,
    pub auth: AuthPlan,
    pub sessions: SessionsPlan,
    pub plugins: PluginsPlan,
    /// The checkers to load: `--auth`, else the file's, else the default
    /// user from memory.
    pub checkers: Vec<CheckerPlan>,
    /// Plugins added to the built-in mechanisms.
    pub mechanisms: Vec<PluginPlan>,
    pub realms: RealmsPlan,
    pub log: LogPlan,
    pub metrics_listen: Setting<Option<SocketAddr>>,
    pub service: ServicePlan,
    pub dovecot: DovecotPlan,
}

/// The Dovecot auth protocol service: its UNIX sockets (its TCP
/// listeners are in [`ServerPlan::listeners`]) and what it serves.
#[derive(Clone, Debug, PartialEq)]
pub struct DovecotPlan {
    pub sockets: Vec<Setting<crate::dovecot::UnixSocket>>,
    pub trusted_networks: Setting<Vec<Network>>,
    pub max_connections: Setting<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsPlan {
    pub cert: Setting<Option<PathBuf>>,
    pub key: Setting<Option<PathBuf>>,
    pub client_ca: Setting<Option<PathBuf>>,
    pub cert_out: Setting<Option<PathBuf>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuthPlan {
    pub required: Setting<bool>,
    pub tls_only: Setting<TlsOnly>,
    pub failure_delay: Setting<Duration>,
    pub max_failures: Setting<u32>,
    pub exclude_mechanisms: Setting<Vec<String>>,
    pub penalty: Setting<Duration>,
    pub penalty_cap: Setting<Duration>,
    pub penalty_trusted: Setting<Vec<Network>>,
    /// `redis://…`: the failure counts a fleet shares; `None`: in-process.
    pub penalty_store: Setting<Option<String>>,
    pub step_timeout: Setting<Duration>,
    pub max_lookups: Setting<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionsPlan {
    pub max: Setting<u32>,
    pub max_per_address: Setting<u32>,
    pub max_exchanges_per_address: Setting<u32>,
    pub limit_exempt: Setting<Vec<Network>>,
    /// The load balancers a PROXY protocol header is taken from.
    pub proxy_trusted: Setting<Vec<Network>>,
    pub bare_newline: Setting<BareNewline>,
    pub idle_timeout: Setting<Duration>,
    pub session_timeout: Setting<Duration>,
    pub max_message_size: Setting<usize>,
}

/// Where compiled plugins are cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cache {
    /// `$XDG_CACHE_HOME/portcullis` or `~/.cache/portcullis`.
    Default,
    Dir(PathBuf),
    Off,
}

/// The engine and the limits of every plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginsPlan {
    pub max_exchanges: Setting<u32>,
    pub max_checks: Setting<u32>,
    /// Default: `max-sessions`.
    pub max_avatars: Setting<Option<u32>>,
    pub cache: Setting<Cache>,
    pub memory: Setting<Option<usize>>,
    pub call_time: Setting<Option<Duration>>,
    pub deliver_time: Setting<Option<Duration>>,
    pub max_output: Setting<Option<usize>>,
    pub max_resources: Setting<Option<usize>>,
    pub wasm_stack: Setting<Option<usize>>,
    /// Whether the `password-hash` import verifies hashes natively.
    pub native_hashes: Setting<bool>,
}

impl PluginsPlan {
    /// The limits every plugin gets unless its own say otherwise.
    pub fn limits(&self) -> LimitArgs {
        LimitArgs {
            memory: self.memory.value,
            call_time: self.call_time.value,
            deliver_time: self.deliver_time.value,
            max_output: self.max_output.value,
            max_resources: self.max_resources.value,
        }
    }
}

/// A checker: the `--auth` it stands for, what the file can add to it,
/// and where it was named.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckerPlan {
    pub spec: AuthSpec,
    /// Serve only these of the checker's kinds (all it declares if `None`).
    pub kinds: Option<Vec<CredentialKind>>,
    /// Its pin and limits (every checker is a plugin, built-in or not);
    /// kept here rather than in a wasm checker's [`PluginArg`].
    pub options: PluginOptions,
    pub origin: Origin,
}

impl CheckerPlan {
    /// A checker from the command line, its own options (`--auth
    /// wasm:…:memory=64M`) moved to the plan.
    pub fn from_flag(mut spec: AuthSpec, origin: Origin) -> CheckerPlan {
        let options = match &mut spec {
            AuthSpec::Wasm(arg) => std::mem::take(&mut arg.options),
            _ => PluginOptions::default(),
        };
        CheckerPlan {
            spec,
            kinds: None,
            options,
            origin,
        }
    }
}

/// A mechanism or realm plugin (its pin and limits in `plugin.options`).
#[derive(Clone, Debug, PartialEq)]
pub struct PluginPlan {
    pub plugin: PluginArg,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealmsPlan {
    /// Realm plugins, by the interface they serve.
    pub plugins: Vec<(AvatarInterface, PluginPlan)>,
    /// The options the file gives a built-in realm (`echo`, `console`,
    /// `maildir`), and its `[[realm]]`.
    pub builtin: BTreeMap<String, (PluginOptions, Origin)>,
    /// Deliver into Maildirs under this folder.
    pub maildir: Setting<Option<PathBuf>>,
    /// Relay to the operator's MTA (`builtin = "relay"`).
    pub relay: Option<RelayPlan>,
}

/// The built-in relay realm's next hop, as the file gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct RelayPlan {
    pub url: String,
    pub xclient: bool,
    pub tls: crate::relay::TlsSetting,
    /// The name given in EHLO/LHLO (default: the server's name).
    pub helo: Option<String>,
    pub timeouts: crate::relay::Timeouts,
    pub allow_anonymous: bool,
    pub origin: Origin,
}

impl RealmsPlan {
    /// A built-in realm's options and origin (the defaults if the file
    /// has no `[[realm]]` for it).
    pub fn builtin(&self, name: &str) -> (PluginOptions, Origin) {
        self.builtin
            .get(name)
            .cloned()
            .unwrap_or_else(|| (PluginOptions::default(), Origin::Default("--realm")))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogPlan {
    pub format: Setting<LogFormat>,
    pub filter: Setting<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServicePlan {
    pub user: Setting<Option<String>>,
    pub group: Setting<Option<String>>,
    pub control_socket: Setting<Option<PathBuf>>,
    /// On SIGTERM, how long sessions get to finish.
    pub shutdown_grace: Setting<Duration>,
}

/// The plan of the flags alone (`args`, `matches` saying which were
/// given); [`crate::config::plan`] lays the file under it.
pub fn of_flags<'a>(args: &'a Args, matches: &'a ArgMatches) -> FlagPlan<'a> {
    FlagPlan(flags::Flags::new(args, matches))
}

/// The flags' plan, and the rules that finish it once the file is laid
/// under: list flags replace the file's lists, and what neither names
/// gets its default.
pub struct FlagPlan<'a>(flags::Flags<'a>);

impl FlagPlan<'_> {
    pub fn plan(&self) -> ServerPlan {
        self.0.plan()
    }

    pub fn finish(&self, plan: &mut ServerPlan) {
        self.0.replace_lists(plan);
        // A file that names any socket, a UNIX one included, names them
        // all; only without, the flags' defaults serve.
        if plan.listeners.is_empty() && plan.dovecot.sockets.is_empty() {
            plan.listeners = self.0.listeners();
        }
        if let Some(socket) = self.0.dovecot_socket() {
            plan.dovecot.sockets = vec![socket];
        }
        self.0.proxy_protocol(plan);
        if plan.checkers.is_empty() {
            let (user, pass) = DEFAULT_USER;
            plan.checkers.push(CheckerPlan::from_flag(
                AuthSpec::Memory(vec![(user.into(), pass.into())]),
                Origin::Default("--auth"),
            ));
        }
    }
}

impl ServerPlan {
    /// Whether the checkers are the default user's, no one having named any.
    pub fn default_checkers(&self) -> bool {
        self.checkers.iter().all(|c| c.origin.is_default())
    }
}
