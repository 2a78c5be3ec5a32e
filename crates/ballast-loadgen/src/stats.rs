//! Outcome counting and HDR latency histograms. Requests record into a small mutex-protected
//! window (a counter bump and one histogram record: the lock is held for well under a
//! microsecond); once per tick the window is swapped with a spare, merged into the run's totals
//! and summarised as [`LiveStats`]. The final [`Report`] is built from the totals.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Histogram bounds: 1 µs to 60 s at 3 significant digits, growing past 60 s if needed.
const HIST_LOW_US: u64 = 1;
const HIST_HIGH_US: u64 = 60_000_000;
const HIST_SIGFIG: u8 = 3;

pub(crate) fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .context("creating a histogram")?;
    h.auto(true);
    Ok(h)
}

fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// How one request ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ok,
    /// HTTP 429 or gRPC `RESOURCE_EXHAUSTED`.
    Rejected,
    /// HTTP 503 or gRPC `UNAVAILABLE` from the server.
    Unavailable,
    /// Client timeout, HTTP 504 or gRPC `DEADLINE_EXCEEDED`.
    Timeout,
    /// Anything else; the detail is formatted only if it becomes the run's first error.
    Error(ErrorDetail),
}

impl Outcome {
    fn index(&self) -> usize {
        match self {
            Outcome::Ok => OK,
            Outcome::Rejected => REJECTED,
            Outcome::Unavailable => UNAVAILABLE,
            Outcome::Timeout => TIMEOUT,
            Outcome::Error(_) => ERROR,
        }
    }
}

const OK: usize = 0;
const REJECTED: usize = 1;
const UNAVAILABLE: usize = 2;
const TIMEOUT: usize = 3;
const ERROR: usize = 4;

/// What went wrong with a request counted as an error, kept unformatted.
#[derive(Debug)]
pub(crate) enum ErrorDetail {
    /// An unexpected HTTP status, with the start of the body.
    HttpStatus {
        status: u16,
        body: bytes::Bytes,
    },
    Reqwest(reqwest::Error),
    Grpc(tonic::Status),
    Transport(tonic::transport::Error),
    #[cfg(test)]
    Test(&'static str),
}

/// `err` and its sources, `: `-separated (a source already quoted by its parent is skipped).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorDetail::HttpStatus { status, body } => {
                write!(f, "HTTP {status}: {}", crate::client::prefix(body))
            }
            ErrorDetail::Reqwest(e) => write!(f, "HTTP request failed: {}", chain(e)),
            ErrorDetail::Grpc(s) => {
                write!(f, "gRPC {:?}: {}", s.code(), s.message())?;
                if let Some(source) = std::error::Error::source(s) {
                    write!(f, " ({})", chain(source))?;
                }
                Ok(())
            }
            ErrorDetail::Transport(e) => write!(f, "gRPC transport: {}", chain(e)),
            #[cfg(test)]
            ErrorDetail::Test(s) => f.write_str(s),
        }
    }
}

/// One tick's worth of records.
struct Window {
    /// All requests, warmup included: for [`LiveStats`].
    live_counts: [u64; 5],
    live_ok: Histogram<u64>,
    /// Measured requests only: merged into the totals.
    counts: [u64; 5],
    ok: Histogram<u64>,
    rejected: Histogram<u64>,
}

impl Window {
    fn new() -> anyhow::Result<Self> {
        Ok(Window {
            live_counts: [0; 5],
            live_ok: new_histogram()?,
            counts: [0; 5],
            ok: new_histogram()?,
            rejected: new_histogram()?,
        })
    }

    fn reset(&mut self) {
        self.live_counts = [0; 5];
        self.live_ok.reset();
        self.counts = [0; 5];
        self.ok.reset();
        self.rejected.reset();
    }
}

/// Shared by every request task of a run.
pub(crate) struct Recorder {
    window: Mutex<Window>,
    first_error: OnceLock<String>,
    /// Requests sent and not yet finished.
    pub(crate) in_flight: AtomicUsize,
}

