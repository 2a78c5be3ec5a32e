//! `ballast logs query`: prediction records of one model, from the segments and the WAL not
//! yet rolled, as a table or one JSON object per line.

use std::io::Write;

use anyhow::Context;
use ballast_capture::query::{self, Filter, Query};

use crate::cli::{LogsArgs, LogsCommand, LogsQueryArgs};

pub async fn run(args: LogsArgs) -> anyhow::Result<()> {
    match args.command {
        LogsCommand::Query(q) => query_logs(q).await,
    }
}

fn build_query(a: &LogsQueryArgs) -> anyhow::Result<Query> {
    let now = std::time::SystemTime::now();
    let mut problems = Vec::new();
    let mut time = |v: &Option<String>, field: &str| {
        v.as_deref().and_then(|t| {
            query::parse_time(t, field, now)
                .map_err(|e| problems.push(e.to_string()))
                .ok()
        })
    };
    let from_us = time(&a.from, "--from");
    let to_us = time(&a.to, "--to");
    let mut filters = Vec::new();
    for f in &a.filters {
        match Filter::parse(f) {
            Ok(f) => filters.push(f),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if a.limit == Some(0) {
        problems.push("--limit must be at least 1".into());
    }
    anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(Query {
        model: a.model.clone(),
        version: a.version.clone(),
        from_us,
        to_us,
        id: a.id.clone(),
        filters,
        limit: a.limit,
    })
}

async fn query_logs(a: LogsQueryArgs) -> anyhow::Result<()> {
    let q = build_query(&a)?;
    let logs = a.data_dir.join("logs");
    let location = a
        .location
        .clone()
        .unwrap_or_else(|| logs.join("segments").display().to_string());
    anyhow::ensure!(
        a.location.is_some() || logs.is_dir(),
        "no prediction logs in {} (is --data-dir the server's?)",
        logs.display()
    );
    let sink = ballast_capture::sink::open(&location)
        .with_context(|| format!("cannot open prediction logs at {location}"))?;
    let wal = ballast_capture::wal::dir(&logs);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<std::io::Error> = None;
    if !a.json {
        let _ = writeln!(
            out,
            "{:<27} {:<34} {:<8} {:<8} {:>10}  {:<18} OUTPUTS",
            "TIME", "ID", "VERSION", "STATUS", "TOTAL_US", "CODE"
        );
    }
    let n = query::run(
        sink.as_ref(),
        wal.is_dir().then_some(wal.as_path()),
        &q,
        |r| {
            let written = if a.json {
                writeln!(out, "{}", query::to_json(r))
            } else {
                let outputs: Vec<String> = r
                    .outputs
                    .iter()
                    .map(|t| {
                        let v = query::tensor_values(t);
                        let shown: Vec<String> = v.iter().take(4).map(|x| x.to_string()).collect();
                        let more = if v.len() > 4 { ", …" } else { "" };
                        format!("{}=[{}{more}]", t.name, shown.join(", "))
                    })
                    .collect();
                writeln!(
                    out,
                    "{:<27} {:<34} {:<8} {:<8} {:>10}  {:<18} {}",
                    query::format_time(r.time_us),
                    r.id,
                    r.version,
                    r.status.as_str(),
                    r.total_us,
                    r.code.as_deref().unwrap_or("-"),
                    outputs.join(" ")
                )
            };
            match written {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )
    .await?;
    out.flush().ok();
    if let Some(e) = failed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("cannot write to stdout");
    }
    if !a.json {
        eprintln!("{n} record(s)");
    }
    Ok(())
}
