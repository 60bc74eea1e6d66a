//! AUTH (RFC 4954) as steps of the [`Session`] state machine: when an
//! exchange may start, and what each way it ends means for the session
//! (235, 535 and the failure count, 454 on a plugin fault, 501).

use super::reply::{self, Reply};
use super::state::{Effect, Login, Session, State};
use crate::portal::Avatar;
use crate::sasl::{Ending, LineExchange, Mechname, Refusal};

impl Session {
    pub(super) fn auth(&mut self, mechanism: Mechname, initial_response: Option<&[u8]>) -> Effect {
        Effect::Reply(if self.login().is_some() {
            reply::ALREADY_AUTHENTICATED
        } else if !self.greeted().is_some_and(|g| g.greeting.esmtp) {
            reply::BAD_SEQUENCE.with_text("Send EHLO before AUTH")
        } else if self.transaction().is_some() {
            reply::AUTH_IN_TRANSACTION
        } else {
            return Effect::Auth {
                mechanism,
                initial_response: initial_response.map(<[u8]>::to_vec),
            };
        })
    }

    pub fn auth_refused(&mut self, refusal: Refusal) -> Effect {
        match refusal {
            Refusal::UnknownMechanism { .. } => Effect::Reply(reply::UNKNOWN_MECHANISM),
            Refusal::EncryptionRequired => Effect::Reply(reply::ENCRYPTION_REQUIRED),
            Refusal::BadBase64 => Effect::Reply(reply::BAD_BASE64),
            Refusal::TooManyExchanges => Effect::Close(vec![reply::TOO_MANY_EXCHANGES]),
        }
    }

    /// The exchange started and waits for the client.
    pub fn auth_began(&mut self, exchange: LineExchange) {
        self.state = match self.take() {
            State::Ready(g) => State::Auth(g, Box::new(exchange)),
            other => other,
        };
    }

    /// Leaves a running exchange (dropping it frees its instance).
    pub(super) fn leave_exchange(&mut self) -> Option<Box<LineExchange>> {
        match self.take() {
            State::Auth(g, exchange) => {
                self.state = State::Ready(g);
                Some(exchange)
            }
            other => {
                self.state = other;
                None
            }
        }
    }

    /// The client kept the exchange waiting past the step timeout.
    pub fn auth_timed_out(&mut self) -> Reply {
        self.leave_exchange();
        reply::AUTH_STEP_TIMEOUT
    }

    /// How the exchange for `mechanism` ended; on success, the avatar the
    /// connection keeps.
    pub fn auth_over(
        &mut self,
        mechanism: Mechname,
        ending: Ending,
    ) -> (Effect, Option<Box<dyn Avatar>>) {
        self.leave_exchange();
        let effect = match ending {
            Ending::Success { login, user, .. } => {
                if let State::Ready(g) = &mut self.state {
                    g.login = Some(Login {
                        avatar_id: login.avatar_id,
                        user,
                        mechanism,
                    });
                }
                return (Effect::Reply(reply::AUTH_SUCCEEDED), Some(login.avatar));
            }
            Ending::Denied { user, .. } => {
                self.auth_failures += 1;
                Effect::AuthFailed {
                    close: self.auth_failures >= self.rules.policy.max_failures,
                    user,
                }
            }
            Ending::Fault(_) => Effect::Reply(reply::AUTH_TEMPORARY),
            Ending::Cancelled => Effect::Reply(reply::AUTH_CANCELLED),
            Ending::BadBase64 => self.error(reply::BAD_BASE64),
        };
        (effect, None)
    }
}
