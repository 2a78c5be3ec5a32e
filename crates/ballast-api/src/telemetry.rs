//! The process-wide Prometheus recorder. Installed once, before any model loads, so the
//! per-model metric handles created at load time are live.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

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
