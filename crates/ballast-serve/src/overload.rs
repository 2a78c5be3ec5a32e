//! The front door: refuses requests when the server's own event loop is the bottleneck, before a
//! request costs more than its headers.
//!
//! Why this exists (measured, see `docs/benchmarks.md`): with a light model the engine is never
//! the bottleneck — protocol work is. Past capacity, requests wait in socket buffers for the
//! event loop to reach them, where no per-model queue can see them: a per-model limit keeps its
//! queue short while every request waits seconds before it is even read, and goodput collapses.
//!
//! What it measures: [`FrontDoor::run_probe`] receives a timestamped datagram every
//! [`PROBE_INTERVAL`] through the runtime's I/O driver, the path a request takes, so its delay is
//! what a request arriving now waits before it is read. (A first version timed a task that
//! yielded; tokio runs such a task ahead of the queued connections, and it read under 1 ms while
//! requests waited seconds.) While a probe datagram is unread its age is a live lower bound on
//! that wait, so a stall is seen as it grows, not one sample later.
//!
//! What it decides: [`FrontDoor::check`] compares the *standing* lag (one that two measurements
//! in a row agree on, so a lone stall refuses nothing) with a per-priority budget (sheddable:
//! ½ target, default: 1×, critical: 4×). Refusing is bang-bang, as CoDel drops on
//! sojourn time: while the lag is over a class's budget every request of that class is refused
//! cheaply, which drains the run queue faster than serving would, and admission resumes as soon
//! as the lag is back under budget. Lower classes have smaller budgets, so they are always shed
//! first. Each check costs one clock read and two atomic loads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::lifecycle::{Lifecycle, Stage};
use ballast_core::{Error, ErrorCode};
use tokio::time::Instant;

use crate::context::Priority;

/// How often the probe measures: often enough to follow a spike within a few milliseconds,
/// rarely enough to cost nothing (one extra task poll per interval).
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// The event-loop lag a default-priority request may find before it is refused. A healthy loop
/// on one busy core measures tens of microseconds to ~1 ms; 10 ms is well past that (5 ms was
/// crossed by a model warm-up competing for the CPU on an unloaded test server), and small next
/// to any client's deadline.
pub const DEFAULT_FRONT_DOOR_TARGET: Duration = Duration::from_millis(10);

/// Requests that must be in flight before lag is blamed on them: a handful of requests cannot
/// make the event loop lag by milliseconds.
pub const MIN_BACKLOG: usize = 32;

/// Counts one request inside the entry while it lives.
pub struct Active<'a>(&'a FrontDoor);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Shared between the probe task and every front end.
#[derive(Debug)]
pub struct FrontDoor {
    base: Instant,
    /// Nanoseconds after `base` at which the oldest unread probe datagram was sent; 0 when
    /// none is unread.
    probe_started: AtomicU64,
    /// The last completed probe's lag, in nanoseconds.
    last_lag: AtomicU64,
    /// The one before it.
    prev_lag: AtomicU64,
    /// A lag floor an operator (or a test) imposes, nanoseconds; 0 normally.
    forced: AtomicU64,
    /// Requests inside the shared entry right now.
    active: AtomicUsize,
    budgets: [u64; 4],
    refused: [AtomicU64; 4],
    enabled: bool,
}

impl FrontDoor {
    /// `target`: the lag budget of default-priority requests; `Duration::ZERO` disables the
    /// front door (every check passes).
    pub fn new(target: Duration) -> Arc<Self> {
        let budgets = Priority::ALL.map(|p| (target.as_nanos() as f64 * p.budget_factor()) as u64);
        Arc::new(Self {
            base: Instant::now(),
            probe_started: AtomicU64::new(0),
            last_lag: AtomicU64::new(0),
            prev_lag: AtomicU64::new(0),
            forced: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            budgets,
            refused: Default::default(),
            enabled: !target.is_zero(),
        })
    }

    fn nanos_since_base(&self, t: Instant) -> u64 {
        // At least 1, so that 0 can mean "no probe in progress".
        (t.saturating_duration_since(self.base).as_nanos() as u64).max(1)
    }

