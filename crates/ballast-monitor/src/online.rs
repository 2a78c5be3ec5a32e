//! Online windows: live requests counted in the reference profile's bins, per feature, with
//! quality counters, then judged against the reference when the window closes.
//!
//! A version's requests feed two tumbling windows at once: one by time (default 1 minute) and
//! one by rows (default every 10,000 rows). Tumbling, not sliding: every row is judged once, so
//! the false-alarm rate designed per window is the rate you get (a sliding window judged
//! continuously looks at the same rows many times over). [`Counts`] are plain sums, mergeable
//! across windows and replicas.
//!
//! Insufficient data: a window with fewer than `min_rows` rows, and within a window a feature
//! with fewer than `min_rows` present values, is reported as `insufficient_data` — counts and
//! quality counters, but no statistics and no verdict. Alert rules neither fire nor resolve on
//! it (an empty window after traffic stops says nothing about drift).
//!
//! Verdict (per feature, per closed window): drifted when the window has at least `min_rows`
//! rows with the feature present, the chi-square test of the 2×k table (reference counts vs
//! window counts, `stats::chi_square`) gives p < `alpha`, and the Jensen–Shannon distance is at
//! least `min_distance`. The test controls false alarms at small windows (`alpha` is the
//! designed probability that one feature in one same-distribution window is flagged: 1e-6 by
//! default, so 30 features judged every minute raise a false alarm about once in 23 days); the
//! distance floor keeps a large window from flagging a difference too small to matter. Two
//! assumptions, both stated in the report's docs: rows are independent (traffic that repeats
//! one user's rows is more alike than that, and the distance floor is what protects it), and
//! the reference's bins are treated as fixed (they were cut at its own quantiles, which makes
//! its counts less variable than the test assumes: conservative).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use ballast_core::{ModelSignature, Tensor, TensorData};
use serde::Serialize;

use crate::profile::{Column, Profile};
use crate::stats;

#[derive(Debug, Clone)]
pub struct WindowOptions {
    /// Length of the time window.
    pub window: Duration,
    /// Rows per row window.
    pub rows: u64,
    /// A window with fewer rows, or a feature with fewer present values in it, is insufficient
    /// data: no statistics, no verdict, and alert rules neither fire nor resolve on it.
    pub min_rows: u64,
    /// Chi-square p-value below which a feature may be flagged.
    pub alpha: f64,
    /// Jensen–Shannon distance (base 2) a flagged feature must reach.
    pub min_distance: f64,
    /// Closed windows kept per kind for reports.
    pub history: usize,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            rows: 10_000,
            min_rows: 100,
            alpha: 1e-6,
            min_distance: 0.05,
            history: 60,
        }
    }
}

/// Where a profile column's values are in a request: input index and offset in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub input: usize,
    pub offset: usize,
}

/// One monitored feature: its reference, in the form the hot loop needs.
#[derive(Debug, Clone)]
pub struct Feature {
    pub name: String,
    pub source: Source,
    pub reference_missing_share: f64,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    Numeric {
        edges: Vec<f64>,
        min: f64,
        max: f64,
        reference: Vec<u64>,
    },
    Categorical {
        index: HashMap<String, usize>,
        /// Counts of the kept categories, then "other".
        reference: Vec<u64>,
        /// The reference itself had values beyond its kept categories: a value not kept by
        /// name is "other", not unseen.
        has_other: bool,
    },
}

impl Kind {
    fn bins(&self) -> usize {
        match self {
            Kind::Numeric { reference, .. } | Kind::Categorical { reference, .. } => {
                reference.len()
            }
        }
    }

    fn reference(&self) -> &[u64] {
        match self {
            Kind::Numeric { reference, .. } | Kind::Categorical { reference, .. } => reference,
        }
    }
}

/// Column names taken for the training label, skipped when they fall outside the model's
/// inputs (training data usually carries its label; it is not a feature).
pub const LABEL_COLUMNS: &[&str] = &["label", "labels", "target", "y", "ground_truth", "actual"];

fn is_label_column(name: &str) -> bool {
    LABEL_COLUMNS.iter().any(|l| name.eq_ignore_ascii_case(l))
}

