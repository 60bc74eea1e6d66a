//! One echo connection: a small state machine (login, SASL exchange,
//! logged in) driven by framed lines. Generic over the stream, so it runs
//! the same over TCP and over `tokio::io::duplex` in tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::sync::watch;

use super::codec::{LoginLine, parse_login_line};
use super::replies;
use crate::plugin::ChannelInfo;
use crate::plugin::realm::{Avatar, AvatarInterface, Mind};
use crate::portal::{Credentials, Denial, Fault};
use crate::proto::line::{Frame, LineReader};
use crate::sasl::{self, Authenticator, Continuation, Mechname, Outcome, Progress};

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
    Login { errors: u32 },
    /// A SASL exchange is running.
    Sasl(Box<SaslState>),
    /// Logged in; lines go to the avatar.
    LoggedIn { avatar: Box<Avatar> },
}

struct SaslState {
    /// `None` once the outcome is settled: the instance is freed while
    /// the client acknowledges it.
    auth: Option<Authenticator>,
    /// This exchange's share of its address's limit.
    _share: crate::limits::Held,
    mechanism: Mechname,
    started: Instant,
    /// The exchange is over; the client's next line only acknowledges the
    /// data sent with the outcome.
    settled: Option<Outcome>,
}

/// Whether to keep the connection open.
enum Flow {
    Continue,
    Close,
}

