//! Avatars from a realm plugin. Each avatar lives in its own store;
//! [`Avatar::logout`] drops the guest resource (the realm's logout) and then
//! the store.
//!
//! Every call into the avatar, the logout included, runs under the plugin's
//! deadline. A call that traps or is cut off leaves the store mid-call, so
//! the avatar is then *poisoned*: it is never called again, and its logout
//! only frees the instance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wasmtime::component::ResourceAny;

use super::bindings::RealmPlugin;
use super::bindings::realm::exports::portcullis::auth::realm as wit;
use super::{Plugin, PluginPre, PooledStore, convert};
use crate::portal::{
    Avatar, AvatarInterface, EchoReply, Fault, FaultKind, Mind, Realm, ReceivedInfo, Rejection,
    Verdict,
};

/// How long past `deliver-time` the host waits for a guest blocked in a
/// host call (the epoch deadline stops one that computes).
const DELIVER_GRACE: Duration = Duration::from_millis(100);

/// The longest Received header a realm may return, folded lines and all.
const MAX_RECEIVED_HEADER: usize = 4096;

/// A logged-in user's avatar: a guest resource in a store of its own.
pub struct WasmAvatar {
    plugin: Arc<Plugin>,
    store: PooledStore,
    bindings: RealmPlugin,
    handle: Option<ResourceAny>,
    interface: AvatarInterface,
    /// A call failed; the store must not be entered again.
    poisoned: bool,
}

/// Lines an echo reply may have.
pub const MAX_ECHO_LINES: usize = 256;

impl Plugin {
    /// Asks the realm for an avatar (`avatar_id` `None`: anonymous).
    pub async fn request_avatar(
        self: &Arc<Self>,
        avatar_id: Option<&str>,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<WasmAvatar> {
        let PluginPre::Realm(pre) = &self.pre else {
            return Err(self.fault(FaultKind::Contract, "not a realm plugin"));
        };
        let mut store = self.new_store().await?;
        if let Some(relay) = &mut store.data_mut().relay {
            // What XCLIENT tells the next hop: the host's facts, never the
            // realm's word.
            relay.client = crate::relay::ClientFacts {
                addr: mind
                    .peer
                    .parse::<std::net::SocketAddr>()
                    .map(|a| a.ip())
                    .or_else(|_| mind.peer.parse())
                    .ok(),
                login: avatar_id.map(str::to_owned),
            };
        }
        self.arm(&mut store);
        let bindings = self
            .bounded_instantiation(pre.instantiate_async(&mut *store))
            .await
            .map_err(|e| self.instantiate_fault(e))?;
        self.instantiated(&store);
        self.arm(&mut store);
        let wit_interface = match interface {
            AvatarInterface::Echo => wit::AvatarInterface::Echo,
            AvatarInterface::MessageDelivery => wit::AvatarInterface::MessageDelivery,
        };
        let wit_mind = wit::Mind {
            peer: mind.peer.clone(),
            protocol: mind.protocol.to_owned(),
            mechanism: mind.mechanism.clone(),
            secure: mind.secure,
        };
        let answer = self
            .bounded(bindings.portcullis_auth_realm().call_request_avatar(
                &mut store,
                avatar_id,
                wit_interface,
                &wit_mind,
            ))
            .await
            .map_err(|e| self.trap(&store, e))?;
        let handle = match answer {
            Err(wit::AvatarError::Denied(denial)) => {
                return Ok(Err(convert::denial_from_wit(denial)));
            }
            Err(wit::AvatarError::Unavailable(why)) => {
                return Err(self.fault(FaultKind::Unavailable, why));
            }
            Ok(wit::Avatar::Echo(h)) if interface == AvatarInterface::Echo => h,
            Ok(wit::Avatar::MessageDelivery(h))
                if interface == AvatarInterface::MessageDelivery =>
            {
                h
            }
            Ok(_) => {
                return Err(self.fault(
                    FaultKind::Contract,
                    format!(
                        "returned another avatar than the {} asked for",
                        interface.as_str()
                    ),
                ));
            }
        };
        Ok(Ok(WasmAvatar {
            plugin: self.clone(),
            store,
            bindings,
            handle: Some(handle),
            interface,
            poisoned: false,
        }))
    }
}

impl WasmAvatar {
    fn handle(&self) -> Result<ResourceAny, Fault> {
        if self.poisoned {
            return Err(self.plugin.fault(
                FaultKind::Contract,
                "avatar used after one of its calls failed",
            ));
        }
        self.handle.ok_or_else(|| {
            self.plugin
                .fault(FaultKind::Contract, "avatar used after logout")
        })
    }