/// Maps the profile's columns onto the model's inputs: one input → columns in order are the
/// features of its rows; several → a column named `<input>` (a one-value row) or
/// `<input>[i]`. Columns that map nowhere are an error naming them, except a label
/// column ([`LABEL_COLUMNS`]), which is skipped.
pub fn features(profile: &Profile, signature: &ModelSignature) -> Result<Vec<Feature>, String> {
    let inputs = &signature.inputs;
    if inputs.is_empty() {
        return Err("the model has no inputs".into());
    }
    let row_len = |i: usize| -> Option<usize> {
        let shape = &inputs[i].shape;
        if shape.len() <= 1 {
            return Some(1);
        }
        shape[1..]
            .iter()
            .try_fold(1usize, |acc, d| usize::try_from(*d).ok().map(|d| acc * d))
    };
    let mut out = Vec::with_capacity(profile.columns.len());
    for col in &profile.columns {
        let source = if inputs.len() == 1 {
            if let Some(f) = row_len(0).filter(|f| col.index >= *f) {
                if is_label_column(&col.name) {
                    continue;
                }
                return Err(format!(
                    "reference column '{}' is feature {} but input '{}' has {f} per row",
                    col.name, col.index, inputs[0].name
                ));
            }
            Source {
                input: 0,
                offset: col.index,
            }
        } else {
            match by_name(&col.name, signature) {
                Some(source) => source,
                None if is_label_column(&col.name) => continue,
                None => {
                    return Err(format!(
                        "reference column '{}' names no input feature (the model has several inputs: name columns <input> or <input>[i], inputs are {})",
                        col.name,
                        signature.input_names()
                    ));
                }
            }
        };
        if let Some(f) = row_len(source.input).filter(|f| source.offset >= *f) {
            return Err(format!(
                "reference column '{}': input '{}' has {f} values per row",
                col.name, inputs[source.input].name
            ));
        }
        let kind = match &col.column {
            Column::Numeric {
                min,
                max,
                edges,
                counts,
                ..
            } => Kind::Numeric {
                edges: edges.clone(),
                min: min.unwrap_or(f64::NAN),
                max: max.unwrap_or(f64::NAN),
                reference: counts.clone(),
            },
            Column::Categorical {
                categories,
                other_count,
                ..
            } => {
                let mut reference: Vec<u64> = categories.iter().map(|c| c.count).collect();
                reference.push(*other_count);
                Kind::Categorical {
                    index: categories
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.value.clone(), i))
                        .collect(),
                    reference,
                    has_other: *other_count > 0,
                }
            }
        };
        out.push(Feature {
            name: col.name.clone(),
            source,
            reference_missing_share: col.missing_rate,
            kind,
        });
    }
    Ok(out)
}

fn by_name(column: &str, signature: &ModelSignature) -> Option<Source> {
    if let Some((input, _)) = signature.input(column) {
        return Some(Source { input, offset: 0 });
    }
    let (name, rest) = column.split_once('[')?;
    let offset = rest.strip_suffix(']')?.trim().parse().ok()?;
    let (input, _) = signature.input(name)?;
    Some(Source { input, offset })
}

/// Counts of one window, per feature: mergeable by addition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub requests: u64,
    /// Requests the model refused as malformed (wrong names, types, shapes).
    pub schema_violations: u64,
    pub rows: u64,
    pub features: Vec<FeatureCounts>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureCounts {
    pub bins: Vec<u64>,
    pub missing: u64,
    /// Numeric values outside the reference's [min, max].
    pub out_of_range: u64,
    /// Categories the reference never had (only when it kept every category by name).
    pub unseen: u64,
    /// Rows whose request did not carry this feature as the reference did (a row shorter
    /// than the offset, text where a number was expected).
    pub mistyped: u64,
}

impl Counts {
    pub fn new(features: &[Feature]) -> Self {
        Self {
            features: features
                .iter()
                .map(|f| FeatureCounts {
                    bins: vec![0; f.kind.bins()],
                    ..FeatureCounts::default()
                })
                .collect(),
            ..Self::default()
        }
    }

