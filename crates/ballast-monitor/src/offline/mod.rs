//! Offline drift: a reference file against a current one (CSV or Parquet, either side), every
//! feature tested on the raw values, the numbers equal to scipy's (`ballast drift`).
//!
//! - [`read`]: columns of CSV and Parquet files, missing values counted.
//! - [`ks`]: two-sample Kolmogorov–Smirnov, exact or asymptotic as `scipy.stats.ks_2samp`.
//! - [`wasserstein`]: Wasserstein-1 on the samples (`scipy.stats.wasserstein_distance`).
//! - [`binned`]: PSI and Jensen–Shannon on reference-quantile bins or categories.
//! - [`chi2`]: chi-square on the 2×k category table (`scipy.stats.chi2_contingency`).
//! - [`sort`]: a radix sort for the columns' values.
//! - [`html`]: the self-contained HTML report.
//!
//! **Verdict** (Evidently's default tests and thresholds, see `docs/drift.md`): when either
//! side has at most [`SMALL_SAMPLE`] values, a p-value decides — numeric features drift when
//! the KS p-value is below 0.05, categorical ones when the chi-square p-value is; when both
//! sides are larger, p-values flag negligible differences, so a distance decides — numeric
//! features drift when the Wasserstein distance divided by the reference's standard deviation
//! (floored at 0.001) is at least 0.1, categorical ones when the Jensen–Shannon distance
//! (base 2) is at least `0.1 / sqrt(ln 2)` (Evidently's 0.1 in natural-log units). Evidently
//! looks at the reference's size alone; with a large reference and a small current batch its
//! distance rule raises false alarms (the normed Wasserstein of 100 values from the same
//! distribution is often above 0.1), so the smaller side decides here.
//! A feature with no values on a side is not tested (`reason`), and not counted in
//! `drifted_share`.

pub mod binned;
pub mod chi2;
pub mod html;
pub mod ks;
pub mod read;
pub mod sort;
pub mod wasserstein;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use read::{ColumnValues, Format, Source, Values};

/// A feature with at most this many values on either side is judged by a p-value; above,
/// p-values flag trivial differences, so a distance threshold decides (Evidently's 1000).
pub const SMALL_SAMPLE: usize = 1000;
/// Significance level of the p-value verdicts.
pub const P_VALUE_THRESHOLD: f64 = 0.05;
/// Wasserstein distance in reference standard deviations (Evidently's default).
pub const WASSERSTEIN_NORMED_THRESHOLD: f64 = 0.1;
/// The reference standard deviation is floored at this before dividing (as Evidently).
pub const STD_FLOOR: f64 = 0.001;
/// Evidently's 0.1 for the natural-log Jensen–Shannon distance, in base-2 units.
pub const JS_THRESHOLD: f64 = 0.120_112_240_878_645_1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Numeric,
    Categorical,
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}: unreadable Parquet: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: column '{column}' has type {data_type}; expected a number, string or boolean")]
    UnsupportedType {
        path: PathBuf,
        column: String,
        data_type: String,
    },
    #[error("column '{column}' is in the reference {reference} but not in the current {current}")]
    MissingColumn {
        column: String,
        reference: PathBuf,
        current: PathBuf,
    },
    #[error("--categorical names '{column}', which is not a column of the reference {reference}")]
    UnknownCategorical { column: String, reference: PathBuf },
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Columns tested as categories even when their values are numbers.
    pub categorical: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PValueTest {
    pub statistic: f64,
    pub p_value: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tests {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<ks::Ks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
    /// Wasserstein divided by the reference standard deviation (floored at [`STD_FLOOR`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein_normed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chi2: Option<chi2::Chi2>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jensen_shannon: Option<f64>,
}

/// Which statistic decided the verdict, its value and the threshold it was held to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub test: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// A p-value drifts below its threshold, a distance at or above it.
    #[serde(skip)]
    p_value: bool,
}

impl Verdict {
    /// A test's p-value, held to [`P_VALUE_THRESHOLD`].
    fn p_value(test: &'static str, value: f64) -> Self {
        Self {
            test,
            value,
            threshold: P_VALUE_THRESHOLD,
            p_value: true,
        }
    }

    /// A distance held to `threshold`.
    fn distance(test: &'static str, value: f64, threshold: f64) -> Self {
        Self {
            test,
            value,
            threshold,
            p_value: false,
        }
    }

    pub fn drifted(&self) -> bool {
        if self.p_value {
            self.value < self.threshold
        } else {
            self.value >= self.threshold
        }
    }
}

