//! The connection's side of the mail transaction: the realm's delivery
//! avatar and its calls. The avatar is the realm's, and a realm can fail:
//! after any fault the avatar is discarded (a store whose call was
//! cancelled or trapped is never called again) and the next command that
//! needs one asks the portal for a fresh avatar, replaying the open
//! transaction's sender and recipients on it. The message's commit point
//! is the realm's `deliver`: 250 when it answered `ok`, a temporary failure
//! when it said so (nothing stored), and [`reply::DELIVERY_UNCERTAIN`] (a
//! permanent failure, so that no client sends the message again) when it
//! ran past its deadline or trapped, having perhaps stored some copies.

use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::Connection;
use super::received;
use super::reply::{self, Reply};
use super::state::{Answer, Delivered, Delivery, Session};
use crate::portal::{AvatarWhen, Credentials, Fault, FaultKind, Proof, ReceivedInfo, Rejection};

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    pub(super) async fn validate_from(
        &mut self,
        session: &mut Session,
        helo: &str,
        sender: &str,
    ) -> Answer {
        if let Err(trouble) = self.ensure_avatar(session).await {
            return Answer::Trouble(trouble);
        }
        let answer = self.avatar_mut().validate_from(helo, sender).await;
        self.answer(answer, "validate-from").await
    }

    pub(super) async fn validate_to(&mut self, session: &mut Session, recipient: &str) -> Answer {
        if let Err(trouble) = self.ensure_avatar(session).await {
            return Answer::Trouble(trouble);
        }
        let answer = self.avatar_mut().validate_to(recipient).await;
        self.answer(answer, "validate-to").await
    }

    /// The Received header the message will start with.
    pub(super) async fn start_data(
        &mut self,
        session: &mut Session,
    ) -> Result<(ReceivedInfo, String), Reply> {
        self.ensure_avatar(session).await?;
        let info = session
            .received_info(received::message_id(), received::now_rfc5322())
            .ok_or(reply::LOCAL_ERROR)?;
        let avatar = self.avatar_mut();
        let header = match avatar.received_header(&info).await {
            Ok(Some(header)) if valid_header(&header) => header,
            Ok(Some(_)) => {
                tracing::warn!(protocol = "smtp", plugin = %avatar.realm_name(),
                    "realm returned a malformed Received header; using the standard one");
                received::standard_header(&info)
            }
            Ok(None) => received::standard_header(&info),
            Err(fault) => return Err(self.realm_fault(&fault, "received-header").await),
        };
        Ok((info, header))
    }

    pub(super) async fn deliver(&mut self, delivery: &Delivery) -> Delivered {
        let Delivery { info, message } = delivery;
        let Some(avatar) = self.avatar.as_mut() else {
            return Delivered::Answer(Answer::Trouble(reply::LOCAL_ERROR));
        };
        match avatar.deliver(info, message).await {
            Ok(Ok(())) => {
                crate::metrics::METRICS.message_delivered();
                tracing::info!(protocol = "smtp", peer = %self.peer, id = %info.id,
                    from = %info.sender, recipients = info.recipients.len(), size = message.len(),
                    user = info.authenticated_id.as_deref().unwrap_or(""),
                    "message delivered");
                Delivered::Answer(Answer::Accepted)
            }
            Ok(Err(rejection)) => Delivered::Answer(Answer::Rejected(rejection)),
            Err(fault) if in_call(&fault) => {
                tracing::error!(protocol = "smtp", peer = %self.peer, id = %info.id,
                    plugin = %fault.plugin, fault = %fault.kind, detail = %fault.detail,
                    from = %info.sender, recipients = ?info.recipients,
                    "delivery stopped part-way: the message may be stored for some recipients; \
                     answered with a permanent failure so that it is not sent again");
                self.discard_avatar(&fault).await;
                Delivered::Uncertain
            }
            Err(fault) => {
                Delivered::Answer(Answer::Trouble(self.realm_fault(&fault, "deliver").await))
            }
        }
    }

    fn avatar_mut(&mut self) -> &mut Box<dyn crate::portal::Avatar> {
        self.avatar.as_mut().expect("ensure_avatar set it")
    }

    async fn answer(&mut self, answer: Result<Result<(), Rejection>, Fault>, call: &str) -> Answer {
        match answer {
            Ok(Ok(())) => Answer::Accepted,
            Ok(Err(rejection)) => Answer::Rejected(rejection),
            Err(fault) => Answer::Trouble(self.realm_fault(&fault, call).await),
        }
    }

    /// Makes sure the session has a delivery avatar: the logged-in user's
    /// again after a fault discarded it, or the anonymous one when the
    /// portal allows anonymous access (as twisted.mail does). A fresh
    /// avatar is told the open transaction's sender and recipients.
    async fn ensure_avatar(&mut self, session: &mut Session) -> Result<(), Reply> {
        if self.avatar.is_some() {
            return Ok(());
        }
        let portal = self.config.services.get().portal.clone();
        let anonymous = Credentials::Anonymous {
            trace: String::new(),
        };
        let login = session.login().cloned();
        let proof = match &login {
            Some(login) => Proof::Established(login.avatar_id.as_deref()),
            None if portal.allows_anonymous() => Proof::Credentials(&anonymous),
            None => return Err(reply::AUTH_REQUIRED),
        };
        let purpose = self.purpose(session, login.as_ref().map(|l| &l.mechanism));
        // This is the avatar's first call: ask the realm now.
        let answer = portal
            .login(proof, purpose.interface, &purpose.mind, AvatarWhen::AtLogin)
            .await;
        let avatar = match answer {
            Ok(Ok(login)) => login.avatar,
            Ok(Err(refused)) => {
                tracing::info!(protocol = "smtp", peer = %self.peer, reason = %refused.denial,
                    "realm refused the delivery avatar");
                return Err(if login.is_some() {
                    reply::LOCAL_ERROR
                } else {
                    reply::AUTH_REQUIRED
                });
            }
            Err(fault) => return Err(self.realm_fault(&fault, "request-avatar").await),
        };
        self.avatar = Some(avatar);
        if session.transaction().is_some() {
            self.replay(session).await?;
        }
        Ok(())
    }

    /// Tells a fresh avatar what the discarded one had accepted. A realm
    /// that now refuses ends the transaction with a temporary failure.
    async fn replay(&mut self, session: &mut Session) -> Result<(), Reply> {
        let helo = session.helo();
        let Some(transaction) = session.transaction().cloned() else {
            return Ok(());
        };
        let avatar = self.avatar_mut();
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
                session.end_transaction();
                Err(reply::LOCAL_ERROR)
            }
            Err(fault) => {
                session.end_transaction();
                Err(self.realm_fault(&fault, "validate (replay)").await)
            }
        }
    }

    /// Logs a realm's fault, discards the avatar, and answers 451.
    async fn realm_fault(&mut self, fault: &Fault, call: &str) -> Reply {
        tracing::warn!(protocol = "smtp", peer = %self.peer, plugin = %fault.plugin,
            fault = %fault.kind, detail = %fault.detail, call, "realm failed");
        self.discard_avatar(fault).await;
        reply::LOCAL_ERROR
    }

    /// Ends the avatar after a fault; the next command asks for a fresh
    /// one. A store whose call was cancelled or trapped is dropped without
    /// calling into it again.
    async fn discard_avatar(&mut self, fault: &Fault) {
        let Some(avatar) = self.avatar.take() else {
            return;
        };
        if !in_call(fault) {
            avatar.logout().await;
        }
    }
}

/// Whether a fault stopped the guest in the middle of a call (its store is
/// unusable, and the call's effects are unknown).
fn in_call(fault: &Fault) -> bool {
    matches!(
        fault.kind,
        FaultKind::Timeout | FaultKind::Trap | FaultKind::Memory
    )
}

/// A realm's Received header must be one header field (RFC 5322 §2.2):
/// `Received:`, lines joined by folding (CRLF followed by a space or tab,
/// never a line of white space only), at most 998 bytes a line, and no
/// other control character (NUL, ESC, DEL, a bare CR or LF) anywhere.
fn valid_header(header: &str) -> bool {
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
