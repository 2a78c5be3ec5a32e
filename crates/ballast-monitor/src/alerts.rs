//! Alerts on what the monitor measures: rules from the server config (`[[alert]]`), states
//! pending → firing → resolved per (rule, model, version, feature), and delivery that never
//! blocks serving — to webhooks signed per Standard Webhooks and to Prometheus Alertmanager's
//! v2 API, with retries and backoff.
//!
//! A rule reads the newest closed window (time or rows, whichever ended last) of every
//! monitored version it matches, once a second ([`Alerts::run`]). Its condition must hold for
//! its `for` duration before the alert fires; one evaluation without it and a firing alert
//! resolves (pending ones simply end). A window with insufficient data (fewer than `min_rows`
//! rows, or values of the feature: an empty window after traffic stops) decides nothing: the
//! alert keeps its state, pending or firing, until a window with enough data says otherwise.
//! An alert is one instance per matching feature (or per version for version-wide signals), so
//! a second drifted feature is a second alert rather than a repeat of the first; repeats of a
//! firing alert are not sent again, except to Alertmanager, which forgets alerts that are not
//! re-sent (every `resend`).
//!
//! Not yet: SLO signals (error rate, p99 latency, refusal rate) and delayed-label metrics as rule
//! inputs; they join as new [`Signal`]s reading the same evaluation pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use ballast_serve::{Lifecycle, Stage};

use crate::Monitor;
use crate::online::{FeatureReport, WindowReport};

pub const NOTIFICATIONS_TOTAL: &str = "ballast_alert_notifications_total";
pub const ALERTS_FIRING: &str = "ballast_alerts_firing";

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Share of a version's judged features that drifted.
    DriftedShare,
    /// One statistic of a feature (`statistic`), per feature or the one named.
    FeatureDrift,
    /// A data-quality share of a feature (`issue`), per feature or the one named.
    Quality,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Statistic {
    Psi,
    JensenShannon,
    Ks,
    Wasserstein,
    Chi2PValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issue {
    Missing,
    OutOfRange,
    Unseen,
    Mistyped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }
}

/// One `[[alert]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub signal: Signal,
    /// Only this model (default: every monitored model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// For feature signals: only this feature (default: each feature is its own alert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// For `feature_drift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<Statistic>,
    /// For `quality`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue: Option<Issue>,
    pub op: Op,
    pub threshold: f64,
    /// How long the condition must hold before the alert fires ("0s", "30s", "5m").
    #[serde(rename = "for", default = "zero_duration")]
    pub for_: String,
    #[serde(default = "warning")]
    pub severity: String,
    /// Extra labels (owner, team, ...), sent with every notification.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn zero_duration() -> String {
    "0s".to_string()
}

fn warning() -> String {
    "warning".to_string()
}

/// One `[[alerting.webhook]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// `whsec_` and the base64 of the key, as Standard Webhooks libraries take it.
    pub secret: String,
}

/// The `[alerting]` table: where notifications go.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    /// Alertmanager base URLs (`http://host:9093`); alerts go to `/api/v2/alerts`.
    pub alertmanager: Vec<String>,
    pub webhook: Vec<WebhookConfig>,
    /// Seconds between re-sends of a firing alert to Alertmanager (default 60).
    pub resend_secs: Option<f64>,
}

