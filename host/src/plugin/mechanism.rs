//! One SASL exchange with a mechanism plugin, in its own store.

use std::sync::Arc;

use async_trait::async_trait;

use super::bindings::mechanism::MechanismPlugin;
use super::bindings::mechanism::exports::portcullis::auth::mechanism as wit;
use super::state::SessionContext;
use super::{Plugin, PluginPre, PooledStore, convert};
use crate::portal::{
    ChannelInfo, CredentialKind, Exchange, Fault, FaultKind, Mechanism, MechanismInfo,
    SecretSource, Step,
};

/// A running exchange. Dropping it frees the instance.
pub struct WasmExchange {
    plugin: Arc<Plugin>,
    store: PooledStore,
    bindings: MechanismPlugin,
}

impl Plugin {
    /// Instantiates a mechanism in a fresh store.
    async fn instantiate_mechanism(
        self: &Arc<Self>,
        session: Option<SessionContext>,
    ) -> Result<(PooledStore, MechanismPlugin), Fault> {
        let PluginPre::Mechanism(pre) = &self.pre else {
            return Err(self.fault(FaultKind::Contract, "not a mechanism plugin"));
        };
        let mut store = self.new_store().await?;
        store.data_mut().session = session;
        let bindings = self
            .bounded_instantiation(pre.instantiate_async(&mut *store))
            .await
            .map_err(|e| self.instantiate_fault(e))?;
        self.instantiated(&store);
        Ok((store, bindings))
    }

    /// Asks a mechanism plugin for its name and needs, checking the name is
    /// a valid SASL name (RFC 4422 §3.1).
    pub async fn mechanism_info(self: &Arc<Self>) -> Result<MechanismInfo, Fault> {
        let (mut store, bindings) = self.instantiate_mechanism(None).await?;
        self.arm(&mut store);
        let info = self
            .bounded(bindings.portcullis_auth_mechanism().call_info(&mut store))
            .await
            .map_err(|e| self.trap(&store, e))?;
        let valid = !info.name.is_empty()
            && info.name.len() <= 20
            && info
                .name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(self.fault(
                FaultKind::Contract,
                format!("{:?} is not a SASL mechanism name", info.name),
            ));
        }
        Ok(MechanismInfo {
            name: info.name,
            plaintext: info.plaintext,
            kinds: info
                .credential_kinds
                .into_iter()
                .map(convert::kind_from_wit)
                .collect(),
        })
    }

    /// Begins an exchange for a connection. `declared` are the kinds the
    /// mechanism's `info` named: the only ones it may look up.
    pub async fn exchange(
        self: &Arc<Self>,
        source: Arc<dyn SecretSource>,
        channel: ChannelInfo,
        declared: &[CredentialKind],
    ) -> Result<WasmExchange, Fault> {
        let session = SessionContext {
            channel,
            source,
            declared: declared.to_vec(),
            may_lookup: self.lookup_secrets,
            lookups_left: self.runtime.max_lookups,
            secrets: Vec::new(),
            fault: None,
        };
        let (store, bindings) = self.instantiate_mechanism(Some(session)).await?;
        Ok(WasmExchange {
            plugin: self.clone(),
            store,
            bindings,
        })
    }
}

#[async_trait]
impl Exchange for WasmExchange {
    async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Step, Fault> {
        self.plugin.arm(&mut self.store);
        let step = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_mechanism()
                    .call_start(&mut self.store, initial_response),
            )
            .await
            .map_err(|e| self.plugin.trap(&self.store, e))?;
        self.check(step)
    }

    async fn step(&mut self, response: &[u8]) -> Result<Step, Fault> {
        self.plugin.arm(&mut self.store);
        let step = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_mechanism()
                    .call_step(&mut self.store, response),
            )
            .await
            .map_err(|e| self.plugin.trap(&self.store, e))?;
        self.check(step)
    }

    async fn denied(&mut self) -> Result<Option<Vec<u8>>, Fault> {
        self.plugin.arm(&mut self.store);
        let data = self
            .plugin
            .bounded(
                self.bindings
                    .portcullis_auth_mechanism()
                    .call_denied(&mut self.store),
            )
            .await
            .map_err(|e| self.plugin.trap(&self.store, e))?;
        match data {
            Some(d) if d.len() > self.plugin.limits.max_output => Err(self.too_big(d.len())),
            other => Ok(other),
        }
    }

    fn vouched_avatar(&self, username: &str, kind: CredentialKind) -> Option<String> {
        let session = self.store.data().session.as_ref()?;
        session
            .secrets
            .iter()
            .find(|(u, k, _)| u == username && *k == kind)
            .map(|(_, _, id)| id.clone())
    }
}

impl WasmExchange {
    /// A checker fault met while the mechanism looked up a secret.
    pub fn take_lookup_fault(&mut self) -> Option<Fault> {
        self.store.data_mut().session.as_mut()?.fault.take()
    }

    fn too_big(&self, len: usize) -> Fault {
        self.plugin.fault(
            FaultKind::Contract,
            format!(
                "returned {len} bytes, more than its max-output of {} bytes",
                self.plugin.limits.max_output
            ),
        )
    }

    /// Enforces the contract on what the guest returned.
    fn check(&mut self, step: wit::StepResult) -> Result<Step, Fault> {
        let max = self.plugin.limits.max_output;
        Ok(match step {
            wit::StepResult::Challenge(c) if c.len() > max => return Err(self.too_big(c.len())),
            wit::StepResult::Challenge(c) => Step::Challenge(c),
            wit::StepResult::Success(s) => {
                if let Some(d) = &s.additional_data
                    && d.len() > max
                {
                    return Err(self.too_big(d.len()));
                }
                let credentials = convert::credentials_from_wit(s.credentials);
                if credentials.claimed_user() == Some("") {
                    return Err(self
                        .plugin
                        .fault(FaultKind::Contract, "succeeded with an empty user name"));
                }
                Step::Success {
                    credentials,
                    additional_data: s.additional_data,
                }
            }
            wit::StepResult::Failure(why) => {
                if let Some(fault) = self.take_lookup_fault() {
                    return Err(fault);
                }
                Step::Failure(truncate(why, 200))
            }
        })
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text.retain(|c| !c.is_control());
    text
}

/// A mechanism plugin in the portal's [`Mechanism`] role.
pub struct WasmMechanism(pub Arc<Plugin>);

#[async_trait]
impl Mechanism for WasmMechanism {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn info(&self) -> Result<MechanismInfo, Fault> {
        self.0.mechanism_info().await
    }

    async fn exchange(
        &self,
        secrets: Arc<dyn SecretSource>,
        channel: ChannelInfo,
        declared: &[CredentialKind],
    ) -> Result<Box<dyn Exchange>, Fault> {
        Ok(Box::new(self.0.exchange(secrets, channel, declared).await?))
    }
}
