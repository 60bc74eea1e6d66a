//! Calls into a checker plugin. Each call gets a fresh store, so nothing a
//! checker learns about one user survives into the next call.

use std::sync::Arc;

use async_trait::async_trait;

use super::bindings::CheckerPlugin;
use super::bindings::checker::exports::portcullis::auth::checker as wit;
use super::{Plugin, PluginPre, PooledStore, convert};
use crate::portal::{Checker, CredentialKind, Credentials, Fault, FaultKind, SecretEntry, Verdict};

impl Plugin {
    async fn instantiate_checker(
        self: &Arc<Self>,
    ) -> Result<(PooledStore, CheckerPlugin), crate::portal::Fault> {
        let PluginPre::Checker(pre) = &self.pre else {
            return Err(self.fault(FaultKind::Contract, "not a checker plugin"));
        };
        let mut store = self.new_store().await?;
        let bindings = self
            .bounded_instantiation(pre.instantiate_async(&mut *store))
            .await
            .map_err(|e| self.instantiate_fault(e))?;
        self.instantiated(&store);
        self.arm(&mut store);
        Ok((store, bindings))
    }

    /// The credential kinds a checker declares.
    pub async fn credential_kinds(
        self: &Arc<Self>,
    ) -> Result<Vec<CredentialKind>, crate::portal::Fault> {
        let (mut store, bindings) = self.instantiate_checker().await?;
        let kinds = self
            .bounded(
                bindings
                    .portcullis_auth_checker()
                    .call_credential_kinds(&mut store),
            )
            .await
            .map_err(|e| self.trap(&store, e))?;
        Ok(kinds.into_iter().map(convert::kind_from_wit).collect())
    }

    /// Verifies credentials: an avatar id, a denial, or a fault.
    pub async fn check(self: &Arc<Self>, credentials: &Credentials) -> Verdict<String> {
        let (mut store, bindings) = self.instantiate_checker().await?;
        let verdict = self
            .bounded(
                bindings
                    .portcullis_auth_checker()
                    .call_check(&mut store, &convert::credentials_to_wit(credentials)),
            )
            .await
            .map_err(|e| self.trap(&store, e))?;
        match verdict {
            wit::Verdict::Accepted(id) => Ok(Ok(self.avatar_id(id)?)),
            wit::Verdict::Denied(denial) => Ok(Err(convert::denial_from_wit(denial))),
            wit::Verdict::Unavailable(why) => Err(self.fault(FaultKind::Unavailable, why)),
        }
    }

    /// Looks up a stored secret for a mechanism.
    pub async fn lookup_secret(
        self: &Arc<Self>,
        username: &str,
        kind: CredentialKind,
    ) -> Verdict<SecretEntry> {
        let (mut store, bindings) = self.instantiate_checker().await?;
        let answer = self
            .bounded(bindings.portcullis_auth_checker().call_lookup_secret(
                &mut store,
                username,
                convert::kind_to_wit(kind),
            ))
            .await
            .map_err(|e| self.trap(&store, e))?;
        match answer {
            wit::SecretAnswer::Found(entry) => {
                let mut entry = convert::secret_from_wit(entry);
                entry.avatar_id = self.avatar_id(entry.avatar_id)?;
                Ok(Ok(entry))
            }
            wit::SecretAnswer::Denied(denial) => Ok(Err(convert::denial_from_wit(denial))),
            wit::SecretAnswer::Unavailable(why) => Err(self.fault(FaultKind::Unavailable, why)),
        }
    }

    /// An avatar id must be a non-empty single line of bounded length.
    fn avatar_id(&self, id: String) -> Result<String, crate::portal::Fault> {
        if id.is_empty() || id.len() > 512 || id.chars().any(char::is_control) {
            return Err(self.fault(
                FaultKind::Contract,
                "returned an empty, overlong or multi-line avatar id",
            ));
        }
        Ok(id)
    }
}

/// A checker plugin in the portal's [`Checker`] role.
pub struct WasmChecker(pub Arc<Plugin>);

#[async_trait]
impl Checker for WasmChecker {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn credential_kinds(&self) -> Result<Vec<CredentialKind>, Fault> {
        self.0.credential_kinds().await
    }

    async fn check(&self, credentials: &Credentials) -> Verdict<String> {
        self.0.check(credentials).await
    }

    async fn lookup_secret(&self, username: &str, kind: CredentialKind) -> Verdict<SecretEntry> {
        self.0.lookup_secret(username, kind).await
    }
}
