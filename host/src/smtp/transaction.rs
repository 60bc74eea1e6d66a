//! The mail transaction's rules (RFC 5321 §3.3): MAIL, RCPT and DATA, the
//! realm's answers to them, the message text and its delivery, as steps of
//! the [`Session`] state machine.

use super::command::Param;
use super::data::{DataError, DataProgress, DataReader};
use super::params::{self, MailParams};
use super::received;
use super::reply::{self, Reply};
use super::state::{Answer, Data, Delivered, Delivery, Effect, Session, State, Transaction};
use crate::portal::{ReceivedInfo, Rejection};
use crate::proto::line::Frame;

impl Session {
    pub(super) fn mail(&mut self, from: &str, params: &[Param<'_>]) -> Effect {
        let Some(greeted) = self.greeted() else {
            return Effect::Reply(reply::BAD_SEQUENCE.with_text("Send HELO or EHLO first"));
        };
        if self.transaction().is_some() {
            return Effect::Reply(reply::BAD_SEQUENCE.with_text("Nested MAIL command"));
        }
        if self.auth_required() {
            return Effect::Reply(reply::AUTH_REQUIRED);
        }
        if !greeted.greeting.esmtp && !params.is_empty() {
            return Effect::Reply(reply::BAD_PARAMETER.with_text("MAIL parameters need EHLO"));
        }
        let max = self.rules.limits.max_message_size as u64;
        let params = match params::mail_params(params, max) {
            Ok(p) => p,
            Err(answer) => return Effect::Reply(answer),
        };
        if let Err(answer) = params::check_address(from, params.smtputf8) {
            return Effect::Reply(answer);
        }
        Effect::ValidateFrom {
            helo: greeted.greeting.name.clone(),
            sender: from.to_owned(),
            params,
        }
    }

    pub fn sender_answered(&mut self, sender: String, params: MailParams, answer: Answer) -> Reply {
        match answer {
            Answer::Accepted => {
                self.state = match self.take() {
                    State::Ready(g) => {
                        let transaction = Transaction {
                            sender,
                            params,
                            recipients: Vec::new(),
                        };
                        State::Mail(g, transaction)
                    }
                    other => other,
                };
                reply::SENDER_OK
            }
            Answer::Rejected(r) => rejected(&r, reply::SENDER_REFUSED, reply::SENDER_DEFERRED),
            Answer::Trouble(answer) => answer,
        }
    }

    pub(super) fn rcpt(&mut self, to: &str, params: &[Param<'_>]) -> Effect {
        if self.auth_required() {
            return Effect::Reply(reply::AUTH_REQUIRED);
        }
        let Some(transaction) = self.transaction() else {
            return Effect::Reply(reply::BAD_SEQUENCE.with_text("Need MAIL before RCPT"));
        };
        if let Err(answer) = params::rcpt_params(params) {
            return Effect::Reply(answer);
        }
        if let Err(answer) = params::check_address(to, transaction.params.smtputf8) {
            return Effect::Reply(answer);
        }
        if transaction.recipients.len() >= self.rules.limits.max_recipients {
            return Effect::Reply(reply::TOO_MANY_RECIPIENTS);
        }
        Effect::ValidateTo {
            recipient: to.to_owned(),
        }
    }

    pub fn recipient_answered(&mut self, recipient: String, answer: Answer) -> Reply {
        match answer {
            Answer::Accepted => {
                if let State::Mail(_, t) = &mut self.state {
                    t.recipients.push(recipient);
                }
                reply::RECIPIENT_OK
            }
            Answer::Rejected(r) => {
                rejected(&r, reply::RECIPIENT_REFUSED, reply::RECIPIENT_DEFERRED)
            }
            Answer::Trouble(answer) => answer,
        }
    }

    pub(super) fn data(&mut self) -> Effect {
        if self.auth_required() {
            return Effect::Reply(reply::AUTH_REQUIRED);
        }
        let Some(transaction) = self.transaction() else {
            return Effect::Reply(reply::BAD_SEQUENCE.with_text("Need MAIL before DATA"));
        };
        if transaction.recipients.is_empty() {
            return Effect::Reply(reply::NO_RECIPIENTS);
        }
        Effect::StartData
    }

    /// What the realm is told about the message about to arrive (`id` and
    /// `date` come from the connection, so that tests can fix them).
    pub fn received_info(&self, id: String, date: String) -> Option<ReceivedInfo> {
        let greeted = self.greeted()?;
        let transaction = self.transaction()?;
        let login = greeted.login.as_ref();
        Some(ReceivedInfo {
            helo: greeted.greeting.name.clone(),
            peer_ip: self.rules.peer.ip().to_string(),
            server_name: self.rules.server_name.clone(),
            with_protocol: received::with_protocol(
                greeted.greeting.esmtp,
                self.secure,
                login.is_some(),
            )
            .into(),
            authenticated_id: login.and_then(|l| l.avatar_id.clone().or_else(|| l.user.clone())),
            id,
            sender: transaction.sender.clone(),
            recipients: transaction.recipients.clone(),
            date,
        })
    }

    /// DATA may start with `header` (the Received field) in front of the
    /// message, or the avatar could not take one.
    pub fn data_answered(&mut self, answer: Result<(ReceivedInfo, String), Reply>) -> Reply {
        let (info, header) = match answer {
            Ok(ready) => ready,
            Err(trouble) => return trouble,
        };
        let (g, transaction) = match self.take() {
            State::Mail(g, transaction) => (g, transaction),
            other => {
                // The transaction went away (a fresh avatar refused it).
                self.state = other;
                return reply::LOCAL_ERROR;
            }
        };
        let mut prefix = header.into_bytes();
        prefix.extend_from_slice(b"\r\n");
        let limits = &self.rules.limits;
        let reader = DataReader::with_policy(prefix, limits.max_message_size, limits.bare_newline);
        self.state = State::Data(
            g,
            Box::new(Data {
                transaction,
                reader,
                info,
            }),
        );
        reply::START_DATA
    }

    pub(super) fn on_text(&mut self, frame: Frame) -> Effect {
        let State::Data(_, data) = &mut self.state else {
            unreachable!("message text outside DATA");
        };
        let DataProgress::Done(message) = data.reader.feed(frame) else {
            return Effect::Nothing;
        };
        let State::Data(g, data) = self.take() else {
            unreachable!()
        };
        self.state = State::Ready(g);
        Effect::Reply(match message {
            Err(DataError::TooBig) => reply::MESSAGE_TOO_BIG,
            Err(DataError::LineTooLong) => reply::LINE_TOO_LONG
                .with_text("Line too long (RFC 5321 allows 1000 octets); message not accepted"),
            Err(DataError::BareNewline) => reply::BARE_NEWLINE_MESSAGE,
            Ok(message) => {
                return Effect::Deliver(Box::new(Delivery {
                    info: data.info,
                    message,
                }));
            }
        })
    }

    pub fn delivered(&mut self, info: &ReceivedInfo, delivered: Delivered) -> Reply {
        match delivered {
            Delivered::Answer(Answer::Accepted) => {
                self.messages += 1;
                reply::QUEUED.with_text(format!("Message accepted for delivery, id {}", info.id))
            }
            Delivered::Answer(Answer::Rejected(r)) => {
                rejected(&r, reply::MESSAGE_REFUSED, reply::MESSAGE_DEFERRED)
            }
            Delivered::Answer(Answer::Trouble(answer)) => answer,
            Delivered::Uncertain => reply::DELIVERY_UNCERTAIN,
        }
    }
}

/// The reply for a realm's refusal: its own text under our codes.
pub fn rejected(rejection: &Rejection, permanent: Reply, temporary: Reply) -> Reply {
    let base = if rejection.permanent {
        permanent
    } else {
        temporary
    };
    let text: String = rejection
        .text
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.trim().is_empty() {
        base
    } else {
        base.with_text(text)
    }
}
