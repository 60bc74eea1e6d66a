//! The Dovecot auth protocol service: spoken by hand (the handshake's
//! order, several requests on one connection, the penalty by `rip`,
//! timeouts and protocol errors), then through the real MTAs that use it,
//! Postfix (`smtpd_sasl_type = dovecot`) and Exim (`driver = dovecot`),
//! with swaks and msmtp as their clients: PLAIN, LOGIN, CRAM-MD5 and
//! SCRAM-SHA-256 through portcullis's plugins, a wrong password, a plugin
//! fault, portcullis killed and back.

use crate::common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Server, b64, describe, guest_wasm, tool};

// ---- The protocol by hand ----------------------------------------------

/// A client of the auth protocol, as an MTA is.
struct AuthClient {
    reader: BufReader<TcpStream>,
}

impl AuthClient {
    fn connect(addr: SocketAddr) -> AuthClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        AuthClient {
            reader: BufReader::new(stream),
        }
    }

    /// The next line, without its LF; `None` once the server closed.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_owned()),
        }
    }

    /// Every line up to and including `DONE`, read before writing
    /// anything (as Exim does).
    fn handshake(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line() {
            let done = line == "DONE";
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!("the handshake ended without DONE: {lines:?}");
    }

    fn send(&mut self, line: &str) {
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.line().expect("the server closed the connection")
    }

    fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let n = self.reader.read_to_end(&mut rest).unwrap_or(0);
        assert_eq!(n, 0, "expected the server to close; got {rest:?}");
    }
}

/// `ADDR` from "dovecot auth service listening on ADDR".
fn auth_address(server: &Server) -> SocketAddr {
    server
        .banner
        .lines()
        .filter_map(|l| l.split("dovecot auth service listening on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no dovecot TCP listener in:\n{}", server.banner))
}

fn auth_server(extra: &[&str]) -> Server {
    let mut args = vec![
        "--dovecot-listen",
        "127.0.0.1:0",
        "--auth",
        "memory:alice:pencil",
        "--auth-failure-delay",
        "0s",
    ];
    args.extend(extra);
    Server::start(&args)
}

fn plain(user: &str, pass: &str) -> String {
    b64(format!("\0{user}\0{pass}").as_bytes())
}

#[test]
fn the_handshake_comes_whole_and_in_order_without_waiting() {
    let server = auth_server(&[]);
    let mut c = AuthClient::connect(auth_address(&server));
    let lines = c.handshake();
    assert_eq!(lines[0], "VERSION\t1\t2", "{lines:?}");
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let first_other = kinds.iter().position(|k| *k != "VERSION" && *k != "MECH");
    assert_eq!(
        &kinds[first_other.unwrap()..],
        ["SPID", "CUID", "COOKIE", "DONE"],
        "every MECH comes before SPID: {lines:?}"
    );
    assert_eq!(lines[kinds.len() - 4], format!("SPID\t{}", server.pid()));
    let cookie = lines[kinds.len() - 2].strip_prefix("COOKIE\t").unwrap();
    assert!(
        cookie.len() == 32 && cookie.bytes().all(|b| b.is_ascii_hexdigit()),
        "{cookie}"
    );
    for want in [
        "MECH\tPLAIN\tplaintext",
        "MECH\tLOGIN\tplaintext",
        "MECH\tCRAM-MD5\tdictionary\tactive",
        "MECH\tSCRAM-SHA-256\tmutual-auth",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want:?} in {lines:?}");
    }
    // A second connection has its own CUID and cookie.
    let other = AuthClient::connect(auth_address(&server)).handshake();
    assert_ne!(other[other.len() - 3], lines[lines.len() - 3]);
    assert_ne!(other[other.len() - 2], lines[lines.len() - 2]);
}

