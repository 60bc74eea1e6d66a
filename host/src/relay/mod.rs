//! Next hops granted to a delivery realm (issue 15): the host connects to
//! the operator's MTA over SMTP or LMTP on the realm's behalf, as it runs
//! the SQL checker's named queries, and the realm only names the hop.
//!
//! - [`wire`]: replies, EHLO keywords, dot-stuffing, xtext; no I/O.
//! - [`hop`]: a next hop's URL, TLS, XCLIENT and timeouts.
//! - [`client`]: one connection: greeting, EHLO, STARTTLS, XCLIENT.
//! - [`RelaySession`]: the one transaction of one avatar's store.
//!
//! The rules the realm's answers rest on: a command the next hop could
//! not be asked (down, timed out, broken reply) is
//! [`RelayError::Unavailable`], which the realm answers with a temporary
//! failure, so that portcullis says 250 only when the next hop said 250 to
//! the final dot. Through LMTP one recipient goes in each transaction (a
//! further RCPT is answered `452 4.5.3` by the host), so the single reply
//! portcullis gives after DATA is exactly that recipient's.

pub mod client;
pub mod hop;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub use client::ClientFacts;
use client::{Conn, deadline};
pub use hop::{NextHop, Protocol, Timeouts, TlsSetting};

/// The next hops one realm may use, by name.
#[derive(Debug, Default)]
pub struct RelayGrant {
    pub hops: BTreeMap<String, Arc<NextHop>>,
}

/// A reply for the realm: the next hop's, or one the host made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn from_wire(reply: &wire::WireReply) -> Reply {
        Reply {
            code: reply.code,
            text: reply.text(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("unknown next hop: {0}")]
    UnknownHop(String),
    #[error("next hop unavailable: {0}")]
    Unavailable(String),
    #[error("no transaction open")]
    NoTransaction,
}

/// The relay state of one avatar's store: its connection, kept between
/// messages, and the open transaction.
pub struct RelaySession {
    grant: Arc<RelayGrant>,
    pub client: ClientFacts,
    conn: Option<(Arc<NextHop>, Conn)>,
    /// Recipients the next hop accepted in the open transaction.
    accepted: Option<usize>,
}

impl RelaySession {
    pub fn new(grant: Arc<RelayGrant>) -> RelaySession {
        RelaySession {
            grant,
            client: ClientFacts::default(),
            conn: None,
            accepted: None,
        }
    }

    /// RSET (or a fresh connection) and MAIL FROM on hop `name`.
    pub async fn mail(
        &mut self,
        name: &str,
        sender: &str,
        limit: Instant,
    ) -> Result<Reply, RelayError> {
        self.accepted = None;
        let Some(hop) = self.grant.hops.get(name).cloned() else {
            return Err(RelayError::UnknownHop(format!(
                "no next hop named \"{name}\" was granted to this realm"
            )));
        };
        if !wire::plain_path(sender) {
            return Ok(host_reply(
                553,
                "5.1.7 The sender address cannot be relayed",
            ));
        }
        let reused = match self.conn.take() {
            Some((old, mut conn)) if Arc::ptr_eq(&old, &hop) => {
                let at = deadline(hop.timeouts.command, limit);
                match conn.command(at, "RSET").await {
                    Ok(r) if r.code == 250 => Some(conn),
                    _ => None,
                }
            }
            _ => None,
        };
        let mut conn = match reused {
            Some(conn) => conn,
            None => Conn::open(&hop, &self.client, limit)
                .await
                .map_err(|e| self.unavailable(&hop, e))?,
        };
        let at = deadline(hop.timeouts.command, limit);
        let reply = match conn.command(at, &format!("MAIL FROM:<{sender}>")).await {
            Ok(reply) => reply,
            Err(e) => return Err(self.unavailable(&hop, e)),
        };
        if reply.class() == 2 {
            self.accepted = Some(0);
        }
        self.conn = Some((hop, conn));
        Ok(Reply::from_wire(&reply))
    }

    pub async fn rcpt(&mut self, recipient: &str, limit: Instant) -> Result<Reply, RelayError> {
        let (Some(accepted), Some((hop, conn))) = (self.accepted, self.conn.as_mut()) else {
            return Err(RelayError::NoTransaction);
        };
        if !wire::plain_path(recipient) {
            return Ok(host_reply(
                553,
                "5.1.3 The recipient address cannot be relayed",
            ));
        }
        if hop.protocol == Protocol::Lmtp && accepted >= 1 {
            return Ok(host_reply(
                452,
                "4.5.3 One recipient per message here; send to this one in another transaction",
            ));
        }
        let at = deadline(hop.timeouts.command, limit);
        let hop = hop.clone();
        match conn.command(at, &format!("RCPT TO:<{recipient}>")).await {
            Ok(reply) => {
                if reply.class() == 2 {
                    self.accepted = Some(accepted + 1);
                }
                Ok(Reply::from_wire(&reply))
            }
            Err(e) => Err(self.unavailable(&hop, e)),
        }
    }

    /// DATA, the message, and the replies to its final dot.
    pub async fn data(&mut self, message: &[u8], limit: Instant) -> Result<Vec<Reply>, RelayError> {
        let accepted = self.accepted.take().filter(|n| *n > 0);
        let (Some(accepted), Some((hop, conn))) = (accepted, self.conn.as_mut()) else {
            return Err(RelayError::NoTransaction);
        };
        let hop = hop.clone();
        let result = async {
            let at = deadline(hop.timeouts.command, limit);
            let go = conn.command(at, "DATA").await?;
            if go.code != 354 {
                return Ok(vec![Reply::from_wire(&go)]);
            }
            let at = deadline(hop.timeouts.data, limit);
            conn.write(at, &wire::dot_stuff(message)).await?;
            let answers = match hop.protocol {
                Protocol::Smtp => 1,
                Protocol::Lmtp => accepted,
            };
            let mut replies = Vec::with_capacity(answers);
            for _ in 0..answers {
                replies.push(Reply::from_wire(&conn.reply(at).await?));
            }
            Ok(replies)
        }
        .await;
        result.map_err(|e: String| self.unavailable(&hop, e))
    }

    /// The connection is dropped after any failure: its state is unknown.
    fn unavailable(&mut self, hop: &NextHop, why: String) -> RelayError {
        self.conn = None;
        self.accepted = None;
        tracing::warn!(hop = %hop.name, url = %hop.url, "next hop failed: {why}");
        RelayError::Unavailable(format!("{} ({}): {why}", hop.name, hop.url))
    }
}

fn host_reply(code: u16, text: &str) -> Reply {
    Reply {
        code,
        text: text.into(),
    }
}
