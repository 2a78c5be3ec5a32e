//! Engine admission: admit a request only if the wait it would find in this model's queue fits
//! both its own deadline and its priority class's queue budget.
//!
//! This replaced an adaptive concurrency limit (AIMD on measured queue delay), which the
//! overload profile showed to be wrong in two ways: on a shared core the measured queue delay
//! includes time the engine thread waits for the CPU, so the limit collapsed below capacity and
//! refused a third of the traffic at 0.8× load; and shrinking the limit shrinks the batches, so
//! the engine got slower exactly when batching was needed.
//!
//! - **Service model.** Engine threads report every batch (rows, wall time); [`ServiceModel`]
//!   fits `time(rows) = per_call + per_row · rows` by exponentially weighted least squares, so
//!   the wait of `Q` queued rows is `⌈Q / max_batch⌉ · per_call + Q · per_row`, divided by the
//!   engine threads. Warm-up runs a one-row and a full batch, so the fit starts identified; while
//!   every recent batch has the same size the slope is kept and only the level follows the
//!   measurements (a shared core slows both).
//! - **Queue budget.** `max(target_queue_delay, two full batches)`: under sustained overload
//!   every admitted request waits about its budget, so the budget is the latency overload costs;
//!   two batches keep the engine fed, so throughput never pays for it. Classes scale it
//!   (critical 4×, default 1×, sheddable ½×, shadow ¼×): the queue settles at the budget of the
//!   class being partly admitted, lower classes are refused entirely, higher ones never.
//! - **Deadline.** A request whose predicted wait plus its own compute would end after its
//!   deadline is refused now, with RESOURCE_EXHAUSTED, instead of timing out later having held a
//!   queue slot.
//! - **Accounting.** Rows are reserved at admission — an estimate (the recent mean rows per
//!   request) for HTTP requests admitted before their body is read — corrected when the request is
//!   queued, and released when its batch starts. A burst of concurrent admissions therefore sees
//!   itself.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::context::Priority;

/// Weight of the newest batch in the service-time fit (about the last 50 batches count).
const FIT_DECAY: f64 = 0.98;
/// Batch-size variance below which the fit's slope is not re-estimated.
const MIN_ROW_VARIANCE: f64 = 0.5;

#[derive(Debug, Default, Clone, Copy)]
struct Fit {
    w: f64,
    sb: f64,
    st: f64,
    sbb: f64,
    sbt: f64,
    per_call: f64,
    per_row: f64,
}

/// `time(rows) ≈ per_call + per_row · rows`, fitted on recent batches (seconds).
#[derive(Debug, Default)]
pub struct ServiceModel {
    fit: Mutex<Fit>,
    per_call_bits: AtomicU64,
    per_row_bits: AtomicU64,
}

impl ServiceModel {
    /// Records one engine call of `rows` rows that took `took`.
    pub fn observe(&self, rows: usize, took: Duration) {
        let b = rows.max(1) as f64;
        let t = took.as_secs_f64();
        let mut f = self.fit.lock();
        f.w = f.w * FIT_DECAY + 1.0;
        f.sb = f.sb * FIT_DECAY + b;
        f.st = f.st * FIT_DECAY + t;
        f.sbb = f.sbb * FIT_DECAY + b * b;
        f.sbt = f.sbt * FIT_DECAY + b * t;
        let mean_b = f.sb / f.w;
        let mean_t = f.st / f.w;
        let var_b = f.sbb / f.w - mean_b * mean_b;
        if var_b >= MIN_ROW_VARIANCE {
            let cov = f.sbt / f.w - mean_b * mean_t;
            let slope = (cov / var_b).max(0.0);
            f.per_row = slope;
            f.per_call = (mean_t - slope * mean_b).max(0.0);
        } else if f.per_row == 0.0 && f.per_call == 0.0 {
            // One batch size seen so far: all of it per call (cheapest guess for bigger ones
            // would be wrong both ways; this one errs towards admitting).
            f.per_call = mean_t;
        } else {
            // Same size every time: keep the shape, follow the level.
            let predicted = f.per_call + f.per_row * mean_b;
            if predicted > 0.0 {
                let scale = mean_t / predicted;
                f.per_call *= scale;
                f.per_row *= scale;
            }
        }
        self.per_call_bits
            .store(f.per_call.to_bits(), Ordering::Relaxed);
        self.per_row_bits
            .store(f.per_row.to_bits(), Ordering::Relaxed);
    }

    /// (per call, per row), seconds.
    pub fn coefficients(&self) -> (f64, f64) {
        (
            f64::from_bits(self.per_call_bits.load(Ordering::Relaxed)),
            f64::from_bits(self.per_row_bits.load(Ordering::Relaxed)),
        )
    }

