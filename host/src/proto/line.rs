//! Line framing with a length limit: a pure splitter over bytes, and an
//! async reader built on it.
//!
//! A line ends with CRLF and with nothing else (RFC 5321 §2.3.8: "lines
//! ... terminated by <CRLF>"; Twisted's `LineReceiver` uses the same
//! delimiter for the echo service). A bare LF or a bare CR is part of the
//! line it appears in: the framer never splits on it, so a client cannot
//! make `\n.\n` look like the end of a message, nor start a command after
//! one. What a protocol does with a line that contains one is its own
//! policy (see [`has_bare_newline`] and `smtp::data::BareNewline`).
//!
//! A line longer than the limit is reported once as [`Frame::TooLong`] and
//! its bytes are discarded up to the next CRLF, so a client cannot make the
//! server buffer without bound.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// One framed unit of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its CRLF (it may hold bare CR or LF).
    Line(Vec<u8>),
    /// A line longer than the limit was discarded.
    TooLong,
}

/// Whether a framed line holds a CR or LF of its own (one that is not part
/// of a CRLF line ending).
pub fn has_bare_newline(line: &[u8]) -> bool {
    line.iter().any(|&b| b == b'\r' || b == b'\n')
}

/// Where the first CRLF in `bytes` starts.
fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

/// Splits lines out of a buffer that grows as bytes arrive. The buffer
/// holds memory only while it holds bytes: a session waiting for its next
/// command, with nothing pipelined, has none.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    /// Inside an overlong line: drop bytes until the next CRLF.
    discarding: bool,
}

impl LineBuffer {
    pub fn new(max: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// Appends bytes read from the peer.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next frame, or `None` when more input is needed (incomplete).
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match find_crlf(&self.buf) {
                Some(end) if self.discarding => {
                    self.buf.drain(..end + 2);
                    self.discarding = false;
                    continue;
                }
                Some(end) => {
                    let mut line = if end + 2 == self.buf.len() {
                        // The one line buffered (the usual case): hand
                        // over the buffer itself, which leaves none held.
                        std::mem::take(&mut self.buf)
                    } else {
                        self.buf.drain(..end + 2).collect()
                    };
                    line.truncate(end);
                    if line.len() > self.max {
                        return Some(Frame::TooLong);
                    }
                    return Some(Frame::Line(line));
                }
                None if self.discarding => {
                    // Keep a final CR: it may be the first half of the CRLF.
                    let keep = self.buf.last() == Some(&b'\r');
                    self.buf = if keep { b"\r".to_vec() } else { Vec::new() };
                    return None;
                }
                // Room for the line and the CR of its CRLF.
                None if self.buf.len() > self.max + 1 => {
                    let keep = self.buf.last() == Some(&b'\r');
                    self.buf = if keep { b"\r".to_vec() } else { Vec::new() };
                    self.discarding = true;
                    return Some(Frame::TooLong);
                }
                None => return None,
            }
        }
    }

    /// Changes the limit for the lines not yet framed (SMTP's text lines
    /// are shorter than its AUTH lines).
    pub fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// Bytes already received but not yet framed (pipelined input).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Whether a complete line is buffered.
    pub fn has_line(&self) -> bool {
        find_crlf(&self.buf).is_some()
    }

    /// Forgets pipelined input (after STARTTLS, RFC 3207 §4.2).
    pub fn clear(&mut self) {
        self.buf = Vec::new();
        self.discarding = false;
    }
}

thread_local! {
    /// The buffer every session on this thread reads into. A read borrows
    /// it only inside one poll, never across an await, so a session that
    /// waits for input holds no read buffer of its own.
    static SCRATCH: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; super::READ_CHUNK].into_boxed_slice());
}

/// Reads what `inner` has into `buffer`, through the thread's scratch
/// buffer; the number of bytes read (0 at end of stream).
fn poll_fill<R: AsyncRead + Unpin>(
    inner: &mut R,
    buffer: &mut LineBuffer,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            // Only a reader polled from inside another's read could get
            // here; it reads through a buffer of its own.
            let mut own = vec![0; super::READ_CHUNK];
            return fill_from(inner, buffer, cx, &mut own);
        };
        fill_from(inner, buffer, cx, &mut scratch)
    })
}

fn fill_from<R: AsyncRead + Unpin>(
    inner: &mut R,
    buffer: &mut LineBuffer,
    cx: &mut Context<'_>,
    scratch: &mut [u8],
) -> Poll<std::io::Result<usize>> {
    let mut read = ReadBuf::new(scratch);
    ready!(Pin::new(inner).poll_read(cx, &mut read))?;
    buffer.extend(read.filled());
    Poll::Ready(Ok(read.filled().len()))
}

