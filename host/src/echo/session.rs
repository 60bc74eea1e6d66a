//! One echo connection: a small state machine (login, SASL exchange,
//! logged in) driven by framed lines. Generic over the stream, so it runs
//! the same over TCP and over `tokio::io::duplex` in tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::codec::{LoginLine, parse_login_line};
use super::replies;
use crate::portal::{Avatar, AvatarInterface, AvatarWhen, ChannelInfo, Credentials, Mind};
use crate::proto::line::{Frame, LineReader};
use crate::proto::outbox::Outbox;
use crate::sasl::{self, Begin, Ending, LineExchange, Mechname, Purpose, Refusal, Turn};

/// Settings shared by every echo connection.
pub struct EchoConfig {
    /// The plugins, replaced as a whole by a reload.
    pub services: Arc<crate::services::Live>,
    pub server_name: String,
    /// Longest line accepted, in bytes (SASL responses of 12288 octets
    /// need 16 KiB of base64).
    pub max_line: usize,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// Bad lines tolerated before login.
    pub max_errors: u32,
    /// Failed logins per client address, shared with SMTP.
    pub penalty: Arc<crate::penalty::Penalty>,
    /// Exchanges in flight per client address, shared with SMTP.
    pub clients: Arc<crate::limits::ClientLimits>,
    /// How long an exchange waits for the client's next response.
    pub step_timeout: Duration,
}

impl EchoConfig {
    pub fn new(services: Arc<crate::services::Live>) -> Self {
        EchoConfig {
            services,
            server_name: "localhost".into(),
            max_line: 16 << 10,
            idle_timeout: Duration::from_secs(300),
            max_errors: 3,
            penalty: Arc::new(crate::penalty::Penalty::new(
                Duration::ZERO,
                Duration::ZERO,
                Vec::new(),
            )),
            clients: crate::limits::ClientLimits::unlimited(),
            step_timeout: Duration::from_secs(20),
        }
    }
}

/// Where the conversation stands.
enum State {
    /// Waiting for `user pass` or `AUTH`.
    Login,
    /// A SASL exchange is running.
    Sasl(Box<LineExchange>),
    /// Logged in; lines go to the avatar.
    LoggedIn { avatar: Box<dyn Avatar> },
}

/// Whether to keep the connection open.
enum Flow {
    Continue,
    Close,
}

struct Connection<S> {
    reader: LineReader<ReadHalf<S>>,
    writer: Outbox<WriteHalf<S>>,
    config: Arc<EchoConfig>,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    /// Bad lines so far, before login.
    errors: u32,
}

/// Serves one echo connection until the client leaves, fails to log in or
/// the avatar asks to close, or the server shuts down.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    config: Arc<EchoConfig>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut conn = Connection {
        reader: LineReader::new(read, config.max_line),
        writer: Outbox::with_capacity(crate::proto::ECHO_WRITE_BUFFER, write),
        config,
        peer,
        shutdown,
        errors: 0,
    };
    let started = Instant::now();
    let mut state = State::Login;
    let result = conn.run(&mut state).await;
    let logged_in = matches!(state, State::LoggedIn { .. });
    if let State::LoggedIn { avatar } = state {
        avatar.logout().await;
        tracing::debug!(protocol = "echo", peer = %conn.peer, "logged out");
    }
    tracing::info!(protocol = "echo", peer = %conn.peer, logged_in,
        duration_ms = started.elapsed().as_millis() as u64, "session ended");
    let _ = conn.writer.shutdown().await;
    result
}

