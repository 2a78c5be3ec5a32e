//! `ballast demo`: serves the example models bundled into the binary and drives realistic
//! traffic at them — real fraud-like transactions over HTTP, then gRPC, then a spike well past
//! capacity, then an automated rollout of fraud v2 with its gate decisions and an instant
//! rollback, live drift, and where every prediction went (the prediction log) — printing live
//! throughput, latency percentiles, rejections and the event log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ballast_api::{ApiConfig, Server};
use ballast_core::RolloutPlan;
use ballast_core::traffic::{GateThresholds, RolloutStep, StepMode};
use ballast_deploy::{DeployOptions, Deployer, EngineLoader};
use ballast_loadgen::{LiveStats, Mode, Payloads, Protocol, Report, RunConfig, Target};
use ballast_registry::store::{EventFilter, ModelCard, RolloutState};
use ballast_registry::{PRODUCTION, Registry, RegistryOptions};
use ballast_serve::ModelRepository;
use ballast_serve::{Lifecycle, Stage};
use tokio_util::sync::CancellationToken;

use crate::cli::DemoArgs;

/// The example repository, embedded so the demo runs from any directory with no Python.
const BUNDLED: &[(&str, &[u8])] = &[
    (
        "fraud/config.toml",
        include_bytes!("../../../examples/models/fraud/config.toml"),
    ),
    (
        "fraud/1/model.onnx",
        include_bytes!("../../../examples/models/fraud/1/model.onnx"),
    ),
    (
        "fraud/2/model.onnx",
        include_bytes!("../../../examples/models/fraud/2/model.onnx"),
    ),
    (
        "dtypes/config.toml",
        include_bytes!("../../../examples/models/dtypes/config.toml"),
    ),
    (
        "dtypes/1/model.onnx",
        include_bytes!("../../../examples/models/dtypes/1/model.onnx"),
    ),
    (
        "seqmean/config.toml",
        include_bytes!("../../../examples/models/seqmean/config.toml"),
    ),
    (
        "seqmean/1/model.onnx",
        include_bytes!("../../../examples/models/seqmean/1/model.onnx"),
    ),
    (
        "fraud_xgb/config.toml",
        include_bytes!("../../../examples/models/fraud_xgb/config.toml"),
    ),
    (
        "fraud_xgb/1/model.json",
        include_bytes!("../../../examples/models/fraud_xgb/1/model.json"),
    ),
];
/// fraud v2 exported with its feature columns reversed: the faulty candidate of phase 4.
const FAULTY_FRAUD: &[u8] = include_bytes!("../../../examples/faulty/fraud_reversed/model.onnx");
/// Synthetic card transactions (12 features + label) replayed as traffic.
const FRAUD_SAMPLE: &str = include_str!("../../../examples/data/fraud_sample.csv");

fn demo_card() -> ModelCard {
    ModelCard {
        owner: Some("ballast demo".into()),
        description: Some("bundled example model".into()),
        intended_use: Some("demonstration only".into()),
        trained_on: Some("examples/make_models.py synthetic data".into()),
        metrics: [("synthetic".to_string(), 1.0)].into(),
    }
}

fn write_models(dir: &Path) -> anyhow::Result<()> {
    for (path, bytes) in BUNDLED {
        let target = dir.join("models").join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
    }
    // The fraud versions travel with their reference data: the monitor judges live traffic
    // against it (`reference.csv` beside the model).
    for version in ["1", "2"] {
        let target = dir.join("models/fraud").join(version).join("reference.csv");
        std::fs::write(&target, FRAUD_SAMPLE)
            .with_context(|| format!("writing {}", target.display()))?;
    }
    Ok(())
}

/// The demo's monitor: row windows small enough to close several times a phase.
const DEMO_WINDOW_ROWS: u64 = 20_000;
/// Time the demo gives its server to drain and its background work to stop at the end.
const DEMO_GRACE: Duration = Duration::from_secs(10);

