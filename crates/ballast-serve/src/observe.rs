//! The observation tap: every finished inference, handed to observers off the request path.
//!
//! One trait ([`Observer`]), one place ([`Tap`]). Observers are attached to the tap before any
//! model loads; when a version starts, each says what it wants of that version's requests
//! ([`Interest`]: nothing, the outcome, or the tensors too), and the answer is kept on the
//! version, so the request path pays no lookup. A finished request (served or failed once
//! routed, shadow mirrors included) becomes an [`Observation`] sent through a bounded channel
//! per observer to that observer's own thread. A full channel drops the observation and counts
//! it (`ballast_observer_dropped_total{observer}`): serving never waits for an observer.
//!
//! Tensors are copied, not shared: an engine consumes its inputs (`Backend::infer` takes them
//! by value so ONNX Runtime and tract can wrap the buffers without a copy), so the inputs are
//! cloned before the engine call, and only for versions an observer asked tensors of. For the
//! tabular requests ballast is built for this is one allocation of the request's own size;
//! `bench/monitor_cost.sh` measures what it costs at capacity (monitoring on against off).
//!
//! When the last holder of a version lets go (it was retired and its in-flight requests have
//! finished), every observer that saw it start is told so ([`Observer::version_stopped`]), with
//! the instance number it started under: a version reloaded under the same number is a new
//! instance, and the old one's stop must not forget the new one's state.
//!
//! The monitor (`ballast-monitor`) is the first observer; prediction logs and cost plug in the
//! same way. Per-arm rollout statistics stay counted inline (`traffic.rs`): a rollout gate
//! must see every request of its window, and a lossy channel would make its evidence depend
//! on load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use ballast_core::{ErrorCode, ModelSignature, Tensor};

use crate::context::{Priority, Protocol, RequestContext, RequestId, TraceParent};
use crate::request::Timing;
use crate::traffic::Arm;

/// Observations queued per observer before new ones are dropped.
pub const DEFAULT_CAPACITY: usize = 8192;
/// Observations an observer thread takes from its channel at once.
const BATCH: usize = 256;

/// What an observer wants of one version's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Interest {
    #[default]
    None,
    /// Ids, route, timing and status; no tensors.
    Outcome,
    /// The outcome and the request's input and output tensors.
    Tensors,
}

/// A version as it starts serving, for observers to decide their interest and prepare
/// (the monitor reads the version's reference profile here).
pub struct VersionInfo<'a> {
    pub model: &'a str,
    pub version: &'a str,
    /// Unique per start within the process (a version reloaded under the same number is a new
    /// instance); [`Observer::version_stopped`] names the instance that stopped.
    pub instance: u64,
    pub signature: &'a ModelSignature,
    /// The directory the version was loaded from, when it came from files.
    pub dir: Option<&'a std::path::Path>,
}

/// A version instance that stopped serving.
#[derive(Debug, Clone, Copy)]
pub struct StoppedVersion<'a> {
    pub model: &'a str,
    pub version: &'a str,
    pub instance: u64,
}

/// One finished inference request.
#[derive(Debug, Clone)]
pub struct Observation {
    pub id: RequestId,
    pub trace: Option<TraceParent>,
    /// When the answer was ready (UTC); `finished - elapsed` is the arrival.
    pub finished: SystemTime,
    /// From arrival (headers parsed) to the answer.
    pub elapsed: Duration,
    pub protocol: Protocol,
    pub priority: Priority,
    pub model: Arc<str>,
    pub version: Arc<str>,
    /// Under a traffic policy, the arm; shadow mirrors are `Candidate` with priority `Shadow`.
    pub arm: Option<Arm>,
    /// Queue, compute and batch size, when the engine ran.
    pub timing: Option<Timing>,
    /// `None` when served.
    pub error: Option<ErrorCode>,
    /// Empty unless the observer asked for tensors (and for a request that failed before its
    /// body was decoded).
    pub inputs: Arc<[Tensor]>,
    pub outputs: Arc<[Tensor]>,
}

