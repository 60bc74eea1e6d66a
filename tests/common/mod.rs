//! The harness every integration test uses: start the real `portcullis`
//! binary on a port the OS picks, talk to it over TCP, read its logs.

#![allow(dead_code)]

pub mod mta;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    /// The echo service.
    pub addr: SocketAddr,
    /// The SMTP service (STARTTLS).
    pub smtp: SocketAddr,
    /// The implicit-TLS SMTP listener, when `--smtps-listen` was given.
    pub smtps: Option<SocketAddr>,
    /// What the server printed on stdout at start-up.
    pub banner: String,
    log: tempfile::NamedTempFile,
    /// Holds the generated certificate (unless the test gave its own).
    dir: tempfile::TempDir,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
}

/// How a server that should not start failed.
#[derive(Debug)]
pub struct StartFailure {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Server {
    /// Starts the server with these arguments (plus a port-0 listener).
    pub fn start(args: &[&str]) -> Server {
        match Server::try_start(args) {
            Ok(s) => s,
            Err(f) => panic!("server did not start (exit {:?}):\n{}", f.code, f.stderr),
        }
    }

    // The child is waited for on every failure path here, and by Server's
    // Drop otherwise.
    #[allow(clippy::zombie_processes)]
    pub fn try_start(args: &[&str]) -> Result<Server, StartFailure> {
        let log = tempfile::NamedTempFile::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut base = vec![
            "--echo-listen",
            "127.0.0.1:0",
            "--log",
            "info,portcullis=debug",
        ];
        // Compiled plugins are cached beside the build, not in $HOME.
        let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/plugin-cache");
        if !args.contains(&"--cache-dir") && !args.contains(&"--no-cache") {
            base.extend(["--cache-dir", cache]);
        }
        if !args.contains(&"--smtp-listen") {
            base.extend(["--smtp-listen", "127.0.0.1:0"]);
        }
        let cert_out = dir.path().join("cert.pem");
        let cert_out = cert_out.to_str().unwrap();
        if !args.contains(&"--tls-cert") {
            base.extend(["--tls-cert-out", cert_out]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(base)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.reopen().unwrap()))
            .spawn()
            .expect("starting portcullis");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let status = child.wait().unwrap();
                let mut stderr = String::new();
                log.reopen().unwrap().read_to_string(&mut stderr).unwrap();
                return Err(StartFailure {
                    code: status.code(),
                    stderr,
                });
            }
            banner.push_str(&line);
            if let Some(addr) = listening_on(&line, "echo") {
                let smtp = listening_on(&banner, "smtp").expect("no SMTP listener in the banner");
                let smtps = listening_on(&banner, "smtps");
                // Keep draining stdout so the server never blocks on it,
                // and keep what it prints (the console realm's messages).
                let printed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
                let sink = printed.clone();
                std::thread::spawn(move || {
                    let mut line = String::new();
                    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
                        sink.lock().unwrap().push_str(&line);
                        line.clear();
                    }
                });
                return Ok(Server {
                    child,
                    addr,
                    smtp,
                    smtps,
                    banner,
                    log,
                    dir,
                    stdout: printed,
                });
            }
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A raw connection to the SMTP service, greeting read.
    pub fn smtp_client(&self) -> Client {
        let mut client = Client::connect(self.smtp);
        let greeting = client.reply();
        assert_eq!(greeting.code, 220, "{greeting:?}");
        client
    }

    /// GETs the metrics page (`--metrics-listen` must have been given).
    pub fn metrics(&self) -> String {
        let addr = self
            .banner
            .split("metrics listening on http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("no metrics listener in the banner");
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        response
    }

    /// The generated self-signed certificate (PEM) the server uses.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// What the server printed on stdout after start-up.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stdout contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        for _ in 0..200 {
            let out = self.stdout();
            if out.contains(needle) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("stdout never said {needle:?}:\n{}", self.stdout());
    }

