//! Assembling the [`Services`] of a plan: every plugin loaded and
//! registered: the checkers, the built-in realms and the operator's, the
//! built-in mechanisms and the operator's. Start-up, `check-config` and
//! reload all come here.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::json;

use super::specs::{
    apply_options, builtin_spec, checker_spec, expect_kind, file_plugin_exists, plugin_spec,
};
use crate::cli::{AuthSpec, LimitArgs, PluginOptions};
use crate::plan::{Cache, PluginPlan, ServerPlan};
use crate::plugin::{
    Grant, Plugin, PluginKind, Runtime, WasmChecker, WasmMechanism, WasmRealm, builtin,
};
use crate::portal::AvatarInterface;
use crate::portal::Portal;
use crate::sasl::{Mechanisms, Mechname};
use crate::services::Services;

/// Whether assembling may make what a start needs on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disk {
    /// A start or reload: create the Maildir folder.
    Write,
    /// `check-config`: nothing is made.
    Untouched,
}

/// Loads every plugin of the plan and registers it.
pub async fn build(
    plan: &ServerPlan,
    runtime: &Arc<Runtime>,
    disk: Disk,
) -> anyhow::Result<Services> {
    let started = std::time::Instant::now();
    // Every plugin, built-in or not, gets the global limits; the operator's
    // own plugins may override them one by one.
    let defaults = &plan.plugins.limits();
    let mut portal = Portal::default();
    register_checkers(plan, runtime, defaults, &mut portal).await?;
    register_realms(plan, runtime, defaults, &mut portal, disk).await?;

    let mut mechanisms = Mechanisms::default();
    for name in builtin::names().filter(|n| n.starts_with("mech-")) {
        let mut spec = builtin_spec(name, json!({}))?;
        apply_options(&mut spec, defaults, &Default::default());
        let plugin = runtime.load(spec).await?;
        mechanisms.register(Arc::new(WasmMechanism(plugin))).await?;
    }
    for entry in &plan.mechanisms {
        let plugin = load(runtime, defaults, entry, PluginKind::Mechanism, "mechanism").await?;
        mechanisms.register(Arc::new(WasmMechanism(plugin))).await?;
    }
    // The benchmark's native PLAIN and checker, registered like any other
    // implementation of those roles (only with the feature and its
    // environment variable).
    #[cfg(feature = "bench-native")]
    crate::bench_native::install(&mut portal, &mut mechanisms).await?;
    let portal = Arc::new(portal);
    let exclude = &plan.auth.exclude_mechanisms;
    for name in exclude.iter() {
        let named = exclude.origin.naming(name);
        let parsed = Mechname::parse(name.as_bytes())
            .with_context(|| format!("{named}: not a SASL mechanism name"))?;
        if !mechanisms.remove(&parsed) {
            bail!("{named}: no such mechanism is loaded");
        }
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        cache = if *plan.plugins.cache == Cache::Off {
            "off"
        } else {
            "on"
        },
        "plugins loaded"
    );
    Ok(Services {
        portal,
        mechanisms: Arc::new(mechanisms),
    })
}

/// The SASL mechanisms offered to a client with TLS, as one line.
pub fn offered(services: &Services) -> String {
    let names: Vec<String> = services
        .mechanisms
        .offered(&services.portal, true)
        .map(|m| m.to_string())
        .collect();
    names.join(" ")
}

