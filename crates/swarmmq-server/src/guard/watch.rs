//! The read-side deadlines of one connection.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::{Guard, later};

/// Why a connection's read side gave up on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A frame was started and not finished within `frame_timeout` (slow-loris).
    Frame(Duration),
    /// Nothing in flight and no request for `idle_timeout`.
    Idle(Duration),
}

/// Tracks when the current partial frame started and when the last whole request came
/// in, and keeps one timer armed at (or before) the nearer deadline.
///
/// The timer is only moved earlier on the hot path; when it fires early (because a
/// request came in since it was set), [`ConnWatch::check`] moves it to the real
/// deadline. So a busy connection touches its timer about once per deadline period,
/// not once per read.
#[derive(Debug)]
pub(crate) struct ConnWatch {
    frame_timeout: Duration,
    idle_timeout: Duration,
    frame_started: Option<Instant>,
    last_request: Instant,
    timer: Pin<Box<Sleep>>,
}

impl ConnWatch {
    pub fn new(guard: &Guard) -> Self {
        let now = Instant::now();
        ConnWatch {
            frame_timeout: guard.frame_timeout,
            idle_timeout: guard.idle_timeout,
            frame_started: None,
            last_request: now,
            timer: Box::pin(tokio::time::sleep_until(later(now, guard.idle_timeout))),
        }
    }

    /// After the framer ran over the read buffer: `frames` whole frames came off it and
    /// `partial` says whether bytes of a next frame wait in it.
    pub fn framed(&mut self, frames: usize, partial: bool) {
        let now = Instant::now();
        if frames > 0 {
            self.last_request = now;
            self.frame_started = None;
        }
        if !partial {
            self.frame_started = None;
        } else if self.frame_started.is_none() {
            self.frame_started = Some(now);
        }
        let due = self.due();
        if due < self.timer.deadline() {
            self.timer.as_mut().reset(due);
        }
    }

    /// The nearer deadline: the partial frame's, or else the idle one.
    fn due(&self) -> Instant {
        match self.frame_started {
            Some(started) => later(started, self.frame_timeout),
            None => later(self.last_request, self.idle_timeout),
        }
    }

    /// Resolves when the timer fires; then call [`ConnWatch::check`].
    pub async fn fired(&mut self) {
        self.timer.as_mut().await;
    }

    /// After [`ConnWatch::fired`]: the reason to close the connection, or `None` (the
    /// timer is then re-armed at the real deadline). A connection idle past its
    /// deadline but with a request still running (a long poll, a slow fsync) is not
    /// idle: the clock restarts.
    pub fn check(&mut self, in_flight: bool) -> Option<Expiry> {
        let now = Instant::now();
        if let Some(started) = self.frame_started {
            if now >= later(started, self.frame_timeout) {
                return Some(Expiry::Frame(self.frame_timeout));
            }
        } else if now >= later(self.last_request, self.idle_timeout) {
            if !in_flight {
                return Some(Expiry::Idle(self.idle_timeout));
            }
            self.last_request = now;
        }
        let due = self.due();
        self.timer.as_mut().reset(due);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(frame_ms: u64, idle_ms: u64) -> Guard {
        Guard::new(
            Duration::from_millis(frame_ms),
            Duration::from_millis(idle_ms),
        )
    }

    /// Waits for the timer, returning the first expiry and how long it took.
    async fn run(w: &mut ConnWatch, in_flight: bool) -> (Expiry, Duration) {
        let start = Instant::now();
        loop {
            w.fired().await;
            if let Some(e) = w.check(in_flight) {
                return (e, start.elapsed());
            }
        }
    }

    #[tokio::test]
    async fn a_started_frame_must_finish_in_time() {
        let mut w = ConnWatch::new(&guard(100, 10_000));
        w.framed(0, true);
        // More bytes of the same frame do not restart the clock.
        tokio::time::sleep(Duration::from_millis(50)).await;
        w.framed(0, true);
        let (e, took) = run(&mut w, false).await;
        assert_eq!(e, Expiry::Frame(Duration::from_millis(100)));
        assert!(took < Duration::from_millis(1000), "{took:?}");
    }

    #[tokio::test]
    async fn finished_frames_restart_the_frame_clock() {
        let mut w = ConnWatch::new(&guard(100, 10_000));
        let start = Instant::now();
        // A pipelining peer: every read ends inside a next frame, but frames complete.
        for _ in 0..6 {
            w.framed(0, true);
            tokio::time::sleep(Duration::from_millis(40)).await;
            w.framed(2, true);
        }
        assert!(start.elapsed() > Duration::from_millis(200));
        w.framed(1, false);
        tokio::select! {
            _ = w.fired() => assert_eq!(w.check(false), None, "idle deadline is far"),
            _ = tokio::time::sleep(Duration::from_millis(150)) => {}
        }
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_unless_a_request_runs() {
        let mut w = ConnWatch::new(&guard(50, 100));
        let (e, _) = run(&mut w, false).await;
        assert_eq!(e, Expiry::Idle(Duration::from_millis(100)));

        let mut w = ConnWatch::new(&guard(50, 100));
        w.fired().await;
        assert_eq!(w.check(true), None, "a running request keeps it open");
        let (e, took) = run(&mut w, false).await;
        assert_eq!(e, Expiry::Idle(Duration::from_millis(100)));
        assert!(took >= Duration::from_millis(90), "{took:?}");
    }
}
