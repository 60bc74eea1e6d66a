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

use wasmtime::component::ResourceAny;

use super::bindings::realm::RealmPlugin;
use super::bindings::realm::exports::portcullis::auth::realm as wit;
use super::{Plugin, PluginPre, PooledStore, convert};
use crate::portal::{Fault, FaultKind, Verdict};

/// The avatar interface a protocol asks the realm for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AvatarInterface {
    Echo,
    MessageDelivery,
}

impl AvatarInterface {
    pub fn as_str(self) -> &'static str {
        match self {
            AvatarInterface::Echo => "echo",
            AvatarInterface::MessageDelivery => "message-delivery",
        }
    }
}

/// What the host tells the realm about the connection.
#[derive(Clone, Debug, Default)]
pub struct Mind {
    pub peer: String,
    pub protocol: &'static str,
    pub mechanism: Option<String>,
    pub secure: bool,
}

/// The realm's answer to one echo line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    pub lines: Vec<String>,
    pub close: bool,
}

/// Why the realm refused a sender, recipient or message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// 5xx when true, 4xx otherwise.
    pub permanent: bool,
    /// One printable line for the client.
    pub text: String,
}

/// What the host knows when a message arrives (RFC 5321 §4.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceivedInfo {
    pub helo: String,
    pub peer_ip: String,
    pub server_name: String,
    pub with_protocol: String,
    pub authenticated_id: Option<String>,
    pub id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub date: String,
}

impl ReceivedInfo {
    fn to_wit(&self) -> wit::ReceivedInfo {
        wit::ReceivedInfo {
            helo: self.helo.clone(),
            peer_ip: self.peer_ip.clone(),
            server_name: self.server_name.clone(),
            with_protocol: self.with_protocol.clone(),
            authenticated_id: self.authenticated_id.clone(),
            id: self.id.clone(),
            sender: self.sender.clone(),
            recipients: self.recipients.clone(),
            date: self.date.clone(),
        }
    }
}

/// How long past `deliver-time` the host waits for a guest blocked in a
/// host call (the epoch deadline stops one that computes).
const DELIVER_GRACE: Duration = Duration::from_millis(100);

/// The longest Received header a realm may return, folded lines and all.
const MAX_RECEIVED_HEADER: usize = 4096;

/// A logged-in user's avatar.
pub struct Avatar {
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
    ) -> Verdict<Avatar> {
        let PluginPre::Realm(pre) = &self.pre else {
            return Err(self.fault(FaultKind::Contract, "not a realm plugin"));
        };
        let mut store = self.new_store().await?;
        self.arm(&mut store);
        let bindings = self
            .bounded(pre.instantiate_async(&mut *store))
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
        Ok(Ok(Avatar {
            plugin: self.clone(),
            store,
            bindings,
            handle: Some(handle),
            interface,
            poisoned: false,
        }))
    }
}

impl Avatar {
    pub fn interface(&self) -> AvatarInterface {
        self.interface
    }

    /// The realm plugin's name, for the log.
    pub fn plugin_name(&self) -> &str {
        self.plugin.name()
    }

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

    /// Whether a call into this avatar failed, so that it cannot be used
    /// again (a session asks the realm for a fresh one, or ends).
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
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

    /// One line from an echo client. The reply's lines must be at most
    /// [`MAX_ECHO_LINES`], each without CR or LF (what the host lifts is
    /// bounded by `max-output` before it is copied at all).
    pub async fn echo_line(&mut self, line: &str) -> Result<EchoReply, Fault> {
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
    pub async fn validate_from(
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
    pub async fn validate_to(&mut self, recipient: &str) -> Result<Result<(), Rejection>, Fault> {
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
    pub async fn received_header(&mut self, info: &ReceivedInfo) -> Result<Option<String>, Fault> {
        let handle = self.handle()?;
        self.plugin.arm(&mut self.store);
        let header = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_realm()
                    .delivery_avatar()
                    .call_received_header(&mut self.store, handle, &info.to_wit()),
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
    pub async fn deliver(
        &mut self,
        info: &ReceivedInfo,
        message: &[u8],
    ) -> Result<Result<(), Rejection>, Fault> {
        let handle = self.handle()?;
        // Its own deadline, not the call time of a login's steps.
        let limit = self.plugin.limits.deliver_time;
        let started = Instant::now();
        self.store.data_mut().deadline = started + limit;
        let wit_info = info.to_wit();
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
    pub async fn logout(mut self) {
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
