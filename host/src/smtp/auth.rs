//! AUTH (RFC 4954) in an SMTP session: the checks before an exchange, the
//! `334` challenges, and the outcome (235, 535 after a delay, 454 on a
//! plugin fault, 421 after too many failures).

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::reply::{self, Reply};
use super::session::{Connection, Flow, Login, Phase, Session, log_outcome};
use crate::plugin::ChannelInfo;
use crate::plugin::realm::AvatarInterface;
use crate::portal::Fault;
use crate::sasl::{self, Authenticator, Continuation, Mechname, Outcome, Progress};

/// An exchange in progress.
pub(super) struct SaslState {
    /// `None` once the outcome is settled: the instance is freed while
    /// the client acknowledges it.
    auth: Option<Authenticator>,
    /// This exchange's share of its address's limit.
    _share: crate::limits::Held,
    mechanism: Mechname,
    started: Instant,
    /// The outcome, held back until the client answers the data sent with
    /// it (SCRAM's server-final message, XOAUTH2's error).
    settled: Option<Outcome>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    /// `AUTH mechanism [initial-response]`.
    pub(super) async fn auth(
        &mut self,
        session: &mut Session,
        name: Mechname,
        initial_response: Option<&[u8]>,
    ) -> std::io::Result<Flow> {
        let answer = if session.login.is_some() {
            reply::ALREADY_AUTHENTICATED
        } else if !session.greeting.as_ref().is_some_and(|g| g.esmtp) {
            reply::BAD_SEQUENCE.with_text("Send EHLO before AUTH")
        } else if session.in_transaction() {
            reply::AUTH_IN_TRANSACTION
        } else {
            return self.start_exchange(session, name, initial_response).await;
        };
        self.reply(&answer).await?;
        Ok(Flow::Continue)
    }

