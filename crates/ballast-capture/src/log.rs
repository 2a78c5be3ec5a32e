//! The prediction log service: a bounded queue in front of one writer thread that redacts,
//! frames and appends records to the WAL with group commit, and a segmenter thread that turns
//! sealed WAL files into Parquet segments in the sink.
//!
//! ```text
//! request path ── reserve() at admission (refused when the queue is full: nothing answered
//!   │               and then lost) ── commit(record) ─┐      offer(record) (buffered: no wait,
//!   │                                                 ▼       dropped and counted when full)
//!   │                                     writer thread: redact → frame → write(2) the batch
//!   └── answer only after ◀── ack ──────── fsync once per batch (group commit)
//!                                                   │ seal by size / age / flush
//!                                                   ▼
//!                                     segmenter thread: WAL file → Parquet per model, version
//!                                     and hour → sink.put → delete the WAL file
//! ```
//!
//! Durable records are acknowledged only after the fsync that covers them. Buffered records
//! never wait; they are fsynced at least every [`LogOptions::sync_interval`], which with the
//! queue bounds their loss window on a crash (not on a clean stop: close drains everything).
//! A failed write or fsync stops the log for good: every waiting and later durable record is
//! answered with the error and admission refuses, because retrying an fsync can report
//! success over pages the kernel already dropped (fsyncgate, `../shared/REFERENCES.md`).
//! On open, WAL files left by an earlier process are converted to segments before anything
//! new is written to them; a torn tail (written after the last fsync, never acknowledged) is
//! reported and skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::CaptureError;
use crate::metrics as m;
use crate::record::Record;
use crate::sink::PredictionSink;
use crate::{segment, wal};

/// How a model's records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The answer waits for the fsync that covers its record.
    #[default]
    Durable,
    /// The answer does not wait; a crash can lose the queue and the last sync interval.
    Buffered,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::Buffered => "buffered",
        }
    }
}

/// Rewrites a record before it is written (redaction).
pub trait Redactor: Send + Sync + 'static {
    fn redact(&self, record: &mut Record);
}

/// Records queued and not yet written, at most (a bound on memory and on the loss window of
/// buffered records).
pub const DEFAULT_MAX_PENDING_RECORDS: usize = 65_536;
/// Bytes of queued records, at most: 256 MiB, a fraction of a serving host's memory.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 256 << 20;
/// A WAL file is sealed at this size: one segment conversion stays well under a second.
pub const DEFAULT_ROLL_BYTES: u64 = 64 << 20;
/// ... or this old, so segments appear within a minute of the prediction.
pub const DEFAULT_ROLL_INTERVAL: Duration = Duration::from_secs(60);
/// Buffered records reach the disk at least this often (their loss window on a crash).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// One batch (and so one fsync) per millisecond at most: an fsync costs ~55 µs of CPU and
/// ~150 µs of wall time here, and every wake of the writer a context switch on the server's
/// one core; a 1 ms window bounds both and adds at most 1 ms to a durable answer
/// (`docs/benchmarks.md`, prediction logs).
pub const DEFAULT_GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(1);
/// Records framed per write: bounds the batch a group commit holds in memory.
const MAX_BATCH: usize = 8192;
/// A failed segment conversion is tried again after this (the WAL file stays until it works).
const SEGMENT_RETRY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct LogOptions {
    /// `<data-dir>/logs`: the WAL lives in `wal/` under it.
    pub dir: PathBuf,
    pub max_pending_records: usize,
    pub max_pending_bytes: usize,
    pub roll_bytes: u64,
    pub roll_interval: Duration,
    pub sync_interval: Duration,
    /// Durable records are fsynced at most once per this window (group commit): fewer,
    /// larger fsyncs, each answer waiting at most this long more.
    pub group_commit_window: Duration,
    /// Age and size bounds on segments, and compaction of small ones.
    pub retention: crate::retention::Retention,
    /// Fault injection for tests: called before each WAL fsync; an error returned is
    /// treated exactly as a failed fsync.
    #[doc(hidden)]
    pub sync_fault: Option<SyncFault>,
}

/// See [`LogOptions::sync_fault`].
pub type SyncFault = Arc<dyn Fn() -> Option<std::io::Error> + Send + Sync>;

