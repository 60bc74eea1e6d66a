//! The DATA phase (RFC 5321 §4.5.2): a pure accumulator fed one framed line
//! at a time. It removes dot-stuffing, restores CRLF line endings, stops at
//! the lone `.`, and keeps reading (but not storing) past the size limit or
//! an overlong line so the client's stream stays in step.
//!
//! The end of data is `CRLF . CRLF` and nothing else: lines are framed on
//! CRLF only (`proto::line`), so the only line that ends a message is one
//! that is exactly `.`, after a CRLF. A bare CR or LF inside a line (the
//! "SMTP smuggling" sequences `\n.\n`, `\r.\r`, `\r\n.\n`, …) is message
//! text under [`BareNewline::Normalize`] and makes the message refused under
//! [`BareNewline::Reject`]; it never ends the message.

use crate::proto::line::{Frame, has_bare_newline};

/// What to do with a bare CR or LF (one that is not part of CRLF), like
/// Postfix's `smtpd_forbid_bare_newline`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BareNewline {
    /// Keep the message; each bare CR or LF in it is stored as CRLF
    /// (Postfix 3.9's `normalize`). Only `CRLF . CRLF` ends the message.
    #[default]
    Normalize,
    /// Refuse a message or command containing one (5xx), reading on to the
    /// real end of data so the session stays in step.
    Reject,
}

impl BareNewline {
    /// The spelling of the command line and the file.
    pub fn as_str(self) -> &'static str {
        match self {
            BareNewline::Normalize => "normalize",
            BareNewline::Reject => "reject",
        }
    }
}

impl std::str::FromStr for BareNewline {
    type Err = ();

    /// The spelling of [`BareNewline::as_str`].
    fn from_str(word: &str) -> Result<BareNewline, ()> {
        match word {
            "normalize" => Ok(BareNewline::Normalize),
            "reject" => Ok(BareNewline::Reject),
            _ => Err(()),
        }
    }
}

/// Why a message that reached its end cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// More bytes than the size limit (552 5.3.4).
    TooBig,
    /// A text line longer than the limit (500 5.5.6).
    LineTooLong,
    /// A bare CR or LF under [`BareNewline::Reject`] (550 5.6.0).
    BareNewline,
}

/// What one more line did.
#[derive(Debug, PartialEq, Eq)]
pub enum DataProgress {
    /// Keep feeding lines.
    More,
    /// The terminating `.` arrived.
    Done(Result<Vec<u8>, DataError>),
}

/// Collects one message body.
#[derive(Debug)]
pub struct DataReader {
    message: Vec<u8>,
    max_size: usize,
    error: Option<DataError>,
    bare_newline: BareNewline,
}

impl DataReader {
    /// Starts a body that already holds `prefix` (the Received header) and
    /// may grow to `max_size` bytes of client data.
    pub fn new(prefix: Vec<u8>, max_size: usize) -> DataReader {
        DataReader::with_policy(prefix, max_size, BareNewline::default())
    }

    /// As [`DataReader::new`], with the operator's bare-newline policy.
    pub fn with_policy(prefix: Vec<u8>, max_size: usize, bare_newline: BareNewline) -> DataReader {
        DataReader {
            max_size: max_size.saturating_add(prefix.len()),
            message: prefix,
            error: None,
            bare_newline,
        }
    }