    async fn start_exchange(
        &mut self,
        session: &mut Session,
        name: Mechname,
        initial_response: Option<&[u8]>,
    ) -> std::io::Result<Flow> {
        let config = self.config.clone();
        let services = config.services.get();
        let known = services
            .mechanisms
            .offered(&services.portal, true)
            .any(|m| *m == name);
        let mechanism = match services.mechanisms.get(&name) {
            Some(m) if known => m,
            _ => {
                self.reply(&reply::UNKNOWN_MECHANISM).await?;
                return Ok(Flow::Continue);
            }
        };
        if mechanism.info.plaintext && !self.plaintext_allowed(session) {
            self.reply(&reply::ENCRYPTION_REQUIRED).await?;
            return Ok(Flow::Continue);
        }
        let initial = match initial_response.map(sasl::decode_initial_response) {
            None => None,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(_)) => {
                self.reply(&reply::BAD_BASE64).await?;
                return Ok(Flow::Continue);
            }
        };
        let Some(share) = config
            .clients
            .acquire(self.peer.ip(), crate::limits::Counted::Exchanges)
        else {
            tracing::info!(protocol = "smtp", peer = %self.peer,
                "too many exchanges from this address; closing");
            self.reply(&reply::TOO_MANY_EXCHANGES).await?;
            return Ok(Flow::Close);
        };
        let started = Instant::now();
        #[cfg(feature = "bench-native")]
        if let (true, Some(message)) = (name.as_str() == "PLAIN", &initial)
            && let Some(outcome) = crate::bench_native::plain(message)
        {
            return self.finish(session, outcome, name, started).await;
        }
        let channel = ChannelInfo {
            server_name: config.server_name.clone(),
            secure: session.secure,
            external_identity: session.external_identity.clone(),
            peer: self.peer.to_string(),
        };
        let mut auth = match Authenticator::new(mechanism, services.portal.clone(), channel).await {
            Ok(auth) => auth,
            Err(fault) => return self.auth_fault(session, &name, &fault).await,
        };
        let progress = auth.start(initial.as_deref()).await;
        session.phase = Phase::Sasl(Box::new(SaslState {
            auth: Some(auth),
            _share: share,
            mechanism: name,
            started,
            settled: None,
        }));
        self.on_progress(session, progress).await
    }

    /// A line from the client during an exchange.
    pub(super) async fn on_sasl_line(
        &mut self,
        session: &mut Session,
        line: &[u8],
    ) -> std::io::Result<Flow> {
        let Phase::Sasl(sasl) = &mut session.phase else {
            unreachable!("on_sasl_line outside an exchange");
        };
        let continuation = sasl::decode_continuation(line);
        if let Some(outcome) = sasl.settled.take() {
            if continuation == Ok(Continuation::Cancel) {
                session.phase = Phase::Command;
                self.reply(&reply::AUTH_CANCELLED).await?;
                return Ok(Flow::Continue);
            }
            // The client's answer to the outcome's data is not looked at.
            let (name, started) = (sasl.mechanism.clone(), sasl.started);
            return self.finish(session, outcome, name, started).await;
        }
        let progress = match continuation {
            Ok(Continuation::Data(bytes)) => match &mut sasl.auth {
                Some(auth) => auth.step(&bytes).await,
                None => unreachable!("a settled exchange has its outcome"),
            },
            Ok(Continuation::Cancel) => {
                session.phase = Phase::Command;
                self.reply(&reply::AUTH_CANCELLED).await?;
                return Ok(Flow::Continue);
            }
            Err(_) => {
                session.phase = Phase::Command;
                self.reply(&reply::BAD_BASE64).await?;
                return Ok(Flow::Continue);
            }
        };
        self.on_progress(session, progress).await
    }

    async fn on_progress(
        &mut self,
        session: &mut Session,
        progress: Result<Progress, Fault>,
    ) -> std::io::Result<Flow> {
        let Phase::Sasl(sasl) = &mut session.phase else {
            unreachable!("on_progress outside an exchange");
        };
        let (name, started) = (sasl.mechanism.clone(), sasl.started);
        let outcome = match progress {
            Ok(Progress::Challenge(data)) => {
                self.reply(&challenge(&data)).await?;
                return Ok(Flow::Continue);
            }
            Ok(Progress::Done(outcome)) => outcome,
            Err(fault) => return self.auth_fault(session, &name, &fault).await,
        };
        let data = match &outcome {
            Outcome::Success {
                additional_data, ..
            } => additional_data,
            Outcome::Denied {
                error_challenge, ..
            } => error_challenge,
        };
        if let Some(data) = data {
            // RFC 4954 §4: additional data goes in one more 334, answered
            // by an empty line, before the final reply.
            self.reply(&challenge(data)).await?;
            sasl.settled = Some(outcome);
            sasl.auth = None;
            return Ok(Flow::Continue);
        }
        self.finish(session, outcome, name, started).await
    }

    /// Reports the outcome; on success asks the realm for the delivery
    /// avatar.
    async fn finish(
        &mut self,
        session: &mut Session,
        outcome: Outcome,
        mechanism: Mechname,
        started: Instant,
    ) -> std::io::Result<Flow> {
        session.phase = Phase::Command;
        log_outcome(self.peer, &mechanism, &outcome, started);
        let (avatar_id, user) = match outcome {
            Outcome::Success {
                avatar_id, user, ..
            } => (avatar_id, user),
            Outcome::Denied { .. } => return self.failed(session).await,
        };
        let mind = self.mind(session, Some(&mechanism));
        let portal = self.config.services.get().portal.clone();
        match portal
            .request_avatar(
                avatar_id.as_deref(),
                AvatarInterface::MessageDelivery,
                &mind,
            )
            .await
        {
            Ok(Ok(avatar)) => {
                self.config.penalty.success(self.peer.ip());
                if let Some(old) = session.avatar.replace(avatar) {
                    old.logout().await;
                }
                session.login = Some(Login {
                    avatar_id,
                    user,
                    mechanism,
                });
                self.reply(&reply::AUTH_SUCCEEDED).await?;
                Ok(Flow::Continue)
            }
            Ok(Err(denial)) => {
                tracing::info!(protocol = "smtp", peer = %self.peer, mechanism = %mechanism,
                    reason = %denial, "realm refused the avatar");
                self.failed(session).await
            }
            Err(fault) => self.auth_fault(session, &mechanism, &fault).await,
        }
    }

    /// 535 after the failure delay; 421 once the failures run out.
    async fn failed(&mut self, session: &mut Session) -> std::io::Result<Flow> {
        session.auth_failures += 1;
        let policy = self.config.policy.clone();
        let pause = policy.failure_delay + self.config.penalty.failure(self.peer.ip());
        if !pause.is_zero() {
            self.flush().await?;
            tokio::time::sleep(pause).await;
        }
        self.reply(&reply::AUTH_FAILED).await?;
        if session.auth_failures >= policy.max_failures {
            tracing::info!(protocol = "smtp", peer = %self.peer,
                failures = session.auth_failures, "too many authentication failures; closing");
            self.reply(&reply::TOO_MANY_FAILURES).await?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    async fn auth_fault(
        &mut self,
        session: &mut Session,
        mechanism: &Mechname,
        fault: &Fault,
    ) -> std::io::Result<Flow> {
        session.phase = Phase::Command;
        crate::metrics::METRICS.auth("smtp", mechanism.as_str(), "fault", Duration::ZERO);
        tracing::warn!(protocol = "smtp", peer = %self.peer, mechanism = %mechanism,
            result = "fault", plugin = %fault.plugin, fault = %fault.kind,
            detail = %fault.detail, "authentication failed: plugin fault");
        self.reply(&reply::AUTH_TEMPORARY).await?;
        Ok(Flow::Continue)
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    /// The client kept an exchange waiting past the step timeout: cancel
    /// it (freeing its instance) and carry on with commands.
    pub(super) async fn auth_step_timed_out(
        &mut self,
        session: &mut Session,
    ) -> std::io::Result<()> {
        session.phase = Phase::Command;
        crate::metrics::METRICS.auth_step_timeout("smtp");
        tracing::info!(protocol = "smtp", peer = %self.peer,
            "SASL exchange timed out waiting for the client; cancelled");
        self.reply(&reply::AUTH_STEP_TIMEOUT).await
    }
}

/// `334 base64` (an empty challenge is `334 ` with nothing after it).
fn challenge(data: &[u8]) -> Reply {
    Reply::new(334, None, "").with_text(sasl::encode(data))
}
