//! One connection to a next hop: the greeting, EHLO (LHLO), STARTTLS and
//! XCLIENT, then commands one at a time, each under a deadline.

use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::hop::{Address, NextHop, Protocol};
use super::wire::{self, ReplyError, WireReply};

/// What the host knows of the client, for XCLIENT (never the realm's
/// word: it comes from the session).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFacts {
    /// The client's IP address.
    pub addr: Option<std::net::IpAddr>,
    /// The authenticated user (the avatar id), if any.
    pub login: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection, ready for MAIL.
pub struct Conn {
    stream: Box<dyn Io>,
    buf: Vec<u8>,
    /// Whether the client was passed with XCLIENT.
    pub xclient_sent: bool,
}

/// A step's deadline: its own timeout, but never past `limit` (the
/// plugin call's deadline, less a margin so the guest can still answer).
pub fn deadline(timeout: Duration, limit: Instant) -> Instant {
    const MARGIN: Duration = Duration::from_millis(250);
    (Instant::now() + timeout).min(limit.checked_sub(MARGIN).unwrap_or(limit))
}

async fn within<T>(
    deadline: Instant,
    what: &str,
    f: impl Future<Output = std::io::Result<T>>,
) -> Result<T, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout(left, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

impl Conn {
    /// Connects and greets; passes the client with XCLIENT when the hop
    /// allows it and the operator asked for it.
    pub async fn open(hop: &NextHop, client: &ClientFacts, limit: Instant) -> Result<Conn, String> {
        let at = deadline(hop.timeouts.connect, limit);
        let stream: Box<dyn Io> = match &hop.address {
            Address::Tcp(a) => {
                let s = within(at, "connect", tokio::net::TcpStream::connect(a.as_str())).await?;
                let _ = s.set_nodelay(true);
                Box::new(s)
            }
            Address::Unix(p) => {
                Box::new(within(at, "connect", tokio::net::UnixStream::connect(p)).await?)
            }
        };
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            xclient_sent: false,
        };
        conn.expect(at, 220, "greeting").await?;
        let mut keywords = conn.hello(hop, at).await?;
        if let Some(tls) = &hop.tls {
            if !keywords.iter().any(|(k, _)| k == "STARTTLS") {
                return Err("the next hop does not offer STARTTLS".into());
            }
            conn.send(at, "STARTTLS").await?;
            conn.expect(at, 220, "STARTTLS").await?;
            if !conn.buf.is_empty() {
                return Err("the next hop sent data before the TLS handshake".into());
            }
            let plain = std::mem::replace(&mut conn.stream, Box::new(tokio::io::empty()));
            let secured = within(
                at,
                "TLS handshake",
                tls.connector.connect(tls.server_name.clone(), plain),
            )
            .await?;
            conn.stream = Box::new(secured);
            keywords = conn.hello(hop, at).await?;
        }
        if hop.xclient {
            if let Some((_, attrs)) = keywords.iter().find(|(k, _)| k == "XCLIENT") {
                conn.xclient(hop, client, attrs, at).await?;
            } else {
                tracing::debug!(hop = %hop.name,
                    "the next hop offers no XCLIENT; the client is recorded in the Received header only");
            }
        }
        Ok(conn)
    }

    async fn hello(
        &mut self,
        hop: &NextHop,
        at: Instant,
    ) -> Result<Vec<(String, Vec<String>)>, String> {
        let verb = match hop.protocol {
            Protocol::Smtp => "EHLO",
            Protocol::Lmtp => "LHLO",
        };
        self.send(at, &format!("{verb} {}", hop.helo)).await?;
        let reply = self.expect(at, 250, verb).await?;
        Ok(wire::ehlo_keywords(&reply))
    }

    async fn xclient(
        &mut self,
        hop: &NextHop,
        client: &ClientFacts,
        attrs: &[String],
        at: Instant,
    ) -> Result<(), String> {
        let offered = |a: &str| attrs.iter().any(|x| x == a);
        let mut line = String::from("XCLIENT");
        if let (Some(addr), true) = (client.addr, offered("ADDR")) {
            match addr {
                std::net::IpAddr::V4(a) => line.push_str(&format!(" ADDR={a}")),
                std::net::IpAddr::V6(a) => line.push_str(&format!(" ADDR=IPV6:{a}")),
            }
            if offered("NAME") {
                line.push_str(" NAME=[UNAVAILABLE]");
            }
        }
        if offered("LOGIN") {
            match &client.login {
                Some(login) => line.push_str(&format!(" LOGIN={}", wire::xtext(login))),
                None => line.push_str(" LOGIN=[UNAVAILABLE]"),
            }
        }
        if line == "XCLIENT" {
            return Ok(());
        }
        self.send(at, &line).await?;
        // Success is a new greeting (Postfix: 220); the session restarts.
        let reply = self.reply(at).await?;
        if reply.class() != 2 {
            return Err(format!("XCLIENT refused: {} {}", reply.code, reply.text()));
        }
        self.xclient_sent = true;
        self.hello(hop, at).await?;
        Ok(())
    }

    /// Sends one command line (CRLF added).
    pub async fn send(&mut self, at: Instant, line: &str) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write(at, &bytes).await
    }

    pub async fn write(&mut self, at: Instant, bytes: &[u8]) -> Result<(), String> {
        let stream = &mut self.stream;
        within(at, "write", async move {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
    }

    /// Reads one reply.
    pub async fn reply(&mut self, at: Instant) -> Result<WireReply, String> {
        loop {
            match wire::parse_reply(&self.buf) {
                Ok((reply, used)) => {
                    self.buf.drain(..used);
                    return Ok(reply);
                }
                Err(ReplyError::Incomplete) => {}
                Err(e) => return Err(format!("the next hop broke the protocol: {e}")),
            }
            let mut chunk = [0u8; 4096];
            let n = within(at, "read", self.stream.read(&mut chunk)).await?;
            if n == 0 {
                return Err("the next hop closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads a reply that must have `code`.
    async fn expect(&mut self, at: Instant, code: u16, what: &str) -> Result<WireReply, String> {
        let reply = self.reply(at).await?;
        if reply.code != code {
            return Err(format!(
                "{what}: the next hop answered {} {}",
                reply.code,
                reply.text()
            ));
        }
        Ok(reply)
    }

    /// One command and its reply.
    pub async fn command(&mut self, at: Instant, line: &str) -> Result<WireReply, String> {
        self.send(at, line).await?;
        self.reply(at).await
    }
}