    /// Adds another window's counts (same features).
    pub fn merge(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.schema_violations += other.schema_violations;
        self.rows += other.rows;
        for (a, b) in self.features.iter_mut().zip(&other.features) {
            for (x, y) in a.bins.iter_mut().zip(&b.bins) {
                *x += y;
            }
            a.missing += b.missing;
            a.out_of_range += b.out_of_range;
            a.unseen += b.unseen;
            a.mistyped += b.mistyped;
        }
    }

    /// Counts one request's rows. `inputs` in signature order, as the model received them.
    pub fn add(&mut self, features: &[Feature], inputs: &[Tensor]) {
        Self::add_to(&mut [self], features, inputs, |_, _| {});
    }

    /// Counts one request's rows into several windows at once (each value is placed once);
    /// `issues(feature, [missing, out_of_range, unseen, mistyped])` hears each feature's
    /// quality issues in this request, when it had any.
    pub fn add_to(
        windows: &mut [&mut Counts],
        features: &[Feature],
        inputs: &[Tensor],
        mut issues: impl FnMut(usize, [u64; 4]),
    ) {
        let rows = inputs.first().map_or(0, Tensor::rows);
        for w in windows.iter_mut() {
            w.requests += 1;
            w.rows += rows as u64;
        }
        for (fi, f) in features.iter().enumerate() {
            let mut tally = [0u64; 4];
            let mut place = |slot: Slot| {
                for w in windows.iter_mut() {
                    w.features[fi].record(slot);
                }
                if let Some(i) = slot.issue() {
                    tally[i] += 1;
                }
            };
            match inputs.get(f.source.input) {
                Some(t) if f.source.offset < t.row_len() => {
                    let (width, offset) = (t.row_len(), f.source.offset);
                    match (&f.kind, &t.data) {
                        // The common case, without a type dispatch per value.
                        (Kind::Numeric { .. }, TensorData::F32(v)) => {
                            for x in v.iter().skip(offset).step_by(width).take(t.rows()) {
                                place(numeric_slot(&f.kind, f64::from(*x)));
                            }
                        }
                        _ => {
                            for row in 0..t.rows() {
                                place(slot_of(f, &t.data, row * width + offset));
                            }
                        }
                    }
                }
                _ => {
                    for _ in 0..rows {
                        place(Slot::Mistyped);
                    }
                }
            }
            if tally != [0; 4] {
                issues(fi, tally);
            }
        }
    }
}

/// Where one value goes.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Bin(usize),
    /// A numeric value outside the reference's range, in its (end) bin.
    OutOfRange(usize),
    Missing,
    Mistyped,
    /// A category the reference never had, counted in "other".
    Unseen(usize),
}

impl Slot {
    /// The quality counter it raises, in [`Counts::add_to`]'s order: missing 0,
    /// out_of_range 1, unseen 2, mistyped 3.
    fn issue(self) -> Option<usize> {
        match self {
            Slot::Missing => Some(0),
            Slot::OutOfRange(_) => Some(1),
            Slot::Unseen(_) => Some(2),
            Slot::Mistyped => Some(3),
            Slot::Bin(_) => None,
        }
    }
}

impl FeatureCounts {
    fn record(&mut self, slot: Slot) {
        match slot {
            Slot::Bin(b) => self.bins[b] += 1,
            Slot::OutOfRange(b) => {
                self.out_of_range += 1;
                self.bins[b] += 1;
            }
            Slot::Missing => self.missing += 1,
            Slot::Mistyped => self.mistyped += 1,
            Slot::Unseen(b) => {
                self.unseen += 1;
                self.bins[b] += 1;
            }
        }
    }
}

fn numeric_at(data: &TensorData, i: usize) -> Option<f64> {
    Some(match data {
        TensorData::Bool(v) => f64::from(u8::from(*v.get(i)?)),
        TensorData::U8(v) => f64::from(*v.get(i)?),
        TensorData::I32(v) => f64::from(*v.get(i)?),
        TensorData::I64(v) => *v.get(i)? as f64,
        TensorData::F16(v) => f64::from(*v.get(i)?),
        TensorData::F32(v) => f64::from(*v.get(i)?),
        TensorData::F64(v) => *v.get(i)?,
        TensorData::Bytes(_) => return None,
    })
}

