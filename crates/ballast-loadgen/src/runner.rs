//! The closed and open loops, the warmup cut, and the once-a-second tick.
//!
//! Closed loop: `concurrency` tasks, each sending, awaiting and sending again until the end.
//! Open loop: request `i` is intended at `start + i / rate`; a dispatcher sleeps until the next
//! intended time, then spawns every request that is due, each in its own task, and latency runs
//! from the intended time, so a late send (the server's back-pressure, a busy client, the
//! dispatcher's own wake-up lag) is charged to the request. The dispatcher is a dedicated
//! thread rather than a tokio timer (see [`Pacing`]) to keep its own lag near 0.1 ms.
//!
//! A request is measured when its intended start lies after the warmup; one that cannot be
//! sent because [`MAX_OUTSTANDING`] are in flight counts as `client_dropped`. Every request is
//! bounded by the request timeout, so a run ends within one timeout after its duration, however
//! dead the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::Client;
use crate::stats::{Collector, LiveStats, Outcome, Recorder, Report, ReportHeader};
use crate::{Mode, Payloads, RunConfig, Target};

/// Open loop: requests in flight beyond which new ones are dropped (bounds memory).
pub const MAX_OUTSTANDING: usize = 50_000;
/// How often `on_tick` is called.
const TICK: Duration = Duration::from_secs(1);
/// Tokio pacing: the dispatcher yields after this many back-to-back spawns, so that a rate
/// above what the machine can spawn does not starve the request tasks sharing its thread.
const DISPATCH_YIELD_EVERY: u32 = 64;
/// Thread pacing: the longest single sleep, so an abandoned run stops its dispatcher promptly.
const MAX_DISPATCH_SLEEP: Duration = Duration::from_millis(50);

/// How the open-loop dispatcher waits for the next intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// A dedicated blocking thread with `std::thread::sleep` (~50–100 µs late on Linux), which
    /// spawns onto the runtime. Used for real runs: tokio timers round up to the next
    /// millisecond, which would add ~0.5–1 ms of client-made lateness to every open-loop
    /// latency — as much as a small model's whole service time.
    Thread,
    /// Tokio timers: follows paused time, for deterministic tests.
    #[cfg_attr(not(test), allow(dead_code))]
    Tokio,
}

/// What every request task of a run shares.
struct Shared {
    client: Client,
    recorder: Recorder,
    timeout: Duration,
    /// Notified when the number of requests in flight drops to zero.
    idle: Notify,
}

impl Shared {
    /// Sends request `idx` and records it, with latency measured from `started`.
    async fn one(&self, idx: u64, started: Instant, measured: bool) {
        let outcome = tokio::time::timeout(self.timeout, self.client.send(idx))
            .await
            .unwrap_or(Outcome::Timeout);
        self.recorder.record(measured, outcome, started.elapsed());
    }
}

/// Counts one request in flight for as long as it lives.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        shared.recorder.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.recorder.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_one();
        }
    }
}

/// Aborts the closed-loop workers if the run is dropped before they finish.
struct Workers(Vec<JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &self.0 {
            w.abort();
        }
    }
}

#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// Runs a load test against `target` and returns its report. `on_tick` is called about once a
/// second with the statistics of the last tick. Fails only on bad configuration (empty
/// payloads, zero concurrency or rate, bad URLs); an unreachable server shows up as errors in
/// the report, and the run still lasts `warmup + duration` (plus at most one
/// `request_timeout` for the last requests to finish).
pub async fn run(
    target: &Target,
    config: &RunConfig,
    payloads: &Payloads,
    on_tick: impl FnMut(&LiveStats) + Send,
) -> anyhow::Result<Report> {
    validate(config)?;
    let client = Client::new(target, config, payloads)?;
    tracing::debug!(?config, model = %target.model, "load run starting");
    run_with(client, Pacing::Thread, config, on_tick).await
}

