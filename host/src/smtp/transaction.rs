//! The mail transaction (RFC 5321 §3.3): MAIL, RCPT, DATA and the message's
//! hand-over to the realm's delivery avatar.
//!
//! The avatar is the realm's, and a realm can fail: after any fault the
//! avatar is discarded (a store whose call was cancelled or trapped is
//! never called again) and the next command that needs one asks the realm
//! for a fresh avatar, replaying the open transaction's sender and
//! recipients on it. The message's commit point is the realm's `deliver`:
//! 250 when it answered `ok`, a temporary failure when it said so (nothing
//! stored), and [`reply::DELIVERY_UNCERTAIN`] (a permanent failure, so
//! that no client sends the message again) when it ran past its deadline
//! or trapped, having perhaps stored some copies.

use super::command::Param;
use super::data::{BareNewline, DataError, DataReader};
use super::params::{self, MailParams};
use super::received;
use super::reply::{self, Reply};
use super::session::{Connection, Phase, Session};
use crate::plugin::realm::{Avatar, AvatarInterface, ReceivedInfo, Rejection};
use crate::portal::{Credentials, Fault, FaultKind};
use tokio::io::{AsyncRead, AsyncWrite};

/// A mail transaction, from MAIL to the end of DATA.
pub(super) struct Transaction {
    pub sender: String,
    pub params: MailParams,
    pub recipients: Vec<String>,
}

pub(super) struct DataState {
    pub reader: DataReader,
    pub info: ReceivedInfo,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    pub(super) async fn mail(
        &mut self,
        session: &mut Session,
        from: &str,
        params: &[Param<'_>],
    ) -> Reply {
        let Some(greeting) = &session.greeting else {
            return reply::BAD_SEQUENCE.with_text("Send HELO or EHLO first");
        };
        if session.transaction.is_some() {
            return reply::BAD_SEQUENCE.with_text("Nested MAIL command");
        }
        if self.config.policy.required && session.login.is_none() {
            return reply::AUTH_REQUIRED;
        }
        if !greeting.esmtp && !params.is_empty() {
            return reply::BAD_PARAMETER.with_text("MAIL parameters need EHLO");
        }
        let params = match params::mail_params(params, self.config.limits.max_message_size as u64) {
            Ok(p) => p,
            Err(answer) => return answer,
        };
        if let Err(answer) = params::check_address(from, params.smtputf8) {
            return answer;
        }
        if let (Some(claimed), None) = (&params.auth, &session.login) {
            // RFC 4954 §5: an unauthenticated client's AUTH= is not trusted.
            tracing::debug!(protocol = "smtp", peer = %self.peer, auth = %claimed,
                "ignoring AUTH= from an unauthenticated session");
        }
        if let Err(answer) = self.ensure_avatar(session).await {
            return answer;
        }
        let helo = session
            .greeting
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default();
        let avatar = session.avatar.as_mut().expect("ensure_avatar set it");
        match avatar.validate_from(&helo, from).await {
            Ok(Ok(())) => {
                session.transaction = Some(Transaction {
                    sender: from.to_owned(),
                    params,
                    recipients: Vec::new(),
                });
                reply::SENDER_OK
            }
            Ok(Err(rejection)) => {
                rejected(&rejection, reply::SENDER_REFUSED, reply::SENDER_DEFERRED)
            }
            Err(fault) => self.realm_fault(session, &fault, "validate-from").await,
        }
    }

    /// Makes sure the session has a delivery avatar: the logged-in user's
    /// again after a fault discarded it, or the anonymous one when the
    /// portal allows anonymous access (as twisted.mail does). A fresh
    /// avatar is told the open transaction's sender and recipients.
    async fn ensure_avatar(&mut self, session: &mut Session) -> Result<(), Reply> {
        if session.avatar.is_some() {
            return Ok(());
        }
        let portal = self.config.services.get().portal.clone();
        let verdict = match &session.login {
            Some(login) => {
                let mind = self.mind(session, Some(&login.mechanism));
                portal
                    .request_avatar(
                        login.avatar_id.as_deref(),
                        AvatarInterface::MessageDelivery,
                        &mind,
                    )
                    .await
            }
            None if portal.allows_anonymous() => {
                let mind = self.mind(session, None);
                let credentials = Credentials::Anonymous {
                    trace: String::new(),
                };
                portal
                    .login(&credentials, AvatarInterface::MessageDelivery, &mind)
                    .await
                    .map(|verdict| verdict.map(|login| login.avatar))
            }
            None => return Err(reply::AUTH_REQUIRED),
        };
        let avatar = match verdict {
            Ok(Ok(avatar)) => avatar,
            Ok(Err(denial)) => {
                tracing::info!(protocol = "smtp", peer = %self.peer, reason = %denial,
                    "realm refused the delivery avatar");
                return Err(if session.login.is_some() {
                    reply::LOCAL_ERROR
                } else {
                    reply::AUTH_REQUIRED
                });
            }
            Err(fault) => return Err(self.realm_fault(session, &fault, "request-avatar").await),
        };
        session.avatar = Some(avatar);
        if session.transaction.is_some() {
            self.replay(session).await?;
        }
        Ok(())
    }

    /// Tells a fresh avatar what the discarded one had accepted. A realm
    /// that now refuses ends the transaction with a temporary failure.
    async fn replay(&mut self, session: &mut Session) -> Result<(), Reply> {
        let helo = session
            .greeting
            .as_ref()
            .map(|g| g.name.clone())
            .unwrap_or_default();
        let transaction = session.transaction.as_ref().expect("replay needs one");
        let avatar = session.avatar.as_mut().expect("replay needs an avatar");
        let mut answer = avatar.validate_from(&helo, &transaction.sender).await;
        for to in &transaction.recipients {
            if !matches!(answer, Ok(Ok(()))) {
                break;
            }
            answer = avatar.validate_to(to).await;
        }
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => {
                tracing::warn!(protocol = "smtp", peer = %self.peer,
                    "a fresh avatar refused the open transaction; it is ended");
                session.transaction = None;
                Err(reply::LOCAL_ERROR)
            }
            Err(fault) => {
                session.transaction = None;
                Err(self.realm_fault(session, &fault, "validate (replay)").await)
            }
        }
    }

