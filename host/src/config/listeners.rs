//! `[[listener]]`: the sockets the server listens on, and what each
//! speaks. Without any, the flags' (or their defaults') listeners serve.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::plan::{Listener, ListenerTls, Protocol, ServerPlan, Setting};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ListenerTable {
    protocol: Protocol,
    address: Spanned<String>,
    tls: Option<ListenerTls>,
    proxy_protocol: Option<bool>,
}

/// The file's listeners, replacing the defaults (a listener flag then
/// replaces those of its kind).
pub(super) fn plan(
    src: &Source,
    tables: &[Spanned<ListenerTable>],
    plan: &mut ServerPlan,
) -> Result<(), ConfigError> {
    let mut listeners = Vec::new();
    for l in tables {
        let offset = l.span().start;
        let l = l.get_ref();
        let address = src.at(&l.address, |a| {
            a.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "\"{a}\" is not an address; write e.g. \"127.0.0.1:2525\" or \"[::1]:2525\""
                )
            })
        })?;
        let tls = match (l.protocol, l.tls) {
            (Protocol::Smtp, None) => ListenerTls::Starttls,
            (Protocol::Echo, None | Some(ListenerTls::None)) => ListenerTls::None,
            (Protocol::Echo, Some(_)) => {
                return Err(src.error(
                    offset,
                    "the echo service has no TLS; write tls = \"none\" or leave it out",
                ));
            }
            (Protocol::Smtp, Some(tls)) => tls,
        };
        let listener = Listener {
            protocol: l.protocol,
            address,
            tls,
            proxy_protocol: l.proxy_protocol.unwrap_or(false),
        };
        listeners.push(Setting::new(listener, src.origin(offset, "[[listener]]")));
    }
    plan.listeners = listeners;
    Ok(())
}