#[test]
fn several_requests_on_one_connection_in_any_parameter_order() {
    let server = auth_server(&[]);
    let mut c = AuthClient::connect(auth_address(&server));
    c.handshake();
    c.send("VERSION\t1\t0");
    c.send("CPID\t4242");
    // Postfix's order; the mechanism in lower case.
    let ok = c.ask(&format!(
        "AUTH\t1\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp={}",
        plain("alice", "pencil")
    ));
    assert_eq!(ok, "OK\t1\tuser=alice");
    // No initial response: an empty challenge, always with its field.
    assert_eq!(
        c.ask("AUTH\t2\tPLAIN\trip=127.0.0.1\tservice=smtp"),
        "CONT\t2\t"
    );
    let denied = c.ask(&format!("CONT\t2\t{}", plain("alice", "wrong")));
    assert_eq!(denied, "FAIL\t2\tuser=alice\treason=Authentication failed.");
    // LOGIN, two challenges.
    assert_eq!(
        c.ask("AUTH\t3\tLOGIN\tservice=smtp\trip=127.0.0.1"),
        format!("CONT\t3\t{}", b64(b"Username:"))
    );
    assert_eq!(
        c.ask(&format!("CONT\t3\t{}", b64(b"alice"))),
        format!("CONT\t3\t{}", b64(b"Password:"))
    );
    assert_eq!(
        c.ask(&format!("CONT\t3\t{}", b64(b"pencil"))),
        "OK\t3\tuser=alice"
    );
    // What cannot start says why, and the connection goes on.
    assert_eq!(
        c.ask("AUTH\t4\tNOPE\tservice=smtp"),
        "FAIL\t4\treason=Unsupported authentication mechanism"
    );
    assert_eq!(
        c.ask("AUTH\t5\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=%%%"),
        "FAIL\t5\treason=Invalid base64 data in initial response"
    );
    // A CONT for a request that is not in flight.
    assert_eq!(
        c.ask("CONT\t99\tAAAA"),
        "FAIL\t99\treason=Authentication request timed out"
    );
    // Plaintext from a client off loopback that is not on TLS is refused
    // under tls-only = auto; `secured` (the MTA's TLS) allows it.
    assert_eq!(
        c.ask(&format!(
            "AUTH\t6\tPLAIN\tservice=smtp\trip=192.0.2.1\tresp={}",
            plain("alice", "pencil")
        )),
        "FAIL\t6\treason=Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    );
    assert_eq!(
        c.ask(&format!(
            "AUTH\t7\tPLAIN\tservice=smtp\trip=192.0.2.1\tsecured\tresp={}",
            plain("alice", "pencil")
        )),
        "OK\t7\tuser=alice"
    );
    let logs = server.wait_for_log("mechanism=LOGIN");
    assert!(
        logs.contains("protocol=\"dovecot\" peer=192.0.2.1:0 mechanism=PLAIN user=\"alice\""),
        "the log names the MTA's client: {logs}"
    );
}

#[test]
fn external_needs_a_verified_certificate_and_its_identity() {
    let server = auth_server(&["--auth", "external:alice"]);
    let mut c = AuthClient::connect(auth_address(&server));
    let handshake = c.handshake();
    assert!(
        handshake.iter().any(|l| l == "MECH\tEXTERNAL"),
        "{handshake:?}"
    );
    c.send("VERSION\t1\t0");
    // The certificate the MTA verified, and the identity it names.
    assert_eq!(
        c.ask("AUTH\t1\tEXTERNAL\trip=127.0.0.1\tsecured\tvalid-client-cert\tcert_username=alice\tresp=="),
        "OK\t1\tuser=alice"
    );
    // An identity the checker does not allow.
    let denied = c.ask("AUTH\t2\tEXTERNAL\trip=127.0.0.1\tsecured\tvalid-client-cert\tcert_username=mallory\tresp==");
    assert!(denied.starts_with("FAIL\t2"), "{denied}");
    // An identity without the MTA's word that it verified the
    // certificate counts for nothing.
    let denied = c.ask("AUTH\t3\tEXTERNAL\trip=127.0.0.1\tsecured\tcert_username=alice\tresp==");
    assert!(denied.starts_with("FAIL\t3"), "{denied}");
    server.wait_for_log("no verified client certificate");
}

#[test]
fn the_penalty_counts_by_the_client_the_mta_reports() {
    let server = auth_server(&["--auth-penalty", "2s", "--auth-tls-only", "no"]);
    let mut c = AuthClient::connect(auth_address(&server));
    c.handshake();
    c.send("VERSION\t1\t0");
    let wrong = plain("alice", "wrong");
    // The first failure from 192.0.2.7 arms its penalty.
    c.ask(&format!("AUTH\t1\tPLAIN\trip=192.0.2.7\tresp={wrong}"));
    // The second is held back; meanwhile another client's request, sent
    // after it on the same connection, is answered first.
    let started = Instant::now();
    c.send(&format!("AUTH\t2\tPLAIN\trip=192.0.2.7\tresp={wrong}"));
    c.send(&format!(
        "AUTH\t3\tPLAIN\trip=198.51.100.1\tresp={}",
        plain("alice", "pencil")
    ));
    assert_eq!(c.line().unwrap(), "OK\t3\tuser=alice");
    assert_eq!(
        c.line().unwrap(),
        "FAIL\t2\tuser=alice\treason=Authentication failed."
    );
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

#[test]
fn an_exchange_left_waiting_times_out() {
    let server = auth_server(&["--auth-step-timeout", "1s"]);
    let mut c = AuthClient::connect(auth_address(&server));
    c.handshake();
    c.send("VERSION\t1\t0");
    assert_eq!(c.ask("AUTH\t1\tPLAIN\trip=127.0.0.1"), "CONT\t1\t");
    assert_eq!(
        c.line().unwrap(),
        "FAIL\t1\treason=Authentication request timed out"
    );
    // The CONT that comes too late gets the same answer.
    assert_eq!(
        c.ask(&format!("CONT\t1\t{}", plain("alice", "pencil"))),
        "FAIL\t1\treason=Authentication request timed out"
    );
    server.wait_for_log("SASL exchange timed out");
}

#[test]
fn protocol_errors_and_strangers_are_closed_with_a_log_line() {
    let server = auth_server(&["--dovecot-trusted", "127.0.0.0/8"]);
    let addr = auth_address(&server);
    for (bad, log) in [
        ("HELLO\tthere", "unknown command \"HELLO\""),
        ("AUTH\t1\tPLAIN", "AUTH before VERSION"),
        ("VERSION\t2\t0", "protocol version 2.0"),
    ] {
        let mut c = AuthClient::connect(addr);
        c.handshake();
        c.send(bad);
        c.expect_closed();
        server.wait_for_log(log);
    }
    // A duplicate id of a request in flight.
    let mut c = AuthClient::connect(addr);
    c.handshake();
    c.send("VERSION\t1\t0");
    assert_eq!(c.ask("AUTH\t1\tPLAIN\trip=127.0.0.1"), "CONT\t1\t");
    c.send("AUTH\t1\tPLAIN\trip=127.0.0.1");
    c.expect_closed();
    // A line past the limit.
    let mut c = AuthClient::connect(addr);
    c.handshake();
    c.send(&"A".repeat(40 << 10));
    c.expect_closed();
    server.wait_for_log("line too long");

    // A peer outside the trusted networks gets no handshake.
    let strangers = auth_server(&["--dovecot-trusted", "10.0.0.0/8"]);
    let mut c = AuthClient::connect(auth_address(&strangers));
    c.expect_closed();
    strangers.wait_for_log("outside [dovecot] trusted-networks");
}

// ---- Through the real MTAs ----------------------------------------------

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A folder the MTA's own user may enter.
fn shared_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// portcullis with one Dovecot auth socket at `socket`, owned by `owner`.
fn socket_server(dir: &Path, socket: &Path, owner: &str, auth: &str) -> Server {
    let config = dir.join(format!("portcullis-{owner}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nprotocol = \"dovecot\"\npath = \"{}\"\nowner = \"{owner}\"\nmode = \"0600\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let server = Server::start(&[
        "--config",
        config.to_str().unwrap(),
        "--auth",
        auth,
        "--auth-failure-delay",
        "0s",
    ]);
    server.wait_for_stdout(&format!(
        "dovecot auth service listening on {}",
        socket.display()
    ));
    server
}

/// A private Postfix whose smtpd asks portcullis, over `socket`.
struct Postfix {
    config: PathBuf,
    port: u16,
}

impl Postfix {
    fn start(dir: &Path, socket: &Path) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is not installed; run `sh tests/setup.sh` (as root) first"
        );
        let root = dir.join("postfix");
        let config = root.join("etc");
        for sub in ["etc", "queue", "data"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let port = free_port();
        let r = root.display();
        std::fs::write(
            config.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {r}/queue\n\
                 data_directory = {r}/data\n\
                 meta_directory = /etc/postfix\n\
                 maillog_file = {r}/maillog\n\
                 maillog_file_prefixes = {r}\n\
                 myhostname = mta.test\n\
                 mydestination =\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 smtputf8_enable = no\n\
                 default_transport = discard\n\
                 smtpd_sasl_auth_enable = yes\n\
                 smtpd_sasl_type = dovecot\n\
                 smtpd_sasl_path = {}\n\
                 smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
                socket.display()
            ),
        )
        .unwrap();
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "proxymap unix - - n - - proxymap",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "discard unix - - n - - discard",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        std::fs::write(
            config.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
                services.join("\n")
            ),
        )
        .unwrap();
        let postfix = Postfix { config, port };
        postfix.run(&["set-permissions"]);
        postfix.run(&["start"]);
        wait_for_port(port);
        postfix
    }

    fn run(&self, args: &[&str]) {
        let output = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "postfix {args:?}: {}",
            describe(&output)
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .output();
    }
}

