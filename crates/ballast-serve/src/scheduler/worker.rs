//! Engine threads: plain OS threads fed by a channel, so inference never runs on the async
//! runtime. A worker re-checks deadlines right before compute (no inference starts after its
//! deadline), concatenates the batch, runs the engine and splits the outputs back by rows.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ballast_core::{Error, ErrorCode, Tensor, TensorData};
use ballast_engine::Backend;
use tokio::time::Instant;

use super::admission::WaitGate;
use super::batcher::{Entry, Job};
use crate::metrics::{ModelMetrics, Rejection};
use crate::request::Timing;

pub struct Worker {
    pub backend: Arc<dyn Backend>,
    pub jobs: crossbeam_channel::Receiver<Job>,
    pub gate: Arc<WaitGate>,
    pub metrics: ModelMetrics,
    pub model: Arc<str>,
}

impl Worker {
    pub fn run(self) {
        while let Ok(job) = self.jobs.recv() {
            self.run_job(job);
        }
    }

    fn run_job(&self, job: Job) {
        let start = Instant::now();
        let mut live = Vec::with_capacity(job.entries.len());
        for e in job.entries {
            if e.reply.is_closed() {
                self.metrics.rejected(Rejection::Cancelled);
            } else if e.expired(start) {
                self.metrics.rejected(Rejection::DeadlineExpired);
                let err = e.deadline_error();
                let _ = e.reply.send(Err(err));
            } else {
                let waited = start.saturating_duration_since(e.enqueued);
                if self.metrics.is_live() {
                    self.metrics.queue_duration.record(waited.as_secs_f64());
                }
                live.push(e);
            }
        }
        if live.is_empty() {
            return;
        }
        let rows: usize = live.iter().map(|e| e.rows).sum();
        let _span = live[0].span.clone().entered();
        let (inputs, owners) = concat(&mut live);
        let computed = catch_unwind(AssertUnwindSafe(|| self.backend.infer(inputs)));
        let compute = start.elapsed();
        self.gate.service.observe(rows, compute);
        if self.metrics.is_live() {
            self.metrics.compute_duration.record(compute.as_secs_f64());
            self.metrics.batch_size.record(rows as f64);
        }
        self.metrics.stats.execution(rows, compute);
        drop(job.slot);
        let outputs = match computed {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => {
                tracing::warn!(model = %self.model, error = %e, "engine call failed");
                let err = Error::new(e.code(), e.to_string());
                return reply_all(owners, &err);
            }
            Err(_) => {
                tracing::error!(model = %self.model, "engine panicked; the batch fails, the worker continues");
                return reply_all(
                    owners,
                    &Error::internal("the engine panicked while running this batch"),
                );
            }
        };
        let results = split(outputs, &owners, rows);
        for (owner, result) in owners.into_iter().zip(results) {
            let timing = Timing {
                queue: start.saturating_duration_since(owner.enqueued),
                compute,
                batch_rows: rows,
            };
            let _ = owner.reply.send(result.map(|o| (o, timing)));
        }
    }
}

/// What remains of an entry once its inputs are moved into the batch.
pub struct Owner {
    rows: usize,
    enqueued: Instant,
    reply: tokio::sync::oneshot::Sender<super::batcher::Reply>,
}

fn reply_all(owners: Vec<Owner>, err: &Error) {
    for o in owners {
        let _ = o.reply.send(Err(err.clone()));
    }
}

/// Moves the entries' inputs into one batch (no copy when the batch has a single entry).
fn concat(entries: &mut Vec<Entry>) -> (Vec<Tensor>, Vec<Owner>) {
    let owners_of = |e: Entry| Owner {
        rows: e.rows,
        enqueued: e.enqueued,
        reply: e.reply,
    };
    if entries.len() == 1 {
        let mut e = entries.remove(0);
        let inputs = std::mem::take(&mut e.inputs);
        return (inputs, vec![owners_of(e)]);
    }
    let total_rows: usize = entries.iter().map(|e| e.rows).sum();
    let first = &entries[0].inputs;
    let mut batch: Vec<Tensor> = first
        .iter()
        .map(|t| {
            let mut shape = t.shape.clone();
            if let Some(d0) = shape.first_mut() {
                *d0 = total_rows;
            }
            Tensor {
                name: t.name.clone(),
                data: TensorData::with_capacity(t.dtype(), total_rows * t.row_len()),
                shape,
            }
        })
        .collect();
    for e in entries.iter() {
        for (dst, src) in batch.iter_mut().zip(&e.inputs) {
            dst.data.extend_from(&src.data);
        }
    }
    let owners = entries.drain(..).map(owners_of).collect();
    (batch, owners)
}

/// Splits batch outputs back into per-request outputs by rows.
fn split(outputs: Vec<Tensor>, owners: &[Owner], rows: usize) -> Vec<Result<Vec<Tensor>, Error>> {
    if owners.len() == 1 {
        return vec![Ok(outputs)];
    }
    if let Some(bad) = outputs
        .iter()
        .find(|t| t.rows() != rows || t.shape.is_empty())
    {
        let err = Error::new(
            ErrorCode::Internal,
            format!(
                "output '{}' has shape {:?} for a batch of {rows} rows; the model does not batch along dimension 0 (set max_batch_size = 0)",
                bad.name, bad.shape
            ),
        );
        return owners.iter().map(|_| Err(err.clone())).collect();
    }
    let mut results = Vec::with_capacity(owners.len());
    let mut row = 0;
    for o in owners {
        let per_request = outputs
            .iter()
            .map(|t| {
                let width = t.row_len();
                let mut shape = t.shape.clone();
                shape[0] = o.rows;
                Tensor {
                    name: t.name.clone(),
                    data: t.data.slice(row * width, (row + o.rows) * width),
                    shape,
                }
            })
            .collect();
        row += o.rows;
        results.push(Ok(per_request));
    }
    results
}
