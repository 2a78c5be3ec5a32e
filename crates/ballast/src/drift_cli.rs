//! `ballast drift`: compare a current file with a reference and print the verdicts as a
//! table or JSON, optionally writing the HTML report. Unusable input (a missing file, a
//! reference column the current file lacks, an unreadable Parquet or CSV) exits 64.

use std::io::Write;

use anyhow::Context;
use ballast_monitor::offline::{self, OfflineError, Options, Report};

use crate::cli::DriftArgs;

pub enum DriftError {
    /// Bad input: exit 64.
    Input(OfflineError),
    /// Anything else (writing the report): exit 1.
    Other(anyhow::Error),
}

pub fn run(a: DriftArgs) -> Result<(), DriftError> {
    let options = Options {
        categorical: a.categorical.clone(),
    };
    let report = offline::compare(&a.reference, &a.current, &options).map_err(DriftError::Input)?;
    if let Some(path) = &a.html {
        std::fs::write(path, offline::html::render(&report))
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(DriftError::Other)?;
    }
    let out = if a.json {
        serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .context("cannot encode the report")
            .map_err(DriftError::Other)?
    } else {
        table(&report)
    };
    std::io::stdout()
        .write_all(out.as_bytes())
        .context("cannot write to standard output")
        .map_err(DriftError::Other)
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(x) if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
    }
}

fn table(r: &Report) -> String {
    let mut s = format!(
        "{:<24} {:<11} {:<8} {:<19} {:>10} {:>10} {:>8}\n",
        "FEATURE", "KIND", "DRIFT", "DECIDED BY", "VALUE", "THRESHOLD", "MISSING"
    );
    for f in &r.features {
        let kind = match f.kind {
            offline::Kind::Numeric => "numeric",
            offline::Kind::Categorical => "categorical",
        };
        let (by, value, threshold) = match (&f.verdict, &f.reason) {
            (_, Some(reason)) => (reason.clone(), "-".into(), "-".into()),
            (Some(v), None) => (
                v.test.to_string(),
                num(Some(v.value)),
                num(Some(v.threshold)),
            ),
            (None, None) => ("-".into(), "-".into(), "-".into()),
        };
        let drift = match (&f.reason, f.drifted) {
            (Some(_), _) => "-",
            (None, true) => "yes",
            (None, false) => "no",
        };
        s.push_str(&format!(
            "{:<24} {kind:<11} {drift:<8} {by:<19} {value:>10} {threshold:>10} {:>7.1}%\n",
            f.name,
            f.missing_share * 100.0
        ));
    }
    s.push_str(&format!(
        "{} of {} tested features drifted ({:.0}%)\n",
        r.drifted_features,
        r.tested_features,
        r.drifted_share * 100.0
    ));
    s
}
