//! The authenticating echo service of Twisted Cred's Example 9-1.
//!
//! The first line is `user pass` (or a SASL exchange, `AUTH MECH
//! [initial-response]`); after a successful login every line goes to the
//! echo avatar, which sends it back.

pub mod codec;
pub mod replies;
pub mod session;

pub use session::{EchoConfig, serve};

/// Answers a connection refused at accept with the busy line.
pub async fn refuse(mut stream: tokio::net::TcpStream, _why: crate::server::Refusal) {
    use tokio::io::AsyncWriteExt as _;
    let _ = stream
        .write_all(format!("{}\r\n", replies::BUSY).as_bytes())
        .await;
    let _ = stream.shutdown().await;
}
