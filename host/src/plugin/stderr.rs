//! A guest's stderr: a ring that keeps the last [`CAPACITY`] bytes, so a
//! trap can be explained by the guest's last words (a Rust panic message)
//! however much it wrote before. A write never fails and never blocks: a
//! chatty guest loses its oldest output, not its call.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Bytes of a guest's stderr kept per instance.
pub const CAPACITY: usize = 4096;

/// Cloned into the WASI context; every clone writes to the same ring.
#[derive(Clone, Default)]
pub struct StderrRing(Arc<Mutex<VecDeque<u8>>>);

impl StderrRing {
    /// What the ring holds now, oldest byte first.
    pub fn contents(&self) -> Vec<u8> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().copied().collect()
    }

    fn push(&self, bytes: &[u8]) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let keep = &bytes[bytes.len().saturating_sub(CAPACITY)..];
        let overflow = (ring.len() + keep.len()).saturating_sub(CAPACITY);
        let len = ring.len();
        ring.drain(..overflow.min(len));
        ring.extend(keep);
    }
}

impl AsyncWrite for StderrRing {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for StderrRing {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrRing {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_whatever_is_written() {
        let ring = StderrRing::default();
        ring.push(b"hello ");
        ring.push(b"world");
        assert_eq!(ring.contents(), b"hello world");
        for _ in 0..100 {
            ring.push(&[b'x'; 1000]);
        }
        ring.push(b"last words");
        let got = ring.contents();
        assert_eq!(got.len(), CAPACITY);
        assert!(got.ends_with(b"xlast words"));
        ring.push(&vec![b'y'; 3 * CAPACITY]);
        assert_eq!(ring.contents(), vec![b'y'; CAPACITY]);
    }
}
