//! The PROXY protocol (issue 14): headers written by hand, v1 and v2,
//! LOCAL, malformed, missing, slow, and from an untrusted peer; the client
//! a header names is the client in the logs, the Received header, the
//! per-address limit, the penalty and the metrics. HAProxy itself sends
//! them in `tests/fleet.rs`.

use crate::common;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Client, Server, TlsClient, b64};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// A v2 PROXY header for a TCP connection from `client` (to 10.0.0.1:25).
pub fn v2_header(client: SocketAddr) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x21); // version 2, PROXY
    match client.ip() {
        IpAddr::V4(ip) => {
            h.push(0x11); // TCP over IPv4
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&ip.octets());
            h.extend_from_slice(&[10, 0, 0, 1]);
        }
        IpAddr::V6(ip) => {
            h.push(0x21); // TCP over IPv6
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&ip.octets());
            h.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        }
    }
    h.extend_from_slice(&client.port().to_be_bytes());
    h.extend_from_slice(&25u16.to_be_bytes());
    h
}

/// A v2 LOCAL header (what HAProxy's health checks send).
fn v2_local() -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x20, 0x00, 0, 0]);
    h
}

fn proxied_server(extra: &[&str]) -> Server {
    let mut args = vec![
        "--proxy-protocol",
        "--proxy-trusted-networks",
        "127.0.0.0/8",
        "--auth",
        "memory:alice:secret",
        "--auth-failure-delay",
        "0s",
        "--auth-tls-only",
        "no",
        "--auth-penalty",
        "200ms",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Connects, sends `header`, and reads the greeting.
fn smtp_via(addr: SocketAddr, header: &[u8]) -> Client {
    let mut c = Client::connect(addr);
    c.send_raw(header);
    c.reply().code_is(220);
    c
}

/// One failed AUTH PLAIN; how long the 535 took.
fn failed_login(c: &mut Client) -> Duration {
    failed_login_as(c, "alice")
}

fn failed_login_as(c: &mut Client, user: &str) -> Duration {
    c.cmd("EHLO client.example").code_is(250);
    let started = Instant::now();
    c.cmd(&format!(
        "AUTH PLAIN {}",
        b64(format!("\0{user}\0wrong").as_bytes())
    ))
    .expect(535, Some("5.7.8"));
    started.elapsed()
}

fn counter(metrics: &str, line_start: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_v2_header_makes_its_client_the_peer_in_logs_received_penalty_and_metrics() {
    let server = proxied_server(&[]);
    let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();

    // The penalty doubles per proxied address across connections, though
    // every connection comes from 127.0.0.1 (which is exempt by default).
    let mut c = smtp_via(server.smtp, &v2_header(client));
    let first = failed_login(&mut c);
    let mut c = smtp_via(server.smtp, &v2_header(client));
    let second = failed_login(&mut c);
    assert!(first >= Duration::from_millis(200), "{first:?}");
    assert!(second >= Duration::from_millis(400), "{second:?}");
    let mut other = smtp_via(server.smtp, &v2_header("198.51.100.1:1".parse().unwrap()));
    let fresh = failed_login_as(&mut other, "bob");
    assert!(
        fresh < Duration::from_millis(400),
        "another client: {fresh:?}"
    );
    server.wait_for_log("peer=192.0.2.7:40000");

    // The Received header names the client, not the proxy.
    let mut c = smtp_via(server.smtp, &v2_header(client));
    c.cmd("EHLO client.example").code_is(250);
    c.cmd(&format!("AUTH PLAIN {}", b64(b"\0alice\0secret")))
        .code_is(235);
    c.cmd("MAIL FROM:<a@example.com>").code_is(250);
    c.cmd("RCPT TO:<console@localhost>").code_is(250);
    c.cmd("DATA").code_is(354);
    c.send_raw(b"Subject: via proxy\r\n\r\nhello\r\n.\r\n");
    c.reply().code_is(250);
    c.cmd("QUIT").code_is(221);
    let printed = wait_for(|| {
        let out = server.stdout();
        out.contains("hello").then_some(out)
    });
    let received = printed
        .lines()
        .find(|l| l.starts_with("Received:"))
        .unwrap_or_else(|| panic!("no Received header in:\n{printed}"));
    assert!(
        printed.contains("192.0.2.7"),
        "Received names the client: {received}\n{printed}"
    );
    assert!(!received.contains("127.0.0.1"), "{received}");

    let metrics = server.metrics();
    assert!(
        counter(
            &metrics,
            "portcullis_proxy_headers_total{outcome=\"client\"}"
        ) >= 4,
        "{metrics}"
    );
}

#[test]
fn v1_headers_work_and_a_v2_local_health_check_is_served_without_counting() {
    let server = proxied_server(&[]);
    let mut c = smtp_via(
        server.smtp,
        b"PROXY TCP4 198.51.100.9 10.0.0.1 50000 25\r\n",
    );
    failed_login(&mut c);
    server.wait_for_log("peer=198.51.100.9:50000");
    let mut c = smtp_via(
        server.smtp,
        b"PROXY TCP6 2001:db8::5 2001:db8::1 50001 25\r\n",
    );
    c.cmd("QUIT").code_is(221);
    server.wait_for_log("peer=[2001:db8::5]:50001");

    let before = server.metrics();
    let mut health = smtp_via(server.smtp, &v2_local());
    health.cmd("QUIT").code_is(221);
    // The echo service takes headers too.
    let mut echo = Client::connect(server.addr);
    echo.send_raw(&v2_header("203.0.113.3:3".parse().unwrap()));
    assert_eq!(echo.ask("alice secret"), common::LOGIN_OK);
    server.wait_for_log("peer=203.0.113.3:3");
    let after = server.metrics();
    let smtp_sessions = "portcullis_sessions_total{protocol=\"smtp\"}";
    assert_eq!(
        counter(&before, smtp_sessions),
        counter(&after, smtp_sessions),
        "a health check is not a session:\n{after}"
    );
    assert_eq!(
        counter(&after, "portcullis_proxy_headers_total{outcome=\"local\"}"),
        1,
        "{after}"
    );
}

/// Connects, sends `bytes`, and expects the server to close without a
/// word within `limit`.
fn expect_closed_silently(addr: SocketAddr, bytes: &[u8], limit: Duration) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let _ = stream.write_all(bytes);
    let mut buf = [0u8; 64];
    // Closed with our bytes unread, the kernel may answer with a reset.
    let n = match std::io::Read::read(&mut stream, &mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("not closed within {limit:?} after {bytes:?}: {e}"),
    };
    assert_eq!(n, 0, "got {:?}", String::from_utf8_lossy(&buf[..n]));
    started.elapsed()
}

#[test]
fn missing_malformed_slow_and_untrusted_headers_are_closed_with_a_log_line() {
    let server = proxied_server(&[]);
    let quick = Duration::from_secs(2);
    expect_closed_silently(server.smtp, b"EHLO x.example\r\n", quick);
    server.wait_for_log("does not start with a PROXY protocol header");
    expect_closed_silently(
        server.smtp,
        b"PROXY TCP4 192.0.2.999 10.0.0.1 1 2\r\n",
        quick,
    );
    server.wait_for_log("malformed PROXY protocol header");
    let mut long = b"PROXY TCP4 ".to_vec();
    long.extend_from_slice(&[b'9'; 200]);
    expect_closed_silently(server.smtp, &long, quick);
    server.wait_for_log("PROXY protocol header longer than 107 octets");

    // Slowloris: half a header, then nothing. Closed after about 3 s, and
    // meanwhile everyone else is served.
    let slow = std::thread::spawn({
        let addr = server.smtp;
        move || expect_closed_silently(addr, b"PROXY TCP4 192.0.2.1 ", Duration::from_secs(6))
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut c = smtp_via(server.smtp, &v2_header("192.0.2.50:5".parse().unwrap()));
    c.cmd("QUIT").code_is(221);
    let took = slow.join().unwrap();
    assert!(
        took >= Duration::from_millis(2900),
        "{took:?}\n{}",
        server.logs()
    );
    server.wait_for_log("no complete PROXY protocol header within 3 s");

    // A peer outside proxy-trusted-networks is closed at once, header or not.
    let strict = Server::start(&["--proxy-protocol", "--proxy-trusted-networks", "10.0.0.0/8"]);
    let header = v2_header("192.0.2.7:1".parse().unwrap());
    expect_closed_silently(strict.smtp, &header, quick);
    strict.wait_for_log("peer not in proxy-trusted-networks; closing");
}

#[test]
fn the_per_address_limit_counts_the_proxied_client_not_the_proxy() {
    let server = proxied_server(&["--max-connections-per-address", "1"]);
    let a: SocketAddr = "192.0.2.7:1".parse().unwrap();
    let _held = smtp_via(server.smtp, &v2_header(a));
    let mut second = Client::connect(server.smtp);
    second.send_raw(&v2_header("192.0.2.7:2".parse().unwrap()));
    second.reply().expect(421, Some("4.7.0"));
    // Another client through the same proxy is served.
    let mut c = smtp_via(server.smtp, &v2_header("192.0.2.8:1".parse().unwrap()));
    c.cmd("QUIT").code_is(221);
}

#[test]
fn on_an_implicit_tls_listener_the_header_comes_before_the_handshake() {
    let server = proxied_server(&["--smtps-listen", "127.0.0.1:0"]);
    let smtps = server.smtps.expect("an smtps listener");
    let mut tcp = TcpStream::connect(smtps).unwrap();
    tcp.write_all(&v2_header("192.0.2.77:7".parse().unwrap()))
        .unwrap();
    let mut tls = TlsClient::connect(tcp, &server.cert_path());
    tls.reply().code_is(220);
    tls.cmd("EHLO client.example").code_is(250);
    tls.cmd("QUIT").code_is(221);
    server.wait_for_log("peer=192.0.2.77:7");
}

/// Regression (the fleet's rolling restart): a connection HAProxy opened
/// just before a node's SIGTERM, whose header had not arrived yet, was not
/// counted by the drain, so the node exited and reset it. It is now
/// admitted and told 421 like every running session.
#[test]
fn shutdown_waits_for_a_header_in_flight_and_answers_421() {
    let mut server = proxied_server(&[]);
    let mut c = Client::connect(server.smtp);
    // Accepted and waiting for its header, or still in the accept queue:
    // either way it must be served.
    std::thread::sleep(Duration::from_millis(200));
    server.terminate();
    server.wait_for_log("shutting down");
    c.send_raw(&v2_header("192.0.2.9:9".parse().unwrap()));
    c.reply().code_is(220);
    c.reply().expect(421, Some("4.3.2"));
    c.expect_closed();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    server.wait_for_log("peer=192.0.2.9:9");
}

#[test]
fn a_proxy_listener_without_trusted_networks_does_not_start() {
    let failure = Server::try_start(&["--proxy-protocol"]).unwrap_err();
    assert!(
        failure
            .stderr
            .contains("requires the PROXY protocol, but no network is trusted"),
        "{}",
        failure.stderr
    );
    assert!(failure.stderr.contains("proxy-trusted-networks"));
}

/// Asserts a reply's code alone.
trait CodeIs {
    fn code_is(&self, code: u16);
}

impl CodeIs for common::SmtpReply {
    fn code_is(&self, code: u16) {
        assert_eq!(self.code, code, "{self:?}");
    }
}

fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}