    /// A failed call: the fault, and the avatar poisoned.
    fn failed(&mut self, err: wasmtime::Error) -> Fault {
        self.poisoned = true;
        self.plugin.trap(&self.store, err)
    }

    /// A contract breach in an answer: the avatar stays usable.
    fn breach(&self, detail: impl Into<String>) -> Fault {
        self.plugin.fault(FaultKind::Contract, detail)
    }
}

#[async_trait]
impl Avatar for WasmAvatar {
    fn interface(&self) -> AvatarInterface {
        self.interface
    }

    fn realm_name(&self) -> &str {
        self.plugin.name()
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// One line from an echo client. The reply's lines must be at most
    /// [`MAX_ECHO_LINES`], each without CR or LF (what the host lifts is
    /// bounded by `max-output` before it is copied at all).
    async fn echo_line(&mut self, line: &str) -> Result<EchoReply, Fault> {
        let handle = self.handle()?;
        self.plugin.arm(&mut self.store);
        let reply = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_realm()
                    .echo_avatar()
                    .call_line(&mut self.store, handle, line),
            )
            .await
            .map_err(|e| self.failed(e))?;
        if reply.lines.len() > MAX_ECHO_LINES {
            return Err(self.breach(format!(
                "echo reply of {} lines (at most {MAX_ECHO_LINES})",
                reply.lines.len()
            )));
        }
        let size: usize = reply.lines.iter().map(String::len).sum();
        if size > self.plugin.limits.max_output {
            return Err(self.breach(format!(
                "echo reply of {size} bytes is over the output limit"
            )));
        }
        if reply.lines.iter().any(|l| l.contains(['\r', '\n'])) {
            return Err(self.breach("echo reply line contains CR or LF"));
        }
        Ok(EchoReply {
            lines: reply.lines,
            close: reply.close,
        })
    }

    /// May this session send mail from `sender` (empty: the null path)?
    async fn validate_from(
        &mut self,
        helo: &str,
        sender: &str,
    ) -> Result<Result<(), Rejection>, Fault> {
        let handle = self.handle()?;
        self.plugin.arm(&mut self.store);
        let answer = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_realm()
                    .delivery_avatar()
                    .call_validate_from(&mut self.store, handle, helo, sender),
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(answer.map_err(rejection))
    }

    /// May mail be delivered to `recipient`?
    async fn validate_to(&mut self, recipient: &str) -> Result<Result<(), Rejection>, Fault> {
        let handle = self.handle()?;
        self.plugin.arm(&mut self.store);
        let answer = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_realm()
                    .delivery_avatar()
                    .call_validate_to(&mut self.store, handle, recipient),
            )
            .await
            .map_err(|e| self.failed(e))?;
        Ok(answer.map_err(rejection))
    }

