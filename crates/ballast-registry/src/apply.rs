//! Infrastructure as code: a YAML file declares models, their versions (by directory), model
//! cards, serving settings, aliases and traffic policies; [`plan`] compares it with the
//! registry and [`execute`] makes the registry match. Applying the same file twice changes
//! nothing the second time. Every problem in a file is reported at once and nothing is applied
//! while any remains. Things the file does not mention (other models, other aliases) are left
//! alone.
//!
//! ```yaml
//! models:
//!   - name: fraud
//!     card: {owner: risk-team, description: ..., intended_use: ..., trained_on: ..., metrics: {auc: 0.93}}
//!     config: {max_batch_size: 64, max_queue_delay_ms: 1}
//!     versions:
//!       - path: models/fraud/1          # relative to this file
//!       - path: models/fraud/2
//!     aliases:
//!       production: models/fraud/1      # a declared path, or a version number
//!     traffic:
//!       canary: {version: models/fraud/2, percent: 10, sticky_header: x-user}
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ballast_core::traffic::{Canary, Shadow};
use ballast_core::{ModelConfig, TrafficPolicy};
use serde::{Deserialize, Serialize};

use crate::store::ModelCard;
use crate::{PushRequest, Registry, RegistryError, check_name};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoot {
    models: Vec<serde_norway::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    name: String,
    #[serde(default)]
    card: Option<ModelCard>,
    #[serde(default)]
    config: Option<serde_json::Value>,
    #[serde(default)]
    versions: Vec<FileVersion>,
    #[serde(default)]
    aliases: BTreeMap<String, FileTarget>,
    #[serde(default)]
    traffic: Option<FileTraffic>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileVersion {
    path: PathBuf,
    #[serde(default)]
    card: Option<ModelCard>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum FileTarget {
    Version(u64),
    Path(PathBuf),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTraffic {
    #[serde(default)]
    canary: Option<FileShare>,
    #[serde(default)]
    shadow: Option<FileShare>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShare {
    version: FileTarget,
    percent: f64,
    #[serde(default)]
    sticky_header: Option<String>,
}

/// A version named by number or by the directory declared for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Target {
    Version(u64),
    Path(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Version(v) => write!(f, "version {v}"),
            Target::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DesiredModel {
    pub name: String,
    pub config_toml: Option<String>,
    pub versions: Vec<(PathBuf, ModelCard)>,
    pub aliases: BTreeMap<String, Target>,
    /// `Some` even when both shares are empty means "no policy".
    pub traffic: Option<(Option<CanaryDecl>, Option<ShadowDecl>)>,
}

/// Canary target, percent and sticky header.
pub type CanaryDecl = (Target, f64, Option<String>);
/// Shadow target and percent.
pub type ShadowDecl = (Target, f64);

/// A validated declaration.
#[derive(Debug, Clone)]
pub struct Desired {
    pub models: Vec<DesiredModel>,
}

fn target(t: &FileTarget, base: &Path) -> Target {
    match t {
        FileTarget::Version(v) => Target::Version(*v),
        FileTarget::Path(p) => Target::Path(base.join(p)),
    }
}

impl Desired {
    pub fn from_file(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RegistryError::NotFound(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, &path.display().to_string())
    }

    /// Parses and validates; `Invalid` lists every problem, one per line.
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Self, RegistryError> {
        let root: FileRoot = serde_norway::from_str(text)
            .map_err(|e| RegistryError::Invalid(format!("{origin}: {e}")))?;
        let mut problems = Vec::new();
        let mut models = Vec::new();
        let mut names = HashSet::new();
        for (i, value) in root.models.into_iter().enumerate() {
            let m: FileModel = match serde_norway::from_value(value) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("models[{i}]: {e}"));
                    continue;
                }
            };
            let at = format!("models[{i}] ({})", m.name);
            if let Err(e) = check_name("model", &m.name) {
                problems.push(format!("{at}: {e}"));
            }
            if !names.insert(m.name.clone()) {
                problems.push(format!("{at}: model '{}' is declared twice", m.name));
            }
            let config_toml = match &m.config {
                None => None,
                Some(v) => match toml::Value::try_from(v).and_then(|t| toml::to_string(&t)) {
                    Ok(text) => {
                        if let Err(e) = ModelConfig::from_toml(&text, &format!("{at}.config")) {
                            problems.push(e.message);
                        }
                        Some(text)
                    }
                    Err(e) => {
                        problems.push(format!("{at}.config: must be a mapping of settings: {e}"));
                        None
                    }
                },
            };
            let mut versions = Vec::new();
            for (j, v) in m.versions.iter().enumerate() {
                let p = base.join(&v.path);
                if !p.exists() {
                    problems.push(format!(
                        "{at}.versions[{j}].path: {} does not exist",
                        p.display()
                    ));
                }
                let card = v
                    .card
                    .clone()
                    .or_else(|| m.card.clone())
                    .unwrap_or_default();
                let missing = card.missing_fields();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{at}.versions[{j}]: model card incomplete: missing {}",
                        missing.join(", ")
                    ));
                }
                versions.push((p, card));
            }
            let declared: HashSet<&PathBuf> = versions.iter().map(|(p, _)| p).collect();
            let check_target = |t: &Target, field: String, problems: &mut Vec<String>| {
                if let Target::Path(p) = t
                    && !declared.contains(p)
                {
                    problems.push(format!(
                        "{field}: {} is not one of the model's declared versions",
                        p.display()
                    ));
                }
            };
            let mut aliases = BTreeMap::new();
            for (alias, t) in &m.aliases {
                if let Err(e) = check_name("alias", alias) {
                    problems.push(format!("{at}.aliases: {e}"));
                }
                let t = target(t, base);
                check_target(&t, format!("{at}.aliases.{alias}"), &mut problems);
                aliases.insert(alias.clone(), t);
            }
            let traffic = m.traffic.as_ref().map(|tr| {
                let canary = tr.canary.as_ref().map(|c| {
                    let t = target(&c.version, base);
                    check_target(&t, format!("{at}.traffic.canary.version"), &mut problems);
                    (t, c.percent, c.sticky_header.clone())
                });
                let shadow = tr.shadow.as_ref().map(|s| {
                    let t = target(&s.version, base);
                    check_target(&t, format!("{at}.traffic.shadow.version"), &mut problems);
                    if s.sticky_header.is_some() {
                        problems.push(format!(
                            "{at}.traffic.shadow.sticky_header: only a canary can be sticky"
                        ));
                    }
                    (t, s.percent)
                });
                // Validate shares and header with placeholder versions.
                let probe = TrafficPolicy {
                    canary: canary.as_ref().map(|(_, p, h)| Canary {
                        version: 0,
                        percent: *p,
                        sticky_header: h.clone(),
                    }),
                    shadow: shadow.as_ref().map(|(_, p)| Shadow {
                        version: 0,
                        percent: *p,
                    }),
                };
                for p in probe.problems() {
                    problems.push(format!("{at}.traffic.{p}"));
                }
                (canary, shadow)
            });
            models.push(DesiredModel {
                name: m.name,
                config_toml,
                versions,
                aliases,
                traffic,
            });
        }
        if problems.is_empty() {
            Ok(Self { models })
        } else {
            Err(RegistryError::Invalid(format!(
                "{origin}: {} problem(s), nothing applied:\n  {}",
                problems.len(),
                problems.join("\n  ")
            )))
        }
    }
}