/// The demo's alert rule: a feature whose PSI in a closed window passes 0.25 (the usual
/// "significant shift" line).
fn demo_alert_rule() -> ballast_monitor::alerts::Rule {
    use ballast_monitor::alerts::{Op, Rule, Signal, Statistic};
    Rule {
        name: "fraud-feature-drift".into(),
        signal: Signal::FeatureDrift,
        model: Some("fraud".into()),
        version: None,
        feature: None,
        statistic: Some(Statistic::Psi),
        issue: None,
        op: Op::Gt,
        threshold: 0.25,
        for_: "0s".into(),
        severity: "critical".into(),
        labels: [("owner".to_string(), "risk-team".to_string())].into(),
    }
}

fn fraud_rows() -> anyhow::Result<Vec<Vec<f32>>> {
    let mut rows = Vec::new();
    for (i, line) in FRAUD_SAMPLE.lines().enumerate().skip(1) {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("fraud_sample.csv line {}", i + 1))?;
        // The last column is the label, not a feature.
        rows.push(values[..values.len().saturating_sub(1)].to_vec());
    }
    anyhow::ensure!(!rows.is_empty(), "fraud_sample.csv has no rows");
    Ok(rows)
}

async fn bind(args: &DemoArgs, life: &Lifecycle) -> anyhow::Result<Server> {
    let config = |http: u16, grpc: u16| ApiConfig {
        http_addr: ([127, 0, 0, 1], http).into(),
        grpc_addr: ([127, 0, 0, 1], grpc).into(),
        ..ApiConfig::default()
    };
    match Server::bind(config(args.http_port, args.grpc_port), life.clone()).await {
        Ok(s) => Ok(s),
        Err(e) => {
            println!(
                "ports {}/{} are taken ({e}); using free ports instead",
                args.http_port, args.grpc_port
            );
            Ok(Server::bind(config(0, 0), life.clone()).await?)
        }
    }
}

fn tick_printer(label: &'static str) -> impl FnMut(&LiveStats) + Send {
    move |s: &LiveStats| {
        println!(
            "  [{label} {:>4.1}s] ok {:>7.0}/s  rejected {:>6.0}/s  errors {:>4.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  in flight {:>5}",
            s.elapsed.as_secs_f64(),
            s.ok_per_sec,
            s.rejected_per_sec,
            s.errors_per_sec,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.in_flight
        );
    }
}

/// Where the demo's load generator runs. On a machine with two or more cores the server keeps
/// the first (its runtime, engine and blocking threads are pinned there, see `main.rs`) and the
/// generator gets its own runtime pinned to the second, so the figures the demo prints are not
/// the generator taking CPU from the server it measures — the setup `bench/overload.sh` uses.
/// On one core both share it, and the demo says so.
#[derive(Debug, Clone, Copy)]
pub struct Cores {
    pub server: core_affinity::CoreId,
    pub generator: core_affinity::CoreId,
}

impl Cores {
    /// The first two cores this process may run on, unless `shared` or there are fewer.
    pub fn pick(shared: bool) -> Option<Self> {
        if shared {
            return None;
        }
        let ids = core_affinity::get_core_ids()?;
        match ids.as_slice() {
            [server, generator, ..] => Some(Self {
                server: *server,
                generator: *generator,
            }),
            _ => None,
        }
    }
}