/// Checks rules and sinks; every problem, one per line, naming the field.
pub fn check(rules: &[Rule], alerting: &AlertingConfig, problems: &mut Vec<String>) {
    let mut names = std::collections::BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        let at = format!("alert[{i}]");
        if r.name.trim().is_empty() {
            problems.push(format!("  {at}.name: must not be empty"));
        } else if !names.insert(r.name.clone()) {
            problems.push(format!("  {at}.name: {:?} is used by another rule", r.name));
        }
        if !r.threshold.is_finite() {
            problems.push(format!("  {at}.threshold: must be a finite number"));
        }
        if let Err(e) = humantime::parse_duration(&r.for_) {
            problems.push(format!(
                "  {at}.for: {e} (got {:?}; e.g. \"30s\", \"5m\")",
                r.for_
            ));
        }
        match r.signal {
            Signal::FeatureDrift if r.statistic.is_none() => problems.push(format!(
                "  {at}.statistic: required for signal feature_drift (psi, jensen_shannon, ks, wasserstein, chi2_p_value)"
            )),
            Signal::Quality if r.issue.is_none() => problems.push(format!(
                "  {at}.issue: required for signal quality (missing, out_of_range, unseen, mistyped)"
            )),
            Signal::DriftedShare if r.feature.is_some() => problems.push(format!(
                "  {at}.feature: drifted_share is per version; use feature_drift for one feature"
            )),
            _ => {}
        }
        if r.statistic.is_some() && r.signal != Signal::FeatureDrift {
            problems.push(format!("  {at}.statistic: only for signal feature_drift"));
        }
        if r.issue.is_some() && r.signal != Signal::Quality {
            problems.push(format!("  {at}.issue: only for signal quality"));
        }
    }
    for (i, u) in alerting.alertmanager.iter().enumerate() {
        if reqwest::Url::parse(u).is_err() {
            problems.push(format!("  alerting.alertmanager[{i}]: not a URL: {u:?}"));
        }
    }
    for (i, w) in alerting.webhook.iter().enumerate() {
        if reqwest::Url::parse(&w.url).is_err() {
            problems.push(format!(
                "  alerting.webhook[{i}].url: not a URL: {:?}",
                w.url
            ));
        }
        if let Err(e) = webhook_key(&w.secret) {
            problems.push(format!("  alerting.webhook[{i}].secret: {e}"));
        }
    }
    if let Some(s) = alerting.resend_secs
        && !(s.is_finite() && s >= 1.0)
    {
        problems.push(format!(
            "  alerting.resend_secs: must be at least 1, got {s}"
        ));
    }
}

fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_ followed by the base64 of the key")?;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the part after whsec_ is not base64: {e}"))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, as Standard Webhooks signs.
pub fn sign_webhook(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

/// One alert instance as listed and as notified.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub rule: String,
    pub state: State,
    pub severity: String,
    pub model: String,
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// The rule's signal and its last value.
    pub signal: Signal,
    pub value: f64,
    pub threshold: f64,
    pub op: Op,
    pub summary: String,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339, UTC.
    pub active_since: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

struct Instance {
    alert: Alert,
    since: SystemTime,
    resolved: Option<SystemTime>,
    last_sent: Option<SystemTime>,
}

/// (rule, model, version, feature)
type Key = (String, String, String, String);

/// How long a resolved alert stays listed.
const KEEP_RESOLVED: Duration = Duration::from_secs(15 * 60);

/// The rules, their alert instances, and the sinks.
pub struct Alerts {
    rules: Vec<(Rule, Duration)>,
    instances: Mutex<BTreeMap<Key, Instance>>,
    sinks: Sinks,
    resend: Duration,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A value of a feature report for a rule; `None` when the window cannot decide (too few
/// values: insufficient data).
fn feature_value(rule: &Rule, f: &FeatureReport) -> Option<f64> {
    match rule.signal {
        Signal::FeatureDrift => {
            let d = f.drift.as_ref()?;
            match rule.statistic? {
                Statistic::Psi => Some(d.psi),
                Statistic::JensenShannon => Some(d.jensen_shannon),
                Statistic::Chi2PValue => Some(d.chi2.p_value),
                Statistic::Ks => d.ks.map(|k| k.statistic),
                Statistic::Wasserstein => d.wasserstein,
            }
        }
        Signal::Quality => {
            let seen = f.count + f.missing + f.mistyped;
            if seen == 0 {
                return None;
            }
            Some(match rule.issue? {
                Issue::Missing => f.missing_share,
                Issue::OutOfRange => f.out_of_range_share,
                Issue::Unseen => f.unseen_share,
                Issue::Mistyped => f.mistyped as f64 / seen as f64,
            })
        }
        Signal::DriftedShare => None,
    }
}

/// What a notification says happened.
#[derive(Debug, Clone)]
pub struct Notification {
    pub alert: Alert,
}

impl Alerts {
    /// Rules must have passed [`check`].
    pub fn new(rules: Vec<Rule>, alerting: &AlertingConfig) -> Self {
        metrics::describe_counter!(
            NOTIFICATIONS_TOTAL,
            "Alert notifications by sink (webhook, alertmanager) and outcome (delivered, failed after retries, dropped when the queue was full)."
        );
        metrics::describe_gauge!(ALERTS_FIRING, "Alerts firing now, by rule.");
        let rules = rules
            .into_iter()
            .map(|r| {
                let d = humantime::parse_duration(&r.for_).unwrap_or_default();
                (r, d)
            })
            .collect();
        Self {
            rules,
            instances: Mutex::new(BTreeMap::new()),
            sinks: Sinks::new(alerting),
            resend: Duration::from_secs_f64(alerting.resend_secs.unwrap_or(60.0)),
        }
    }

    pub fn rules(&self) -> Vec<Rule> {
        self.rules.iter().map(|(r, _)| r.clone()).collect()
    }

    /// Every alert instance: pending, firing, and resolved in the last 15 minutes; firing first.
    pub fn list(&self) -> Vec<Alert> {
        let mut out: Vec<Alert> = self
            .instances
            .lock()
            .values()
            .map(|i| i.alert.clone())
            .collect();
        out.sort_by_key(|a| match a.state {
            State::Firing => 0,
            State::Pending => 1,
            State::Resolved => 2,
        });
        out
    }

    /// One evaluation over the newest closed window of each monitored version; returns what
    /// must be sent (alerts that fired or resolved, and firing ones due for a re-send to
    /// Alertmanager, flagged by `resend`).
    pub fn evaluate(
        &self,
        now: SystemTime,
        windows: &[(String, String, WindowReport)],
    ) -> Vec<(Notification, bool)> {
        // What holds now: key -> (value, feature).
        let mut seen: BTreeMap<Key, (f64, Option<String>, usize)> = BTreeMap::new();
        // What the windows cannot decide (insufficient data): those alerts keep their state.
        let mut undecided: BTreeSet<Key> = BTreeSet::new();
        // (rule, model, version) whose whole window is insufficient data.
        let mut undecided_windows: BTreeSet<(String, String, String)> = BTreeSet::new();
        for (ri, (rule, _)) in self.rules.iter().enumerate() {
            for (model, version, w) in windows {
                if rule.model.as_ref().is_some_and(|m| m != model)
                    || rule.version.as_ref().is_some_and(|v| v != version)
                {
                    continue;
                }
                if w.insufficient_data {
                    undecided_windows.insert((rule.name.clone(), model.clone(), version.clone()));
                    continue;
                }
                let key = |feature: Option<&str>| {
                    (
                        rule.name.clone(),
                        model.clone(),
                        version.clone(),
                        feature.unwrap_or("").to_string(),
                    )
                };
                let mut consider = |feature: Option<&str>, value: Option<f64>| match value {
                    Some(value) if rule.op.holds(value, rule.threshold) => {
                        seen.insert(key(feature), (value, feature.map(str::to_string), ri));
                    }
                    Some(_) => {}
                    None => {
                        undecided.insert(key(feature));
                    }
                };
                match rule.signal {
                    Signal::DriftedShare => consider(None, w.drifted_share),
                    Signal::FeatureDrift | Signal::Quality => {
                        for f in &w.features {
                            if rule.feature.as_ref().is_some_and(|n| *n != f.name) {
                                continue;
                            }
                            consider(Some(&f.name), feature_value(rule, f));
                        }
                    }
                }
            }
        }
        let is_undecided = |key: &Key| {
            undecided.contains(key)
                || undecided_windows.contains(&(key.0.clone(), key.1.clone(), key.2.clone()))
        };

        let mut out = Vec::new();
        let mut instances = self.instances.lock();
        // Conditions no longer met: pending ends, firing resolves. Undecided: as they were.
        instances.retain(|key, inst| {
            if seen.contains_key(key) || (inst.alert.state != State::Resolved && is_undecided(key))
            {
                return true;
            }
            match inst.alert.state {
                State::Pending => false,
                State::Firing => {
                    inst.alert.state = State::Resolved;
                    inst.resolved = Some(now);
                    inst.alert.resolved_at = Some(rfc3339(now));
                    out.push((
                        Notification {
                            alert: inst.alert.clone(),
                        },
                        false,
                    ));
                    true
                }
                State::Resolved => inst
                    .resolved
                    .is_some_and(|t| now.duration_since(t).unwrap_or_default() < KEEP_RESOLVED),
            }
        });
        for (key, (value, feature, ri)) in seen {
            let (rule, hold) = &self.rules[ri];
            let (model, version) = (key.1.clone(), key.2.clone());
            let inst = instances.entry(key).or_insert_with(|| Instance {
                alert: Alert {
                    rule: rule.name.clone(),
                    state: State::Pending,
                    severity: rule.severity.clone(),
                    model,
                    version,
                    feature: feature.clone(),
                    signal: rule.signal,
                    value,
                    threshold: rule.threshold,
                    op: rule.op,
                    summary: String::new(),
                    labels: rule.labels.clone(),
                    active_since: rfc3339(now),
                    fired_at: None,
                    resolved_at: None,
                },
                since: now,
                resolved: None,
                last_sent: None,
            });
            if inst.alert.state == State::Resolved {
                // Back again: a new episode.
                inst.alert.state = State::Pending;
                inst.since = now;
                inst.resolved = None;
                inst.last_sent = None;
                inst.alert.active_since = rfc3339(now);
                inst.alert.fired_at = None;
                inst.alert.resolved_at = None;
            }
            inst.alert.value = value;
            inst.alert.summary = summary(&inst.alert);
            if inst.alert.state == State::Pending
                && now.duration_since(inst.since).unwrap_or_default() >= *hold
            {
                inst.alert.state = State::Firing;
                inst.alert.fired_at = Some(rfc3339(now));
                inst.last_sent = Some(now);
                out.push((
                    Notification {
                        alert: inst.alert.clone(),
                    },
                    false,
                ));
            } else if inst.alert.state == State::Firing
                && inst
                    .last_sent
                    .is_some_and(|t| now.duration_since(t).unwrap_or_default() >= self.resend)
            {
                inst.last_sent = Some(now);
                out.push((
                    Notification {
                        alert: inst.alert.clone(),
                    },
                    true,
                ));
            }
        }
        let mut firing: BTreeMap<&str, f64> = self
            .rules
            .iter()
            .map(|(r, _)| (r.name.as_str(), 0.0))
            .collect();
        for inst in instances.values() {
            if inst.alert.state == State::Firing
                && let Some(n) = firing.get_mut(inst.alert.rule.as_str())
            {
                *n += 1.0;
            }
        }
        for (rule, n) in firing {
            metrics::gauge!(ALERTS_FIRING, "rule" => rule.to_string()).set(n);
        }
        out
    }

    /// Evaluates every second against `monitor` and hands notifications to the sinks, until
    /// `stop` resolves.
    pub async fn run(
        self: Arc<Self>,
        monitor: Arc<Monitor>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = &mut stop => return,
            }
            let windows = monitor.latest_windows();
            for (n, resend) in self.evaluate(SystemTime::now(), &windows) {
                self.sinks.send(n, resend);
            }
        }
    }
}

fn summary(a: &Alert) -> String {
    let what = match (&a.signal, &a.feature) {
        (Signal::DriftedShare, _) => "drifted feature share".to_string(),
        (_, Some(f)) => format!("feature {f:?}"),
        (_, None) => "value".to_string(),
    };
    let op = match a.op {
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
    };
    format!(
        "{} {}@{}: {what} = {:.4} ({op} {})",
        a.rule, a.model, a.version, a.value, a.threshold
    )
}

/// Where notifications go: a bounded queue drained by one task per delivery (bounded too).
struct Sinks {
    tx: Option<tokio::sync::mpsc::Sender<(Notification, bool)>>,
    config: AlertingConfig,
}

/// Deliveries queued before new ones are dropped (and counted).
const QUEUE: usize = 1024;
/// Attempts per delivery, with backoff 0.5 s, 1 s, 2 s, 4 s between them.
const ATTEMPTS: u32 = 5;

impl Sinks {
    fn new(config: &AlertingConfig) -> Self {
        Self {
            tx: None,
            config: config.clone(),
        }
    }

    fn send(&self, n: Notification, resend: bool) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send((n, resend)).is_err() {
            metrics::counter!(NOTIFICATIONS_TOTAL, "sink" => "queue", "outcome" => "dropped")
                .increment(1);
            tracing::warn!("alert notification queue full; a notification was dropped");
        }
    }
}