/// What the HTML report draws: both sides' shares in the same bins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plot {
    /// Bin labels (numeric: the bins' lower edges; categorical: the categories).
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feature {
    pub name: String,
    pub kind: Kind,
    pub reference_count: u64,
    pub current_count: u64,
    /// Share of the current file's rows where this feature is missing.
    pub missing_share: f64,
    pub tests: Tests,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub drifted: bool,
    /// Why the feature was not tested, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip)]
    pub plot: Plot,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub reference: PathBuf,
    pub current: PathBuf,
    pub reference_rows: u64,
    pub current_rows: u64,
    pub features: Vec<Feature>,
    pub tested_features: usize,
    pub drifted_features: usize,
    /// Drifted features / tested features (0 when none was tested).
    pub drifted_share: f64,
}

/// Compares every column of the reference with the same column of the current file.
pub fn compare(
    reference: &Path,
    current: &Path,
    options: &Options,
) -> Result<Report, OfflineError> {
    let r = read::inspect(reference)?;
    let c = read::inspect(current)?;
    for name in &options.categorical {
        if r.index_of(name).is_none() {
            return Err(OfflineError::UnknownCategorical {
                column: name.clone(),
                reference: reference.to_path_buf(),
            });
        }
    }
    // (name, kind, index in reference, index in current)
    let mut plan = Vec::with_capacity(r.columns.len());
    for (i, (name, rkind)) in r.columns.iter().enumerate() {
        let Some(j) = c.index_of(name) else {
            return Err(OfflineError::MissingColumn {
                column: name.clone(),
                reference: reference.to_path_buf(),
                current: current.to_path_buf(),
            });
        };
        let ckind = c.columns[j].1;
        let kind = if options.categorical.contains(name)
            || *rkind == Kind::Categorical
            || ckind == Kind::Categorical
        {
            Kind::Categorical
        } else {
            Kind::Numeric
        };
        plan.push((name.clone(), kind, i, j));
    }
    let current_rows = c.rows;
    let features: Vec<Feature> = if r.format == Format::Parquet && c.format == Format::Parquet {
        // One column (both sides) in memory per worker.
        plan.par_iter()
            .map(|(name, kind, i, j)| {
                let one = |source: &Source, index: usize| {
                    read::load(source, &[(index, *kind)])?.pop().ok_or_else(|| {
                        OfflineError::Parquet {
                            path: source.path.clone(),
                            message: format!("column '{name}' was not read"),
                        }
                    })
                };
                Ok(feature(
                    name,
                    *kind,
                    one(&r, *i)?,
                    one(&c, *j)?,
                    current_rows,
                ))
            })
            .collect::<Result<_, OfflineError>>()?
    } else {
        let rv = read::load(&r, &plan.iter().map(|p| (p.2, p.1)).collect::<Vec<_>>())?;
        let cv = read::load(&c, &plan.iter().map(|p| (p.3, p.1)).collect::<Vec<_>>())?;
        plan.into_par_iter()
            .zip(rv.into_par_iter().zip(cv))
            .map(|((name, kind, _, _), (rv, cv))| feature(&name, kind, rv, cv, current_rows))
            .collect()
    };
    let tested = features.iter().filter(|f| f.reason.is_none()).count();
    let drifted = features.iter().filter(|f| f.drifted).count();
    Ok(Report {
        reference: reference.to_path_buf(),
        current: current.to_path_buf(),
        reference_rows: r.rows,
        current_rows,
        features,
        tested_features: tested,
        drifted_features: drifted,
        drifted_share: if tested == 0 {
            0.0
        } else {
            drifted as f64 / tested as f64
        },
    })
}

/// The tests of one feature from both sides' values.
pub fn feature(
    name: &str,
    kind: Kind,
    reference: ColumnValues,
    current: ColumnValues,
    current_rows: u64,
) -> Feature {
    let missing_share = if current_rows == 0 {
        0.0
    } else {
        current.missing as f64 / current_rows as f64
    };
    let mut f = Feature {
        name: name.to_string(),
        kind,
        reference_count: 0,
        current_count: 0,
        missing_share,
        tests: Tests::default(),
        verdict: None,
        drifted: false,
        reason: None,
        plot: Plot::default(),
    };
    match (reference.values, current.values) {
        (Values::Numeric(a), Values::Numeric(b)) => {
            f.reference_count = a.len() as u64;
            f.current_count = b.len() as u64;
            if let Some(reason) = untestable(a.len(), b.len()) {
                f.reason = Some(reason);
                return f;
            }
            let (a, b) = (sort::sorted(a), sort::sorted(b));
            numeric(&mut f, &a, &b);
        }
        (Values::Categorical(a), Values::Categorical(b)) => {
            let (na, nb) = (a.values().sum::<u64>(), b.values().sum::<u64>());
            f.reference_count = na;
            f.current_count = nb;
            if let Some(reason) = untestable(na as usize, nb as usize) {
                f.reason = Some(reason);
                return f;
            }
            categorical(&mut f, &a, &b);
        }
        _ => f.reason = Some("the two files hold different kinds of values".into()),
    }
    f
}

