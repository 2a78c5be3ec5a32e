//! The demo's prediction log, as `ballast serve` keeps it (a WAL and Parquet segments under
//! the data directory, durable by default), and its last phase: where the predictions went.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ballast_capture::query::{self, Query};
use ballast_serve::capture::PredictionLogs;

/// Opens the log under `data_dir/logs`.
pub fn open(data_dir: &Path) -> anyhow::Result<PredictionLogs> {
    let dir = data_dir.join("logs");
    let sink = ballast_capture::sink::open(&dir.join("segments").display().to_string())?;
    let key = ballast_capture::policy::load_or_create_key(&dir.join("hash.key"))?;
    let log = ballast_capture::PredictionLog::open(ballast_capture::LogOptions::new(&dir), sink)
        .context("opening the demo's prediction log")?;
    Ok(PredictionLogs {
        log: Arc::new(log),
        hash_key: Arc::from(key),
    })
}

/// Phase 6: rolls the log into segments and shows what is in them and how to read them.
pub async fn phase(logs: &PredictionLogs, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("logs");
    println!(
        "\nPhase 6: where the predictions went. Every request above, served, failed or refused, was logged before its\n  \
         answer left (durable: the answer waited for the fsync of a group commit), redacted first, into a WAL that\n  \
         rolls into Parquet segments per model, version and hour:"
    );
    logs.log
        .flush()
        .await
        .context("rolling the prediction log")?;
    let summary = query::summary(logs.log.sink().as_ref()).await?;
    println!(
        "  {} segment(s), {:.1} MB, in {}/segments/<model>/<version>/<date>/<hour>/ (UTC)",
        summary.segments,
        summary.bytes as f64 / 1e6,
        dir.display()
    );
    println!(
        "  {:<10} {:>8} {:>10} {:>8} {:>10}",
        "model", "version", "ok", "error", "refused"
    );
    let mut rows: std::collections::BTreeMap<(String, String), [u64; 3]> = Default::default();
    for ((model, version, status), n) in &summary.counts {
        let slot = match status.as_str() {
            "ok" => 0,
            "error" => 1,
            _ => 2,
        };
        rows.entry((model.clone(), version.clone())).or_default()[slot] += n;
    }
    for ((model, version), [ok, error, refused]) in &rows {
        println!("  {model:<10} {version:>8} {ok:>10} {error:>8} {refused:>10}");
    }
    let total: u64 = summary.counts.values().sum();
    println!("  → {total} records on record");
    let q = Query {
        model: "fraud".into(),
        filters: vec![query::Filter::parse("status = ok")?],
        limit: Some(1),
        ..Query::default()
    };
    let mut shown = None;
    query::run(logs.log.sink().as_ref(), None, &q, |r| {
        shown = Some(query::to_json(r));
        false
    })
    .await?;
    let d = data_dir.display();
    if let Some(r) = shown {
        println!(
            "  one of them (ballast logs query --data-dir {d} --model fraud --limit 1 --json):\n    {r}"
        );
    }
    println!(
        "  read them with the usual tools:\n    \
         ballast logs query --data-dir {d} --model fraud --where 'status = refused' --limit 5\n    \
         duckdb -c \"SELECT model, version, status, count(*) FROM read_parquet('{d}/logs/segments/**/*.parquet') GROUP BY ALL\"\n    \
         python3 -c \"import pyarrow.dataset as ds; print(ds.dataset('{d}/logs/segments').count_rows())\""
    );
    Ok(())
}