async fn register_checkers(
    plan: &ServerPlan,
    runtime: &Arc<Runtime>,
    defaults: &LimitArgs,
    portal: &mut Portal,
) -> anyhow::Result<()> {
    // Which line of the file registered each kind's checker.
    let mut kind_lines = HashMap::new();
    for entry in &plan.checkers {
        let from = &entry.origin;
        if let AuthSpec::Wasm(arg) = &entry.spec {
            file_plugin_exists(from, &arg.path)?;
        }
        let mut spec = checker_spec(&entry.spec)
            .await
            .map_err(|e| from.wrap_as(e, "checker"))?;
        apply_options(&mut spec, defaults, &entry.options);
        let plugin = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
        expect_kind(&plugin, PluginKind::Checker, "--auth wasm:").map_err(|e| from.wrap(e))?;
        if let Some(at) = from.at() {
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
                        "{at}: two checkers for {kind} credentials: {} (the [[checker]] at line \
                         {first}) and {}. One checker serves each kind: remove one of the two \
                         [[checker]] tables, or give them kinds = [...] that do not overlap",
                        existing.name(),
                        plugin.name()
                    );
                }
                kind_lines.insert(kind, at.line);
            }
        }
        portal
            .register_checker_for(Arc::new(WasmChecker(plugin)), entry.kinds.as_deref())
            .await
            .map_err(|e| from.wrap(e))?;
    }
    Ok(())
}

/// The name the built-in relay realm knows its one next hop by.
const RELAY_HOP: &str = "next-hop";

/// The relay realm's limits, fitted to what it does.
///
/// - It waits on the next hop inside its calls: MAIL may connect
///   (greeting, EHLO, STARTTLS, XCLIENT) and `deliver` sends the message
///   and waits for the reply to its dot. Unless the operator set
///   `call-time` or `deliver-time`, its calls last as long as the next
///   hop's own timeouts allow, rather than the 2 s meant for a login's
///   steps (which would turn a slow but working MTA into 451s).
/// - It hands the host the whole message (`relay.data`), which counts
///   against `max-output`: that is at least the largest message SMTP takes
///   plus room for the Received header, or every large message would fail.
fn relay_limits(
    limits: &mut crate::plugin::Limits,
    defaults: &LimitArgs,
    own: &PluginOptions,
    timeouts: crate::relay::Timeouts,
    max_message_size: usize,
) -> anyhow::Result<()> {
    let cap = crate::plugin::Limits::MAX_CALL_TIME;
    if own.limits.call_time.is_none() && defaults.call_time.is_none() {
        limits.call_time = (timeouts.connect + timeouts.command).min(cap);
    }
    if own.limits.deliver_time.is_none() && defaults.deliver_time.is_none() {
        limits.deliver_time = (timeouts.command + timeouts.data).min(cap);
    }
    let needed = max_message_size.saturating_add(64 << 10);
    if limits.max_output < needed {
        if own.limits.max_output.is_some() || defaults.max_output.is_some() {
            bail!(
                "the relay realm hands the next hop whole messages: its max-output of {} bytes \
                 is below the largest message ({max_message_size} bytes, max-message-size) \
                 plus 64 KiB; raise it or leave it unset",
                limits.max_output
            );
        }
        limits.max_output = needed;
    }
    Ok(())
}