/// Phase 5: the same traffic, then one feature shifted, judged live against the reference.
async fn drift_phase(
    cores: Option<Cores>,
    target: &Target,
    load: &RunConfig,
    rows: &[Vec<f32>],
    monitor: &ballast_monitor::Monitor,
    alerts: &ballast_monitor::alerts::Alerts,
) -> anyhow::Result<()> {
    use ballast_monitor::alerts::State;
    let production = target.clone();
    println!(
        "\nPhase 5: live drift. Every request to fraud is counted in its reference's bins (reference.csv beside\n  \
         each version), judged per window of {DEMO_WINDOW_ROWS} rows: drifted when chi-square p < 1e-6 and Jensen-Shannon >= 0.05;\n  \
         alert rule: a feature's PSI > 0.25 fires at once"
    );
    // Row windows of the monitored fraud versions that started at or after `t0`.
    let windows_since = |t0: f64| {
        let mut out = Vec::new();
        for version in ["1", "2"] {
            if let Some(r) = monitor.version_report("fraud", version) {
                out.extend(
                    r.row_windows
                        .into_iter()
                        .filter(|w| w.start >= t0)
                        .map(|w| (version, w)),
                );
            }
        }
        out
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    };
    let max_psi = |w: &ballast_monitor::online::WindowReport| {
        w.features
            .iter()
            .map(|f| (f.drift.as_ref().map_or(0.0, |d| d.psi), f.name.clone()))
            .fold(
                (0.0f64, String::new()),
                |a, b| if b.0 > a.0 { b } else { a },
            )
    };
    let firing = || {
        alerts
            .list()
            .into_iter()
            .filter(|a| a.state == State::Firing)
            .collect::<Vec<_>>()
    };

    println!("  5a. the usual transactions, 16 HTTP clients:");
    let same = ballast_loadgen::fp32_row_payloads("features", rows, 1, true)?;
    let t0 = now();
    generate(cores, &production, load, &same, |_: &LiveStats| {}).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calm = windows_since(t0);
    let worst = calm
        .iter()
        .map(|(_, w)| max_psi(w))
        .fold(
            (0.0f64, String::new()),
            |a, b| if b.0 > a.0 { b } else { a },
        );
    println!(
        "      {} windows judged, {} with a drifted feature; largest PSI of any feature in any of them {:.3} ({}); alerts firing: {}",
        calm.len(),
        calm.iter().filter(|(_, w)| !w.drifted.is_empty()).count(),
        worst.0,
        worst.1,
        firing().len()
    );

    println!(
        "  5b. upstream starts sending amounts in cents: amount_log shifts by ln(100) = 4.6 on every transaction:"
    );
    let shifted_rows: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r[0] += 100f32.ln();
            r
        })
        .collect();
    let shifted = ballast_loadgen::fp32_row_payloads("features", &shifted_rows, 1, true)?;
    let t1 = now();
    generate(cores, &production, load, &shifted, |_: &LiveStats| {}).await?;
    // Alert rules are evaluated every second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let drifted = windows_since(t1);
    println!(
        "      {} windows judged, {} with a drifted feature",
        drifted.len(),
        drifted
            .iter()
            .filter(|(_, w)| !w.drifted.is_empty())
            .count()
    );
    if let Some((version, w)) = drifted.last() {
        let f = w.features.iter().find(|f| f.name == "amount_log");
        println!(
            "      newest window of fraud v{version}: drifted {:?}{}",
            w.drifted,
            f.and_then(|f| Some((f, f.drift.as_ref()?)))
                .map(|(f, d)| format!(
                    "; amount_log PSI {:.2}, Jensen-Shannon {:.2}, {:.0}% outside the reference's range",
                    d.psi,
                    d.jensen_shannon,
                    f.out_of_range_share * 100.0
                ))
            .unwrap_or_default()
        );
    }
    let fired = firing();
    if fired.is_empty() {
        println!("      NO alert fired: the monitor missed a shifted feature");
    }
    for a in &fired {
        println!("      ALERT firing [{}] {}", a.severity, a.summary);
    }
    Ok(())
}

/// Runs one load-generator run, on its own pinned runtime when `cores` is set.
async fn generate(
    cores: Option<Cores>,
    target: &Target,
    config: &RunConfig,
    payloads: &Payloads,
    on_tick: impl FnMut(&LiveStats) + Send + 'static,
) -> anyhow::Result<Report> {
    let Some(cores) = cores else {
        return ballast_loadgen::run(target, config, payloads, on_tick).await;
    };
    let (target, config, payloads) = (target.clone(), config.clone(), payloads.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The demo's client, not the server: it sends its report as its last act, awaited below.
    #[allow(clippy::disallowed_methods)]
    std::thread::Builder::new()
        .name("demo-loadgen".into())
        .spawn(move || {
            core_affinity::set_for_current(cores.generator);
            let result = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| {
                    rt.block_on(ballast_loadgen::run(&target, &config, &payloads, on_tick))
                });
            let _ = tx.send(result);
        })
        .context("starting the load generator thread")?;
    rx.await.context("the load generator thread stopped")?
}