impl Recorder {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Recorder {
            window: Mutex::new(Window::new()?),
            first_error: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Records one finished request; `measured` is false for warmup requests.
    pub(crate) fn record(&self, measured: bool, outcome: Outcome, latency: Duration) {
        let k = outcome.index();
        {
            let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            w.live_counts[k] += 1;
            if k == OK {
                record(&mut w.live_ok, latency);
            }
            if measured {
                w.counts[k] += 1;
                match k {
                    OK => record(&mut w.ok, latency),
                    REJECTED => record(&mut w.rejected, latency),
                    _ => {}
                }
            }
        }
        if measured
            && let Outcome::Error(detail) = outcome
            && self.first_error.get().is_none()
        {
            let _ = self.first_error.set(detail.to_string());
        }
    }

    /// Swaps the current window with `spare` (which must be empty).
    fn swap(&self, spare: &mut Window) {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *w, spare);
    }
}

/// The run's totals, owned by the task that runs the ticks.
pub(crate) struct Collector {
    spare: Window,
    counts: [u64; 5],
    ok: Histogram<u64>,
    rejected: Histogram<u64>,
}

impl Collector {
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Collector {
            spare: Window::new()?,
            counts: [0; 5],
            ok: new_histogram()?,
            rejected: new_histogram()?,
        })
    }

    /// Takes the recorder's current window, adds its measured part to the totals, and returns
    /// the live statistics over it (`tick` is the time it covers, `elapsed` the time since the
    /// run started).
    pub(crate) fn collect(
        &mut self,
        recorder: &Recorder,
        elapsed: Duration,
        tick: Duration,
        warming_up: bool,
    ) -> anyhow::Result<LiveStats> {
        recorder.swap(&mut self.spare);
        let w = &mut self.spare;
        for (total, n) in self.counts.iter_mut().zip(w.counts) {
            *total += n;
        }
        self.ok.add(&w.ok).context("merging histograms")?;
        self.rejected
            .add(&w.rejected)
            .context("merging histograms")?;
        let secs = tick.as_secs_f64().max(1e-3);
        let per_sec = |n: u64| n as f64 / secs;
        let quantile = |q: f64| {
            if w.live_ok.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_micros(w.live_ok.value_at_quantile(q))
            }
        };
        let live = LiveStats {
            elapsed,
            warming_up,
            ok_per_sec: per_sec(w.live_counts[OK]),
            rejected_per_sec: per_sec(w.live_counts[REJECTED]),
            errors_per_sec: per_sec(
                w.live_counts[UNAVAILABLE] + w.live_counts[TIMEOUT] + w.live_counts[ERROR],
            ),
            p50: quantile(0.5),
            p99: quantile(0.99),
            in_flight: recorder.in_flight.load(Ordering::Relaxed),
        };
        w.reset();
        Ok(live)
    }

    /// Builds the report from the totals; call after a final [`Collector::collect`].
    pub(crate) fn report(
        &self,
        header: ReportHeader,
        recorder: &Recorder,
        client_dropped: u64,
    ) -> Report {
        let c = self.counts;
        let duration_s = header.duration.as_secs_f64();
        Report {
            protocol: header.protocol.to_string(),
            mode: header.mode.to_string(),
            offered_rate: header.offered_rate,
            concurrency: header.concurrency,
            duration_s,
            sent: c.iter().sum(),
            ok: c[OK],
            rejected: c[REJECTED],
            unavailable: c[UNAVAILABLE],
            timeouts: c[TIMEOUT],
            errors: c[ERROR],
            client_dropped,
            throughput_ok_per_s: if duration_s > 0.0 {
                c[OK] as f64 / duration_s
            } else {
                0.0
            },
            goodput_per_s: if duration_s > 0.0 {
                self.ok.count_between(0, GOODPUT_SLO.as_micros() as u64) as f64 / duration_s
            } else {
                0.0
            },
            latency_ok: Percentiles::from_histogram(&self.ok),
            latency_rejected: Percentiles::from_histogram(&self.rejected),
            first_error: recorder.first_error.get().cloned(),
        }
    }
}

/// The run-level facts of a report.
pub(crate) struct ReportHeader {
    pub(crate) protocol: &'static str,
    pub(crate) mode: &'static str,
    pub(crate) offered_rate: Option<f64>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) duration: Duration,
}

