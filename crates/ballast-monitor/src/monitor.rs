//! [`Monitor`]: the observer that keeps each version's drift and quality windows.
//!
//! A version is monitored when a reference profile is found beside it as it starts: a file
//! `reference.csv` in its version directory, else in the model's directory (the registry
//! materialises a pushed version's files, so a reference pushed with the model travels with
//! it). A reference that cannot be read or does not fit the model's inputs is reported with
//! its reason (`/v2/monitor`, a warning in the log) and the version serves unmonitored.
//!
//! The tap delivers observations on the monitor's own thread; windows close there too, on the
//! first observation past their end or on the next report, whichever comes first.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ballast_core::ErrorCode;
use ballast_serve::observe::{Interest, Observation, Observer, StoppedVersion, VersionInfo};
use parking_lot::Mutex;
use serde::Serialize;

use crate::online::{self, Counts, Feature, WindowOptions, WindowReport};
use crate::profile::{ProfileOptions, profile_csv};

/// File names looked for, in order, in the version's directory and then the model's.
pub const REFERENCE_FILES: &[&str] = &["reference.csv"];

pub const FEATURE_DRIFT: &str = "ballast_feature_drift";
pub const FEATURE_DRIFTED: &str = "ballast_feature_drifted";
pub const DRIFTED_SHARE: &str = "ballast_drifted_feature_share";
pub const FEATURE_QUALITY_TOTAL: &str = "ballast_feature_quality_issues_total";
pub const MONITORED_ROWS_TOTAL: &str = "ballast_monitored_rows_total";
pub const SCHEMA_VIOLATIONS_TOTAL: &str = "ballast_schema_violations_total";

/// Registers help text for the monitor's metrics.
pub fn describe() {
    metrics::describe_gauge!(
        FEATURE_DRIFT,
        "Drift of a feature in the last judged time window against the reference, by statistic (psi, jensen_shannon, ks, wasserstein, chi2_p_value); windows under min_rows (insufficient data) leave it unchanged."
    );
    metrics::describe_gauge!(
        FEATURE_DRIFTED,
        "1 when the feature drifted in the last judged time window (chi-square p < alpha and Jensen-Shannon distance >= the floor), 0 when not; a window under min_rows (insufficient data) leaves it unchanged."
    );
    metrics::describe_gauge!(
        DRIFTED_SHARE,
        "Share of judged features that drifted in the last closed time window."
    );
    metrics::describe_counter!(
        FEATURE_QUALITY_TOTAL,
        "Values of a monitored feature by issue: missing (NaN, empty), out_of_range (outside the reference's min and max), unseen (a category the reference never had), mistyped."
    );
    metrics::describe_counter!(
        MONITORED_ROWS_TOTAL,
        "Rows the monitor counted against the version's reference."
    );
    metrics::describe_counter!(
        SCHEMA_VIOLATIONS_TOTAL,
        "Requests to a monitored version refused as malformed (names, types, shapes)."
    );
}