/// Something that watches finished requests: the monitor, prediction logs, cost.
pub trait Observer: Send + Sync + 'static {
    /// A short name for metrics and thread names.
    fn name(&self) -> &str;

    /// Called once when a version starts, before it serves; may also prepare per-version state.
    fn version_started(&self, version: &VersionInfo<'_>) -> Interest;

    /// Runs on the observer's own thread with what arrived since the last call (at most a few
    /// hundred); it may take its time, requests are never waiting on it.
    fn observe(&self, batch: &[Observation]);

    /// Called on the observer's thread at least every [`TICK`] while nothing arrives (windows
    /// close on time even when traffic stops).
    fn tick(&self) {}

    /// Called once a started version instance is retired and its last request has finished
    /// (observations of it may still be queued for [`Observer::observe`]): per-version state
    /// can go. Runs on whichever thread let go of the version last; keep it short.
    fn version_stopped(&self, _version: &StoppedVersion<'_>) {}
}

/// How often an idle observer thread calls [`Observer::tick`].
pub const TICK: Duration = Duration::from_secs(1);

struct Attached {
    observer: Arc<dyn Observer>,
    tx: crossbeam_channel::Sender<Observation>,
    dropped: AtomicU64,
    dropped_metric: metrics::Counter,
    /// Dropped by [`Tap::close`]: the observer's thread takes what is queued and exits.
    stop: parking_lot::Mutex<Option<crossbeam_channel::Sender<()>>>,
}

/// Where observers are attached. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Tap {
    attached: Arc<ArcSwap<Vec<Arc<Attached>>>>,
    instances: Arc<AtomicU64>,
}

/// What a version's observers want, decided when it started. Clones share one instance; when
/// the last goes, the observers hear that the version stopped.
#[derive(Clone, Default)]
pub struct Observed(Option<Arc<Started>>);

/// A started version instance; dropped with the last clone of its [`Observed`].
struct Started {
    /// The observers that want something of this version, with what they want.
    wants: Vec<(Arc<Attached>, Interest)>,
    tensors: bool,
    model: String,
    version: String,
    instance: u64,
    /// Every observer attached when it started (interested or not: an observer may keep
    /// state for a version it declined, such as why it could not watch it).
    observers: Vec<Arc<Attached>>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let stopped = StoppedVersion {
            model: &self.model,
            version: &self.version,
            instance: self.instance,
        };
        for a in &self.observers {
            a.observer.version_stopped(&stopped);
        }
    }
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .attached
            .load()
            .iter()
            .map(|a| a.observer.name().to_string())
            .collect();
        f.debug_struct("Tap").field("observers", &names).finish()
    }
}

impl Tap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches an observer with its own thread, owned by `life`'s
    /// [`Stage::Observers`](crate::lifecycle::Stage::Observers), and a channel of `capacity`
    /// observations. Versions that started before the call are not observed by it.
    pub fn attach(
        &self,
        observer: Arc<dyn Observer>,
        capacity: usize,
        life: &crate::lifecycle::Lifecycle,
    ) -> std::io::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded::<Observation>(capacity.max(1));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let name = observer.name().to_string();
        let attached = Arc::new(Attached {
            observer: observer.clone(),
            tx,
            dropped: AtomicU64::new(0),
            dropped_metric: metrics::counter!(crate::metrics::OBSERVER_DROPPED_TOTAL, "observer" => name.clone()),
            stop: parking_lot::Mutex::new(Some(stop_tx)),
        });
        life.spawn_thread(
            crate::lifecycle::Stage::Observers,
            format!("observe-{name}"),
            move || observe_until_closed(&*observer, &rx, &stop_rx),
        )?;
        self.attached.rcu(|list| {
            let mut list = Vec::clone(list);
            list.push(attached.clone());
            list
        });
        Ok(())
    }

    /// Shutdown, once no version can emit any more: every observer takes what is queued for
    /// it, and its thread ends. Versions started afterwards are not observed.
    pub fn close(&self) {
        let attached = self.attached.swap(Arc::new(Vec::new()));
        for a in attached.iter() {
            a.stop.lock().take();
        }
    }

    /// True when any observer is attached.
    pub fn is_empty(&self) -> bool {
        self.attached.load().is_empty()
    }

    /// Observations dropped so far because `observer` fell behind.
    pub fn dropped(&self, observer: &str) -> u64 {
        self.attached
            .load()
            .iter()
            .filter(|a| a.observer.name() == observer)
            .map(|a| a.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Asks every observer what it wants of a starting version; the answer lives as long as
    /// the version (see [`Observer::version_stopped`]).
    pub fn version_started(
        &self,
        model: &str,
        version: &str,
        signature: &ModelSignature,
        dir: Option<&std::path::Path>,
    ) -> Observed {
        let attached = self.attached.load();
        if attached.is_empty() {
            return Observed::default();
        }
        let info = VersionInfo {
            model,
            version,
            instance: self.instances.fetch_add(1, Ordering::Relaxed),
            signature,
            dir,
        };
        let wants: Vec<(Arc<Attached>, Interest)> = attached
            .iter()
            .map(|a| (a.clone(), a.observer.version_started(&info)))
            .filter(|(_, i)| *i != Interest::None)
            .collect();
        let tensors = wants.iter().any(|(_, i)| *i == Interest::Tensors);
        Observed(Some(Arc::new(Started {
            wants,
            tensors,
            model: model.to_string(),
            version: version.to_string(),
            instance: info.instance,
            observers: attached.iter().cloned().collect(),
        })))
    }
}

/// An observer's thread: batches of what arrived, a tick when nothing does, until every sender
/// is gone or the tap closes (then what is queued is observed first).
fn observe_until_closed(
    observer: &dyn Observer,
    rx: &crossbeam_channel::Receiver<Observation>,
    stop: &crossbeam_channel::Receiver<()>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        crossbeam_channel::select! {
            recv(rx) -> got => match got {
                Ok(first) => {
                    batch.push(first);
                    batch.extend(rx.try_iter().take(BATCH - 1));
                    observer.observe(&batch);
                    batch.clear();
                }
                Err(_) => return,
            },
            recv(stop) -> _ => break,
            default(TICK) => observer.tick(),
        }
    }
    loop {
        batch.extend(rx.try_iter().take(BATCH));
        if batch.is_empty() {
            return;
        }
        observer.observe(&batch);
        batch.clear();
    }
}

