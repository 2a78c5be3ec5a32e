//! `ballast batch` as an operator runs it: the example fraud model pushed into a scratch
//! registry, real Parquet and CSV files, the built binary. Outputs are checked row by row
//! against the engine called directly; a run killed with SIGKILL again and again and resumed
//! must end with exactly the rows of an uninterrupted run.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, UInt64Type};
use arrow_array::{ArrayRef, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use ballast_core::{ModelConfig, Tensor, TensorData};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use rand::{Rng, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_ballast");

/// Largest difference allowed between a scored probability and the engine's own (the same
/// engine on the same FP32 inputs: CSV text parsed via FP64 may differ in the last bit).
const TOLERANCE: f32 = 1e-5;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn features() -> Vec<String> {
    std::fs::read_to_string(examples().join("data/fraud_feature_names.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A scratch directory with a registry holding fraud@1 (production) and fraud@2.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s = Self { dir };
        for v in ["1", "2"] {
            let out = Command::new(BIN)
                .args(["model", "push"])
                .arg(examples().join("models/fraud").join(v))
                .args([
                    "--name",
                    "fraud",
                    "--allow-missing-card",
                    "--actor",
                    "tests",
                ])
                .arg("--data-dir")
                .arg(s.data())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        s
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn batch(&self, model: &str, inputs: &[&Path], output: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(["batch", "--model", model, "--quiet"]);
        for i in inputs {
            cmd.arg("--input").arg(i);
        }
        cmd.arg("--output")
            .arg(output)
            .arg("--data-dir")
            .arg(self.data())
            .args(extra)
            .env_remove("BALLAST_DATA_DIR");
        cmd
    }
}

/// Rows of plausible fraud features (and a label and an id column, which are not features).
fn rows(n: usize, seed: u64) -> Vec<[f32; 12]> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut r = [0f32; 12];
            for (j, x) in r.iter_mut().enumerate() {
                *x = match j {
                    8 | 9 => f32::from(rng.random_bool(0.3)),
                    11 => rng.random_range(0..3) as f32,
                    _ => rng.random_range(-2.0f32..6.0),
                };
            }
            r
        })
        .collect()
}

fn write_parquet(path: &Path, data: &[[f32; 12]], row_group: usize) {
    let names = features();
    let mut fields = vec![Field::new("id", DataType::Utf8, false)];
    fields.extend(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Float32, false)),
    );
    fields.push(Field::new("label", DataType::Int64, false));
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        (0..data.len()).map(|i| format!("tx-{i}")),
    ))];
    for j in 0..12 {
        columns.push(Arc::new(Float32Array::from_iter_values(
            data.iter().map(|r| r[j]),
        )));
    }
    columns.push(Arc::new(Int64Array::from_iter_values(
        (0..data.len()).map(|i| (i % 2) as i64),
    )));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn write_csv(path: &Path, data: &[[f32; 12]]) {
    let mut text = features().join(",") + ",label\n";
    for (i, r) in data.iter().enumerate() {
        let cells: Vec<String> = r.iter().map(|x| format!("{x}")).collect();
        text += &format!("{},{}\n", cells.join(","), i % 2);
    }
    std::fs::write(path, text).unwrap();
}

/// The engine's probabilities for `data`, called directly (no registry, no batch command).
fn direct(data: &[[f32; 12]]) -> Vec<f32> {
    let loader = ballast_deploy::EngineLoader {
        onnxruntime_library: None,
    };
    let backend = ballast_engine::open_with(
        &examples().join("models/fraud/1"),
        &loader.options(&ModelConfig::default()),
    )
    .unwrap();
    let mut out = Vec::with_capacity(data.len());
    for chunk in data.chunks(256) {
        let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
        let t = Tensor::new("features", vec![chunk.len(), 12], TensorData::F32(flat)).unwrap();
        let res = backend.infer(vec![t]).unwrap();
        let TensorData::F32(p) = &res[0].data else {
            panic!("probability is not FP32")
        };
        out.extend(p);
    }
    out
}