/// The slot of a number for a numeric feature (`kind` is `Numeric`).
fn numeric_slot(kind: &Kind, v: f64) -> Slot {
    let Kind::Numeric {
        edges, min, max, ..
    } = kind
    else {
        return Slot::Mistyped;
    };
    if !v.is_finite() {
        // NaN (and the infinities the reference reader also takes as missing).
        return Slot::Missing;
    }
    let bin = edges.partition_point(|e| *e < v);
    if v < *min || v > *max {
        Slot::OutOfRange(bin)
    } else {
        Slot::Bin(bin)
    }
}

fn slot_of(f: &Feature, data: &TensorData, i: usize) -> Slot {
    match &f.kind {
        Kind::Numeric { .. } => {
            let v = match data {
                TensorData::Bytes(v) => match v.get(i).map(|b| std::str::from_utf8(b)) {
                    Some(Ok(s)) if crate::profile::is_missing(s) => return Slot::Missing,
                    Some(Ok(s)) => match s.trim().parse::<f64>() {
                        Ok(x) => x,
                        Err(_) => return Slot::Mistyped,
                    },
                    _ => return Slot::Mistyped,
                },
                _ => match numeric_at(data, i) {
                    Some(x) => x,
                    None => return Slot::Mistyped,
                },
            };
            numeric_slot(&f.kind, v)
        }
        Kind::Categorical {
            index,
            has_other,
            reference,
        } => {
            let other = reference.len() - 1;
            let bin = match data {
                TensorData::Bytes(v) => match v.get(i).map(|b| std::str::from_utf8(b)) {
                    Some(Ok(s)) if crate::profile::is_missing(s) => return Slot::Missing,
                    Some(Ok(s)) => index.get(s.trim()).copied(),
                    _ => return Slot::Mistyped,
                },
                _ => match numeric_at(data, i) {
                    Some(x) if !x.is_finite() => return Slot::Missing,
                    Some(x) => index.get(&category_label(x)).copied(),
                    None => return Slot::Mistyped,
                },
            };
            match bin {
                Some(b) => Slot::Bin(b),
                None if *has_other => Slot::Bin(other),
                None => Slot::Unseen(other),
            }
        }
    }
}

