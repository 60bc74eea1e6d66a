//! The SMTP side of the load: one login is `connect → EHLO → AUTH → QUIT`,
//! each command sent on its own (no pipelining, for every server alike).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::scram::ScramClient;

/// How the client authenticates.
#[derive(Clone)]
pub enum Mech {
    /// `AUTH PLAIN` with an initial response.
    Plain { user: String, pass: String },
    /// SCRAM-SHA-256 with an initial response; the salted password is
    /// cached per salt, as RFC 5802 lets a client do.
    Scram(Arc<ScramClient>),
}

/// A connection reading SMTP replies.
pub struct Conn {
    reader: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
            line: String::new(),
        })
    }

    /// Reads one reply, all its lines; returns its code and last line's text.
    pub async fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        loop {
            self.line.clear();
            if self.reader.read_line(&mut self.line).await? == 0 {
                bail!("connection closed while waiting for a reply");
            }
            let l = self.line.trim_end();
            if l.len() < 3 {
                bail!("short reply line {l:?}");
            }
            let code: u16 = l[..3].parse().with_context(|| format!("bad reply {l:?}"))?;
            if l.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, l.get(4..).unwrap_or("").to_owned()));
            }
        }
    }

    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        let w = self.reader.get_mut();
        w.write_all(line.as_bytes()).await?;
        w.write_all(b"\r\n").await?;
        Ok(())
    }

    /// Sends a command and expects a reply code.
    pub async fn command(&mut self, line: &str, want: u16) -> anyhow::Result<String> {
        self.send(line).await?;
        self.expect(want, line).await
    }

    pub async fn expect(&mut self, want: u16, after: &str) -> anyhow::Result<String> {
        let (code, text) = self.reply().await?;
        if code != want {
            let what = after.split(' ').next().unwrap_or(after);
            bail!("{what}: expected {want}, got {code} {text}");
        }
        Ok(text)
    }
}

/// One whole login.
pub async fn login(addr: SocketAddr, mech: &Mech) -> anyhow::Result<()> {
    let mut c = Conn::open(addr).await?;
    c.expect(220, "greeting").await?;
    c.command("EHLO bench.invalid", 250).await?;
    match mech {
        Mech::Plain { user, pass } => {
            let ir = B64.encode(format!("\0{user}\0{pass}"));
            // smtp-sink answers 250 to anything, AUTH included.
            c.send(&format!("AUTH PLAIN {ir}")).await?;
            let (code, text) = c.reply().await?;
            if !(code == 235 || code == 250) {
                bail!("AUTH PLAIN: expected 235, got {code} {text}");
            }
        }
        Mech::Scram(client) => scram(&mut c, client).await?,
    }
    c.command("QUIT", 221).await?;
    Ok(())
}

async fn scram(c: &mut Conn, client: &ScramClient) -> anyhow::Result<()> {
    let mut exchange = client.start();
    let first = B64.encode(exchange.client_first());
    let server_first = c
        .command(&format!("AUTH SCRAM-SHA-256 {first}"), 334)
        .await?;
    let server_first = B64
        .decode(server_first.trim())
        .context("server-first base64")?;
    let client_final = exchange.client_final(&server_first)?;
    let server_final = c.command(&B64.encode(client_final), 334).await?;
    let server_final = B64
        .decode(server_final.trim())
        .context("server-final base64")?;
    exchange.verify_server(&server_final)?;
    c.command("", 235).await?;
    Ok(())
}