impl Observed {
    /// True when nobody observes the version: the request path skips everything.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.wants.is_empty())
    }

    /// True when some observer wants the tensors (inputs are copied before the engine call).
    pub fn wants_tensors(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.tensors)
    }

    /// Hands a finished request to each interested observer; never blocks.
    pub fn emit(&self, finished: Finished<'_>) {
        let Some(started) = self.0.as_ref().filter(|s| !s.wants.is_empty()) else {
            return;
        };
        let ctx = finished.ctx;
        let base = Observation {
            id: ctx.id.clone(),
            trace: ctx.trace,
            finished: SystemTime::now(),
            elapsed: ctx.arrival.elapsed(),
            protocol: ctx.protocol,
            priority: ctx.priority,
            model: finished.model.clone(),
            version: finished.version.clone(),
            arm: finished.arm,
            timing: finished.timing,
            error: finished.error,
            inputs: Arc::from(Vec::new()),
            outputs: Arc::from(Vec::new()),
        };
        let (inputs, outputs): (Arc<[Tensor]>, Arc<[Tensor]>) = if started.tensors {
            (finished.inputs.into(), finished.outputs.to_vec().into())
        } else {
            (base.inputs.clone(), base.outputs.clone())
        };
        for (a, interest) in &started.wants {
            let mut o = base.clone();
            if *interest == Interest::Tensors {
                o.inputs = inputs.clone();
                o.outputs = outputs.clone();
            }
            if a.tx.try_send(o).is_err() {
                a.dropped.fetch_add(1, Ordering::Relaxed);
                a.dropped_metric.increment(1);
            }
        }
    }
}