impl std::fmt::Debug for LogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogOptions")
            .field("dir", &self.dir)
            .field("max_pending_records", &self.max_pending_records)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("roll_bytes", &self.roll_bytes)
            .field("roll_interval", &self.roll_interval)
            .field("sync_interval", &self.sync_interval)
            .field("group_commit_window", &self.group_commit_window)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl LogOptions {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_pending_records: DEFAULT_MAX_PENDING_RECORDS,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            roll_bytes: DEFAULT_ROLL_BYTES,
            roll_interval: DEFAULT_ROLL_INTERVAL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            group_commit_window: DEFAULT_GROUP_COMMIT_WINDOW,
            retention: crate::retention::Retention::default(),
            sync_fault: None,
        }
    }
}

/// Why the log cannot take a record now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The queue is full: the writer is behind.
    Full,
    /// Stopped after a write or fsync error, or closed.
    Stopped(String),
}

type Ack = oneshot::Sender<Result<(), String>>;

enum Msg {
    Record {
        record: Box<Record>,
        redactor: Option<Arc<dyn Redactor>>,
        durability: Durability,
        ack: Option<Ack>,
    },
    /// Seal the current WAL file and convert every sealed file; answered when done.
    Flush(oneshot::Sender<Result<(), String>>),
}

struct Shared {
    options: LogOptions,
    pending_records: AtomicUsize,
    pending_bytes: AtomicUsize,
    stopped: Mutex<Option<String>>,
}

impl Shared {
    fn stopped(&self) -> Option<String> {
        self.stopped.lock().clone()
    }

    fn release(&self, bytes: usize) {
        self.pending_records.fetch_sub(1, Ordering::AcqRel);
        self.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A place in the queue, taken at admission before any work, so the record of a served
/// request always has room. Dropped unused, it frees the place.
pub struct Reservation {
    shared: Arc<Shared>,
    live: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            self.shared.release(0);
        }
    }
}

/// The prediction log of one server process.
pub struct PredictionLog {
    /// An exclusive lock on `wal/LOCK` for the life of the process: a second server on the
    /// same data directory would recover (and delete) this one's active WAL.
    _lock: std::fs::File,
    shared: Arc<Shared>,
    tx: Mutex<Option<Sender<Msg>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    sink: Arc<dyn PredictionSink>,
}

