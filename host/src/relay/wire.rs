//! The client side of SMTP and LMTP on the wire, without I/O: reply
//! parsing (RFC 5321 §4.2), EHLO keywords, dot-stuffing (§4.5.2) and
//! xtext (RFC 3461 §4, for XCLIENT values).

/// One complete reply: its code and lines (text after `NNN-`/`NNN `).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl WireReply {
    /// The last line made one printable line of bounded length, for the
    /// realm and the log (a next hop's text is not trusted either).
    pub fn text(&self) -> String {
        let last = self.lines.last().map(String::as_str).unwrap_or("");
        last.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect()
    }

    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// More bytes are needed.
    #[error("incomplete reply")]
    Incomplete,
    #[error("malformed reply line: {0}")]
    Malformed(String),
    #[error("reply longer than {MAX_REPLY} bytes")]
    TooLong,
}

/// The most a reply (all its lines) may take.
pub const MAX_REPLY: usize = 64 * 1024;

/// Parses one reply from the start of `buf`: the reply and the bytes it
/// took. Lines end in CRLF (a bare LF is tolerated).
pub fn parse_reply(buf: &[u8]) -> Result<(WireReply, usize), ReplyError> {
    let mut at = 0;
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') else {
            return Err(if buf.len() > MAX_REPLY {
                ReplyError::TooLong
            } else {
                ReplyError::Incomplete
            });
        };
        let mut line = &buf[at..at + nl];
        at += nl + 1;
        if at > MAX_REPLY {
            return Err(ReplyError::TooLong);
        }
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) || line[0] < b'2' {
            return Err(ReplyError::Malformed(shown()));
        }
        let this: u16 = std::str::from_utf8(&line[..3])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ReplyError::Malformed(shown()))?;
        if *code.get_or_insert(this) != this || this > 599 {
            return Err(ReplyError::Malformed(shown()));
        }
        let (last, text) = match line.get(3) {
            None => (true, &b""[..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::Malformed(shown())),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            return Ok((WireReply { code: this, lines }, at));
        }
    }
}

/// The EHLO keywords of a 250 reply (its lines after the first), upper
/// case, each with its parameters.
pub fn ehlo_keywords(reply: &WireReply) -> Vec<(String, Vec<String>)> {
    reply
        .lines
        .iter()
        .skip(1)
        .filter_map(|line| {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next()?.to_ascii_uppercase();
            Some((keyword, words.map(str::to_ascii_uppercase).collect()))
        })
        .collect()
}

/// The message as DATA sends it: every line starting with a dot gets
/// another, and the message ends with CRLF `.` CRLF (a CRLF is added if
/// the message does not end with one).
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// RFC 3461 xtext: `+XX` for `+`, `=`, and anything outside `!`..`~`.
pub fn xtext(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Whether an address can go on a MAIL or RCPT line as it is: no CR, LF,
/// angle brackets or other control characters.
pub fn plain_path(address: &str) -> bool {
    address.len() <= 512
        && !address
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let (r, n) = parse_reply(b"250 ok\r\nrest").unwrap();
        assert_eq!((r.code, r.lines.clone(), n), (250, vec!["ok".into()], 8));
        let (r, _) =
            parse_reply(b"250-mx\r\n250-PIPELINING\r\n250 XCLIENT ADDR LOGIN\r\n").unwrap();
        assert_eq!(r.lines.len(), 3);
        assert_eq!(
            ehlo_keywords(&r),
            vec![
                ("PIPELINING".into(), vec![]),
                ("XCLIENT".into(), vec!["ADDR".into(), "LOGIN".into()])
            ]
        );
        assert_eq!(parse_reply(b"354\n").unwrap().0.code, 354);
        assert_eq!(parse_reply(b"250-a\r\n250 b"), Err(ReplyError::Incomplete));
        assert_eq!(parse_reply(b""), Err(ReplyError::Incomplete));
        for bad in [
            &b"25 x\r\n"[..],
            b"abc x\r\n",
            b"250-a\r\n251 b\r\n",
            b"250x\r\n",
            b"150 x\r\n",
            b"999 x\r\n",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_reply(&vec![b'2'; MAX_REPLY + 1]),
            Err(ReplyError::TooLong)
        );
        let (r, _) = parse_reply(b"451 4.3.0 a\x1b[31m\tb\r\n").unwrap();
        assert_eq!(r.text(), "4.3.0 a [31m b");
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuff(b"a"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"x.y\r\n..z\r\n"), b"x.y\r\n...z\r\n.\r\n");
    }

    #[test]
    fn xtext_and_paths() {
        assert_eq!(xtext("alice@example.com"), "alice@example.com");
        assert_eq!(xtext("a b+c=d\r"), "a+20b+2Bc+3Dd+0D");
        assert_eq!(xtext("é"), "+C3+A9");
        assert!(plain_path("a@b"));
        assert!(plain_path(""));
        assert!(!plain_path("a@b>\r\nRCPT TO:<x"));
    }
}