    /// Predicted engine time for `rows` rows split into calls of at most `max_batch` rows
    /// (0: one call per request of `rows_per_request`).
    pub fn time_for(&self, rows: f64, max_batch: usize, rows_per_request: f64) -> f64 {
        let (per_call, per_row) = self.coefficients();
        let per_batch = if max_batch == 0 {
            rows_per_request.max(1.0)
        } else {
            max_batch as f64
        };
        (rows / per_batch).ceil() * per_call + rows * per_row
    }
}

/// Why the engine gate refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// The predicted wait exceeds the class's queue budget (seconds: wait, budget).
    Budget { wait: f64, budget: f64 },
    /// The request would finish after its deadline (seconds: wait + compute, time left).
    Deadline { finish: f64, left: f64 },
}

/// Queue state and the admission rule for one model version.
#[derive(Debug)]
pub struct WaitGate {
    pub service: ServiceModel,
    /// Rows admitted and not yet handed to an engine thread.
    waiting_rows: AtomicUsize,
    /// Mean rows per request (f64 bits), for requests admitted before they are decoded.
    rows_per_request_bits: AtomicU64,
    max_batch: usize,
    instances: f64,
    target: f64,
}

impl WaitGate {
    pub fn new(max_batch: usize, instances: usize, target: Duration) -> Self {
        Self {
            service: ServiceModel::default(),
            waiting_rows: AtomicUsize::new(0),
            rows_per_request_bits: AtomicU64::new(1.0f64.to_bits()),
            max_batch,
            instances: instances.max(1) as f64,
            target: target.as_secs_f64(),
        }
    }

    pub fn waiting_rows(&self) -> usize {
        self.waiting_rows.load(Ordering::Relaxed)
    }

    fn rows_per_request(&self) -> f64 {
        f64::from_bits(self.rows_per_request_bits.load(Ordering::Relaxed))
    }

    /// A request's rows when they are not known yet.
    pub fn estimated_rows(&self) -> usize {
        (self.rows_per_request().round() as usize).max(1)
    }

    /// Seconds a request arriving now would wait for the rows ahead of it.
    pub fn predicted_wait(&self) -> f64 {
        let rows = self.waiting_rows() as f64;
        self.service
            .time_for(rows, self.max_batch, self.rows_per_request())
            / self.instances
    }

    /// The queue budget of `priority`, seconds.
    pub fn budget(&self, priority: Priority) -> f64 {
        let two_batches = 2.0
            * self
                .service
                .time_for(self.max_batch.max(1) as f64, self.max_batch, 1.0)
            / self.instances;
        self.target.max(two_batches) * priority.budget_factor()
    }

    /// Decides for a request of `rows` rows (an estimate before decode) with `left` time to
    /// its deadline. On success the rows are reserved; release them with [`Self::release`].
    pub fn try_admit(
        &self,
        priority: Priority,
        rows: usize,
        left: Option<Duration>,
    ) -> Result<(), Refusal> {
        let wait = self.predicted_wait();
        let budget = self.budget(priority);
        if wait > budget {
            return Err(Refusal::Budget { wait, budget });
        }
        if let Some(left) = left {
            let own = self
                .service
                .time_for(rows as f64, self.max_batch, rows as f64)
                / self.instances;
            let finish = wait + own;
            if finish > left.as_secs_f64() {
                return Err(Refusal::Deadline {
                    finish,
                    left: left.as_secs_f64(),
                });
            }
        }
        self.waiting_rows.fetch_add(rows, Ordering::Relaxed);
        Ok(())
    }

    /// Re-applies the rule to a request already holding `rows` reserved rows, once its real
    /// rows, priority and deadline are known (after decode). Reserves nothing.
    pub fn recheck(
        &self,
        priority: Priority,
        rows: usize,
        left: Option<Duration>,
    ) -> Result<(), Refusal> {
        let ahead = self.waiting_rows().saturating_sub(rows) as f64;
        let wait = self
            .service
            .time_for(ahead, self.max_batch, self.rows_per_request())
            / self.instances;
        let budget = self.budget(priority);
        if wait > budget {
            return Err(Refusal::Budget { wait, budget });
        }
        if let Some(left) = left {
            let finish = wait
                + self
                    .service
                    .time_for(rows as f64, self.max_batch, rows as f64)
                    / self.instances;
            if finish > left.as_secs_f64() {
                return Err(Refusal::Deadline {
                    finish,
                    left: left.as_secs_f64(),
                });
            }
        }
        Ok(())
    }

    /// Replaces an estimate reserved at admission with the request's real row count.
    pub fn correct(&self, reserved: usize, actual: usize) {
        if actual >= reserved {
            self.waiting_rows
                .fetch_add(actual - reserved, Ordering::Relaxed);
        } else {
            self.release(reserved - actual);
        }
        let old = self.rows_per_request();
        let new = old * 0.95 + actual as f64 * 0.05;
        self.rows_per_request_bits
            .store(new.to_bits(), Ordering::Relaxed);
    }

