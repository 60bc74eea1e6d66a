//! The harness every integration test uses: start the real `portcullis`
//! binary on a port the OS picks, talk to it over TCP, read its logs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

/// A running server; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// What the server printed on stdout at start-up.
    pub banner: String,
    log: tempfile::NamedTempFile,
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "--echo-listen",
                "127.0.0.1:0",
                "--log",
                "info,portcullis=debug",
            ])
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
            if let Some(rest) = line.split("echo service listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                // Keep draining stdout so the server never blocks on it.
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = stdout.read_to_end(&mut sink);
                });
                return Ok(Server {
                    child,
                    addr,
                    banner,
                    log,
                });
            }
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
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
        let stream = TcpStream::connect(addr).expect("connecting to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    pub fn send_bytes(&mut self, line: &[u8]) {
        let mut data = line.to_vec();
        data.extend_from_slice(b"\r\n");
        self.writer.write_all(&data).unwrap();
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

    /// Sends a line and returns the reply.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.recv().expect("the server closed the connection")
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
