//! One connection of the auth service: the handshake at once, then the
//! MTA's requests, each a SASL exchange keyed by its id. Generic over the
//! stream, so it runs the same over TCP, a UNIX socket and
//! `tokio::io::duplex` in tests.
//!
//! A connection has no idle timeout: Postfix keeps one per smtpd process
//! and writes its next `AUTH` without checking that the socket is still
//! open, so a connection closed while idle would cost one of its clients
//! a 454. What bounds a connection is the number of them
//! ([`super::DovecotConfig::max_connections`]), the requests in flight on
//! each, the step timeout of each request, and the line length.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
    ReadHalf, WriteHalf,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::wire::{self, AuthRequest, Command, Handshake, MechLine, RequestId};
use super::{DovecotConfig, MAX_FAIL_DELAY, mechanism_flags};
use crate::portal::{AvatarInterface, AvatarWhen, ChannelInfo, CredentialKind, Mind};
use crate::sasl::{self, Begin, Ending, LineExchange, Mechname, Purpose, Refusal, Turn};
use crate::server::shutdown_requested;
use crate::smtp::TlsOnly;

/// Connections served so far: each gets its own `CUID`.
static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

/// Who is on the other end, for logs, and whose address stands in for a
/// request without `rip`.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// `ip:port` for TCP, the socket's path for a UNIX socket.
    pub describe: String,
    /// The TCP peer's address; unspecified on a UNIX socket.
    pub ip: IpAddr,
}

/// A request waiting for the MTA's next `CONT`.
struct Pending {
    exchange: LineExchange,
    deadline: Instant,
    client: SocketAddr,
}

