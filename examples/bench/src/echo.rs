//! The echo side of the load: logins (connect, `user pass`, one line back,
//! close) and lines over persistent logged-in connections; and the bare
//! tokio line echo with no authentication that is their ceiling.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The line a successful login gets; the bare echo answers with the login
/// line itself.
pub const LOGIN_OK: &str = "Login successful, please proceed.";

/// A logged-in connection.
pub struct Echo {
    reader: BufReader<TcpStream>,
    line: String,
}

impl Echo {
    /// Connects and logs in; `bare` accepts the echoed login line.
    pub async fn login(
        addr: SocketAddr,
        user: &str,
        pass: &str,
        bare: bool,
    ) -> anyhow::Result<Echo> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let mut echo = Echo {
            reader: BufReader::new(stream),
            line: String::new(),
        };
        let login = format!("{user} {pass}");
        echo.reader
            .get_mut()
            .write_all(format!("{login}\r\n").as_bytes())
            .await?;
        let got = echo.read_line().await?;
        let want = if bare { login.as_str() } else { LOGIN_OK };
        if got != want {
            bail!("login: expected {want:?}, got {got:?}");
        }
        Ok(echo)
    }

    async fn read_line(&mut self) -> anyhow::Result<&str> {
        self.line.clear();
        if self.reader.read_line(&mut self.line).await? == 0 {
            bail!("connection closed");
        }
        Ok(self.line.trim_end_matches(['\r', '\n']))
    }

    /// Sends `count` lines in batches of `batch`, reading each batch's
    /// echoes before the next; checks every echo.
    pub async fn lines(&mut self, count: usize, batch: usize) -> anyhow::Result<()> {
        let mut sent = 0;
        let mut buf = Vec::with_capacity(batch * 48);
        while sent < count {
            let n = batch.min(count - sent);
            buf.clear();
            for i in sent..sent + n {
                buf.extend_from_slice(
                    format!("line {i} of the benchmark's echo test\r\n").as_bytes(),
                );
            }
            self.reader.get_mut().write_all(&buf).await?;
            for i in sent..sent + n {
                let want = format!("line {i} of the benchmark's echo test");
                let got = self.read_line().await?;
                if got != want {
                    bail!("echo: expected {want:?}, got {got:?}");
                }
            }
            sent += n;
        }
        Ok(())
    }
}

/// `conns` connections log in, then each echoes `lines` lines; returns the
/// lines per second over the echo phase and how long it took.
pub async fn lines_per_second(
    addr: SocketAddr,
    user: &str,
    pass: &str,
    bare: bool,
    conns: usize,
    lines: usize,
    batch: usize,
) -> anyhow::Result<(f64, Duration)> {
    let mut logged_in = Vec::with_capacity(conns);
    for _ in 0..conns {
        logged_in.push(Echo::login(addr, user, pass, bare).await?);
    }
    let begin = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut echo in logged_in {
        tasks.spawn(async move { echo.lines(lines, batch).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let took = begin.elapsed();
    Ok(((conns * lines) as f64 / took.as_secs_f64(), took))
}

/// The ceiling: a tokio line echo with no authentication. Serves until the
/// process ends.
pub async fn bare_server(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut write = tokio::io::BufWriter::new(write);
            let mut line = Vec::with_capacity(128);
            loop {
                line.clear();
                match read.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if write.write_all(&line).await.is_err() {
                    break;
                }
                // Flush once the lines already read are all answered.
                if read.buffer().is_empty() && write.flush().await.is_err() {
                    break;
                }
            }
        });
    }
}