impl PredictionLog {
    /// Opens the log in `options.dir`: recovers WAL files left by an earlier process into
    /// segments (in the background, before anything newer), then starts a new WAL file.
    pub fn open(options: LogOptions, sink: Arc<dyn PredictionSink>) -> Result<Self, CaptureError> {
        m::describe();
        let wal_dir = wal::dir(&options.dir);
        let lock = lock(&wal_dir)?;
        let leftover = wal::list(&wal_dir)?;
        let next = leftover.last().map_or(1, |(seq, _)| seq + 1);
        let writer = wal::WalWriter::create(&wal_dir, next)?;
        let shared = Arc::new(Shared {
            options,
            pending_records: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            stopped: Mutex::new(None),
        });
        let (tx, rx) = crossbeam_channel::unbounded::<Msg>();
        let (seg_tx, seg_rx) = crossbeam_channel::unbounded::<SegMsg>();
        for (seq, path) in leftover {
            tracing::info!(wal = %path.display(), "recovering prediction log records left by an earlier process");
            let _ = seg_tx.send(SegMsg::Convert(seq, path));
        }
        let segmenter = {
            let sink = sink.clone();
            let retention = shared.options.retention.clone();
            let wal_dir = wal_dir.clone();
            // The log's own threads: joined by `close` (the server closes the log last).
            #[allow(clippy::disallowed_methods)]
            std::thread::Builder::new()
                .name("log-segmenter".into())
                .spawn(move || segmenter(seg_rx, sink.as_ref(), &retention, &wal_dir))
                .map_err(|e| CaptureError::io("starting the segmenter thread", e))?
        };
        let writer = {
            let shared = shared.clone();
            #[allow(clippy::disallowed_methods)] // joined by `close`
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || Writer::new(shared, writer, seg_tx).run(rx))
                .map_err(|e| CaptureError::io("starting the writer thread", e))?
        };
        Ok(Self {
            _lock: lock,
            shared,
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![writer, segmenter]),
            sink,
        })
    }

    pub fn sink(&self) -> &Arc<dyn PredictionSink> {
        &self.sink
    }

    pub fn dir(&self) -> &Path {
        &self.shared.options.dir
    }

    /// Takes a place for a durable record, or says why not (the caller refuses the request
    /// before doing any work).
    pub fn reserve(&self) -> Result<Reservation, Refusal> {
        if let Some(why) = self.shared.stopped() {
            return Err(Refusal::Stopped(why));
        }
        let o = &self.shared.options;
        if self.shared.pending_bytes.load(Ordering::Acquire) >= o.max_pending_bytes {
            return Err(Refusal::Full);
        }
        let taken =
            self.shared
                .pending_records
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < o.max_pending_records).then_some(n + 1)
                });
        match taken {
            Ok(_) => Ok(Reservation {
                shared: self.shared.clone(),
                live: true,
            }),
            Err(_) => Err(Refusal::Full),
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Msg> {
        match &*self.tx.lock() {
            Some(tx) => tx.send(msg).map_err(|e| e.0),
            None => Err(msg),
        }
    }

    /// Queues a record in its reserved place and resolves once it is durable (or with the
    /// error that stopped the log).
    pub fn commit(
        &self,
        mut reservation: Reservation,
        record: Record,
        redactor: Option<Arc<dyn Redactor>>,
    ) -> impl Future<Output = Result<(), CaptureError>> + Send + 'static {
        let (ack, done) = oneshot::channel();
        let bytes = record.approx_bytes();
        self.shared.pending_bytes.fetch_add(bytes, Ordering::AcqRel);
        reservation.live = false;
        let sent = self.send(Msg::Record {
            record: Box::new(record),
            redactor,
            durability: Durability::Durable,
            ack: Some(ack),
        });
        if sent.is_err() {
            self.shared.release(bytes);
        }
        async move {
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(CaptureError::Stopped(why)),
                Err(_) => Err(CaptureError::Stopped("the log was closed".into())),
            }
        }
    }

    /// Queues a record without waiting (buffered durability, refusals): `false` when it was
    /// dropped because the queue is full or the log stopped (counted either way).
    pub fn offer(&self, record: Record, redactor: Option<Arc<dyn Redactor>>) -> bool {
        let o = &self.shared.options;
        if self.shared.stopped().is_some() {
            m::dropped("stopped");
            return false;
        }
        let bytes = record.approx_bytes();
        let room = self
            .shared
            .pending_records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < o.max_pending_records).then_some(n + 1)
            })
            .is_ok();
        if !room || self.shared.pending_bytes.load(Ordering::Acquire) >= o.max_pending_bytes {
            if room {
                self.shared.pending_records.fetch_sub(1, Ordering::AcqRel);
            }
            m::dropped("queue_full");
            return false;
        }
        self.shared.pending_bytes.fetch_add(bytes, Ordering::AcqRel);
        let sent = self.send(Msg::Record {
            record: Box::new(record),
            redactor,
            durability: Durability::Buffered,
            ack: None,
        });
        if sent.is_err() {
            self.shared.release(bytes);
            m::dropped("stopped");
            return false;
        }
        true
    }

    /// Seals the current WAL file and waits until every sealed file is in segments: what was
    /// logged before the call is then readable from the sink.
    pub async fn flush(&self) -> Result<(), CaptureError> {
        let (tx, rx) = oneshot::channel();
        if self.send(Msg::Flush(tx)).is_err() {
            return Err(CaptureError::Stopped("the log was closed".into()));
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(CaptureError::Stopped(e)),
            Err(_) => Err(CaptureError::Stopped("the log was closed".into())),
        }
    }

    /// Stops taking records, writes and fsyncs every queued one, converts the WAL into
    /// segments and joins both threads. Blocking: call it off the async runtime (or from
    /// `spawn_blocking`) during shutdown, after in-flight requests have drained.
    pub fn close(&self) {
        drop(self.tx.lock().take());
        for t in self.threads.lock().drain(..) {
            if t.join().is_err() {
                tracing::error!("a prediction log thread panicked");
            }
        }
    }

    /// Queued records not yet written.
    pub fn pending(&self) -> usize {
        self.shared.pending_records.load(Ordering::Acquire)
    }

    /// Why the log stopped acknowledging, if it did.
    pub fn stopped(&self) -> Option<String> {
        self.shared.stopped()
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Takes the WAL directory's lock (released by the kernel when the process ends, however).
fn lock(wal_dir: &Path) -> Result<std::fs::File, CaptureError> {
    std::fs::create_dir_all(wal_dir)
        .map_err(|e| CaptureError::io(format!("creating {}", wal_dir.display()), e))?;
    let path = wal_dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CaptureError::io(format!("opening {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(CaptureError::Config(format!(
            "the prediction log in {} is in use by another ballast process; give each server its own --data-dir (or --no-prediction-log)",
            wal_dir.parent().unwrap_or(wal_dir).display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(CaptureError::io(format!("locking {}", path.display()), e))
        }
    }
}

enum SegMsg {
    Convert(u64, PathBuf),
    Done(oneshot::Sender<Result<(), String>>),
}

struct Writer {
    shared: Arc<Shared>,
    wal: Option<wal::WalWriter>,
    seg_tx: Sender<SegMsg>,
    buf: Vec<u8>,
    acks: Vec<Ack>,
    released: usize,
    released_bytes: usize,
    /// Records framed since the last commit, durable and buffered (counted once per batch:
    /// a labelled counter costs a registry lookup).
    framed: [u64; 2],
    last_sync: Instant,
    /// When the last batch was committed (batches are at least a group-commit window apart).
    last_batch: Instant,
    opened: Instant,
}

impl Writer {
    fn new(shared: Arc<Shared>, wal: wal::WalWriter, seg_tx: Sender<SegMsg>) -> Self {
        Self {
            shared,
            wal: Some(wal),
            seg_tx,
            buf: Vec::with_capacity(1 << 20),
            acks: Vec::new(),
            released: 0,
            released_bytes: 0,
            framed: [0; 2],
            last_sync: Instant::now(),
            last_batch: Instant::now(),
            opened: Instant::now(),
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let wait = self.wait();
            let first = match rx.recv_timeout(wait) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Group commit: at most one batch per window. The writer sleeps rather than
            // waits on the channel meanwhile, so records arriving during the window neither
            // wake it one by one (a context switch each, on a server's one core) nor get an
            // fsync of their own; a durable answer waits at most one window more.
            if first.is_some() {
                let gather = self
                    .shared
                    .options
                    .group_commit_window
                    .saturating_sub(self.last_batch.elapsed());
                if !gather.is_zero() {
                    std::thread::sleep(gather);
                }
            }
            let mut flushes = Vec::new();
            let more = rx.try_iter().take(MAX_BATCH);
            for msg in first.into_iter().chain(more) {
                self.handle(msg, &mut flushes);
            }
            self.commit(!flushes.is_empty());
            self.last_batch = Instant::now();
            if !flushes.is_empty() {
                self.seal();
                for done in flushes {
                    let _ = self.seg_tx.send(SegMsg::Done(done));
                }
            } else if self.due_to_roll() {
                self.seal();
            }
        }
        // Closed: whatever is queued was taken above; make it durable and hand it over.
        self.commit(true);
        self.seal_last();
    }

    fn handle(&mut self, msg: Msg, flushes: &mut Vec<oneshot::Sender<Result<(), String>>>) {
        match msg {
            Msg::Record {
                record,
                redactor,
                durability,
                ack,
            } => self.take(*record, redactor.as_deref(), durability, ack),
            Msg::Flush(done) => flushes.push(done),
        }
    }

    /// How long to wait for the next record before a timed duty (sync or roll) is due.
    fn wait(&self) -> Duration {
        let o = &self.shared.options;
        let mut wait = Duration::from_millis(500);
        if self.wal.as_ref().is_some_and(wal::WalWriter::unsynced) {
            wait = wait.min(o.sync_interval.saturating_sub(self.last_sync.elapsed()));
        }
        if self.wal.as_ref().is_some_and(|w| !w.is_empty()) {
            wait = wait.min(o.roll_interval.saturating_sub(self.opened.elapsed()));
        }
        wait.max(Duration::from_millis(1))
    }

    fn take(
        &mut self,
        mut record: Record,
        redactor: Option<&dyn Redactor>,
        durability: Durability,
        ack: Option<Ack>,
    ) {
        let bytes = record.approx_bytes();
        self.released += 1;
        self.released_bytes += bytes;
        if let Some(why) = self.shared.stopped() {
            if let Some(ack) = ack {
                let _ = ack.send(Err(why));
            }
            m::dropped("stopped");
            return;
        }
        if let Some(r) = redactor {
            r.redact(&mut record);
        }
        wal::frame(&record, &mut self.buf);
        self.framed[durability as usize] += 1;
        if let Some(ack) = ack {
            self.acks.push(ack);
        }
    }

    /// Writes the framed batch, fsyncs when a durable record waits (or the sync interval for
    /// buffered ones has passed, or `force`), then answers the waiting records.
    fn commit(&mut self, force: bool) {
        let result = self.write_and_sync(force);
        self.shared
            .pending_records
            .fetch_sub(self.released, Ordering::AcqRel);
        self.shared
            .pending_bytes
            .fetch_sub(self.released_bytes, Ordering::AcqRel);
        (self.released, self.released_bytes) = (0, 0);
        for d in [Durability::Durable, Durability::Buffered] {
            let n = std::mem::take(&mut self.framed[d as usize]);
            if n > 0 {
                m::written(d, n);
            }
        }
        m::pending(self.shared.pending_records.load(Ordering::Acquire));
        if let Err(e) = &result {
            self.stop(e.to_string());
        }
        for ack in self.acks.drain(..) {
            let _ = ack.send(result.clone().map_err(|e| e.to_string()));
        }
    }

    fn write_and_sync(&mut self, force: bool) -> Result<(), String> {
        if let Some(why) = self.shared.stopped() {
            self.buf.clear();
            return Err(why);
        }
        let Some(w) = self.wal.as_mut() else {
            return Err("no WAL file is open".into());
        };
        let written = w.append(&self.buf);
        self.buf.clear();
        written.map_err(|e| e.to_string())?;
        let due = self.last_sync.elapsed() >= self.shared.options.sync_interval;
        if w.unsynced() && (force || !self.acks.is_empty() || due) {
            let start = Instant::now();
            if let Some(e) = self.shared.options.sync_fault.as_ref().and_then(|f| f()) {
                return Err(format!("fsync of {}: {e}", w.path().display()));
            }
            w.sync().map_err(|e| e.to_string())?;
            m::synced(start.elapsed());
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    fn stop(&mut self, why: String) {
        tracing::error!(error = %why, "prediction log stopped: no further records are acknowledged and requests that need a durable record are refused");
        m::stopped();
        let mut s = self.shared.stopped.lock();
        if s.is_none() {
            *s = Some(why);
        }
    }

    fn due_to_roll(&self) -> bool {
        let o = &self.shared.options;
        self.wal.as_ref().is_some_and(|w| {
            w.len() >= o.roll_bytes || (!w.is_empty() && self.opened.elapsed() >= o.roll_interval)
        })
    }

    /// Closes the current file (synced: everything written is in it) and starts the next.
    fn seal(&mut self) {
        let Some(seq) = self.seal_last() else { return };
        if self.shared.stopped().is_some() {
            return;
        }
        match wal::WalWriter::create(&wal::dir(&self.shared.options.dir), seq + 1) {
            Ok(w) => {
                self.wal = Some(w);
                self.opened = Instant::now();
            }
            Err(e) => self.stop(e.to_string()),
        }
    }

    fn seal_last(&mut self) -> Option<u64> {
        let mut w = self.wal.take()?;
        if self.shared.stopped().is_some() {
            // After a failed write or fsync the file is left as it is, not fsynced again (a
            // second fsync can report success over pages the kernel dropped); the next start
            // recovers whatever of it is readable.
            return None;
        }
        if let Err(e) = w.sync() {
            self.stop(e.to_string());
            return None;
        }
        let seq = w.seq();
        if w.is_empty() {
            // Nothing to convert: reuse it rather than leave empty files behind.
            let _ = wal::remove(&w.path());
        } else {
            let _ = self.seg_tx.send(SegMsg::Convert(seq, w.path()));
        }
        Some(seq)
    }
}

/// The segmenter thread: sealed WAL files in, Parquet segments out. A file stays on disk
/// until all of its segments are stored, so a failure is retried and a crash redoes the file
/// (segment names are derived from the WAL file's number: redoing replaces, never duplicates).
fn segmenter(
    rx: Receiver<SegMsg>,
    sink: &dyn PredictionSink,
    retention: &crate::retention::Retention,
    wal_dir: &Path,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "prediction log segmenter cannot start; WAL files stay for the next start");
            return;
        }
    };
    let mut failed: Vec<(u64, PathBuf)> = Vec::new();
    let mut last_error: Option<String> = None;
    let mut maintained = Instant::now();
    loop {
        if maintained.elapsed() >= retention.interval {
            maintained = Instant::now();
            maintain(&rt, sink, retention, wal_dir);
        }
        let msg = match rx.recv_timeout(SEGMENT_RETRY.min(retention.interval)) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut retry = std::mem::take(&mut failed);
        match msg {
            Some(SegMsg::Convert(seq, path)) => retry.push((seq, path)),
            Some(SegMsg::Done(done)) => {
                for (seq, path) in std::mem::take(&mut retry) {
                    if let Err(e) = rt.block_on(convert(seq, &path, sink)) {
                        last_error = Some(e.to_string());
                        failed.push((seq, path));
                    }
                }
                let _ = done.send(match (&last_error, failed.is_empty()) {
                    (Some(e), false) => Err(e.clone()),
                    _ => Ok(()),
                });
                continue;
            }
            None => {}
        }
        for (seq, path) in retry {
            if let Err(e) = rt.block_on(convert(seq, &path, sink)) {
                tracing::warn!(wal = %path.display(), error = %e, "prediction log segment not written; retrying (the WAL file is kept)");
                m::segment_failed();
                last_error = Some(e.to_string());
                failed.push((seq, path));
            }
        }
    }
    for (seq, path) in failed {
        if let Err(e) = rt.block_on(convert(seq, &path, sink)) {
            tracing::error!(wal = %path.display(), error = %e, "prediction log segment not written at shutdown; the WAL file is kept and converted at the next start");
        }
    }
}

