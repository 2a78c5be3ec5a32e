//! The command line. Every `serve` flag can also come from a `BALLAST_*` environment variable
//! or the config file (see `config`); flags win.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;
use crate::registry_cli::{
    ApplyArgs, EventsArgs, ModelCommand, PolicyCommand, RegistryArgs, RolloutCommand,
};

#[derive(Parser, Debug)]
#[command(name = "ballast", version, about = "Serve ML models under real load.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve every model in a model repository over HTTP and gRPC (Open Inference Protocol v2).
    Serve(ServeArgs),
    /// Serve the bundled example models and drive realistic traffic at them.
    Demo(DemoArgs),
    /// Load generator: open or closed loop over HTTP or gRPC, HDR percentiles.
    Bench(BenchArgs),
    /// The model registry: push, list, show, diff, import, promote, rollback, sign, verify.
    Model(ModelArgs),
    /// Automated rollouts: start, status, cancel.
    Rollout(RolloutArgs),
    /// Traffic policies: canary (weighted or sticky) and shadow.
    Policy(PolicyArgs),
    /// The event log: promotions, rollout steps, rollbacks and their reasons.
    Events(EventsCmd),
    /// Make the registry match a declaration file (models, versions, aliases, traffic).
    Apply(ApplyCmd),
    /// Show what `apply` would change, changing nothing; exits 2 when changes are pending.
    Diff(ApplyCmd),
    /// Profile reference data (CSV with a header row): per column, quantile bins and their
    /// frequencies (numeric) or category frequencies, missing rate, min and max, as JSON.
    Profile(ProfileArgs),
    /// The alerts of a running server: firing, pending and recently resolved.
    Alerts(AlertsArgs),
    /// Prediction logs: query what was served.
    Logs(LogsArgs),
    /// Score Parquet or CSV files with a registered model into Parquet parts, resumably:
    /// killed and run again with the same arguments, it skips the parts already written.
    Batch(BatchArgs),
    /// Offline data drift of a current file against a reference (CSV or Parquet): per feature
    /// KS, Wasserstein, PSI, Jensen–Shannon (numeric) or chi-square (categorical), equal to
    /// scipy, and a verdict. Exits 0 whatever the verdict, 64 on unusable input.
    Drift(DriftArgs),
}

