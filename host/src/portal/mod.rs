//! The portal (Twisted Cred's `Portal`): native, never a plugin. It routes
//! credentials to the one checker registered for their kind, then asks the
//! realm that serves the protocol for an avatar.
//!
//! The portal defines the roles and knows nothing of how they are made:
//! - [`Checker`] and [`SecretSource`] ([`checker`]): who verifies
//!   credentials, and where a mechanism looks a stored secret up;
//! - [`Realm`] and [`Avatar`] ([`realm`]), with the realm vocabulary
//!   ([`AvatarInterface`], [`Mind`], [`Rejection`], [`ReceivedInfo`]);
//! - [`Mechanism`] and [`Exchange`] ([`mechanism`]): what the SASL driver
//!   needs from a mechanism.
//!
//! `plugin` implements them with Wasm components; the benchmark's native
//! path and the tests below implement them in Rust.

pub mod checker;
mod credentials;
mod deferred;
#[cfg(test)]
pub mod fakes;
pub mod mechanism;
pub mod realm;
mod secret;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::bail;
use async_trait::async_trait;

pub use checker::{Checker, SecretSource};
pub use credentials::{CredentialKind, Credentials, Denial, Fault, FaultKind, Verdict};
pub use mechanism::{ChannelInfo, Exchange, Mechanism, MechanismInfo, Step};
pub use realm::{
    Avatar, AvatarInterface, AvatarWhen, EchoReply, Mind, Realm, ReceivedInfo, Rejection,
};
pub use secret::{ScramKeys, SecretEntry, StoredSecret};

/// A successful login: who, and the avatar that acts for them.
pub struct Login {
    /// `None` for an anonymous login.
    pub avatar_id: Option<String>,
    pub avatar: Box<dyn Avatar>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("avatar_id", &self.avatar_id)
            .field("realm", &self.avatar.realm_name())
            .finish()
    }
}

/// A login the portal refused, and who refused it (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub denial: Denial,
    /// The checker or realm that said no.
    pub by: Option<String>,
    /// The realm refused the avatar (after the checker accepted).
    pub realm: bool,
}

impl Refused {
    /// The denial as the log shows it: a realm's is marked as such.
    pub fn into_denial(self) -> Denial {
        match self.realm {
            true => Denial::Other(format!("realm: {}", self.denial)),
            false => self.denial,
        }
    }
}

/// What a login presents to the portal.
#[derive(Clone, Copy, Debug)]
pub enum Proof<'a> {
    /// Credentials, for the checker of their kind.
    Credentials(&'a Credentials),
    /// An identity already established (`None`: anonymous): by a mechanism
    /// that verified a secret this portal looked up for it, or by an
    /// earlier login on the same session that needs a fresh avatar.
    Established(Option<&'a str>),
}

/// Routes credentials to checkers and avatar requests to realms.
#[derive(Default)]
pub struct Portal {
    checkers: BTreeMap<CredentialKind, Arc<dyn Checker>>,
    realms: HashMap<AvatarInterface, Arc<dyn Realm>>,
}

impl std::fmt::Debug for Portal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let checkers: BTreeMap<_, _> = self.checkers.iter().map(|(k, c)| (k, c.name())).collect();
        let realms: HashMap<_, _> = self.realms.iter().map(|(i, r)| (i, r.name())).collect();
        f.debug_struct("Portal")
            .field("checkers", &checkers)
            .field("realms", &realms)
            .finish()
    }
}

impl Portal {
    /// Registers a checker for every kind it declares. Two checkers for one
    /// kind is a configuration error.
    pub async fn register_checker(&mut self, checker: Arc<dyn Checker>) -> anyhow::Result<()> {
        self.register_checker_for(checker, None).await
    }

