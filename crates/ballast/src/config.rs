//! `serve` settings: embedded defaults < config file (TOML, unknown keys rejected) <
//! `BALLAST_*` environment < command-line flags. Every problem is reported at once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ballast_api::listener::DEFAULT_MAX_CONNECTIONS;
use ballast_api::server::{DEFAULT_DRAIN_GRACE, DEFAULT_MAX_REQUEST_BYTES};
use ballast_serve::overload::DEFAULT_FRONT_DOOR_TARGET;
use figment2::Figment;
use figment2::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::cli::ServeArgs;

/// Loopback by default: exposing a server is a decision, not an accident.
const DEFAULT_HOST: &str = "127.0.0.1";
/// Triton's and KServe's ports, so existing clients and probes work unchanged.
const DEFAULT_HTTP_PORT: u16 = 8000;
const DEFAULT_GRPC_PORT: u16 = 8001;
/// The admin API (registry operations) listens apart from inference traffic.
const DEFAULT_ADMIN_PORT: u16 = 8002;
const DEFAULT_DATA_DIR: &str = "ballast-data";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The file / environment / flag schema. Keys are the flag names with underscores.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    model_repository: Option<PathBuf>,
    strict: bool,
    model_control_mode: String,
    repository_poll_secs: f64,
    host: String,
    http_port: u16,
    grpc_port: u16,
    max_request_bytes: usize,
    drain_grace_secs: f64,
    max_connections: usize,
    front_door_target_ms: f64,
    log_format: LogFormat,
    log_level: String,
    onnxruntime_library: Option<PathBuf>,
    data_dir: PathBuf,
    artifacts: Option<String>,
    admin_port: u16,
    admin_token: Option<String>,
    require_signature: bool,
    trusted_keys: Vec<PathBuf>,
    /// `[monitor]`: live drift and data quality against each version's reference profile.
    monitor: MonitorRaw,
    /// `[[alert]]`: rules on what the monitor measures.
    alert: Vec<ballast_monitor::alerts::Rule>,
    /// `[alerting]`: where alert notifications go.
    alerting: ballast_monitor::alerts::AlertingConfig,
    /// `[prediction_log]`: where and how predictions are recorded.
    prediction_log: PredictionLogRaw,
}

/// The `[prediction_log]` table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PredictionLogRaw {
    enabled: bool,
    /// Where segments go: a directory or an `s3://`, `gs://`, `az://` URL; default
    /// `<data_dir>/logs/segments`. The write-ahead log is always under `<data_dir>/logs/wal`.
    location: Option<String>,
    /// A WAL file becomes Parquet segments after this many seconds ...
    roll_secs: f64,
    /// ... or this many MiB.
    roll_mib: u64,
    /// Queued records at most; a durable model's requests are refused past it.
    max_pending_records: usize,
    /// Durable records are fsynced at most once per this many milliseconds (group commit).
    group_commit_ms: f64,
    /// Segments whose hour ended longer ago than this are deleted (0 keeps them for ever).
    retention_days: f64,
    /// Oldest hours are deleted while the segments take more than this (unset: no bound).
    max_total_gib: Option<f64>,
    /// A finished hour's segments under this size are merged into one (0: no compaction).
    compact_below_mib: u64,
    /// The key of `hash` redaction (HMAC-SHA256); default: `<data_dir>/logs/hash.key`, made
    /// once with 32 random bytes.
    hash_key_file: Option<PathBuf>,
}

impl Default for PredictionLogRaw {
    fn default() -> Self {
        Self {
            enabled: true,
            location: None,
            roll_secs: ballast_capture::log::DEFAULT_ROLL_INTERVAL.as_secs_f64(),
            roll_mib: ballast_capture::log::DEFAULT_ROLL_BYTES >> 20,
            max_pending_records: ballast_capture::log::DEFAULT_MAX_PENDING_RECORDS,
            group_commit_ms: ballast_capture::log::DEFAULT_GROUP_COMMIT_WINDOW.as_secs_f64() * 1e3,
            retention_days: ballast_capture::retention::DEFAULT_MAX_AGE.as_secs_f64() / 86_400.0,
            max_total_gib: None,
            compact_below_mib: ballast_capture::retention::DEFAULT_COMPACT_BELOW >> 20,
            hash_key_file: None,
        }
    }
}