#[derive(Args, Debug)]
pub struct BatchArgs {
    /// The model: NAME (its production alias), NAME@VERSION or NAME@ALIAS.
    #[arg(long)]
    pub model: String,
    /// Input files: a path or a glob such as 'data/*.parquet' (quoted, expanded by ballast);
    /// Parquet (.parquet) or CSV with a header row (.csv); repeatable.
    #[arg(long, required = true)]
    pub input: Vec<String>,
    /// Output directory: part-FFFFF-PPPPPP.parquet per input row group (CSV: per chunk) and
    /// _checkpoint.json; new or empty, or the directory of an interrupted run to resume.
    #[arg(long)]
    pub output: PathBuf,
    /// Registry data directory, as for `ballast serve`.
    #[arg(long, env = "BALLAST_DATA_DIR", default_value = "ballast-data")]
    pub data_dir: PathBuf,
    /// Artifact store: a directory or s3://, gs://, az:// URL (default DATA_DIR/artifacts).
    #[arg(long, env = "BALLAST_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Columns whose values make each row of a one-input model, in order (comma separated)
    /// [default: columns named <input>[i], else every numeric column but a label, in file order].
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Rows per engine call (capped by the model's max_request_rows).
    #[arg(long, default_value_t = 1024)]
    pub batch_size: usize,
    /// Rows per part of a CSV input (a Parquet input's parts are its row groups).
    #[arg(long, default_value_t = 65_536)]
    pub csv_chunk_rows: usize,
    /// No progress bar (it is also hidden when standard error is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// ONNX Runtime shared library (libonnxruntime.so.*), as for `ballast serve`.
    #[arg(long, env = "BALLAST_ONNXRUNTIME_LIBRARY")]
    pub onnxruntime_library: Option<PathBuf>,
    /// Benchmarking: also time the engine alone over the same input tensors, before and after
    /// the run, and report the ratio (bench/batch_scoring.sh).
    #[arg(long, hide = true)]
    pub compare_engine: bool,
}

#[derive(Args, Debug)]
pub struct DriftArgs {
    /// The reference data: CSV with a header row, or Parquet.
    #[arg(long)]
    pub reference: PathBuf,
    /// The data to compare with the reference: CSV or Parquet, with every reference column.
    #[arg(long)]
    pub current: PathBuf,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (summary, verdicts, distributions) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Columns to test as categories even when their values are numbers (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(subcommand)]
    pub command: LogsCommand,
}

#[derive(Subcommand, Debug)]
pub enum LogsCommand {
    /// Records of one model, oldest first: a table, or one JSON object per line (--json).
    Query(LogsQueryArgs),
}

#[derive(Args, Debug)]
pub struct LogsQueryArgs {
    /// The server's data directory (its logs are in DIR/logs) [default: ./ballast-data].
    #[arg(long, env = "BALLAST_DATA_DIR", default_value = "ballast-data")]
    pub data_dir: PathBuf,
    /// Where the segments are when not in DIR/logs/segments: a directory or s3://, gs://,
    /// az:// URL.
    #[arg(long)]
    pub location: Option<String>,
    /// The model.
    #[arg(long)]
    pub model: String,
    /// Only this version.
    #[arg(long)]
    pub version: Option<String>,
    /// From this time: RFC 3339 (2026-12-06T04:00:00Z) or a duration before now (15m, 2h).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this time (same forms as --from).
    #[arg(long)]
    pub to: Option<String>,
    /// Only the request with this id.
    #[arg(long)]
    pub id: Option<String>,
    /// A condition 'column op value' (op: = != < <= > >= ~ contains); columns such as status,
    /// code, total_us, or inputs.NAME / outputs.NAME (any value); repeatable, all must hold.
    #[arg(long = "where")]
    pub filters: Vec<String>,
    /// At most this many records.
    #[arg(long)]
    pub limit: Option<usize>,
    /// One JSON object per line (id, model, version, time, status, inputs, outputs, ...).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AlertsArgs {
    /// The server's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000", env = "BALLAST_URL")]
    pub url: String,
    /// Print the server's JSON (alerts and rules) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// The reference data: a CSV file whose first line names the columns.
    pub data: PathBuf,
    /// Write the profile here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Quantile bins per numeric column.
    #[arg(long, default_value_t = 10)]
    pub bins: usize,
    /// Categories kept by name per categorical column; the rest are counted as `other`.
    #[arg(long, default_value_t = 100)]
    pub max_categories: usize,
    /// Columns to profile as categories even when their values are numbers (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(subcommand)]
    pub command: RolloutCommand,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Args, Debug)]
pub struct EventsCmd {
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub args: EventsArgs,
}