    /// Feeds one framed line.
    pub fn feed(&mut self, frame: Frame) -> DataProgress {
        let line = match frame {
            Frame::TooLong => {
                self.fail(DataError::LineTooLong);
                return DataProgress::More;
            }
            Frame::Line(line) => line,
        };
        if line == b"." {
            let result = match self.error.take() {
                Some(e) => Err(e),
                None => Ok(std::mem::take(&mut self.message)),
            };
            return DataProgress::Done(result);
        }
        if self.error.is_some() {
            return DataProgress::More;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        let bare = has_bare_newline(text);
        if bare && self.bare_newline == BareNewline::Reject {
            self.fail(DataError::BareNewline);
            return DataProgress::More;
        }
        // Each bare CR or LF is stored as two bytes.
        let stored = if bare {
            normalized_len(text)
        } else {
            text.len()
        };
        if self.message.len() + stored + 2 > self.max_size {
            self.fail(DataError::TooBig);
            return DataProgress::More;
        }
        if bare {
            push_normalized(&mut self.message, text);
        } else {
            self.message.extend_from_slice(text);
        }
        self.message.extend_from_slice(b"\r\n");
        DataProgress::More
    }

    fn fail(&mut self, error: DataError) {
        // The first problem is the one reported; drop what was stored.
        if self.error.is_none() {
            self.error = Some(error);
            self.message = Vec::new();
        }
    }
}

/// The length of `text` once each bare CR and LF is CRLF.
fn normalized_len(text: &[u8]) -> usize {
    text.len() + text.iter().filter(|&&b| b == b'\r' || b == b'\n').count()
}

/// Appends `text` (no CRLF in it) with each bare CR and LF made CRLF.
fn push_normalized(out: &mut Vec<u8>, text: &[u8]) {
    for &b in text {
        match b {
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::line::LineBuffer;

    fn run(prefix: &str, max: usize, frames: Vec<Frame>) -> Vec<DataProgress> {
        let mut reader = DataReader::new(prefix.as_bytes().to_vec(), max);
        frames.into_iter().map(|f| reader.feed(f)).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn bodies() {
        type Case = (
            &'static str,
            usize,
            Vec<Frame>,
            Result<&'static str, DataError>,
        );
        let cases: Vec<Case> = vec![
            ("", 100, vec![line(".")], Ok("")),
            (
                "Received: x\r\n",
                100,
                vec![line("Subject: hi"), line(""), line("body"), line(".")],
                Ok("Received: x\r\nSubject: hi\r\n\r\nbody\r\n"),
            ),
            // Dot-unstuffing: a leading dot is removed once.
            (
                "",
                100,
                vec![line(".."), line("..x"), line(".")],
                Ok(".\r\n.x\r\n"),
            ),
            // The limit counts client bytes only, not the prefix.
            (
                "0123456789",
                6,
                vec![line("abcd"), line(".")],
                Ok("0123456789abcd\r\n"),
            ),
            (
                "",
                5,
                vec![line("abcd"), line("e"), line(".")],
                Err(DataError::TooBig),
            ),
            (
                "",
                100,
                vec![line("a"), Frame::TooLong, line("b"), line(".")],
                Err(DataError::LineTooLong),
            ),
            // The first error wins.
            (
                "",
                3,
                vec![line("abcdef"), Frame::TooLong, line(".")],
                Err(DataError::TooBig),
            ),
            // A bare newline is stored as CRLF, and counts as such.
            ("", 100, vec![line("a\nb"), line(".")], Ok("a\r\nb\r\n")),
            ("", 5, vec![line("a\nb"), line(".")], Err(DataError::TooBig)),
            ("", 6, vec![line("a\nb"), line(".")], Ok("a\r\nb\r\n")),
        ];
        for (prefix, max, frames, want) in cases {
            let n = frames.len();
            let progress = run(prefix, max, frames);
            assert!(
                progress[..n - 1].iter().all(|p| *p == DataProgress::More),
                "{progress:?}"
            );
            let want = want.map(|s| s.as_bytes().to_vec());
            assert_eq!(
                progress[n - 1],
                DataProgress::Done(want),
                "prefix {prefix:?}"
            );
        }
    }

    /// Frames `input` as the session does and feeds it to one DATA reader:
    /// every message it ends, and the bytes left over after the first.
    fn read_stream(
        input: &[u8],
        policy: BareNewline,
    ) -> (Vec<Result<Vec<u8>, DataError>>, Vec<Frame>) {
        let mut lines = LineBuffer::new(998);
        lines.extend(input);
        let mut reader = DataReader::with_policy(Vec::new(), 1 << 20, policy);
        let mut messages = Vec::new();
        let mut after = Vec::new();
        while let Some(frame) = lines.next_frame() {
            if !messages.is_empty() {
                after.push(frame);
                continue;
            }
            if let DataProgress::Done(m) = reader.feed(frame) {
                messages.push(m);
            }
        }
        (messages, after)
    }

    /// Every published smuggling sequence (SEC Consult 2023, Postfix's
    /// and Sendmail's advisories): none ends the message, so what follows
    /// it (a forged second transaction) stays message text.
    #[test]
    fn smuggling_never_ends_the_message() {
        let ends: &[&[u8]] = &[
            b"\n.\n",
            b"\n.\r\n",
            b"\r\n.\n",
            b"\r.\r",
            b"\r\n.\r",
            b"\r.\r\n",
            b"\n.\r",
            b"\r.\n",
            b"\r\n\x00.\r\n",
            b"\r\n.\x00\r\n",
            b"\n\n.\n\n",
            b"\r\r.\r\r",
        ];
        let smuggled = b"MAIL FROM:<boss@bank.example>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: boss@bank.example\r\n\r\nsmuggled\r\n";
        for end in ends {
            for policy in [BareNewline::Normalize, BareNewline::Reject] {
                let mut input = b"From: a@example.com\r\n\r\nfirst".to_vec();
                input.extend_from_slice(end);
                input.extend_from_slice(smuggled);
                input.extend_from_slice(b".\r\nQUIT\r\n");
                let (messages, after) = read_stream(&input, policy);
                assert_eq!(messages.len(), 1, "{end:?} {policy:?}");
                // The message ends at the real CRLF.CRLF, before QUIT.
                assert_eq!(after, vec![line("QUIT")], "{end:?} {policy:?}");
                let message = &messages[0];
                let without_crlf = String::from_utf8_lossy(end).replace("\r\n", "");
                let has_bare = has_bare_newline(without_crlf.as_bytes());
                match (policy, message) {
                    (BareNewline::Reject, Err(DataError::BareNewline)) if has_bare => {}
                    (BareNewline::Reject, Ok(_)) if !has_bare => {}
                    (BareNewline::Normalize, Ok(m)) => {
                        let text = String::from_utf8_lossy(m);
                        assert!(
                            text.contains("MAIL FROM:<boss@bank.example>"),
                            "{end:?}: {text:?}"
                        );
                        // Stored line endings are CRLF only.
                        let bare = m.iter().enumerate().any(|(i, &b)| {
                            (b == b'\n' && (i == 0 || m[i - 1] != b'\r'))
                                || (b == b'\r' && m.get(i + 1) != Some(&b'\n'))
                        });
                        assert!(!bare, "{end:?}: {text:?}");
                    }
                    other => panic!("{end:?} {policy:?}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data() {
        let (messages, after) = read_stream(b"a\r\n.\r\nNOOP\r\n", BareNewline::Reject);
        assert_eq!(messages, vec![Ok(b"a\r\n".to_vec())]);
        assert_eq!(after, vec![line("NOOP")]);
        // Right after DATA's CRLF, a lone dot line is an empty message.
        let (messages, _) = read_stream(b".\r\n", BareNewline::Normalize);
        assert_eq!(messages, vec![Ok(Vec::new())]);
        // No end at all: no message.
        let (messages, _) = read_stream(b"a\n.\nb\r.\r", BareNewline::Normalize);
        assert!(messages.is_empty());
    }

    /// The fuzz target `smtp_data`'s property, exhaustively over short
    /// inputs: every string of CR, LF, `.` and `a` up to 8 bytes, framed
    /// at every split point. DATA ends exactly after the first CRLF.CRLF
    /// (counting DATA's own CRLF), once.
    #[test]
    fn data_ends_exactly_at_the_first_crlf_dot_crlf() {
        let alphabet = [b'\r', b'\n', b'.', b'a'];
        for len in 0..=8u32 {
            for mut code in 0..4usize.pow(len) {
                let mut stream = Vec::new();
                for _ in 0..len {
                    stream.push(alphabet[code % 4]);
                    code /= 4;
                }
                let mut with_crlf = b"\r\n".to_vec();
                with_crlf.extend_from_slice(&stream);
                let want = with_crlf
                    .windows(5)
                    .position(|w| w == b"\r\n.\r\n")
                    .map(|at| at + 3);
                for split in 0..=stream.len() {
                    for policy in [BareNewline::Normalize, BareNewline::Reject] {
                        let mut lines = LineBuffer::new(998);
                        let mut reader = DataReader::with_policy(Vec::new(), 1 << 10, policy);
                        let mut ended = None;
                        let mut consumed = 0;
                        'chunks: for chunk in [&stream[..split], &stream[split..]] {
                            lines.extend(chunk);
                            consumed += chunk.len();
                            while let Some(frame) = lines.next_frame() {
                                if let DataProgress::Done(_) = reader.feed(frame) {
                                    ended = Some(consumed - lines.buffered().len());
                                    break 'chunks;
                                }
                            }
                        }
                        assert_eq!(ended, want, "{stream:?} split at {split}");
                    }
                }
            }
        }
    }
}