/// A number as the reference's CSV would have spelled it when it is a category (integer
/// codes: `3`, not `3.0`).
fn category_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// One closed (or current) window, judged.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// `time` or `rows`.
    pub kind: &'static str,
    /// Seconds since the Unix epoch (UTC).
    pub start: f64,
    pub end: f64,
    pub closed: bool,
    pub requests: u64,
    pub rows: u64,
    pub schema_violations: u64,
    /// Fewer than `min_rows` rows: no statistics and no verdict in this window.
    pub insufficient_data: bool,
    /// The rows (and present values per feature) a window needs to be judged.
    pub min_rows: u64,
    /// Share of judged features that drifted (`None` when none could be judged).
    pub drifted_share: Option<f64>,
    pub drifted: Vec<String>,
    pub features: Vec<FeatureReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    pub name: String,
    pub kind: &'static str,
    /// Values present (binned).
    pub count: u64,
    pub missing: u64,
    pub missing_share: f64,
    pub reference_missing_share: f64,
    pub out_of_range: u64,
    /// Of the values seen (present or missing).
    pub out_of_range_share: f64,
    pub unseen: u64,
    pub unseen_share: f64,
    pub mistyped: u64,
    /// Fewer than `min_rows` present values (or an insufficient window): `drift` and
    /// `drifted` are null.
    pub insufficient_data: bool,
    /// The statistics against the reference; `None` with insufficient data.
    pub drift: Option<Drift>,
    /// `None` with insufficient data.
    pub drifted: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub psi: f64,
    pub jensen_shannon: f64,
    pub chi2: stats::ChiSquare,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ks: Option<stats::Ks>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wasserstein: Option<f64>,
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Judges a window's counts against the reference.
pub fn judge(
    kind: &'static str,
    span: (SystemTime, SystemTime),
    closed: bool,
    features: &[Feature],
    counts: &Counts,
    options: &WindowOptions,
) -> WindowReport {
    let mut drifted = Vec::new();
    let mut judged = 0usize;
    // At least one row, whatever `min_rows` says: nothing can be judged on nothing.
    let enough = options.min_rows.max(1);
    let window_insufficient = counts.rows < enough;
    let reports = features
        .iter()
        .zip(&counts.features)
        .map(|(f, c)| {
            let count: u64 = c.bins.iter().sum();
            let insufficient = window_insufficient || count < enough;
            let drift = (!insufficient).then(|| drift(f, c));
            let verdict = drift.as_ref().map(|d| {
                d.chi2.p_value < options.alpha && d.jensen_shannon >= options.min_distance
            });
            if let Some(v) = verdict {
                judged += 1;
                if v {
                    drifted.push(f.name.clone());
                }
            }
            let seen = count + c.missing;
            FeatureReport {
                name: f.name.clone(),
                kind: match f.kind {
                    Kind::Numeric { .. } => "numeric",
                    Kind::Categorical { .. } => "categorical",
                },
                count,
                missing: c.missing,
                missing_share: share(c.missing, seen),
                reference_missing_share: f.reference_missing_share,
                out_of_range: c.out_of_range,
                out_of_range_share: share(c.out_of_range, seen),
                unseen: c.unseen,
                unseen_share: share(c.unseen, seen),
                mistyped: c.mistyped,
                insufficient_data: insufficient,
                drift,
                drifted: verdict,
            }
        })
        .collect();
    WindowReport {
        kind,
        start: epoch_seconds(span.0),
        end: epoch_seconds(span.1),
        closed,
        requests: counts.requests,
        rows: counts.rows,
        schema_violations: counts.schema_violations,
        insufficient_data: window_insufficient,
        min_rows: options.min_rows,
        drifted_share: (judged > 0).then(|| drifted.len() as f64 / judged as f64),
        drifted,
        features: reports,
    }
}