    /// The realm's own Received header, or `None` for the host's.
    async fn received_header(&mut self, info: &ReceivedInfo) -> Result<Option<String>, Fault> {
        let handle = self.handle()?;
        self.plugin.arm(&mut self.store);
        let header = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_realm()
                    .delivery_avatar()
                    .call_received_header(&mut self.store, handle, &received_to_wit(info)),
            )
            .await
            .map_err(|e| self.failed(e))?;
        // Folding (CRLF then a space or tab) is allowed, so the header may
        // span lines; the session checks its shape (`valid_header`).
        match header {
            Some(h) if h.len() > MAX_RECEIVED_HEADER => Err(self.plugin.fault(
                FaultKind::Contract,
                format!("returned a Received header over {MAX_RECEIVED_HEADER} bytes"),
            )),
            other => Ok(other),
        }
    }

    /// Hands a complete message to the realm; `Ok(Ok(()))` means it is
    /// safe and the client may be told so.
    async fn deliver(
        &mut self,
        info: &ReceivedInfo,
        message: &[u8],
    ) -> Result<Result<(), Rejection>, Fault> {
        let handle = self.handle()?;
        // Its own deadline, not the call time of a login's steps.
        let limit = self.plugin.limits.deliver_time;
        let started = Instant::now();
        self.store.data_mut().deadline = started + limit;
        let wit_info = received_to_wit(info);
        let realm = self.bindings.portcullis_auth_realm();
        let delivery = realm.delivery_avatar();
        let call = delivery.call_deliver(&mut self.store, handle, &wit_info, message);
        let result = match tokio::time::timeout(limit + DELIVER_GRACE, call).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(wasmtime::Trap::Interrupt)),
        };
        self.plugin.times.call.record(started.elapsed());
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => {
                let mut fault = self.failed(e);
                if fault.kind == FaultKind::Timeout {
                    fault.detail = format!(
                        "deliver ran past its deadline of {} ms (deliver-time)",
                        limit.as_millis()
                    );
                }
                return Err(fault);
            }
        };
        Ok(answer.map_err(rejection))
    }

    /// Logs out: the realm's destructor runs (under the plugin's call
    /// time, like any call), then the instance is freed. A destructor that
    /// traps or overruns is reported and abandoned; a poisoned avatar is
    /// not entered at all.
    async fn logout(mut self: Box<Self>) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        if self.poisoned {
            tracing::debug!(plugin = %self.plugin.name(),
                "avatar freed without logout: an earlier call failed");
            return;
        }
        self.plugin.arm(&mut self.store);
        let dropped = self
            .plugin
            .bounded(handle.resource_drop_async(&mut self.store))
            .await;
        if let Err(e) = dropped {
            let fault = self.failed(e);
            tracing::warn!(plugin = %fault.plugin, kind = %fault.kind, "logout failed: {}", fault.detail);
        }
    }
}

/// A realm plugin in the portal's [`Realm`] role.
pub struct WasmRealm(pub Arc<Plugin>);

#[async_trait]
impl Realm for WasmRealm {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn settings(&self) -> Option<String> {
        let limits = self.0.limits().realm_summary();
        Some(if self.0.defers_avatar() {
            format!("{limits} defer-avatar = true")
        } else {
            limits
        })
    }

    fn grants_every_identity(&self) -> bool {
        self.0.defers_avatar()
    }

    async fn request_avatar(
        &self,
        avatar_id: Option<&str>,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<Box<dyn Avatar>> {
        let avatar = self.0.request_avatar(avatar_id, interface, mind).await?;
        Ok(avatar.map(|a| Box::new(a) as Box<dyn Avatar>))
    }
}

fn received_to_wit(info: &ReceivedInfo) -> wit::ReceivedInfo {
    wit::ReceivedInfo {
        helo: info.helo.clone(),
        peer_ip: info.peer_ip.clone(),
        server_name: info.server_name.clone(),
        with_protocol: info.with_protocol.clone(),
        authenticated_id: info.authenticated_id.clone(),
        id: info.id.clone(),
        sender: info.sender.clone(),
        recipients: info.recipients.clone(),
        date: info.date.clone(),
    }
}

/// A realm's rejection, its text made one printable line.
fn rejection(r: wit::Rejection) -> Rejection {
    let mut text: String = r
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.is_empty() {
        text = "Rejected".into();
    }
    Rejection {
        permanent: r.permanent,
        text,
    }
}
