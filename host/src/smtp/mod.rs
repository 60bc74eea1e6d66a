//! The ESMTP service (RFC 5321) with AUTH (RFC 4954), STARTTLS (RFC 3207)
//! and implicit TLS (RFC 8314); messages go to the realm's delivery avatar.
//!
//! - [`command`] and [`params`]: pure parsers for command lines and ESMTP
//!   parameters; [`data`]: the DATA accumulator; [`reply`]: every reply.
//! - [`state`]: the session as a state machine: each line decided without
//!   sockets or plugins, answered by an effect for the connection; its
//!   `transaction` (MAIL, RCPT, DATA) and `auth` steps.
//! - `connection`: the read loop, its clocks and the AUTH exchange;
//!   `delivery`: the realm's delivery avatar and its calls.
//! - [`config`]: settings, AUTH policy and session limits.
//! - [`serve`]: one connection from accept to close, TLS upgrades included.

mod auth;
pub mod command;
pub mod config;
mod connection;
pub mod data;
mod delivery;
pub mod params;
pub mod received;
pub mod reply;
#[cfg(test)]
mod session_tests;
pub mod state;
#[cfg(test)]
mod tests;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

pub use config::{AuthPolicy, SessionLimits, SmtpConfig, TlsOnly};
use connection::{Connection, Ended};
pub use data::BareNewline;
use state::{Rules, Session};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one SMTP connection. With `implicit_tls` the TLS handshake comes
/// first (port 465 style); otherwise the session starts in the clear and
/// may upgrade with STARTTLS.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    config: Arc<SmtpConfig>,
    shutdown: watch::Receiver<bool>,
    implicit_tls: bool,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let deadline = tokio::time::Instant::now() + config.limits.session_timeout;
    let rules = Rules {
        server_name: config.server_name.clone(),
        peer,
        limits: config.limits.clone(),
        policy: config.policy.clone(),
        tls_offered: config.tls.is_some(),
    };
    // The TLS parts are boxed: a TLS stream and its handshake are large,
    // and inline they would be part of every session's future, plaintext
    // and idle ones included.
    if implicit_tls {
        let session = Session::new(rules, true);
        return Box::pin(over_tls(stream, session, config, shutdown, deadline, true)).await;
    }
    let mut session = Session::new(rules.clone(), false);
    let ended = Connection::run(
        stream,
        &mut session,
        config.clone(),
        shutdown.clone(),
        deadline,
        true,
    )
    .await?;
    let Ended::Upgrade(stream) = ended else {
        return Ok(());
    };
    // RFC 3207 §4.2: the client starts over with EHLO; nothing learnt in the
    // clear (greeting, AUTH) survives, but the failure count does.
    let failures = session.auth_failures;
    let mut session = Session::new(rules, true);
    session.auth_failures = failures;
    Box::pin(over_tls(stream, session, config, shutdown, deadline, false)).await
}

/// The TLS handshake, then the session over TLS (with a banner when
/// `greet`: implicit TLS; after STARTTLS the client speaks first).
async fn over_tls<S>(
    stream: S,
    mut session: Session,
    config: Arc<SmtpConfig>,
    shutdown: watch::Receiver<bool>,
    deadline: tokio::time::Instant,
    greet: bool,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let stream = handshake(&config, stream).await?;
    session.external_identity = crate::tls::peer_identity(stream.get_ref().1);
    Connection::run(stream, &mut session, config, shutdown, deadline, greet).await?;
    Ok(())
}

/// Answers a connection refused at accept: 421 in the clear, or on an
/// implicit-TLS port after the handshake (a TLS client cannot read
/// plaintext; it would report a protocol error instead of "try later").
pub async fn refuse(
    mut stream: tokio::net::TcpStream,
    config: Arc<SmtpConfig>,
    implicit_tls: bool,
    why: crate::server::Refusal,
) {
    use tokio::io::AsyncWriteExt as _;
    let answer = match why {
        crate::server::Refusal::SessionCap => reply::TOO_BUSY,
        crate::server::Refusal::PerAddress => reply::TOO_MANY_FROM_ADDRESS,
    }
    .to_wire();
    if !implicit_tls {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    let Some(tls) = &config.tls else { return };
    if let Ok(mut stream) = tls.acceptor.accept(stream).await {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

async fn handshake<S>(
    config: &SmtpConfig,
    stream: S,
) -> std::io::Result<tokio_rustls::server::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(tls) = &config.tls else {
        return Err(std::io::Error::other("TLS requested but not configured"));
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

#[cfg(test)]
mod size_tests {
    use std::future::Future;

    /// The size of the future a 5-argument async fn returns, without
    /// calling it.
    fn future_size<A, B, C, D, E, F: Future>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Everything an idle session holds is in its task's future (its
    /// buffers are freed while it waits), so the future's size is most of
    /// an idle session's memory: the large futures of AUTH and delivery
    /// are boxed while they run, not part of it.
    #[test]
    fn an_idle_session_is_a_small_future() {
        let size = future_size(super::serve::<tokio::net::TcpStream>);
        println!("SMTP session future: {size} bytes");
        assert!(size <= 2048, "an SMTP session's future is {size} bytes");
    }
}
