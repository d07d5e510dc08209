//! Captured standard output and error with a byte cap.
//!
//! The head of the stream up to the cap is kept; everything after it is counted as
//! truncated and dropped. The guest's writes keep succeeding, so a program that prints
//! more than allowed still finishes with its own status; a guest that floods forever is
//! stopped by its time or fuel limit, and the worker's memory never grows past the cap.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

#[derive(Debug, Default)]
struct Captured {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// A capped in-memory sink for a guest's stdout or stderr; clones share one buffer.
#[derive(Debug, Clone)]
pub(crate) struct CappedPipe(Arc<Mutex<Captured>>);

/// How much a guest may write in one call before the host asks again.
const WRITE_PERMIT: usize = 64 * 1024;

impl CappedPipe {
    /// A pipe that keeps at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> Self {
        CappedPipe(Arc::new(Mutex::new(Captured {
            buf: Vec::new(),
            cap,
            truncated: false,
        })))
    }

    fn push(&self, bytes: &[u8]) {
        self.0.lock().expect("pipe lock").push(bytes);
    }

    /// The kept bytes and whether anything was dropped.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut c = self.0.lock().expect("pipe lock");
        (std::mem::take(&mut c.buf), c.truncated)
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_flags_truncation() {
        let p = CappedPipe::new(5);
        p.push(b"abc");
        p.push(b"defg");
        p.push(b"h");
        assert_eq!(p.take(), (b"abcde".to_vec(), true));
    }

    #[test]
    fn exact_fit_is_not_truncated() {
        let p = CappedPipe::new(3);
        p.push(b"abc");
        assert_eq!(p.take(), (b"abc".to_vec(), false));
    }
}