/// A private Exim (the heavy daemon setup.sh unpacks) whose dovecot
/// authenticators ask portcullis, over `socket`.
struct Exim {
    pid_file: PathBuf,
    port: u16,
}

const EXIM: &str = "/opt/portcullis-exim/usr/sbin/exim4";

impl Exim {
    fn start(dir: &Path, socket: &Path) -> Exim {
        assert!(
            Path::new(EXIM).exists(),
            "Exim is not unpacked; run `sh tests/setup.sh` (as root) first"
        );
        let root = dir.join("exim");
        for sub in ["spool", "log"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["-R", "Debian-exim:Debian-exim"])
            .arg(&root)
            .status()
            .unwrap();
        assert!(chown.success());
        let port = free_port();
        let r = root.display();
        let mut config = format!(
            "keep_environment =\n\
             exim_path = {EXIM}\n\
             spool_directory = {r}/spool\n\
             log_file_path = {r}/log/%slog\n\
             exim_user = Debian-exim\n\
             exim_group = Debian-exim\n\
             primary_hostname = exim.test\n\
             local_interfaces = 127.0.0.1\n\
             queue_only = true\n\
             acl_smtp_rcpt = acl_rcpt\n\
             begin acl\n\
             acl_rcpt:\n  accept authenticated = *\n  deny\n\
             begin authenticators\n"
        );
        for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
            config.push_str(&format!(
                "{}:\n  driver = dovecot\n  public_name = {mech}\n  server_socket = {}\n  server_set_id = $auth1\n",
                mech.to_lowercase().replace('-', "_"),
                socket.display()
            ));
        }
        let file = root.join("exim.conf");
        std::fs::write(&file, config).unwrap();
        let pid_file = root.join("exim.pid");
        let output = Command::new(EXIM)
            .arg("-C")
            .arg(&file)
            .args(["-bd", "-oX", &port.to_string(), "-oP"])
            .arg(&pid_file)
            .output()
            .unwrap();
        assert!(output.status.success(), "exim: {}", describe(&output));
        wait_for_port(port);
        Exim { pid_file, port }
    }
}