    /// Registers a checker for `only` these of its kinds (all it declares
    /// if `None`). A kind it does not declare is a configuration error.
    pub async fn register_checker_for(
        &mut self,
        checker: Arc<dyn Checker>,
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

    /// Makes `checker` serve `kind` in place of whatever served it (the
    /// benchmark's native checker stands in for a plugin this way).
    pub fn replace_checker(&mut self, kind: CredentialKind, checker: Arc<dyn Checker>) {
        self.checkers.insert(kind, checker);
    }

    /// Makes `realm` serve `interface`, replacing any earlier one.
    pub fn register_realm(&mut self, interface: AvatarInterface, realm: Arc<dyn Realm>) {
        self.realms.insert(interface, realm);
    }

    /// The checker registered for `kind`.
    pub fn checker_for(&self, kind: CredentialKind) -> Option<&Arc<dyn Checker>> {
        self.checkers.get(&kind)
    }

    /// Every registered kind with its checker, in a stable order.
    pub fn checkers(&self) -> impl Iterator<Item = (CredentialKind, &Arc<dyn Checker>)> {
        self.checkers.iter().map(|(k, p)| (*k, p))
    }

    pub fn realm_for(&self, interface: AvatarInterface) -> Option<&Arc<dyn Realm>> {
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
    ) -> Verdict<Box<dyn Avatar>> {
        let Some(realm) = self.realms.get(&interface) else {
            return Ok(Err(Denial::Other(format!(
                "no realm serves the {} interface",
                interface.as_str()
            ))));
        };
        realm.request_avatar(avatar_id, interface, mind).await
    }

    /// Twisted's `Portal.login`: verifies the proof, then asks the realm
    /// for the avatar that acts for the identity on `interface`, now or,
    /// when `when` allows and the realm grants every identity, at the
    /// avatar's first call (see [`deferred`]).
    pub async fn login(
        &self,
        proof: Proof<'_>,
        interface: AvatarInterface,
        mind: &Mind,
        when: AvatarWhen,
    ) -> Result<Result<Login, Refused>, Fault> {
        let avatar_id = match proof {
            Proof::Credentials(credentials) => match self.check(credentials).await? {
                Ok(id) => id,
                Err(denial) => {
                    let by = self
                        .checker_for(credentials.kind())
                        .map(|c| c.name().to_owned());
                    return Ok(Err(Refused {
                        denial,
                        by,
                        realm: false,
                    }));
                }
            },
            Proof::Established(id) => id.map(str::to_owned),
        };
        if when == AvatarWhen::FirstCall
            && let Some(realm) = self.realms.get(&interface)
            && realm.grants_every_identity()
        {
            let avatar =
                deferred::Deferred::new(realm.clone(), avatar_id.clone(), interface, mind.clone());
            return Ok(Ok(Login {
                avatar_id,
                avatar: Box::new(avatar),
            }));
        }
        Ok(
            match self
                .request_avatar(avatar_id.as_deref(), interface, mind)
                .await?
            {
                Ok(avatar) => Ok(Login { avatar_id, avatar }),
                Err(denial) => Err(Refused {
                    denial,
                    by: self.realm_for(interface).map(|r| r.name().to_owned()),
                    realm: true,
                }),
            },
        )
    }
}

#[async_trait]
impl SecretSource for Portal {
    async fn lookup_secret(&self, username: &str, kind: CredentialKind) -> Verdict<SecretEntry> {
        Portal::lookup_secret(self, username, kind).await
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::{FakeChecker, FakeRealm};
    use super::*;

    fn password(user: &str, pass: &str) -> Credentials {
        Credentials::UsernamePassword {
            authzid: None,
            username: user.into(),
            password: pass.into(),
        }
    }

    fn mind() -> Mind {
        Mind {
            peer: "127.0.0.1:1".into(),
            protocol: "test",
            mechanism: None,
            secure: false,
        }
    }

    #[tokio::test]
    async fn one_checker_per_kind() {
        let mut portal = Portal::default();
        let passwords = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
        let tokens = FakeChecker::new("tokens", &[CredentialKind::BearerToken]);
        portal.register_checker(passwords.clone()).await.unwrap();
        portal.register_checker(tokens.clone()).await.unwrap();
        let again = FakeChecker::new("again", &[CredentialKind::UsernamePassword]);
        let err = portal.register_checker(again).await.unwrap_err();
        assert!(err.to_string().contains("two checkers"), "{err}");

        assert_eq!(
            portal.check(&password("user", "password")).await.unwrap(),
            Ok(Some("user".into()))
        );
        let token = Credentials::BearerToken {
            authzid: None,
            username: Some("bob".into()),
            token: "t".into(),
        };
        assert_eq!(portal.check(&token).await.unwrap(), Ok(Some("bob".into())));
        assert_eq!((passwords.checks(), tokens.checks()), (1, 1));
        let cram = Credentials::ChallengeResponse {
            authzid: None,
            username: "user".into(),
            method: "hmac-md5".into(),
            challenge: Vec::new(),
            response: Vec::new(),
        };
        assert_eq!(
            portal.check(&cram).await.unwrap(),
            Err(Denial::NoChecker(CredentialKind::ChallengeResponse))
        );
    }

    #[tokio::test]
    async fn a_checker_serves_only_kinds_it_declares() {
        let mut portal = Portal::default();
        let checker = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
        let err = portal
            .register_checker_for(checker, Some(&[CredentialKind::BearerToken]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not serve"), "{err}");
        let mute = FakeChecker::new("mute", &[]);
        assert!(portal.register_checker(mute).await.is_err());
    }

    #[tokio::test]
    async fn anonymous_logins_have_no_avatar_id() {
        let mut portal = Portal::default();
        assert!(!portal.allows_anonymous());
        let anonymous = FakeChecker::new("anonymous", &[CredentialKind::Anonymous]);
        portal.register_checker(anonymous).await.unwrap();
        assert!(portal.allows_anonymous());
        let realm = FakeRealm::new("realm");
        portal.register_realm(AvatarInterface::Echo, realm.clone());
        let credentials = Credentials::Anonymous {
            trace: String::new(),
        };
        let login = portal
            .login(
                Proof::Credentials(&credentials),
                AvatarInterface::Echo,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.avatar_id, None);
        assert_eq!(realm.record.lock().unwrap().avatars, vec![None]);
    }

    #[tokio::test]
    async fn verified_secrets_never_reach_a_checker() {
        let mut portal = Portal::default();
        let scram = FakeChecker::new("scram", &[CredentialKind::ScramSha256]);
        portal.register_checker(scram.clone()).await.unwrap();
        let vouched = Credentials::VerifiedSecret {
            authzid: None,
            username: "user".into(),
            kind: CredentialKind::ScramSha256,
        };
        assert_eq!(
            portal.check(&vouched).await.unwrap(),
            Err(Denial::Unsupported)
        );
        assert_eq!(scram.checks(), 0);
        // The lookup a SCRAM exchange makes goes to the same checker.
        let source: &dyn SecretSource = &portal;
        let entry = source
            .lookup_secret("user", CredentialKind::ScramSha256)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.avatar_id, "user");
    }

    #[tokio::test]
    async fn login_checks_then_asks_the_realm() {
        let mut portal = Portal::default();
        let checker = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
        portal.register_checker(checker).await.unwrap();
        let iface = AvatarInterface::MessageDelivery;

        // No realm: the checker said yes, the realm part refuses.
        let good = password("user", "password");
        let refused = portal
            .login(
                Proof::Credentials(&good),
                iface,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.realm && refused.by.is_none(), "{refused:?}");

        let realm = Arc::new(FakeRealm {
            name: "realm",
            refuse: Some("disabled"),
            grants_all: false,
            record: Arc::default(),
        });
        portal.register_realm(iface, realm.clone());
        let login = portal
            .login(
                Proof::Credentials(&good),
                iface,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.avatar_id.as_deref(), Some("user"));

        let bad = password("user", "wrong");
        let refused = portal
            .login(
                Proof::Credentials(&bad),
                iface,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            refused,
            Refused {
                denial: Denial::BadCredentials,
                by: Some("passwords".into()),
                realm: false
            }
        );
        let refused = portal
            .login(
                Proof::Established(Some("disabled")),
                iface,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.denial, Denial::AccountDisabled);
        assert_eq!(refused.by.as_deref(), Some("realm"));
        // The realm was asked once for "user"; the refused id got nothing.
        assert_eq!(
            realm.record.lock().unwrap().avatars,
            vec![Some("user".to_owned())]
        );
    }

    #[tokio::test]
    async fn a_checker_fault_is_not_a_denial() {
        let mut portal = Portal::default();
        let down = Arc::new(FakeChecker {
            name: "down",
            kinds: vec![CredentialKind::UsernamePassword],
            users: Default::default(),
            checks: Default::default(),
            unavailable: true,
        });
        portal.register_checker(down).await.unwrap();
        let fault = portal
            .check(&password("user", "password"))
            .await
            .unwrap_err();
        assert_eq!(fault.kind, FaultKind::Unavailable);
    }

    /// A realm that says it grants every identity is asked at the
    /// avatar's first call when the protocol allows it, with the login's
    /// identity; if it refuses then, that call faults (its promise
    /// broken). Any other realm, or a protocol that needs the avatar at
    /// login, is asked at login as before.
    #[tokio::test]
    async fn a_realm_that_grants_everyone_is_asked_at_the_first_call() {
        let mut portal = Portal::default();
        let checker = FakeChecker::new("passwords", &[CredentialKind::UsernamePassword]);
        portal.register_checker(checker).await.unwrap();
        let iface = AvatarInterface::MessageDelivery;
        let realm = Arc::new(FakeRealm {
            name: "realm",
            refuse: Some("disabled"),
            grants_all: true,
            record: Arc::default(),
        });
        portal.register_realm(iface, realm.clone());
        let asked = || realm.record.lock().unwrap().avatars.clone();

        let good = password("user", "password");
        let when = AvatarWhen::FirstCall;
        let mut login = portal
            .login(Proof::Credentials(&good), iface, &mind(), when)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(login.avatar_id.as_deref(), Some("user"));
        assert!(asked().is_empty(), "not asked at login");
        assert_eq!(login.avatar.realm_name(), "realm");
        assert_eq!(
            login.avatar.validate_from("helo", "a@b").await.unwrap(),
            Ok(())
        );
        login.avatar.validate_to("c@d").await.unwrap().unwrap();
        assert_eq!(asked(), vec![Some("user".to_owned())], "asked once");
        login.avatar.logout().await;
        assert_eq!(realm.record.lock().unwrap().logouts, 1);

        // Logged out before any call: never asked, nothing to log out.
        let login = portal
            .login(Proof::Credentials(&good), iface, &mind(), when)
            .await
            .unwrap()
            .unwrap();
        login.avatar.logout().await;
        assert_eq!(asked().len(), 1);
        assert_eq!(realm.record.lock().unwrap().logouts, 1);

        // Bad credentials are refused at login: the checker is not deferred.
        let bad = password("user", "wrong");
        let refused = portal
            .login(Proof::Credentials(&bad), iface, &mind(), when)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.denial, Denial::BadCredentials);

        // A refusal at the first call breaks the realm's word: a fault.
        let mut login = portal
            .login(Proof::Established(Some("disabled")), iface, &mind(), when)
            .await
            .unwrap()
            .unwrap();
        let fault = login.avatar.validate_from("helo", "a@b").await.unwrap_err();
        assert_eq!(fault.kind, FaultKind::Contract);
        assert!(fault.detail.contains("defer-avatar"), "{}", fault.detail);

        // At login when the protocol needs it then.
        let refused = portal
            .login(
                Proof::Established(Some("disabled")),
                iface,
                &mind(),
                AvatarWhen::AtLogin,
            )
            .await
            .unwrap()
            .unwrap_err();
        assert!(refused.realm, "{refused:?}");
    }
}