/// Statistics over the last tick (about one second), for progress display. Unlike the
/// [`Report`], they include warmup requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveStats {
    /// Time since the run started, warmup included.
    pub elapsed: Duration,
    /// Whether the run is still in its warmup.
    pub warming_up: bool,
    /// Successful requests per second.
    pub ok_per_sec: f64,
    /// Rejected (429 / `RESOURCE_EXHAUSTED`) requests per second.
    pub rejected_per_sec: f64,
    /// Unavailable, timed-out and failed requests per second.
    pub errors_per_sec: f64,
    /// Median latency of the tick's successful requests (0 if none).
    pub p50: Duration,
    /// 99th percentile latency of the tick's successful requests (0 if none).
    pub p99: Duration,
    /// Requests sent and not yet finished, now.
    pub in_flight: usize,
}

/// Latency percentiles in microseconds (all 0 when `count` is 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of requests.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Maximum.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl Percentiles {
    /// Summarises a histogram of microsecond values.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |q: f64| h.value_at_quantile(q) as f64;
        Percentiles {
            count: h.len(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max() as f64,
            mean_us: h.mean(),
        }
    }
}

/// The result of a run. Counts cover requests whose intended start lies in the measured period
/// (after the warmup); `sent = ok + rejected + unavailable + timeouts + errors`.
/// The latency within which a successful answer counts as goodput.
pub const GOODPUT_SLO: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `http` or `grpc`.
    pub protocol: String,
    /// `closed` or `open`.
    pub mode: String,
    /// Open loop: requests per second offered.
    pub offered_rate: Option<f64>,
    /// Closed loop: number of workers.
    pub concurrency: Option<usize>,
    /// Measured period in seconds (warmup excluded).
    pub duration_s: f64,
    /// Requests sent and finished (every outcome below).
    pub sent: u64,
    /// Successful.
    pub ok: u64,
    /// HTTP 429 or gRPC `RESOURCE_EXHAUSTED`.
    pub rejected: u64,
    /// HTTP 503 or gRPC `UNAVAILABLE` from the server.
    pub unavailable: u64,
    /// Client timeout, HTTP 504 or gRPC `DEADLINE_EXCEEDED`.
    pub timeouts: u64,
    /// Anything else, connection failures included.
    pub errors: u64,
    /// Open loop: requests not sent because too many were outstanding.
    pub client_dropped: u64,
    /// `ok / duration_s`.
    pub throughput_ok_per_s: f64,
    /// Successful requests answered within [`GOODPUT_SLO`] of their intended send time, per
    /// second: what overload benchmarks compare with capacity.
    pub goodput_per_s: f64,
    /// Latency of successful requests.
    pub latency_ok: Percentiles,
    /// Latency of rejected requests.
    pub latency_rejected: Percentiles,
    /// The first error's message (status and body prefix, or the transport error).
    pub first_error: Option<String>,
}