/// Retention and compaction; a failure is logged and tried at the next run.
fn maintain(
    rt: &tokio::runtime::Runtime,
    sink: &dyn PredictionSink,
    retention: &crate::retention::Retention,
    wal_dir: &Path,
) {
    // Only segments of WAL files that are gone (converted) may be compacted.
    let converted_below = match wal::list(wal_dir) {
        Ok(files) => files.first().map_or(u64::MAX, |(seq, _)| *seq),
        Err(e) => {
            tracing::warn!(error = %e, "prediction log maintenance skipped: cannot list the WAL");
            return;
        }
    };
    let now = std::time::SystemTime::now();
    match rt.block_on(crate::retention::maintain(
        sink,
        retention,
        converted_below,
        now,
    )) {
        Ok(done) if done != crate::retention::Maintained::default() => {
            tracing::info!(
                expired = done.expired,
                evicted = done.evicted,
                compacted = done.compacted,
                superseded = done.superseded,
                "prediction log segments maintained"
            );
            m::maintained(&done);
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "prediction log maintenance failed; retried at the next run")
        }
    }
}

/// One sealed WAL file into segments, then removed.
async fn convert(seq: u64, path: &Path, sink: &dyn PredictionSink) -> Result<(), CaptureError> {
    let recovered = wal::read(path)?;
    if let Some((bytes, why)) = &recovered.torn {
        tracing::warn!(wal = %path.display(), bytes, reason = %why, "prediction log WAL ends in a torn frame (written after the last fsync, never acknowledged); skipped");
    }
    let mut groups: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in recovered.records {
        groups
            .entry(segment::partition(&r.model, &r.version, r.time_us))
            .or_default()
            .push(r);
    }
    for (partition, records) in groups {
        let bytes = segment::encode(&records)?;
        let key = format!("{partition}/{}", segment::file_name(seq));
        sink.put(&key, bytes).await?;
        m::segment_written(records.len());
    }
    wal::remove(path)
}
