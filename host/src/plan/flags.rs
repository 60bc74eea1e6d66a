//! What the command line says: every flag as a setting, its origin the
//! flag when it was given (or its environment variable), the default
//! otherwise.

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::Origin;
use super::{
    AuthPlan, Cache, CheckerPlan, DovecotPlan, LogPlan, PluginPlan, PluginsPlan, RealmsPlan,
    ServerPlan, ServicePlan, SessionsPlan, Setting, TlsPlan,
};
use super::{Listener, ListenerTls, Protocol};
use crate::cli::Args;

pub(super) struct Flags<'a> {
    args: &'a Args,
    matches: &'a ArgMatches,
}

impl<'a> Flags<'a> {
    pub(super) fn new(args: &'a Args, matches: &'a ArgMatches) -> Flags<'a> {
        Flags { args, matches }
    }

    /// Whether the flag with clap's `id` was given.
    fn given(&self, id: &str) -> bool {
        matches!(
            self.matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }

    fn origin(&self, id: &str, flag: &'static str) -> Origin {
        if self.given(id) {
            Origin::Flag(flag)
        } else {
            Origin::Default(flag)
        }
    }

    fn set<T>(&self, id: &str, flag: &'static str, value: T) -> Setting<T> {
        Setting::new(value, self.origin(id, flag))
    }

    /// Every setting as the command line has it.
    pub(super) fn plan(&self) -> ServerPlan {
        let a = self.args;
        let cache = if a.no_cache {
            Cache::Off
        } else {
            a.cache_dir.clone().map_or(Cache::Default, Cache::Dir)
        };
        let cache_id = if self.given("no_cache") {
            "no_cache"
        } else {
            "cache_dir"
        };
        ServerPlan {
            file: None,
            server_name: self.set("server_name", "--server-name", a.server_name.clone()),
            listeners: Vec::new(),
            tls: TlsPlan {
                cert: self.set("tls_cert", "--tls-cert", a.tls_cert.clone()),
                key: self.set("tls_key", "--tls-key", a.tls_key.clone()),
                client_ca: self.set("tls_client_ca", "--tls-client-ca", a.tls_client_ca.clone()),
                cert_out: self.set("tls_cert_out", "--tls-cert-out", a.tls_cert_out.clone()),
            },
            auth: AuthPlan {
                required: self.set("auth_required", "--auth-required", a.auth_required),
                tls_only: self.set("auth_tls_only", "--auth-tls-only", a.auth_tls_only),
                failure_delay: self.set(
                    "auth_failure_delay",
                    "--auth-failure-delay",
                    a.auth_failure_delay,
                ),
                max_failures: self.set(
                    "max_auth_failures",
                    "--max-auth-failures",
                    a.max_auth_failures,
                ),
                exclude_mechanisms: self.set(
                    "exclude_mechanisms",
                    "--exclude-mechanism",
                    a.exclude_mechanisms.clone(),
                ),
                penalty: self.set("auth_penalty", "--auth-penalty", a.auth_penalty),
                penalty_cap: self.set("auth_penalty_cap", "--auth-penalty-cap", a.auth_penalty_cap),
                penalty_trusted: self.set(
                    "auth_penalty_trusted",
                    "--auth-penalty-trusted",
                    a.auth_penalty_trusted.0.clone(),
                ),
                penalty_store: self.set(
                    "auth_penalty_store",
                    "--auth-penalty-store",
                    a.auth_penalty_store.clone(),
                ),
                step_timeout: self.set(
                    "auth_step_timeout",
                    "--auth-step-timeout",
                    a.auth_step_timeout,
                ),
                max_lookups: self.set("max_lookups", "--max-lookups", a.max_lookups),
            },
            sessions: SessionsPlan {
                max: self.set("max_sessions", "--max-sessions", a.max_sessions),
                max_per_address: self.set(
                    "max_connections_per_address",
                    "--max-connections-per-address",
                    a.max_connections_per_address,
                ),
                max_exchanges_per_address: self.set(
                    "max_exchanges_per_address",
                    "--max-exchanges-per-address",
                    a.max_exchanges_per_address,
                ),
                limit_exempt: self.set(
                    "client_limit_exempt",
                    "--client-limit-exempt",
                    a.client_limit_exempt.0.clone(),
                ),
                proxy_trusted: self.set(
                    "proxy_trusted_networks",
                    "--proxy-trusted-networks",
                    a.proxy_trusted_networks.0.clone(),
                ),
                bare_newline: self.set("bare_newline", "--bare-newline", a.bare_newline),
                idle_timeout: self.set("idle_timeout", "--idle-timeout", a.idle_timeout),
                session_timeout: self.set(
                    "session_timeout",
                    "--session-timeout",
                    a.session_timeout,
                ),
                max_message_size: self.set(
                    "max_message_size",
                    "--max-message-size",
                    a.max_message_size,
                ),
            },
            plugins: PluginsPlan {
                max_exchanges: self.set("max_exchanges", "--max-exchanges", a.max_exchanges),
                max_checks: self.set("max_checks", "--max-checks", a.max_checks),
                max_avatars: self.set("max_avatars", "--max-avatars", a.max_avatars),
                cache: self.set(cache_id, "--cache-dir", cache),
                memory: self.set("plugin_memory", "--plugin-memory", a.plugin_memory),
                call_time: self.set("plugin_call_time", "--plugin-call-time", a.plugin_call_time),
                deliver_time: self.set(
                    "plugin_deliver_time",
                    "--plugin-deliver-time",
                    a.plugin_deliver_time,
                ),
                max_output: self.set(
                    "plugin_max_output",
                    "--plugin-max-output",
                    a.plugin_max_output,
                ),
                max_resources: self.set(
                    "plugin_max_resources",
                    "--plugin-max-resources",
                    a.plugin_max_resources,
                ),
                wasm_stack: self.set(
                    "plugin_wasm_stack",
                    "--plugin-wasm-stack",
                    a.plugin_wasm_stack,
                ),
                native_hashes: self.set(
                    "plugin_native_hashes",
                    "--plugin-native-hashes",
                    a.plugin_native_hashes,
                ),
            },
            checkers: Vec::new(),
            mechanisms: Vec::new(),
            realms: RealmsPlan {
                plugins: Vec::new(),
                builtin: Default::default(),
                maildir: self.set("maildir", "--maildir", a.maildir.clone()),
                relay: None,
            },
            log: LogPlan {
                format: self.set("log_format", "--log-format", a.log_format),
                filter: self.set("log", "--log", a.log.clone()),
            },
            metrics_listen: self.set("metrics_listen", "--metrics-listen", a.metrics_listen),
            service: ServicePlan {
                user: self.set("user", "--user", a.user.clone()),
                group: self.set("group", "--group", a.group.clone()),
                control_socket: self.set(
                    "control_socket",
                    "--control-socket",
                    a.control_socket.clone(),
                ),
                shutdown_grace: self.set("shutdown_grace", "--shutdown-grace", a.shutdown_grace),
            },
            dovecot: DovecotPlan {
                sockets: Vec::new(),
                trusted_networks: self.set(
                    "dovecot_trusted",
                    "--dovecot-trusted",
                    a.dovecot_trusted.0.clone(),
                ),
                max_connections: self.set(
                    "dovecot_max_connections",
                    "--dovecot-max-connections",
                    a.dovecot_max_connections,
                ),
            },
        }
    }

    /// `--dovecot-socket`, which replaces the file's sockets.
    pub(super) fn dovecot_socket(&self) -> Option<Setting<crate::dovecot::UnixSocket>> {
        let path = self.args.dovecot_socket.clone()?;
        let socket = crate::dovecot::UnixSocket {
            path,
            mode: 0o660,
            owner: None,
            group: None,
        };
        Some(self.set("dovecot_socket", "--dovecot-socket", socket))
    }

    /// `--auth`, `--mechanism` and `--realm` replace the file's lists of
    /// their kind; a listener flag replaces the file's listeners of its
    /// kind.
    pub(super) fn replace_lists(&self, plan: &mut ServerPlan) {
        let a = self.args;
        if self.given("auth") {
            plan.checkers = a
                .auth
                .iter()
                .map(|spec| CheckerPlan::from_flag(spec.clone(), Origin::Flag("--auth")))
                .collect();
        }
        if self.given("mechanisms") {
            plan.mechanisms = a
                .mechanisms
                .iter()
                .map(|plugin| PluginPlan {
                    plugin: plugin.clone(),
                    origin: Origin::Flag("--mechanism"),
                })
                .collect();
        }
        if self.given("realms") {
            plan.realms.builtin.clear();
            plan.realms.plugins = a
                .realms
                .iter()
                .map(|r| {
                    let plugin = PluginPlan {
                        plugin: r.plugin.clone(),
                        origin: Origin::Flag("--realm"),
                    };
                    (r.interface, plugin)
                })
                .collect();
        }
        if plan.listeners.is_empty() && plan.dovecot.sockets.is_empty() {
            return;
        }
        for flag in self.listeners() {
            if flag.origin.is_flag() {
                let l = flag.value;
                plan.listeners
                    .retain(|f| !(f.protocol == l.protocol && f.tls == l.tls));
                plan.listeners.push(flag);
            }
        }
        // --smtps-listen has no default: given, it replaces the file's
        // implicit-TLS listeners above; not given, it keeps them.
    }

    /// `--proxy-protocol`: every SMTP and echo listener requires the
    /// header (a Dovecot auth peer is an MTA, which names its client in
    /// `rip=` instead).
    pub(super) fn proxy_protocol(&self, plan: &mut ServerPlan) {
        if self.args.proxy_protocol {
            for l in &mut plan.listeners {
                l.value.proxy_protocol = l.protocol != Protocol::Dovecot;
            }
        }
    }

    /// The listeners of the flags alone.
    pub(super) fn listeners(&self) -> Vec<Setting<Listener>> {
        let a = self.args;
        let listener = |protocol, address, tls| Listener {
            protocol,
            address,
            tls,
            proxy_protocol: false,
        };
        let mut out = vec![self.set(
            "smtp_listen",
            "--smtp-listen",
            listener(Protocol::Smtp, a.smtp_listen, ListenerTls::Starttls),
        )];
        if let Some(address) = a.smtps_listen {
            out.push(self.set(
                "smtps_listen",
                "--smtps-listen",
                listener(Protocol::Smtp, address, ListenerTls::Implicit),
            ));
        }
        if let Some(address) = a.dovecot_listen {
            out.push(self.set(
                "dovecot_listen",
                "--dovecot-listen",
                listener(Protocol::Dovecot, address, ListenerTls::None),
            ));
        }
        out.push(self.set(
            "echo_listen",
            "--echo-listen",
            listener(Protocol::Echo, a.echo_listen, ListenerTls::None),
        ));
        out
    }
}