impl Alerts {
    /// Starts the delivery task (on the current tokio runtime), owned by `life`'s
    /// [`Stage::Delivery`] with every delivery it starts; without it nothing is sent. When the
    /// stage stops, what is already queued is still sent (one attempt each, no more backoff)
    /// and the task ends.
    pub fn start_delivery(mut self, life: &Lifecycle) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<(Notification, bool)>(QUEUE);
        let delivery = Delivery::new(&self.sinks.config, life.clone());
        life.spawn(Stage::Delivery, delivery.run(rx));
        self.sinks.tx = Some(tx);
        self
    }
}

/// The sinks' addresses and keys, and the lifecycle its deliveries run under.
struct Delivery {
    client: reqwest::Client,
    webhooks: Vec<(String, Vec<u8>)>,
    alertmanagers: Vec<String>,
    in_flight: Arc<tokio::sync::Semaphore>,
    life: Lifecycle,
}

impl Delivery {
    fn new(config: &AlertingConfig, life: Lifecycle) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            webhooks: config
                .webhook
                .iter()
                .filter_map(|w| webhook_key(&w.secret).ok().map(|k| (w.url.clone(), k)))
                .collect(),
            alertmanagers: config.alertmanager.clone(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(64)),
            life,
        }
    }

    /// Takes notifications until the stage stops, then what is left in the queue.
    async fn run(self, mut rx: tokio::sync::mpsc::Receiver<(Notification, bool)>) {
        let stop = self.life.token(Stage::Delivery);
        loop {
            let next = tokio::select! {
                next = rx.recv() => next,
                () = stop.cancelled() => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some((n, resend)) = next else { return };
            self.send(n, resend).await;
        }
    }

    async fn send(&self, n: Notification, resend: bool) {
        let alert = Arc::new(n.alert);
        if !resend {
            for (url, key) in &self.webhooks {
                let body = webhook_body(&alert);
                let (client, url, key) = (self.client.clone(), url.clone(), key.clone());
                let permit = self.in_flight.clone().acquire_owned().await;
                // One id for every attempt: receivers deduplicate retries by it.
                let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                let stop = self.life.token(Stage::Delivery);
                self.life.spawn(Stage::Delivery, async move {
                    let _permit = permit;
                    deliver("webhook", stop, || {
                        let ts = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_secs();
                        let sig = sign_webhook(&key, &id, ts, &body);
                        client
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("webhook-id", &id)
                            .header("webhook-timestamp", ts.to_string())
                            .header("webhook-signature", sig)
                            .body(body.clone())
                    })
                    .await;
                });
            }
        }
        for base in &self.alertmanagers {
            let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
            let body = alertmanager_body(&alert);
            let client = self.client.clone();
            let permit = self.in_flight.clone().acquire_owned().await;
            let stop = self.life.token(Stage::Delivery);
            self.life.spawn(Stage::Delivery, async move {
                let _permit = permit;
                deliver("alertmanager", stop, || {
                    client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                })
                .await;
            });
        }
    }
}