/// Every scored row of an output directory: (input_file, row) → (probability, is_fraud),
/// failing on a row seen twice.
fn read_output(dir: &Path) -> BTreeMap<(String, u64), (f32, bool)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".parquet") || name.starts_with('.') {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let schema = b.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, ["input_file", "row", "probability", "is_fraud"]);
            let file = b.column(0).as_string::<i32>();
            let row = b.column(1).as_primitive::<UInt64Type>();
            let p = b.column(2).as_primitive::<Float32Type>();
            let f = b.column(3).as_boolean();
            for i in 0..b.num_rows() {
                let key = (file.value(i).to_string(), row.value(i));
                let prev = out.insert(key.clone(), (p.value(i), f.value(i)));
                assert!(prev.is_none(), "{key:?} appears twice in {}", dir.display());
            }
        }
    }
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Expects exit 64 and returns stderr.
fn usage_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(64), "{err}");
    err
}

fn check_against_engine(
    scored: &BTreeMap<(String, u64), (f32, bool)>,
    file: &Path,
    data: &[[f32; 12]],
) {
    let want = direct(data);
    let name = file.display().to_string();
    for (i, w) in want.iter().enumerate() {
        let Some(&(p, f)) = scored.get(&(name.clone(), i as u64)) else {
            panic!("{name} row {i} is missing from the output")
        };
        assert!(
            (p - w).abs() <= TOLERANCE,
            "{name} row {i}: {p} vs the engine's {w}"
        );
        assert_eq!(
            f,
            p > 0.5,
            "{name} row {i}: is_fraud {f} for probability {p}"
        );
    }
}

#[test]
fn scores_every_parquet_and_csv_row_as_the_engine_does() {
    let s = Scratch::new();
    let (pq_rows, csv_rows) = (rows(3_000, 1), rows(1_234, 2));
    let pq = s.path("a.parquet");
    let csv = s.path("b.csv");
    write_parquet(&pq, &pq_rows, 700);
    write_csv(&csv, &csv_rows);
    let out_dir = s.path("out");
    let out = s
        .batch(
            "fraud",
            &[&pq, &csv],
            &out_dir,
            &["--csv-chunk-rows", "500", "--json", "--batch-size", "100"],
        )
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(summary["rows"], 4_234, "{summary}");
    assert_eq!(summary["files"], 2, "{summary}");
    // 3,000 rows in row groups of 700 → 5 parts; 1,234 CSV rows in chunks of 500 → 3.
    assert_eq!(summary["parts"], 8, "{summary}");
    assert_eq!(
        summary["version"], 1,
        "NAME alone is its production alias: {summary}"
    );
    let scored = read_output(&out_dir);
    assert_eq!(scored.len(), 4_234);
    check_against_engine(&scored, &pq, &pq_rows);
    check_against_engine(&scored, &csv, &csv_rows);

    // Run again: nothing left to do, nothing written twice.
    let again = s
        .batch(
            "fraud",
            &[&pq, &csv],
            &out_dir,
            &["--csv-chunk-rows", "500", "--json"],
        )
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&ok(&again)).unwrap();
    assert_eq!(summary["parts_scored"], 0, "{summary}");
    assert_eq!(read_output(&out_dir).len(), 4_234);
}

/// Parts in the output directory, counted by name.
fn parts_done(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("part-") && n.ends_with(".parquet")
            })
            .count()
    })
}

