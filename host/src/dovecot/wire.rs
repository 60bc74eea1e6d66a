//! The Dovecot auth protocol's lines, as pure functions over bytes: the
//! server's handshake and replies, the client's commands, the escaping of
//! values.
//!
//! A line ends with LF; fields are separated by TAB. A value escapes the
//! bytes that would break the framing with `\x01` (Dovecot's `str_tabescape`):
//! `\x01` → `\x01 1`, TAB → `\x01 t`, CR → `\x01 r`, LF → `\x01 n`, NUL →
//! `\x01 0` (without the spaces).

use std::fmt::Write as _;

/// The protocol version the server speaks: 1.2, as Dovecot 2.3 does.
pub const VERSION: (u32, u32) = (1, 2);

/// Escapes a value for a field.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            '\0' => out.push_str("\x010"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]; an escape byte before anything else stands for
/// itself followed by that byte, as Dovecot's `str_tabunescape` reads it.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter().copied();
    while let Some(b) = bytes.next() {
        if b != 0x01 {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'1') => out.push(0x01),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b'0') => out.push(0),
            Some(other) => out.extend([0x01, other]),
            None => out.push(0x01),
        }
    }
    out
}

/// One mechanism in the handshake, with the security flags Postfix's
/// `smtpd_sasl_security_options` filters on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MechLine {
    pub name: String,
    pub flags: Vec<&'static str>,
}

/// What the handshake carries besides the mechanisms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub mechanisms: Vec<MechLine>,
    /// The server's process id.
    pub spid: u32,
    /// This connection's number, unique in the process.
    pub cuid: u64,
    /// 32 hex digits, unique per connection.
    pub cookie: String,
}

impl Handshake {
    /// The whole handshake, sent at once without waiting for the client
    /// (Exim reads all of it before it writes): `VERSION`, the `MECH`
    /// lines, then `SPID`, `CUID`, `COOKIE`, `DONE`. Both clients take a
    /// `SPID` before any `MECH` for the wrong socket and give up.
    pub fn to_wire(&self) -> String {
        let mut out = format!("VERSION\t{}\t{}\n", VERSION.0, VERSION.1);
        for m in &self.mechanisms {
            out.push_str("MECH\t");
            out.push_str(&escape(&m.name));
            for flag in &m.flags {
                out.push('\t');
                out.push_str(flag);
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "SPID\t{}\nCUID\t{}\nCOOKIE\t{}\nDONE\n",
            self.spid, self.cuid, self.cookie
        );
        out
    }
}

/// A request's number, as the client chose it.
pub type RequestId = u32;

/// One line from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `VERSION major minor`.
    Version {
        major: u32,
        minor: u32,
    },
    /// `CPID pid`: the client's process, for its logs.
    Cpid(u32),
    Auth(AuthRequest),
    /// `CONT id response`: the client's answer to a challenge (base64).
    Cont {
        id: RequestId,
        response: Vec<u8>,
    },
}

/// `AUTH id mechanism [params]`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AuthRequest {
    pub id: RequestId,
    /// As the client wrote it; names are compared case-insensitively.
    pub mechanism: Vec<u8>,
    pub service: Option<String>,
    /// The server's address the client connected to (`lip`, `lport`).
    pub local: Option<String>,
    pub local_port: Option<u16>,
    /// The client's address (`rip`, `rport`).
    pub remote: Option<String>,
    pub remote_port: Option<u16>,
    /// The client's connection is encrypted (or local).
    pub secured: bool,
    /// The client presented a certificate the MTA verified.
    pub valid_client_cert: bool,
    /// The identity of that certificate, when the MTA passes one.
    pub cert_username: Option<String>,
    /// The initial response, base64; `None` when absent or empty.
    pub initial_response: Option<Vec<u8>>,
}

