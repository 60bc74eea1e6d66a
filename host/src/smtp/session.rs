//! One SMTP connection (RFC 5321): the session's state, the read loop and
//! the mail transaction. AUTH lives in [`super::auth`], TLS upgrades in
//! [`super::serve`].
//!
//! The session is a state machine: [`Phase`] says what the next line is
//! (a command, a SASL response, a line of message text) and [`Session`]
//! carries what the client established (greeting, login, transaction).
//! Replies are queued and flushed when the client's pipelined input runs
//! dry (RFC 2920).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::command::{Command, ParseError, parse_command};
use super::data::{BareNewline, DataProgress};
use super::reply::{self, Reply};
use super::transaction::{DataState, Transaction};
use crate::plugin::realm::{Avatar, Mind};
use crate::proto::line::{Frame, LineReader, has_bare_newline};
use crate::sasl::{Mechname, Outcome};
use crate::tls::Tls;

/// Settings shared by every SMTP connection.
pub struct SmtpConfig {
    /// The plugins, replaced as a whole by a reload.
    pub services: Arc<crate::services::Live>,
    pub server_name: String,
    /// Offered as STARTTLS, and used by implicit-TLS listeners.
    pub tls: Option<Tls>,
    pub policy: AuthPolicy,
    pub limits: SessionLimits,
    /// Failed logins per client address, shared with the echo service.
    pub penalty: Arc<crate::penalty::Penalty>,
    /// Exchanges in flight per client address, shared with echo.
    pub clients: Arc<crate::limits::ClientLimits>,
    /// How long an AUTH exchange waits for the client's next response.
    pub step_timeout: Duration,
}

/// The operator's AUTH switches.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// MAIL, RCPT and DATA need a successful AUTH first (530 5.7.0).
    pub required: bool,
    /// When plaintext mechanisms (PLAIN, LOGIN) need TLS.
    pub tls_only: TlsOnly,
    /// Pause before each 535, to slow down guessing.
    pub failure_delay: Duration,
    /// Failed AUTHs tolerated per connection; then 421 and close.
    pub max_failures: u32,
}

/// When plaintext mechanisms are withheld until the connection is
/// encrypted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsOnly {
    /// Over TLS only, except for clients on loopback.
    Auto,
    /// Always over TLS only.
    Yes,
    /// Allowed in the clear.
    No,
}

impl std::str::FromStr for TlsOnly {
    type Err = ();

    /// The spelling of the command line and the file: `auto`, `yes`, `no`.
    fn from_str(word: &str) -> Result<TlsOnly, ()> {
        match word {
            "auto" => Ok(TlsOnly::Auto),
            "yes" => Ok(TlsOnly::Yes),
            "no" => Ok(TlsOnly::No),
            _ => Err(()),
        }
    }
}

/// Sizes and times that bound one session.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Longest command line other than AUTH, without CRLF.
    pub max_command_line: usize,
    /// Longest AUTH command or SASL response line: RFC 4954's 12288
    /// octets, after base64.
    pub max_auth_line: usize,
    /// Longest line of message text, without CRLF (RFC 5321 §4.5.3.1.6).
    pub max_text_line: usize,
    pub idle_timeout: Duration,
    /// The longest a whole session may last.
    pub session_timeout: Duration,
    /// Bad commands tolerated before the connection is closed.
    pub max_errors: u32,
    /// What a bare CR or LF in message text does.
    pub bare_newline: BareNewline,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_message_size: 10 << 20,
            max_recipients: 100,
            max_command_line: 2048,
            max_auth_line: 16 << 10,
            max_text_line: 998,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(1800),
            max_errors: 10,
            bare_newline: BareNewline::Normalize,
        }
    }
}

/// What the client said in EHLO or HELO.
pub(super) struct Greeting {
    pub name: String,
    pub esmtp: bool,
}

/// A successful AUTH.
pub(super) struct Login {
    pub avatar_id: Option<String>,
    pub user: Option<String>,
    pub mechanism: Mechname,
}

/// What the next line is.
pub(super) enum Phase {
    Command,
    Sasl(Box<super::auth::SaslState>),
    Data(Box<DataState>),
}

/// What the client has established on this connection.
pub(super) struct Session {
    pub secure: bool,
    /// Who the client's verified TLS certificate says it is.
    pub external_identity: Option<String>,
    pub greeting: Option<Greeting>,
    pub login: Option<Login>,
    /// The delivery avatar: the user's after AUTH, or the anonymous one.
    pub avatar: Option<Avatar>,
    pub(super) transaction: Option<Transaction>,
    pub phase: Phase,
    pub auth_failures: u32,
    errors: u32,
    pub(super) messages: u32,
}