#[derive(Args, Debug)]
pub struct ApplyCmd {
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub args: ApplyArgs,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Configuration file (TOML); env BALLAST_CONFIG.
    #[arg(long, env = "BALLAST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Turn off live drift monitoring (`[monitor] enabled = false`).
    #[arg(long)]
    pub no_monitor: bool,
    /// Turn off prediction logging for every model (`[prediction_log] enabled = false`).
    #[arg(long)]
    pub no_prediction_log: bool,
    /// Serve a read-only model repository: DIR/<model>/<version>/model.{onnx,json,txt}
    /// [+ DIR/<model>/config.toml]. Without it, serve from the registry in --data-dir.
    #[arg(long)]
    pub model_repository: Option<PathBuf>,
    /// Exit when any model in --model-repository fails to load (Triton's --exit-on-error);
    /// by default the others are served and the failed one reports not ready with its reason
    /// [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub strict: Option<bool>,
    /// How --model-repository changes reach a running server (Triton's modes): none (reload
    /// on SIGHUP only), poll (rescan every --repository-poll-secs), explicit (POST
    /// /v2/repository/models/{m}/load|unload) [default: none].
    #[arg(long)]
    pub model_control_mode: Option<String>,
    /// Seconds between rescans in poll mode [default: 5].
    #[arg(long)]
    pub repository_poll_secs: Option<f64>,
    /// Registry data directory (metadata database, artifacts, cache); env BALLAST_DATA_DIR
    /// [default: ballast-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Artifact store: a directory or s3://, gs://, az:// URL; env BALLAST_ARTIFACTS.
    #[arg(long)]
    pub artifacts: Option<String>,
    /// Admin API port (registry mode); 0 picks a free port [default: 8002].
    #[arg(long)]
    pub admin_port: Option<u16>,
    /// Bearer token the admin API requires; env BALLAST_ADMIN_TOKEN.
    #[arg(long)]
    pub admin_token: Option<String>,
    /// Refuse to serve versions without a valid signature from a trusted key (--trusted-key)
    /// [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub require_signature: Option<bool>,
    /// Trusted ed25519 public key (PEM); repeatable.
    #[arg(long = "trusted-key")]
    pub trusted_keys: Vec<PathBuf>,
    /// Address both listeners bind to [default: 127.0.0.1; 0.0.0.0 for every interface].
    #[arg(long)]
    pub host: Option<String>,
    /// HTTP port (Open Inference Protocol REST, /metrics, health); 0 picks a free port
    /// [default: 8000].
    #[arg(long)]
    pub http_port: Option<u16>,
    /// gRPC port (Open Inference Protocol / Triton GRPCInferenceService); 0 picks a free port
    /// [default: 8001].
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Largest request body / gRPC message in bytes [default: 33554432, 32 MiB].
    #[arg(long)]
    pub max_request_bytes: Option<usize>,
    /// Seconds to let in-flight requests finish after SIGTERM [default: 30].
    #[arg(long)]
    pub drain_grace_secs: Option<f64>,
    /// Open connections per listener (HTTP, gRPC); more wait in the accept backlog [default: 2048].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Event-loop lag (ms) past which default-priority requests are refused at the door before
    /// they are routed (sheddable at half, critical at 4x); 0 turns it off [default: 10].
    #[arg(long)]
    pub front_door_target_ms: Option<f64>,
    /// Log lines as human text or one JSON object per line [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Default log filter when RUST_LOG is unset (e.g. info, debug, ballast_serve=debug)
    /// [default: info].
    #[arg(long)]
    pub log_level: Option<String>,
    /// ONNX Runtime shared library (libonnxruntime.so.*); default: ORT_DYLIB_PATH, then an
    /// installed onnxruntime Python wheel and the system library directories.
    #[arg(long)]
    pub onnxruntime_library: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seconds of each traffic phase.
    #[arg(long, default_value_t = 8.0)]
    pub phase_secs: f64,
    /// Exit after the traffic phases instead of serving until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
    /// Let the server and the demo's load generator share every core. By default, with two or
    /// more cores, the server is pinned to the first and the generator to the second, so the
    /// generator does not take CPU from the server it measures.
    #[arg(long)]
    pub shared_cores: bool,
    /// HTTP port of the demo's server.
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,
    /// gRPC port of the demo's server.
    #[arg(long, default_value_t = 8001)]
    pub grpc_port: u16,
    /// Log lines as human text or one JSON object per line.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Server HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub http_url: String,
    /// Server gRPC URL.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    pub grpc_url: String,
    /// The model to send requests to.
    #[arg(long)]
    pub model: String,
    /// A version or alias of the model (default: its traffic policy decides).
    #[arg(long)]
    pub model_version: Option<String>,
    /// HTTP (binary tensors unless --json-tensors) or gRPC.
    #[arg(long, value_enum, default_value_t = crate::bench::ProtocolArg::Http)]
    pub protocol: crate::bench::ProtocolArg,
    /// Open loop: requests per second (latency from the intended send time).
    #[arg(long, conflicts_with = "concurrency")]
    pub rate: Option<f64>,
    /// Closed loop: concurrent clients (default 16 when --rate is not given).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds sent but not measured, before the measured part.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Rows per request.
    #[arg(long, default_value_t = 1)]
    pub rows: usize,
    /// Use JSON tensors over HTTP instead of the binary tensor extension.
    #[arg(long)]
    pub json_tensors: bool,
    /// Client timeout per request, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// gRPC channels.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Instead of a server: time the engine in-process on this model repository.
    #[arg(long)]
    pub in_process: Option<PathBuf>,
    /// Batch sizes for --in-process (comma separated).
    #[arg(long, default_value = "1,64")]
    pub batch_sizes: String,
    /// With --in-process: compare these engines (comma separated: tract, onnxruntime, trees,
    /// onnx-ml) on every model file of the version that they can run, timed in interleaved
    /// rounds, with ratios against ONNX Runtime. Default: the engine `serve` would pick.
    #[arg(long)]
    pub engines: Option<String>,
    /// With --in-process: the ONNX Runtime shared library (default: searched for as `serve`
    /// does: ORT_DYLIB_PATH, virtualenvs, pip's user site, system paths).
    #[arg(long, env = "BALLAST_ONNXRUNTIME_LIBRARY")]
    pub onnxruntime_library: Option<PathBuf>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    /// A flag that takes `true` / `false` (rather than a bare switch) must also accept being
    /// given bare, meaning true, as `--strict` always did: `--require-signature --trusted-key
    /// K.pub.pem` used to fail with "a value is required".
    #[test]
    fn every_boolean_flag_is_true_when_given_bare() {
        fn walk(cmd: &clap::Command, path: &str, found: &mut usize, wrong: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let values: Vec<String> = arg
                    .get_possible_values()
                    .iter()
                    .map(|v| v.get_name().to_string())
                    .collect();
                let takes_bool = arg.get_action().takes_values() && values == ["true", "false"];
                if !takes_bool {
                    continue;
                }
                *found += 1;
                // Parsed on its own, given bare, the flag must mean true.
                let id = arg.get_id().clone();
                let alone = clap::Command::new("t").arg(arg.clone().required(false));
                let long = format!("--{}", arg.get_long().unwrap_or_default());
                let bare_ok = alone
                    .try_get_matches_from(["t", long.as_str()])
                    .is_ok_and(|m| m.get_one::<bool>(id.as_str()) == Some(&true));
                if !bare_ok {
                    wrong.push(format!("{path} --{}", arg.get_long().unwrap_or("?")));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), found, wrong);
            }
        }
        let (mut found, mut wrong) = (0, Vec::new());
        walk(&Cli::command(), "ballast", &mut found, &mut wrong);
        assert!(found >= 2, "the walk found {found} boolean flags");
        assert!(
            wrong.is_empty(),
            "boolean flags that need a value:\n{}",
            wrong.join("\n")
        );

        let serve = |args: &[&str]| {
            let argv = ["ballast", "serve"].iter().chain(args);
            match Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}")) {
                Cli {
                    command: Command::Serve(s),
                } => (s.strict, s.require_signature),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            serve(&["--require-signature", "--trusted-key", "K.pub.pem"]),
            (None, Some(true))
        );
        assert_eq!(
            serve(&["--strict", "--require-signature"]),
            (Some(true), Some(true))
        );
        assert_eq!(
            serve(&["--strict=false", "--require-signature=false"]),
            (Some(false), Some(false))
        );
        assert_eq!(
            serve(&["--require-signature", "true", "--strict", "false"]),
            (Some(false), Some(true))
        );
        assert_eq!(serve(&[]), (None, None));
    }

    /// Every flag and argument of every command says what it is for in `--help`.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "ballast", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without help text:\n{}",
            missing.join("\n")
        );
    }
}
