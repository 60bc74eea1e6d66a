//! Assembly beside the plugins: the engine, TLS, and each protocol's
//! configuration, built from the plan.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;

use crate::dovecot::DovecotConfig;
use crate::echo::EchoConfig;
use crate::limits::ClientLimits;
use crate::penalty::{Penalty, RedisStore};
use crate::plan::{Cache, Listener, ServerPlan, Setting};
use crate::plugin::{Budgets, Limits, Runtime, RuntimeConfig};
use crate::server::ProxyPolicy;
use crate::services::Live;
use crate::smtp::{AuthPolicy, SessionLimits, SmtpConfig};
use crate::tls::{self, Tls};

/// The engine, sized and cached as the plan says.
pub(super) fn runtime(plan: &ServerPlan) -> anyhow::Result<Arc<Runtime>> {
    let p = &plan.plugins;
    let cache_dir = match &p.cache.value {
        Cache::Off => None,
        Cache::Dir(dir) => Some(dir.clone()),
        Cache::Default => default_cache_dir(),
    };
    Runtime::new(&RuntimeConfig {
        budgets: Budgets {
            exchanges: *p.max_exchanges,
            checks: *p.max_checks,
            avatars: p.max_avatars.unwrap_or(*plan.sessions.max),
        },
        max_lookups: *plan.auth.max_lookups,
        max_wasm_stack: p.wasm_stack.unwrap_or(Limits::WASM_STACK),
        native_hashes: *p.native_hashes,
        cache_dir,
    })
}

/// `$XDG_CACHE_HOME/portcullis`, or `~/.cache/portcullis`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("portcullis"))
}

/// Whether the plan names a certificate (else one is generated at start).
pub(super) fn has_certificate(plan: &ServerPlan) -> bool {
    plan.tls.cert.is_some() && plan.tls.key.is_some()
}

/// The TLS acceptor, and the path of the certificate generated for it if
/// the operator gave none.
pub(super) fn tls(plan: &ServerPlan) -> anyhow::Result<(Option<PathBuf>, Tls)> {
    let t = &plan.tls;
    let client_ca = t.client_ca.as_deref();
    let (Some(cert), Some(key)) = (t.cert.as_ref(), t.key.as_ref()) else {
        let out = t
            .cert_out
            .value
            .clone()
            .unwrap_or_else(tls::default_cert_path);
        let tls = Tls::self_signed(&plan.server_name, &out, client_ca)?;
        return Ok((Some(out), tls));
    };
    let (Some(cert_at), Some(key_at)) = (t.cert.origin.at(), t.key.origin.at()) else {
        return Ok((None, Tls::from_files(cert, key, client_ca)?));
    };
    // Named by the file: say so, and where, not a flag.
    for (what, path, at) in [("cert", cert, cert_at), ("key", key, key_at)] {
        if let Err(e) = std::fs::File::open(path) {
            let resolved = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            bail!(
                "{at}: [tls] {what} = {}: cannot read ({e}). Fix the path (a relative one is \
                 relative to the configuration file's folder), or remove cert and key from \
                 [tls] to use a self-signed certificate",
                resolved.display()
            );
        }
    }
    let tls = Tls::from_files(cert, key, client_ca)
        .map_err(|e| anyhow::anyhow!("{cert_at}: [tls]: {e:#}"))?;
    Ok((None, tls))
}

/// What SMTP and echo sessions share: the penalty and the per-address
/// limits.
pub(super) struct Shared {
    pub(super) penalty: Arc<Penalty>,
    pub(super) clients: Arc<ClientLimits>,
}

impl Shared {
    /// Inside the runtime: a shared penalty store connects (lazily) there.
    pub(super) fn new(plan: &ServerPlan) -> anyhow::Result<Shared> {
        let (a, s) = (&plan.auth, &plan.sessions);
        let mut penalty = Penalty::new(*a.penalty, *a.penalty_cap, a.penalty_trusted.value.clone());
        if let Some(url) = a.penalty_store.as_deref() {
            let store = RedisStore::new(url)
                .map_err(|e| anyhow::anyhow!("{}: {url:?}: {e}", a.penalty_store.origin))?;
            penalty = penalty.with_store(Arc::new(store));
        }
        Ok(Shared {
            penalty: Arc::new(penalty),
            clients: ClientLimits::new(
                *s.max_per_address,
                *s.max_exchanges_per_address,
                s.limit_exempt.value.clone(),
            ),
        })
    }
}

/// The PROXY protocol policy of `listener`, if it requires the header;
/// an error if no network is trusted to send it.
pub(super) fn proxy(
    plan: &ServerPlan,
    listener: &Setting<Listener>,
) -> anyhow::Result<Option<ProxyPolicy>> {
    if !listener.proxy_protocol {
        return Ok(None);
    }
    let trusted = &plan.sessions.proxy_trusted;
    if trusted.is_empty() {
        bail!(
            "{}: the listener on {} requires the PROXY protocol, but no network is trusted \
             to send it: set [sessions] proxy-trusted-networks (or --proxy-trusted-networks) \
             to your load balancers' addresses",
            listener.origin,
            listener.address
        );
    }
    Ok(Some(ProxyPolicy {
        trusted: Arc::new(trusted.value.clone()),
    }))
}

/// The SMTP service's configuration, with `tls` for STARTTLS and implicit
/// TLS, or none.
pub(super) fn smtp(
    plan: &ServerPlan,
    live: &Arc<Live>,
    shared: &Shared,
    tls: Option<Tls>,
) -> Arc<SmtpConfig> {
    let (a, s) = (&plan.auth, &plan.sessions);
    Arc::new(SmtpConfig {
        services: live.clone(),
        server_name: plan.server_name.value.clone(),
        tls,
        policy: AuthPolicy {
            required: *a.required,
            tls_only: *a.tls_only,
            failure_delay: *a.failure_delay,
            max_failures: *a.max_failures,
        },
        limits: SessionLimits {
            max_message_size: *s.max_message_size,
            idle_timeout: *s.idle_timeout,
            session_timeout: *s.session_timeout,
            bare_newline: *s.bare_newline,
            ..SessionLimits::default()
        },
        penalty: shared.penalty.clone(),
        clients: shared.clients.clone(),
        step_timeout: *a.step_timeout,
    })
}

/// The Dovecot auth protocol service's configuration.
pub(super) fn dovecot(plan: &ServerPlan, live: &Arc<Live>, shared: &Shared) -> Arc<DovecotConfig> {
    let a = &plan.auth;
    let mut dovecot = DovecotConfig::new(live.clone());
    dovecot.server_name = plan.server_name.value.clone();
    dovecot.tls_only = *a.tls_only;
    dovecot.failure_delay = *a.failure_delay;
    dovecot.penalty = shared.penalty.clone();
    dovecot.clients = shared.clients.clone();
    dovecot.step_timeout = *a.step_timeout;
    dovecot.max_connections = *plan.dovecot.max_connections as usize;
    dovecot.trusted_networks = plan.dovecot.trusted_networks.value.clone();
    Arc::new(dovecot)
}

/// The echo service's configuration.
pub(super) fn echo(plan: &ServerPlan, live: &Arc<Live>, shared: &Shared) -> Arc<EchoConfig> {
    let mut echo = EchoConfig::new(live.clone());
    echo.server_name = plan.server_name.value.clone();
    echo.idle_timeout = *plan.sessions.idle_timeout;
    echo.penalty = shared.penalty.clone();
    echo.clients = shared.clients.clone();
    echo.step_timeout = *plan.auth.step_timeout;
    Arc::new(echo)
}
