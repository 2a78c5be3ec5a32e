//! `ballast`: parse the command line, load configuration, then serve, demo or bench.
//! Everything of substance lives in the library crates; this file only wires them.

mod batch;
mod bench;
mod cli;
mod config;
mod demo;
mod demo_logs;
mod drift_cli;
mod logging;
mod logs_cli;
#[cfg(test)]
mod readme_check;
mod registry_cli;
mod serve;
mod shutdown;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// mimalloc rather than glibc's malloc: faster on the request path (malloc and free were ~17% of
/// the server core under overload) and it returns freed memory to the OS after a burst, where
/// glibc's per-thread arenas kept it (see docs/benchmarks.md, memory).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for unusable configuration (sysexits.h EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

/// `ballast diff`: the registry differs from the declaration.
const EXIT_CHANGES_PENDING: u8 = 2;

/// Transparent huge pages off for this process (unless `BALLAST_TRANSPARENT_HUGE_PAGES=on`): a
/// burst's freed memory sits in 2 MiB pages that cannot be returned while any 4 KiB of them is
/// live, so RSS stayed ~50% above its steady level after bursts (docs/benchmarks.md, memory).
/// ONNX Runtime on the benchmark MLPs measured the same either way (in-process, 1–64 rows).
/// Best effort: a kernel without the call keeps its default. It runs before anything reads
/// the configuration, so it is an environment variable, not a setting.
#[allow(unsafe_code)]
fn disable_transparent_huge_pages() {
    if std::env::var_os("BALLAST_TRANSPARENT_HUGE_PAGES").is_some_and(|v| v == "on") {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments and touches no memory
    // of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Commands that print for a pipe (`ballast rollout status | head -1`) end quietly when the
/// reader goes away, as Unix tools do: SIGPIPE's default action instead of Rust's "ignore",
/// under which `println!` panics on the broken pipe. Not for `serve`, `demo` and `bench`, whose
/// sockets must see EPIPE as an error rather than kill the process.
#[allow(unsafe_code)]
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: installs the default disposition for SIGPIPE; no handler code of ours runs, and it
    // happens before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `ballast profile`: the reference profile of a CSV file, as JSON.
fn profile(a: cli::ProfileArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let ext = a.data.extension().and_then(|e| e.to_str()).unwrap_or("");
    anyhow::ensure!(
        !ext.eq_ignore_ascii_case("parquet"),
        "{}: Parquet reference data is not read yet; export it as CSV with a header row",
        a.data.display()
    );
    let options = ballast_monitor::ProfileOptions {
        bins: a.bins,
        max_categories: a.max_categories,
        categorical: a.categorical,
    };
    let profile = ballast_monitor::profile_csv(&a.data, &options)?;
    let json = serde_json::to_string_pretty(&profile)?;
    match a.out {
        Some(path) => std::fs::write(&path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Serve(_) | Command::Demo(_) | Command::Bench(_)
    ) {
        default_sigpipe();
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // The demo measures the server with a generator in the same process: the server (this
    // runtime, and the engine threads it starts, which inherit the affinity) keeps one core,
    // the generator another (see `demo::Cores`).
    let cores = match &cli.command {
        Command::Demo(args) => demo::Cores::pick(args.shared_cores),
        _ => None,
    };
    if let Some(cores) = cores {
        core_affinity::set_for_current(cores.server);
        builder.worker_threads(1).on_thread_start(move || {
            core_affinity::set_for_current(cores.server);
        });
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let settings = match config::ServeSettings::resolve(&args) {
                    Ok(s) => s,
                    Err(problems) => {
                        eprintln!("error: invalid configuration:\n{problems}");
                        return Err(ExitCode::from(EXIT_BAD_CONFIG));
                    }
                };
                logging::init(settings.log_format, &settings.log_level);
                serve::run(settings).await.map_err(report)
            }
            Command::Demo(args) => {
                logging::init(args.log_format, "warn");
                demo::run(args, cores).await.map_err(report)
            }
            Command::Bench(args) => {
                logging::init(config::LogFormat::Text, "warn");
                bench::run(args).await.map_err(report)
            }
            Command::Model(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::model(&a.registry, a.command)
                    .await
                    .map_err(report)
            }
            Command::Rollout(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::rollout(&a.registry, a.command)
                    .await
                    .map_err(report)
            }
            Command::Policy(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::policy(&a.registry, a.command)
                    .await
                    .map_err(report)
            }
            Command::Events(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::events(&a.registry, a.args)
                    .await
                    .map_err(report)
            }
            Command::Apply(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::apply_file(&a.registry, a.args, true)
                    .await
                    .map(|_| ())
                    .map_err(report)
            }
            Command::Profile(a) => profile(a).map_err(report),
            Command::Alerts(a) => alerts(a).await.map_err(report),
            Command::Logs(a) => logs_cli::run(a).await.map_err(report),
            Command::Batch(a) => {
                logging::init(config::LogFormat::Text, "warn");
                batch::run(a).await.map_err(report)
            }
            Command::Drift(a) => drift_cli::run(a).map_err(|e| match e {
                drift_cli::DriftError::Input(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
                drift_cli::DriftError::Other(e) => report(e),
            }),
            // Exit 2 when changes are pending (as `terraform plan -detailed-exitcode`), so CI can
            // gate on drift; 1 stays for errors.
            Command::Diff(a) => {
                logging::init(config::LogFormat::Text, "warn");
                match registry_cli::apply_file(&a.registry, a.args, false).await {
                    Ok(true) => Err(ExitCode::from(EXIT_CHANGES_PENDING)),
                    Ok(false) => Ok(()),
                    Err(e) => Err(report(e)),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// `ballast alerts`: `GET /v2/alerts` of a running server, as a table or its JSON.
async fn alerts(a: cli::AlertsArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let url = format!("{}/v2/alerts", a.url.trim_end_matches('/'));
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
    if a.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    if alerts.is_empty() {
        let rules = body["rules"].as_array().map_or(0, Vec::len);
        println!("no alerts ({rules} rules)");
        return Ok(());
    }
    println!(
        "{:<9} {:<9} {:<20} {:<18} {:<24} since",
        "STATE", "SEVERITY", "RULE", "MODEL@VERSION", "FEATURE"
    );
    for al in alerts {
        let s = |k: &str| al[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<9} {:<9} {:<20} {:<18} {:<24} {}  {}",
            s("state"),
            s("severity"),
            s("rule"),
            format!("{}@{}", s("model"), s("version")),
            s("feature"),
            s("active_since"),
            s("summary"),
        );
    }
    Ok(())
}

/// Prints the error; a usage error (`batch::Usage`: bad arguments or inputs) exits 64.
fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    if e.downcast_ref::<batch::Usage>().is_some() {
        ExitCode::from(EXIT_BAD_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}
