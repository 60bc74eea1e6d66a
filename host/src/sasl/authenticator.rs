//! Drives one SASL exchange: the mechanism plugin produces challenges and,
//! at the end, credentials; the portal verifies them.

use std::sync::Arc;

use crate::plugin::ChannelInfo;
use crate::plugin::mechanism::{Exchange, Step};
use crate::portal::{Credentials, Denial, Fault, FaultKind, Portal};

use super::registry::Mechanism;

/// Where an exchange stands after a client message.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Send this challenge and wait for the client's response.
    Challenge(Vec<u8>),
    /// The exchange is over.
    Done(Outcome),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated. `avatar_id` is `None` for an anonymous login.
    /// `additional_data` must reach the client before the success reply.
    Success {
        avatar_id: Option<String>,
        /// The user name the client claimed, for the log.
        user: Option<String>,
        /// The checker plugin that decided, for the log.
        checker: Option<String>,
        additional_data: Option<Vec<u8>>,
    },
    /// Not authenticated. An `error_challenge` must be sent, and its answer
    /// discarded, before the failure reply.
    Denied {
        denial: Denial,
        user: Option<String>,
        /// The checker plugin that decided (none when the mechanism
        /// itself failed), for the log.
        checker: Option<String>,
        error_challenge: Option<Vec<u8>>,
    },
}

/// One exchange in progress.
pub struct Authenticator {
    exchange: Exchange,
    portal: Arc<Portal>,
    external_identity: Option<String>,
    /// The kinds the mechanism declared; it may vouch for no other.
    declared: Vec<crate::portal::CredentialKind>,
}

impl Authenticator {
    /// Instantiates `mechanism` for a new exchange on `channel`.
    pub async fn new(
        mechanism: &Mechanism,
        portal: Arc<Portal>,
        channel: ChannelInfo,
    ) -> Result<Authenticator, Fault> {
        let external_identity = channel.external_identity.clone();
        let exchange = mechanism
            .plugin
            .exchange(portal.clone(), channel, &mechanism.info.kinds)
            .await?;
        Ok(Authenticator {
            exchange,
            portal,
            external_identity,
            declared: mechanism.info.kinds.clone(),
        })
    }

    pub async fn start(&mut self, initial_response: Option<&[u8]>) -> Result<Progress, Fault> {
        let step = self.exchange.start(initial_response).await?;
        self.settle(step).await
    }

    pub async fn step(&mut self, response: &[u8]) -> Result<Progress, Fault> {
        let step = self.exchange.step(response).await?;
        self.settle(step).await
    }

    async fn settle(&mut self, step: Step) -> Result<Progress, Fault> {
        let (credentials, additional_data) = match step {
            Step::Challenge(c) => return Ok(Progress::Challenge(c)),
            Step::Failure(why) => {
                return Ok(Progress::Done(Outcome::Denied {
                    denial: Denial::MechanismFailed(why),
                    user: None,
                    checker: None,
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
            .map(|p| p.name().to_owned());
        match self.verify(&credentials).await? {
            Ok(avatar_id) => Ok(Progress::Done(Outcome::Success {
                avatar_id,
                user,
                checker,
                additional_data,
            })),
            Err(denial) => {
                let error_challenge = self.exchange.denied().await?;
                Ok(Progress::Done(Outcome::Denied {
                    denial,
                    user,
                    checker,
                    error_challenge,
                }))
            }
        }
    }

    /// Verifies what the mechanism established. Claims the mechanism could
    /// not have made honestly are faults, not denials.
    async fn verify(
        &mut self,
        credentials: &Credentials,
    ) -> Result<Result<Option<String>, Denial>, Fault> {
        let plugin = self.exchange.plugin().clone();
        // A mechanism vouches only for what it declared: the operator
        // loaded it for those kinds, and SCRAM's `verified-secret` is
        // believed without another check.
        if !self.declared.contains(&credentials.kind()) {
            return Err(plugin.fault(
                FaultKind::Contract,
                format!(
                    "produced {} credentials, a kind it does not declare",
                    credentials.kind()
                ),
            ));
        }
        match credentials {
            Credentials::VerifiedSecret {
                authzid,
                username,
                kind,
            } => {
                let Some(avatar_id) = self.exchange.vouched_avatar(username, *kind) else {
                    return Err(plugin.fault(
                        FaultKind::Contract,
                        format!(
                            "claimed to verify {username}'s {kind} secret without looking it up"
                        ),
                    ));
                };
                if authzid
                    .as_deref()
                    .is_some_and(|z| z != username && z != avatar_id)
                {
                    return Ok(Err(Denial::NotAuthorized));
                }
                Ok(Ok(Some(avatar_id.to_owned())))
            }
            Credentials::External { identity, .. } => {
                if self.external_identity.as_deref() != Some(identity.as_str()) {
                    return Err(plugin.fault(
                        FaultKind::Contract,
                        "claimed an external identity the transport did not establish",
                    ));
                }
                self.portal.check(credentials).await
            }
            other => self.portal.check(other).await,
        }
    }
}
