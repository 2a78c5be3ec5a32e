//! One scheduler per served model version: admission ([`limiter`]), a bounded queue and the
//! dynamic batcher ([`batcher`]), and dedicated engine threads ([`worker`]).
//!
//! ```text
//! admit() ──permit──▶ submit(entry) ──mpsc──▶ batcher task ──Job──▶ engine thread(s)
//!   │ refuse: 429        │ refuse: queue full      │ drop dead entries     │ deadline check, infer,
//!   ▼                    ▼                         ▼                       ▼ split, reply (oneshot)
//! ```

pub mod batcher;
pub mod limiter;
pub mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ballast_core::{Error, ErrorCode, ModelConfig};
use ballast_engine::Backend;
use tokio::sync::{Semaphore, mpsc};

use crate::metrics::{ModelMetrics, Rejection};
use batcher::{BatchState, BatcherTask, Entry};
use limiter::{ConcurrencyLimiter, LimiterConfig, Permit};

/// The adaptive limit never goes below 16 admitted requests by default: on a CPU-starved host,
/// thread wake-ups stretch queueing delay even for a short queue, and a limit pinned at 2 would
/// idle the engine between hand-offs (measured: goodput fell to 40 % at 2x overload).
pub const MIN_CONCURRENCY_FLOOR: usize = 16;

pub struct Scheduler {
    tx: mpsc::UnboundedSender<Entry>,
    queued: Arc<AtomicUsize>,
    max_queue_size: usize,
    limiter: Arc<ConcurrencyLimiter>,
    metrics: ModelMetrics,
}

impl Scheduler {
    /// Starts the batcher on the current tokio runtime and `config.instances` engine threads.
    pub fn start(
        model: Arc<str>,
        backend: Arc<dyn Backend>,
        config: &ModelConfig,
        metrics: ModelMetrics,
    ) -> Result<Self, Error> {
        let per_call = config.max_batch_size.max(1);
        let min_limit = config
            .min_concurrency
            .unwrap_or((2 * per_call * config.instances).max(MIN_CONCURRENCY_FLOOR));
        let max_limit = config
            .max_concurrency
            .unwrap_or(config.max_queue_size + per_call * config.instances);
        // Waiting to fill a batch is queueing by design: steer above it.
        let target = config.target_queue_delay.max(config.max_queue_delay * 2);
        let limiter = ConcurrencyLimiter::new(LimiterConfig {
            target_queue_delay: target,
            min_limit,
            max_limit,
            initial_limit: (2 * min_limit).max(20),
        });
        metrics.concurrency_limit.set(limiter.limit() as f64);

        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        for i in 0..config.instances {
            let worker = worker::Worker {
                backend: backend.clone(),
                jobs: jobs_rx.clone(),
                limiter: limiter.clone(),
                metrics: metrics.clone(),
                model: model.clone(),
            };
            std::thread::Builder::new()
                .name(format!("engine-{model}-{i}"))
                .spawn(move || worker.run())
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
            metrics: metrics.clone(),
        };
        tokio::spawn(task.run());
        Ok(Self {
            tx,
            queued,
            max_queue_size: config.max_queue_size,
            limiter,
            metrics,
        })
    }

    /// Admits a request or refuses it at once (RESOURCE_EXHAUSTED).
    pub fn admit(&self, model: &str) -> Result<Permit, Error> {
        self.limiter.try_acquire().ok_or_else(|| {
            self.metrics.rejected(Rejection::ConcurrencyLimit);
            Error::new(
                ErrorCode::ResourceExhausted,
                format!(
                    "model '{model}' is at its concurrency limit ({} requests in flight); retry later",
                    self.limiter.limit()
                ),
            )
        })
    }

    /// Queues an admitted request, or refuses it when the queue is at `max_queue_size`.
    pub fn submit(&self, model: &str, entry: Entry) -> Result<(), Error> {
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
        self.tx.send(entry).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
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
}
