//! Scheduler hot paths: the front-door check, engine admission (predicted wait + the in-flight
//! CAS), the per-batch service-time fit, and forming batches from the queue.

use std::hint::black_box;
use std::time::Duration;

use ballast_core::{Tensor, TensorData};
use ballast_serve::scheduler::admission::WaitGate;
use ballast_serve::scheduler::batcher::{BatchState, Entry};
use ballast_serve::scheduler::limiter::ConcurrencyLimiter;
use ballast_serve::{FrontDoor, Priority};
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
    let limiter = ConcurrencyLimiter::new(1024);
    c.bench_function("in_flight_acquire_and_release", |b| {
        b.iter(|| black_box(limiter.try_acquire()).is_some())
    });
    let door = FrontDoor::new(Duration::from_millis(5));
    c.bench_function("front_door_check", |b| {
        b.iter(|| door.check(black_box(Priority::Default)).is_ok())
    });
    let gate = WaitGate::new(64, 1, Duration::from_millis(5));
    gate.service.observe(1, Duration::from_micros(10));
    gate.service.observe(64, Duration::from_micros(60));
    c.bench_function("wait_gate_admit_and_release", |b| {
        b.iter(|| {
            let ok = gate
                .try_admit(black_box(Priority::Default), 1, None)
                .is_ok();
            gate.release(1);
            ok
        })
    });
    c.bench_function("service_model_observe", |b| {
        b.iter(|| {
            gate.service
                .observe(black_box(64), Duration::from_micros(60))
        })
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
