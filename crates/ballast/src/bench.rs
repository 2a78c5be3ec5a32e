//! `ballast bench`: drives a running server with the load generator (open or closed loop,
//! HTTP or gRPC), or, with `--in-process`, times the engine directly — the baseline that
//! server overhead and serving efficiency are measured against — or, with `--engines`, several
//! engines on the same model side by side.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ballast_core::{DataType, EngineChoice, Tensor, TensorData};
use ballast_engine::Backend;
use ballast_loadgen::{Mode, Protocol, RunConfig, Target};
use serde::Serialize;

use crate::cli::BenchArgs;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ProtocolArg {
    Http,
    Grpc,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(repo) = &args.in_process {
        let sizes: Vec<usize> = args
            .batch_sizes
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .context("--batch-sizes must be a comma-separated list of integers")?;
        let engines: Option<Vec<EngineChoice>> = args
            .engines
            .as_deref()
            .map(|list| {
                list.split(',')
                    .map(|e| e.trim().parse::<EngineChoice>())
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|e| anyhow::anyhow!("--engines: {e}"))?;
        let (repo, model, secs) = (repo.clone(), args.model.clone(), args.duration);
        let library = args.onnxruntime_library.clone();
        let results = tokio::task::spawn_blocking(move || {
            in_process(
                &repo,
                &model,
                &sizes,
                secs,
                engines.as_deref(),
                library.as_deref(),
            )
        })
        .await??;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            println!(
                "{:>8} {:<24} {:>14} {:>12} {:>12} {:>10}",
                "batch", "engine:file", "rows/s", "calls/s", "p50 call µs", "vs ORT"
            );
            for r in &results {
                println!(
                    "{:>8} {:<24} {:>14.0} {:>12.0} {:>12.1} {:>10}",
                    r.batch,
                    format!("{}:{}", r.engine, r.file),
                    r.rows_per_s,
                    r.calls_per_s,
                    r.p50_call_us,
                    r.ratio_vs_onnxruntime
                        .map_or("-".to_string(), |x| format!("{x:.2}x"))
                );
            }
        }
        return Ok(());
    }
    let target = Target {
        http_url: args.http_url.clone(),
        grpc_url: args.grpc_url.clone(),
        model: args.model.clone(),
        version: args.model_version.clone(),
    };
    // Metadata over the protocol the run uses: a gRPC-only server needs no HTTP URL.
    let meta = match args.protocol {
        ProtocolArg::Http => ballast_loadgen::fetch_metadata(&target).await?,
        ProtocolArg::Grpc => ballast_loadgen::fetch_metadata_grpc(&target).await?,
    };
    let payloads = ballast_loadgen::random_payloads(&meta, args.rows, 64, !args.json_tensors, 7)?;
    let mode = match (args.rate, args.concurrency) {
        (Some(rate), _) => Mode::Open { rate },
        (None, c) => Mode::Closed {
            concurrency: c.unwrap_or(16),
        },
    };
    let config = RunConfig {
        protocol: match args.protocol {
            ProtocolArg::Http => Protocol::Http,
            ProtocolArg::Grpc => Protocol::Grpc,
        },
        mode,
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        request_timeout: Duration::from_secs_f64(args.timeout),
        connections: args.connections.max(1),
    };
    let report = if args.json {
        ballast_loadgen::run(&target, &config, &payloads, |_| {}).await?
    } else {
        let (bar, tick) = ballast_loadgen::progress_bar(config.duration + config.warmup);
        let report = ballast_loadgen::run(&target, &config, &payloads, tick).await?;
        bar.finish_and_clear();
        report
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    // A run in which nothing succeeded measured nothing: say so in the exit status too, so a
    // script does not take its table for a result.
    if report.sent > 0 && report.ok == 0 {
        anyhow::bail!(
            "every one of the {} requests failed ({} refused, {} unavailable, {} timed out, {} other errors)",
            report.sent,
            report.rejected,
            report.unavailable,
            report.timeouts,
            report.errors
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct EngineResult {
    pub model: String,
    pub engine: String,
    /// The model file the engine ran.
    pub file: String,
    pub batch: usize,
    pub rows_per_s: f64,
    pub calls_per_s: f64,
    pub p50_call_us: f64,
    /// rows/s ÷ ONNX Runtime's rows/s at the same batch size, when ONNX Runtime ran too.
    pub ratio_vs_onnxruntime: Option<f64>,
}

/// Rounds per batch size: engines alternate round by round, so drift in machine load (a
/// shared, noisy machine) hits them alike.
const ROUNDS: usize = 5;

/// Times `model`'s highest version in-process, one call at a time, for each batch size: with
/// `engines`, every (engine, model file) pair that loads; else the engine `serve` would pick.
/// Progress goes to stderr when it is a terminal.
pub fn in_process(
    repo: &Path,
    model: &str,
    batch_sizes: &[usize],
    secs: f64,
    engines: Option<&[EngineChoice]>,
    onnxruntime_library: Option<&Path>,
) -> anyhow::Result<Vec<EngineResult>> {
    let model_dir = repo.join(model);
    let version = std::fs::read_dir(&model_dir)
        .with_context(|| format!("reading {}", model_dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .with_context(|| format!("{} has no version directories", model_dir.display()))?;
    let version_dir = model_dir.join(version.to_string());
    let options = ballast_engine::OpenOptions {
        onnxruntime_library: onnxruntime_library.map(Path::to_path_buf),
        ..ballast_engine::OpenOptions::default()
    };
    let bar = ballast_loadgen::steps_bar(0);
    bar.set_message(format!("loading {}", version_dir.display()));
    let mut candidates: Vec<(String, Arc<dyn Backend>)> = Vec::new();
    match engines {
        None => {
            let backend = ballast_engine::open_with(&version_dir, &options)?;
            let file = ballast_engine::MODEL_FILES
                .iter()
                .find(|f| version_dir.join(f).is_file())
                .map_or("?", |f| *f);
            candidates.push((file.to_string(), backend));
        }
        Some(list) => {
            for file in ballast_engine::MODEL_FILES {
                let path = version_dir.join(file);
                if !path.is_file() {
                    continue;
                }
                for &engine in list {
                    match ballast_engine::open_file(&path, engine, &options) {
                        Ok(b) => candidates.push((file.to_string(), b)),
                        Err(e) => bar.suspend(|| {
                            eprintln!("skipping {}:{file}: {e}", engine.as_str());
                        }),
                    }
                }
            }
        }
    }
    anyhow::ensure!(
        !candidates.is_empty(),
        "no engine could load {}",
        version_dir.display()
    );
    bar.set_length((batch_sizes.len() * ROUNDS * candidates.len()) as u64);
    let mut results = Vec::new();
    for &batch in batch_sizes {
        let inputs: Vec<Vec<Tensor>> = candidates
            .iter()
            .map(|(_, b)| random_inputs(b.signature(), batch))
            .collect();
        let mut calls: Vec<Vec<Duration>> = vec![Vec::new(); candidates.len()];
        for ((_, backend), input) in candidates.iter().zip(&inputs) {
            for _ in 0..3 {
                backend.infer(input.clone())?;
            }
        }
        for round in 1..=ROUNDS {
            for (((file, backend), input), times) in candidates.iter().zip(&inputs).zip(&mut calls)
            {
                bar.set_message(format!(
                    "batch {batch}, round {round}/{ROUNDS}: {}:{file}",
                    backend.engine()
                ));
                let start = Instant::now();
                while start.elapsed().as_secs_f64() < secs / ROUNDS as f64 || times.is_empty() {
                    let batch_inputs = input.clone();
                    let t = Instant::now();
                    backend.infer(batch_inputs)?;
                    times.push(t.elapsed());
                }
                bar.inc(1);
            }
        }
        let first = results.len();
        for ((file, backend), mut times) in candidates.iter().zip(calls) {
            let total: Duration = times.iter().sum();
            times.sort();
            let n = times.len() as f64;
            results.push(EngineResult {
                model: model.to_string(),
                engine: backend.engine().to_string(),
                file: file.clone(),
                batch,
                rows_per_s: n * batch as f64 / total.as_secs_f64(),
                calls_per_s: n / total.as_secs_f64(),
                p50_call_us: times[times.len() / 2].as_secs_f64() * 1e6,
                ratio_vs_onnxruntime: None,
            });
        }
        let ort = results[first..]
            .iter()
            .find(|r| r.engine == "onnxruntime")
            .map(|r| r.rows_per_s);
        if let Some(ort) = ort
            && engines.is_some()
        {
            for r in &mut results[first..] {
                r.ratio_vs_onnxruntime = Some(r.rows_per_s / ort);
            }
        }
    }
    bar.finish_and_clear();
    Ok(results)
}

fn random_inputs(sig: &ballast_core::ModelSignature, batch: usize) -> Vec<Tensor> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    sig.inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d >= 0 {
                        d as usize
                    } else if i == 0 {
                        batch
                    } else {
                        8
                    }
                })
                .collect();
            let n: usize = shape.iter().product();
            let data = match spec.dtype {
                DataType::F32 => TensorData::F32((0..n).map(|_| next() as f32).collect()),
                DataType::F64 => TensorData::F64((0..n).map(|_| next()).collect()),
                DataType::F16 => TensorData::F16(
                    (0..n)
                        .map(|_| ballast_core::tensor::f16::from_f64(next()))
                        .collect(),
                ),
                DataType::U8 => {
                    TensorData::U8((0..n).map(|_| (next().abs() * 100.0) as u8).collect())
                }
                DataType::I32 => TensorData::I32((0..n).map(|_| (next() * 100.0) as i32).collect()),
                DataType::I64 => TensorData::I64((0..n).map(|_| (next() * 100.0) as i64).collect()),
                DataType::Bool => TensorData::Bool((0..n).map(|_| next() > 0.0).collect()),
                DataType::Bytes => TensorData::Bytes((0..n).map(|_| b"x".to_vec()).collect()),
            };
            Tensor {
                name: spec.name.clone(),
                shape,
                data,
            }
        })
        .collect()
}