fn validate(config: &RunConfig) -> anyhow::Result<()> {
    match config.mode {
        Mode::Closed { concurrency } => ensure!(
            concurrency > 0,
            "closed loop: concurrency must be at least 1"
        ),
        Mode::Open { rate } => {
            ensure!(
                rate.is_finite() && rate > 0.0,
                "open loop: rate must be a positive number, got {rate}"
            )
        }
    }
    ensure!(
        !config.request_timeout.is_zero(),
        "request timeout must be positive"
    );
    Ok(())
}

async fn run_with(
    client: Client,
    pacing: Pacing,
    config: &RunConfig,
    mut on_tick: impl FnMut(&LiveStats) + Send,
) -> anyhow::Result<Report> {
    let shared = Arc::new(Shared {
        client,
        recorder: Recorder::new()?,
        timeout: config.request_timeout,
        idle: Notify::new(),
    });
    let mut collector = Collector::new()?;
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let schedule = Schedule {
        start,
        measure_from,
        end: measure_from + config.duration,
    };

    let driver = async {
        match config.mode {
            Mode::Closed { concurrency } => closed_loop(&shared, concurrency, schedule)
                .await
                .map(|()| 0),
            Mode::Open { rate } => open_loop(&shared, rate, schedule, pacing).await,
        }
    };
    tokio::pin!(driver);
    let mut ticks = tokio::time::interval_at(start + TICK, TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = start;
    let client_dropped = loop {
        tokio::select! {
            result = &mut driver => break result?,
            _ = ticks.tick() => {
                let now = Instant::now();
                let live = collector.collect(&shared.recorder, now - start, now - last, now < measure_from)?;
                last = now;
                on_tick(&live);
            }
        }
    };
    let now = Instant::now();
    collector.collect(&shared.recorder, now - start, now - last, false)?;

    let (mode, offered_rate, concurrency) = match config.mode {
        Mode::Closed { concurrency } => ("closed", None, Some(concurrency)),
        Mode::Open { rate } => ("open", Some(rate), None),
    };
    let header = ReportHeader {
        protocol: config.protocol.as_str(),
        mode,
        offered_rate,
        concurrency,
        duration: config.duration,
    };
    let report = collector.report(header, &shared.recorder, client_dropped);
    tracing::debug!(sent = report.sent, ok = report.ok, "load run finished");
    Ok(report)
}

async fn closed_loop(shared: &Arc<Shared>, concurrency: usize, s: Schedule) -> anyhow::Result<()> {
    let stride = concurrency as u64;
    let mut workers = Workers(
        (0..stride)
            .map(|w| {
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    let mut idx = w;
                    loop {
                        let started = Instant::now();
                        if started >= s.end {
                            break;
                        }
                        let _in_flight = InFlight::enter(&shared);
                        shared.one(idx, started, started >= s.measure_from).await;
                        idx += stride;
                    }
                })
            })
            .collect(),
    );
    for w in &mut workers.0 {
        w.await.context("a closed-loop worker failed")?;
    }
    Ok(())
}

/// The open-loop schedule: which request is next, when it is due, and sending it.
struct Dispatcher {
    shared: Arc<Shared>,
    rate: f64,
    schedule: Schedule,
    next: u64,
    /// Measured requests not sent because [`MAX_OUTSTANDING`] were in flight.
    dropped: u64,
}

impl Dispatcher {
    /// The intended start of the next request, or `None` when the schedule is over.
    fn due(&self) -> Option<Instant> {
        let t = self.schedule.start + Duration::from_secs_f64(self.next as f64 / self.rate);
        (t < self.schedule.end).then_some(t)
    }

    /// Sends (spawns) the next request, intended at `intended`, or drops it if there is no room.
    fn fire(&mut self, intended: Instant, runtime: &Handle) {
        let measured = intended >= self.schedule.measure_from;
        if self.shared.recorder.in_flight.load(Ordering::Relaxed) >= MAX_OUTSTANDING {
            self.dropped += u64::from(measured);
        } else {
            let in_flight = InFlight::enter(&self.shared);
            let idx = self.next;
            runtime.spawn(async move {
                in_flight.0.one(idx, intended, measured).await;
                drop(in_flight);
            });
        }
        self.next += 1;
    }
}