pub async fn run(args: DemoArgs, cores: Option<Cores>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary model repository")?;
    write_models(dir.path())?;
    // One owner for every task and thread, stopped in order at the end (as `ballast serve`).
    let life = Lifecycle::new();
    let server = bind(&args, &life).await?;
    let shutdown = CancellationToken::new();
    let handle = server.handle(shutdown.clone())?;
    let serving = life.spawn(Stage::Front, server.run(shutdown.clone()));
    // The bundled repository goes through the registry, as a team's models would: imported
    // with a model card, served by the deployer, fraud v1 in production (a model's first
    // version becomes production).
    let registry = Arc::new(
        Registry::open(RegistryOptions::new(dir.path().join("registry")))
            .await
            .context("opening the demo registry")?,
    );
    registry
        .import(&dir.path().join("models"), &demo_card(), "demo", false)
        .await
        .context("importing the bundled models")?;
    // Drift monitoring, as `ballast serve` runs it: the monitor on the observation tap before
    // any version loads, and an alert rule on its windows (evaluated every second).
    let monitor = Arc::new(ballast_monitor::Monitor::new(
        ballast_monitor::WindowOptions {
            rows: DEMO_WINDOW_ROWS,
            ..ballast_monitor::WindowOptions::default()
        },
    ));
    let tap = ballast_serve::observe::Tap::new();
    tap.attach(
        monitor.clone(),
        ballast_serve::observe::DEFAULT_CAPACITY,
        &life,
    )
    .context("starting the monitor's thread")?;
    handle.set_monitor(monitor.clone());
    let alerts = Arc::new(ballast_monitor::alerts::Alerts::new(
        vec![demo_alert_rule()],
        &ballast_monitor::alerts::AlertingConfig::default(),
    ));
    handle.set_alerts(alerts.clone());
    {
        let stop = life.token(Stage::Control);
        life.spawn(
            Stage::Control,
            alerts
                .clone()
                .run(monitor.clone(), async move { stop.cancelled().await }),
        );
    }
    // The prediction log, as `ballast serve` keeps it: every version logs (durably) from its start.
    let logs = crate::demo_logs::open(dir.path())?;
    let repo = Arc::new(
        ModelRepository::observed(tap.clone())
            .with_logs(Some(logs.clone()))
            .with_lifecycle(life.clone()),
    );
    let deployer = Arc::new(Deployer::new(
        registry.clone(),
        repo.clone(),
        Arc::new(EngineLoader {
            onnxruntime_library: None,
        }),
        DeployOptions::default(),
    ));
    deployer
        .reconcile()
        .await
        .context("loading the bundled models")?;
    handle.set_repository(repo.clone());
    life.spawn(
        Stage::Control,
        deployer.clone().run(life.token(Stage::Control)),
    );
    let http = format!("http://{}", handle.http_addr);
    let grpc = format!("http://{}", handle.grpc_addr);

    println!(
        "ballast demo: serving the bundled models (fraud v1+v2 ONNX MLPs, fraud_xgb an XGBoost model on the native tree engine, dtypes, seqmean)"
    );
    println!(
        "  HTTP {http}   gRPC {}   metrics {http}/metrics\n",
        handle.grpc_addr
    );
    println!("Try it yourself (in another terminal):");
    println!("  curl {http}/v2/models/fraud");
    println!(
        "  curl -s {http}/v2/models/fraud/infer -d '{{\"inputs\":[{{\"name\":\"features\",\"shape\":[1,12],\"datatype\":\"FP32\",\"data\":[5.2,0.17,-0.98,0.37,0.37,0,4,5.1,1,0,2.8,0]}}]}}'"
    );
    println!(
        "  curl -s {http}/v2/models/fraud_xgb/infer -d '{{\"inputs\":[{{\"name\":\"features\",\"shape\":[1,12],\"datatype\":\"FP32\",\"data\":[5.2,0.17,-0.98,0.37,0.37,0,4,5.1,1,0,2.8,0]}}]}}'"
    );
    println!("  curl -s {http}/metrics | grep ballast_inference_requests_total\n");

    let rows = fraud_rows()?;
    let target = Target {
        http_url: http.clone(),
        grpc_url: grpc,
        model: "fraud".into(),
        version: None,
    };
    let phase = Duration::from_secs_f64(args.phase_secs.max(1.0));
    let http_payloads = ballast_loadgen::fp32_row_payloads("features", &rows, 1, true)?;
    let closed = |protocol| RunConfig {
        protocol,
        mode: Mode::Closed { concurrency: 16 },
        duration: phase,
        warmup: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        connections: 4,
    };

    println!("Phase 1: 16 clients over HTTP (binary tensors), one real transaction per request");
    let steady = generate(
        cores,
        &target,
        &closed(Protocol::Http),
        &http_payloads,
        tick_printer("http"),
    )
    .await?;
    steady.print_table();

    println!("\nPhase 2: 16 clients over gRPC");
    let over_grpc = generate(
        cores,
        &target,
        &closed(Protocol::Grpc),
        &http_payloads,
        tick_printer("grpc"),
    )
    .await?;
    over_grpc.print_table();

    println!(
        "\nPhase 2b: the same transactions through fraud_xgb (100 XGBoost trees, native engine, xgboost's own predictions), 16 clients over gRPC"
    );
    let trees = generate(
        cores,
        &Target {
            model: "fraud_xgb".into(),
            ..target.clone()
        },
        &closed(Protocol::Grpc),
        &http_payloads,
        tick_printer("trees"),
    )
    .await?;
    trees.print_table();

    // The spike uses 64-row scoring requests: one generator core cannot offer 3x the light
    // model's single-row capacity (it tops out near the server's own rate), but it can offer
    // 3x of this, so the phase measures overload control rather than the generator.
    const SPIKE_ROWS: usize = 64;
    let spike_payloads = ballast_loadgen::fp32_row_payloads("features", &rows, SPIKE_ROWS, true)?;
    println!(
        "\nPhase 3a: capacity for {SPIKE_ROWS}-row scoring requests (binary tensors, 16 clients over gRPC, closed loop)"
    );
    let batch_capacity = generate(
        cores,
        &target,
        &closed(Protocol::Grpc),
        &spike_payloads,
        tick_printer("capacity"),
    )
    .await?;
    batch_capacity.print_table();
    let capacity = batch_capacity.throughput_ok_per_s.max(10.0);
    let offered = capacity * 3.0;
    let placement = match cores {
        Some(c) => format!(
            "the server runs on core {} and this load generator on core {}, each pinned, so the generator's\n  \
             own work does not take the server's CPU (bench/overload.sh has the full sweep, with oha)",
            c.server.id, c.generator.id
        ),
        None => "the server and this load generator share every core (one core, or --shared-cores), so the\n  \
                 generator takes CPU from the server it measures: read the figures as a lower bound"
            .to_string(),
    };
    println!(
        "\nPhase 3b: a spike at 3x that capacity ({offered:.0} req/s of {SPIKE_ROWS} rows, open loop over gRPC, latency from the intended send time):\n  \
         the excess is refused early with RESOURCE_EXHAUSTED + retry pushback; {placement}"
    );
    // gRPC multiplexes the spike over a few connections, so the load generator — which shares
    // this machine — is not what saturates.
    let spike_config = RunConfig {
        mode: Mode::Open { rate: offered },
        ..closed(Protocol::Grpc)
    };
    let spike = generate(
        cores,
        &target,
        &spike_config,
        &spike_payloads,
        tick_printer("spike"),
    )
    .await?;
    spike.print_table();
    let sent_rate = spike.sent as f64 / spike.duration_s.max(1e-9);
    let offered_note = if sent_rate >= 0.9 * offered && spike.client_dropped == 0 {
        format!("the generator offered {sent_rate:.0} req/s of the {offered:.0} intended")
    } else {
        format!(
            "VOID as an overload figure: the generator offered only {sent_rate:.0} req/s of the {offered:.0} intended ({} requests it could not send in time)",
            spike.client_dropped
        )
    };
    println!(
        "\nDuring the spike ({offered_note}): goodput {:.0} req/s answered OK within {} ms of their intended send time = {:.0}% of the capacity measured in phase 3a; {} refused with RESOURCE_EXHAUSTED (p99 {:.2} ms); p99 of served requests {:.2} ms.",
        spike.goodput_per_s,
        ballast_loadgen::stats::GOODPUT_SLO.as_millis(),
        100.0 * spike.goodput_per_s / capacity,
        spike.rejected,
        spike.latency_rejected.p99_us / 1000.0,
        spike.latency_ok.p99_us / 1000.0
    );

    println!(
        "\nPhase 4: automated rollouts under 16 HTTP clients: shadow 100% → canary 25% → 100%, each step gated\n  \
         on the candidate's own errors, its engine calls' service time against the baseline's at equal batch sizes,\n  \
         and (shadow) how far its outputs are from production's on the same requests"
    );
    let plan = |gates: GateThresholds| RolloutPlan {
        steps: [
            (StepMode::Shadow, 100.0),
            (StepMode::Canary, 25.0),
            (StepMode::Canary, 100.0),
        ]
        .into_iter()
        .map(|(mode, percent)| RolloutStep {
            mode,
            percent,
            min_requests: 300,
            min_duration_secs: (phase.as_secs_f64() / 4.0).max(1.0),
        })
        .collect(),
        gates,
        sticky_header: None,
        step_timeout_secs: phase.as_secs_f64() * 4.0,
        on_inconclusive: Default::default(),
    };
    let rollout_load = closed(Protocol::Http);
    // One rollout under load, its events printed as they land; ends when it is decided.
    let roll_out = |candidate: u64, plan: RolloutPlan, load_for: Duration| {
        let (registry, deployer, target, payloads, load) = (
            registry.clone(),
            deployer.clone(),
            target.clone(),
            http_payloads.clone(),
            RunConfig {
                duration: load_for,
                ..rollout_load.clone()
            },
        );
        async move {
            let started = registry
                .start_rollout("fraud", candidate, &plan, "demo")
                .await?;
            deployer.notify();
            let watch = async {
                let mut after = None;
                // This rollout's events only: from its `rollout_started` on.
                let mut ours = false;
                loop {
                    let events = registry
                        .events(&EventFilter {
                            model: Some("fraud".into()),
                            after,
                            ..EventFilter::default()
                        })
                        .await?;
                    for e in &events {
                        ours |= e.kind == "rollout_started"
                            && e.details["rollout"].as_i64() == Some(started.id);
                        if ours && (e.kind.starts_with("rollout") || e.kind == "promoted") {
                            println!("  event {:<20} {}", e.kind, e.message);
                        }
                        after = Some(e.id);
                    }
                    let r = registry.store.get_rollout(started.id).await?;
                    match r {
                        Some(r) if r.state == RolloutState::Running => {}
                        other => return Ok::<_, anyhow::Error>(other),
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            };
            let (loaded, watched) = tokio::join!(
                generate(cores, &target, &load, &payloads, |_: &LiveStats| {}),
                watch
            );
            let report = loaded?;
            println!(
                "  client traffic meanwhile: {} requests answered, {} failed",
                report.ok,
                report.errors + report.rejected
            );
            watched
        }
    };

    println!("\n  4a. fraud v2 (an MLP) against production v1 (a logistic regression):");
    // v2 is a different network, not a retrain: its scores may differ from v1's this much.
    let good = plan(GateThresholds {
        max_mean_abs_diff: 0.5,
        ..GateThresholds::default()
    });
    let first = roll_out(2, good, phase * 3).await?;
    let promoted = first
        .as_ref()
        .is_some_and(|r| r.state == RolloutState::Promoted);
    println!(
        "  → {}",
        match &first {
            Some(r) if promoted => "promoted: fraud v2 serves production".to_string(),
            Some(r) => format!(
                "NOT promoted ({}): {}",
                r.state.as_str(),
                r.reason.as_deref().unwrap_or("")
            ),
            None => "the rollout disappeared".to_string(),
        }
    );

    println!(
        "\n  4b. a faulty candidate against production: v2 exported by a pipeline that reversed its feature\n      \
         columns (no load or schema check can see it: same inputs, same outputs), pushed as fraud v3, default gates:"
    );
    let faulty_dir = dir.path().join("faulty");
    std::fs::create_dir_all(&faulty_dir)?;
    std::fs::write(faulty_dir.join("model.onnx"), FAULTY_FRAUD)?;
    let pushed = registry
        .push(
            &faulty_dir,
            ballast_registry::PushRequest {
                name: "fraud".into(),
                card: demo_card(),
                actor: "demo".into(),
                config_toml: None,
                no_promote: false,
            },
        )
        .await?;
    let faulty = pushed.version.version;
    let second = roll_out(faulty, plan(GateThresholds::default()), phase).await?;
    println!(
        "  → {}",
        match &second {
            Some(r) if r.state == RolloutState::RolledBack => format!(
                "rolled back automatically by the gates (reason above); production stays on v{}",
                r.baseline
            ),
            Some(r) => format!(
                "NOT rolled back ({}): the gates missed a faulty candidate",
                r.state.as_str()
            ),
            None => "the rollout disappeared".to_string(),
        }
    );

    // Production has a previous version to return to only when 4a promoted v2 (v1 became
    // production as the model's first version, so it has no earlier one).
    if promoted {
        let (from, to) = registry
            .rollback("fraud", PRODUCTION, "demo", "demo: instant rollback")
            .await?;
        deployer.notify();
        println!(
            "  ballast model rollback fraud: production {from} → {to} (the previous version stays loaded, so this is a pointer swap)"
        );
    } else {
        println!(
            "  (no instant rollback: production never left v1, so it has no earlier version to return to)"
        );
    }
    println!(
        "  every decision above is in the event log: ballast events --model fraud (this demo's registry lives in a temp dir)"
    );

    drift_phase(
        cores,
        &target,
        &closed(Protocol::Http),
        &rows,
        &monitor,
        &alerts,
    )
    .await?;
    println!(
        "      see them: curl {http}/v2/alerts   ballast alerts --url {http}   curl {http}/v2/models/fraud/monitor\n      \
         (with [alerting] in the config, each goes to Alertmanager and to signed webhooks)"
    );

    crate::demo_logs::phase(&logs, dir.path()).await?;

    if args.no_serve {
        shutdown.cancel();
    } else {
        println!("\nStill serving at {http} — press Ctrl-C to stop.");
        crate::serve::shutdown_on_signal(shutdown.clone()).await;
    }
    let (served, _) = tokio::join!(
        serving,
        life.stop(Stage::Control, tokio::time::Instant::now() + DEMO_GRACE)
    );
    served.context("server task")??;
    let parts = crate::shutdown::Parts {
        life,
        repo: Some(repo),
        tap,
        logs: Some(logs),
    };
    let stopped = crate::shutdown::finish(parts, DEMO_GRACE).await;
    let joined: usize = stopped.iter().map(|s| s.threads_joined).sum();
    if stopped.iter().all(|s| s.is_clean()) {
        println!(
            "\nStopped in order ({}): {joined} threads joined, the prediction log flushed and closed.",
            stopped
                .iter()
                .map(|s| s.stage.name())
                .collect::<Vec<_>>()
                .join(" → ")
        );
    } else {
        let left = crate::shutdown::still_running(&stopped);
        println!(
            "\nStopped, but when the grace period ended these were still running: {}",
            left.join(", ")
        );
    }
    Ok(())
}
