//! Scheduler hot paths: admission (one CAS per request) and forming batches from the queue.

use std::hint::black_box;
use std::time::Duration;

use ballast_core::{Tensor, TensorData};
use ballast_serve::scheduler::batcher::{BatchState, Entry};
use ballast_serve::scheduler::limiter::{ConcurrencyLimiter, LimiterConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::time::Instant;

fn entry() -> Entry {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::mem::forget(rx); // keep the caller "alive" so entries are not skipped
    Entry {
        inputs: vec![
            Tensor::new("x", vec![1, 12], TensorData::F32(vec![0.5; 12]))
                .unwrap_or_else(|e| panic!("{e}")),
        ],
        rows: 1,
        enqueued: Instant::now(),
        deadline: None,
        reply: tx,
        span: tracing::Span::none(),
    }
}

fn scheduler(c: &mut Criterion) {
    let limiter = ConcurrencyLimiter::new(LimiterConfig {
        target_queue_delay: Duration::from_millis(5),
        min_limit: 128,
        max_limit: 1024,
        initial_limit: 256,
    });
    c.bench_function("admit_and_release", |b| {
        b.iter(|| black_box(limiter.try_acquire()).is_some())
    });
    c.bench_function("record_queue_delay", |b| {
        let now = Instant::now();
        b.iter(|| limiter.record(black_box(Duration::from_micros(700)), now))
    });
    c.bench_function("form_batch_of_64_from_256_queued", |b| {
        b.iter_batched(
            || {
                let mut s = BatchState::new(64);
                for _ in 0..256 {
                    s.push(entry());
                }
                s
            },
            |mut s| {
                let batch = s.next_batch();
                (s, batch) // dropped outside the timing
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
