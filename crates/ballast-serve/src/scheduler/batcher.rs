//! The dynamic batcher: a task around a plain [`BatchState`] that unit tests drive directly.
//!
//! The task waits for a free engine thread first, then for work, then up to `max_queue_delay`
//! (counted from the oldest queued request) for the batch to fill. While every engine thread is
//! busy, requests accumulate, so batches grow with load without any extra waiting. Entries whose
//! caller has gone (closed reply channel) are dropped without compute; entries whose deadline
//! has passed are answered DEADLINE_EXCEEDED without compute.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ballast_core::{Error, ErrorCode, Tensor};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::{ModelMetrics, Rejection};
use crate::request::Timing;
use crate::scheduler::admission::WaitGate;

/// What a worker sends back for one entry.
pub type Reply = Result<(Vec<Tensor>, Timing), Error>;

/// One queued request.
#[derive(Debug)]
pub struct Entry {
    /// Inputs in signature order.
    pub inputs: Vec<Tensor>,
    /// Rows along the batch dimension.
    pub rows: usize,
    pub enqueued: Instant,
    pub deadline: Option<Instant>,
    pub reply: oneshot::Sender<Reply>,
    pub span: tracing::Span,
}

impl Entry {
    /// True when the entry's non-batch dimensions match `other`'s, so they can share a batch.
    fn compatible(&self, other: &Entry) -> bool {
        self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&other.inputs)
                .all(|(a, b)| a.shape.get(1..) == b.shape.get(1..))
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    pub fn deadline_error(&self) -> Error {
        Error::new(
            ErrorCode::DeadlineExceeded,
            format!(
                "deadline exceeded after {:.1} ms in the queue; no inference was run",
                self.enqueued.elapsed().as_secs_f64() * 1000.0
            ),
        )
    }
}

/// The queue and batching rules, free of tasks and time sources.
#[derive(Debug)]
pub struct BatchState {
    queue: VecDeque<Entry>,
    queued_rows: usize,
    /// Rows per engine call; 0 means no batching (one request per call).
    max_batch_size: usize,
}

impl BatchState {
    pub fn new(max_batch_size: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            queued_rows: 0,
            max_batch_size,
        }
    }

    pub fn push(&mut self, entry: Entry) {
        self.queued_rows += entry.rows;
        self.queue.push_back(entry);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn oldest_enqueued(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.enqueued)
    }

    /// True when a batch could not grow any further.
    pub fn is_full(&self) -> bool {
        self.max_batch_size == 0 || self.queued_rows >= self.max_batch_size
    }

    /// Removes and returns dead entries: callers that went away (counted, with their rows),
    /// and expired deadlines.
    pub fn remove_dead(&mut self, now: Instant) -> (Vec<Entry>, usize, usize) {
        let mut expired = Vec::new();
        let mut cancelled = 0;
        let mut cancelled_rows = 0;
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for e in self.queue.drain(..) {
            if e.reply.is_closed() {
                self.queued_rows -= e.rows;
                cancelled += 1;
                cancelled_rows += e.rows;
            } else if e.expired(now) {
                self.queued_rows -= e.rows;
                expired.push(e);
            } else {
                kept.push_back(e);
            }
        }
        self.queue = kept;
        (expired, cancelled, cancelled_rows)
    }

    /// Takes the next batch: the head of the queue plus, in FIFO order, every later entry with
    /// the same non-batch dimensions while the rows fit in `max_batch_size`.
    pub fn next_batch(&mut self) -> Vec<Entry> {
        let Some(head) = self.queue.pop_front() else {
            return Vec::new();
        };
        self.queued_rows -= head.rows;
        let mut rows = head.rows;
        let mut batch = vec![head];
        if self.max_batch_size == 0 {
            return batch;
        }
        let mut i = 0;
        while i < self.queue.len() && rows < self.max_batch_size {
            let e = &self.queue[i];
            if rows + e.rows <= self.max_batch_size && e.compatible(&batch[0]) {
                rows += e.rows;
                self.queued_rows -= e.rows;
                if let Some(e) = self.queue.remove(i) {
                    batch.push(e);
                }
            } else {
                i += 1;
            }
        }
        batch
    }
}

/// A batch on its way to an engine thread; holding `slot` reserves that thread.
pub struct Job {
    pub entries: Vec<Entry>,
    pub slot: tokio::sync::OwnedSemaphorePermit,
}

pub struct BatcherTask {
    pub rx: mpsc::UnboundedReceiver<Entry>,
    pub state: BatchState,
    pub max_queue_delay: Duration,
    pub engine_slots: Arc<Semaphore>,
    pub jobs: crossbeam_channel::Sender<Job>,
    /// Entries submitted and not yet handed to a worker or dropped.
    pub queued: Arc<AtomicUsize>,
    /// Rows are released from the admission estimate when they leave the queue.
    pub gate: Arc<WaitGate>,
    pub metrics: ModelMetrics,
}

