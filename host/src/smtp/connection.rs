//! One SMTP connection's I/O: the read loop and its clocks (idle, session,
//! AUTH step), and the effects a [`Session::step`] asks for: replies, the
//! SASL exchange, the avatar's calls (in [`super::delivery`]) and the TLS
//! upgrade (in [`super::serve`]). Replies are queued and flushed when the
//! client's pipelined input runs dry (RFC 2920).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::config::SmtpConfig;
use super::reply::{self, Reply};
use super::state::{Effect, Session};
use crate::portal::{Avatar, AvatarInterface, AvatarWhen, ChannelInfo, Mind};
use crate::proto::line::LineReader;
use crate::proto::outbox::Outbox;
use crate::sasl::{self, Begin, LineExchange, Mechname, Purpose, Refusal, Turn};
use crate::server::shutdown_requested;

/// What to do after a line.
pub(super) enum Flow {
    Continue,
    Close,
    /// The client asked for TLS and was told to go ahead.
    StartTls,
}

/// How a connection's run ended.
pub(super) enum Ended<S> {
    Closed,
    /// STARTTLS: the raw stream, ready for the handshake.
    Upgrade(S),
}

pub(super) struct Connection<S> {
    reader: LineReader<ReadHalf<S>>,
    writer: Outbox<WriteHalf<S>>,
    pub config: Arc<SmtpConfig>,
    pub peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
    /// The delivery avatar: the user's after AUTH, or the anonymous one.
    pub(super) avatar: Option<Box<dyn Avatar>>,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    /// Runs a session on `stream` until it ends or upgrades to TLS.
    pub async fn run(
        stream: S,
        session: &mut Session,
        config: Arc<SmtpConfig>,
        shutdown: watch::Receiver<bool>,
        deadline: Instant,
        greet: bool,
    ) -> std::io::Result<Ended<S>> {
        let (read, write) = tokio::io::split(stream);
        let mut conn = Connection {
            reader: LineReader::new(read, config.limits.max_auth_line),
            writer: Outbox::with_capacity(crate::proto::WRITE_BUFFER, write),
            peer: session.rules().peer,
            config,
            shutdown,
            deadline,
            avatar: None,
        };
        if greet {
            let banner = format!("{} ESMTP portcullis", conn.config.server_name);
            conn.reply(&Reply::new(220, None, "").with_text(banner))
                .await?;
            conn.writer.flush().await?;
        }
        let result = conn.serve_lines(session).await;
        if !matches!(result, Ok(Flow::StartTls)) {
            let login = session.login();
            tracing::info!(protocol = "smtp", peer = %conn.peer, tls = session.secure,
                user = login.and_then(|l| l.user.as_deref()).unwrap_or(""),
                mechanism = login.map(|l| l.mechanism.as_str()).unwrap_or(""),
                messages = session.messages, duration_ms = conn.elapsed().as_millis() as u64,
                "session ended");
        }
        if let Some(avatar) = conn.avatar.take() {
            avatar.logout().await;
        }
        match result {
            Ok(Flow::StartTls) => {
                let read = conn.reader.into_inner();
                let write = conn.writer.into_inner();
                Ok(Ended::Upgrade(read.unsplit(write)))
            }
            Ok(_) => {
                let _ = conn.writer.shutdown().await;
                // Closing with the client's input unread would answer it
                // with a reset, which can destroy the last reply (a 421
                // during shutdown) before the client reads it: read what
                // it still sends, for a moment and up to a bound.
                let _ =
                    tokio::time::timeout(LINGER, drain(conn.reader.get_mut(), LINGER_BYTES)).await;
                Ok(Ended::Closed)
            }
            Err(e) => Err(e),
        }
    }

