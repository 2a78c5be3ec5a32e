//! `ballast`: parse the command line, load configuration, then serve, demo or bench.
//! Everything of substance lives in the library crates; this file only wires them.

mod bench;
mod cli;
mod config;
mod demo;
mod logging;
mod registry_cli;
mod serve;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
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
                demo::run(args).await.map_err(report)
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
                    .map_err(report)
            }
            Command::Diff(a) => {
                logging::init(config::LogFormat::Text, "warn");
                registry_cli::apply_file(&a.registry, a.args, false)
                    .await
                    .map_err(report)
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn report(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}