/// One change `execute` would make.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Push {
        model: String,
        path: PathBuf,
        digest: String,
    },
    SetConfig {
        model: String,
        from: Option<String>,
        to: Option<String>,
    },
    SetAlias {
        model: String,
        alias: String,
        from: Option<u64>,
        to: Target,
    },
    SetPolicy {
        model: String,
        from: Option<TrafficPolicy>,
        to: String,
    },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Push {
                model,
                path,
                digest,
            } => write!(
                f,
                "push {} as a new version of {model} ({digest})",
                path.display()
            ),
            Action::SetConfig { model, from, to } => write!(
                f,
                "set {model} serving settings: {} → {}",
                from.as_deref()
                    .map_or("defaults".into(), |s| s.trim().replace('\n', ", ")),
                to.as_deref()
                    .map_or("defaults".into(), |s| s.trim().replace('\n', ", "))
            ),
            Action::SetAlias {
                model,
                alias,
                from,
                to,
            } => write!(
                f,
                "point {model}@{alias} at {to} (now {})",
                from.map_or("unset".into(), |v| format!("version {v}"))
            ),
            Action::SetPolicy { model, from, to } => write!(
                f,
                "set {model} traffic to {to} (now {})",
                from.as_ref()
                    .map_or("none".into(), |p| serde_json::to_string(p)
                        .unwrap_or_default())
            ),
        }
    }
}

