//! Metric names of the prediction log, with help text, in one place.

use std::time::Duration;

use metrics::Unit;

use crate::log::Durability;

pub const RECORDS_TOTAL: &str = "ballast_prediction_log_records_total";
pub const DROPPED_TOTAL: &str = "ballast_prediction_log_dropped_total";
pub const PENDING: &str = "ballast_prediction_log_pending_records";
pub const FSYNC_DURATION: &str = "ballast_prediction_log_fsync_duration_seconds";
pub const SEGMENTS_TOTAL: &str = "ballast_prediction_log_segments_total";
pub const SEGMENT_ROWS_TOTAL: &str = "ballast_prediction_log_segment_rows_total";
pub const SEGMENT_FAILURES_TOTAL: &str = "ballast_prediction_log_segment_failures_total";
pub const STOPPED: &str = "ballast_prediction_log_stopped";
pub const SEGMENTS_REMOVED_TOTAL: &str = "ballast_prediction_log_segments_removed_total";

pub fn describe() {
    metrics::describe_counter!(
        RECORDS_TOTAL,
        "Prediction records written to the write-ahead log, by durability."
    );
    metrics::describe_counter!(
        DROPPED_TOTAL,
        "Prediction records not written, by reason (queue_full: buffered records when the queue is full; stopped: after a write or fsync error)."
    );
    metrics::describe_gauge!(PENDING, "Prediction records queued and not yet written.");
    metrics::describe_histogram!(
        FSYNC_DURATION,
        Unit::Seconds,
        "Time of one group commit's fsync of the prediction log."
    );
    metrics::describe_counter!(SEGMENTS_TOTAL, "Parquet segments written to the sink.");
    metrics::describe_counter!(SEGMENT_ROWS_TOTAL, "Rows written in Parquet segments.");
    metrics::describe_counter!(
        SEGMENT_FAILURES_TOTAL,
        "Segment conversions that failed and will be retried (the WAL file is kept)."
    );
    metrics::describe_counter!(
        SEGMENTS_REMOVED_TOTAL,
        "Segments removed by reason: expired (max age), evicted (max size), compacted (merged into one), superseded."
    );
    metrics::describe_gauge!(
        STOPPED,
        "1 once the prediction log stopped after a write or fsync error (restart to recover)."
    );
}

pub(crate) fn written(d: Durability, n: u64) {
    metrics::counter!(RECORDS_TOTAL, "durability" => d.as_str()).increment(n);
}

pub(crate) fn dropped(reason: &'static str) {
    metrics::counter!(DROPPED_TOTAL, "reason" => reason).increment(1);
}

pub(crate) fn pending(n: usize) {
    metrics::gauge!(PENDING).set(n as f64);
}

pub(crate) fn synced(took: Duration) {
    metrics::histogram!(FSYNC_DURATION).record(took.as_secs_f64());
}

pub(crate) fn segment_written(rows: usize) {
    metrics::counter!(SEGMENTS_TOTAL).increment(1);
    metrics::counter!(SEGMENT_ROWS_TOTAL).increment(rows as u64);
}

pub(crate) fn segment_failed() {
    metrics::counter!(SEGMENT_FAILURES_TOTAL).increment(1);
}

pub(crate) fn stopped() {
    metrics::gauge!(STOPPED).set(1.0);
}

pub(crate) fn maintained(done: &crate::retention::Maintained) {
    for (reason, n) in [
        ("expired", done.expired),
        ("evicted", done.evicted),
        ("compacted", done.compacted),
        ("superseded", done.superseded),
    ] {
        if n > 0 {
            metrics::counter!(SEGMENTS_REMOVED_TOTAL, "reason" => reason).increment(n as u64);
        }
    }
}
