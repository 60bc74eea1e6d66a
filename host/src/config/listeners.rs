//! `[[listener]]`: the sockets the server listens on, and what each
//! speaks. Without any, the flags' (or their defaults') listeners serve.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};
use crate::dovecot::UnixSocket;
use crate::plan::{Listener, ListenerTls, Protocol, ServerPlan, Setting};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ListenerTable {
    protocol: Protocol,
    address: Option<Spanned<String>>,
    tls: Option<ListenerTls>,
    /// A UNIX socket instead of an address (the Dovecot auth protocol).
    path: Option<Spanned<String>>,
    /// The socket's permission bits, octal: "0660".
    mode: Option<Spanned<String>>,
    owner: Option<String>,
    group: Option<String>,
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
    let mut sockets = Vec::new();
    for l in tables {
        let offset = l.span().start;
        let l = l.get_ref();
        if let Some(path) = &l.path {
            sockets.push(unix_socket(src, offset, l, path)?);
            continue;
        }
        if l.mode.is_some() || l.owner.is_some() || l.group.is_some() {
            return Err(src.error(
                offset,
                "mode, owner and group belong to a listener with a path",
            ));
        }
        let Some(address) = &l.address else {
            return Err(src.error(
                offset,
                "a listener needs an address (or, for protocol = \"dovecot\", a path)",
            ));
        };
        let address = src.at(address, |a| {
            a.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "\"{a}\" is not an address; write e.g. \"127.0.0.1:2525\" or \"[::1]:2525\""
                )
            })
        })?;
        let tls = match (l.protocol, l.tls) {
            (Protocol::Smtp, None) => ListenerTls::Starttls,
            (Protocol::Echo | Protocol::Dovecot, None | Some(ListenerTls::None)) => {
                ListenerTls::None
            }
            (Protocol::Echo | Protocol::Dovecot, Some(_)) => {
                return Err(src.error(
                    offset,
                    format!(
                        "the {} listener has no TLS; write tls = \"none\" or leave it out",
                        l.protocol.as_str()
                    ),
                ));
            }
            (Protocol::Smtp, Some(tls)) => tls,
        };
        if l.protocol == Protocol::Dovecot && l.proxy_protocol == Some(true) {
            return Err(src.error(
                offset,
                "the dovecot listener takes no PROXY header: its peer is an MTA, which names its client in rip=",
            ));
        }
        let listener = Listener {
            protocol: l.protocol,
            address,
            tls,
            proxy_protocol: l.proxy_protocol.unwrap_or(false),
        };
        listeners.push(Setting::new(listener, src.origin(offset, "[[listener]]")));
    }
    plan.listeners = listeners;
    plan.dovecot.sockets = sockets;
    Ok(())
}

fn unix_socket(
    src: &Source,
    offset: usize,
    l: &ListenerTable,
    path: &Spanned<String>,
) -> Result<Setting<UnixSocket>, ConfigError> {
    if l.protocol != Protocol::Dovecot {
        return Err(src.error(
            offset,
            "only protocol = \"dovecot\" listens on a UNIX socket; give this one an address",
        ));
    }
    if l.address.is_some() {
        return Err(src.error(offset, "a listener has an address or a path, not both"));
    }
    let mode = match &l.mode {
        None => 0o660,
        Some(m) => src.at(m, |text| {
            u32::from_str_radix(text.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    format!("mode = \"{text}\": write octal permission bits, e.g. \"0660\"")
                })
        })?,
    };
    let socket = UnixSocket {
        path: src.relative(std::path::Path::new(path.get_ref())),
        mode,
        owner: l.owner.clone(),
        group: l.group.clone(),
    };
    Ok(Setting::new(socket, src.origin(offset, "[[listener]]")))
}
