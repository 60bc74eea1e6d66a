//! The DATA phase (RFC 5321 §4.5.2): a pure accumulator fed one framed line
//! at a time. It removes dot-stuffing, restores CRLF line endings, stops at
//! the lone `.`, and keeps reading (but not storing) past the size limit or
//! an overlong line so the client's stream stays in step.

use crate::proto::line::Frame;

/// Why a message that reached its end cannot be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// More bytes than the size limit (552 5.3.4).
    TooBig,
    /// A text line longer than the limit (500 5.5.6).
    LineTooLong,
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
}

impl DataReader {
    /// Starts a body that already holds `prefix` (the Received header) and
    /// may grow to `max_size` bytes of client data.
    pub fn new(prefix: Vec<u8>, max_size: usize) -> DataReader {
        DataReader {
            max_size: max_size.saturating_add(prefix.len()),
            message: prefix,
            error: None,
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
        if self.message.len() + text.len() + 2 > self.max_size {
            self.fail(DataError::TooBig);
            return DataProgress::More;
        }
        self.message.extend_from_slice(text);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