impl<S: AsyncRead + AsyncWrite + Send> Connection<S> {
    async fn run(&mut self, state: &mut State) -> std::io::Result<()> {
        loop {
            let in_exchange = matches!(state, State::Sasl(_));
            let wait = if in_exchange {
                self.config.idle_timeout.min(self.config.step_timeout)
            } else {
                self.config.idle_timeout
            };
            let shutdown = &mut self.shutdown;
            let read = tokio::select! {
                biased;
                Ok(_) = shutdown.wait_for(|down| *down) => None,
                read = tokio::time::timeout(wait, self.reader.next()) => {
                    Some(read)
                }
            };
            let frame = match read {
                Some(Ok(Ok(Some(frame)))) => frame,
                Some(Ok(Ok(None))) => return Ok(()),
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(_)) if in_exchange && wait < self.config.idle_timeout => {
                    // The exchange waited long enough: cancel it and free
                    // its instance; the connection may try again.
                    sasl::line::report_step_timeout("echo", self.peer);
                    *state = State::Login;
                    self.send(replies::CANCELLED).await?;
                    self.writer.flush().await?;
                    continue;
                }
                Some(Err(_)) => {
                    self.send(replies::IDLE).await?;
                    return self.writer.flush().await;
                }
                None => {
                    self.send(replies::SHUTTING_DOWN).await?;
                    return self.writer.flush().await;
                }
            };
            let flow = self.on_frame(state, frame).await?;
            if matches!(flow, Flow::Close) {
                return self.writer.flush().await;
            }
            if !self.reader.has_pending_frame() {
                self.writer.flush().await?;
            }
        }
    }

    async fn on_frame(&mut self, state: &mut State, frame: Frame) -> std::io::Result<Flow> {
        let line = match frame {
            Frame::Line(line) => line,
            Frame::TooLong => {
                self.send(replies::TOO_LONG).await?;
                return match state {
                    State::Login => self.count_error().await,
                    State::Sasl(_) => {
                        *state = State::Login;
                        self.send(replies::CANCELLED).await?;
                        self.count_error().await
                    }
                    State::LoggedIn { .. } => Ok(Flow::Continue),
                };
            }
        };
        // A login's futures (the portal, a SASL step) are large and boxed
        // while they run, so they are not part of every session's state,
        // idle and logged-in ones included.
        match state {
            State::Login => Box::pin(self.on_login_line(state, &line)).await,
            State::Sasl(_) => Box::pin(self.on_sasl_line(state, &line)).await,
            State::LoggedIn { avatar } => self.on_echo_line(avatar.as_mut(), &line).await,
        }
    }

    async fn on_sasl_line(&mut self, state: &mut State, line: &[u8]) -> std::io::Result<Flow> {
        let State::Sasl(exchange) = state else {
            return Ok(Flow::Continue);
        };
        let turn = exchange.on_line(line).await;
        self.on_turn(state, turn).await
    }

    async fn on_login_line(&mut self, state: &mut State, line: &[u8]) -> std::io::Result<Flow> {
        match parse_login_line(line) {
            Err(e) => {
                self.send(&format!("Error: {e}.")).await?;
                self.count_error().await
            }
            Ok(LoginLine::Credentials { username, password }) => {
                let credentials = Credentials::UsernamePassword {
                    authzid: None,
                    username: username.to_owned(),
                    password: password.to_owned(),
                };
                let started = Instant::now();
                let portal = self.config.services.get().portal.clone();
                let ending = Ending::of_password(&portal, &credentials, &self.purpose(None)).await;
                self.finish(state, ending, "USER-PASS", started).await
            }
            Ok(LoginLine::Sasl {
                mechanism,
                initial_response,
            }) => self.start_sasl(state, mechanism, initial_response).await,
        }
    }

    fn purpose(&self, mechanism: Option<&Mechname>) -> Purpose {
        Purpose {
            interface: AvatarInterface::Echo,
            mind: Mind {
                peer: self.peer.to_string(),
                protocol: "echo",
                mechanism: mechanism.map(|m| m.to_string()),
                secure: false,
            },
            when: AvatarWhen::AtLogin,
            client: self.peer.ip(),
        }
    }

    async fn start_sasl(
        &mut self,
        state: &mut State,
        name: Mechname,
        initial_response: Option<&[u8]>,
    ) -> std::io::Result<Flow> {
        let services = self.config.services.get();
        let begin = Begin {
            portal: services.portal.clone(),
            mechanisms: services.mechanisms.clone(),
            purpose: self.purpose(Some(&name)),
            name: name.clone(),
            initial_response,
            allow_plaintext: true,
            channel: ChannelInfo {
                server_name: self.config.server_name.clone(),
                secure: false,
                external_identity: None,
                peer: self.peer.to_string(),
            },
            clients: &self.config.clients,
            peer: self.peer.ip(),
        };
        match LineExchange::begin(begin).await {
            Ok((exchange, turn)) => {
                *state = State::Sasl(Box::new(exchange));
                self.on_turn(state, turn).await
            }
            Err(Refusal::UnknownMechanism { offered }) => {
                let names: Vec<&str> = offered.iter().map(|m| m.as_str()).collect();
                self.send(&replies::unknown_mechanism(name.as_str(), &names))
                    .await?;
                self.count_error().await
            }
            // Echo runs in the clear and allows every mechanism.
            Err(Refusal::EncryptionRequired | Refusal::BadBase64) => {
                self.send(replies::BAD_BASE64).await?;
                self.count_error().await
            }
            Err(Refusal::TooManyExchanges) => {
                tracing::info!(protocol = "echo", peer = %self.peer,
                    "too many exchanges from this address; closing");
                self.send(replies::BUSY).await?;
                Ok(Flow::Close)
            }
        }
    }

    async fn on_turn(&mut self, state: &mut State, turn: Turn) -> std::io::Result<Flow> {
        let ending = match turn {
            Turn::Challenge(data) => {
                self.send(&replies::challenge(&data)).await?;
                return Ok(Flow::Continue);
            }
            Turn::Over(ending) => ending,
        };
        let State::Sasl(exchange) = std::mem::replace(state, State::Login) else {
            unreachable!("a turn outside a SASL exchange");
        };
        let (name, started) = (exchange.mechanism().clone(), exchange.started());
        drop(exchange);
        self.finish(state, ending, name.as_str(), started).await
    }

    /// Reports how a login ended to the client and the log.
    async fn finish(
        &mut self,
        state: &mut State,
        ending: Ending,
        mechanism: &str,
        started: Instant,
    ) -> std::io::Result<Flow> {
        sasl::line::report("echo", self.peer, mechanism, &ending, started);
        match ending {
            Ending::Success { login, user, .. } => {
                let penalty = &self.config.penalty;
                penalty.success(self.peer.ip(), user.as_deref()).await;
                *state = State::LoggedIn {
                    avatar: login.avatar,
                };
                self.send(replies::LOGIN_OK).await?;
                Ok(Flow::Continue)
            }
            Ending::Denied { user, .. } => {
                self.penalize(user.as_deref()).await?;
                self.send(replies::LOGIN_DENIED).await?;
                Ok(Flow::Close)
            }
            Ending::Fault(_) => {
                self.send(replies::TEMPORARY_FAILURE).await?;
                Ok(Flow::Close)
            }
            Ending::Cancelled => {
                self.send(replies::CANCELLED).await?;
                Ok(Flow::Continue)
            }
            Ending::BadBase64 => {
                self.send(replies::BAD_BASE64).await?;
                self.count_error().await
            }
        }
    }

    async fn on_echo_line(
        &mut self,
        avatar: &mut dyn Avatar,
        line: &[u8],
    ) -> std::io::Result<Flow> {
        let Ok(text) = std::str::from_utf8(line) else {
            self.send(replies::NOT_UTF8).await?;
            return Ok(Flow::Continue);
        };
        match avatar.echo_line(text).await {
            Ok(reply) => {
                for line in &reply.lines {
                    self.send(line).await?;
                }
                Ok(if reply.close {
                    Flow::Close
                } else {
                    Flow::Continue
                })
            }
            Err(fault) => {
                tracing::warn!(protocol = "echo", peer = %self.peer, plugin = %fault.plugin,
                    fault = %fault.kind, detail = %fault.detail, "echo avatar failed");
                self.send(replies::TEMPORARY_FAILURE).await?;
                Ok(Flow::Close)
            }
        }
    }

    /// Waits out this address's (and user's) penalty before answering a
    /// failure.
    async fn penalize(&mut self, user: Option<&str>) -> std::io::Result<()> {
        let pause = self.config.penalty.failure(self.peer.ip(), user).await;
        if !pause.is_zero() {
            self.writer.flush().await?;
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    async fn count_error(&mut self) -> std::io::Result<Flow> {
        self.errors += 1;
        if self.errors >= self.config.max_errors {
            self.send(replies::TOO_MANY_ERRORS).await?;
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }

    /// Queues one line; [`Connection::run`] flushes when input runs dry.
    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(line.as_bytes()).await?;
        self.writer.write_all(b"\r\n").await
    }
}

#[cfg(test)]
mod size_tests {
    use std::future::Future;

    fn future_size<A, B, C, D, F: Future>(_: impl Fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A logged-in or idle echo session's state is its future (the
    /// avatar's calls are boxed by the `Avatar` trait, a login's by
    /// `on_frame`).
    #[test]
    fn an_echo_session_is_a_small_future() {
        let size = future_size(super::serve::<tokio::net::TcpStream>);
        println!("echo session future: {size} bytes");
        assert!(size <= 2048, "an echo session's future is {size} bytes");
    }
}
