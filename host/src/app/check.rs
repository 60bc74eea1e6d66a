//! `portcullis check-config`: the plan assembled as a start would assemble
//! it (plugins, checkers, databases, TLS files), without listening and
//! without touching the disk. Prints a summary in the file's own words.

use super::services::{self, Disk};
use super::{assemble, system};
use crate::plan::ServerPlan;
use crate::portal::AvatarInterface;

/// Builds everything a start would, without listening. Returns a summary.
///
/// It has no side effects: no certificate is generated (a start would make
/// a self-signed one), no Maildir folder is created. The summary uses the
/// file's own words (`protocol = "smtp"`, `tls = "starttls"`).
pub async fn check(plan: &ServerPlan) -> anyhow::Result<String> {
    let runtime = assemble::runtime(plan)?;
    let services = services::build(plan, &runtime, Disk::Untouched).await?;
    let tls = if assemble::has_certificate(plan) {
        assemble::tls(plan)?.1.source
    } else {
        format!(
            "a self-signed certificate for {}, made at start",
            *plan.server_name
        )
    };
    system::lookup_user(&plan.service)?;
    assemble::Shared::new(plan)?;
    let mut out = String::new();
    for l in &plan.listeners {
        assemble::proxy(plan, l)?;
        out.push_str(&format!(
            "listener protocol = \"{}\" address = \"{}\" tls = \"{}\"{}\n",
            l.protocol.as_str(),
            l.address,
            l.tls.as_str(),
            if l.proxy_protocol {
                " proxy-protocol = true"
            } else {
                ""
            }
        ));
    }
    for s in &plan.dovecot.sockets {
        out.push_str(&format!(
            "listener protocol = \"dovecot\" path = \"{}\" mode = \"{:04o}\"\n",
            s.path.display(),
            s.mode
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
    out.push_str(&format!("mechanisms {}\n", services::offered(&services)));
    out.push_str(&format!(
        "bare-newline = \"{}\"\n",
        plan.sessions.bare_newline.as_str()
    ));
    out.push_str(&format!("tls {tls}\n"));
    Ok(out)
}
