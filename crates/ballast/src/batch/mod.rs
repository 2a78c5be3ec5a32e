//! `ballast batch`: score Parquet and CSV files with a registered model version, resumably.
//! The model is opened as the deployer opens it for serving (`ballast_deploy::open_version`,
//! the served signature, the same NaN/Inf rule); each input part (Parquet row group, CSV
//! chunk) becomes one Parquet part file in the output directory, checkpointed as it lands.
//!
//! A pipeline of threads joined by bounded channels: two readers decode parts and build the
//! engine's input tensors, this thread runs the engine (one call at a time, `--batch-size` rows
//! each), two writers build parts' columns, write them crash-safely and record them. Parts
//! may finish out of order; each is its own file, so order does not matter. Reading and writing overlap the engine, so on a
//! spare core the run goes at the engine's own pace.

mod checkpoint;
mod columns;
mod input;
mod output;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ballast_core::validate::{RequestLimits, validate_inputs};
use ballast_core::{ModelSignature, Tensor};
use ballast_engine::Backend;
use ballast_registry::{Registry, RegistryError, RegistryOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::BatchArgs;
use checkpoint::{Checkpoint, Identity, InputId, part_name};
use columns::Mapping;
use input::InputFile;
use output::Layout;

/// A mistake in the command line or its inputs (exit 64): bad flags, no files, a missing
/// column, an output directory of another run.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Parts decoded ahead of the engine, and scored parts waiting for the writers (beyond those
/// the readers and writers hold): at most 7 parts in memory.
const PIPELINE_DEPTH: usize = 1;

/// Reader threads: decoding and building tensors is the costliest stage for light models.
const READERS: usize = 2;

/// Writer threads: a part's fsyncs (file, then directory: ~15 ms on this machine's disk) wait
/// off the CPU, so a second writer encodes the next part meanwhile.
const WRITERS: usize = 2;

/// Seconds of work of each pipeline stage.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Busy {
    /// Reading parts and building the engine's input tensors.
    pub read: f64,
    /// Engine calls.
    pub engine: f64,
    /// Building the output columns, writing and fsyncing parts, the checkpoint.
    pub write: f64,
}

/// The model as the server would run it.
struct Model {
    name: String,
    version: u64,
    digest: String,
    backend: Arc<dyn Backend>,
    signature: ModelSignature,
    limits: RequestLimits,
    /// Rows per engine call.
    batch_rows: usize,
}

/// What a run did, printed as one line or as JSON (`--json`).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub model: String,
    pub version: u64,
    /// The engine that ran it (`tract`, `onnxruntime`, `trees`, `onnx-ml`).
    pub engine: &'static str,
    /// Rows per engine call.
    pub batch_rows: usize,
    pub output: PathBuf,
    pub files: usize,
    pub parts: usize,
    /// Parts scored by this run; the rest were done by an earlier one.
    pub parts_scored: usize,
    pub parts_skipped: usize,
    /// Rows in the output directory.
    pub rows: u64,
    /// Rows scored by this run.
    pub rows_scored: u64,
    /// Seconds from the first part read to the last part written.
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Seconds of the whole command (registry, model load, input scan, scoring).
    pub total_seconds: f64,
    /// Seconds each pipeline stage worked (the rest it waited for its neighbours): the one
    /// near `seconds` is the bottleneck.
    pub busy_seconds: Busy,
    /// With `--compare-engine`: the engine alone over the same input tensors, rows/s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_rows_per_s: Option<f64>,
    /// `rows_per_s / engine_rows_per_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

pub async fn run(args: BatchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.batch_size == 0 {
        return Err(Usage("--batch-size must be at least 1".into()).into());
    }
    if args.csv_chunk_rows == 0 {
        return Err(Usage("--csv-chunk-rows must be at least 1".into()).into());
    }
    let files = input::expand(&args.input)?;
    let model = open_model(&args).await?;
    let json = args.json;
    let mut summary = tokio::task::spawn_blocking(move || score(&args, &model, files))
        .await
        .context("the scoring thread failed")??;
    summary.total_seconds = started.elapsed().as_secs_f64();
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary.line());
    }
    Ok(())
}

