//! [`Lifecycle`]: the one owner of every task and thread the server starts, and the order they
//! stop in.
//!
//! Work is started through the lifecycle under a [`Stage`] — never with a bare `tokio::spawn` or
//! `std::thread::Builder::spawn` (a clippy `disallowed-methods` entry in `clippy.toml` enforces
//! it; the only allowed calls are here). Each stage has its own stop token, task tracker and
//! list of thread handles. Shutdown stops the stages one at a time, in [`Stage::ORDER`]:
//! cancel the stage's token, close its tracker, wait for its tasks, join its threads — all
//! within a deadline — and reports what, if anything, was still running when time ran out.
//!
//! What ends a stage's work is the stage's own business: tasks watch [`Lifecycle::token`];
//! engine threads end when their version's queue closes (the repository unloads every version
//! first, [`crate::ModelRepository::shut_down`]); observer threads when the tap closes
//! ([`crate::observe::Tap::close`]). The lifecycle only makes sure nothing is forgotten and that
//! the order holds: requests drain before engines stop, engines stop before observers see
//! their last observation, observers finish before alerts are delivered for the last time, and
//! all of it before the prediction log is flushed and closed (by its owner, last).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Groups of background work, stopped in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The control plane: the deployer and its rollout judge, the admin API, the repository
    /// watcher, alert evaluation. Stopped as soon as shutdown begins, alongside the drain: no
    /// model loads, alias flips or rollout steps while requests drain.
    Control,
    /// The request front: the front door's event-loop probe (task and thread). Stopped once
    /// in-flight requests have drained.
    Front,
    /// Per-version schedulers: batcher tasks and engine threads. They end when the repository
    /// unloads every version (their queues close); stopping the stage waits for that.
    Engines,
    /// Observer threads (the monitor): they take what the tap queued, then exit.
    Observers,
    /// Alert delivery: what the last evaluation produced is sent, retries cut short.
    Delivery,
}

impl Stage {
    /// The shutdown order.
    pub const ORDER: [Stage; 5] = [
        Stage::Control,
        Stage::Front,
        Stage::Engines,
        Stage::Observers,
        Stage::Delivery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Control => "control",
            Stage::Front => "front",
            Stage::Engines => "engines",
            Stage::Observers => "observers",
            Stage::Delivery => "delivery",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One stage's stop token, tasks and threads.
struct StageWork {
    token: CancellationToken,
    tasks: TaskTracker,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl StageWork {
    fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            tasks: TaskTracker::new(),
            threads: Mutex::new(Vec::new()),
        }
    }

    fn running_threads(&self) -> usize {
        self.threads
            .lock()
            .iter()
            .filter(|h| !h.is_finished())
            .count()
    }
}

/// What stopping one stage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub stage: Stage,
    /// Tasks still running when the deadline passed (0: all finished).
    pub tasks_left: usize,
    /// Threads still running when the deadline passed (0: all joined).
    pub threads_left: usize,
    /// Threads joined by this stop.
    pub threads_joined: usize,
    pub took: Duration,
}

impl Stopped {
    pub fn is_clean(&self) -> bool {
        self.tasks_left == 0 && self.threads_left == 0
    }
}

/// The owner of the server's background work; cheap to clone (one shared state).
#[derive(Clone)]
pub struct Lifecycle {
    stages: Arc<[StageWork; 5]>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Lifecycle");
        for stage in Stage::ORDER {
            let (tasks, threads) = self.running(stage);
            d.field(stage.name(), &(tasks, threads));
        }
        d.finish()
    }
}

/// How often a stop looks whether its threads have finished.
const JOIN_POLL: Duration = Duration::from_millis(2);

impl Lifecycle {
    pub fn new() -> Self {
        Self {
            stages: Arc::new([
                StageWork::new(),
                StageWork::new(),
                StageWork::new(),
                StageWork::new(),
                StageWork::new(),
            ]),
        }
    }

    fn work(&self, stage: Stage) -> &StageWork {
        &self.stages[stage.index()]
    }

    /// Cancelled when `stage` is told to stop.
    pub fn token(&self, stage: Stage) -> CancellationToken {
        self.work(stage).token.clone()
    }

    /// True once `stage` has been told to stop.
    pub fn is_stopping(&self, stage: Stage) -> bool {
        self.work(stage).token.is_cancelled()
    }

    /// Runs `task` on the current tokio runtime, owned by `stage`.
    #[allow(clippy::disallowed_methods)] // the one place tasks are started
    pub fn spawn<F>(&self, stage: Stage, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.work(stage).tasks.spawn(task)
    }