    pub(super) async fn rcpt(
        &mut self,
        session: &mut Session,
        to: &str,
        params: &[Param<'_>],
    ) -> Reply {
        if self.config.policy.required && session.login.is_none() {
            return reply::AUTH_REQUIRED;
        }
        let Some(transaction) = &session.transaction else {
            return reply::BAD_SEQUENCE.with_text("Need MAIL before RCPT");
        };
        if let Err(answer) = params::rcpt_params(params) {
            return answer;
        }
        if let Err(answer) = params::check_address(to, transaction.params.smtputf8) {
            return answer;
        }
        if transaction.recipients.len() >= self.config.limits.max_recipients {
            return reply::TOO_MANY_RECIPIENTS;
        }
        if let Err(answer) = self.ensure_avatar(session).await {
            return answer;
        }
        let avatar = session.avatar.as_mut().expect("ensure_avatar set it");
        match avatar.validate_to(to).await {
            Ok(Ok(())) => {
                if let Some(transaction) = &mut session.transaction {
                    transaction.recipients.push(to.to_owned());
                }
                reply::RECIPIENT_OK
            }
            Ok(Err(rejection)) => rejected(
                &rejection,
                reply::RECIPIENT_REFUSED,
                reply::RECIPIENT_DEFERRED,
            ),
            Err(fault) => self.realm_fault(session, &fault, "validate-to").await,
        }
    }

    pub(super) async fn data(&mut self, session: &mut Session) -> Reply {
        if self.config.policy.required && session.login.is_none() {
            return reply::AUTH_REQUIRED;
        }
        let Some(transaction) = &session.transaction else {
            return reply::BAD_SEQUENCE.with_text("Need MAIL before DATA");
        };
        if transaction.recipients.is_empty() {
            return reply::NO_RECIPIENTS;
        }
        if let Err(answer) = self.ensure_avatar(session).await {
            return answer;
        }
        let Some(transaction) = &session.transaction else {
            return reply::LOCAL_ERROR;
        };
        let esmtp = session.greeting.as_ref().is_some_and(|g| g.esmtp);
        let login = session.login.as_ref();
        let info = ReceivedInfo {
            helo: session
                .greeting
                .as_ref()
                .map(|g| g.name.clone())
                .unwrap_or_default(),
            peer_ip: self.peer.ip().to_string(),
            server_name: self.config.server_name.clone(),
            with_protocol: received::with_protocol(esmtp, session.secure, login.is_some()).into(),
            authenticated_id: login.and_then(|l| l.avatar_id.clone().or_else(|| l.user.clone())),
            id: received::message_id(),
            sender: transaction.sender.clone(),
            recipients: transaction.recipients.clone(),
            date: received::now_rfc5322(),
        };
        let avatar = session.avatar.as_mut().expect("ensure_avatar set it");
        let header = match avatar.received_header(&info).await {
            Ok(Some(header)) if valid_header(&header) => header,
            Ok(Some(_)) => {
                tracing::warn!(protocol = "smtp", plugin = %avatar.plugin_name(),
                    "realm returned a malformed Received header; using the standard one");
                received::standard_header(&info)
            }
            Ok(None) => received::standard_header(&info),
            Err(fault) => return self.realm_fault(session, &fault, "received-header").await,
        };
        let mut prefix = header.into_bytes();
        prefix.extend_from_slice(b"\r\n");
        self.set_line_limit(self.config.limits.max_text_line);
        let policy: BareNewline = self.config.limits.bare_newline;
        session.phase = Phase::Data(Box::new(DataState {
            reader: DataReader::with_policy(prefix, self.config.limits.max_message_size, policy),
            info,
        }));
        reply::START_DATA
    }

    pub(super) async fn end_data(
        &mut self,
        session: &mut Session,
        message: Result<Vec<u8>, DataError>,
    ) -> Reply {
        self.set_line_limit(self.config.limits.max_auth_line);
        let Phase::Data(data) = std::mem::replace(&mut session.phase, Phase::Command) else {
            unreachable!("end_data outside DATA");
        };
        session.transaction = None;
        let info = data.info;
        let message = match message {
            Err(DataError::TooBig) => return reply::MESSAGE_TOO_BIG,
            Err(DataError::LineTooLong) => {
                return reply::LINE_TOO_LONG.with_text(
                    "Line too long (RFC 5321 allows 1000 octets); message not accepted",
                );
            }
            Err(DataError::BareNewline) => return reply::BARE_NEWLINE_MESSAGE,
            Ok(message) => message,
        };
        let size = message.len();
        let Some(avatar) = session.avatar.as_mut() else {
            return reply::LOCAL_ERROR;
        };
        match avatar.deliver(&info, &message).await {
            Ok(Ok(())) => {
                session.messages += 1;
                crate::metrics::METRICS.message_delivered();
                tracing::info!(protocol = "smtp", peer = %self.peer, id = %info.id,
                    from = %info.sender, recipients = info.recipients.len(), size,
                    user = info.authenticated_id.as_deref().unwrap_or(""),
                    "message delivered");
                reply::QUEUED.with_text(format!("Message accepted for delivery, id {}", info.id))
            }
            Ok(Err(rejection)) => {
                rejected(&rejection, reply::MESSAGE_REFUSED, reply::MESSAGE_DEFERRED)
            }
            Err(fault) if in_call(&fault) => {
                tracing::error!(protocol = "smtp", peer = %self.peer, id = %info.id,
                    plugin = %fault.plugin, fault = %fault.kind, detail = %fault.detail,
                    from = %info.sender, recipients = ?info.recipients,
                    "delivery stopped part-way: the message may be stored for some recipients; \
                     answered with a permanent failure so that it is not sent again");
                self.discard_avatar(session, &fault).await;
                reply::DELIVERY_UNCERTAIN
            }
            Err(fault) => self.realm_fault(session, &fault, "deliver").await,
        }
    }

    /// Logs a realm's fault, discards the avatar, and answers 451.
    pub(super) async fn realm_fault(
        &mut self,
        session: &mut Session,
        fault: &Fault,
        call: &str,
    ) -> Reply {
        tracing::warn!(protocol = "smtp", peer = %self.peer, plugin = %fault.plugin,
            fault = %fault.kind, detail = %fault.detail, call, "realm failed");
        self.discard_avatar(session, fault).await;
        reply::LOCAL_ERROR
    }

    /// Ends the avatar after a fault; the next command asks for a fresh
    /// one. A store whose call was cancelled or trapped is dropped without
    /// calling into it again.
    async fn discard_avatar(&mut self, session: &mut Session, fault: &Fault) {
        let Some(avatar) = session.avatar.take() else {
            return;
        };
        if in_call(fault) {
            drop(avatar);
        } else {
            logout(avatar).await;
        }
    }
}

async fn logout(avatar: Avatar) {
    avatar.logout().await;
}

/// Whether a fault stopped the guest in the middle of a call (its store is
/// unusable, and the call's effects are unknown).
fn in_call(fault: &Fault) -> bool {
    matches!(
        fault.kind,
        FaultKind::Timeout | FaultKind::Trap | FaultKind::Memory
    )
}

/// The reply for a realm's refusal: its own text under our codes.
fn rejected(rejection: &Rejection, permanent: Reply, temporary: Reply) -> Reply {
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

/// A realm's Received header must be one header field (RFC 5322 §2.2):
/// `Received:`, lines joined by folding (CRLF followed by a space or tab,
/// never a line of white space only), at most 998 bytes a line, and no
/// other control character (NUL, ESC, DEL, a bare CR or LF) anywhere.
pub(super) fn valid_header(header: &str) -> bool {
    if !header.starts_with("Received:") {
        return false;
    }
    let mut lines = header.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let clean =
        |line: &str| line.len() <= 998 && !line.chars().any(|c| c.is_control() && c != '\t');
    clean(first)
        && lines.all(|line| line.starts_with([' ', '\t']) && !line.trim().is_empty() && clean(line))
}

#[cfg(test)]
mod tests {
    use super::valid_header;

    #[test]
    fn received_headers() {
        let cases: &[(&str, bool)] = &[
            (
                "Received: from a by b; Thu, 1 Jan 1970 00:00:00 +0000",
                true,
            ),
            ("Received: from a\r\n\tby b\r\n by c; date", true),
            ("Received: from a\tby b", true),
            ("X-Other: a", false),
            ("Received: a\r\nX-Injected: b", false),
            ("Received: a\r\n\r\nbody", false),
            ("Received: a\r\n \r\n b", false),
            ("Received: a\r\n", false),
            ("Received: a\nX: b", false),
            ("Received: a\rX: b", false),
            ("Received: a\r\n\tb\nc", false),
            ("Received: a\0b", false),
            ("Received: a\x1b[31mb", false),
            ("Received: a\x7fb", false),
            ("Received: a\r\n\tb\x1b", false),
        ];
        for (header, want) in cases {
            assert_eq!(valid_header(header), *want, "{header:?}");
        }
        let long = format!("Received: {}", "a".repeat(990));
        assert!(!valid_header(&long));
        let folded = format!("Received: {}\r\n\t{}", "a".repeat(900), "b".repeat(900));
        assert!(valid_header(&folded));
    }
}