/// The built-in realms (echo; console, or maildir when asked), each with
/// the global limits and those of its `[[realm]]`, then the operator's.
async fn register_realms(
    plan: &ServerPlan,
    runtime: &Arc<Runtime>,
    defaults: &LimitArgs,
    portal: &mut Portal,
    disk: Disk,
) -> anyhow::Result<()> {
    let (options, from) = plan.realms.builtin("echo");
    let mut echo = builtin_spec("realm-echo", json!({}))?;
    apply_options(&mut echo, defaults, &options);
    let echo = runtime.load(echo).await.map_err(|e| from.wrap(e))?;
    portal.register_realm(AvatarInterface::Echo, Arc::new(WasmRealm(echo)));
    // The console realm of seeds/000 prints messages on our stdout.
    let (options, from) = plan.realms.builtin("console");
    let mut console = builtin_spec("realm-console", json!({}))?;
    console.stdout = true;
    // It gives every identity its avatar (mail to console@ is the only
    // rule, and that is validate-to's): SMTP asks for it at MAIL FROM,
    // so a session that authenticates and sends nothing never
    // instantiates it.
    console.defer_avatar = true;
    apply_options(&mut console, defaults, &options);
    let console = runtime.load(console).await.map_err(|e| from.wrap(e))?;
    portal.register_realm(
        AvatarInterface::MessageDelivery,
        Arc::new(WasmRealm(console)),
    );
    if let Some(dir) = &plan.realms.maildir.value {
        let (options, from) = plan.realms.builtin("maildir");
        if disk == Disk::Write {
            std::fs::create_dir_all(dir).with_context(|| {
                let named = plan.realms.maildir.origin.naming(dir.display());
                format!("{named}: cannot create the folder")
            })?;
        }
        let mut maildir = builtin_spec("realm-maildir", json!({}))?;
        // Every identity gets a mailbox avatar (recipients are
        // validate-to's to refuse): asked for at MAIL FROM, as the
        // console realm's.
        maildir.defer_avatar = true;
        let mut host_path = std::path::absolute(dir)?;
        if disk == Disk::Untouched {
            // check-config: the folder a start would create does not exist
            // yet; check the grant on its nearest ancestor.
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
        // The realm gives up before its commit (the renames into new/) when
        // too little of its deadline is left, so that the host's deadline
        // does not cut a commit half-way.
        maildir.config = json!({
            "spool": "/spool",
            "deliver-time-ms": maildir.limits.deliver_time.as_millis() as u64,
        })
        .to_string();
        let maildir = runtime.load(maildir).await.map_err(|e| from.wrap(e))?;
        portal.register_realm(
            AvatarInterface::MessageDelivery,
            Arc::new(WasmRealm(maildir)),
        );
    }
    if let Some(relay) = &plan.realms.relay {
        let (options, from) = plan.realms.builtin("relay");
        let helo = relay
            .helo
            .clone()
            .unwrap_or_else(|| plan.server_name.value.clone());
        let hop = crate::relay::NextHop::new(
            RELAY_HOP,
            &relay.url,
            relay.xclient,
            &relay.tls,
            &helo,
            relay.timeouts,
        )
        .map_err(|e| relay.origin.wrap(e))?;
        let mut spec = builtin_spec(
            "realm-relay",
            json!({ "hop": RELAY_HOP, "allow-anonymous": relay.allow_anonymous }),
        )?;
        let mut grant = crate::relay::RelayGrant::default();
        grant.hops.insert(RELAY_HOP.to_owned(), Arc::new(hop));
        spec.relay = Some(Arc::new(grant));
        apply_options(&mut spec, defaults, &options);
        relay_limits(
            &mut spec.limits,
            defaults,
            &options,
            relay.timeouts,
            *plan.sessions.max_message_size,
        )
        .map_err(|e| from.wrap(e))?;
        let realm = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
        portal.register_realm(AvatarInterface::MessageDelivery, Arc::new(WasmRealm(realm)));
    }
    for (interface, entry) in &plan.realms.plugins {
        let plugin = load(runtime, defaults, entry, PluginKind::Realm, "realm").await?;
        portal.register_realm(*interface, Arc::new(WasmRealm(plugin)));
    }
    Ok(())
}

/// An operator's mechanism or realm plugin, from a flag or the file; an
/// error about the file's names its line.
async fn load(
    runtime: &Arc<Runtime>,
    defaults: &LimitArgs,
    entry: &PluginPlan,
    kind: PluginKind,
    word: &str,
) -> anyhow::Result<Arc<Plugin>> {
    let from = &entry.origin;
    file_plugin_exists(from, &entry.plugin.path)?;
    let mut spec = plugin_spec(&entry.plugin).map_err(|e| from.wrap(e))?;
    apply_options(&mut spec, defaults, &entry.plugin.options);
    let plugin = runtime.load(spec).await.map_err(|e| from.wrap(e))?;
    let what = if from.at().is_some() {
        word.to_owned()
    } else {
        from.name().to_owned()
    };
    expect_kind(&plugin, kind, &what).map_err(|e| from.wrap(e))?;
    Ok(plugin)
}