impl PredictionLogRaw {
    fn check(&self, problems: &mut Vec<String>) {
        if !(self.roll_secs.is_finite() && (0.1..=86_400.0).contains(&self.roll_secs)) {
            problems.push(format!(
                "  prediction_log.roll_secs: must be within 0.1..=86400, got {}",
                self.roll_secs
            ));
        }
        if !(1..=4096).contains(&self.roll_mib) {
            problems.push(format!(
                "  prediction_log.roll_mib: must be within 1..=4096, got {}",
                self.roll_mib
            ));
        }
        if !(1..=10_000_000).contains(&self.max_pending_records) {
            problems.push(format!(
                "  prediction_log.max_pending_records: must be within 1..=10000000, got {}",
                self.max_pending_records
            ));
        }
        if !(self.group_commit_ms.is_finite() && (0.0..=100.0).contains(&self.group_commit_ms)) {
            problems.push(format!(
                "  prediction_log.group_commit_ms: must be within 0..=100, got {}",
                self.group_commit_ms
            ));
        }
        if !(self.retention_days.is_finite() && (0.0..=36_500.0).contains(&self.retention_days)) {
            problems.push(format!(
                "  prediction_log.retention_days: must be within 0..=36500 (0 keeps segments for ever), got {}",
                self.retention_days
            ));
        }
        if let Some(g) = self.max_total_gib
            && !(g.is_finite() && g > 0.0)
        {
            problems.push(format!(
                "  prediction_log.max_total_gib: must be a positive number of GiB, got {g}"
            ));
        }
        if let Some(k) = &self.hash_key_file
            && !k.is_file()
        {
            problems.push(format!(
                "  prediction_log.hash_key_file: {} is not a file",
                k.display()
            ));
        }
    }
}

/// Where and how the server records predictions (`None` in [`ServeSettings`] when off).
#[derive(Debug, Clone)]
pub struct PredictionLogSettings {
    /// Segments: a directory or an object-store URL.
    pub location: String,
    pub options: ballast_capture::LogOptions,
    pub hash_key_file: Option<PathBuf>,
}

/// The `[monitor]` table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct MonitorRaw {
    enabled: bool,
    window_secs: f64,
    window_rows: u64,
    min_rows: u64,
    alpha: f64,
    min_distance: f64,
    history: usize,
}

impl Default for MonitorRaw {
    fn default() -> Self {
        let o = ballast_monitor::WindowOptions::default();
        Self {
            enabled: true,
            window_secs: o.window.as_secs_f64(),
            window_rows: o.rows,
            min_rows: o.min_rows,
            alpha: o.alpha,
            min_distance: o.min_distance,
            history: o.history,
        }
    }
}

impl MonitorRaw {
    fn check(&self, problems: &mut Vec<String>) {
        if !(self.window_secs.is_finite() && (1.0..=86_400.0).contains(&self.window_secs)) {
            problems.push(format!(
                "  monitor.window_secs: must be within 1..=86400, got {}",
                self.window_secs
            ));
        }
        if self.window_rows == 0 {
            problems.push("  monitor.window_rows: must be at least 1".to_string());
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            problems.push(format!(
                "  monitor.alpha: must be within (0, 1), got {}",
                self.alpha
            ));
        }
        if !((0.0..=1.0).contains(&self.min_distance)) {
            problems.push(format!(
                "  monitor.min_distance: must be within 0..=1 (a Jensen-Shannon distance), got {}",
                self.min_distance
            ));
        }
        if self.history == 0 || self.history > 10_000 {
            problems.push(format!(
                "  monitor.history: must be within 1..=10000, got {}",
                self.history
            ));
        }
    }
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            model_repository: None,
            strict: false,
            model_control_mode: "none".into(),
            repository_poll_secs: 5.0,
            host: DEFAULT_HOST.into(),
            http_port: DEFAULT_HTTP_PORT,
            grpc_port: DEFAULT_GRPC_PORT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_grace_secs: DEFAULT_DRAIN_GRACE.as_secs_f64(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            front_door_target_ms: DEFAULT_FRONT_DOOR_TARGET.as_secs_f64() * 1e3,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            onnxruntime_library: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            artifacts: None,
            admin_port: DEFAULT_ADMIN_PORT,
            admin_token: None,
            require_signature: false,
            trusted_keys: Vec::new(),
            monitor: MonitorRaw::default(),
            alert: Vec::new(),
            alerting: ballast_monitor::alerts::AlertingConfig::default(),
            prediction_log: PredictionLogRaw::default(),
        }
    }
}