    async fn serve_lines(&mut self, session: &mut Session) -> std::io::Result<Flow> {
        loop {
            let now = Instant::now();
            // Checked before every line, pipelined ones included: a slow
            // realm must not stretch a session past its limit.
            if now >= self.deadline {
                self.reply(&reply::SESSION_TOO_LONG).await?;
                self.writer.flush().await?;
                return Ok(Flow::Close);
            }
            let session_left = self.deadline.saturating_duration_since(now);
            let mut wait = self.config.limits.idle_timeout.min(session_left);
            let step_bound = session.in_exchange() && self.config.step_timeout < wait;
            if step_bound {
                wait = self.config.step_timeout;
            }
            let shutdown = &mut self.shutdown;
            let read = tokio::select! {
                biased;
                _ = shutdown_requested(shutdown) => None,
                read = tokio::time::timeout(wait, self.reader.next()) => Some(read),
            };
            let frame = match read {
                Some(Ok(Ok(Some(frame)))) => frame,
                Some(Ok(Ok(None))) => return Ok(Flow::Close),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(_)) if step_bound => {
                    sasl::line::report_step_timeout("smtp", self.peer);
                    let answer = session.auth_timed_out();
                    self.reply(&answer).await?;
                    self.writer.flush().await?;
                    continue;
                }
                Some(Err(_)) => {
                    let why = if wait < self.config.limits.idle_timeout {
                        reply::SESSION_TOO_LONG
                    } else {
                        reply::IDLE_TIMEOUT
                    };
                    self.reply(&why).await?;
                    return Ok(Flow::Close);
                }
                None => {
                    self.reply(&reply::SHUTTING_DOWN).await?;
                    return Ok(Flow::Close);
                }
            };
            let effect = session.step(frame, &|plaintext| self.offered(plaintext));
            // Boxed: performing an effect (an AUTH exchange, the avatar's
            // calls) needs a large future, which would otherwise be part
            // of every session's state, idle ones included.
            let flow = Box::pin(self.perform(session, effect)).await?;
            self.reader.buffer_mut().set_max(session.line_limit());
            match flow {
                Flow::Continue => {}
                Flow::Close => {
                    self.writer.flush().await?;
                    return Ok(Flow::Close);
                }
                Flow::StartTls => {
                    self.writer.flush().await?;
                    // RFC 3207 §4.2: anything pipelined after STARTTLS
                    // was sent in the clear and is discarded.
                    self.reader.buffer_mut().clear();
                    return Ok(Flow::StartTls);
                }
            }
            if !self.reader.has_pending_frame() {
                self.writer.flush().await?;
            }
        }
    }

    /// Carries out what the session decided, feeding answers back to it
    /// until only replies are left.
    async fn perform(&mut self, session: &mut Session, effect: Effect) -> std::io::Result<Flow> {
        let mut effect = effect;
        loop {
            let answer = match effect {
                Effect::Nothing => return Ok(Flow::Continue),
                Effect::Reply(answer) => answer,
                Effect::Close(answers) => {
                    for answer in &answers {
                        self.reply(answer).await?;
                    }
                    return Ok(Flow::Close);
                }
                Effect::StartTls => {
                    self.reply(&reply::READY_FOR_TLS).await?;
                    return Ok(Flow::StartTls);
                }
                Effect::ValidateFrom {
                    helo,
                    sender,
                    params,
                } => {
                    let answer = self.validate_from(session, &helo, &sender).await;
                    session.sender_answered(sender, params, answer)
                }
                Effect::ValidateTo { recipient } => {
                    let answer = self.validate_to(session, &recipient).await;
                    session.recipient_answered(recipient, answer)
                }
                Effect::StartData => {
                    let ready = self.start_data(session).await;
                    session.data_answered(ready)
                }
                Effect::Deliver(delivery) => {
                    let delivered = self.deliver(&delivery).await;
                    session.delivered(&delivery.info, delivered)
                }
                Effect::Auth {
                    mechanism,
                    initial_response,
                } => {
                    effect = self
                        .begin_auth(session, mechanism, initial_response.as_deref())
                        .await;
                    continue;
                }
                Effect::AuthLine(line) => {
                    let Some(exchange) = session.exchange_mut() else {
                        return Ok(Flow::Continue);
                    };
                    let turn = exchange.on_line(&line).await;
                    effect = self.on_turn(session, turn).await;
                    continue;
                }
                Effect::AuthFailed { close, user } => {
                    return self.auth_failed(close, user.as_deref()).await;
                }
            };
            self.reply(&answer).await?;
            return Ok(Flow::Continue);
        }
    }

    /// Starts an AUTH exchange on one snapshot of the services.
    async fn begin_auth(
        &mut self,
        session: &mut Session,
        name: Mechname,
        initial_response: Option<&[u8]>,
    ) -> Effect {
        let services = self.config.services.get();
        let begin = Begin {
            portal: services.portal.clone(),
            mechanisms: services.mechanisms.clone(),
            purpose: self.purpose(session, Some(&name)),
            name,
            initial_response,
            allow_plaintext: session.plaintext_allowed(),
            channel: ChannelInfo {
                server_name: self.config.server_name.clone(),
                secure: session.secure,
                external_identity: session.external_identity.clone(),
                peer: self.peer.to_string(),
            },
            clients: &self.config.clients,
            peer: self.peer.ip(),
        };
        match LineExchange::begin(begin).await {
            Ok((exchange, turn)) => {
                session.auth_began(exchange);
                self.on_turn(session, turn).await
            }
            Err(refusal) => {
                if refusal == Refusal::TooManyExchanges {
                    tracing::info!(protocol = "smtp", peer = %self.peer,
                        "too many exchanges from this address; closing");
                }
                session.auth_refused(refusal)
            }
        }
    }

    async fn on_turn(&mut self, session: &mut Session, turn: Turn) -> Effect {
        let ending = match turn {
            Turn::Challenge(data) => return Effect::Reply(challenge(&data)),
            Turn::Over(ending) => ending,
        };
        let Some(exchange) = session.exchange_mut() else {
            return Effect::Reply(reply::AUTH_TEMPORARY);
        };
        let (name, started) = (exchange.mechanism().clone(), exchange.started());
        sasl::line::report("smtp", self.peer, name.as_str(), &ending, started);
        let user = match &ending {
            sasl::Ending::Success { user, .. } => user.clone(),
            _ => None,
        };
        let (effect, avatar) = session.auth_over(name, ending);
        if let Some(avatar) = avatar {
            let penalty = &self.config.penalty;
            penalty.success(self.peer.ip(), user.as_deref()).await;
            if let Some(old) = self.avatar.replace(avatar) {
                old.logout().await;
            }
        }
        effect
    }

    /// 535 after the failure delay; 421 once the failures run out.
    async fn auth_failed(&mut self, close: bool, user: Option<&str>) -> std::io::Result<Flow> {
        let penalty = self.config.penalty.failure(self.peer.ip(), user).await;
        let pause = self.config.policy.failure_delay + penalty;
        if !pause.is_zero() {
            self.writer.flush().await?;
            tokio::time::sleep(pause).await;
        }
        self.reply(&reply::AUTH_FAILED).await?;
        if close {
            tracing::info!(protocol = "smtp", peer = %self.peer,
                "too many authentication failures; closing");
            self.reply(&reply::TOO_MANY_FAILURES).await?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    /// The mechanisms this session may use, in EHLO order.
    fn offered(&self, allow_plaintext: bool) -> Vec<String> {
        let services = self.config.services.get();
        services
            .mechanisms
            .offered(&services.portal, allow_plaintext)
            .map(|m| m.to_string())
            .collect()
    }

    pub(super) fn purpose(&self, session: &Session, mechanism: Option<&Mechname>) -> Purpose {
        Purpose {
            interface: AvatarInterface::MessageDelivery,
            mind: Mind {
                peer: self.peer.to_string(),
                protocol: "smtp",
                mechanism: mechanism.map(|m| m.to_string()),
                secure: session.secure,
            },
            // Every use of the login goes through the delivery avatar's
            // calls, the first at MAIL FROM (`Connection::ensure_avatar`).
            when: AvatarWhen::FirstCall,
            client: self.peer.ip(),
        }
    }

    /// How long the session has lasted (its deadline is its start plus
    /// the session timeout).
    fn elapsed(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.config.limits.session_timeout.saturating_sub(left)
    }

    /// Queues a reply; the read loop flushes.
    async fn reply(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.writer.write_all(reply.to_wire().as_bytes()).await
    }
}

/// How long a closing connection reads what the client still sends.
const LINGER: Duration = Duration::from_millis(500);
/// The most it reads then.
const LINGER_BYTES: usize = 1 << 20;

/// Reads and discards up to `max` bytes, until the client closes. Its
/// buffer is on the heap: on the stack of an async fn it would be part of
/// every session's future for the session's whole life.
async fn drain<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, max: usize) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = vec![0u8; 4096];
    let mut seen = 0;
    while seen < max {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen += n,
        }
    }
}

/// `334 base64` (an empty challenge is `334 ` with nothing after it).
fn challenge(data: &[u8]) -> Reply {
    Reply::new(334, None, "").with_text(sasl::encode(data))
}