impl Session {
    pub fn new(secure: bool) -> Session {
        Session {
            secure,
            external_identity: None,
            greeting: None,
            login: None,
            avatar: None,
            transaction: None,
            phase: Phase::Command,
            auth_failures: 0,
            errors: 0,
            messages: 0,
        }
    }

    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Ends the avatar's login (dropping the realm's resources).
    async fn logout(&mut self) {
        if let Some(avatar) = self.avatar.take() {
            avatar.logout().await;
        }
    }
}

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
    writer: BufWriter<WriteHalf<S>>,
    pub config: Arc<SmtpConfig>,
    pub peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Connection<S> {
    /// Runs a session on `stream` until it ends or upgrades to TLS.
    pub async fn run(
        stream: S,
        session: &mut Session,
        config: Arc<SmtpConfig>,
        peer: SocketAddr,
        shutdown: watch::Receiver<bool>,
        deadline: Instant,
        greet: bool,
    ) -> std::io::Result<Ended<S>> {
        let (read, write) = tokio::io::split(stream);
        let mut conn = Connection {
            reader: LineReader::new(read, config.limits.max_auth_line),
            writer: BufWriter::with_capacity(crate::proto::WRITE_BUFFER, write),
            config,
            peer,
            shutdown,
            deadline,
        };
        if greet {
            let banner = format!("{} ESMTP portcullis", conn.config.server_name);
            conn.reply(&Reply::new(220, None, "").with_text(banner))
                .await?;
            conn.writer.flush().await?;
        }
        let result = conn.serve_lines(session).await;
        if !matches!(result, Ok(Flow::StartTls)) {
            let login = session.login.as_ref();
            tracing::info!(protocol = "smtp", peer = %conn.peer, tls = session.secure,
                user = login.and_then(|l| l.user.as_deref()).unwrap_or(""),
                mechanism = login.map(|l| l.mechanism.as_str()).unwrap_or(""),
                messages = session.messages, duration_ms = conn.elapsed().as_millis() as u64,
                "session ended");
        }
        session.logout().await;
        match result {
            Ok(Flow::StartTls) => {
                let read = conn.reader.into_inner();
                let write = conn.writer.into_inner();
                Ok(Ended::Upgrade(read.unsplit(write)))
            }
            Ok(_) => {
                let _ = conn.writer.shutdown().await;
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
            let in_exchange = matches!(session.phase, Phase::Sasl(_));
            let step_bound = in_exchange && self.config.step_timeout < wait;
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
                    self.auth_step_timed_out(session).await?;
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
            match self.on_frame(session, frame).await? {
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

    async fn on_frame(&mut self, session: &mut Session, frame: Frame) -> std::io::Result<Flow> {
        match &mut session.phase {
            Phase::Data(data) => match data.reader.feed(frame) {
                DataProgress::More => Ok(Flow::Continue),
                DataProgress::Done(message) => {
                    let answer = self.end_data(session, message).await;
                    self.reply(&answer).await?;
                    Ok(Flow::Continue)
                }
            },
            Phase::Sasl(_) => match frame {
                Frame::Line(line) => self.on_sasl_line(session, &line).await,
                Frame::TooLong => {
                    session.phase = Phase::Command;
                    self.reply(&reply::LINE_TOO_LONG.with_text("Line too long, AUTH cancelled"))
                        .await?;
                    Ok(Flow::Continue)
                }
            },
            Phase::Command => match frame {
                Frame::Line(line) => self.on_command_line(session, &line).await,
                Frame::TooLong => self.error(session, reply::LINE_TOO_LONG).await,
            },
        }
    }

    async fn on_command_line(
        &mut self,
        session: &mut Session,
        line: &[u8],
    ) -> std::io::Result<Flow> {
        let is_auth = line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ");
        if line.len() > self.config.limits.max_command_line && !is_auth {
            return self.error(session, reply::LINE_TOO_LONG).await;
        }
        // RFC 5321 §2.3.8: a command is one CRLF-terminated line; a CR or
        // LF inside it is never a line end (smuggling) nor a parameter.
        if has_bare_newline(line) {
            return self.error(session, reply::BARE_NEWLINE_COMMAND).await;
        }
        let command = match parse_command(line) {
            Ok(command) => command,
            Err(ParseError::Unrecognized) => return self.error(session, reply::UNRECOGNIZED).await,
            Err(ParseError::Syntax(why)) => {
                let text = format!("Syntax error: {why}");
                return self.error(session, reply::SYNTAX.with_text(text)).await;
            }
        };
        let answer = match command {
            Command::Ehlo(name) => self.hello(session, name, true),
            Command::Helo(name) => self.hello(session, name, false),
            Command::Mail { from, params } => self.mail(session, from, &params).await,
            Command::Rcpt { to, params } => self.rcpt(session, to, &params).await,
            Command::Data => self.data(session).await,
            Command::Rset => {
                session.transaction = None;
                reply::RESET
            }
            Command::Noop => reply::OK,
            Command::Quit => {
                self.reply(&reply::BYE).await?;
                return Ok(Flow::Close);
            }
            Command::Vrfy(_) => reply::VRFY,
            Command::Expn(_) => reply::NOT_IMPLEMENTED.with_text("EXPN is not supported"),
            Command::Help(_) => reply::HELP,
            Command::StartTls => return self.starttls(session).await,
            Command::Auth {
                mechanism,
                initial_response,
            } => return self.auth(session, mechanism, initial_response).await,
        };
        self.reply(&answer).await?;
        Ok(Flow::Continue)
    }

    /// Replies to a bad command and counts it; too many end the session.
    async fn error(&mut self, session: &mut Session, answer: Reply) -> std::io::Result<Flow> {
        self.reply(&answer).await?;
        session.errors += 1;
        if session.errors >= self.config.limits.max_errors {
            self.reply(&reply::TOO_MANY_ERRORS).await?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    fn hello(&mut self, session: &mut Session, name: &str, esmtp: bool) -> Reply {
        session.greeting = Some(Greeting {
            name: name.to_owned(),
            esmtp,
        });
        session.transaction = None;
        let mut text = format!(
            "{} Hello {name} [{}]",
            self.config.server_name,
            self.peer.ip()
        );
        if esmtp {
            let limits = &self.config.limits;
            text.push_str(&format!(
                "\nPIPELINING\nSIZE {}\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8",
                limits.max_message_size
            ));
            if self.config.tls.is_some() && !session.secure {
                text.push_str("\nSTARTTLS");
            }
            let offered = self.offered_mechanisms(session);
            if !offered.is_empty() {
                text.push_str("\nAUTH ");
                text.push_str(&offered.join(" "));
            }
            text.push_str("\nHELP");
        }
        Reply::new(250, None, "").with_text(text)
    }

    async fn starttls(&mut self, session: &mut Session) -> std::io::Result<Flow> {
        let answer = if self.config.tls.is_none() {
            reply::NOT_IMPLEMENTED.with_text("STARTTLS is not offered here")
        } else if session.secure {
            reply::BAD_SEQUENCE.with_text("TLS is already active")
        } else {
            self.reply(&reply::READY_FOR_TLS).await?;
            return Ok(Flow::StartTls);
        };
        self.reply(&answer).await?;
        Ok(Flow::Continue)
    }

    /// How long the session has lasted (its deadline is its start plus
    /// the session timeout).
    fn elapsed(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        self.config.limits.session_timeout.saturating_sub(left)
    }

    /// The mechanisms this session may use, in EHLO order.
    pub(super) fn offered_mechanisms(&self, session: &Session) -> Vec<String> {
        let allow_plaintext = self.plaintext_allowed(session);
        let services = self.config.services.get();
        services
            .mechanisms
            .offered(&services.portal, allow_plaintext)
            .map(|m| m.to_string())
            .collect()
    }

    /// Whether plaintext mechanisms may run on this connection now.
    pub(super) fn plaintext_allowed(&self, session: &Session) -> bool {
        session.secure
            || match self.config.policy.tls_only {
                TlsOnly::No => true,
                TlsOnly::Yes => false,
                TlsOnly::Auto => self.peer.ip().is_loopback(),
            }
    }

    pub(super) fn mind(&self, session: &Session, mechanism: Option<&Mechname>) -> Mind {
        Mind {
            peer: self.peer.to_string(),
            protocol: "smtp",
            mechanism: mechanism.map(|m| m.to_string()),
            secure: session.secure,
        }
    }

    /// The longest line the framer accepts next (text lines in DATA are
    /// shorter than AUTH lines).
    pub(super) fn set_line_limit(&mut self, max: usize) {
        self.reader.buffer_mut().set_max(max);
    }

    /// Queues a reply; the read loop flushes.
    pub(super) async fn reply(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.writer.write_all(reply.to_wire().as_bytes()).await
    }

    /// Sends queued replies now (before a pause or a handshake).
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush().await
    }
}

/// Resolves when the server starts shutting down; never if it cannot.
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|down| *down).await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub(super) fn log_outcome(
    peer: SocketAddr,
    mechanism: &Mechname,
    outcome: &Outcome,
    started: Instant,
) {
    let elapsed_us = started.elapsed().as_micros() as u64;
    let result = match outcome {
        Outcome::Success { .. } => "success",
        Outcome::Denied { .. } => "denied",
    };
    crate::metrics::METRICS.auth("smtp", mechanism.as_str(), result, started.elapsed());
    match outcome {
        Outcome::Success {
            avatar_id,
            user,
            checker,
            ..
        } => tracing::info!(protocol = "smtp", %peer, mechanism = %mechanism,
            user = user.as_deref().unwrap_or(""),
            avatar_id = avatar_id.as_deref().unwrap_or("(anonymous)"),
            plugin = checker.as_deref().unwrap_or(""),
            result = "success", elapsed_us, "authenticated"),
        Outcome::Denied {
            denial,
            user,
            checker,
            ..
        } => tracing::info!(protocol = "smtp", %peer,
            mechanism = %mechanism, user = user.as_deref().unwrap_or(""), result = "denied",
            plugin = checker.as_deref().unwrap_or(""),
            reason = %denial, elapsed_us, "authentication denied"),
    }
}