fn untestable(reference: usize, current: usize) -> Option<String> {
    match (reference, current) {
        (0, 0) => Some("no values in either file".into()),
        (0, _) => Some("no values in the reference".into()),
        (_, 0) => Some("no values in the current file".into()),
        _ => None,
    }
}

fn numeric(f: &mut Feature, a: &[f64], b: &[f64]) {
    let ks = ks::ks_2samp(a, b);
    let w = wasserstein::wasserstein(a, b);
    let edges = binned::quantile_edges(a, binned::BINS);
    let (ra, cb) = (binned::bin_counts(a, &edges), binned::bin_counts(b, &edges));
    let normed = w.map(|w| w / wasserstein::std_dev(a).max(STD_FLOOR));
    f.tests = Tests {
        ks,
        wasserstein: w,
        wasserstein_normed: normed,
        chi2: None,
        psi: Some(crate::stats::psi(&ra, &cb)),
        jensen_shannon: Some(crate::stats::jensen_shannon(&ra, &cb)),
    };
    f.verdict = if a.len().min(b.len()) <= SMALL_SAMPLE {
        ks.map(|k| Verdict::p_value("ks_p_value", k.p_value))
    } else {
        normed.map(|v| Verdict::distance("wasserstein_normed", v, WASSERSTEIN_NORMED_THRESHOLD))
    };
    f.drifted = f.verdict.as_ref().is_some_and(Verdict::drifted);
    f.plot = numeric_plot(a, b);
}

fn categorical(f: &mut Feature, a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
    let mut cats: Vec<&String> = a.keys().chain(b.keys()).collect();
    cats.sort();
    cats.dedup();
    let ra: Vec<u64> = cats
        .iter()
        .map(|k| a.get(*k).copied().unwrap_or(0))
        .collect();
    let cb: Vec<u64> = cats
        .iter()
        .map(|k| b.get(*k).copied().unwrap_or(0))
        .collect();
    let chi = chi2::chi2_contingency(&ra, &cb);
    let js = crate::stats::jensen_shannon(&ra, &cb);
    f.tests = Tests {
        chi2: Some(chi),
        psi: Some(crate::stats::psi(&ra, &cb)),
        jensen_shannon: Some(js),
        ..Tests::default()
    };
    let smaller = ra.iter().sum::<u64>().min(cb.iter().sum());
    f.verdict = Some(if smaller <= SMALL_SAMPLE as u64 {
        Verdict::p_value("chi2_p_value", chi.p_value)
    } else {
        Verdict::distance("jensen_shannon", js, JS_THRESHOLD)
    });
    f.drifted = f.verdict.as_ref().is_some_and(Verdict::drifted);
    f.plot = categorical_plot(&cats, &ra, &cb);
}

/// Bars the report draws per numeric feature.
const PLOT_BINS: usize = 30;
/// Categories drawn by name; the rest are summed as "other".
const PLOT_CATEGORIES: usize = 20;

fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|c| {
            if total == 0 {
                0.0
            } else {
                *c as f64 / total as f64
            }
        })
        .collect()
}

/// Equal-width bins over both samples' range (the quantile bins would hide the shape).
fn numeric_plot(a: &[f64], b: &[f64]) -> Plot {
    let (Some(lo), Some(hi)) = (
        a.first().zip(b.first()).map(|(x, y)| x.min(*y)),
        a.last().zip(b.last()).map(|(x, y)| x.max(*y)),
    ) else {
        return Plot::default();
    };
    let bins = if hi > lo { PLOT_BINS } else { 1 };
    let width = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (1..bins).map(|k| lo + width * k as f64).collect();
    let count = |v: &[f64]| {
        let mut out = Vec::with_capacity(bins);
        let mut below = 0usize;
        for e in &edges {
            let n = v.partition_point(|x| x < e);
            out.push((n - below) as u64);
            below = n;
        }
        out.push((v.len() - below) as u64);
        out
    };
    Plot {
        labels: (0..bins)
            .map(|k| format!("{}", lo + width * k as f64))
            .collect(),
        reference: shares(&count(a)),
        current: shares(&count(b)),
    }
}

fn categorical_plot(cats: &[&String], ra: &[u64], cb: &[u64]) -> Plot {
    let mut order: Vec<usize> = (0..cats.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(ra[*i] + cb[*i]));
    let (p, q) = (shares(ra), shares(cb));
    let mut plot = Plot::default();
    for (rank, i) in order.iter().enumerate() {
        if rank < PLOT_CATEGORIES {
            plot.labels.push(cats[*i].clone());
            plot.reference.push(p[*i]);
            plot.current.push(q[*i]);
        } else if rank == PLOT_CATEGORIES {
            plot.labels.push("(other)".into());
            plot.reference.push(p[*i]);
            plot.current.push(q[*i]);
        } else if let (Some(r), Some(c)) = (plot.reference.last_mut(), plot.current.last_mut()) {
            *r += p[*i];
            *c += q[*i];
        }
    }
    plot
}
