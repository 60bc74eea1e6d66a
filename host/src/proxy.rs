//! The PROXY protocol (HAProxy's, versions 1 and 2), server side: the
//! header a trusted load balancer sends before anything else, naming the
//! client it accepted the connection from.
//!
//! A listener that enables it accepts the header only from
//! `proxy-trusted-networks` and requires it: a peer outside those networks,
//! a missing header, a malformed one or one that takes longer than
//! [`HEADER_TIME`] is closed (by [`crate::server`]). The header is read
//! before anything is written (before the banner, before the TLS handshake
//! on an implicit-TLS port) and exactly: no byte past it is consumed, so
//! the stream goes on to the protocol untouched.
//!
//! Framing (how many bytes make the header) is [`frame`], a pure function
//! over bytes; the parsing of a complete header is the `ppp` crate's.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a peer has to send its whole header.
pub const HEADER_TIME: Duration = Duration::from_secs(3);
/// The longest version 1 header (the spec's 107 octets, CRLF included).
const V1_MAX: usize = 107;
/// The shortest version 1 header, `PROXY UNKNOWN\r\n`.
const V1_MIN: usize = 15;
/// A version 2 header's fixed part: signature, version and command,
/// family and protocol, length.
const V2_FIXED: usize = 16;
/// The most a version 2 header may carry after its fixed part: addresses
/// (at most 216 octets, for UNIX sockets) and a few TLVs.
pub const V2_MAX_PAYLOAD: usize = 1024;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// What a valid header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proxied {
    /// A client's connection relayed: its address and port.
    Client(SocketAddr),
    /// The proxy speaking for itself (version 2 LOCAL, a health check) or
    /// not naming a client (v1 `UNKNOWN`, v2 unspecified or UNIX family):
    /// served as the proxy's own connection, and not counted as a client.
    Local,
}

/// Why a header was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("PROXY protocol header longer than {0} octets")]
    TooLong(usize),
    #[error("no complete PROXY protocol header within {} s", HEADER_TIME.as_secs())]
    TimedOut,
    #[error("connection closed inside the PROXY protocol header")]
    Closed,
}

impl HeaderError {
    /// The metrics label.
    pub fn outcome(&self) -> &'static str {
        match self {
            HeaderError::Missing => "missing",
            HeaderError::Malformed(_) => "malformed",
            HeaderError::TooLong(_) => "too-long",
            HeaderError::TimedOut => "timeout",
            HeaderError::Closed => "closed",
        }
    }
}

/// How much of a header `buf` (the bytes read so far) holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Read this many bytes in all before asking again (never past the
    /// header's end).
    Need(usize),
    /// The header is complete and is `buf[..len]`.
    Complete(usize),
}

/// Frames a header: pure, over the bytes read so far. Asks for no more
/// bytes than the header can have, so a reader that reads exactly what it
/// is told never consumes the protocol's first bytes.
pub fn frame(buf: &[u8]) -> Result<Frame, HeaderError> {
    let start = buf.len().min(V2_SIGNATURE.len());
    let v2 = buf[..start] == V2_SIGNATURE[..start];
    let v1 = buf[..buf.len().min(6)] == b"PROXY "[..buf.len().min(6)];
    if !v1 && !v2 {
        return Err(HeaderError::Missing);
    }
    if v2 && !v1 {
        if buf.len() < V2_FIXED {
            return Ok(Frame::Need(V2_FIXED));
        }
        let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if payload > V2_MAX_PAYLOAD {
            return Err(HeaderError::TooLong(V2_FIXED + V2_MAX_PAYLOAD));
        }
        let len = V2_FIXED + payload;
        return Ok(if buf.len() >= len {
            Frame::Complete(len)
        } else {
            Frame::Need(len)
        });
    }
    if buf.len() < V1_MIN {
        return Ok(Frame::Need(V1_MIN));
    }
    if let Some(cr) = buf.windows(2).position(|w| w == b"\r\n") {
        return Ok(Frame::Complete(cr + 2));
    }
    if buf.len() >= V1_MAX {
        return Err(HeaderError::TooLong(V1_MAX));
    }
    // Byte by byte from here: a v1 line has no length field, and reading
    // past its CRLF would eat the client's first command.
    Ok(Frame::Need(buf.len() + 1))
}

