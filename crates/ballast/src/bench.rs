//! `ballast bench`: drives a running server with the load generator (open or closed loop,
//! HTTP or gRPC), or, with `--in-process`, times the engine directly — the baseline that
//! server overhead and serving efficiency are measured against.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use ballast_core::{DataType, Tensor, TensorData};
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
        let (repo, model, secs) = (repo.clone(), args.model.clone(), args.duration);
        let results =
            tokio::task::spawn_blocking(move || in_process(&repo, &model, &sizes, secs)).await??;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
        } else {
            println!(
                "{:>8} {:>14} {:>14} {:>12}",
                "batch", "rows/s", "calls/s", "p50 call µs"
            );
            for r in &results {
                println!(
                    "{:>8} {:>14.0} {:>14.0} {:>12.1}",
                    r.batch, r.rows_per_s, r.calls_per_s, r.p50_call_us
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
    let meta = ballast_loadgen::fetch_metadata(&target).await?;
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
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct EngineResult {
    pub model: String,
    pub engine: String,
    pub batch: usize,
    pub rows_per_s: f64,
    pub calls_per_s: f64,
    pub p50_call_us: f64,
}

/// Times `model`'s highest version in-process, single thread, for each batch size.
pub fn in_process(
    repo: &Path,
    model: &str,
    batch_sizes: &[usize],
    secs: f64,
) -> anyhow::Result<Vec<EngineResult>> {
    let model_dir = repo.join(model);
    let version = std::fs::read_dir(&model_dir)
        .with_context(|| format!("reading {}", model_dir.display()))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .with_context(|| format!("{} has no version directories", model_dir.display()))?;
    let backend = ballast_engine::open(&model_dir.join(version.to_string()))?;
    let mut results = Vec::new();
    for &batch in batch_sizes {
        let inputs = random_inputs(backend.signature(), batch);
        // Warm up, then time calls for `secs`.
        for _ in 0..3 {
            backend.infer(inputs.clone())?;
        }
        let mut calls = Vec::new();
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < secs {
            let batch_inputs = inputs.clone();
            let t = Instant::now();
            backend.infer(batch_inputs)?;
            calls.push(t.elapsed());
        }
        let total: Duration = calls.iter().sum();
        calls.sort();
        let n = calls.len() as f64;
        results.push(EngineResult {
            model: model.to_string(),
            engine: backend.engine().to_string(),
            batch,
            rows_per_s: n * batch as f64 / total.as_secs_f64(),
            calls_per_s: n / total.as_secs_f64(),
            p50_call_us: calls[calls.len() / 2].as_secs_f64() * 1e6,
        });
    }
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