/// Why a line was not understood; the connection is closed for it, as
/// Dovecot closes it.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("{0} without its fields")]
    Missing(&'static str),
    #[error("{0}: {1:?} is not a number")]
    NotANumber(&'static str, String),
}

/// Parses one line (without its LF).
pub fn parse(line: &[u8]) -> Result<Command, WireError> {
    let mut fields = line.split(|&b| b == b'\t');
    let name = fields.next().unwrap_or_default();
    match name {
        b"VERSION" => {
            let major = number(fields.next(), "VERSION")?;
            let minor = number(fields.next(), "VERSION")?;
            Ok(Command::Version { major, minor })
        }
        b"CPID" => Ok(Command::Cpid(number(fields.next(), "CPID")?)),
        b"CONT" => {
            let id = number(fields.next(), "CONT")?;
            let response = unescape(fields.next().unwrap_or_default());
            Ok(Command::Cont { id, response })
        }
        b"AUTH" => {
            let id = number(fields.next(), "AUTH")?;
            let mechanism = fields.next().ok_or(WireError::Missing("AUTH"))?.to_vec();
            let mut request = AuthRequest {
                id,
                mechanism,
                ..AuthRequest::default()
            };
            for field in fields {
                let (key, value) = match field.iter().position(|&b| b == b'=') {
                    Some(at) => (&field[..at], Some(&field[at + 1..])),
                    None => (field, None),
                };
                let text = || value.map(|v| String::from_utf8_lossy(&unescape(v)).into_owned());
                match key {
                    b"service" => request.service = text(),
                    b"lip" => request.local = text(),
                    b"rip" => request.remote = text(),
                    b"lport" => request.local_port = text().and_then(|p| p.parse().ok()),
                    b"rport" => request.remote_port = text().and_then(|p| p.parse().ok()),
                    b"secured" => request.secured = true,
                    b"valid-client-cert" => request.valid_client_cert = true,
                    b"cert_username" => request.cert_username = text(),
                    b"resp" => {
                        // Always the last parameter: what follows is not
                        // read, so a TAB a client let into the data cannot
                        // add one.
                        request.initial_response = value.filter(|v| !v.is_empty()).map(unescape);
                        break;
                    }
                    // nologin, no-penalty, session, transport, … carry
                    // nothing this server acts on.
                    _ => {}
                }
            }
            Ok(Command::Auth(request))
        }
        other => Err(WireError::UnknownCommand(
            String::from_utf8_lossy(other).into_owned(),
        )),
    }
}

fn number<T: std::str::FromStr>(field: Option<&[u8]>, what: &'static str) -> Result<T, WireError> {
    let field = field.ok_or(WireError::Missing(what))?;
    std::str::from_utf8(field)
        .ok()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| WireError::NotANumber(what, String::from_utf8_lossy(field).into_owned()))
}

/// `CONT id challenge`: the challenge field is always there, even empty
/// (Postfix takes a CONT without it for a backend error).
pub fn cont(id: RequestId, challenge: &[u8]) -> String {
    format!("CONT\t{id}\t{}\n", crate::sasl::encode(challenge))
}

/// `OK id user=NAME`: both clients need `user=`.
pub fn ok(id: RequestId, user: &str) -> String {
    format!("OK\t{id}\tuser={}\n", escape(user))
}