    /// Starts a named OS thread owned by `stage`; it is joined when the stage stops. The thread
    /// must end by itself once the stage's work is over (its queue closes, or it watches
    /// [`Self::token`]).
    #[allow(clippy::disallowed_methods)] // the one place threads are started
    pub fn spawn_thread<F>(&self, stage: Stage, name: String, f: F) -> std::io::Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        let handle = std::thread::Builder::new().name(name).spawn(f)?;
        let mut threads = self.work(stage).threads.lock();
        // Versions come and go (alias flips, reloads): forget threads that already ended so the
        // list stays as long as what runs.
        threads.retain(|h| !h.is_finished());
        threads.push(handle);
        Ok(())
    }

    /// Tasks and threads of `stage` still running.
    pub fn running(&self, stage: Stage) -> (usize, usize) {
        let work = self.work(stage);
        (work.tasks.len(), work.running_threads())
    }

    /// Stops `stage`: cancels its token, waits for its tasks, joins its threads, until
    /// `deadline` at most. Work still running then is reported (and left: a thread cannot be
    /// killed, a task is dropped with the runtime).
    pub async fn stop(&self, stage: Stage, deadline: tokio::time::Instant) -> Stopped {
        let started = tokio::time::Instant::now();
        let work = self.work(stage);
        work.token.cancel();
        work.tasks.close();
        let _ = tokio::time::timeout_at(deadline, work.tasks.wait()).await;
        let mut joined = 0;
        loop {
            let finished: Vec<std::thread::JoinHandle<()>> = {
                let mut threads = work.threads.lock();
                let (done, running): (Vec<_>, Vec<_>) =
                    threads.drain(..).partition(|h| h.is_finished());
                *threads = running;
                done
            };
            for handle in finished {
                // Finished already: joining does not block. A thread that panicked was logged by
                // the panic hook; here it only counts as joined.
                let _ = handle.join();
                joined += 1;
            }
            if work.threads.lock().is_empty() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(JOIN_POLL).await;
        }
        let (tasks_left, threads_left) = self.running(stage);
        let stopped = Stopped {
            stage,
            tasks_left,
            threads_left,
            threads_joined: joined,
            took: started.elapsed(),
        };
        if stopped.is_clean() {
            tracing::debug!(stage = stage.name(), threads = joined, took = ?stopped.took, "stage stopped");
        } else {
            tracing::warn!(
                stage = stage.name(),
                tasks = tasks_left,
                threads = threads_left,
                "stage still running when its time ran out"
            );
        }
        stopped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn soon(ms: u64) -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn stopping_a_stage_cancels_its_tasks_and_joins_its_threads() {
        let life = Lifecycle::new();
        let token = life.token(Stage::Engines);
        life.spawn(Stage::Engines, async move { token.cancelled().await });
        let token = life.token(Stage::Engines);
        let exited = Arc::new(AtomicBool::new(false));
        let flag = exited.clone();
        life.spawn_thread(Stage::Engines, "test-worker".into(), move || {
            while !token.is_cancelled() {
                std::thread::sleep(Duration::from_millis(1));
            }
            flag.store(true, Ordering::SeqCst);
        })
        .expect("thread");
        assert_eq!(life.running(Stage::Engines), (1, 1));
        let stopped = life.stop(Stage::Engines, soon(2_000)).await;
        assert!(stopped.is_clean(), "{stopped:?}");
        assert_eq!(stopped.threads_joined, 1);
        assert!(exited.load(Ordering::SeqCst));
        assert_eq!(life.running(Stage::Engines), (0, 0));
    }

    #[tokio::test]
    async fn a_stage_stops_only_its_own_work() {
        let life = Lifecycle::new();
        let control = life.token(Stage::Control);
        life.spawn(Stage::Control, async move { control.cancelled().await });
        let delivery = life.token(Stage::Delivery);
        life.spawn(Stage::Delivery, async move { delivery.cancelled().await });
        let stopped = life.stop(Stage::Control, soon(2_000)).await;
        assert!(stopped.is_clean());
        assert!(!life.is_stopping(Stage::Delivery));
        assert_eq!(life.running(Stage::Delivery), (1, 0));
        assert!(life.stop(Stage::Delivery, soon(2_000)).await.is_clean());
    }

    #[tokio::test]
    async fn work_that_ignores_its_token_is_reported_when_time_runs_out() {
        let life = Lifecycle::new();
        let release = Arc::new(AtomicBool::new(false));
        let r = release.clone();
        life.spawn_thread(Stage::Observers, "test-stuck".into(), move || {
            while !r.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("thread");
        life.spawn(Stage::Observers, std::future::pending::<()>());
        let stopped = life.stop(Stage::Observers, soon(30)).await;
        assert_eq!((stopped.tasks_left, stopped.threads_left), (1, 1));
        assert!(!stopped.is_clean());
        release.store(true, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn finished_threads_are_forgotten_as_new_ones_start() {
        let life = Lifecycle::new();
        for i in 0..50 {
            life.spawn_thread(Stage::Engines, format!("test-short-{i}"), || {})
                .expect("thread");
            std::thread::sleep(Duration::from_millis(1));
        }
        let kept = life.work(Stage::Engines).threads.lock().len();
        assert!(kept < 50, "{kept} handles kept for threads that ended");
        assert!(life.stop(Stage::Engines, soon(2_000)).await.is_clean());
    }
}