    /// Rows leave the queue (their batch started, or the request was dropped).
    pub fn release(&self, rows: usize) {
        let _ = self
            .waiting_rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(rows))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e3)
    }

    #[test]
    fn the_fit_recovers_per_call_and_per_row_costs() {
        let m = ServiceModel::default();
        // 100 µs per call + 10 µs per row.
        for i in 0..200 {
            let rows = [1usize, 8, 64, 32][i % 4];
            m.observe(rows, ms(0.1 + 0.01 * rows as f64));
        }
        let (call, row) = m.coefficients();
        assert!((call - 1e-4).abs() < 1e-6, "{call}");
        assert!((row - 1e-5).abs() < 1e-7, "{row}");
        // 130 queued rows at batch 64: 3 calls.
        let t = m.time_for(130.0, 64, 1.0);
        assert!((t - (3.0 * 1e-4 + 130.0 * 1e-5)).abs() < 1e-6, "{t}");
    }

    #[test]
    fn a_single_batch_size_keeps_the_shape_and_follows_the_level() {
        let m = ServiceModel::default();
        m.observe(1, ms(0.11));
        m.observe(64, ms(0.74));
        let (_, row_before) = m.coefficients();
        // The machine gets twice as slow, and only single rows arrive.
        for _ in 0..400 {
            m.observe(1, ms(0.22));
        }
        let (call, row) = m.coefficients();
        assert!((call + row - 0.22e-3).abs() < 1e-5, "{call} {row}");
        assert!(
            row > 0.5 * row_before,
            "slope kept, not dropped: {row_before} -> {row}"
        );
    }

    #[test]
    fn admits_while_the_wait_fits_and_sheds_lower_classes_first() {
        let gate = WaitGate::new(64, 1, Duration::from_millis(5));
        // 10 µs per call, 10 µs per row: a full batch takes 0.65 ms, so the budget is 5 ms.
        gate.service.observe(1, ms(0.02));
        gate.service.observe(64, ms(0.65));
        // Fill about 3 ms of work.
        for _ in 0..290 {
            gate.try_admit(Priority::Default, 1, None).unwrap();
        }
        let wait = gate.predicted_wait();
        assert!(wait > 2.5e-3 && wait < 3.5e-3, "{wait}");
        assert!(matches!(
            gate.try_admit(Priority::Sheddable, 1, None),
            Err(Refusal::Budget { .. })
        ));
        assert!(gate.try_admit(Priority::Default, 1, None).is_ok());
        assert!(matches!(
            gate.try_admit(Priority::Default, 1, Some(ms(1.0))),
            Err(Refusal::Deadline { .. })
        ));
        // Past the default budget only critical gets in.
        for _ in 0..300 {
            let _ = gate.try_admit(Priority::Default, 1, None);
        }
        assert!(gate.try_admit(Priority::Default, 1, None).is_err());
        assert!(gate.try_admit(Priority::Critical, 1, None).is_ok());
        // Batches start: the queue empties and everyone is admitted again.
        gate.release(10_000);
        assert_eq!(gate.waiting_rows(), 0);
        assert!(gate.try_admit(Priority::Shadow, 1, None).is_ok());
    }

    #[test]
    fn the_budget_always_covers_two_full_batches() {
        let gate = WaitGate::new(64, 1, Duration::from_millis(1));
        // A heavy model: 4 ms per full batch.
        gate.service.observe(1, ms(0.1));
        gate.service.observe(64, ms(4.0));
        assert!(gate.budget(Priority::Default) >= 8e-3 - 1e-9);
        let two = WaitGate::new(64, 2, Duration::from_millis(1));
        two.service.observe(1, ms(0.1));
        two.service.observe(64, ms(4.0));
        assert!((two.budget(Priority::Default) - 4e-3).abs() < 1e-4);
    }

    #[test]
    fn estimates_are_corrected_to_real_rows() {
        let gate = WaitGate::new(64, 1, Duration::from_millis(5));
        let est = gate.estimated_rows();
        assert_eq!(est, 1);
        gate.try_admit(Priority::Default, est, None).unwrap();
        gate.correct(est, 40);
        assert_eq!(gate.waiting_rows(), 40);
        gate.release(40);
        assert_eq!(gate.waiting_rows(), 0);
        gate.release(5);
        assert_eq!(gate.waiting_rows(), 0, "never below zero");
    }

    proptest::proptest! {
        #[test]
        fn predicted_wait_grows_with_the_queue(rows in proptest::collection::vec(1usize..100, 1..50)) {
            let gate = WaitGate::new(64, 1, Duration::from_millis(5));
            gate.service.observe(1, ms(0.05));
            gate.service.observe(64, ms(1.0));
            let mut last = gate.predicted_wait();
            for r in rows {
                let _ = gate.try_admit(Priority::Critical, r, None);
                let now = gate.predicted_wait();
                proptest::prop_assert!(now >= last);
                last = now;
            }
        }
    }
}