impl Summary {
    fn line(&self) -> String {
        let mut s = format!(
            "{} rows, {} files, {} parts ({} scored, {} already done) with {}@{} in {:.2} s: {:.0} rows/s -> {}",
            self.rows_scored,
            self.files,
            self.parts,
            self.parts_scored,
            self.parts_skipped,
            self.model,
            self.version,
            self.seconds,
            self.rows_per_s,
            self.output.display()
        );
        if let (Some(e), Some(r)) = (self.engine_rows_per_s, self.ratio) {
            s.push_str(&format!(" (engine alone {e:.0} rows/s, ratio {r:.3})"));
        }
        s
    }
}

/// Resolves NAME[@VERSION|@ALIAS] in the registry and opens it as the deployer would.
async fn open_model(args: &BatchArgs) -> anyhow::Result<Model> {
    let mut options = RegistryOptions::new(&args.data_dir);
    options.artifacts = args.artifacts.clone();
    let registry = Registry::open(options)
        .await
        .with_context(|| format!("cannot open the registry in {}", args.data_dir.display()))?;
    let usage = |e: RegistryError| -> anyhow::Error {
        match e {
            RegistryError::NotFound(m) | RegistryError::Invalid(m) => {
                Usage(format!("--model {}: {m}", args.model)).into()
            }
            e => anyhow::Error::new(e).context(format!("--model {}", args.model)),
        }
    };
    let record = registry.resolve(&args.model).await.map_err(usage)?;
    let config_toml = registry
        .describe(&record.model)
        .await
        .map_err(usage)?
        .config_toml;
    let loader: Arc<dyn ballast_deploy::Loader> = Arc::new(ballast_deploy::EngineLoader {
        onnxruntime_library: args.onnxruntime_library.clone(),
    });
    let opened = ballast_deploy::open_version(&registry, &loader, &record, config_toml.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{}@{} does not load: {e}", record.model, record.version))?;
    let (signature, _) =
        ballast_serve::model::served_signature(opened.backend.as_ref(), &opened.config)
            .map_err(|e| anyhow::anyhow!("{}@{}: {}", record.model, record.version, e.message))?;
    let limits = RequestLimits::for_model(&opened.config, opened.backend.nan_is_missing());
    let batch_rows = if !signature.supports_batching() {
        1
    } else if opened.config.max_batch_size > 0 {
        args.batch_size.min(opened.config.max_request_rows.max(1))
    } else {
        args.batch_size
    };
    Ok(Model {
        name: record.model,
        version: record.version,
        digest: record.digest,
        backend: opened.backend,
        signature,
        limits,
        batch_rows,
    })
}

/// One part on its way through the pipeline.
struct Job {
    file: usize,
    part: usize,
    /// Engine calls' inputs, then (after the engine) their outputs.
    calls: Vec<Vec<Tensor>>,
}

/// Reads a part and cuts it into the engine's calls, checked as a served request is.
fn load(
    file: &InputFile,
    part: &input::Part,
    mapping: &Mapping,
    model: &Model,
) -> anyhow::Result<Vec<Vec<Tensor>>> {
    let batches = file.read(part, &mapping.columns())?;
    let mut calls = Vec::with_capacity(part.rows.div_ceil(model.batch_rows));
    let mut row = part.first_row;
    for batch in &batches {
        let mut start = 0;
        while start < batch.num_rows() {
            let end = (start + model.batch_rows).min(batch.num_rows());
            let at = || {
                format!(
                    "{}: rows {}..{}",
                    file.name,
                    row,
                    row + (end - start) as u64
                )
            };
            let inputs = columns::tensors(batch, mapping, start..end)
                .map_err(|e| anyhow::anyhow!("{}: {e}", at()))?;
            let inputs = validate_inputs(&model.name, &model.signature, inputs, model.limits)
                .map_err(|e| anyhow::anyhow!("{}: {}", at(), e.message))?;
            calls.push(inputs);
            row += (end - start) as u64;
            start = end;
        }
    }
    anyhow::ensure!(
        row - part.first_row == part.rows as u64,
        "{}: part {} read {} rows, expected {} (was the file changed?)",
        file.name,
        part.index,
        row - part.first_row,
        part.rows
    );
    Ok(calls)
}

fn progress_bar(args: &BatchArgs, rows: u64) -> ProgressBar {
    let target = if args.quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(rows), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn score(
    args: &BatchArgs,
    model: &Model,
    files: Vec<(String, PathBuf, input::Format)>,
) -> anyhow::Result<Summary> {
    let files = files
        .into_iter()
        .map(|(name, path, format)| input::scan(name, path, format, args.csv_chunk_rows))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mappings = files
        .iter()
        .map(|f| {
            columns::map(&model.signature, &f.schema, &args.columns)
                .map_err(|e| Usage(format!("{}: {e}", f.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let layout = Layout::new(&model.signature).map_err(Usage)?;
    let identity = Identity {
        model: model.name.clone(),
        version: model.version,
        digest: model.digest.clone(),
        columns: args.columns.clone(),
        csv_chunk_rows: args.csv_chunk_rows,
        inputs: files
            .iter()
            .map(|f| InputId {
                path: f.name.clone(),
                format: f.format,
                size: f.size,
                mtime_ns: f.mtime_ns,
            })
            .collect(),
    };
    let all: Vec<(usize, usize)> = files
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| (0..f.parts.len()).map(move |pi| (fi, pi)))
        .collect();
    let named: Vec<(String, u64)> = all
        .iter()
        .map(|&(fi, pi)| {
            let p = &files[fi].parts[pi];
            (part_name(fi, p.index), p.rows as u64)
        })
        .collect();
    let (checkpoint, done) = Checkpoint::open(&args.output, identity, &named)?;
    let todo: Vec<(usize, usize)> = all
        .iter()
        .zip(&done)
        .filter(|(_, d)| !**d)
        .map(|(p, _)| *p)
        .collect();
    let rows_total: u64 = named.iter().map(|(_, r)| r).sum();
    let rows_todo: u64 = todo
        .iter()
        .map(|&(fi, pi)| files[fi].parts[pi].rows as u64)
        .sum();

    let direct = |files: &[InputFile]| -> anyhow::Result<Option<f64>> {
        if !args.compare_engine {
            return Ok(None);
        }
        engine_alone(model, files, &mappings, &todo).map(Some)
    };
    let before = direct(&files)?;

    let bar = progress_bar(args, rows_todo);
    let scoring = Instant::now();
    let (mut checkpoint, rows_scored, busy) =
        pipeline(model, &files, &mappings, &layout, &todo, checkpoint, &bar)?;
    checkpoint.flush()?;
    let seconds = scoring.elapsed().as_secs_f64();
    bar.finish_and_clear();
    anyhow::ensure!(
        checkpoint.complete(),
        "the run ended with parts not done (see {})",
        args.output.join(checkpoint::FILE).display()
    );
    let after = direct(&files)?;
    let rows_per_s = if seconds > 0.0 {
        rows_scored as f64 / seconds
    } else {
        0.0
    };
    let engine_rows_per_s = before.zip(after).map(|(a, b)| (a + b) / 2.0);
    Ok(Summary {
        model: model.name.clone(),
        version: model.version,
        engine: model.backend.engine(),
        batch_rows: model.batch_rows,
        output: args.output.clone(),
        files: files.len(),
        parts: all.len(),
        parts_scored: todo.len(),
        parts_skipped: all.len() - todo.len(),
        rows: rows_total,
        rows_scored,
        seconds,
        rows_per_s,
        total_seconds: 0.0,
        busy_seconds: busy,
        engine_rows_per_s,
        ratio: engine_rows_per_s
            .filter(|e| *e > 0.0)
            .map(|e| rows_per_s / e),
    })
}

/// Reader → engine (this thread) → writer. Returns the checkpoint and the rows written.
fn pipeline(
    model: &Model,
    files: &[InputFile],
    mappings: &[Mapping],
    layout: &Layout,
    todo: &[(usize, usize)],
    checkpoint: Checkpoint,
    bar: &ProgressBar,
) -> anyhow::Result<(Checkpoint, u64, Busy)> {
    let (to_engine, from_reader): (SyncSender<Job>, Receiver<Job>) = sync_channel(PIPELINE_DEPTH);
    let (to_writer, from_engine): (SyncSender<Job>, Receiver<Job>) = sync_channel(PIPELINE_DEPTH);
    let dir = checkpoint.dir().to_path_buf();
    let shared = Mutex::new(checkpoint);
    let from_engine = Mutex::new(from_engine);
    let next = AtomicUsize::new(0);
    let (rows, busy) = std::thread::scope(|s| -> anyhow::Result<(u64, Busy)> {
        let next = &next;
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let to_engine = to_engine.clone();
                s.spawn(move || -> anyhow::Result<f64> {
                    let mut busy = 0.0;
                    while let Some(&(fi, pi)) = todo.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let t = Instant::now();
                        let calls = load(&files[fi], &files[fi].parts[pi], &mappings[fi], model)?;
                        busy += t.elapsed().as_secs_f64();
                        let job = Job {
                            file: fi,
                            part: pi,
                            calls,
                        };
                        if to_engine.send(job).is_err() {
                            break; // the engine or a writer stopped; its error is reported
                        }
                    }
                    Ok(busy)
                })
            })
            .collect();
        drop(to_engine);
        let (from_engine, shared, dir) = (&from_engine, &shared, &dir);
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(move || -> anyhow::Result<(u64, f64)> {
                    let mut rows = 0u64;
                    let mut busy = 0.0;
                    loop {
                        let next = match from_engine.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => anyhow::bail!("another writer thread panicked"),
                        };
                        let Ok(job) = next else { break };
                        let t = Instant::now();
                        let file = &files[job.file];
                        let part = &file.parts[job.part];
                        let batch = layout
                            .batch(&file.name, part.first_row, part.rows, &job.calls)
                            .with_context(|| format!("{}: part {}", file.name, part.index))?;
                        let name = part_name(job.file, part.index);
                        output::write_part(dir, &name, &batch)?;
                        match shared.lock() {
                            Ok(mut c) => c.done(&name, part.rows as u64)?,
                            Err(_) => anyhow::bail!("another writer thread panicked"),
                        }
                        rows += part.rows as u64;
                        bar.inc(part.rows as u64);
                        busy += t.elapsed().as_secs_f64();
                    }
                    Ok((rows, busy))
                })
            })
            .collect();
        let engine = (|| -> anyhow::Result<f64> {
            let mut busy = 0.0;
            for mut job in from_reader {
                let t = Instant::now();
                let inputs = std::mem::take(&mut job.calls);
                let mut outputs = Vec::with_capacity(inputs.len());
                for call in inputs {
                    outputs.push(model.backend.infer(call).map_err(|e| {
                        anyhow::anyhow!(
                            "{}: part {}: the engine failed: {e}",
                            files[job.file].name,
                            files[job.file].parts[job.part].index
                        )
                    })?);
                }
                job.calls = outputs;
                busy += t.elapsed().as_secs_f64();
                if to_writer.send(job).is_err() {
                    break;
                }
            }
            Ok(busy)
        })();
        drop(to_writer);
        let mut read_results = Vec::with_capacity(READERS);
        for r in readers {
            read_results.push(
                r.join()
                    .map_err(|_| anyhow::anyhow!("a reader thread panicked"))?,
            );
        }
        let mut written = Vec::with_capacity(WRITERS);
        for w in writers {
            written.push(
                w.join()
                    .map_err(|_| anyhow::anyhow!("a writer thread panicked"))?,
            );
        }
        let mut read = 0.0;
        for r in read_results {
            read += r?;
        }
        let engine = engine?;
        let (mut rows, mut write) = (0, 0.0);
        for w in written {
            let (r, b) = w?;
            rows += r;
            write += b;
        }
        Ok((
            rows,
            Busy {
                read,
                engine,
                write,
            },
        ))
    })?;
    let checkpoint = shared
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a writer thread panicked"))?;
    Ok((checkpoint, rows, busy))
}

/// The engine alone over the same parts: every part's input tensors built first (not timed),
/// then one timed pass of engine calls of the same size. Rows per second.
fn engine_alone(
    model: &Model,
    files: &[InputFile],
    mappings: &[Mapping],
    todo: &[(usize, usize)],
) -> anyhow::Result<f64> {
    let mut calls = Vec::new();
    let mut rows = 0u64;
    for &(fi, pi) in todo {
        rows += files[fi].parts[pi].rows as u64;
        calls.extend(load(
            &files[fi],
            &files[fi].parts[pi],
            &mappings[fi],
            model,
        )?);
    }
    let started = Instant::now();
    for call in calls {
        let out = model
            .backend
            .infer(call)
            .map_err(|e| anyhow::anyhow!("the engine failed: {e}"))?;
        std::hint::black_box(out);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    })
}
