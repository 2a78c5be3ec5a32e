//! `ballast model …`, `ballast events`, `ballast rollout …`, `ballast policy …`,
//! `ballast apply` / `ballast diff`: the registry from the command line. Each command opens the
//! registry in `--data-dir` (the same SQLite file a running `ballast serve` polls, so changes
//! reach it within its poll interval) and prints a table, or JSON with `--json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ballast_core::traffic::{Canary, Shadow};
use ballast_core::{RolloutPlan, TrafficPolicy};
use ballast_registry::apply::{self, Desired};
use ballast_registry::signing::{self, SignaturePolicy};
use ballast_registry::store::{EventFilter, ModelCard, RolloutRecord};
use ballast_registry::{PRODUCTION, PushRequest, Registry, RegistryOptions, VersionRef};
use clap::{Args, Subcommand};

/// Where the registry lives; shared by every registry command and `serve`.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Registry data directory (metadata database, artifacts, cache).
    #[arg(
        long,
        env = "BALLAST_DATA_DIR",
        default_value = "ballast-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Artifact store: a directory or s3://, gs://, az:// URL (default DATA_DIR/artifacts).
    #[arg(long, env = "BALLAST_ARTIFACTS", global = true)]
    pub artifacts: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is acting, recorded as the creator of pushed versions and in the event log
    /// [default: the OS user].
    #[arg(long, env = "BALLAST_ACTOR", global = true)]
    pub actor: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Store a model directory (or file) as the model's next immutable version.
    Push(PushArgs),
    /// Every model with its versions and aliases.
    List,
    /// One model (NAME), or one version (NAME@VERSION, NAME@ALIAS).
    Show {
        /// NAME, NAME@VERSION or NAME@ALIAS.
        spec: String,
    },
    /// What differs between two versions: NAME@A NAME@B.
    Diff {
        /// The first version: NAME@VERSION or NAME@ALIAS.
        a: String,
        /// The second version, compared with the first.
        b: String,
    },
    /// Take in a Triton-style repository: DIR/<model>/<version>/... (+ config.toml, card.json).
    Import(ImportArgs),
    /// Point an alias (default production) at a version: NAME@VERSION.
    Promote {
        /// The version to point the alias at: NAME@VERSION.
        spec: String,
        /// The alias to move.
        #[arg(long, default_value = PRODUCTION)]
        to: String,
        /// Why, for the event log.
        #[arg(long, default_value = "promoted from the command line")]
        reason: String,
    },
    /// Return an alias (default production) to the version it pointed at before.
    Rollback {
        /// The model.
        name: String,
        /// The alias to return to its previous version.
        #[arg(long, default_value = PRODUCTION)]
        alias: String,
        /// Why, for the event log.
        #[arg(long, default_value = "rolled back from the command line")]
        reason: String,
    },
    /// Sign a version's digest with an ed25519 private key (PKCS#8 PEM).
    Sign {
        /// The version to sign: NAME@VERSION.
        spec: String,
        /// The ed25519 private key (PKCS#8 PEM, as `keygen` writes it).
        #[arg(long)]
        key: PathBuf,
    },
    /// Check a version: every stored byte against its digest, and its signature against keys.
    Verify {
        /// The version to check: NAME@VERSION.
        spec: String,
        /// Trusted public keys (PEM); repeatable.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
    },
    /// Write a new ed25519 key pair: PREFIX.pem (private, 0600) and PREFIX.pub.pem.
    Keygen {
        /// Path prefix of the two files written.
        prefix: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct CardArgs {
    /// Model card: the team or person answerable for the model.
    #[arg(long)]
    pub owner: Option<String>,
    /// Model card: what the model is.
    #[arg(long)]
    pub description: Option<String>,
    /// Model card: what it may be used for (and, by omission, what not).
    #[arg(long)]
    pub intended_use: Option<String>,
    /// Training data reference (dataset URI, table@snapshot, ...).
    #[arg(long)]
    pub trained_on: Option<String>,
    /// Evaluation metric, k=v; repeatable.
    #[arg(long = "metric", value_parser = parse_metric)]
    pub metrics: Vec<(String, f64)>,
    /// Push without a complete model card (the default policy requires one).
    #[arg(long)]
    pub allow_missing_card: bool,
}

impl CardArgs {
    fn card(&self) -> ModelCard {
        ModelCard {
            owner: self.owner.clone(),
            description: self.description.clone(),
            intended_use: self.intended_use.clone(),
            trained_on: self.trained_on.clone(),
            metrics: self.metrics.iter().cloned().collect(),
        }
    }
}

fn parse_metric(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected k=v, got {s:?}"))?;
    let v: f64 = v
        .parse()
        .map_err(|_| format!("metric {k}: {v:?} is not a number"))?;
    if k.is_empty() {
        return Err(format!("metric name is empty in {s:?}"));
    }
    Ok((k.to_string(), v))
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The model directory (a version directory: model.onnx|json|ubj|txt and its files) or file.
    pub path: PathBuf,
    /// The model's name in the registry.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub card: CardArgs,
    /// Serving settings for the model (a config.toml); default: PATH/../config.toml if present.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Skip opening the model with its engine before registering it.
    #[arg(long)]
    pub no_check: bool,
    /// Leave production unset: by default a model's first version becomes production.
    #[arg(long)]
    pub no_promote: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The repository: DIR/<model>/<version>/...
    pub dir: PathBuf,
    #[command(flatten)]
    pub card: CardArgs,
    /// Leave production unset: by default a new model's first version becomes production.
    #[arg(long)]
    pub no_promote: bool,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start an automated rollout of NAME@VERSION against production.
    Start {
        /// The candidate: NAME@VERSION.
        spec: String,
        /// Rollout plan (YAML or JSON); default: shadow 100% → canary 1% → 10% → 50% → 100%.
        #[arg(long)]
        plan: Option<PathBuf>,
    },
    /// Rollouts of a model, newest first.
    Status {
        /// The model.
        name: String,
    },
    /// Stop a model's running rollout; production stays where it is.
    Cancel {
        /// The model.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Set a model's traffic policy (it replaces the whole previous policy).
    Set {
        /// The model.
        name: String,
        /// VERSION:PERCENT answered by the candidate.
        #[arg(long)]
        canary: Option<String>,
        /// Split the canary by a hash of this header's value (A/B).
        #[arg(long)]
        sticky_header: Option<String>,
        /// VERSION:PERCENT mirrored to the candidate and compared.
        #[arg(long)]
        shadow: Option<String>,
    },
    /// Remove a model's traffic policy: all traffic to production.
    Clear {
        /// The model.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Only this model's events.
    #[arg(long)]
    pub model: Option<String>,
    /// Only events of this kind (promote, rollback, rollout_step, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Newest N events.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Declaration of models, versions, aliases, traffic and serving settings (YAML).
    pub file: PathBuf,
}

/// `--actor` (or `BALLAST_ACTOR`), set when the registry is opened.
static ACTOR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Who is acting, for `created_by` and the event log: `--actor` / `BALLAST_ACTOR`, else the
/// account name of the process's user, else `USER` / `LOGNAME`, else "unknown".
fn actor() -> String {
    let env = |k: &str| std::env::var(k).ok();
    pick_actor(
        ACTOR.get().map(String::as_str),
        os_account,
        env("USER").or_else(|| env("LOGNAME")),
    )
}

/// The precedence of [`actor`], apart from where each answer comes from.
fn pick_actor(
    flag: Option<&str>,
    account: impl FnOnce() -> Option<String>,
    env_user: Option<String>,
) -> String {
    let given = |s: &String| !s.trim().is_empty();
    flag.map(str::to_string)
        .filter(given)
        .or_else(|| account().filter(given))
        .or_else(|| env_user.filter(given))
        .unwrap_or_else(|| "unknown".to_string())
}

/// The account name of the process's (effective) uid, from the password database (as `id -un`
/// answers): right even where `USER` is unset or stale (cron, containers, `sudo -u`). Through
/// `nix`'s safe `getpwuid_r` wrapper rather than our own `unsafe` (the workspace denies it) and
/// rather than `whoami`, whose libc backend would add crates the lock file does not have yet.
#[cfg(unix)]
fn os_account() -> Option<String> {
    let uid = nix::unistd::Uid::effective();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
}

#[cfg(not(unix))]
fn os_account() -> Option<String> {
    None
}

pub async fn open(args: &RegistryArgs, require_card: bool) -> anyhow::Result<Registry> {
    if let Some(a) = &args.actor {
        let _ = ACTOR.set(a.clone());
    }
    let mut options = RegistryOptions::new(&args.data_dir);
    options.artifacts = args.artifacts.clone();
    options.require_model_card = require_card;
    Registry::open(options)
        .await
        .with_context(|| format!("cannot open the registry in {}", args.data_dir.display()))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn human_time(ms: i64) -> String {
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Opens the model with its engine, so a push never registers a file nothing can serve.
fn check_loads(path: &Path, config: Option<&str>) -> anyhow::Result<()> {
    let config = match config {
        Some(t) => ballast_core::ModelConfig::from_toml(t, "config")
            .map_err(|e| anyhow::anyhow!(e.message))?,
        None => ballast_core::ModelConfig::default(),
    };
    let loader = ballast_deploy::EngineLoader {
        onnxruntime_library: None,
    };
    let options = loader.options(&config);
    let opened = if path.is_file() {
        ballast_engine::open_file(path, config.backend, &options)
    } else {
        ballast_engine::open_with(path, &options)
    };
    opened.map(|_| ()).map_err(|e| {
        anyhow::anyhow!(
            "{} does not load: {} (use --no-check to push anyway)",
            path.display(),
            e
        )
    })
}

pub async fn model(args: &RegistryArgs, command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Push(p) => {
            let config_path = p.config.clone().or_else(|| {
                let c = p.path.parent()?.join("config.toml");
                (p.path.is_dir() && c.is_file()).then_some(c)
            });
            let config_toml = config_path
                .map(|c| {
                    std::fs::read_to_string(&c)
                        .with_context(|| format!("cannot read {}", c.display()))
                })
                .transpose()?;
            if !p.no_check {
                let path = p.path.clone();
                let config = config_toml.clone();
                tokio::task::spawn_blocking(move || check_loads(&path, config.as_deref()))
                    .await??;
            }
            let registry = open(args, !p.card.allow_missing_card).await?;
            let card = p.card.card();
            let out = registry
                .push(
                    &p.path,
                    PushRequest {
                        name: p.name.clone(),
                        card: card.clone(),
                        actor: actor(),
                        config_toml,
                        no_promote: p.no_promote,
                    },
                )
                .await?;
            if args.json {
                return print_json(&out);
            }
            let v = &out.version;
            if out.existed {
                println!(
                    "{}@{} already holds this artifact ({}); nothing stored",
                    v.model, v.version, v.digest
                );
                if card != v.card {
                    println!(
                        "  the model card given now was not applied: versions are immutable, and \
                         {}@{} keeps the card it was pushed with (by {}). To change the card, push \
                         the files again as a new version after changing them, or record the change \
                         in the card of the next version.",
                        v.model, v.version, v.created_by
                    );
                }
            } else {
                println!(
                    "pushed {}@{}  {}  {}  ({} new in the artifact store)",
                    v.model,
                    v.version,
                    v.digest,
                    bytes(v.size),
                    bytes(out.new_bytes)
                );
                if out.promoted {
                    println!(
                        "{}@{PRODUCTION} → version {} (the model's first version; --no-promote leaves production unset)",
                        v.model, v.version
                    );
                }
            }
        }
        ModelCommand::List => {
            let registry = open(args, true).await?;
            let mut all = Vec::new();
            for m in registry.store.list_models().await? {
                all.push(registry.describe(&m.name).await?);
            }
            if args.json {
                return print_json(&all);
            }
            println!("{:<24} {:>8} {:>8}  aliases", "MODEL", "VERSIONS", "LATEST");
            for d in all {
                let aliases: Vec<String> =
                    d.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
                println!(
                    "{:<24} {:>8} {:>8}  {}{}",
                    d.name,
                    d.versions.len(),
                    d.versions.last().map_or(0, |v| v.version),
                    aliases.join(" "),
                    d.rollout
                        .as_ref()
                        .map(|r| format!(
                            "  (rollout of {} at step {}/{})",
                            r.candidate,
                            r.step + 1,
                            r.plan.steps.len()
                        ))
                        .unwrap_or_default()
                );
            }
        }
        ModelCommand::Show { spec } => {
            let registry = open(args, true).await?;
            let r = VersionRef::parse(&spec)?;
            if r.selector.is_none() {
                let d = registry.describe(&r.model).await?;
                if args.json {
                    return print_json(&d);
                }
                println!("model {}", d.name);
                for (a, v) in &d.aliases {
                    println!("  alias {a} → {v}");
                }
                if let Some(p) = &d.policy {
                    println!("  traffic {}", serde_json::to_string(p)?);
                }
                if let Some(r) = &d.rollout {
                    println!(
                        "  rollout {} of version {} at step {}/{}",
                        r.id,
                        r.candidate,
                        r.step + 1,
                        r.plan.steps.len()
                    );
                }
                println!(
                    "  {:>7}  {:<20}  {:>9}  {:<12} digest",
                    "VERSION", "CREATED", "SIZE", "BY"
                );
                for v in &d.versions {
                    println!(
                        "  {:>7}  {:<20}  {:>9}  {:<12} {}{}",
                        v.version,
                        human_time(v.created_at),
                        bytes(v.size),
                        v.created_by,
                        v.digest,
                        if v.signature.is_some() {
                            "  signed"
                        } else {
                            ""
                        }
                    );
                }
                return Ok(());
            }
            let v = registry.resolve(&spec).await?;
            if args.json {
                return print_json(&v);
            }
            println!("{}@{}", v.model, v.version);
            println!("  digest      {}", v.digest);
            println!("  size        {}", bytes(v.size));
            println!(
                "  created     {} by {}",
                human_time(v.created_at),
                v.created_by
            );
            println!(
                "  signature   {}",
                v.signer
                    .as_deref()
                    .map_or("none".to_string(), |s| format!("key {s}"))
            );
            let c = &v.card;
            for (k, val) in [
                ("owner", &c.owner),
                ("description", &c.description),
                ("intended use", &c.intended_use),
                ("trained on", &c.trained_on),
            ] {
                println!("  {k:<11} {}", val.as_deref().unwrap_or("-"));
            }
            for (k, val) in &c.metrics {
                println!("  metric      {k} = {val}");
            }
            for f in &v.files {
                println!("  file        {}  {}  {}", f.path, bytes(f.size), f.digest);
            }
        }
        ModelCommand::Diff { a, b } => {
            let registry = open(args, true).await?;
            let (va, vb) = (registry.resolve(&a).await?, registry.resolve(&b).await?);
            let changes = ballast_registry::diff_versions(&va, &vb);
            if args.json {
                return print_json(&serde_json::json!({ "a": a, "b": b, "changes": changes }));
            }
            if changes.is_empty() {
                println!("{a} and {b} are identical");
            }
            for c in changes {
                println!("{:<22} {}  →  {}", c.field, c.a, c.b);
            }
        }
        ModelCommand::Import(i) => {
            let registry = open(args, !i.card.allow_missing_card).await?;
            let out = registry
                .import(&i.dir, &i.card.card(), &actor(), i.no_promote)
                .await?;
            if args.json {
                return print_json(&out);
            }
            for o in out {
                let v = &o.version;
                println!(
                    "{}@{}  {}  {}{}",
                    v.model,
                    v.version,
                    v.digest,
                    bytes(v.size),
                    if o.existed {
                        "  (already registered)"
                    } else if o.promoted {
                        "  → production (the model's first version)"
                    } else {
                        ""
                    }
                );
            }
        }
        ModelCommand::Promote { spec, to, reason } => {
            let registry = open(args, true).await?;
            let v = registry.resolve(&spec).await?;
            let a = registry
                .promote(&v.model, v.version, &to, &actor(), &reason)
                .await?;
            if args.json {
                return print_json(&a);
            }
            println!("{}@{} → version {}", a.model, a.alias, a.version);
        }
        ModelCommand::Rollback {
            name,
            alias,
            reason,
        } => {
            let registry = open(args, true).await?;
            let (from, to) = registry.rollback(&name, &alias, &actor(), &reason).await?;
            if args.json {
                return print_json(
                    &serde_json::json!({ "model": name, "alias": alias, "from": from, "to": to }),
                );
            }
            println!("{name}@{alias}: version {from} → {to}");
        }
        ModelCommand::Sign { spec, key } => {
            let key = signing::read_signing_key(&key)?;
            let registry = open(args, true).await?;
            let v = registry.sign(&spec, &key).await?;
            if args.json {
                return print_json(&v);
            }
            println!(
                "signed {}@{} ({}) with key {}",
                v.model,
                v.version,
                v.digest,
                v.signer.as_deref().unwrap_or("?")
            );
        }
        ModelCommand::Verify { spec, keys } => {
            let registry = open(args, true).await?;
            let v = registry.resolve(&spec).await?;
            registry
                .artifacts
                .materialize(&v.model, v.version, &v.digest, &v.files)
                .await?;
            let trusted = keys
                .iter()
                .map(|k| signing::read_verifying_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            let signature = if trusted.is_empty() {
                "not checked (no --key)".to_string()
            } else {
                SignaturePolicy {
                    require: true,
                    trusted,
                }
                .check(&v)?;
                format!("valid (key {})", v.signer.as_deref().unwrap_or("?"))
            };
            if args.json {
                return print_json(
                    &serde_json::json!({ "model": v.model, "version": v.version, "digest": v.digest, "bytes": "verified", "signature": signature }),
                );
            }
            println!(
                "{}@{}: {} files match {}; signature {signature}",
                v.model,
                v.version,
                v.files.len(),
                v.digest
            );
        }
        ModelCommand::Keygen { prefix } => {
            let private = prefix.with_extension("pem");
            let public = prefix.with_extension("pub.pem");
            let id = signing::generate_key(&private, &public)?;
            println!(
                "key {id}: private {} (keep secret), public {}",
                private.display(),
                public.display()
            );
        }
    }
    Ok(())
}

/// Every kind of event the registry and the deployer record.
pub const EVENT_KINDS: &[&str] = &[
    "pushed",
    "signed",
    "promoted",
    "rolled_back",
    "policy_set",
    "config_set",
    "load_failed",
    "rollout_started",
    "rollout_step",
    "rollout_promoted",
    "rollout_rolled_back",
    "rollout_cancelled",
];

pub async fn events(args: &RegistryArgs, e: EventsArgs) -> anyhow::Result<()> {
    if let Some(kind) = &e.kind
        && !EVENT_KINDS.contains(&kind.as_str())
    {
        bail!(
            "unknown event kind '{kind}'; kinds are: {}",
            EVENT_KINDS.join(", ")
        );
    }
    let registry = open(args, true).await?;
    let events = registry
        .events(&EventFilter {
            model: e.model,
            kind: e.kind,
            after: None,
            limit: Some(e.limit),
        })
        .await?;
    if args.json {
        return print_json(&events);
    }
    if !events.is_empty() {
        println!("{:>6}  {:<19}  {:<20} MESSAGE", "ID", "TIME (UTC)", "KIND");
    }
    for ev in events {
        println!(
            "{:>6}  {}  {:<20} {}",
            ev.id,
            human_time(ev.at),
            ev.kind,
            ev.message
        );
        // The figures each gate decided on, one line per gate (`--json` has them whole).
        if let Some(figures) = ev.details.get("figures").and_then(|f| f.as_object()) {
            for (gate, f) in figures {
                if matches!(gate.as_str(), "step" | "mode" | "percent" | "elapsed_secs") {
                    continue;
                }
                println!("{:>6}  {:<19}  {:<20}   {gate}: {f}", "", "", "");
            }
        }
    }
    Ok(())
}

pub fn read_plan(path: &Path) -> anyhow::Result<RolloutPlan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let plan: RolloutPlan = serde_norway::from_str(&text)
        .with_context(|| format!("{} is not a rollout plan", path.display()))?;
    let problems = plan.problems();
    if !problems.is_empty() {
        bail!("{}: {}", path.display(), problems.join("; "));
    }
    Ok(plan)
}

pub async fn rollout(args: &RegistryArgs, command: RolloutCommand) -> anyhow::Result<()> {
    let registry = open(args, true).await?;
    match command {
        RolloutCommand::Start { spec, plan } => {
            let plan = match plan {
                Some(p) => read_plan(&p)?,
                None => RolloutPlan::default(),
            };
            let v = registry.resolve(&spec).await?;
            let r = registry
                .start_rollout(&v.model, v.version, &plan, &actor())
                .await?;
            if args.json {
                return print_json(&r);
            }
            println!(
                "rollout {} of {}@{} against production {} started ({} steps); a running `ballast serve` on this registry drives it",
                r.id,
                r.model,
                r.candidate,
                r.baseline,
                r.plan.steps.len()
            );
        }
        RolloutCommand::Status { name } => {
            let all = registry.store.list_rollouts(Some(&name)).await?;
            if args.json {
                return print_json(&all);
            }
            if all.is_empty() {
                println!("no rollouts of {name}");
            }
            for line in rollout_table(&all) {
                println!("{line}");
            }
        }
        RolloutCommand::Cancel { name } => {
            let r = registry.cancel_rollout(&name, &actor()).await?;
            if args.json {
                return print_json(&r);
            }
            println!("rollout {} cancelled; production unchanged", r.id);
        }
    }
    Ok(())
}

/// `rollout status` as text: a header row, then one row per rollout (none without rollouts).
fn rollout_table(rollouts: &[RolloutRecord]) -> Vec<String> {
    if rollouts.is_empty() {
        return Vec::new();
    }
    let row = |id: &str, from_to: &str, state: &str, step: &str, reason: &str| {
        format!("{id:>4}  {from_to:<11} {state:<12} {step:<6} {reason}")
            .trim_end()
            .to_string()
    };
    let mut out = vec![row("ID", "FROM → TO", "STATE", "STEP", "REASON")];
    for r in rollouts {
        out.push(row(
            &r.id.to_string(),
            &format!("{} → {}", r.baseline, r.candidate),
            r.state.as_str(),
            &format!("{}/{}", r.step + 1, r.plan.steps.len()),
            r.reason.as_deref().unwrap_or(""),
        ));
    }
    out
}

fn split_share(flag: &str, s: &str) -> anyhow::Result<(u64, f64)> {
    let (v, p) = s
        .split_once(':')
        .with_context(|| format!("--{flag} expects VERSION:PERCENT, got {s:?}"))?;
    Ok((
        v.parse()
            .with_context(|| format!("--{flag}: {v:?} is not a version number"))?,
        p.parse()
            .with_context(|| format!("--{flag}: {p:?} is not a percentage"))?,
    ))
}

pub async fn policy(args: &RegistryArgs, command: PolicyCommand) -> anyhow::Result<()> {
    let registry = open(args, true).await?;
    match command {
        PolicyCommand::Set {
            name,
            canary,
            sticky_header,
            shadow,
        } => {
            if canary.is_none() && shadow.is_none() {
                bail!(
                    "policy set needs --canary VERSION:PERCENT and/or --shadow VERSION:PERCENT; it \
                     replaces the model's whole policy (to remove it: ballast policy clear {name})"
                );
            }
            if sticky_header.is_some() && canary.is_none() {
                bail!("--sticky-header splits a canary: give --canary VERSION:PERCENT too");
            }
            let canary =
                canary
                    .map(|c| split_share("canary", &c))
                    .transpose()?
                    .map(|(version, percent)| Canary {
                        version,
                        percent,
                        sticky_header: sticky_header.clone(),
                    });
            let shadow = shadow
                .map(|s| split_share("shadow", &s))
                .transpose()?
                .map(|(version, percent)| Shadow { version, percent });
            let policy = TrafficPolicy { canary, shadow };
            registry.set_policy(&name, Some(&policy), &actor()).await?;
            println!("{name}: traffic policy {}", serde_json::to_string(&policy)?);
        }
        PolicyCommand::Clear { name } => {
            registry.set_policy(&name, None, &actor()).await?;
            println!("{name}: traffic policy cleared; all traffic to production");
        }
    }
    Ok(())
}

/// `apply` (execute) or `diff` (only show) a declaration file.
/// `apply` (execute) or `diff`; returns whether changes were pending.
pub async fn apply_file(args: &RegistryArgs, a: ApplyArgs, execute: bool) -> anyhow::Result<bool> {
    let desired = Desired::from_file(&a.file).map_err(|e| anyhow::anyhow!("{e}"))?;
    let registry = open(args, true).await?;
    let plan = apply::plan(&registry, &desired).await?;
    if args.json && !execute {
        print_json(&plan)?;
        return Ok(!plan.is_empty());
    }
    if plan.is_empty() {
        println!("no changes: the registry matches {}", a.file.display());
        return Ok(false);
    }
    for action in &plan {
        println!("{}{action}", if execute { "" } else { "would " });
    }
    if execute {
        apply::execute(&registry, &desired, &plan, &actor()).await?;
        println!("applied {} change(s)", plan.len());
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ballast_registry::store::RolloutState;

    #[test]
    fn rollout_status_prints_a_header_row_over_its_rows() {
        let record = |id: i64, state: RolloutState, reason: Option<&str>| RolloutRecord {
            id,
            model: "fraud".into(),
            baseline: 2,
            candidate: 3,
            plan: RolloutPlan::default(),
            state,
            step: 1,
            step_started_at: 0,
            created_at: 0,
            updated_at: 0,
            reason: reason.map(str::to_string),
        };
        let lines = rollout_table(&[
            record(7, RolloutState::Running, None),
            record(6, RolloutState::RolledBack, Some("errors +2.1 points")),
        ]);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["ID", "FROM", "→", "TO", "STATE", "STEP", "REASON"],
            "{lines:#?}"
        );
        let steps = RolloutPlan::default().steps.len();
        assert!(lines[1].starts_with("   7  2 → 3"), "{lines:#?}");
        assert!(
            lines[1].contains(&format!("running      2/{steps}")),
            "{lines:#?}"
        );
        assert!(lines[2].ends_with("errors +2.1 points"), "{lines:#?}");
        // Columns line up under the header.
        let col = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(col(&lines[0], "STATE"), col(&lines[1], "running"));
        assert_eq!(col(&lines[0], "STEP"), col(&lines[2], "2/"));
        assert!(rollout_table(&[]).is_empty());
    }

    #[test]
    fn the_actor_is_the_flag_then_the_os_account_then_user_and_never_cli() {
        let alice = || Some("alice".to_string());
        let nobody = || None;
        assert_eq!(
            pick_actor(Some("ci-bot"), alice, Some("bob".into())),
            "ci-bot"
        );
        assert_eq!(pick_actor(None, alice, Some("bob".into())), "alice");
        assert_eq!(pick_actor(Some(""), alice, None), "alice");
        // `USER` only when the account lookup fails, then "unknown".
        assert_eq!(pick_actor(None, nobody, Some("bob".into())), "bob");
        assert_eq!(pick_actor(None, nobody, None), "unknown");
        assert_eq!(
            pick_actor(None, || Some(" ".into()), Some(String::new())),
            "unknown"
        );
    }

    /// The account name of this process's uid, as `id -un` reports it.
    #[cfg(unix)]
    #[test]
    fn the_os_account_is_the_name_of_the_process_uid() {
        let Ok(out) = std::process::Command::new("id").arg("-un").output() else {
            return; // no `id` to compare with
        };
        if !out.status.success() {
            return; // a uid without a passwd entry: `id` cannot name it either
        }
        let expected = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(os_account().as_deref(), Some(expected.as_str()));
    }
}