/// `FAIL id [user=NAME] [reason=TEXT]`: Postfix shows the reason to its
/// client after its 535.
pub fn fail(id: RequestId, user: Option<&str>, reason: Option<&str>) -> String {
    let mut out = format!("FAIL\t{id}");
    if let Some(user) = user {
        let _ = write!(out, "\tuser={}", escape(user));
    }
    if let Some(reason) = reason {
        let _ = write!(out, "\treason={}", escape(reason));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_every_special_byte() {
        let raw = "a\tb\nc\rd\x01e\0f";
        let escaped = escape(raw);
        assert!(!escaped.contains(['\t', '\n', '\r', '\0']));
        assert_eq!(escaped, "a\x01tb\x01nc\x01rd\x011e\x010f");
        assert_eq!(unescape(escaped.as_bytes()), raw.as_bytes());
        assert_eq!(unescape(b"x\x01"), b"x\x01");
        assert_eq!(unescape(b"\x01z"), b"\x01z");
    }

    #[test]
    fn the_handshake_lists_mechanisms_before_spid() {
        let h = Handshake {
            mechanisms: vec![
                MechLine {
                    name: "PLAIN".into(),
                    flags: vec!["plaintext"],
                },
                MechLine {
                    name: "SCRAM-SHA-256".into(),
                    flags: vec!["mutual-auth"],
                },
            ],
            spid: 42,
            cuid: 7,
            cookie: "0123456789abcdef0123456789abcdef".into(),
        };
        assert_eq!(
            h.to_wire(),
            "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tSCRAM-SHA-256\tmutual-auth\n\
             SPID\t42\nCUID\t7\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"
        );
    }

    #[test]
    fn auth_parameters_in_any_order_resp_last() {
        // Postfix's order.
        let postfix = b"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.9\tsecured\tresp=AGEAYg==";
        let Command::Auth(a) = parse(postfix).unwrap() else {
            panic!()
        };
        assert_eq!(a.id, 1);
        assert_eq!(a.mechanism, b"PLAIN");
        assert_eq!(a.service.as_deref(), Some("smtp"));
        assert_eq!(a.local.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.remote.as_deref(), Some("192.0.2.9"));
        assert!(a.secured && !a.valid_client_cert);
        assert_eq!(a.initial_response.as_deref(), Some(&b"AGEAYg=="[..]));
        // Exim's order, with an empty response and the cert flag.
        let exim = b"AUTH\t1\tplain\tservice=smtp\tsecured\tvalid-client-cert\trip=::1\tlip=::1\tnologin\tresp=";
        let Command::Auth(e) = parse(exim).unwrap() else {
            panic!()
        };
        assert_eq!(e.mechanism, b"plain");
        assert!(e.secured && e.valid_client_cert);
        assert_eq!(e.initial_response, None, "an empty resp= is no response");
        // Nothing after resp= is read.
        let Command::Auth(r) = parse(b"AUTH\t2\tPLAIN\tresp=AA\tsecured").unwrap() else {
            panic!()
        };
        assert!(!r.secured);
        assert_eq!(r.initial_response.as_deref(), Some(&b"AA"[..]));
        let Command::Auth(p) = parse(b"AUTH\t3\tPLAIN\trport=2525\tcert_username=a\x01tb").unwrap()
        else {
            panic!()
        };
        assert_eq!(p.remote_port, Some(2525));
        assert_eq!(p.cert_username.as_deref(), Some("a\tb"));
    }

    #[test]
    fn other_commands_and_errors() {
        assert_eq!(
            parse(b"VERSION\t1\t0"),
            Ok(Command::Version { major: 1, minor: 0 })
        );
        assert_eq!(parse(b"CPID\t4242"), Ok(Command::Cpid(4242)));
        assert_eq!(
            parse(b"CONT\t5\tdGVzdA=="),
            Ok(Command::Cont {
                id: 5,
                response: b"dGVzdA==".to_vec()
            })
        );
        assert_eq!(
            parse(b"CONT\t5"),
            Ok(Command::Cont {
                id: 5,
                response: Vec::new()
            })
        );
        assert!(matches!(
            parse(b"AUTH\tx\tPLAIN"),
            Err(WireError::NotANumber(..))
        ));
        assert!(matches!(parse(b"AUTH\t1"), Err(WireError::Missing("AUTH"))));
        assert!(matches!(
            parse(b"NOPE\t1"),
            Err(WireError::UnknownCommand(_))
        ));
        assert!(matches!(parse(b""), Err(WireError::UnknownCommand(_))));
    }

    #[test]
    fn replies_escape_their_values() {
        assert_eq!(cont(3, b""), "CONT\t3\t\n");
        assert_eq!(cont(3, b"hi"), "CONT\t3\taGk=\n");
        assert_eq!(ok(4, "al\tice"), "OK\t4\tuser=al\x01tice\n");
        assert_eq!(
            fail(5, Some("bob"), Some("no\nway")),
            "FAIL\t5\tuser=bob\treason=no\x01nway\n"
        );
        assert_eq!(fail(6, None, Some("x")), "FAIL\t6\treason=x\n");
        assert_eq!(fail(7, Some("bob"), None), "FAIL\t7\tuser=bob\n");
    }
}