/// The statistics of one feature's window counts against its reference (at least one value).
fn drift(f: &Feature, c: &FeatureCounts) -> Drift {
    let reference = f.kind.reference();
    let (ks, wasserstein) = match &f.kind {
        Kind::Numeric {
            edges, min, max, ..
        } => (
            Some(stats::binned_ks(reference, &c.bins)),
            Some(stats::binned_wasserstein(
                reference, &c.bins, edges, *min, *max,
            )),
        ),
        Kind::Categorical { .. } => (None, None),
    };
    Drift {
        psi: stats::psi(reference, &c.bins),
        jensen_shannon: stats::jensen_shannon(reference, &c.bins),
        chi2: stats::chi_square(reference, &c.bins),
        ks,
        wasserstein,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::profile::{ProfileOptions, numeric_column};
    use crate::{ColumnProfile, Profile};
    use ballast_core::{DataType, TensorSpec};

    /// A small deterministic generator (SplitMix64), so the tests need no seed plumbing.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed)
        }
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        pub(crate) fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        /// Standard normal (Box–Muller).
        pub(crate) fn normal(&mut self) -> f64 {
            let u = self.uniform().max(1e-300);
            let v = self.uniform();
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    fn profile(columns: usize, rows: usize, rng: &mut Rng) -> Profile {
        let _ = ProfileOptions::default();
        Profile {
            format: crate::profile::FORMAT,
            rows: rows as u64,
            columns: (0..columns)
                .map(|i| ColumnProfile {
                    name: format!("f{i}"),
                    index: i,
                    missing: 0,
                    missing_rate: 0.0,
                    column: numeric_column((0..rows).map(|_| rng.normal()).collect(), 10),
                })
                .collect(),
        }
    }

    fn signature(width: i64) -> ModelSignature {
        ModelSignature {
            inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, width])],
            outputs: vec![],
        }
    }

    fn batch(rng: &mut Rng, rows: usize, width: usize, shift: Option<(usize, f64)>) -> Tensor {
        let mut v = Vec::with_capacity(rows * width);
        for _ in 0..rows {
            for j in 0..width {
                let s = shift.filter(|(f, _)| *f == j).map_or(0.0, |(_, d)| d);
                v.push((rng.normal() + s) as f32);
            }
        }
        Tensor::new("x", vec![rows, width], TensorData::F32(v)).unwrap()
    }

    #[test]
    fn a_shifted_feature_is_flagged_by_name_and_the_others_are_not() {
        let mut rng = Rng::new(7);
        let p = profile(5, 10_000, &mut rng);
        let fs = features(&p, &signature(5)).unwrap();
        let mut counts = Counts::new(&fs);
        for _ in 0..200 {
            counts.add(&fs, &[batch(&mut rng, 5, 5, Some((3, 0.5)))]);
        }
        let now = SystemTime::now();
        let r = judge(
            "rows",
            (now, now),
            true,
            &fs,
            &counts,
            &WindowOptions::default(),
        );
        assert_eq!(r.rows, 1000);
        assert_eq!(r.drifted, vec!["f3".to_string()], "{r:#?}");
        assert_eq!(r.drifted_share, Some(0.2));
        let f3 = &r.features[3];
        let d3 = f3.drift.as_ref().unwrap();
        assert!(d3.chi2.p_value < 1e-10, "{f3:?}");
        // A 0.5 σ shift moves about 0.5 in feature units; binned W1 sees most of it.
        let w = d3.wasserstein.unwrap();
        assert!((0.3..0.6).contains(&w), "{w}");
    }

    #[test]
    fn same_distribution_windows_are_calibrated_and_raise_no_alarm() {
        // 400 windows of 1,000 rows × 5 features: under the null the chi-square p-values are
        // (close to) uniform, so about 1 % fall under 0.01, and none under the 1e-6 verdict.
        let mut rng = Rng::new(11);
        let p = profile(5, 20_000, &mut rng);
        let fs = features(&p, &signature(5)).unwrap();
        let options = WindowOptions::default();
        let (mut below, mut total, mut flagged) = (0usize, 0usize, 0usize);
        let now = SystemTime::now();
        for _ in 0..400 {
            let mut counts = Counts::new(&fs);
            for _ in 0..100 {
                counts.add(&fs, &[batch(&mut rng, 10, 5, None)]);
            }
            let r = judge("rows", (now, now), true, &fs, &counts, &options);
            flagged += r.drifted.len();
            for f in &r.features {
                total += 1;
                below += usize::from(f.drift.as_ref().unwrap().chi2.p_value < 0.01);
            }
        }
        assert_eq!(flagged, 0);
        let share = below as f64 / total as f64;
        // 2,000 draws at 1 %: the 99.9 % range of the count is about 7..35.
        assert!((0.0025..0.02).contains(&share), "{share}");
    }

    #[test]
    fn a_window_under_min_rows_is_insufficient_data_without_statistics() {
        let mut rng = Rng::new(13);
        let p = profile(2, 1000, &mut rng);
        let fs = features(&p, &signature(2)).unwrap();
        let options = WindowOptions::default();
        let now = SystemTime::now();
        // Empty (traffic stopped) and short windows alike: counts, but no figures at all.
        let empty = Counts::new(&fs);
        let mut short = Counts::new(&fs);
        short.add(&fs, &[batch(&mut rng, 99, 2, Some((0, 5.0)))]);
        for counts in [&empty, &short] {
            let r = judge("time", (now, now), true, &fs, counts, &options);
            assert!(r.insufficient_data, "{r:#?}");
            assert_eq!(r.min_rows, 100);
            assert_eq!(r.drifted_share, None);
            assert!(r.drifted.is_empty());
            for f in &r.features {
                assert!(f.insufficient_data && f.drift.is_none() && f.drifted.is_none());
            }
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["insufficient_data"], true);
            assert_eq!(json["features"][0]["drift"], serde_json::Value::Null);
        }
        // At the minimum the window is judged (and here, shifted by 5 σ, drifted).
        short.add(&fs, &[batch(&mut rng, 1, 2, Some((0, 5.0)))]);
        let r = judge("time", (now, now), true, &fs, &short, &options);
        assert!(!r.insufficient_data);
        assert_eq!(r.drifted, vec!["f0".to_string()]);
        // Enough rows, but a feature mostly missing: that feature alone is insufficient.
        let mut gappy = Counts::new(&fs);
        let mut v = Vec::new();
        for i in 0..200 {
            v.push(if i < 150 { f32::NAN } else { 0.1 });
            v.push(0.1);
        }
        gappy.add(
            &fs,
            &[Tensor::new("x", vec![200, 2], TensorData::F32(v)).unwrap()],
        );
        let r = judge("time", (now, now), true, &fs, &gappy, &options);
        assert!(!r.insufficient_data);
        assert!(r.features[0].insufficient_data && r.features[0].drift.is_none());
        assert!(!r.features[1].insufficient_data && r.features[1].drift.is_some());
        assert_eq!(r.features[0].missing, 150);
    }

    #[test]
    fn quality_counters_count_missing_out_of_range_and_mistyped_values() {
        let mut rng = Rng::new(3);
        let p = profile(2, 1000, &mut rng);
        let fs = features(&p, &signature(2)).unwrap();
        let mut counts = Counts::new(&fs);
        let t = Tensor::new(
            "x",
            vec![3, 2],
            TensorData::F32(vec![f32::NAN, 0.0, 1e6, 0.1, 0.2, f32::INFINITY]),
        )
        .unwrap();
        counts.add(&fs, &[t]);
        assert_eq!(counts.rows, 3);
        assert_eq!(counts.features[0].missing, 1);
        assert_eq!(counts.features[0].out_of_range, 1);
        assert_eq!(counts.features[1].missing, 1);
        assert_eq!(counts.features[0].bins.iter().sum::<u64>(), 2);
        // A narrower row than the reference: the missing feature is mistyped, not guessed.
        let narrow = Tensor::new("x", vec![2, 1], TensorData::F32(vec![0.0, 0.0])).unwrap();
        counts.add(&fs, &[narrow]);
        assert_eq!(counts.features[1].mistyped, 2);
        // Merging adds.
        let mut twice = counts.clone();
        twice.merge(&counts);
        assert_eq!(twice.rows, 10);
        assert_eq!(twice.features[0].missing, 2);
    }

    #[test]
    fn columns_map_to_inputs_by_order_or_by_name() {
        let mut rng = Rng::new(5);
        let p = profile(3, 100, &mut rng);
        let err = features(&p, &signature(2)).unwrap_err();
        assert!(err.contains("'f2'") && err.contains("2 per row"), "{err}");
        // The training label beyond the features is skipped, not an error.
        let mut labelled = p.clone();
        labelled.columns[2].name = "Label".into();
        let fs = features(&labelled, &signature(2)).unwrap();
        assert_eq!(fs.len(), 2);
        let mut named = p.clone();
        named.columns[0].name = "a".into();
        named.columns[1].name = "b[1]".into();
        named.columns[2].name = "b[0]".into();
        let sig = ModelSignature {
            inputs: vec![
                TensorSpec::new("a", DataType::F32, vec![-1, 1]),
                TensorSpec::new("b", DataType::F32, vec![-1, 2]),
            ],
            outputs: vec![],
        };
        let fs = features(&named, &sig).unwrap();
        let sources: Vec<Source> = fs.iter().map(|f| f.source).collect();
        assert_eq!(
            sources,
            vec![
                Source {
                    input: 0,
                    offset: 0
                },
                Source {
                    input: 1,
                    offset: 1
                },
                Source {
                    input: 1,
                    offset: 0
                }
            ]
        );
        named.columns[2].name = "target".into();
        assert_eq!(features(&named, &sig).unwrap().len(), 2);
        named.columns[2].name = "c".into();
        let err = features(&named, &sig).unwrap_err();
        assert!(err.contains("'c'") && err.contains("a, b"), "{err}");
    }
}
