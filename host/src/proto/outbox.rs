//! A write buffer that holds memory only while it holds bytes.
//!
//! tokio's `BufWriter` allocates its whole capacity when it is made and
//! keeps it for the connection's life, so every idle session pays for it.
//! An [`Outbox`] grows as replies are queued, writes straight through what
//! would not fit, and gives its memory back once a flush has sent
//! everything: an idle session, which has always flushed before it waits
//! for input, holds no write buffer at all.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

pub struct Outbox<W> {
    inner: W,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    /// Most bytes queued before a write goes to `inner`.
    capacity: usize,
}

impl<W: AsyncWrite + Unpin> Outbox<W> {
    pub fn with_capacity(capacity: usize, inner: W) -> Self {
        Outbox {
            inner,
            buf: Vec::new(),
            sent: 0,
            capacity,
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Bytes queued and not yet written (for tests).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Writes what is queued; frees the buffer once it is all out.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Outbox<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + bytes.len() > this.capacity {
            ready!(this.poll_drain(cx))?;
            if bytes.len() >= this.capacity {
                return Pin::new(&mut this.inner).poll_write(cx, bytes);
            }
        }
        this.buf.extend_from_slice(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn queues_until_flushed_then_frees() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut out = Outbox::with_capacity(16, client);
        assert_eq!(out.buf.capacity(), 0, "no buffer before the first write");
        out.write_all(b"250 ok\r\n").await.unwrap();
        assert_eq!(out.queued(), 8);
        out.flush().await.unwrap();
        assert_eq!(out.buf.capacity(), 0, "the buffer is freed once sent");
        let mut got = [0u8; 8];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"250 ok\r\n");
    }

    #[tokio::test]
    async fn what_does_not_fit_is_written_in_order() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut out = Outbox::with_capacity(8, client);
        out.write_all(b"abc").await.unwrap();
        out.write_all(b"0123456789").await.unwrap();
        out.write_all(b"de").await.unwrap();
        assert!(out.queued() <= 8);
        out.shutdown().await.unwrap();
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc0123456789de");
    }

    #[tokio::test]
    async fn a_slow_peer_gets_every_byte() {
        // A pipe of 4 bytes: every write is partial.
        let (client, mut server) = tokio::io::duplex(4);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut out = Outbox::with_capacity(64, client);
        let mut want = Vec::new();
        for i in 0..100u8 {
            let line = format!("line {i}\r\n");
            want.extend_from_slice(line.as_bytes());
            out.write_all(line.as_bytes()).await.unwrap();
        }
        out.shutdown().await.unwrap();
        drop(out);
        assert_eq!(reader.await.unwrap(), want);
    }
}
