//! A writer that fails when the peer stops taking bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

/// Wraps the write half of a connection: a write, flush or shutdown that makes no
/// progress for `limit` fails with `TimedOut` (and raises the shared `stalled` flag),
/// so a peer that sends requests but never reads the answers cannot pin a session,
/// its permits and its buffers forever. A slow reader that keeps taking bytes is fine:
/// the clock restarts whenever the socket accepts some.
#[derive(Debug)]
pub(crate) struct TimedWrite<W> {
    inner: W,
    limit: Duration,
    /// Allocated on the first stall and reused; `armed` says whether it is counting.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    stalled: Arc<AtomicBool>,
}

impl<W> TimedWrite<W> {
    pub fn new(inner: W, limit: Duration, stalled: Arc<AtomicBool>) -> Self {
        TimedWrite {
            inner,
            limit,
            timer: None,
            armed: false,
            stalled,
        }
    }

    /// Called when the inner writer is not ready: starts or checks the stall clock.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let deadline = super::later(Instant::now(), self.limit);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.armed = false;
                self.stalled.store(true, Ordering::Relaxed);
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the peer took no bytes for {:?}", self.limit),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match p {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx).map(Err),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for TimedWrite<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(cx, p)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(cx, p)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(cx, p)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_peer_that_stops_reading_fails_the_write_after_the_limit() {
        // A pipe with a small buffer whose reader never reads.
        let (client, _server_keeps_quiet) = tokio::io::duplex(1024);
        let stalled = Arc::new(AtomicBool::new(false));
        let mut w = TimedWrite::new(client, Duration::from_millis(200), Arc::clone(&stalled));
        let started = std::time::Instant::now();
        let err = w.write_all(&[7u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(stalled.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_is_not_cut() {
        use tokio::io::AsyncReadExt;
        let (client, mut server) = tokio::io::duplex(1024);
        let stalled = Arc::new(AtomicBool::new(false));
        let mut w = TimedWrite::new(client, Duration::from_millis(300), Arc::clone(&stalled));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut chunk = [0u8; 512];
            // 16 KiB at 512 bytes per 20 ms: well over the limit in total, never
            // stalled for long.
            while total < 16 * 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += server.read(&mut chunk).await.unwrap();
            }
            total
        });
        w.write_all(&[1u8; 16 * 1024]).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), 16 * 1024);
        assert!(!stalled.load(Ordering::Relaxed));
    }
}
