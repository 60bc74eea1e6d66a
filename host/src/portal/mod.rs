//! The portal (Twisted Cred's `Portal`): native, never a plugin. It routes
//! credentials to the one checker registered for their kind, then asks the
//! realm that serves the protocol for an avatar.

mod credentials;
mod secret;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::bail;

pub use credentials::{CredentialKind, Credentials, Denial, Fault, FaultKind, Verdict};
pub use secret::{ScramKeys, SecretEntry, StoredSecret};

use crate::plugin::Plugin;
use crate::plugin::realm::{Avatar, AvatarInterface, Mind};

/// A successful login: who, and the avatar that acts for them.
pub struct Login {
    /// `None` for an anonymous login.
    pub avatar_id: Option<String>,
    pub avatar: Avatar,
}

/// Routes credentials to checkers and avatar requests to realms.
#[derive(Debug, Default)]
pub struct Portal {
    checkers: BTreeMap<CredentialKind, Arc<Plugin>>,
    realms: HashMap<AvatarInterface, Arc<Plugin>>,
}

impl Portal {
    /// Registers a checker for every kind it declares. Two checkers for one
    /// kind is a configuration error.
    pub async fn register_checker(&mut self, checker: Arc<Plugin>) -> anyhow::Result<()> {
        self.register_checker_for(checker, None).await
    }

    /// Registers a checker for `only` these of its kinds (all it declares
    /// if `None`). A kind it does not declare is a configuration error.
    pub async fn register_checker_for(
        &mut self,
        checker: Arc<Plugin>,
        only: Option<&[CredentialKind]>,
    ) -> anyhow::Result<()> {
        let declared = checker.credential_kinds().await?;
        if declared.is_empty() {
            bail!("checker {} declares no credential kinds", checker.name());
        }
        let kinds = match only {
            None => declared,
            Some(only) => {
                if let Some(k) = only.iter().find(|k| !declared.contains(k)) {
                    let names: Vec<&str> = declared.iter().map(|k| k.as_str()).collect();
                    bail!(
                        "checker {} does not serve {k} credentials; it declares {}",
                        checker.name(),
                        names.join(", ")
                    );
                }
                only.to_vec()
            }
        };
        for kind in &kinds {
            if let Some(existing) = self.checkers.get(kind) {
                bail!(
                    "two checkers for {kind} credentials: {} and {}. Register one checker \
                     per credential kind (remove one of the --auth options).",
                    existing.name(),
                    checker.name()
                );
            }
        }
        for kind in kinds {
            self.checkers.insert(kind, checker.clone());
        }
        Ok(())
    }

    /// Makes `realm` serve `interface`, replacing any earlier one.
    pub fn register_realm(&mut self, interface: AvatarInterface, realm: Arc<Plugin>) {
        self.realms.insert(interface, realm);
    }

    /// The checker registered for `kind`.
    pub fn checker_for(&self, kind: CredentialKind) -> Option<&Arc<Plugin>> {
        self.checkers.get(&kind)
    }

    /// Every registered kind with its checker, in a stable order.
    pub fn checkers(&self) -> impl Iterator<Item = (CredentialKind, &Arc<Plugin>)> {
        self.checkers.iter().map(|(k, p)| (*k, p))
    }

    pub fn realm_for(&self, interface: AvatarInterface) -> Option<&Arc<Plugin>> {
        self.realms.get(&interface)
    }

    /// Whether unauthenticated users may log in anonymously.
    pub fn allows_anonymous(&self) -> bool {
        self.checkers.contains_key(&CredentialKind::Anonymous)
    }

    /// Verifies credentials with the checker for their kind. Anonymous
    /// credentials yield the avatar id `None`.
    ///
    /// `VerifiedSecret` credentials can only be vouched for by the exchange
    /// that looked the secret up; see [`crate::sasl::Authenticator`].
    pub async fn check(&self, credentials: &Credentials) -> Verdict<Option<String>> {
        let kind = credentials.kind();
        #[cfg(feature = "bench-native")]
        if let Some(verdict) = crate::bench_native::check(credentials) {
            return Ok(verdict.map(Some));
        }
        let Some(checker) = self.checkers.get(&kind) else {
            return Ok(Err(Denial::NoChecker(kind)));
        };
        if let Credentials::VerifiedSecret { .. } = credentials {
            return Ok(Err(Denial::Unsupported));
        }
        let id = match checker.check(credentials).await? {
            Ok(id) => id,
            Err(denial) => return Ok(Err(denial)),
        };
        Ok(Ok((kind != CredentialKind::Anonymous).then_some(id)))
    }

    /// Answers a mechanism's `lookup-secret`.
    pub async fn lookup_secret(
        &self,
        username: &str,
        kind: CredentialKind,
    ) -> Verdict<SecretEntry> {
        match self.checkers.get(&kind) {
            Some(checker) => checker.lookup_secret(username, kind).await,
            None => Ok(Err(Denial::NoChecker(kind))),
        }
    }

    /// Asks the realm serving `interface` for the avatar of `avatar_id`.
    pub async fn request_avatar(
        &self,
        avatar_id: Option<&str>,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<Avatar> {
        let Some(realm) = self.realms.get(&interface) else {
            return Ok(Err(Denial::Other(format!(
                "no realm serves the {} interface",
                interface.as_str()
            ))));
        };
        realm.request_avatar(avatar_id, interface, mind).await
    }

    /// Checks credentials and returns the avatar: Twisted's `Portal.login`.
    pub async fn login(
        &self,
        credentials: &Credentials,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<Login> {
        let avatar_id = match self.check(credentials).await? {
            Ok(id) => id,
            Err(denial) => return Ok(Err(denial)),
        };
        self.avatar_for(avatar_id, interface, mind).await
    }

    /// The avatar for an identity already established.
    pub async fn avatar_for(
        &self,
        avatar_id: Option<String>,
        interface: AvatarInterface,
        mind: &Mind,
    ) -> Verdict<Login> {
        Ok(self
            .request_avatar(avatar_id.as_deref(), interface, mind)
            .await?
            .map(|avatar| Login { avatar_id, avatar }))
    }
}