/// Up to [`ATTEMPTS`] tries with backoff; once `stop` fires, no further retry.
async fn deliver(
    sink: &'static str,
    stop: tokio_util::sync::CancellationToken,
    request: impl Fn() -> reqwest::RequestBuilder,
) {
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=ATTEMPTS {
        match request().send().await {
            Ok(r) if r.status().is_success() => {
                metrics::counter!(NOTIFICATIONS_TOTAL, "sink" => sink, "outcome" => "delivered")
                    .increment(1);
                return;
            }
            Ok(r) => {
                tracing::warn!(sink, attempt, status = %r.status(), "alert delivery refused")
            }
            Err(e) => tracing::warn!(sink, attempt, error = %e, "alert delivery failed"),
        }
        if attempt < ATTEMPTS {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => break,
            }
            backoff *= 2;
        }
    }
    metrics::counter!(NOTIFICATIONS_TOTAL, "sink" => sink, "outcome" => "failed").increment(1);
    tracing::error!(sink, "alert notification not delivered; giving up");
}

/// `{"type": "alert.firing" | "alert.resolved", "timestamp", "data": alert}`.
pub fn webhook_body(a: &Alert) -> Vec<u8> {
    let kind = match a.state {
        State::Resolved => "alert.resolved",
        _ => "alert.firing",
    };
    serde_json::to_vec(&serde_json::json!({
        "type": kind,
        "timestamp": rfc3339(SystemTime::now()),
        "data": a,
    }))
    .unwrap_or_default()
}