fn same_config(a: Option<&str>, b: Option<&str>) -> bool {
    let parse = |s: Option<&str>| s.map(|t| toml::from_str::<toml::Value>(t).ok());
    match (parse(a), parse(b)) {
        (None, None) => true,
        (Some(Some(x)), Some(Some(y))) => x == y,
        _ => false,
    }
}

/// The changes that would make the registry match `desired`, in execution order.
pub async fn plan(registry: &Registry, desired: &Desired) -> Result<Vec<Action>, RegistryError> {
    let mut actions = Vec::new();
    let mut problems = Vec::new();
    for m in &desired.models {
        let existing = registry.store.list_versions(&m.name).await?;
        let record = registry.store.get_model(&m.name).await?;
        let mut by_path: BTreeMap<PathBuf, Option<u64>> = BTreeMap::new();
        for (path, _) in &m.versions {
            let (_, digest) = crate::artifacts::local_manifest(path).await?;
            let found = existing
                .iter()
                .find(|v| v.digest == digest)
                .map(|v| v.version);
            if found.is_none() {
                actions.push(Action::Push {
                    model: m.name.clone(),
                    path: path.clone(),
                    digest,
                });
            }
            by_path.insert(path.clone(), found);
        }
        let current_config = record.as_ref().and_then(|r| r.config_toml.clone());
        if m.config_toml.is_some()
            && !same_config(current_config.as_deref(), m.config_toml.as_deref())
        {
            actions.push(Action::SetConfig {
                model: m.name.clone(),
                from: current_config,
                to: m.config_toml.clone(),
            });
        }
        // A target's version number, `None` when it will be pushed by this plan.
        let resolve = |t: &Target, field: &str, problems: &mut Vec<String>| -> Option<u64> {
            match t {
                Target::Version(v) => {
                    if !existing.iter().any(|e| e.version == *v) {
                        problems.push(format!("{}.{field}: model has no version {v}", m.name));
                    }
                    Some(*v)
                }
                Target::Path(p) => by_path.get(p).copied().flatten(),
            }
        };
        for (alias, t) in &m.aliases {
            let want = resolve(t, &format!("aliases.{alias}"), &mut problems);
            let now = registry
                .store
                .get_alias(&m.name, alias)
                .await?
                .map(|a| a.version);
            if want.is_none() || want != now {
                actions.push(Action::SetAlias {
                    model: m.name.clone(),
                    alias: alias.clone(),
                    from: now,
                    to: want.map_or_else(|| t.clone(), Target::Version),
                });
            }
        }
        if let Some((canary, shadow)) = &m.traffic {
            let current = registry.store.get_policy(&m.name).await?;
            let mut pending = false;
            let mut describe = Vec::new();
            let mut policy = TrafficPolicy::default();
            if let Some((t, pct, header)) = canary {
                match resolve(t, "traffic.canary", &mut problems) {
                    Some(v) => {
                        policy.canary = Some(Canary {
                            version: v,
                            percent: *pct,
                            sticky_header: header.clone(),
                        })
                    }
                    None => pending = true,
                }
                describe.push(format!("canary {pct}% to {t}"));
            }
            if let Some((t, pct)) = shadow {
                match resolve(t, "traffic.shadow", &mut problems) {
                    Some(v) => {
                        policy.shadow = Some(Shadow {
                            version: v,
                            percent: *pct,
                        })
                    }
                    None => pending = true,
                }
                describe.push(format!("shadow {pct}% to {t}"));
            }
            let want = (!policy.is_empty()).then_some(policy);
            if pending || want != current {
                actions.push(Action::SetPolicy {
                    model: m.name.clone(),
                    from: current,
                    to: if describe.is_empty() {
                        "none".to_string()
                    } else {
                        describe.join(", ")
                    },
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(actions)
    } else {
        Err(RegistryError::Invalid(format!(
            "{} problem(s), nothing applied:\n  {}",
            problems.len(),
            problems.join("\n  ")
        )))
    }
}

/// Carries out `plan` (from [`plan`] on the same `desired`).
pub async fn execute(
    registry: &Registry,
    desired: &Desired,
    plan: &[Action],
    actor: &str,
) -> Result<(), RegistryError> {
    let mut pushed: BTreeMap<(String, PathBuf), u64> = BTreeMap::new();
    for m in &desired.models {
        for (path, card) in &m.versions {
            let needs_push = plan.iter().any(|a| {
                matches!(a, Action::Push { model, path: p, .. } if *model == m.name && p == path)
            });
            if needs_push {
                let out = registry
                    .push(
                        path,
                        PushRequest {
                            name: m.name.clone(),
                            card: card.clone(),
                            actor: actor.to_string(),
                            config_toml: None,
                            // A declared production alias is set below; otherwise the usual
                            // rule (a model's first version becomes production) applies.
                            no_promote: m.aliases.contains_key(crate::PRODUCTION),
                        },
                    )
                    .await?;
                pushed.insert((m.name.clone(), path.clone()), out.version.version);
            } else {
                let (_, digest) = crate::artifacts::local_manifest(path).await?;
                if let Some(v) = registry
                    .store
                    .list_versions(&m.name)
                    .await?
                    .into_iter()
                    .find(|v| v.digest == digest)
                {
                    pushed.insert((m.name.clone(), path.clone()), v.version);
                }
            }
        }
    }
    let number = |model: &str, t: &Target| -> Result<u64, RegistryError> {
        match t {
            Target::Version(v) => Ok(*v),
            Target::Path(p) => pushed
                .get(&(model.to_string(), p.clone()))
                .copied()
                .ok_or_else(|| RegistryError::Invalid(format!("{} was not pushed", p.display()))),
        }
    };
    for a in plan {
        match a {
            Action::Push { .. } => {}
            Action::SetConfig { model, to, .. } => {
                registry.store.ensure_model(model).await?;
                registry
                    .store
                    .set_model_config(model, to.as_deref())
                    .await?;
                registry
                    .event(
                        Some(model),
                        "config_set",
                        format!("{model}: serving settings set by {actor} (apply)"),
                        serde_json::json!({ "config": to }),
                    )
                    .await?;
            }
            Action::SetAlias {
                model, alias, to, ..
            } => {
                let v = number(model, to)?;
                registry.promote(model, v, alias, actor, "apply").await?;
            }
            Action::SetPolicy { model, .. } => {
                let Some(m) = desired.models.iter().find(|m| m.name == *model) else {
                    continue;
                };
                let Some((canary, shadow)) = &m.traffic else {
                    continue;
                };
                let mut policy = TrafficPolicy::default();
                if let Some((t, pct, header)) = canary {
                    policy.canary = Some(Canary {
                        version: number(model, t)?,
                        percent: *pct,
                        sticky_header: header.clone(),
                    });
                }
                if let Some((t, pct)) = shadow {
                    policy.shadow = Some(Shadow {
                        version: number(model, t)?,
                        percent: *pct,
                    });
                }
                let policy = (!policy.is_empty()).then_some(policy);
                registry.set_policy(model, policy.as_ref(), actor).await?;
            }
        }
    }
    Ok(())
}
