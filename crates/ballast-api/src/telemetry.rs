//! The process-wide Prometheus recorder. Installed once, before any model loads, so the
//! per-model metric handles created at load time are live.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their buckets. The recorder keeps every sample
/// until then: without upkeep, memory grew ~52 bytes per request until the next scrape (5 MB
/// per 100k requests, unbounded on a server nobody scrapes; bench/memory.sh).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The upkeep thread and the sender whose drop stops it.
type Upkeep = (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>);
static UPKEEP: Mutex<Option<Upkeep>> = Mutex::new(None);

/// Runs the recorder's upkeep on a plain thread (a thread, not a task: the recorder is
/// process-wide and outlives any one runtime or server, e.g. in tests). Owned here, not by a
/// server's lifecycle; `ballast serve` stops it last with [`stop_upkeep`].
fn start_upkeep(handle: PrometheusHandle) {
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    #[allow(clippy::disallowed_methods)] // process-wide; stopped by `stop_upkeep`
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            // The process metrics Prometheus users expect (CPU seconds, resident memory, open
            // file descriptors, threads), refreshed on the same beat.
            let process = metrics_process::Collector::default();
            process.describe();
            loop {
                process.collect();
                let stopped = !matches!(
                    stop_rx.recv_timeout(UPKEEP_INTERVAL),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                handle.run_upkeep();
                if stopped {
                    return;
                }
            }
        });
    match started {
        Ok(thread) => *UPKEEP.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop_tx, thread)),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the metrics upkeep thread; histogram samples are folded only when /metrics is scraped")
        }
    }
}

/// Stops the upkeep thread (after one last fold) and joins it; true when it was running.
/// The last step of a server's shutdown: nothing records metrics after it.
pub fn stop_upkeep() -> bool {
    let Some((stop, thread)) = UPKEEP.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return false;
    };
    drop(stop);
    thread.join().is_ok()
}

/// Installs the recorder on first call and returns its handle. `None` only if another recorder
/// was installed by someone else first (then `/metrics` reports that it is unavailable).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets) in ballast_serve::metrics::histogram_buckets() {
                builder = match builder.set_buckets_for_metric(Matcher::Full(name.to_string()), buckets) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, metric = name, "invalid histogram buckets");
                        return None;
                    }
                };
            }
            match builder.install_recorder() {
                Ok(handle) => {
                    start_upkeep(handle.clone());
                    ballast_serve::metrics::describe();
                    metrics::gauge!(ballast_serve::metrics::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot install the Prometheus recorder");
                    None
                }
            }
        })
        .as_ref()
}
