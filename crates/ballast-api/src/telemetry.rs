//! The process-wide Prometheus recorder. Installed once, before any model loads, so the
//! per-model metric handles created at load time are live.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often histogram samples are folded into their buckets. The recorder keeps every sample
/// until then: without upkeep, memory grew ~52 bytes per request until the next scrape (5 MB
/// per 100k requests, unbounded on a server nobody scrapes; bench/memory.sh).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the recorder's upkeep on a plain thread for the life of the process (a thread, not a
/// task: the recorder is process-wide and outlives any one runtime, e.g. in tests).
fn start_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            // The process metrics Prometheus users expect (CPU seconds, resident memory, open
            // file descriptors, threads), refreshed on the same beat.
            let process = metrics_process::Collector::default();
            process.describe();
            loop {
                process.collect();
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "cannot start the metrics upkeep thread; histogram samples are folded only when /metrics is scraped");
    }
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