/// A `FAIL` held back by the failure delay and the penalty.
struct Delayed {
    due: Instant,
    id: RequestId,
    line: String,
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Connection<S> {
    reader: BufReader<ReadHalf<S>>,
    writer: BufWriter<WriteHalf<S>>,
    config: Arc<DovecotConfig>,
    peer: PeerInfo,
    version_seen: bool,
    pending: HashMap<RequestId, Pending>,
    delayed: Vec<Delayed>,
}

/// Serves one connection until the MTA closes it, breaks the protocol, a
/// plugin fails, or the server shuts down.
pub async fn serve<S>(
    stream: S,
    peer: PeerInfo,
    config: Arc<DovecotConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut conn = Connection {
        reader: BufReader::with_capacity(4096, read),
        writer: BufWriter::new(write),
        config,
        peer,
        version_seen: false,
        pending: HashMap::new(),
        delayed: Vec::new(),
    };
    let handshake = conn.handshake();
    conn.writer.write_all(handshake.as_bytes()).await?;
    conn.writer.flush().await?;
    let result = conn.run(&mut shutdown).await;
    // Answer the failures still held back: a denial stays a denial.
    for d in std::mem::take(&mut conn.delayed) {
        let _ = conn.writer.write_all(d.line.as_bytes()).await;
    }
    let _ = conn.writer.flush().await;
    let _ = conn.writer.shutdown().await;
    tracing::debug!(protocol = "dovecot", peer = %conn.peer.describe, "connection ended");
    result
}

impl<S: AsyncRead + AsyncWrite + Send> Connection<S> {
    /// The handshake for the mechanisms loaded now.
    fn handshake(&self) -> String {
        let services = self.config.services.get();
        let mechanisms = services
            .mechanisms
            .offered(&services.portal, true)
            // Channel binding has no field in this protocol.
            .filter(|name| !name.as_str().ends_with("-PLUS"))
            .filter_map(|name| services.mechanisms.get(name))
            .map(|m| {
                let name = m.info.name.to_ascii_uppercase();
                let anonymous = m.info.kinds.contains(&CredentialKind::Anonymous);
                MechLine {
                    flags: mechanism_flags(&name, m.info.plaintext, anonymous),
                    name,
                }
            })
            .collect();
        let cuid = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        Handshake {
            mechanisms,
            spid: std::process::id(),
            cuid,
            cookie: cookie(cuid),
        }
        .to_wire()
    }

    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            let wake = self.next_wake();
            tokio::select! {
                _ = shutdown_requested(shutdown) => return Ok(()),
                read = read_line(&mut self.reader, &mut line, self.config.max_line) => {
                    match read? {
                        Read::Closed => return Ok(()),
                        Read::TooLong => {
                            tracing::warn!(protocol = "dovecot", peer = %self.peer.describe,
                                max = self.config.max_line, "line too long; closing");
                            return Ok(());
                        }
                        Read::Line => {
                            let text = std::mem::take(&mut line);
                            if self.on_line(&text).await? == Flow::Close {
                                return Ok(());
                            }
                        }
                    }
                }
                _ = sleep_until(wake), if wake.is_some() => self.on_clock().await?,
            }
            self.writer.flush().await?;
        }
    }

    /// The earliest step deadline or held-back failure.
    fn next_wake(&self) -> Option<Instant> {
        let deadlines = self.pending.values().map(|p| p.deadline);
        let dues = self.delayed.iter().map(|d| d.due);
        deadlines.chain(dues).min()
    }

    async fn on_line(&mut self, line: &[u8]) -> std::io::Result<Flow> {
        let command = match wire::parse(line) {
            Ok(command) => command,
            Err(e) => {
                tracing::warn!(protocol = "dovecot", peer = %self.peer.describe,
                    "protocol error: {e}; closing");
                return Ok(Flow::Close);
            }
        };
        match command {
            Command::Version { major, minor } => {
                if major != wire::VERSION.0 {
                    tracing::warn!(protocol = "dovecot", peer = %self.peer.describe,
                        "the client speaks protocol version {major}.{minor}, not {}.x; closing",
                        wire::VERSION.0);
                    return Ok(Flow::Close);
                }
                self.version_seen = true;
                Ok(Flow::Continue)
            }
            Command::Cpid(pid) => {
                tracing::debug!(protocol = "dovecot", peer = %self.peer.describe, cpid = pid,
                    "client process");
                Ok(Flow::Continue)
            }
            Command::Auth(request) => self.auth(request).await,
            Command::Cont { id, response } => self.cont(id, &response).await,
        }
    }

    async fn auth(&mut self, request: AuthRequest) -> std::io::Result<Flow> {
        let id = request.id;
        if !self.version_seen {
            tracing::warn!(protocol = "dovecot", peer = %self.peer.describe,
                "AUTH before VERSION; closing");
            return Ok(Flow::Close);
        }
        if self.pending.contains_key(&id) || self.delayed.iter().any(|d| d.id == id) {
            tracing::warn!(protocol = "dovecot", peer = %self.peer.describe, id,
                "AUTH reuses the id of a request in flight; closing");
            return Ok(Flow::Close);
        }
        if self.pending.len() + self.delayed.len() >= self.config.max_requests {
            tracing::info!(protocol = "dovecot", peer = %self.peer.describe,
                "too many requests in flight on one connection");
            return self
                .reply(wire::fail(id, None, Some("Too many requests in flight")))
                .await;
        }
        let Some(name) = Mechname::parse(&request.mechanism) else {
            return self.unsupported(id).await;
        };
        let client = self.client(&request);
        let services = self.config.services.get();
        let secure = request.secured;
        let allow_plaintext = secure
            || match self.config.tls_only {
                TlsOnly::No => true,
                TlsOnly::Yes => false,
                TlsOnly::Auto => client.ip().is_loopback(),
            };
        let begin = Begin {
            portal: services.portal.clone(),
            mechanisms: services.mechanisms.clone(),
            purpose: Purpose {
                interface: AvatarInterface::MessageDelivery,
                mind: Mind {
                    peer: client.to_string(),
                    protocol: "dovecot",
                    mechanism: Some(name.to_string()),
                    secure,
                },
                // The OK is all the login grants: a realm's refusal must
                // be heard before it.
                when: AvatarWhen::AtLogin,
                client: client.ip(),
            },
            name,
            initial_response: request.initial_response.as_deref(),
            allow_plaintext,
            channel: ChannelInfo {
                server_name: self.config.server_name.clone(),
                secure,
                // EXTERNAL needs both: a certificate the MTA verified and
                // the identity it names.
                external_identity: request
                    .cert_username
                    .clone()
                    .filter(|_| request.valid_client_cert),
                peer: client.to_string(),
            },
            clients: &self.config.clients,
            peer: client.ip(),
        };
        match LineExchange::begin(begin).await {
            Ok((exchange, turn)) => self.on_turn(id, exchange, client, turn).await,
            Err(refusal) => {
                let reason = match refusal {
                    Refusal::UnknownMechanism { .. } => return self.unsupported(id).await,
                    Refusal::EncryptionRequired => {
                        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
                    }
                    Refusal::BadBase64 => "Invalid base64 data in initial response",
                    Refusal::TooManyExchanges => {
                        tracing::info!(protocol = "dovecot", peer = %client,
                            "too many exchanges from this address");
                        "Too many authentication attempts from this address"
                    }
                };
                self.reply(wire::fail(id, None, Some(reason))).await
            }
        }
    }

    async fn unsupported(&mut self, id: RequestId) -> std::io::Result<Flow> {
        self.reply(wire::fail(
            id,
            None,
            Some("Unsupported authentication mechanism"),
        ))
        .await
    }

    /// The MTA's client: `rip` and `rport`, else the connection's peer.
    fn client(&self, request: &AuthRequest) -> SocketAddr {
        let ip = request
            .remote
            .as_deref()
            .and_then(|r| r.parse::<IpAddr>().ok())
            .unwrap_or(self.peer.ip);
        SocketAddr::new(ip, request.remote_port.unwrap_or(0))
    }

    async fn cont(&mut self, id: RequestId, response: &[u8]) -> std::io::Result<Flow> {
        let Some(Pending {
            mut exchange,
            client,
            ..
        }) = self.pending.remove(&id)
        else {
            // Timed out (and answered) before this arrived, or never was;
            // Dovecot answers the same.
            return self
                .reply(wire::fail(
                    id,
                    None,
                    Some("Authentication request timed out"),
                ))
                .await;
        };
        let turn = exchange.on_line(response).await;
        self.on_turn(id, exchange, client, turn).await
    }

    async fn on_turn(
        &mut self,
        id: RequestId,
        exchange: LineExchange,
        client: SocketAddr,
        turn: Turn,
    ) -> std::io::Result<Flow> {
        let ending = match turn {
            Turn::Challenge(data) => {
                self.pending.insert(
                    id,
                    Pending {
                        exchange,
                        deadline: Instant::now() + self.config.step_timeout,
                        client,
                    },
                );
                return self.reply(wire::cont(id, &data)).await;
            }
            Turn::Over(ending) => ending,
        };
        let mechanism = exchange.mechanism().clone();
        sasl::line::report(
            "dovecot",
            client,
            mechanism.as_str(),
            &ending,
            exchange.started(),
        );
        drop(exchange);
        match ending {
            Ending::Success { login, user, .. } => {
                self.config
                    .penalty
                    .success(client.ip(), user.as_deref())
                    .await;
                let name = login
                    .avatar_id
                    .clone()
                    .or(user)
                    .unwrap_or_else(|| "anonymous".to_owned());
                // The MTA delivers: the avatar was asked for so that the
                // realm could refuse, and is not needed past that.
                login.avatar.logout().await;
                self.reply(wire::ok(id, &name)).await
            }
            Ending::Denied { user, .. } => {
                let penalty = self
                    .config
                    .penalty
                    .failure(client.ip(), user.as_deref())
                    .await;
                let pause = (self.config.failure_delay + penalty).min(MAX_FAIL_DELAY);
                // The same reason for every denial: whether the user
                // exists is not the client's to learn.
                let line = wire::fail(id, user.as_deref(), Some("Authentication failed."));
                if pause.is_zero() {
                    return self.reply(line).await;
                }
                self.delayed.push(Delayed {
                    due: Instant::now() + pause,
                    id,
                    line,
                });
                Ok(Flow::Continue)
            }
            // Logged by `report`; a lost connection is the MTA's 454.
            Ending::Fault(_) => Ok(Flow::Close),
            Ending::Cancelled => {
                self.reply(wire::fail(id, None, Some("Authentication cancelled")))
                    .await
            }
            Ending::BadBase64 => {
                self.reply(wire::fail(
                    id,
                    None,
                    Some("Invalid base64 data in continued response"),
                ))
                .await
            }
        }
    }

    /// Times out requests past their step deadline; sends the failures
    /// whose delay is over.
    async fn on_clock(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        let expired: Vec<RequestId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(p) = self.pending.remove(&id) {
                sasl::line::report_step_timeout("dovecot", p.client);
                let line = wire::fail(id, None, Some("Authentication request timed out"));
                self.writer.write_all(line.as_bytes()).await?;
            }
        }
        let (due, later): (Vec<Delayed>, Vec<Delayed>) = std::mem::take(&mut self.delayed)
            .into_iter()
            .partition(|d| d.due <= now);
        self.delayed = later;
        for d in due {
            self.writer.write_all(d.line.as_bytes()).await?;
        }
        Ok(())
    }

    async fn reply(&mut self, line: String) -> std::io::Result<Flow> {
        self.writer.write_all(line.as_bytes()).await?;
        Ok(Flow::Continue)
    }
}

/// 32 hex digits, different for every connection. The cookie names a
/// connection for Dovecot's master requests, which this server does not
/// take, so it needs to be unique, not secret.
fn cookie(cuid: u64) -> String {
    use sha2::Digest as _;
    use std::hash::BuildHasher as _;
    let seed = std::collections::hash_map::RandomState::new().hash_one(cuid);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = sha2::Sha256::new()
        .chain_update(std::process::id().to_le_bytes())
        .chain_update(cuid.to_le_bytes())
        .chain_update(seed.to_le_bytes())
        .chain_update(now.to_le_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

enum Read {
    Line,
    TooLong,
    Closed,
}

/// Reads up to the next LF into `line` (without it, nor a CR before it).
/// Safe to cancel: what was read stays in `line` for the next call.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Read> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Read::Closed);
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(at) => {
                line.extend_from_slice(&available[..at]);
                reader.consume(at + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Ok(Read::TooLong);
                }
                return Ok(Read::Line);
            }
            None => {
                let n = available.len();
                line.extend_from_slice(available);
                reader.consume(n);
                if line.len() > max {
                    return Ok(Read::TooLong);
                }
            }
        }
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(when) => tokio::time::sleep_until(when).await,
        None => std::future::pending().await,
    }
}