/// Flags that were given, as a figment layer.
#[derive(Serialize)]
struct Flags<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model_repository: &'a Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: &'a Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_control_mode: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository_poll_secs: &'a Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_port: &'a Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grpc_port: &'a Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_request_bytes: &'a Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_grace_secs: &'a Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: &'a Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    front_door_target_ms: &'a Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: &'a Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    onnxruntime_library: &'a Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: &'a Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifacts: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_port: &'a Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_token: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    require_signature: &'a Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_keys: &'a Vec<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    monitor: Option<MonitorFlags>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prediction_log: Option<MonitorFlags>,
}

/// `--no-monitor` (or `--no-prediction-log`), as a layer over its table.
#[derive(Serialize)]
struct MonitorFlags {
    enabled: bool,
}

const ENV_KEYS: &[&str] = &[
    "model_repository",
    "strict",
    "model_control_mode",
    "repository_poll_secs",
    "host",
    "http_port",
    "grpc_port",
    "max_request_bytes",
    "drain_grace_secs",
    "max_connections",
    "front_door_target_ms",
    "log_format",
    "log_level",
    "onnxruntime_library",
    "data_dir",
    "artifacts",
    "admin_port",
    "admin_token",
    "require_signature",
];

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub max_request_bytes: usize,
    pub drain_grace: Duration,
    pub max_connections: usize,
    pub front_door_target: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The ONNX Runtime shared library; `None` searches the well-known places.
    pub onnxruntime_library: Option<PathBuf>,
    /// Serve this read-only repository; `None` serves from the registry.
    pub model_repository: Option<PathBuf>,
    /// A model that fails to load stops the server (else it is served as not ready).
    pub strict: bool,
    /// How repository changes reach the running server.
    pub model_control_mode: ballast_serve::watch::ControlMode,
    pub repository_poll: Duration,
    pub data_dir: PathBuf,
    pub artifacts: Option<String>,
    pub admin_addr: SocketAddr,
    pub admin_token: Option<String>,
    pub require_signature: bool,
    pub trusted_keys: Vec<PathBuf>,
    /// `None` when monitoring is off.
    pub monitor: Option<ballast_monitor::WindowOptions>,
    pub alert_rules: Vec<ballast_monitor::alerts::Rule>,
    pub alerting: ballast_monitor::alerts::AlertingConfig,
    /// `None` when prediction logging is off.
    pub prediction_log: Option<PredictionLogSettings>,
}

