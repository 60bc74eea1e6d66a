//! Drives one SASL exchange: the mechanism produces challenges and, at the
//! end, credentials; the portal verifies them and asks the realm for the
//! avatar, in one [`Portal::login`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::portal::{
    AvatarInterface, AvatarWhen, ChannelInfo, CredentialKind, Credentials, Denial, Exchange, Fault,
    FaultKind, Login, Mind, Portal, Proof, SecretSource, Step,
};

use super::registry::Registered;

/// Where an exchange stands after a client message.
pub enum Progress {
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// The exchange is over.
    Done(Outcome),
}

pub enum Outcome {
    /// Authenticated, and the realm handed out the avatar.
    /// `additional_data` must reach the client before the success reply.
    Success {
        login: Login,
        /// The user name the client claimed, for the log.
        user: Option<String>,
        /// The checker that decided, for the log.
        plugin: Option<String>,
        additional_data: Option<Vec<u8>>,
    },
    /// Not authenticated (by the checker, the mechanism or the realm). An
    /// `error_challenge` must be sent, and its answer discarded, before
    /// the failure reply.
    Denied {
        denial: Denial,
        user: Option<String>,
        /// What decided (the checker or the realm; none when the mechanism
        /// itself failed), for the log.
        plugin: Option<String>,
        error_challenge: Option<Vec<u8>>,
    },
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Success { login, user, .. } => f
                .debug_struct("Success")
                .field("avatar_id", &login.avatar_id)
                .field("user", user)
                .finish_non_exhaustive(),
            Outcome::Denied { denial, user, .. } => f
                .debug_struct("Denied")
                .field("denial", denial)
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

/// What the login is for: the avatar interface and what the realm is told.
#[derive(Clone, Debug)]
pub struct Purpose {
    pub interface: AvatarInterface,
    pub mind: Mind,
    /// When the protocol needs the avatar.
    pub when: AvatarWhen,
    /// The client's address, as the per-address limits count it: the
    /// checkers' slow-hash verifications, in the exchange's lookups and its
    /// final check, wait for its turn (`password_hash::for_client`).
    pub client: IpAddr,
}

/// One exchange in progress.
pub struct Authenticator {
    exchange: Box<dyn Exchange>,
    mechanism: String,
    portal: Arc<Portal>,
    external_identity: Option<String>,
    /// The kinds the mechanism declared; it may vouch for no other.
    declared: Vec<CredentialKind>,
    purpose: Purpose,
}

impl Authenticator {
    /// Starts `mechanism` for a new exchange on `channel`; its lookups and
    /// the final login go to `portal`, so an exchange sees one set of
    /// checkers and realms from start to end.
    pub async fn new(
        mechanism: &Registered,
        portal: Arc<Portal>,
        channel: ChannelInfo,
        purpose: Purpose,
    ) -> Result<Authenticator, Fault> {
        let external_identity = channel.external_identity.clone();
        let secrets: Arc<dyn SecretSource> = portal.clone();
        let exchange = mechanism
            .mechanism
            .exchange(secrets, channel, &mechanism.info.kinds)
            .await?;
        Ok(Authenticator {
            exchange,
            mechanism: mechanism.mechanism.name().to_owned(),
            portal,
            external_identity,
            declared: mechanism.info.kinds.clone(),
            purpose,
        })
    }

    /// Each step runs on behalf of the client (`password_hash::for_client`):
    /// its secret lookups and the final check wait in the client's turn for
    /// any slow-hash verification they ask the host for.
    pub async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Progress, Fault> {
        let client = self.purpose.client;
        crate::password_hash::for_client(client, async {
            let step = self.exchange.start(initial_response).await?;
            self.settle(step).await
        })
        .await
    }

    pub async fn step(&mut self, response: &[u8]) -> Result<Progress, Fault> {
        let client = self.purpose.client;
        crate::password_hash::for_client(client, async {
            let step = self.exchange.step(response).await?;
            self.settle(step).await
        })
        .await
    }

    async fn settle(&mut self, step: Step) -> Result<Progress, Fault> {
        let (credentials, additional_data) = match step {
            Step::Challenge(c) => return Ok(Progress::Challenge(c)),
            Step::Failure(why) => {
                return Ok(Progress::Done(Outcome::Denied {
                    denial: Denial::MechanismFailed(why),
                    user: None,
                    plugin: None,
                    error_challenge: None,
                }));
            }
            Step::Success {
                credentials,
                additional_data,
            } => (credentials, additional_data),
        };
        let user = credentials.claimed_user().map(str::to_owned);
        let checker = self
            .portal
            .checker_for(credentials.kind())
            .map(|c| c.name().to_owned());
        let vouched = match self.vouched(&credentials)? {
            Ok(vouched) => vouched,
            Err(denial) => return self.denied(denial, user, checker).await,
        };
        let proof = match &vouched {
            Some(avatar_id) => Proof::Established(Some(avatar_id)),
            None => Proof::Credentials(&credentials),
        };
        let Purpose {
            interface,
            mind,
            when,
            ..
        } = &self.purpose;
        let portal = self.portal.clone();
        match portal.login(proof, *interface, mind, *when).await? {
            Ok(login) => Ok(Progress::Done(Outcome::Success {
                login,
                user,
                plugin: checker,
                additional_data,
            })),
            Err(refused) => {
                let by = refused.by.clone().or(checker);
                self.denied(refused.into_denial(), user, by).await
            }
        }
    }

    async fn denied(
        &mut self,
        denial: Denial,
        user: Option<String>,
        plugin: Option<String>,
    ) -> Result<Progress, Fault> {
        let error_challenge = self.exchange.denied().await?;
        Ok(Progress::Done(Outcome::Denied {
            denial,
            user,
            plugin,
            error_challenge,
        }))
    }

    /// Holds the mechanism to what it could honestly claim. `Some(id)` is
    /// an identity the exchange itself established (a secret the portal
    /// looked up for it); `None` leaves the credentials to the checker.
    /// Claims the mechanism could not have made are faults, not denials.
    fn vouched(&self, credentials: &Credentials) -> Result<Result<Option<String>, Denial>, Fault> {
        // A mechanism vouches only for what it declared: the operator
        // loaded it for those kinds, and SCRAM's `verified-secret` is
        // believed without another check.
        if !self.declared.contains(&credentials.kind()) {
            return Err(self.fault(format!(
                "produced {} credentials, a kind it does not declare",
                credentials.kind()
            )));
        }
        match credentials {
            Credentials::VerifiedSecret {
                authzid,
                username,
                kind,
            } => {
                let Some(avatar_id) = self.exchange.vouched_avatar(username, *kind) else {
                    return Err(self.fault(format!(
                        "claimed to verify {username}'s {kind} secret without looking it up"
                    )));
                };
                if authzid
                    .as_deref()
                    .is_some_and(|z| z != username && z != avatar_id)
                {
                    return Ok(Err(Denial::NotAuthorized));
                }
                Ok(Ok(Some(avatar_id)))
            }
            Credentials::External { identity, .. }
                if self.external_identity.as_deref() != Some(identity.as_str()) =>
            {
                Err(self.fault("claimed an external identity the transport did not establish"))
            }
            _ => Ok(Ok(None)),
        }
    }

    fn fault(&self, detail: impl Into<String>) -> Fault {
        Fault::new(&self.mechanism, FaultKind::Contract, detail)
    }
}