/// Parses a complete header (as [`frame`] delimited it).
pub fn parse(header: &[u8]) -> Result<Proxied, HeaderError> {
    let malformed = |e: &dyn std::fmt::Display| HeaderError::Malformed(e.to_string());
    if header.starts_with(V2_SIGNATURE) {
        use ppp::v2;
        let h = v2::Header::try_from(header).map_err(|e| malformed(&e))?;
        if h.command == v2::Command::Local {
            return Ok(Proxied::Local);
        }
        return Ok(match h.addresses {
            v2::Addresses::IPv4(a) => {
                Proxied::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            v2::Addresses::IPv6(a) => {
                Proxied::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            v2::Addresses::Unspecified | v2::Addresses::Unix(_) => Proxied::Local,
        });
    }
    use ppp::v1;
    let h = v1::Header::try_from(header).map_err(|e| malformed(&e))?;
    Ok(match h.addresses {
        v1::Addresses::Tcp4(a) => {
            Proxied::Client(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
        }
        v1::Addresses::Tcp6(a) => {
            Proxied::Client(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
        }
        v1::Addresses::Unknown => Proxied::Local,
    })
}

/// Reads one header from `stream`, exactly, within [`HEADER_TIME`].
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Proxied, HeaderError> {
    match tokio::time::timeout(HEADER_TIME, read_exactly(stream)).await {
        Ok(result) => result,
        Err(_) => Err(HeaderError::TimedOut),
    }
}

async fn read_exactly<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Proxied, HeaderError> {
    let mut buf = Vec::with_capacity(V2_FIXED + 36);
    loop {
        match frame(&buf)? {
            Frame::Complete(len) => return parse(&buf[..len]),
            Frame::Need(len) => {
                let have = buf.len();
                buf.resize(len, 0);
                stream
                    .read_exact(&mut buf[have..])
                    .await
                    .map_err(|_| HeaderError::Closed)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    fn v2_tcp4() -> Vec<u8> {
        // 192.0.2.7:40000 -> 10.0.0.1:25
        v2(1, 0x11, &[192, 0, 2, 7, 10, 0, 0, 1, 0x9c, 0x40, 0, 25])
    }

    #[test]
    fn framing_asks_for_no_byte_past_the_header() {
        let h = v2_tcp4();
        // Fifteen bytes are safe either way: no header is shorter.
        assert_eq!(frame(&[]), Ok(Frame::Need(V1_MIN)));
        assert_eq!(frame(&h[..3]), Ok(Frame::Need(V2_FIXED)));
        assert_eq!(frame(&h[..V2_FIXED]), Ok(Frame::Need(28)));
        assert_eq!(frame(&h), Ok(Frame::Complete(28)));
        let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 25\r\nEHLO x\r\n";
        assert_eq!(frame(b"PROX"), Ok(Frame::Need(V1_MIN)));
        assert_eq!(frame(&line[..V1_MIN]), Ok(Frame::Need(V1_MIN + 1)));
        assert_eq!(frame(&line[..40]), Ok(Frame::Complete(40)));
        assert_eq!(frame(b"PROXY UNKNOWN\r\n"), Ok(Frame::Complete(15)));
    }

    #[test]
    fn framing_refuses_what_is_not_a_header_or_too_long() {
        for not in [&b"EHLO x\r\n"[..], b"\x16\x03\x01", b"\r\n\r\nX", b"PROXYX"] {
            assert_eq!(frame(not), Err(HeaderError::Missing), "{not:?}");
        }
        let mut long = V2_SIGNATURE.to_vec();
        long.extend_from_slice(&[0x21, 0x11, 0x04, 0x01]);
        assert!(matches!(frame(&long), Err(HeaderError::TooLong(_))));
        let v1_long = [b"PROXY ".as_slice(), &[b'1'; 101]].concat();
        assert!(matches!(frame(&v1_long), Err(HeaderError::TooLong(107))));
    }

    #[test]
    fn parsing_names_the_client_or_the_proxy_itself() {
        let client = "192.0.2.7:40000".parse().unwrap();
        assert_eq!(parse(&v2_tcp4()), Ok(Proxied::Client(client)));
        assert_eq!(parse(&v2(0, 0, &[])), Ok(Proxied::Local));
        let mut v6 = [0u8; 36];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[2] = 0x0d;
        v6[3] = 0xb8;
        v6[15] = 1;
        v6[32] = 0x01;
        assert_eq!(
            parse(&v2(1, 0x21, &v6)),
            Ok(Proxied::Client("[2001:db8::1]:256".parse().unwrap()))
        );
        assert_eq!(
            parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 25\r\n"),
            Ok(Proxied::Client(client))
        );
        assert_eq!(
            parse(b"PROXY TCP6 2001:db8::1 ::1 256 25\r\n"),
            Ok(Proxied::Client("[2001:db8::1]:256".parse().unwrap()))
        );
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Proxied::Local));
        for bad in [
            &b"PROXY TCP4 192.0.2.999 10.0.0.1 1 2\r\n"[..],
            b"PROXY TCP9 a b c d\r\n",
            b"PROXY TCP4 192.0.2.7 10.0.0.1 40000\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeaderError::Malformed(_))),
                "{bad:?}"
            );
        }
        // Version 2 with a short address block.
        assert!(matches!(
            parse(&v2(1, 0x11, &[192, 0, 2])),
            Err(HeaderError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn reading_leaves_the_protocol_bytes_in_the_stream() {
        let mut input = v2_tcp4();
        input.extend_from_slice(b"EHLO x\r\n");
        let mut stream = &input[..];
        assert!(matches!(
            read_header(&mut stream).await,
            Ok(Proxied::Client(_))
        ));
        assert_eq!(stream, b"EHLO x\r\n");
        let mut v1: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 40000 25\r\nQUIT\r\n";
        read_header(&mut v1).await.unwrap();
        assert_eq!(v1, b"QUIT\r\n");
        let mut cut: &[u8] = &v2_tcp4()[..20];
        assert_eq!(read_header(&mut cut).await, Err(HeaderError::Closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_header_times_out() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt as _;
        client.write_all(b"PROXY TCP4 ").await.unwrap();
        assert_eq!(read_header(&mut server).await, Err(HeaderError::TimedOut));
    }
}