impl BatcherTask {
    fn take_available(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.state.push(e),
                Err(mpsc::error::TryRecvError::Empty) => return true,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn drop_dead(&mut self) {
        let (expired, cancelled, cancelled_rows) = self.state.remove_dead(Instant::now());
        self.gate
            .release(cancelled_rows + expired.iter().map(|e| e.rows).sum::<usize>());
        for e in expired {
            self.metrics.rejected(Rejection::DeadlineExpired);
            let err = e.deadline_error();
            let _ = e.reply.send(Err(err));
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
        for _ in 0..cancelled {
            self.metrics.rejected(Rejection::Cancelled);
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Runs until every sender is gone and the queue is empty.
    pub async fn run(mut self) {
        let mut open = true;
        loop {
            let Ok(slot) = self.engine_slots.clone().acquire_owned().await else {
                return;
            };
            // Wait for work.
            while self.state.is_empty() {
                if !open {
                    return;
                }
                match self.rx.recv().await {
                    Some(e) => self.state.push(e),
                    None => open = false,
                }
            }
            open &= self.take_available();
            // Let the batch fill, bounded by the oldest entry's wait.
            if let Some(oldest) = self.state.oldest_enqueued() {
                let fill_until = oldest + self.max_queue_delay;
                while open && !self.state.is_full() && Instant::now() < fill_until {
                    tokio::select! {
                        e = self.rx.recv() => match e {
                            Some(e) => {
                                self.state.push(e);
                                open &= self.take_available();
                            }
                            None => open = false,
                        },
                        () = tokio::time::sleep_until(fill_until) => break,
                    }
                }
            }
            self.drop_dead();
            let entries = self.state.next_batch();
            if entries.is_empty() {
                continue;
            }
            self.queued.fetch_sub(entries.len(), Ordering::AcqRel);
            self.gate.release(entries.iter().map(|e| e.rows).sum());
            self.metrics
                .queue_depth
                .set(self.queued.load(Ordering::Acquire) as f64);
            if let Err(crossbeam_channel::SendError(job)) = self.jobs.send(Job { entries, slot }) {
                for e in job.entries {
                    let _ = e.reply.send(Err(Error::unavailable(
                        "the model's engine threads have stopped",
                    )));
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast_core::TensorData;

    fn entry(rows: usize, width: usize) -> (Entry, oneshot::Receiver<Reply>) {
        let (tx, rx) = oneshot::channel();
        let t = Tensor::new(
            "x",
            vec![rows, width],
            TensorData::F32(vec![0.0; rows * width]),
        )
        .unwrap();
        (
            Entry {
                inputs: vec![t],
                rows,
                enqueued: Instant::now(),
                deadline: None,
                reply: tx,
                span: tracing::Span::none(),
            },
            rx,
        )
    }

    #[test]
    fn batches_fifo_up_to_the_row_limit() {
        let mut s = BatchState::new(4);
        let mut keep = Vec::new();
        for rows in [2, 1, 2, 1] {
            let (e, rx) = entry(rows, 3);
            keep.push(rx);
            s.push(e);
        }
        let b = s.next_batch();
        // 2 + 1 fit, the next 2 would overflow, the final 1 fits.
        assert_eq!(b.iter().map(|e| e.rows).collect::<Vec<_>>(), vec![2, 1, 1]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_batch().len(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn only_merges_entries_with_matching_inner_dimensions() {
        let mut s = BatchState::new(8);
        let (a, _ra) = entry(1, 3);
        let (b, _rb) = entry(1, 5);
        let (c, _rc) = entry(1, 3);
        s.push(a);
        s.push(b);
        s.push(c);
        let first = s.next_batch();
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|e| e.inputs[0].shape[1] == 3));
        assert_eq!(s.next_batch()[0].inputs[0].shape[1], 5);
    }

    #[test]
    fn without_batching_each_request_is_its_own_call() {
        let mut s = BatchState::new(0);
        let (a, _ra) = entry(1, 3);
        let (b, _rb) = entry(1, 3);
        s.push(a);
        s.push(b);
        assert!(s.is_full());
        assert_eq!(s.next_batch().len(), 1);
    }

    #[test]
    fn skips_cancelled_and_answers_expired_without_compute() {
        let mut s = BatchState::new(8);
        let (a, ra) = entry(1, 3);
        drop(ra); // caller went away
        let (mut b, mut rb) = entry(1, 3);
        b.deadline = Some(Instant::now());
        let (c, _rc) = entry(1, 3);
        s.push(a);
        s.push(b);
        s.push(c);
        let (expired, cancelled, cancelled_rows) =
            s.remove_dead(Instant::now() + Duration::from_millis(1));
        assert_eq!((cancelled, cancelled_rows), (1, 1));
        assert_eq!(expired.len(), 1);
        for e in expired {
            let err = e.deadline_error();
            e.reply.send(Err(err)).unwrap();
        }
        assert_eq!(
            rb.try_recv().unwrap().unwrap_err().code,
            ErrorCode::DeadlineExceeded
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_batch().len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn every_entry_is_batched_exactly_once_and_batches_respect_the_limit(
            rows in proptest::collection::vec(1usize..6, 1..60),
            widths in proptest::collection::vec(1usize..3, 1..60),
            max in 1usize..16,
        ) {
            let mut s = BatchState::new(max.max(6));
            let mut keep = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                let (e, rx) = entry(*r, widths[i % widths.len()]);
                keep.push(rx);
                s.push(e);
            }
            let mut seen = 0;
            while !s.is_empty() {
                let b = s.next_batch();
                proptest::prop_assert!(!b.is_empty());
                proptest::prop_assert!(b.iter().map(|e| e.rows).sum::<usize>() <= max.max(6));
                proptest::prop_assert!(b.iter().all(|e| e.compatible(&b[0])));
                seen += b.len();
            }
            proptest::prop_assert_eq!(seen, rows.len());
        }
    }
}