/// Finds the reference profile file of a version.
pub fn find_reference(version_dir: &Path) -> Option<PathBuf> {
    let dirs = std::iter::once(version_dir).chain(version_dir.parent());
    for dir in dirs {
        for name in REFERENCE_FILES {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

struct Window {
    start: SystemTime,
    counts: Counts,
}

struct State {
    time: Window,
    rows: Window,
    closed_time: VecDeque<WindowReport>,
    closed_rows: VecDeque<WindowReport>,
}

/// (model, version) as observations carry them.
type VersionKey = (Arc<str>, Arc<str>);

struct Versioned {
    model: String,
    version: String,
    /// The tap's instance number (a reload under the same version number is another).
    instance: u64,
    reference: PathBuf,
    reference_rows: u64,
    features: Vec<Feature>,
    state: Mutex<State>,
    rows_metric: metrics::Counter,
    schema_metric: metrics::Counter,
    quality: Vec<[metrics::Counter; 4]>,
}

/// A version the monitor could not watch, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unmonitored {
    pub model: String,
    pub version: String,
    #[serde(skip)]
    pub instance: u64,
    pub reference: String,
    pub error: String,
}

pub struct Monitor {
    options: WindowOptions,
    versions: Mutex<BTreeMap<(String, String), Arc<Versioned>>>,
    failed: Mutex<BTreeMap<(String, String), Unmonitored>>,
    /// Time source (tests move it).
    clock: Box<dyn Fn() -> SystemTime + Send + Sync>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VersionReport {
    pub model: String,
    pub version: String,
    pub reference: String,
    pub reference_rows: u64,
    pub features: Vec<String>,
    pub window_seconds: f64,
    pub window_rows: u64,
    /// Rows a window needs (and present values a feature needs) to be judged; below it a
    /// window is `insufficient_data`.
    pub min_rows: u64,
    /// The time window in progress (not judged until it closes; figures so far).
    pub current: WindowReport,
    /// Closed time windows, newest first.
    pub windows: Vec<WindowReport>,
    /// Closed row windows, newest first.
    pub row_windows: Vec<WindowReport>,
}

impl Monitor {
    pub fn new(options: WindowOptions) -> Self {
        Self::with_clock(options, Box::new(SystemTime::now))
    }

    pub fn with_clock(
        options: WindowOptions,
        clock: Box<dyn Fn() -> SystemTime + Send + Sync>,
    ) -> Self {
        describe();
        Self {
            options,
            versions: Mutex::new(BTreeMap::new()),
            failed: Mutex::new(BTreeMap::new()),
            clock,
        }
    }

    /// The windows and thresholds this monitor judges by.
    pub fn options(&self) -> &WindowOptions {
        &self.options
    }

    fn window_start(&self, t: SystemTime) -> SystemTime {
        let len = self.options.window.as_secs_f64().max(1e-3);
        let since = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64((since / len).floor() * len)
    }

    /// Starts watching a version against a reference (what `version_started` does when it
    /// finds a file; callers with a profile in hand use this directly).
    pub fn watch(
        &self,
        model: &str,
        version: &str,
        instance: u64,
        reference: &Path,
        features: Vec<Feature>,
        reference_rows: u64,
    ) {
        let now = (self.clock)();
        let start = self.window_start(now);
        let labels = |feature: &str, issue: &'static str| metrics::counter!(FEATURE_QUALITY_TOTAL, "model" => model.to_string(), "version" => version.to_string(), "feature" => feature.to_string(), "issue" => issue);
        let quality = features
            .iter()
            .map(|f| {
                [
                    labels(&f.name, "missing"),
                    labels(&f.name, "out_of_range"),
                    labels(&f.name, "unseen"),
                    labels(&f.name, "mistyped"),
                ]
            })
            .collect();
        let v = Versioned {
            model: model.to_string(),
            version: version.to_string(),
            instance,
            reference: reference.to_path_buf(),
            reference_rows,
            state: Mutex::new(State {
                time: Window {
                    start,
                    counts: Counts::new(&features),
                },
                rows: Window {
                    start: now,
                    counts: Counts::new(&features),
                },
                closed_time: VecDeque::new(),
                closed_rows: VecDeque::new(),
            }),
            rows_metric: metrics::counter!(MONITORED_ROWS_TOTAL, "model" => model.to_string(), "version" => version.to_string()),
            schema_metric: metrics::counter!(SCHEMA_VIOLATIONS_TOTAL, "model" => model.to_string(), "version" => version.to_string()),
            quality,
            features,
        };
        let key = (model.to_string(), version.to_string());
        self.failed.lock().remove(&key);
        self.versions.lock().insert(key, Arc::new(v));
    }

    fn versioned(&self, model: &str, version: &str) -> Option<Arc<Versioned>> {
        self.versions
            .lock()
            .get(&(model.to_string(), version.to_string()))
            .cloned()
    }

    /// Closes every window whose time is up (called by the observer thread and by reports).
    fn close_due(&self, v: &Versioned, state: &mut State, now: SystemTime) {
        let len = self.options.window;
        while now >= state.time.start + len {
            let end = state.time.start + len;
            let counts = std::mem::replace(&mut state.time.counts, Counts::new(&v.features));
            let report = online::judge(
                "time",
                (state.time.start, end),
                true,
                &v.features,
                &counts,
                &self.options,
            );
            publish(v, &report);
            push_bounded(&mut state.closed_time, report, self.options.history);
            // Skip empty stretches in one step.
            state.time.start = if now >= end + len {
                self.window_start(now)
            } else {
                end
            };
        }
    }

    fn add(&self, v: &Versioned, o: &Observation, now: SystemTime) {
        let mut state = v.state.lock();
        self.close_due(v, &mut state, now);
        let bad_input = o.error == Some(ErrorCode::InvalidArgument);
        if bad_input {
            v.schema_metric.increment(1);
        }
        if o.inputs.is_empty() {
            if bad_input {
                state.time.counts.schema_violations += 1;
                state.rows.counts.schema_violations += 1;
            }
            return;
        }
        let State { time, rows, .. } = &mut *state;
        let rows_before = time.counts.rows;
        Counts::add_to(
            &mut [&mut time.counts, &mut rows.counts],
            &v.features,
            &o.inputs,
            |feature, issues| {
                for (m, n) in v.quality[feature].iter().zip(issues) {
                    if n > 0 {
                        m.increment(n);
                    }
                }
            },
        );
        v.rows_metric.increment(time.counts.rows - rows_before);
        if state.rows.counts.rows >= self.options.rows {
            let counts = std::mem::replace(&mut state.rows.counts, Counts::new(&v.features));
            let report = online::judge(
                "rows",
                (state.rows.start, now),
                true,
                &v.features,
                &counts,
                &self.options,
            );
            push_bounded(&mut state.closed_rows, report, self.options.history);
            state.rows.start = now;
        }
    }

    fn report_of(&self, v: &Versioned, now: SystemTime) -> VersionReport {
        let mut state = v.state.lock();
        self.close_due(v, &mut state, now);
        VersionReport {
            model: v.model.clone(),
            version: v.version.clone(),
            reference: v.reference.display().to_string(),
            reference_rows: v.reference_rows,
            features: v.features.iter().map(|f| f.name.clone()).collect(),
            window_seconds: self.options.window.as_secs_f64(),
            window_rows: self.options.rows,
            min_rows: self.options.min_rows,
            current: online::judge(
                "time",
                (state.time.start, now),
                false,
                &v.features,
                &state.time.counts,
                &self.options,
            ),
            windows: state.closed_time.iter().rev().cloned().collect(),
            row_windows: state.closed_rows.iter().rev().cloned().collect(),
        }
    }

    /// The newest closed window (time or rows, whichever ended last) of every monitored
    /// version that has one: what alert rules read.
    pub fn latest_windows(&self) -> Vec<(String, String, WindowReport)> {
        let now = (self.clock)();
        let versions: Vec<Arc<Versioned>> = self.versions.lock().values().cloned().collect();
        let mut out = Vec::with_capacity(versions.len());
        for v in versions {
            let mut state = v.state.lock();
            self.close_due(&v, &mut state, now);
            let newest = match (state.closed_time.back(), state.closed_rows.back()) {
                (Some(t), Some(r)) => Some(if r.end >= t.end { r } else { t }),
                (t, r) => t.or(r),
            };
            if let Some(w) = newest {
                out.push((v.model.clone(), v.version.clone(), w.clone()));
            }
        }
        out
    }

    /// One version's report, if it is monitored.
    pub fn version_report(&self, model: &str, version: &str) -> Option<VersionReport> {
        let v = self.versioned(model, version)?;
        Some(self.report_of(&v, (self.clock)()))
    }

    /// Why a version is not monitored, when its reference was found but not usable.
    pub fn unmonitored(&self, model: &str, version: &str) -> Option<Unmonitored> {
        self.failed
            .lock()
            .get(&(model.to_string(), version.to_string()))
            .cloned()
    }
}

fn push_bounded(q: &mut VecDeque<WindowReport>, r: WindowReport, keep: usize) {
    q.push_back(r);
    while q.len() > keep.max(1) {
        q.pop_front();
    }
}

/// Sets the gauges of a closed time window.
fn publish(v: &Versioned, r: &WindowReport) {
    let (m, ver) = (v.model.clone(), v.version.clone());
    if let Some(share) = r.drifted_share {
        metrics::gauge!(DRIFTED_SHARE, "model" => m.clone(), "version" => ver.clone()).set(share);
    }
    for f in &r.features {
        let gauge = |stat: &'static str, value: f64| {
            metrics::gauge!(FEATURE_DRIFT, "model" => m.clone(), "version" => ver.clone(), "feature" => f.name.clone(), "statistic" => stat).set(value);
        };
        // Insufficient data: the gauges keep the last judged window's values.
        let Some(d) = &f.drift else { continue };
        gauge("psi", d.psi);
        gauge("jensen_shannon", d.jensen_shannon);
        gauge("chi2_p_value", d.chi2.p_value);
        if let Some(ks) = d.ks {
            gauge("ks", ks.statistic);
        }
        if let Some(w) = d.wasserstein {
            gauge("wasserstein", w);
        }
        if let Some(d) = f.drifted {
            metrics::gauge!(FEATURE_DRIFTED, "model" => m.clone(), "version" => ver.clone(), "feature" => f.name.clone())
                .set(if d { 1.0 } else { 0.0 });
        }
    }
}

impl Observer for Monitor {
    fn name(&self) -> &str {
        "monitor"
    }

    fn version_started(&self, info: &VersionInfo<'_>) -> Interest {
        let Some(path) = info.dir.and_then(find_reference) else {
            return Interest::None;
        };
        let key = (info.model.to_string(), info.version.to_string());
        let fail = |error: String| {
            tracing::warn!(model = info.model, version = info.version, reference = %path.display(), error = %error, "reference profile not usable; the version serves unmonitored");
            self.failed.lock().insert(
                key.clone(),
                Unmonitored {
                    model: info.model.to_string(),
                    version: info.version.to_string(),
                    instance: info.instance,
                    reference: path.display().to_string(),
                    error,
                },
            );
            Interest::None
        };
        let profile = match profile_csv(&path, &ProfileOptions::default()) {
            Ok(p) => p,
            Err(e) => return fail(e.to_string()),
        };
        let features = match online::features(&profile, info.signature) {
            Ok(f) => f,
            Err(e) => return fail(e),
        };
        tracing::info!(model = info.model, version = info.version, reference = %path.display(), features = features.len(), rows = profile.rows, "monitoring drift against the reference");
        self.watch(
            info.model,
            info.version,
            info.instance,
            &path,
            features,
            profile.rows,
        );
        Interest::Tensors
    }

    fn observe(&self, batch: &[Observation]) {
        let now = (self.clock)();
        // The last (model, version) looked up: batches are mostly one version.
        let mut last: Option<(VersionKey, Arc<Versioned>)> = None;
        for o in batch {
            let v = match &last {
                Some(((m, ver), v)) if *m == o.model && *ver == o.version => v.clone(),
                _ => match self.versioned(&o.model, &o.version) {
                    Some(v) => {
                        last = Some(((o.model.clone(), o.version.clone()), v.clone()));
                        v
                    }
                    None => continue,
                },
            };
            self.add(&v, o, now);
        }
    }

    /// A retired version's windows go with it (a reload under the same number started a new
    /// instance, which stays).
    fn version_stopped(&self, stopped: &StoppedVersion<'_>) {
        let key = (stopped.model.to_string(), stopped.version.to_string());
        let mut versions = self.versions.lock();
        if versions
            .get(&key)
            .is_some_and(|v| v.instance == stopped.instance)
        {
            versions.remove(&key);
        }
        drop(versions);
        let mut failed = self.failed.lock();
        if failed
            .get(&key)
            .is_some_and(|f| f.instance == stopped.instance)
        {
            failed.remove(&key);
        }
    }

    fn tick(&self) {
        let now = (self.clock)();
        let versions: Vec<Arc<Versioned>> = self.versions.lock().values().cloned().collect();
        for v in versions {
            let mut state = v.state.lock();
            self.close_due(&v, &mut state, now);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::alerts::{AlertingConfig, Alerts, Op, Rule, Signal, State, Statistic};
    use ballast_core::{DataType, ModelSignature, Tensor, TensorData, TensorSpec};
    use ballast_serve::context::{Priority, Protocol, RequestContext};
    use ballast_serve::observe::Tap;

    fn observation(rows: usize, shift: f32, at: SystemTime) -> Observation {
        // Values 0..17 like the reference below, one feature.
        let data: Vec<f32> = (0..rows).map(|i| (i % 17) as f32 + shift).collect();
        let ctx = RequestContext::new(Protocol::Http);
        Observation {
            id: ctx.id.clone(),
            trace: None,
            finished: at,
            elapsed: Duration::from_micros(50),
            protocol: Protocol::Http,
            priority: Priority::Default,
            model: Arc::from("m"),
            version: Arc::from("1"),
            arm: None,
            timing: None,
            error: None,
            inputs: Arc::from(vec![
                Tensor::new("x", vec![rows, 1], TensorData::F32(data)).unwrap(),
            ]),
            outputs: Arc::from(Vec::new()),
        }
    }

    /// The report of a new user: a 10 s window and a PSI rule; the alert fired, then the next
    /// window — no requests at all — resolved it. Empty windows now decide nothing.
    #[test]
    fn a_firing_alert_stays_firing_when_traffic_stops() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("a\n");
        for i in 0..1700 {
            csv += &format!("{}\n", i % 17);
        }
        let reference = dir.path().join("reference.csv");
        std::fs::write(&reference, csv).unwrap();
        let profile = profile_csv(&reference, &ProfileOptions::default()).unwrap();
        let sig = ModelSignature {
            inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 1])],
            outputs: vec![],
        };
        let features = online::features(&profile, &sig).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = Arc::new(Mutex::new(t0));
        let now = {
            let clock = clock.clone();
            move || *clock.lock()
        };
        let monitor = Monitor::with_clock(
            WindowOptions {
                window: Duration::from_secs(10),
                rows: 1_000_000,
                ..WindowOptions::default()
            },
            Box::new(now.clone()),
        );
        monitor.watch("m", "1", 0, &reference, features, profile.rows);
        let rule = Rule {
            name: "psi".into(),
            signal: Signal::FeatureDrift,
            model: None,
            version: None,
            feature: None,
            statistic: Some(Statistic::Psi),
            issue: None,
            op: Op::Gt,
            threshold: 0.5,
            for_: "0s".into(),
            severity: "critical".into(),
            labels: BTreeMap::new(),
        };
        let alerts = Alerts::new(vec![rule], &AlertingConfig::default());
        let advance = |secs: u64| *clock.lock() += Duration::from_secs(secs);
        let evaluate = || alerts.evaluate(now(), &monitor.latest_windows());

        // A drifted window (every value shifted past the reference's range) fires the alert.
        monitor.observe(&[observation(500, 30.0, now())]);
        advance(10);
        let fired = evaluate();
        assert_eq!(fired.len(), 1, "{:?}", alerts.list());
        assert_eq!(fired[0].0.alert.state, State::Firing);

        // Traffic stops: the next windows are empty. They report no statistics and resolve
        // nothing, for as long as they last.
        advance(16);
        let report = monitor.version_report("m", "1").unwrap();
        assert_eq!(report.min_rows, 100);
        let newest = &report.windows[0];
        assert_eq!(newest.rows, 0);
        assert!(newest.insufficient_data, "{newest:?}");
        assert!(newest.features[0].drift.is_none(), "{newest:?}");
        for _ in 0..30 {
            assert!(evaluate().is_empty(), "{:?}", alerts.list());
            advance(1);
        }
        assert_eq!(alerts.list()[0].state, State::Firing);
        // A window of a few requests is no evidence either.
        monitor.observe(&[observation(20, 0.0, now())]);
        advance(10);
        assert!(evaluate().is_empty());
        assert_eq!(alerts.list()[0].state, State::Firing);

        // Enough rows like the reference: resolved.
        monitor.observe(&[observation(500, 0.0, now())]);
        advance(10);
        let resolved = evaluate();
        assert_eq!(resolved.len(), 1, "{:?}", alerts.list());
        assert_eq!(resolved[0].0.alert.state, State::Resolved);
    }

    #[test]
    fn a_stopped_version_is_forgotten_and_a_reload_under_its_number_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut csv = String::from("a,b\n");
        for i in 0..200 {
            csv += &format!("{},{}\n", i % 17, i % 5);
        }
        std::fs::write(dir.path().join("reference.csv"), csv).unwrap();
        let sig = ModelSignature {
            inputs: vec![TensorSpec::new("x", DataType::F32, vec![-1, 2])],
            outputs: vec![],
        };
        let monitor = Arc::new(Monitor::new(WindowOptions::default()));
        let tap = Tap::new();
        tap.attach(monitor.clone(), 16, &ballast_serve::Lifecycle::new())
            .unwrap();
        let first = tap.version_started("m", "1", &sig, Some(dir.path()));
        assert!(monitor.version_report("m", "1").is_some());
        let reloaded = tap.version_started("m", "1", &sig, Some(dir.path()));
        // The old instance stops after the reload: the new one's windows stay.
        drop(first);
        assert!(monitor.version_report("m", "1").is_some());
        drop(reloaded);
        assert!(monitor.version_report("m", "1").is_none());

        // An unusable reference's reason goes with its version too.
        let bad = tempfile::tempdir().unwrap();
        std::fs::write(bad.path().join("reference.csv"), "a,b,c,d\n1,2,3,4\n").unwrap();
        let misfit = tap.version_started("m", "2", &sig, Some(bad.path()));
        assert!(misfit.is_empty());
        assert!(monitor.unmonitored("m", "2").is_some());
        drop(misfit);
        assert!(monitor.unmonitored("m", "2").is_none());
    }
}
