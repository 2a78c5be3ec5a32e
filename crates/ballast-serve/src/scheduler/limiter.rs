//! Adaptive concurrency limit: how many requests a model version admits at once.
//!
//! A gradient controller in the family of Netflix's Gradient2 and Envoy's adaptive concurrency
//! filter, steering on the quantity ballast actually wants to bound — the time requests wait in
//! the queue — rather than on total RTT against a measured no-load minimum. Envoy's design
//! re-measures its minimum RTT by periodically collapsing the limit, shedding healthy traffic;
//! targeting queueing delay directly needs no such probe, because a queue delay of zero *is* the
//! no-load baseline whatever the model's compute time.
//!
//! Every window (≥ 50 ms and ≥ 8 samples, or 1,000 samples):
//! - `gradient = clamp(target / mean_queue_delay, 0.5, 1.0)`;
//! - `new = gradient · limit + headroom`, `headroom = √limit` only when queueing is on target
//!   and the window saw at least half the limit in flight (an app-limited server must not
//!   inflate its limit) — additive increase, multiplicative decrease;
//! - decreases apply at once (overload needs a fast answer), increases are smoothed (×0.2);
//! - the limit stays within `[min, max]`; `min` covers two full batches per engine thread (one
//!   computing, one waiting) so the limiter itself never starves the engine.
//! - it starts at `max(2·min, 20)` (Gradient2's initial 20), so a cold server admits a burst.
//!
//! Admission is a single compare-and-swap on the in-flight counter: refusing is as cheap as
//! accepting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

const WINDOW_MIN_DURATION: Duration = Duration::from_millis(50);
const WINDOW_MIN_SAMPLES: usize = 8;
const WINDOW_MAX_SAMPLES: usize = 1000;
const INCREASE_SMOOTHING: f64 = 0.2;

#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    pub target_queue_delay: Duration,
    pub min_limit: usize,
    pub max_limit: usize,
    /// Where the limit starts before any measurement (clamped to `[min, max]`).
    pub initial_limit: usize,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    samples: usize,
    delay_sum: Duration,
    peak_in_flight: usize,
}

#[derive(Debug)]
pub struct ConcurrencyLimiter {
    config: LimiterConfig,
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    /// The smoothed limit as a float, and the current sample window.
    state: Mutex<(f64, Window)>,
}