struct Connection<S> {
    reader: LineReader<ReadHalf<S>>,
    writer: BufWriter<WriteHalf<S>>,
    config: Arc<EchoConfig>,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
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
        writer: BufWriter::new(write),
        config,
        peer,
        shutdown,
    };
    let started = Instant::now();
    let mut state = State::Login { errors: 0 };
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
                    crate::metrics::METRICS.auth_step_timeout("echo");
                    tracing::info!(protocol = "echo", peer = %self.peer,
                        "SASL exchange timed out waiting for the client; cancelled");
                    *state = State::Login { errors: 1 };
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
                return Ok(match state {
                    State::Login { errors } => self.count_error(errors).await?,
                    State::Sasl(_) => {
                        *state = State::Login { errors: 1 };
                        self.send(replies::CANCELLED).await?;
                        Flow::Continue
                    }
                    State::LoggedIn { .. } => Flow::Continue,
                });
            }
        };
        match state {
            State::Login { errors } => {
                let mut count = *errors;
                let flow = self.on_login_line(state, &line, &mut count).await?;
                if let State::Login { errors } = state {
                    *errors = count;
                }
                Ok(flow)
            }
            State::Sasl(_) => self.on_sasl_line(state, &line).await,
            State::LoggedIn { avatar } => self.on_echo_line(avatar, &line).await,
        }
    }

    async fn on_login_line(
        &mut self,
        state: &mut State,
        line: &[u8],
        errors: &mut u32,
    ) -> std::io::Result<Flow> {
        match parse_login_line(line) {
            Err(e) => {
                self.send(&format!("Error: {e}.")).await?;
                self.count_error(errors).await
            }
            Ok(LoginLine::Credentials { username, password }) => {
                let credentials = Credentials::UsernamePassword {
                    authzid: None,
                    username: username.to_owned(),
                    password: password.to_owned(),
                };
                let started = Instant::now();
                let services = self.config.services.get();
                let checker = services
                    .portal
                    .checker_for(credentials.kind())
                    .map(|p| p.name().to_owned());
                let verdict = services.portal.check(&credentials).await;
                let outcome = verdict.map(|v| match v {
                    Ok(avatar_id) => Outcome::Success {
                        avatar_id,
                        user: Some(username.to_owned()),
                        checker,
                        additional_data: None,
                    },
                    Err(denial) => Outcome::Denied {
                        denial,
                        user: Some(username.to_owned()),
                        checker,
                        error_challenge: None,
                    },
                });
                self.finish_login(state, outcome, None, started).await
            }
            Ok(LoginLine::Sasl {
                mechanism,
                initial_response,
            }) => {
                self.start_sasl(state, mechanism, initial_response, errors)
                    .await
            }
        }
    }

    async fn start_sasl(
        &mut self,
        state: &mut State,
        name: Mechname,
        initial_response: Option<&[u8]>,
        errors: &mut u32,
    ) -> std::io::Result<Flow> {
        let config = self.config.clone();
        let services = config.services.get();
        let offered: Vec<&Mechname> = services
            .mechanisms
            .offered(&services.portal, true)
            .collect();
        let Some(mechanism) = offered
            .contains(&&name)
            .then(|| services.mechanisms.get(&name))
            .flatten()
        else {
            let names: Vec<&str> = offered.iter().map(|m| m.as_str()).collect();
            self.send(&replies::unknown_mechanism(name.as_str(), &names))
                .await?;
            return self.count_error(errors).await;
        };
        let initial = match initial_response.map(sasl::decode_initial_response) {
            None => None,
            Some(Ok(bytes)) => Some(bytes),
            Some(Err(_)) => {
                self.send(replies::BAD_BASE64).await?;
                return self.count_error(errors).await;
            }
        };
        let Some(share) = config
            .clients
            .acquire(self.peer.ip(), crate::limits::Counted::Exchanges)
        else {
            tracing::info!(protocol = "echo", peer = %self.peer,
                "too many exchanges from this address; closing");
            self.send(replies::BUSY).await?;
            return Ok(Flow::Close);
        };
        let started = Instant::now();
        let channel = ChannelInfo {
            server_name: config.server_name.clone(),
            secure: false,
            external_identity: None,
            peer: self.peer.to_string(),
        };
        let mut auth = match Authenticator::new(mechanism, services.portal.clone(), channel).await {
            Ok(auth) => auth,
            Err(fault) => {
                return self
                    .finish_login(state, Err(fault), Some(&name), started)
                    .await;
            }
        };
        let progress = auth.start(initial.as_deref()).await;
        *state = State::Sasl(Box::new(SaslState {
            auth: Some(auth),
            _share: share,
            mechanism: name,
            started,
            settled: None,
        }));
        self.on_progress(state, progress).await
    }

    async fn on_sasl_line(&mut self, state: &mut State, line: &[u8]) -> std::io::Result<Flow> {
        let State::Sasl(sasl) = state else {
            unreachable!("on_sasl_line outside a SASL exchange");
        };
        if let Some(outcome) = sasl.settled.take() {
            // The client acknowledged the outcome's data; whatever it sent
            // is discarded.
            let (name, started) = (sasl.mechanism.clone(), sasl.started);
            return self
                .finish_login(state, Ok(outcome), Some(&name), started)
                .await;
        }
        let progress = match sasl::decode_continuation(line) {
            Ok(Continuation::Cancel) => {
                *state = State::Login { errors: 1 };
                self.send(replies::CANCELLED).await?;
                return Ok(Flow::Continue);
            }
            Err(_) => {
                *state = State::Login { errors: 1 };
                self.send(replies::BAD_BASE64).await?;
                return Ok(Flow::Continue);
            }
            Ok(Continuation::Data(bytes)) => match &mut sasl.auth {
                Some(auth) => auth.step(&bytes).await,
                None => unreachable!("a settled exchange has its outcome"),
            },
        };
        self.on_progress(state, progress).await
    }

    async fn on_progress(
        &mut self,
        state: &mut State,
        progress: Result<Progress, Fault>,
    ) -> std::io::Result<Flow> {
        let State::Sasl(sasl) = state else {
            unreachable!("on_progress outside a SASL exchange");
        };
        let (name, started) = (sasl.mechanism.clone(), sasl.started);
        match progress {
            Ok(Progress::Challenge(data)) => {
                self.send(&replies::challenge(&data)).await?;
                Ok(Flow::Continue)
            }
            Ok(Progress::Done(outcome)) => {
                let data = match &outcome {
                    Outcome::Success {
                        additional_data, ..
                    } => additional_data.clone(),
                    Outcome::Denied {
                        error_challenge, ..
                    } => error_challenge.clone(),
                };
                match data {
                    Some(data) => {
                        self.send(&replies::challenge(&data)).await?;
                        sasl.settled = Some(outcome);
                        sasl.auth = None;
                        Ok(Flow::Continue)
                    }
                    None => {
                        self.finish_login(state, Ok(outcome), Some(&name), started)
                            .await
                    }
                }
            }
            Err(fault) => {
                self.finish_login(state, Err(fault), Some(&name), started)
                    .await
            }
        }
    }

    /// Reports a login's outcome to the client and the log, and on success
    /// asks the realm for the echo avatar.
    async fn finish_login(
        &mut self,
        state: &mut State,
        outcome: Result<Outcome, Fault>,
        mechanism: Option<&Mechname>,
        started: Instant,
    ) -> std::io::Result<Flow> {
        let mechanism_name = mechanism.map(Mechname::as_str).unwrap_or("USER-PASS");
        let elapsed_us = started.elapsed().as_micros() as u64;
        let peer = self.peer;
        let result = match &outcome {
            Ok(Outcome::Success { .. }) => "success",
            Ok(Outcome::Denied { .. }) => "denied",
            Err(_) => "fault",
        };
        crate::metrics::METRICS.auth("echo", mechanism_name, result, started.elapsed());
        let (avatar_id, user, checker) = match outcome {
            Ok(Outcome::Success {
                avatar_id,
                user,
                checker,
                ..
            }) => (avatar_id, user, checker),
            Ok(Outcome::Denied {
                denial,
                user,
                checker,
                ..
            }) => {
                tracing::info!(protocol = "echo", %peer, mechanism = mechanism_name,
                    user = user.as_deref().unwrap_or(""), result = "denied",
                    plugin = checker.as_deref().unwrap_or(""),
                    reason = %denial, elapsed_us, "authentication denied");
                self.penalize().await?;
                self.send(replies::LOGIN_DENIED).await?;
                return Ok(Flow::Close);
            }
            Err(fault) => return self.report_fault(mechanism_name, &fault, elapsed_us).await,
        };
        let mind = Mind {
            peer: peer.to_string(),
            protocol: "echo",
            mechanism: mechanism.map(|m| m.to_string()),
            secure: false,
        };
        let portal = self.config.services.get().portal.clone();
        let avatar = match portal
            .request_avatar(avatar_id.as_deref(), AvatarInterface::Echo, &mind)
            .await
        {
            Ok(Ok(avatar)) => avatar,
            Ok(Err(denial)) => {
                tracing::info!(protocol = "echo", %peer, mechanism = mechanism_name,
                    user = user.as_deref().unwrap_or(""), result = "denied",
                    reason = %denial_for_realm(&denial), elapsed_us, "realm refused the avatar");
                self.penalize().await?;
                self.send(replies::LOGIN_DENIED).await?;
                return Ok(Flow::Close);
            }
            Err(fault) => return self.report_fault(mechanism_name, &fault, elapsed_us).await,
        };
        tracing::info!(protocol = "echo", %peer, mechanism = mechanism_name,
            user = user.as_deref().unwrap_or(""),
            avatar_id = avatar_id.as_deref().unwrap_or("(anonymous)"),
            plugin = checker.as_deref().unwrap_or(""),
            result = "success", elapsed_us, "authenticated");
        self.config.penalty.success(peer.ip());
        *state = State::LoggedIn {
            avatar: Box::new(avatar),
        };
        self.send(replies::LOGIN_OK).await?;
        Ok(Flow::Continue)
    }

    async fn report_fault(
        &mut self,
        mechanism: &str,
        fault: &Fault,
        elapsed_us: u64,
    ) -> std::io::Result<Flow> {
        tracing::warn!(protocol = "echo", peer = %self.peer, mechanism, result = "fault",
            plugin = %fault.plugin, fault = %fault.kind, detail = %fault.detail, elapsed_us,
            "authentication failed: plugin fault");
        self.send(replies::TEMPORARY_FAILURE).await?;
        Ok(Flow::Close)
    }

    async fn on_echo_line(&mut self, avatar: &mut Avatar, line: &[u8]) -> std::io::Result<Flow> {
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

    /// Waits out this address's penalty before answering a failure.
    async fn penalize(&mut self) -> std::io::Result<()> {
        let pause = self.config.penalty.failure(self.peer.ip());
        if !pause.is_zero() {
            self.writer.flush().await?;
            tokio::time::sleep(pause).await;
        }
        Ok(())
    }

    async fn count_error(&mut self, errors: &mut u32) -> std::io::Result<Flow> {
        *errors += 1;
        if *errors >= self.config.max_errors {
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

fn denial_for_realm(denial: &Denial) -> String {
    format!("realm: {denial}")
}