impl Drop for Exim {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn wait_for_port(port: u16) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// swaks authenticating to the MTA on `port`; its whole transcript.
fn swaks(port: u16, mech: &str, user: &str, password: &str) -> Output {
    tool("swaks")
        .args(["--server", &format!("127.0.0.1:{port}")])
        .args([
            "--auth",
            mech,
            "--auth-user",
            user,
            "--auth-password",
            password,
        ])
        .args(["--quit-after", "AUTH", "--timeout", "20"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The code of the MTA's last reply to AUTH in a swaks transcript.
fn auth_code(output: &Output) -> u16 {
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start_matches(['<', '~', '*', '-', ' ']);
            l.get(..3)?.parse::<u16>().ok()
        })
        .rfind(|code| *code == 235 || *code == 535 || (400..500).contains(code))
        .unwrap_or_else(|| panic!("no AUTH reply in:\n{}", describe(output)))
}

/// msmtp sending one message with SCRAM-SHA-256 through the MTA.
fn msmtp_scram(port: u16, password: &str, dir: &Path) -> Output {
    let mut child = tool("msmtp")
        .args(["--host=127.0.0.1", &format!("--port={port}"), "--tls=off"])
        .args(["--auth=scram-sha-256", "--user=alice"])
        .arg(format!("--passwordeval=echo {password}"))
        .args(["--from=a@example.com", "b@example.net"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: scram\r\n\r\nhello\r\n")
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Retries an AUTH a few times: an MTA process that held a connection to
/// a portcullis that went away answers its next client 454 once, then
/// connects anew.
fn eventually(port: u16, mech: &str, user: &str, password: &str, want: u16) -> u16 {
    let mut code = 0;
    for _ in 0..5 {
        code = auth_code(&swaks(port, mech, user, password));
        if code == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    code
}

/// The whole story against one MTA on `port`, whose authenticator talks
/// to `socket`: every mechanism, a wrong password, portcullis gone, a
/// checker that faults, and back. `temporary` is the MTA's code for an
/// authentication it could not complete (Postfix 454, Exim 435).
fn mta_story(dir: &Path, socket: &Path, owner: &str, port: u16, temporary: u16) {
    let server = socket_server(dir, socket, owner, "memory:alice:pencil");
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5"] {
        let output = swaks(port, mech, "alice", "pencil");
        assert_eq!(auth_code(&output), 235, "{mech}: {}", describe(&output));
    }
    let output = msmtp_scram(port, "pencil", dir);
    assert!(
        output.status.success(),
        "SCRAM-SHA-256: {}",
        describe(&output)
    );
    for mech in ["PLAIN", "CRAM-MD5"] {
        let output = swaks(port, mech, "alice", "wrong");
        assert_eq!(auth_code(&output), 535, "{mech}: {}", describe(&output));
    }
    let output = msmtp_scram(port, "wrong", dir);
    assert!(!output.status.success(), "{}", describe(&output));
    let logs = server.wait_for_log("the client's proof is wrong");
    for mech in ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"] {
        assert!(
            logs.contains(&format!(
                "protocol=\"dovecot\" peer=127.0.0.1:0 mechanism={mech} user=\"alice\""
            )),
            "{mech} went through portcullis: {logs}"
        );
    }

    // portcullis gone: a temporary failure, never a 535.
    drop(server);
    let code = auth_code(&swaks(port, "PLAIN", "alice", "pencil"));
    assert_eq!(code, temporary, "with portcullis down");

    // Back, with a checker that faults on request: the fault is a
    // temporary failure too, and the socket left behind is replaced.
    let spec = format!("wasm:{}", guest_wasm("trap-checker").display());
    let server = socket_server(dir, socket, owner, &spec);
    assert_eq!(eventually(port, "PLAIN", "ok", "pw", 235), 235, "recovered");
    assert_eq!(auth_code(&swaks(port, "PLAIN", "deny", "pw")), 535);
    let output = swaks(port, "PLAIN", "panic", "pw");
    assert_eq!(auth_code(&output), temporary, "{}", describe(&output));
    server.wait_for_log("authentication failed: plugin fault");
    assert_eq!(eventually(port, "PLAIN", "ok", "pw", 235), 235);
}

#[test]
fn postfix_authenticates_through_portcullis() {
    let dir = shared_dir();
    let socket = dir.path().join("auth");
    let postfix = Postfix::start(dir.path(), &socket);
    mta_story(dir.path(), &socket, "postfix", postfix.port, 454);
}

#[test]
fn exim_authenticates_through_portcullis() {
    let dir = shared_dir();
    let socket = dir.path().join("auth");
    let exim = Exim::start(dir.path(), &socket);
    mta_story(dir.path(), &socket, "Debian-exim", exim.port, 435);
}