/// What the request path knows of a finished request.
pub struct Finished<'a> {
    pub ctx: &'a RequestContext,
    pub model: &'a Arc<str>,
    pub version: &'a Arc<str>,
    pub arm: Option<Arm>,
    pub timing: Option<Timing>,
    pub error: Option<ErrorCode>,
    /// The copy taken before the engine call (empty when none was taken).
    pub inputs: Vec<Tensor>,
    pub outputs: &'a [Tensor],
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lifecycle::Lifecycle;
    use ballast_core::TensorData;
    use parking_lot::Mutex;

    struct Recorder {
        seen: Mutex<Vec<Observation>>,
        /// (version, instance) as started and as stopped.
        started: Mutex<Vec<(String, u64)>>,
        stopped: Mutex<Vec<(String, u64)>>,
        interest: Interest,
        /// Holds the observer thread until released, to fill its channel.
        gate: Mutex<()>,
        /// Batches that entered `observe` (counted before the gate).
        entered: std::sync::atomic::AtomicUsize,
    }

    impl Recorder {
        fn new(interest: Interest) -> Arc<Self> {
            Arc::new(Self {
                seen: Mutex::default(),
                started: Mutex::default(),
                stopped: Mutex::default(),
                interest,
                gate: Mutex::default(),
                entered: Default::default(),
            })
        }
    }

    impl Observer for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn version_started(&self, v: &VersionInfo<'_>) -> Interest {
            self.started
                .lock()
                .push((v.version.to_string(), v.instance));
            self.interest
        }
        fn version_stopped(&self, v: &StoppedVersion<'_>) {
            self.stopped
                .lock()
                .push((v.version.to_string(), v.instance));
        }
        fn observe(&self, batch: &[Observation]) {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _g = self.gate.lock();
            self.seen.lock().extend_from_slice(batch);
        }
    }

    fn start(tap: &Tap, signature: &ModelSignature) -> Observed {
        tap.version_started("m", "1", signature, None)
    }

    fn finished<'a>(
        ctx: &'a RequestContext,
        name: &'a Arc<str>,
        outputs: &'a [Tensor],
    ) -> Finished<'a> {
        Finished {
            ctx,
            model: name,
            version: name,
            arm: None,
            timing: None,
            error: None,
            inputs: vec![Tensor::new("x", vec![1, 2], TensorData::F32(vec![1.0, 2.0])).unwrap()],
            outputs,
        }
    }

    fn wait_for(recorder: &Recorder, n: usize) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while recorder.seen.lock().len() < n {
            assert!(std::time::Instant::now() < until, "observer saw too few");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn observers_get_what_they_asked_for() {
        let tap = Tap::new();
        let sig = ModelSignature {
            inputs: vec![],
            outputs: vec![],
        };
        let full = Recorder::new(Interest::Tensors);
        tap.attach(full.clone(), 16, &Lifecycle::new()).unwrap();
        let observed = start(&tap, &sig);
        assert!(observed.wants_tensors());
        let ctx = RequestContext::new(Protocol::Http);
        let name: Arc<str> = Arc::from("m");
        let out = [Tensor::new("y", vec![1], TensorData::F32(vec![3.0])).unwrap()];
        observed.emit(finished(&ctx, &name, &out));
        wait_for(&full, 1);
        let seen = full.seen.lock();
        assert_eq!(seen[0].inputs[0].name, "x");
        assert_eq!(seen[0].outputs[0].name, "y");
        assert_eq!(seen[0].id, ctx.id);

        let quiet = Tap::new();
        quiet
            .attach(Recorder::new(Interest::None), 16, &Lifecycle::new())
            .unwrap();
        assert!(start(&quiet, &sig).is_empty());
    }

    #[test]
    fn a_slow_observer_loses_observations_and_counts_them_and_nothing_waits() {
        let tap = Tap::new();
        let sig = ModelSignature {
            inputs: vec![],
            outputs: vec![],
        };
        let slow = Recorder::new(Interest::Outcome);
        tap.attach(slow.clone(), 4, &Lifecycle::new()).unwrap();
        let observed = start(&tap, &sig);
        assert!(!observed.wants_tensors());
        let ctx = RequestContext::new(Protocol::Grpc);
        let name: Arc<str> = Arc::from("m");
        let held = slow.gate.lock();
        // One observation, taken by the thread, which then stalls inside `observe`: from here
        // on exactly `capacity` more fit and the rest are dropped.
        observed.emit(finished(&ctx, &name, &[]));
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while slow.entered.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(std::time::Instant::now() < until, "observer never ran");
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = std::time::Instant::now();
        for _ in 0..99 {
            observed.emit(finished(&ctx, &name, &[]));
        }
        // 99 emits against a stalled observer: none of them waited.
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(held);
        let dropped = tap.dropped("recorder");
        // Accepted: the one the thread holds and the 4 queued behind it.
        assert_eq!(dropped, 95);
        wait_for(&slow, (100 - dropped) as usize);
        let seen = slow.seen.lock();
        assert_eq!(seen.len() as u64 + dropped, 100);
        assert!(seen.iter().all(|o| o.inputs.is_empty()), "outcome only");
    }

    #[test]
    fn observers_hear_when_the_last_holder_of_a_version_lets_go_and_which_instance() {
        let tap = Tap::new();
        let sig = ModelSignature {
            inputs: vec![],
            outputs: vec![],
        };
        let declining = Recorder::new(Interest::None);
        tap.attach(declining.clone(), 4, &Lifecycle::new()).unwrap();
        let first = start(&tap, &sig);
        // Reloaded under the same number: a new instance.
        let second = start(&tap, &sig);
        let started = declining.started.lock().clone();
        assert_eq!(started.len(), 2);
        assert_ne!(started[0].1, started[1].1);
        // A request still holds the first instance: not stopped yet.
        let in_flight = first.clone();
        drop(first);
        assert!(declining.stopped.lock().is_empty());
        drop(in_flight);
        assert_eq!(*declining.stopped.lock(), vec![started[0].clone()]);
        drop(second);
        assert_eq!(
            *declining.stopped.lock(),
            started,
            "declined versions stop too"
        );
        // Nobody attached: nothing to tell.
        assert!(start(&Tap::new(), &sig).is_empty());
    }
}