    /// Sends SIGTERM, as an init system would.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (TERM, HUP, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not exit within {limit:?}");
    }

    /// Everything the server has logged so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        self.log
            .reopen()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    /// Waits until the logs contain `needle` (logs are written after the
    /// reply is sent).
    pub fn wait_for_log(&self, needle: &str) -> String {
        for _ in 0..200 {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("the logs never said {needle:?}:\n{}", self.logs());
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Server at {}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line-based TCP client with timeouts.
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connecting to the server"))
    }

    /// A client over a stream connected some other way (from another
    /// source address, say).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Connects from the local address `source` (any 127.0.0.0/8 address
    /// works on Linux), so the server sees another client address.
    pub fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let stream = runtime
            .block_on(async {
                let socket = match source {
                    std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket.bind(SocketAddr::new(source, 0))?;
                socket.connect(addr).await?.into_std()
            })
            .unwrap_or_else(|e| panic!("connecting from {source} to {addr}: {e}"));
        stream.set_nonblocking(false).unwrap();
        Client::from_stream(stream)
    }

    /// Sets how long a read may wait for the server.
    pub fn set_read_timeout(&self, limit: Duration) {
        self.writer.set_read_timeout(Some(limit)).unwrap();
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    pub fn send_bytes(&mut self, line: &[u8]) {
        let mut data = line.to_vec();
        data.extend_from_slice(b"\r\n");
        self.writer.write_all(&data).unwrap();
    }

    /// The TCP stream, for a TLS upgrade (nothing may be buffered).
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.reader.buffer().is_empty(),
            "unread data before the upgrade"
        );
        self.writer
    }

    /// Sends bytes as they are, no line ending added.
    pub fn send_raw(&mut self, data: &[u8]) {
        self.writer.write_all(data).unwrap();
    }

    /// The next line without its line ending; `None` once the server
    /// closed the connection.
    pub fn recv(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    /// Like [`Client::recv`], but `None` also when nothing arrives within
    /// the read timeout.
    pub fn recv_or_timeout(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("reading from the server: {e}"),
        }
    }

    /// Sends a line and returns the reply.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.recv().expect("the server closed the connection")
    }

    /// One SMTP reply, all its lines.
    pub fn reply(&mut self) -> SmtpReply {
        let mut lines = Vec::new();
        loop {
            let line = self
                .recv()
                .expect("the server closed the connection mid-reply");
            assert!(line.len() >= 3, "short reply line {line:?}");
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        let code = lines[0][..3].parse().expect("reply code");
        SmtpReply { code, lines }
    }

    /// Sends a command and returns the SMTP reply.
    pub fn cmd(&mut self, line: &str) -> SmtpReply {
        self.send(line);
        self.reply()
    }

    /// Asserts the server closes the connection next.
    pub fn expect_closed(&mut self) {
        assert_eq!(
            self.recv(),
            None,
            "the server should have closed the connection"
        );
    }
}

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct SmtpReply {
    pub code: u16,
    /// The lines as sent, `250-…` included.
    pub lines: Vec<String>,
}

impl SmtpReply {
    /// The text after the code, of every line, joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .lines
            .iter()
            .map(|l| l.get(4..).unwrap_or(""))
            .collect();
        texts.join("\n")
    }

    /// The enhanced status code of the first line, if any.
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines[0].get(4..)?.split(' ').next()?;
        first
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
            .then_some(first)
            .filter(|e| e.matches('.').count() == 2)
    }

    /// Asserts the code and enhanced code.
    #[track_caller]
    pub fn expect(&self, code: u16, enhanced: Option<&str>) -> &Self {
        assert_eq!(
            (self.code, self.enhanced()),
            (code, enhanced),
            "unexpected reply {:?}",
            self.lines
        );
        self
    }
}

/// `addr` from "NAME service listening on ADDR" in the banner.
fn listening_on(banner: &str, name: &str) -> Option<SocketAddr> {
    let rest = banner
        .split(&format!("{name} service listening on "))
        .nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A client program the tests drive; tests/setup.sh installs them.
pub fn tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is not installed; run `sh tests/setup.sh` (as root) first"
    );
    Command::new(name)
}

/// A finished client's exit code and output, for assertion messages.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A guest component built by build.rs (a built-in or a test fixture).
pub fn guest_wasm(crate_name: &str) -> PathBuf {
    let path = PathBuf::from(env!("PORTCULLIS_GUEST_DIR"))
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub const LOGIN_OK: &str = "Login successful, please proceed.";
pub const LOGIN_DENIED: &str = "Login denied, goodbye.";
pub const TEMPORARY: &str =
    "Authentication is temporarily unavailable, please try again later. Goodbye.";

/// A line client over TLS, trusting the server's generated certificate.
pub struct TlsClient {
    stream: BufReader<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>,
}

impl TlsClient {
    pub fn upgrade(client: Client, cert: &std::path::Path) -> TlsClient {
        TlsClient::connect(client.into_stream(), cert)
    }

    pub fn connect(tcp: TcpStream, cert: &std::path::Path) -> TlsClient {
        TlsClient::connect_as(tcp, cert, None)
    }

    /// Connects presenting a client certificate chain and key (DER).
    pub fn connect_as(
        tcp: TcpStream,
        cert: &std::path::Path,
        identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    ) -> TlsClient {
        use rustls::pki_types::pem::PemObject;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => config.with_no_client_auth(),
            Some((chain, key)) => config
                .with_client_auth_cert(
                    chain.into_iter().map(Into::into).collect(),
                    rustls::pki_types::PrivateKeyDer::try_from(key).unwrap(),
                )
                .unwrap(),
        };
        let name = "127.0.0.1".try_into().unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        TlsClient {
            stream: BufReader::new(rustls::StreamOwned::new(conn, tcp)),
        }
    }

    pub fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\r\n").unwrap();
        stream.flush().unwrap();
    }

    pub fn reply(&mut self) -> SmtpReply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(self.stream.read_line(&mut line).unwrap() > 0, "closed");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        SmtpReply {
            code: lines[0][..3].parse().unwrap(),
            lines,
        }
    }

    pub fn cmd(&mut self, line: &str) -> SmtpReply {
        self.send(line);
        self.reply()
    }

    /// Sends a line and reads one back, reporting failures (a refused
    /// handshake) instead of panicking.
    pub fn try_line(&mut self, line: &str) -> std::io::Result<String> {
        let stream = self.stream.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes())?;
        stream.flush()?;
        let mut reply = String::new();
        match self.stream.read_line(&mut reply)? {
            0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(reply),
        }
    }
}
