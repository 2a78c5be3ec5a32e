//! The end of `ballast serve` and of the demo, in one known order.
//!
//! By the time [`finish`] runs, the server has stopped accepting (listeners closed, readiness
//! off) and drained its in-flight requests and shadow mirrors (`Server::run` returned), and
//! the control plane (deployer, admin API, watcher, alert evaluation) stopped when shutdown
//! began. Then, each within what is left of the grace period:
//!
//! 1. the front door's probe (task and thread);
//! 2. every version unloaded, its batcher task and engine threads joined;
//! 3. the tap closed, each observer thread taking what was queued for it, then joined;
//! 4. alert delivery: what is queued sent once more, then the task ends;
//! 5. the prediction log: every record written and fsynced, the WAL rolled into segments,
//!    its threads joined — with no time limit, since these are acknowledged records;
//! 6. the process's metrics upkeep thread.

use std::sync::Arc;
use std::time::Duration;

use ballast_serve::capture::PredictionLogs;
use ballast_serve::lifecycle::Stopped;
use ballast_serve::observe::Tap;
use ballast_serve::{Lifecycle, ModelRepository, Stage};

/// What the server started and must stop.
pub struct Parts {
    pub life: Lifecycle,
    pub repo: Option<Arc<ModelRepository>>,
    pub tap: Tap,
    pub logs: Option<PredictionLogs>,
}

/// Stops what is left, in order (see the module doc). Returns each stage's report, in the
/// order it stopped; a stage that did not finish in time is logged with what was left.
pub async fn finish(parts: Parts, grace: Duration) -> Vec<Stopped> {
    let deadline = tokio::time::Instant::now() + grace;
    let life = &parts.life;
    let mut stopped = Vec::with_capacity(Stage::ORDER.len());
    for stage in Stage::ORDER {
        match stage {
            Stage::Engines => {
                if let Some(repo) = &parts.repo {
                    repo.shut_down();
                }
            }
            Stage::Observers => parts.tap.close(),
            Stage::Control | Stage::Front | Stage::Delivery => {}
        }
        stopped.push(life.stop(stage, deadline).await);
    }
    if let Some(l) = parts.logs {
        let log = l.log.clone();
        match tokio::task::spawn_blocking(move || log.close()).await {
            Ok(()) => {
                tracing::info!(location = %l.log.sink().location(), "prediction log flushed and closed")
            }
            Err(_) => tracing::error!(
                "the prediction log did not close cleanly; its WAL is recovered at the next start"
            ),
        }
    }
    ballast_api::telemetry::stop_upkeep();
    let left = still_running(&stopped);
    let order: Vec<&str> = stopped.iter().map(|s| s.stage.name()).collect();
    let threads: usize = stopped.iter().map(|s| s.threads_joined).sum();
    if left.is_empty() {
        tracing::info!(
            order = %order.join(" → "),
            threads_joined = threads,
            "every background task and thread stopped"
        );
    } else {
        tracing::warn!(
            still_running = %left.join(", "),
            "shutdown grace over with background work still running"
        );
    }
    stopped
}

/// The stages that had work left when their time ran out, each with what was left.
pub fn still_running(stopped: &[Stopped]) -> Vec<String> {
    stopped
        .iter()
        .filter(|s| !s.is_clean())
        .map(|s| {
            format!(
                "{} ({} tasks, {} threads)",
                s.stage.name(),
                s.tasks_left,
                s.threads_left
            )
        })
        .collect()
}