/// Alertmanager's v2 `postableAlerts`: one alert, labels identifying it, `endsAt` once resolved.
pub fn alertmanager_body(a: &Alert) -> Vec<u8> {
    let mut labels = a.labels.clone();
    labels.insert("alertname".into(), a.rule.clone());
    labels.insert("severity".into(), a.severity.clone());
    labels.insert("model".into(), a.model.clone());
    labels.insert("version".into(), a.version.clone());
    if let Some(f) = &a.feature {
        labels.insert("feature".into(), f.clone());
    }
    let mut alert = serde_json::json!({
        "labels": labels,
        "annotations": {"summary": a.summary, "value": a.value.to_string()},
        "startsAt": a.fired_at.clone().unwrap_or_else(|| a.active_since.clone()),
        "generatorURL": format!("http://ballast/v2/models/{}/versions/{}/monitor", a.model, a.version),
    });
    if let Some(end) = &a.resolved_at {
        alert["endsAt"] = serde_json::Value::String(end.clone());
    }
    serde_json::to_vec(&serde_json::json!([alert])).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn window(share: f64) -> WindowReport {
        WindowReport {
            kind: "rows",
            start: 0.0,
            end: 1.0,
            closed: true,
            requests: 10,
            rows: 400,
            schema_violations: 0,
            insufficient_data: false,
            min_rows: 100,
            drifted_share: Some(share),
            drifted: vec![],
            features: vec![],
        }
    }

    fn rule(for_: &str) -> Rule {
        Rule {
            name: "drift".into(),
            signal: Signal::DriftedShare,
            model: Some("fraud".into()),
            version: None,
            feature: None,
            statistic: None,
            issue: None,
            op: Op::Gt,
            threshold: 0.0,
            for_: for_.into(),
            severity: "critical".into(),
            labels: BTreeMap::from([("owner".to_string(), "risk".to_string())]),
        }
    }

    #[test]
    fn an_alert_is_pending_for_its_duration_then_fires_once_then_resolves() {
        let alerts = Alerts::new(vec![rule("10s")], &AlertingConfig::default());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let drifted = vec![("fraud".to_string(), "1".to_string(), window(0.25))];
        let other = vec![("other".to_string(), "1".to_string(), window(0.5))];
        assert!(alerts.evaluate(at(0), &other).is_empty(), "not its model");
        assert!(alerts.evaluate(at(0), &drifted).is_empty());
        assert_eq!(alerts.list()[0].state, State::Pending);
        assert!(alerts.evaluate(at(5), &drifted).is_empty());
        let fired = alerts.evaluate(at(10), &drifted);
        assert_eq!(fired.len(), 1);
        let (n, resend) = &fired[0];
        assert!(!resend);
        assert_eq!(n.alert.state, State::Firing);
        assert_eq!(
            (n.alert.model.as_str(), n.alert.version.as_str()),
            ("fraud", "1")
        );
        assert_eq!(n.alert.value, 0.25);
        assert!(n.alert.summary.contains("fraud@1"), "{}", n.alert.summary);
        // Still firing: nothing new until Alertmanager's re-send is due (60 s).
        assert!(alerts.evaluate(at(11), &drifted).is_empty());
        let again = alerts.evaluate(at(71), &drifted);
        assert_eq!(again.len(), 1);
        assert!(again[0].1, "a re-send");
        // The window no longer drifts: resolved, once, and still listed.
        let calm = vec![("fraud".to_string(), "1".to_string(), window(0.0))];
        let resolved = alerts.evaluate(at(72), &calm);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].0.alert.state, State::Resolved);
        assert!(resolved[0].0.alert.resolved_at.is_some());
        assert!(alerts.evaluate(at(73), &calm).is_empty());
        assert_eq!(alerts.list()[0].state, State::Resolved);
        // Listed for 15 minutes, then gone.
        assert!(alerts.evaluate(at(73 + 15 * 60), &calm).is_empty());
        assert!(alerts.list().is_empty());
        // A pending alert whose condition goes away never fires.
        assert!(alerts.evaluate(at(2000), &drifted).is_empty());
        assert!(alerts.evaluate(at(2001), &calm).is_empty());
        assert!(alerts.list().is_empty());
    }

    /// A window under `min_rows`, as the monitor reports it when traffic stops.
    fn empty_window() -> WindowReport {
        WindowReport {
            rows: 0,
            requests: 0,
            insufficient_data: true,
            drifted_share: None,
            ..window(0.0)
        }
    }

    #[test]
    fn insufficient_data_neither_resolves_a_firing_alert_nor_fires_a_pending_one() {
        let alerts = Alerts::new(vec![rule("10s")], &AlertingConfig::default());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let fraud = |w: WindowReport| vec![("fraud".to_string(), "1".to_string(), w)];
        // Pending, then windows without enough data: still pending, never fired, past `for`.
        assert!(alerts.evaluate(at(0), &fraud(window(0.5))).is_empty());
        assert!(alerts.evaluate(at(30), &fraud(empty_window())).is_empty());
        assert_eq!(alerts.list()[0].state, State::Pending);
        // The next window with enough data decides: the condition held since 0 s, so it fires.
        let fired = alerts.evaluate(at(31), &fraud(window(0.5)));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].0.alert.state, State::Firing);
        // Traffic stops: empty windows for minutes resolve nothing and send nothing.
        for s in 32..200 {
            assert!(alerts.evaluate(at(s), &fraud(empty_window())).is_empty());
        }
        assert_eq!(alerts.list()[0].state, State::Firing);
        // A window with enough data and no drift resolves it.
        let resolved = alerts.evaluate(at(200), &fraud(window(0.0)));
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].0.alert.state, State::Resolved);
        // And a resolved alert does not come back on insufficient data.
        assert!(alerts.evaluate(at(201), &fraud(empty_window())).is_empty());
        assert_eq!(alerts.list()[0].state, State::Resolved);
    }

    #[test]
    fn for_zero_fires_at_once_and_the_body_carries_the_labels() {
        let alerts = Alerts::new(vec![rule("0s")], &AlertingConfig::default());
        let drifted = vec![("fraud".to_string(), "2".to_string(), window(1.0))];
        let fired = alerts.evaluate(SystemTime::now(), &drifted);
        assert_eq!(fired.len(), 1);
        let body: serde_json::Value =
            serde_json::from_slice(&alertmanager_body(&fired[0].0.alert)).unwrap();
        let labels = &body[0]["labels"];
        assert_eq!(labels["alertname"], "drift");
        assert_eq!(labels["severity"], "critical");
        assert_eq!(labels["owner"], "risk");
        assert_eq!(labels["version"], "2");
        assert!(body[0].get("endsAt").is_none());
        let hook: serde_json::Value =
            serde_json::from_slice(&webhook_body(&fired[0].0.alert)).unwrap();
        assert_eq!(hook["type"], "alert.firing");
        assert_eq!(hook["data"]["model"], "fraud");
    }

    #[test]
    fn webhook_signatures_match_the_standard_webhooks_test_vector() {
        // From the Standard Webhooks specification's libraries' tests.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign_webhook(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_rules_and_sinks_are_named() {
        let mut bad = rule("soon");
        bad.signal = Signal::FeatureDrift;
        let mut dup = rule("1s");
        dup.name = "drift".into();
        dup.issue = Some(Issue::Missing);
        let alerting = AlertingConfig {
            alertmanager: vec!["not a url".into()],
            webhook: vec![WebhookConfig {
                url: "http://127.0.0.1:1/hook".into(),
                secret: "plain".into(),
            }],
            resend_secs: Some(0.0),
        };
        let mut problems = Vec::new();
        check(&[bad, dup], &alerting, &mut problems);
        let text = problems.join("\n");
        for needle in [
            "alert[0].for",
            "alert[0].statistic: required",
            "alert[1].name",
            "alert[1].issue: only for signal quality",
            "alerting.alertmanager[0]",
            "alerting.webhook[0].secret: must start with whsec_",
            "alerting.resend_secs",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
    }
}