/// Reads frames from an async byte stream.
pub struct LineReader<R> {
    inner: R,
    buffer: LineBuffer,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buffer: LineBuffer::new(max),
        }
    }

    /// The next frame; `Ok(None)` at end of stream (a final unterminated
    /// line is dropped, as a half-sent command must not run).
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.buffer.next_frame() {
                return Ok(Some(frame));
            }
            let (inner, buffer) = (&mut self.inner, &mut self.buffer);
            let n = std::future::poll_fn(|cx| poll_fill(inner, buffer, cx)).await?;
            if n == 0 {
                return Ok(None);
            }
        }
    }

    /// Whether a complete line is already buffered (so a reply can wait to
    /// be flushed with the next one).
    pub fn has_pending_frame(&self) -> bool {
        self.buffer.has_line()
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn buffer_mut(&mut self) -> &mut LineBuffer {
        &mut self.buffer
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut lb = LineBuffer::new(max);
        let mut out = Vec::new();
        for c in chunks {
            lb.extend(c);
            while let Some(f) = lb.next_frame() {
                out.push(f);
            }
        }
        out
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn splitting() {
        type Case<'a> = (usize, Vec<&'a [u8]>, Vec<Frame>);
        let cases: Vec<Case> = vec![
            (10, vec![b"a\r\nb\r\n"], vec![line("a"), line("b")]),
            (10, vec![b"ab", b"c\r", b"\n"], vec![line("abc")]),
            (10, vec![b"no end"], vec![]),
            (10, vec![b"\r\n\r\n"], vec![line(""), line("")]),
            // A bare LF or CR never ends a line.
            (10, vec![b"a\nb\r\n"], vec![line("a\nb")]),
            (10, vec![b"a\rb\r\n"], vec![line("a\rb")]),
            (10, vec![b"a\n"], vec![]),
            (10, vec![b"\n.\n\r\n"], vec![line("\n.\n")]),
            (10, vec![b"a\r\r\n"], vec![line("a\r")]),
            (10, vec![b"a\n\r\n"], vec![line("a\n")]),
            (3, vec![b"abcd\r\nok\r\n"], vec![Frame::TooLong, line("ok")]),
            (3, vec![b"abc\r\n"], vec![line("abc")]),
            (
                3,
                vec![b"abcdefgh", b"ijkl", b"mn\r\nok\r\n"],
                vec![Frame::TooLong, line("ok")],
            ),
            // The CRLF that ends an overlong line may arrive split.
            (
                3,
                vec![b"abcdefgh\r", b"\nok\r\n"],
                vec![Frame::TooLong, line("ok")],
            ),
            // An LF alone does not end the overlong line either.
            (
                3,
                vec![b"abcdefgh\nok\r\nyes\r\n"],
                vec![Frame::TooLong, line("yes")],
            ),
        ];
        for (max, chunks, want) in cases {
            assert_eq!(frames(max, &chunks), want, "{chunks:?}");
        }
    }

    #[test]
    fn bare_newlines() {
        for (line, bare) in [
            (&b"MAIL FROM:<a@b>"[..], false),
            (b"a\nb", true),
            (b"a\rb", true),
            (b"", false),
        ] {
            assert_eq!(has_bare_newline(line), bare, "{line:?}");
        }
    }

    #[test]
    fn overlong_input_is_not_buffered() {
        let mut lb = LineBuffer::new(16);
        lb.extend(&[b'x'; 100]);
        assert_eq!(lb.next_frame(), Some(Frame::TooLong));
        for _ in 0..100 {
            lb.extend(&[b'x'; 1000]);
            assert_eq!(lb.next_frame(), None);
            assert!(lb.buffered().len() <= 1000);
        }
        lb.extend(b"\r\nhello\r\n");
        assert_eq!(lb.next_frame(), Some(line("hello")));
    }

    #[test]
    fn an_empty_buffer_holds_no_memory() {
        let mut lb = LineBuffer::new(64);
        assert_eq!(lb.buf.capacity(), 0);
        lb.extend(b"EHLO x\r\n");
        assert_eq!(lb.next_frame(), Some(line("EHLO x")));
        assert_eq!(lb.buf.capacity(), 0, "a lone line takes the buffer with it");
        lb.extend(b"NOOP\r\nQU");
        assert_eq!(lb.next_frame(), Some(line("NOOP")));
        assert_eq!(lb.buffered(), b"QU");
        lb.extend(b"IT\r\n");
        assert_eq!(lb.next_frame(), Some(line("QUIT")));
        assert_eq!(lb.buf.capacity(), 0);
        lb.extend(&[b'x'; 100]);
        assert_eq!(lb.next_frame(), Some(Frame::TooLong));
        assert_eq!(lb.buf.capacity(), 0, "a discarded line leaves nothing held");
    }

    #[tokio::test]
    async fn reader_over_duplex() {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(64);
        let mut reader = LineReader::new(server, 8);
        client
            .write_all(b"one\r\ntoolongline\r\ntwo\r\nhalf")
            .await
            .unwrap();
        drop(client);
        assert_eq!(reader.next().await.unwrap(), Some(line("one")));
        assert_eq!(reader.next().await.unwrap(), Some(Frame::TooLong));
        assert_eq!(reader.next().await.unwrap(), Some(line("two")));
        assert_eq!(reader.next().await.unwrap(), None);
    }
}