/// Sets the flag when dropped: tells the dispatcher thread that the run was abandoned.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the open loop; returns the number of measured requests dropped for lack of room.
async fn open_loop(
    shared: &Arc<Shared>,
    rate: f64,
    schedule: Schedule,
    pacing: Pacing,
) -> anyhow::Result<u64> {
    let mut d = Dispatcher {
        shared: Arc::clone(shared),
        rate,
        schedule,
        next: 0,
        dropped: 0,
    };
    let runtime = Handle::current();
    let dropped = match pacing {
        Pacing::Thread => {
            let stop = Arc::new(AtomicBool::new(false));
            let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
            tokio::task::spawn_blocking(move || {
                while let Some(t) = d.due() {
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            return d.dropped;
                        }
                        let now = Instant::now();
                        if t <= now {
                            break;
                        }
                        std::thread::sleep((t - now).min(MAX_DISPATCH_SLEEP));
                    }
                    d.fire(t, &runtime);
                }
                d.dropped
            })
            .await
            .context("the open-loop dispatcher failed")?
        }
        Pacing::Tokio => {
            let mut since_yield = 0;
            while let Some(t) = d.due() {
                if t > Instant::now() {
                    tokio::time::sleep_until(t).await;
                    since_yield = 0;
                }
                d.fire(t, &runtime);
                since_yield += 1;
                if since_yield >= DISPATCH_YIELD_EVERY {
                    since_yield = 0;
                    tokio::task::yield_now().await;
                }
            }
            d.dropped
        }
    };
    // Each request ends within its timeout; wait for the last ones.
    while shared.recorder.in_flight.load(Ordering::Acquire) > 0 {
        shared.idle.notified().await;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Protocol;

    fn config(mode: Mode, duration_ms: u64, warmup_ms: u64, timeout_ms: u64) -> RunConfig {
        RunConfig {
            protocol: Protocol::Http,
            mode,
            duration: Duration::from_millis(duration_ms),
            warmup: Duration::from_millis(warmup_ms),
            request_timeout: Duration::from_millis(timeout_ms),
            connections: 0,
        }
    }

    /// Paused-time runs: tokio pacing, so that the schedule follows the virtual clock.
    async fn run_with_fake(
        client: Client,
        config: &RunConfig,
        on_tick: impl FnMut(&LiveStats) + Send,
    ) -> anyhow::Result<Report> {
        run_with(client, Pacing::Tokio, config, on_tick).await
    }

    fn fake(latency_ms: u64) -> Client {
        Client::Fake {
            latency: Duration::from_millis(latency_ms),
            serial: None,
        }
    }

    /// A fake server that serves one request at a time.
    fn serial_fake(latency_ms: u64) -> Client {
        Client::Fake {
            latency: Duration::from_millis(latency_ms),
            serial: Some(tokio::sync::Mutex::new(())),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_sends_rate_times_duration_after_the_warmup() {
        let mut ticks = Vec::new();
        let c = config(Mode::Open { rate: 100.0 }, 10_000, 2_000, 1_000);
        let r = run_with_fake(fake(10), &c, |s: &LiveStats| ticks.push(s.clone()))
            .await
            .unwrap();
        assert_eq!((r.sent, r.ok, r.client_dropped), (1000, 1000, 0));
        assert_eq!(r.throughput_ok_per_s, 100.0);
        assert_eq!(r.offered_rate, Some(100.0));
        // 10 ms of service, sent on time: latency is the service time.
        assert!(
            (r.latency_ok.max_us - 10_000.0).abs() <= 20.0,
            "{:?}",
            r.latency_ok
        );
        assert!(ticks.len() >= 11, "{} ticks", ticks.len());
        assert!(ticks[0].warming_up && !ticks[5].warming_up);
        assert!((ticks[5].ok_per_sec - 100.0).abs() <= 1.0, "{:?}", ticks[5]);
        assert!(ticks[5].in_flight <= 2, "{:?}", ticks[5]);
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_charges_queueing_to_the_request() {
        // 40 req/s offered to a server that serves one at a time, 20 req/s: request i is
        // intended at 25·i ms but finishes at 50·(i+1) ms, so its latency is 50 + 25·i ms.
        let c = config(Mode::Open { rate: 40.0 }, 1_000, 0, 10_000);
        let r = run_with_fake(serial_fake(50), &c, |_: &LiveStats| {})
            .await
            .unwrap();
        assert_eq!((r.sent, r.ok), (40, 40));
        let p = r.latency_ok;
        // Within the histogram's 3 significant digits.
        assert!(
            (p.p50_us - (50_000.0 + 25_000.0 * 19.0)).abs() < 2_500.0,
            "{p:?}"
        );
        assert!(
            (p.max_us - (50_000.0 + 25_000.0 * 39.0)).abs() < 2_500.0,
            "{p:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn closed_loop_measures_from_the_send() {
        let c = config(Mode::Closed { concurrency: 1 }, 1_000, 500, 10_000);
        let r = run_with_fake(serial_fake(50), &c, |_: &LiveStats| {})
            .await
            .unwrap();
        assert_eq!((r.sent, r.ok), (20, 20));
        assert!(
            (r.latency_ok.max_us - 50_000.0).abs() < 100.0,
            "{:?}",
            r.latency_ok
        );
        assert_eq!(r.concurrency, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_requests_time_out_and_the_run_still_ends() {
        let c = config(Mode::Open { rate: 10.0 }, 1_000, 0, 100);
        let started = Instant::now();
        let r = run_with_fake(fake(60_000), &c, |_: &LiveStats| {})
            .await
            .unwrap();
        assert_eq!((r.sent, r.timeouts, r.ok), (10, 10, 0));
        assert!(started.elapsed() < Duration::from_millis(1_200));
        let c = config(Mode::Closed { concurrency: 3 }, 1_000, 0, 100);
        let r = run_with_fake(fake(60_000), &c, |_: &LiveStats| {})
            .await
            .unwrap();
        assert_eq!((r.sent, r.timeouts), (30, 30));
    }

    #[tokio::test(start_paused = true)]
    async fn open_loop_drops_beyond_max_outstanding() {
        let c = config(Mode::Open { rate: 60_000.0 }, 1_000, 0, 100_000);
        let r = run_with_fake(fake(10_000), &c, |_: &LiveStats| {})
            .await
            .unwrap();
        assert_eq!(r.sent as usize, MAX_OUTSTANDING);
        assert_eq!(r.client_dropped as usize, 60_000 - MAX_OUTSTANDING);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thread_pacing_keeps_the_schedule_in_real_time() {
        let c = config(Mode::Open { rate: 200.0 }, 500, 100, 1_000);
        let started = Instant::now();
        let r = run_with(fake(1), Pacing::Thread, &c, |_: &LiveStats| {})
            .await
            .unwrap();
        let wall = started.elapsed();
        assert_eq!((r.sent, r.ok, r.client_dropped), (100, 100, 0));
        // The last request is intended at 100 + 495 ms.
        assert!(
            wall >= Duration::from_millis(595) && wall < Duration::from_millis(1_500),
            "{wall:?}"
        );
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(validate(&config(Mode::Closed { concurrency: 0 }, 1, 0, 1)).is_err());
        assert!(validate(&config(Mode::Open { rate: 0.0 }, 1, 0, 1)).is_err());
        assert!(validate(&config(Mode::Open { rate: f64::NAN }, 1, 0, 1)).is_err());
        assert!(validate(&config(Mode::Open { rate: 1.0 }, 1, 0, 0)).is_err());
        assert!(validate(&config(Mode::Open { rate: 1.0 }, 1, 0, 1)).is_ok());
    }

    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let target = Target {
            http_url: String::new(),
            grpc_url: String::new(),
            model: String::new(),
            version: None,
        };
        let c = config(Mode::Closed { concurrency: 1 }, 1, 0, 1);
        let payloads = Payloads::default();
        let fut = run(&target, &c, &payloads, |_: &LiveStats| {});
        assert_send(&fut);
    }
}