/// Holds one admitted slot; dropping it releases the slot.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<ConcurrencyLimiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConcurrencyLimiter {
    pub fn new(config: LimiterConfig) -> Arc<Self> {
        let min = config.min_limit.max(1);
        let max = config.max_limit.max(min);
        let config = LimiterConfig {
            min_limit: min,
            max_limit: max,
            initial_limit: config.initial_limit.clamp(min, max),
            ..config
        };
        Arc::new(Self {
            config,
            in_flight: AtomicUsize::new(0),
            limit: AtomicUsize::new(config.initial_limit),
            state: Mutex::new((
                config.initial_limit as f64,
                Window {
                    started: Instant::now(),
                    samples: 0,
                    delay_sum: Duration::ZERO,
                    peak_in_flight: 0,
                },
            )),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admits one request if the limit allows; never waits.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let limit = self.limit();
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        limiter: self.clone(),
                    });
                }
                Err(now) => current = now,
            }
        }
    }

    /// Feeds one observed queueing delay; may move the limit. Returns the new limit when it
    /// changed.
    pub fn record(&self, queue_delay: Duration, now: Instant) -> Option<usize> {
        let in_flight = self.in_flight();
        let mut guard = self.state.lock();
        let (smoothed, window) = &mut *guard;
        window.samples += 1;
        window.delay_sum += queue_delay;
        window.peak_in_flight = window.peak_in_flight.max(in_flight);
        let elapsed = now.saturating_duration_since(window.started);
        let full = window.samples >= WINDOW_MAX_SAMPLES
            || (window.samples >= WINDOW_MIN_SAMPLES && elapsed >= WINDOW_MIN_DURATION);
        if !full {
            return None;
        }
        let mean = window.delay_sum.as_secs_f64() / window.samples as f64;
        let limit = *smoothed;
        let target = self.config.target_queue_delay.as_secs_f64();
        let gradient = if mean <= 0.0 {
            1.0
        } else {
            (target / mean).clamp(0.5, 1.0)
        };
        let app_limited = (window.peak_in_flight as f64) < limit / 2.0;
        // Grow only while queueing is on target and the limit is actually used; above target,
        // shrink multiplicatively with no headroom added (AIMD), so overload is answered fast.
        let headroom = if app_limited || gradient < 1.0 {
            0.0
        } else {
            limit.sqrt()
        };
        let proposed = gradient * limit + headroom;
        let next = if proposed < limit {
            proposed
        } else {
            limit * (1.0 - INCREASE_SMOOTHING) + proposed * INCREASE_SMOOTHING
        };
        let next = next.clamp(self.config.min_limit as f64, self.config.max_limit as f64);
        *smoothed = next;
        *window = Window {
            started: now,
            samples: 0,
            delay_sum: Duration::ZERO,
            peak_in_flight: in_flight,
        };
        let rounded = (next.round() as usize).max(1);
        let before = self.limit.swap(rounded, Ordering::AcqRel);
        (before != rounded).then_some(rounded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(min: usize, max: usize) -> Arc<ConcurrencyLimiter> {
        ConcurrencyLimiter::new(LimiterConfig {
            target_queue_delay: Duration::from_millis(5),
            min_limit: min,
            max_limit: max,
            initial_limit: min,
        })
    }

    /// Drives `windows` full windows with a fixed delay while keeping `in_flight` permits held.
    /// The clock is the limiter's own window start, so consecutive calls keep advancing it.
    fn drive(l: &Arc<ConcurrencyLimiter>, delay: Duration, in_flight: usize, windows: usize) {
        let mut now = l.state.lock().1.started;
        let held: Vec<Permit> = (0..in_flight).filter_map(|_| l.try_acquire()).collect();
        for _ in 0..windows {
            now += WINDOW_MIN_DURATION;
            for _ in 0..WINDOW_MIN_SAMPLES {
                l.record(delay, now);
            }
        }
        drop(held);
    }

    #[test]
    fn refuses_beyond_the_limit_and_releases_on_drop() {
        let l = limiter(2, 2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn grows_while_queueing_stays_under_target_and_the_limit_is_used() {
        let l = limiter(4, 1000);
        for _ in 0..20 {
            let limit = l.limit();
            drive(&l, Duration::from_millis(1), limit, 1);
        }
        assert!(l.limit() > 8, "limit {}", l.limit());
    }

    #[test]
    fn does_not_grow_when_app_limited() {
        let l = limiter(16, 1000);
        drive(&l, Duration::from_millis(1), 2, 30);
        assert_eq!(l.limit(), 16);
    }

    #[test]
    fn shrinks_quickly_when_queueing_exceeds_target() {
        let l = limiter(4, 1000);
        for _ in 0..40 {
            let limit = l.limit();
            drive(&l, Duration::from_millis(1), limit, 1);
        }
        let high = l.limit();
        drive(&l, Duration::from_millis(50), high, 3);
        assert!(l.limit() * 4 <= high, "from {high} to {}", l.limit());
        drive(&l, Duration::from_millis(50), l.limit(), 20);
        assert_eq!(l.limit(), 4, "never below min");
    }

    proptest::proptest! {
        #[test]
        fn limit_stays_within_bounds(delays in proptest::collection::vec(0u64..100_000, 1..400), min in 1usize..50, extra in 0usize..500) {
            let l = limiter(min, min + extra);
            let mut now = Instant::now();
            for d in delays {
                now += Duration::from_millis(7);
                l.record(Duration::from_micros(d), now);
                proptest::prop_assert!(l.limit() >= min && l.limit() <= min + extra);
            }
        }
    }
}