impl Report {
    /// Prints [`Report`]'s human-readable summary (its `Display`) to stdout.
    pub fn print_table(&self) {
        println!("{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = match (self.offered_rate, self.concurrency) {
            (Some(rate), _) => format!("open loop at {rate:.1} req/s"),
            (None, Some(c)) => format!("closed loop, concurrency {c}"),
            (None, None) => self.mode.clone(),
        };
        writeln!(
            f,
            "{} {load}, {:.1} s measured",
            self.protocol, self.duration_s
        )?;
        writeln!(
            f,
            "requests: sent {}  ok {}  rejected {}  unavailable {}  timeouts {}  errors {}  client_dropped {}",
            self.sent,
            self.ok,
            self.rejected,
            self.unavailable,
            self.timeouts,
            self.errors,
            self.client_dropped
        )?;
        writeln!(
            f,
            "throughput: {:.1} ok/s  goodput (ok within {} ms): {:.1}/s",
            self.throughput_ok_per_s,
            GOODPUT_SLO.as_millis(),
            self.goodput_per_s
        )?;
        writeln!(
            f,
            "{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency ms", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
        )?;
        for (name, p) in [
            ("ok", &self.latency_ok),
            ("rejected", &self.latency_rejected),
        ] {
            let ms = |us: f64| us / 1000.0;
            writeln!(
                f,
                "{name:<10} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.count,
                ms(p.p50_us),
                ms(p.p90_us),
                ms(p.p99_us),
                ms(p.p999_us),
                ms(p.max_us),
                ms(p.mean_us)
            )?;
        }
        if let Some(e) = &self.first_error {
            write!(f, "first error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ReportHeader {
        ReportHeader {
            protocol: "http",
            mode: "closed",
            offered_rate: None,
            concurrency: Some(2),
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn warmup_records_show_live_but_not_in_the_report() {
        let r = Recorder::new().unwrap();
        let mut c = Collector::new().unwrap();
        r.record(false, Outcome::Ok, Duration::from_millis(1));
        r.record(true, Outcome::Ok, Duration::from_millis(2));
        r.record(true, Outcome::Ok, Duration::from_millis(4));
        r.record(true, Outcome::Rejected, Duration::from_micros(100));
        r.record(true, Outcome::Timeout, Duration::from_secs(1));
        r.record(
            false,
            Outcome::Error(ErrorDetail::Test("warmup error")),
            Duration::ZERO,
        );
        r.record(
            true,
            Outcome::Error(ErrorDetail::Test("first")),
            Duration::ZERO,
        );
        r.record(
            true,
            Outcome::Error(ErrorDetail::Test("second")),
            Duration::ZERO,
        );
        let live = c
            .collect(
                &r,
                Duration::from_secs(1),
                Duration::from_millis(500),
                false,
            )
            .unwrap();
        assert_eq!(live.ok_per_sec, 6.0);
        assert_eq!(live.rejected_per_sec, 2.0);
        assert_eq!(live.errors_per_sec, 8.0);
        r.record(true, Outcome::Unavailable, Duration::ZERO);
        let live = c
            .collect(&r, Duration::from_secs(2), Duration::from_secs(1), false)
            .unwrap();
        assert_eq!(
            (live.ok_per_sec, live.errors_per_sec, live.p99),
            (0.0, 1.0, Duration::ZERO)
        );

        let rep = c.report(header(), &r, 0);
        assert_eq!(
            (
                rep.sent,
                rep.ok,
                rep.rejected,
                rep.unavailable,
                rep.timeouts,
                rep.errors
            ),
            (7, 2, 1, 1, 1, 2)
        );
        assert_eq!(rep.first_error.as_deref(), Some("first"));
        assert_eq!(rep.latency_ok.count, 2);
        assert_eq!(rep.latency_rejected.count, 1);
        assert_eq!(rep.throughput_ok_per_s, 1.0);
        assert!(
            (rep.latency_ok.p50_us - 2000.0).abs() <= 2.0,
            "{:?}",
            rep.latency_ok
        );
        assert!(
            (rep.latency_ok.max_us - 4000.0).abs() <= 4.0,
            "{:?}",
            rep.latency_ok
        );
        assert!(
            (rep.latency_ok.mean_us - 3000.0).abs() <= 3.0,
            "{:?}",
            rep.latency_ok
        );
    }

    #[test]
    fn latencies_beyond_the_histogram_range_still_count() {
        let r = Recorder::new().unwrap();
        let mut c = Collector::new().unwrap();
        r.record(true, Outcome::Ok, Duration::from_secs(120));
        c.collect(&r, Duration::ZERO, Duration::from_secs(1), false)
            .unwrap();
        let rep = c.report(header(), &r, 0);
        assert_eq!(rep.latency_ok.count, 1);
        assert!(rep.latency_ok.max_us >= 119e6, "{:?}", rep.latency_ok);
    }

    #[test]
    fn report_renders_a_table_and_json() {
        let r = Recorder::new().unwrap();
        let mut c = Collector::new().unwrap();
        r.record(true, Outcome::Ok, Duration::from_millis(3));
        r.record(
            true,
            Outcome::Error(ErrorDetail::HttpStatus {
                status: 500,
                body: "boom".into(),
            }),
            Duration::ZERO,
        );
        c.collect(&r, Duration::ZERO, Duration::from_secs(1), false)
            .unwrap();
        let rep = c.report(header(), &r, 0);
        let text = rep.to_string();
        assert!(text.contains("closed loop, concurrency 2"), "{text}");
        assert!(text.contains("first error: HTTP 500: boom"), "{text}");
        let json = serde_json::to_value(&rep).unwrap();
        assert_eq!(json["latency_ok"]["count"], 1);
        assert_eq!(json["offered_rate"], serde_json::Value::Null);
    }
}