    /// What a request arriving at `now` is estimated to have waited for the event loop.
    pub fn lag(&self, now: Instant) -> Duration {
        let last = self.last_lag.load(Ordering::Relaxed);
        let started = self.probe_started.load(Ordering::Relaxed);
        let live = if started == 0 {
            0
        } else {
            self.nanos_since_base(now).saturating_sub(started)
        };
        Duration::from_nanos(last.max(live).max(self.forced.load(Ordering::Relaxed)))
    }

    /// Makes the door see at least `lag` until set back to zero: for drills and end-to-end
    /// tests of shedding, where a real stall cannot be produced on demand.
    pub fn force_lag(&self, lag: Duration) {
        self.forced.store(lag.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The lag that has lasted: the smaller of the current lag and the last completed probe's
    /// (or of the last two probes'). A single stall — a warm-up or a collector competing for the
    /// CPU — lifts one measurement, not two in a row; a backlog lifts every one.
    pub fn standing_lag(&self, now: Instant) -> Duration {
        let forced = Duration::from_nanos(self.forced.load(Ordering::Relaxed));
        let last = self.last_lag.load(Ordering::Relaxed);
        let prev = self.prev_lag.load(Ordering::Relaxed);
        let current = self.lag(now).as_nanos() as u64;
        let standing = current.min(last).max(prev.min(last));
        Duration::from_nanos(standing).max(forced)
    }

    /// Admits or refuses a request of class `priority` at the door.
    pub fn check(&self, priority: Priority) -> Result<(), Error> {
        if !self.enabled {
            return Ok(());
        }
        let forced = self.forced.load(Ordering::Relaxed);
        let lag = self.standing_lag(Instant::now());
        let budget = self.budgets[priority.index()];
        if (lag.as_nanos() as u64) <= budget {
            return Ok(());
        }
        // A lag with few requests in flight is not a backlog of requests (a stall elsewhere:
        // a warm-up, a collector, a starved core); refusing would not shorten it.
        if forced == 0 && self.active.load(Ordering::Relaxed) < MIN_BACKLOG {
            return Ok(());
        }
        self.refused[priority.index()].fetch_add(1, Ordering::Relaxed);
        crate::metrics::front_door_refused(priority);
        Err(Error::new(
            ErrorCode::ResourceExhausted,
            format!(
                "the server is overloaded: requests wait {:.1} ms before they are read (budget for {priority} requests: {:.1} ms); retry later",
                lag.as_secs_f64() * 1e3,
                budget as f64 / 1e6
            ),
        ))
    }

    /// Marks a request as in flight until the guard drops.
    pub fn enter(&self) -> Active<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Active(self)
    }

    /// Requests refused at the door so far, by priority.
    pub fn refused(&self, priority: Priority) -> u64 {
        self.refused[priority.index()].load(Ordering::Relaxed)
    }

    /// Runs the probe until `stop`. A plain thread sends a timestamped datagram every
    /// [`PROBE_INTERVAL`] over a socket pair; this task receives them through the runtime's I/O
    /// driver — the path a client's request takes — so `receipt − send` is the wait a request
    /// arriving now has before it is read. (A task that only yields or sleeps measures less: the
    /// scheduler runs it ahead of the connections queued behind it.) While a datagram is unread,
    /// its age is a live lower bound.
    /// The task and the thread are owned by `life`'s [`Stage::Front`]; both end when it stops.
    pub async fn run_probe(self: Arc<Self>, life: Lifecycle) {
        let stop = life.token(Stage::Front);
        let (tx, rx) = match std::os::unix::net::UnixDatagram::pair() {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "front door: cannot create its probe socket; the front door stays open");
                return;
            }
        };
        let rx = match rx
            .set_nonblocking(true)
            .and_then(|()| tokio::net::UnixDatagram::from_std(rx))
        {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, "front door: cannot register its probe socket; the front door stays open");
                return;
            }
        };
        let door = self.clone();
        // Ends at its first send after this task returns (the receiving socket is gone).
        let sender = life.spawn_thread(Stage::Front, "front-door-probe".into(), move || {
            door.send_probes(&tx)
        });
        if let Err(e) = sender {
            tracing::warn!(error = %e, "front door: cannot start its probe thread; the front door stays open");
            return;
        }
        let mut buf = [0u8; 8];
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = rx.recv(&mut buf) => {
                    if got.is_err() {
                        return;
                    }
                }
            }
            let now = self.nanos_since_base(Instant::now());
            let mut oldest = u64::from_le_bytes(buf);
            // Drain what queued up behind it; the oldest send counts.
            while rx.try_recv(&mut buf).is_ok() {
                oldest = oldest.min(u64::from_le_bytes(buf));
            }
            self.probe_started.store(0, Ordering::Relaxed);
            let lag = now.saturating_sub(oldest);
            self.prev_lag
                .store(self.last_lag.load(Ordering::Relaxed), Ordering::Relaxed);
            self.last_lag.store(lag, Ordering::Relaxed);
            crate::metrics::front_door_lag(Duration::from_nanos(lag));
        }
    }

    /// The probe thread: a timestamp every interval until the receiving end is gone.
    fn send_probes(&self, tx: &std::os::unix::net::UnixDatagram) {
        loop {
            std::thread::sleep(PROBE_INTERVAL);
            let sent = self.nanos_since_base(Instant::now());
            // Marks the oldest unread probe; the receiver clears it.
            let _ =
                self.probe_started
                    .compare_exchange(0, sent, Ordering::Relaxed, Ordering::Relaxed);
            if tx.send(&sent.to_le_bytes()).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a test that hogs the runtime on purpose
mod tests {
    use super::*;

    #[test]
    fn an_idle_loop_admits_every_class() {
        let door = FrontDoor::new(Duration::from_millis(5));
        for p in Priority::ALL {
            assert!(door.check(p).is_ok());
        }
    }

    #[test]
    fn a_lagging_loop_sheds_lower_classes_first() {
        let door = FrontDoor::new(Duration::from_millis(4));
        // 3 ms of lag: over sheddable's 2 ms budget, under default's 4 ms.
        door.force_lag(Duration::from_millis(3));
        assert!(door.check(Priority::Sheddable).is_err());
        assert!(door.check(Priority::Default).is_ok());
        assert!(door.check(Priority::Critical).is_ok());
        door.force_lag(Duration::from_millis(10));
        let err = door.check(Priority::Default).unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceExhausted);
        assert!(err.message.contains("default"), "{}", err.message);
        assert!(door.check(Priority::Critical).is_ok(), "critical has 16 ms");
        assert_eq!(door.refused(Priority::Sheddable), 1);
        assert_eq!(door.refused(Priority::Default), 1);
    }

    #[test]
    fn lag_without_a_backlog_of_requests_refuses_nothing() {
        let door = FrontDoor::new(Duration::from_millis(4));
        door.last_lag.store(20_000_000, Ordering::Relaxed);
        door.prev_lag.store(20_000_000, Ordering::Relaxed);
        let few: Vec<_> = (0..MIN_BACKLOG - 1).map(|_| door.enter()).collect();
        assert!(
            door.check(Priority::Default).is_ok(),
            "a stall, not a backlog"
        );
        let one_more = door.enter();
        assert!(door.check(Priority::Default).is_err(), "a backlog");
        drop((few, one_more));
        assert!(door.check(Priority::Default).is_ok());
    }

    #[test]
    fn a_zero_target_disables_the_door() {
        let door = FrontDoor::new(Duration::ZERO);
        door.force_lag(Duration::from_secs(1));
        assert!(door.check(Priority::Sheddable).is_ok());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_probe_sees_a_busy_runtime() {
        let door = FrontDoor::new(Duration::from_millis(5));
        let life = Lifecycle::new();
        life.spawn(Stage::Front, door.clone().run_probe(life.clone()));
        // Let the probe start, then hog the only worker thread past the budget.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let hog = tokio::spawn(async {
            std::thread::sleep(Duration::from_millis(30));
        });
        let _ = hog.await;
        tokio::task::yield_now().await;
        // The probe has either measured the stall or is still inside it.
        let lag = door.lag(Instant::now());
        let stopped = life
            .stop(Stage::Front, Instant::now() + Duration::from_secs(2))
            .await;
        assert!(lag >= Duration::from_millis(20), "lag {lag:?}");
        assert!(
            stopped.is_clean(),
            "the probe's task and thread end: {stopped:?}"
        );
    }
}