#[test]
fn a_run_killed_again_and_again_resumes_to_exactly_the_uninterrupted_output() {
    let s = Scratch::new();
    let data = rows(120_000, 3);
    let inputs = [s.path("big-0.parquet"), s.path("big-1.parquet")];
    write_parquet(&inputs[0], &data[..60_000], 500);
    write_parquet(&inputs[1], &data[60_000..], 500);
    let input_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let total_parts = 240;

    let reference = s.path("reference");
    ok(&s
        .batch("fraud@1", &input_refs, &reference, &[])
        .output()
        .unwrap());
    let want = read_output(&reference);
    assert_eq!(want.len(), 120_000);

    let killed = s.path("killed");
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let mut kills = Vec::new();
    for _ in 0..8 {
        let before = parts_done(&killed);
        if before >= total_parts - 20 {
            break;
        }
        let mut child = s
            .batch("fraud@1", &input_refs, &killed, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for this run to finish some parts of its own, then kill at a random moment.
        let need = before + rng.random_range(1..=25);
        let started = Instant::now();
        while parts_done(&killed) < need && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        if child.try_wait().unwrap().is_some() {
            break; // finished before the kill
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let after = parts_done(&killed);
        assert!(
            after > before,
            "no part done between kills ({before} → {after})"
        );
        let torn = std::fs::read_dir(&killed)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        kills.push((before, after, torn));
    }
    assert!(
        kills.len() >= 5,
        "only {} kills landed: {kills:?}",
        kills.len()
    );

    let out = s
        .batch("fraud@1", &input_refs, &killed, &["--json"])
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let skipped = summary["parts_skipped"].as_u64().unwrap();
    assert!(skipped >= kills.last().unwrap().1 as u64, "{summary}");
    assert_eq!(summary["parts"], total_parts, "{summary}");

    let got = read_output(&killed);
    assert_eq!(got.len(), want.len(), "rows after {} kills", kills.len());
    for (key, (p, f)) in &want {
        let Some((q, g)) = got.get(key) else {
            panic!("{key:?} missing after the kills")
        };
        assert!(
            (p - q).abs() <= TOLERANCE && f == g,
            "{key:?}: {p},{f} vs {q},{g}"
        );
    }
    let leftovers: Vec<String> = std::fs::read_dir(&killed)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let checkpoint: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("_checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(checkpoint["complete"], true);
    assert_eq!(checkpoint["done"].as_object().unwrap().len(), total_parts);
    eprintln!("kills (parts before, parts after, temporary files left): {kills:?}");
}

#[test]
fn missing_or_mistyped_columns_are_named_and_exit_64() {
    let s = Scratch::new();
    let pq = s.path("a.parquet");
    write_parquet(&pq, &rows(10, 5), 10);
    let mut cols = features();
    cols[3] = "merchant_riskk".into();
    let err = usage_error(
        &s.batch(
            "fraud",
            &[&pq],
            &s.path("o1"),
            &["--columns", &cols.join(",")],
        )
        .output()
        .unwrap(),
    );
    assert!(
        err.contains("column 'merchant_riskk'") && err.contains("missing"),
        "{err}"
    );

    cols[3] = "id".into();
    let err = usage_error(
        &s.batch(
            "fraud",
            &[&pq],
            &s.path("o2"),
            &["--columns", &cols.join(",")],
        )
        .output()
        .unwrap(),
    );
    assert!(err.contains("column 'id' is Utf8"), "{err}");

    // A CSV file missing a feature: 11 numeric columns for 12 values per row.
    let csv = s.path("short.csv");
    let names = features();
    let mut text = names[..11].join(",") + ",label\n";
    text += &"1,".repeat(11);
    text += "0\n";
    std::fs::write(&csv, text).unwrap();
    let err = usage_error(
        &s.batch("fraud", &[&csv], &s.path("o3"), &[])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("short.csv") && err.contains("takes 12 values per row"),
        "{err}"
    );
    assert!(
        !s.path("o3").join("_checkpoint.json").exists(),
        "nothing is started"
    );
}

#[test]
fn a_pattern_matching_no_files_exits_64() {
    let s = Scratch::new();
    let pattern = s.path("nothing-here/*.parquet");
    let err = usage_error(
        &s.batch("fraud", &[&pattern], &s.path("o"), &[])
            .output()
            .unwrap(),
    );
    assert!(err.contains("matches no files"), "{err}");
    let err = usage_error(
        &s.batch("nosuchmodel", &[&pattern], &s.path("o"), &[])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("matches no files"),
        "inputs are checked first: {err}"
    );
}

#[test]
fn resuming_into_another_runs_directory_is_refused_naming_the_difference() {
    let s = Scratch::new();
    let pq = s.path("a.parquet");
    write_parquet(&pq, &rows(1_000, 6), 250);
    let out = s.path("out");
    ok(&s.batch("fraud@1", &[&pq], &out, &[]).output().unwrap());

    let err = usage_error(&s.batch("fraud@2", &[&pq], &out, &[]).output().unwrap());
    assert!(err.contains("fraud@1") && err.contains("fraud@2"), "{err}");

    write_parquet(&pq, &rows(1_001, 6), 250);
    let err = usage_error(&s.batch("fraud@1", &[&pq], &out, &[]).output().unwrap());
    assert!(
        err.contains("a.parquet") && err.contains("bytes then"),
        "{err}"
    );

    let other = s.path("b.parquet");
    write_parquet(&other, &rows(10, 7), 250);
    let err = usage_error(
        &s.batch("fraud@1", &[&pq, &other], &out, &[])
            .output()
            .unwrap(),
    );
    assert!(err.contains("b.parquet: new in this run"), "{err}");

    let foreign = s.path("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("keep.txt"), "mine").unwrap();
    let err = usage_error(&s.batch("fraud@1", &[&pq], &foreign, &[]).output().unwrap());
    assert!(err.contains("no _checkpoint.json"), "{err}");
}
