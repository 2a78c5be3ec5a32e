//! One scheduler per served model version: admission ([`admission`]: predicted queue wait
//! against priority budgets and deadlines; [`limiter`]: the hard in-flight bound), a bounded queue and the
//! dynamic batcher ([`batcher`]), and dedicated engine threads ([`worker`]).
//!
//! ```text
//! admit() ──slot────▶ submit(entry) ──mpsc──▶ batcher task ──Job──▶ engine thread(s)
//!   │ refuse: 429        │ refuse: queue full      │ drop dead entries     │ deadline check, infer,
//!   ▼                    ▼                         ▼                       ▼ split, reply (oneshot)
//! ```

pub mod admission;
pub mod batcher;
pub mod limiter;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ballast_core::{Error, ErrorCode, ModelConfig};
use ballast_engine::Backend;
use tokio::sync::{Semaphore, mpsc};

use crate::context::Priority;
use crate::lifecycle::{Lifecycle, Stage};
use crate::metrics::{ModelMetrics, Rejection};
use admission::{Refusal, WaitGate};
use batcher::{BatchState, BatcherTask, Entry};
use limiter::{ConcurrencyLimiter, Permit};

pub struct Scheduler {
    tx: mpsc::UnboundedSender<Entry>,
    queued: Arc<AtomicUsize>,
    max_queue_size: usize,
    limiter: Arc<ConcurrencyLimiter>,
    gate: Arc<WaitGate>,
    metrics: ModelMetrics,
}

/// An admitted slot: the in-flight permit and the rows reserved in the queue estimate.
pub struct Slot {
    _permit: Permit,
    reserved: usize,
    gate: Arc<WaitGate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Rows still reserved here never reached the queue (the request failed or left first).
        self.gate.release(self.reserved);
    }
}

impl Scheduler {
    /// Starts the batcher on the current tokio runtime and `config.instances` engine threads,
    /// all owned by `life`'s [`Stage::Engines`]: they end when the scheduler is dropped (its
    /// queue closes, the batcher returns, the engine threads see their job channel close).
    pub fn start(
        model: Arc<str>,
        backend: Arc<dyn Backend>,
        config: &ModelConfig,
        metrics: ModelMetrics,
        life: &Lifecycle,
    ) -> Result<Self, Error> {
        let per_call = config.max_batch_size.max(1);
        // `min_concurrency` once bounded an adaptive limit from below; it now only raises the
        // default hard bound, so configs that set it keep admitting at least that many.
        let max_limit = config.max_concurrency.unwrap_or(
            (config.max_queue_size + per_call * config.instances)
                .max(config.min_concurrency.unwrap_or(0)),
        );
        let limiter = ConcurrencyLimiter::new(max_limit);
        metrics.concurrency_limit.set(limiter.limit() as f64);
        // Waiting to fill a batch is queueing by design: budget above it.
        let target = config.target_queue_delay.max(config.max_queue_delay * 2);
        let gate = Arc::new(WaitGate::new(
            config.max_batch_size,
            config.instances,
            target,
        ));

        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        for i in 0..config.instances {
            let worker = worker::Worker {
                backend: backend.clone(),
                jobs: jobs_rx.clone(),
                gate: gate.clone(),
                metrics: metrics.clone(),
                model: model.clone(),
            };
            life.spawn_thread(Stage::Engines, format!("engine-{model}-{i}"), move || {
                worker.run()
            })
            .map_err(|e| Error::internal(format!("cannot start engine thread: {e}")))?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let task = BatcherTask {
            rx,
            state: BatchState::new(config.max_batch_size),
            max_queue_delay: config.max_queue_delay,
            engine_slots: Arc::new(Semaphore::new(config.instances)),
            jobs: jobs_tx,
            queued: queued.clone(),
            gate: gate.clone(),
            metrics: metrics.clone(),
        };
        life.spawn(Stage::Engines, task.run());
        Ok(Self {
            tx,
            queued,
            max_queue_size: config.max_queue_size,
            limiter,
            gate,
            metrics,
        })
    }

    fn refusal_error(&self, model: &str, priority: Priority, refusal: Refusal) -> Error {
        let message = match refusal {
            Refusal::Budget { wait, budget } => {
                self.metrics.rejected(Rejection::QueueBudget);
                format!(
                    "model '{model}' is overloaded: a new request would wait {:.1} ms in its queue (budget for {priority} requests: {:.1} ms); retry later",
                    wait * 1e3,
                    budget * 1e3
                )
            }
            Refusal::Deadline { finish, left } => {
                self.metrics.rejected(Rejection::DeadlineUnmeetable);
                format!(
                    "model '{model}' cannot answer within the request's deadline: predicted {:.1} ms, {:.1} ms left; no inference was run",
                    finish * 1e3,
                    left * 1e3
                )
            }
        };
        Error::new(ErrorCode::ResourceExhausted, message)
    }

    /// Admits a request or refuses it at once (RESOURCE_EXHAUSTED): over the hard in-flight
    /// bound, over its class's queue budget, or unable to meet its deadline. `rows` is the
    /// request's row count when known (else the recent mean is reserved).
    pub fn admit(
        &self,
        model: &str,
        priority: Priority,
        rows: Option<usize>,
        left: Option<Duration>,
    ) -> Result<Slot, Error> {
        let rows = rows.unwrap_or_else(|| self.gate.estimated_rows());
        if let Err(refusal) = self.gate.try_admit(priority, rows, left) {
            return Err(self.refusal_error(model, priority, refusal));
        }
        let slot = |permit| Slot {
            _permit: permit,
            reserved: rows,
            gate: self.gate.clone(),
        };
        match self.limiter.try_acquire() {
            Some(permit) => Ok(slot(permit)),
            None => {
                self.gate.release(rows);
                self.metrics.rejected(Rejection::ConcurrencyLimit);
                Err(Error::new(
                    ErrorCode::ResourceExhausted,
                    format!(
                        "model '{model}' is at its concurrency limit ({} requests in flight, max_concurrency); retry later",
                        self.limiter.limit()
                    ),
                ))
            }
        }
    }

    /// Queues an admitted request, or refuses it when the queue is at `max_queue_size` or when,
    /// now that its rows, priority and deadline are all known, it no longer fits.
    pub fn submit(
        &self,
        model: &str,
        slot: &mut Slot,
        priority: Priority,
        entry: Entry,
    ) -> Result<(), Error> {
        self.gate.correct(slot.reserved, entry.rows);
        slot.reserved = entry.rows;
        if let Err(refusal) = self.gate.recheck(
            priority,
            entry.rows,
            entry
                .deadline
                .map(|d| d.saturating_duration_since(entry.enqueued)),
        ) {
            return Err(self.refusal_error(model, priority, refusal));
        }
        let depth = self.queued.fetch_add(1, Ordering::AcqRel);
        if depth >= self.max_queue_size {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.metrics.rejected(Rejection::QueueFull);
            return Err(Error::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "model '{model}' queue is full ({} requests, max_queue_size); retry later",
                    self.max_queue_size
                ),
            ));
        }
        self.metrics.queue_depth.set((depth + 1) as f64);
        // From here the queue owns the rows: the batcher releases them when their batch starts
        // or the entry is dropped.
        slot.reserved = 0;
        self.tx.send(entry).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.gate.release(e.0.rows);
            Error::unavailable(format!("model '{model}' is shutting down"))
        })
    }

    pub fn in_flight(&self) -> usize {
        self.limiter.in_flight()
    }

    pub fn concurrency_limit(&self) -> usize {
        self.limiter.limit()
    }

    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn gate(&self) -> &WaitGate {
        &self.gate
    }
}