impl ServeSettings {
    /// Merges every layer; `Err` carries every problem found, one per line.
    pub fn resolve(args: &ServeArgs) -> Result<Self, String> {
        let mut figment = Figment::from(Serialized::defaults(Raw::default()));
        if let Some(path) = &args.config {
            if !path.is_file() {
                return Err(format!("  config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::prefixed("BALLAST_").only(ENV_KEYS))
            .merge(Serialized::defaults(Flags {
                model_repository: &args.model_repository,
                strict: &args.strict,
                model_control_mode: &args.model_control_mode,
                repository_poll_secs: &args.repository_poll_secs,
                host: &args.host,
                http_port: &args.http_port,
                grpc_port: &args.grpc_port,
                max_request_bytes: &args.max_request_bytes,
                drain_grace_secs: &args.drain_grace_secs,
                max_connections: &args.max_connections,
                front_door_target_ms: &args.front_door_target_ms,
                log_format: &args.log_format,
                log_level: &args.log_level,
                onnxruntime_library: &args.onnxruntime_library,
                data_dir: &args.data_dir,
                artifacts: &args.artifacts,
                admin_port: &args.admin_port,
                admin_token: &args.admin_token,
                require_signature: &args.require_signature,
                trusted_keys: &args.trusted_keys,
                monitor: args.no_monitor.then_some(MonitorFlags { enabled: false }),
                prediction_log: args
                    .no_prediction_log
                    .then_some(MonitorFlags { enabled: false }),
            }));
        let raw: Raw = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let mut problems = Vec::new();
        let host: Option<IpAddr> = match raw.host.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                problems.push(format!(
                    "  host: expected an IP address such as 127.0.0.1 or 0.0.0.0, got {:?}",
                    raw.host
                ));
                None
            }
        };
        let model_repository = match raw.model_repository {
            Some(p) if p.is_dir() => Some(p),
            Some(p) => {
                problems.push(format!(
                    "  model_repository: {} is not a directory",
                    p.display()
                ));
                None
            }
            None => None,
        };
        let model_control_mode = match raw.model_control_mode.parse() {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("  {e}"));
                ballast_serve::watch::ControlMode::None
            }
        };
        if !(raw.repository_poll_secs.is_finite()
            && (0.1..=3600.0).contains(&raw.repository_poll_secs))
        {
            problems.push(format!(
                "  repository_poll_secs: must be within 0.1..=3600, got {}",
                raw.repository_poll_secs
            ));
        }
        for key in &raw.trusted_keys {
            if !key.is_file() {
                problems.push(format!("  trusted_keys: {} is not a file", key.display()));
            }
        }
        if raw.require_signature && raw.trusted_keys.is_empty() {
            problems.push(
                "  require_signature: needs at least one trusted key (--trusted-key FILE)"
                    .to_string(),
            );
        }
        if raw.admin_token.as_deref().is_some_and(|t| t.len() < 16) {
            problems.push("  admin_token: must be at least 16 characters".to_string());
        }
        if raw.admin_port != 0
            && (raw.admin_port == raw.http_port || raw.admin_port == raw.grpc_port)
        {
            problems.push(format!(
                "  admin_port {} collides with the HTTP or gRPC port",
                raw.admin_port
            ));
        }
        raw.monitor.check(&mut problems);
        raw.prediction_log.check(&mut problems);
        ballast_monitor::alerts::check(&raw.alert, &raw.alerting, &mut problems);
        if !raw.alert.is_empty() && !raw.monitor.enabled {
            problems.push(
                "  alert: rules read the monitor's windows, and monitoring is off ([monitor] enabled = false or --no-monitor)"
                    .to_string(),
            );
        }
        if raw.max_request_bytes < 1024 {
            problems.push(format!(
                "  max_request_bytes: must be at least 1024, got {}",
                raw.max_request_bytes
            ));
        }
        if !(raw.drain_grace_secs.is_finite() && (0.0..=3600.0).contains(&raw.drain_grace_secs)) {
            problems.push(format!(
                "  drain_grace_secs: must be within 0..=3600, got {}",
                raw.drain_grace_secs
            ));
        }
        if raw.max_connections == 0 {
            problems.push("  max_connections: must be at least 1".to_string());
        }
        if !(raw.front_door_target_ms.is_finite()
            && (0.0..=60_000.0).contains(&raw.front_door_target_ms))
        {
            problems.push(format!(
                "  front_door_target_ms: must be within 0..=60000 (0 turns the front door off), got {}",
                raw.front_door_target_ms
            ));
        }
        if let Some(lib) = &raw.onnxruntime_library
            && !lib.is_file()
        {
            problems.push(format!(
                "  onnxruntime_library: {} is not a file",
                lib.display()
            ));
        }
        if raw.http_port != 0 && raw.http_port == raw.grpc_port {
            problems.push(format!(
                "  http_port and grpc_port are both {}",
                raw.http_port
            ));
        }
        match host {
            Some(host) if problems.is_empty() => Ok(Self {
                model_repository,
                strict: raw.strict,
                model_control_mode,
                repository_poll: Duration::from_secs_f64(
                    raw.repository_poll_secs.clamp(0.1, 3600.0),
                ),
                artifacts: raw.artifacts,
                admin_addr: SocketAddr::new(host, raw.admin_port),
                admin_token: raw.admin_token,
                require_signature: raw.require_signature,
                trusted_keys: raw.trusted_keys,
                http_addr: SocketAddr::new(host, raw.http_port),
                grpc_addr: SocketAddr::new(host, raw.grpc_port),
                max_request_bytes: raw.max_request_bytes,
                drain_grace: Duration::from_secs_f64(raw.drain_grace_secs),
                max_connections: raw.max_connections,
                front_door_target: Duration::from_secs_f64(raw.front_door_target_ms / 1e3),
                log_format: raw.log_format,
                log_level: raw.log_level,
                onnxruntime_library: raw.onnxruntime_library,
                monitor: raw.monitor.enabled.then(|| ballast_monitor::WindowOptions {
                    window: Duration::from_secs_f64(raw.monitor.window_secs),
                    rows: raw.monitor.window_rows,
                    min_rows: raw.monitor.min_rows,
                    alpha: raw.monitor.alpha,
                    min_distance: raw.monitor.min_distance,
                    history: raw.monitor.history,
                }),
                alert_rules: raw.alert,
                alerting: raw.alerting,
                prediction_log: raw.prediction_log.enabled.then(|| {
                    let logs = raw.data_dir.join("logs");
                    let mut options = ballast_capture::LogOptions::new(&logs);
                    options.roll_interval = Duration::from_secs_f64(raw.prediction_log.roll_secs);
                    options.roll_bytes = raw.prediction_log.roll_mib << 20;
                    options.max_pending_records = raw.prediction_log.max_pending_records;
                    options.group_commit_window = Duration::from_secs_f64(
                        raw.prediction_log.group_commit_ms.clamp(0.0, 100.0) / 1e3,
                    );
                    let days = raw.prediction_log.retention_days;
                    options.retention = ballast_capture::retention::Retention {
                        max_age: (days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0)),
                        max_bytes: raw
                            .prediction_log
                            .max_total_gib
                            .map(|g| (g * (1u64 << 30) as f64) as u64),
                        compact_below: raw.prediction_log.compact_below_mib << 20,
                        ..ballast_capture::retention::Retention::default()
                    };
                    PredictionLogSettings {
                        location: raw
                            .prediction_log
                            .location
                            .clone()
                            .unwrap_or_else(|| logs.join("segments").display().to_string()),
                        options,
                        hash_key_file: raw.prediction_log.hash_key_file.clone(),
                    }
                }),
                data_dir: raw.data_dir,
            }),
            _ => Err(problems.join("\n")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::CommandFactory;

    use super::Raw;
    use crate::cli::Cli;

    /// `serve --help` states every setting's real default: each flag whose setting has a
    /// default says `[default: X]`, and X is the value `Raw::default()` holds (the README's
    /// `--admin-port` 8002 and `--data-dir` ./ballast-data were missing from the help).
    #[test]
    fn serve_help_states_the_real_default_of_every_setting() {
        let defaults = serde_json::to_value(Raw::default()).unwrap();
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let mut problems = Vec::new();
        let mut checked = 0;
        for arg in serve.get_arguments() {
            let key = arg.get_id().as_str();
            let want = match defaults.get(key) {
                Some(v @ (serde_json::Value::Bool(_) | serde_json::Value::Number(_))) => v.clone(),
                Some(serde_json::Value::String(s)) => serde_json::Value::String(s.clone()),
                _ => continue, // no default (optional path, token) or not a scalar
            };
            checked += 1;
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let Some(said) = help
                .split_once("[default: ")
                .map(|(_, rest)| rest.split([']', ';', ',']).next().unwrap_or("").trim())
            else {
                problems.push(format!("--{key}: no [default: …] in {help:?}"));
                continue;
            };
            let same = match &want {
                serde_json::Value::Number(n) => said.parse::<f64>().ok() == n.as_f64(),
                serde_json::Value::Bool(b) => said == b.to_string(),
                serde_json::Value::String(s) => said == s,
                _ => false,
            };
            if !same {
                problems.push(format!("--{key}: help says {said}, the default is {want}"));
            }
        }
        assert!(checked >= 15, "only {checked} settings checked");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}
