//! `serve` settings: embedded defaults < config file (TOML, unknown keys rejected) <
//! `BALLAST_*` environment < command-line flags. Every problem is reported at once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ballast_api::server::{DEFAULT_DRAIN_GRACE, DEFAULT_MAX_REQUEST_BYTES};
use figment2::Figment;
use figment2::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::cli::ServeArgs;

/// Loopback by default: exposing a server is a decision, not an accident.
const DEFAULT_HOST: &str = "127.0.0.1";
/// Triton's and KServe's ports, so existing clients and probes work unchanged.
const DEFAULT_HTTP_PORT: u16 = 8000;
const DEFAULT_GRPC_PORT: u16 = 8001;

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
    host: String,
    http_port: u16,
    grpc_port: u16,
    max_request_bytes: usize,
    drain_grace_secs: f64,
    log_format: LogFormat,
    log_level: String,
    onnxruntime_library: Option<PathBuf>,
}

impl Default for Raw {
    fn default() -> Self {
        Self {
            model_repository: None,
            host: DEFAULT_HOST.into(),
            http_port: DEFAULT_HTTP_PORT,
            grpc_port: DEFAULT_GRPC_PORT,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            drain_grace_secs: DEFAULT_DRAIN_GRACE.as_secs_f64(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            onnxruntime_library: None,
        }
    }
}

/// Flags that were given, as a figment layer.
#[derive(Serialize)]
struct Flags<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model_repository: &'a Option<PathBuf>,
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
    log_format: &'a Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    onnxruntime_library: &'a Option<PathBuf>,
}

const ENV_KEYS: &[&str] = &[
    "model_repository",
    "host",
    "http_port",
    "grpc_port",
    "max_request_bytes",
    "drain_grace_secs",
    "log_format",
    "log_level",
    "onnxruntime_library",
];

#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub model_repository: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub max_request_bytes: usize,
    pub drain_grace: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The ONNX Runtime shared library; `None` searches the well-known places.
    pub onnxruntime_library: Option<PathBuf>,
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
                host: &args.host,
                http_port: &args.http_port,
                grpc_port: &args.grpc_port,
                max_request_bytes: &args.max_request_bytes,
                drain_grace_secs: &args.drain_grace_secs,
                log_format: &args.log_format,
                log_level: &args.log_level,
                onnxruntime_library: &args.onnxruntime_library,
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
            None => {
                problems.push("  model_repository: required (--model-repository DIR or BALLAST_MODEL_REPOSITORY)".to_string());
                None
            }
        };
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
        match (host, model_repository) {
            (Some(host), Some(model_repository)) if problems.is_empty() => Ok(Self {
                model_repository,
                http_addr: SocketAddr::new(host, raw.http_port),
                grpc_addr: SocketAddr::new(host, raw.grpc_port),
                max_request_bytes: raw.max_request_bytes,
                drain_grace: Duration::from_secs_f64(raw.drain_grace_secs),
                log_format: raw.log_format,
                log_level: raw.log_level,
                onnxruntime_library: raw.onnxruntime_library,
            }),
            _ => Err(problems.join("\n")),
        }
    }
}
