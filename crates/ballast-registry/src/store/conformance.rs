//! The behaviour every [`MetadataStore`] must show, as one async suite. Each backend's tests
//! call [`run`] on a fresh, empty store (`tests/store_conformance.rs` for SQLite); a Postgres
//! store passes the same suite before it ships.

use std::sync::Arc;

use ballast_core::traffic::{Canary, Shadow};
use ballast_core::{RolloutPlan, TrafficPolicy};

use super::*;

fn check(cond: bool, what: &str) -> std::result::Result<(), String> {
    if cond { Ok(()) } else { Err(what.to_string()) }
}

fn new_version(model: &str, digest: &str) -> NewVersion {
    NewVersion {
        model: model.to_string(),
        digest: digest.to_string(),
        size: 42,
        files: vec![FileEntry {
            path: "model.onnx".into(),
            digest: digest.to_string(),
            size: 42,
        }],
        card: ModelCard {
            owner: Some("fraud-team".into()),
            metrics: [("auc".to_string(), 0.93)].into(),
            ..ModelCard::default()
        },
        created_by: "tester".into(),
    }
}

/// Runs every check; `Err` names the first behaviour that failed.
pub async fn run(store: Arc<dyn MetadataStore>) -> std::result::Result<(), String> {
    let s = store.as_ref();
    let e = |what: &'static str| move |err: RegistryError| format!("{what}: {err}");

    // Models.
    let g0 = s.generation().await.map_err(e("generation"))?;
    check(
        s.list_models().await.map_err(e("list"))?.is_empty(),
        "a fresh store has no models",
    )?;
    let m = s.ensure_model("fraud").await.map_err(e("ensure_model"))?;
    check(
        m.name == "fraud" && m.config_toml.is_none(),
        "ensure_model creates the model",
    )?;
    let again = s
        .ensure_model("fraud")
        .await
        .map_err(e("ensure_model twice"))?;
    check(again == m, "ensure_model is idempotent")?;
    check(
        s.get_model("nope").await.map_err(e("get_model"))?.is_none(),
        "unknown model is None",
    )?;
    s.set_model_config("fraud", Some("max_batch_size = 8"))
        .await
        .map_err(e("set_model_config"))?;
    check(
        s.get_model("fraud")
            .await
            .map_err(e("get_model"))?
            .and_then(|m| m.config_toml)
            == Some("max_batch_size = 8".into()),
        "model config round-trips",
    )?;
    check(
        matches!(
            s.set_model_config("nope", None).await,
            Err(RegistryError::NotFound(_))
        ),
        "config of an unknown model is NotFound",
    )?;

    // Versions: numbered from 1, immutable, deduplicated by digest per model.
    let v1 = s
        .insert_version(new_version("fraud", "sha256:aa"))
        .await
        .map_err(e("insert"))?;
    check(!v1.existed && v1.version.version == 1, "first version is 1")?;
    let v2 = s
        .insert_version(new_version("fraud", "sha256:bb"))
        .await
        .map_err(e("insert"))?;
    check(
        !v2.existed && v2.version.version == 2,
        "second version is 2",
    )?;
    let dup = s
        .insert_version(new_version("fraud", "sha256:aa"))
        .await
        .map_err(e("insert dup"))?;
    check(
        dup.existed && dup.version.version == 1,
        "same digest returns the existing version",
    )?;
    let other = s
        .insert_version(new_version("churn", "sha256:aa"))
        .await
        .map_err(e("insert"))?;
    check(
        !other.existed && other.version.version == 1,
        "versions are numbered per model; a digest may appear under two models",
    )?;
    let got = s.get_version("fraud", 2).await.map_err(e("get_version"))?;
    check(
        got.as_ref() == Some(&v2.version),
        "get_version returns what was inserted",
    )?;
    check(
        s.get_version("fraud", 9)
            .await
            .map_err(e("get_version"))?
            .is_none(),
        "missing version is None",
    )?;
    let listed = s.list_versions("fraud").await.map_err(e("list_versions"))?;
    check(
        listed.iter().map(|v| v.version).collect::<Vec<_>>() == vec![1, 2],
        "list_versions is oldest first",
    )?;
    check(
        s.list_models()
            .await
            .map_err(e("list"))?
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            == vec!["churn", "fraud"],
        "insert_version creates the model; models list by name",
    )?;

    // Concurrent pushes get distinct numbers.
    let mut tasks = Vec::new();
    // A test of the store: the tasks are awaited just below.
    #[allow(clippy::disallowed_methods)]
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_version(new_version("race", &format!("sha256:{i:02}")))
                .await
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        let inserted = t
            .await
            .map_err(|err| format!("push task: {err}"))?
            .map_err(e("concurrent insert"))?;
        numbers.push(inserted.version.version);
    }
    numbers.sort_unstable();
    check(
        numbers == (1..=8).collect::<Vec<_>>(),
        "concurrent pushes get versions 1..=8",
    )?;

    // Signatures.
    s.set_signature("fraud", 1, "c2ln", "key-1")
        .await
        .map_err(e("set_signature"))?;
    let signed = s.get_version("fraud", 1).await.map_err(e("get_version"))?;
    check(
        signed.is_some_and(|v| {
            v.signature.as_deref() == Some("c2ln") && v.signer.as_deref() == Some("key-1")
        }),
        "signature round-trips",
    )?;
    check(
        matches!(
            s.set_signature("fraud", 9, "x", "k").await,
            Err(RegistryError::NotFound(_))
        ),
        "signing a missing version is NotFound",
    )?;

    // Aliases and rollback.
    check(
        matches!(
            s.set_alias("fraud", "production", 9, "t", "r").await,
            Err(RegistryError::NotFound(_))
        ),
        "an alias to a missing version is NotFound",
    )?;
    let g1 = s.generation().await.map_err(e("generation"))?;
    s.set_alias("fraud", "production", 1, "alice", "first")
        .await
        .map_err(e("set_alias"))?;
    check(
        s.generation().await.map_err(e("generation"))? > g1,
        "set_alias bumps the generation",
    )?;
    check(
        matches!(
            s.rollback_alias("fraud", "production", "t", "r").await,
            Err(RegistryError::Conflict(_))
        ),
        "rollback with no earlier version is Conflict",
    )?;
    s.set_alias("fraud", "production", 2, "alice", "second")
        .await
        .map_err(e("set_alias"))?;
    s.set_alias("fraud", "staging", 2, "bob", "try")
        .await
        .map_err(e("set_alias"))?;
    check(
        s.get_alias("fraud", "production")
            .await
            .map_err(e("get_alias"))?
            .map(|a| a.version)
            == Some(2),
        "alias moves",
    )?;
    let (from, to) = s
        .rollback_alias("fraud", "production", "carol", "bad auc")
        .await
        .map_err(e("rollback"))?;
    check(
        (from, to) == (2, 1),
        "rollback returns to the previous version",
    )?;
    check(
        s.get_alias("fraud", "production")
            .await
            .map_err(e("get_alias"))?
            .map(|a| a.version)
            == Some(1),
        "rollback moves the alias",
    )?;
    check(
        s.get_alias("fraud", "staging")
            .await
            .map_err(e("get_alias"))?
            .map(|a| a.version)
            == Some(2),
        "rollback touches only its alias",
    )?;
    check(
        matches!(
            s.rollback_alias("fraud", "production", "t", "r").await,
            Err(RegistryError::Conflict(_))
        ),
        "a second rollback walks further back, and there is nothing before version 1",
    )?;
    s.set_alias("fraud", "production", 2, "alice", "again")
        .await
        .map_err(e("set_alias"))?;
    let history = s
        .alias_history("fraud", "production")
        .await
        .map_err(e("history"))?;
    check(
        history
            .iter()
            .map(|h| (h.version, h.reverted))
            .collect::<Vec<_>>()
            == vec![(1, false), (2, true), (1, true), (2, false)],
        "alias history keeps every change, rollbacks included, oldest first",
    )?;
    check(
        history[2].reason.contains("bad auc"),
        "rollback reason is kept",
    )?;
    let aliases = s.list_aliases("fraud").await.map_err(e("list_aliases"))?;
    check(
        aliases.iter().map(|a| a.alias.as_str()).collect::<Vec<_>>()
            == vec!["production", "staging"],
        "list_aliases by name",
    )?;
    check(
        s.remove_alias("fraud", "staging")
            .await
            .map_err(e("remove_alias"))?,
        "remove_alias",
    )?;
    check(
        !s.remove_alias("fraud", "staging")
            .await
            .map_err(e("remove_alias"))?,
        "remove twice",
    )?;
    check(
        matches!(
            s.rollback_alias("fraud", "nope", "t", "r").await,
            Err(RegistryError::NotFound(_))
        ),
        "rollback of a missing alias is NotFound",
    )?;

    // Policies.
    check(
        s.get_policy("fraud")
            .await
            .map_err(e("get_policy"))?
            .is_none(),
        "no policy at first",
    )?;
    let policy = TrafficPolicy {
        canary: Some(Canary {
            version: 2,
            percent: 10.0,
            sticky_header: Some("x-user".into()),
        }),
        shadow: Some(Shadow {
            version: 2,
            percent: 50.0,
        }),
    };
    s.set_policy("fraud", Some(&policy))
        .await
        .map_err(e("set_policy"))?;
    check(
        s.get_policy("fraud").await.map_err(e("get_policy"))? == Some(policy),
        "policy round-trips",
    )?;
    s.set_policy("fraud", Some(&TrafficPolicy::default()))
        .await
        .map_err(e("clear policy"))?;
    check(
        s.get_policy("fraud")
            .await
            .map_err(e("get_policy"))?
            .is_none(),
        "an empty policy clears",
    )?;
    check(
        matches!(
            s.set_policy("nope", None).await,
            Err(RegistryError::NotFound(_))
        ),
        "policy of an unknown model is NotFound",
    )?;

    // Rollouts.
    let plan = RolloutPlan::default();
    let r = s
        .create_rollout("fraud", 1, 2, &plan)
        .await
        .map_err(e("create_rollout"))?;
    check(
        r.state == RolloutState::Running && r.step == 0 && r.plan == plan,
        "rollout starts at step 0",
    )?;
    check(
        matches!(
            s.create_rollout("fraud", 1, 2, &plan).await,
            Err(RegistryError::Conflict(_))
        ),
        "one running rollout per model",
    )?;
    check(
        matches!(
            s.create_rollout("fraud", 1, 9, &plan).await,
            Err(RegistryError::NotFound(_))
        ),
        "a rollout of a missing version is NotFound",
    )?;
    let stepped = s
        .update_rollout(r.id, RolloutState::Running, 1, None)
        .await
        .map_err(e("update_rollout"))?;
    check(
        stepped.step == 1 && stepped.step_started_at >= r.step_started_at,
        "step advances",
    )?;
    check(
        s.active_rollout("fraud")
            .await
            .map_err(e("active"))?
            .map(|a| a.id)
            == Some(r.id),
        "active_rollout finds it",
    )?;
    let ended = s
        .update_rollout(r.id, RolloutState::RolledBack, 1, Some("p99 3.1x baseline"))
        .await
        .map_err(e("end rollout"))?;
    check(ended.state == RolloutState::RolledBack, "rollout ends")?;
    check(
        matches!(
            s.update_rollout(r.id, RolloutState::Running, 2, None).await,
            Err(RegistryError::Conflict(_))
        ),
        "an ended rollout cannot move",
    )?;
    check(
        s.active_rollout("fraud")
            .await
            .map_err(e("active"))?
            .is_none(),
        "no active rollout after end",
    )?;
    let fetched = s.get_rollout(r.id).await.map_err(e("get_rollout"))?;
    check(
        fetched.is_some_and(|f| f.reason.as_deref() == Some("p99 3.1x baseline")),
        "rollout reason is kept",
    )?;
    s.create_rollout("fraud", 2, 1, &plan)
        .await
        .map_err(e("second rollout"))?;
    let all = s
        .list_rollouts(Some("fraud"))
        .await
        .map_err(e("list_rollouts"))?;
    check(
        all.len() == 2 && all[0].id > all[1].id,
        "rollouts list newest first",
    )?;
    check(
        s.list_rollouts(Some("churn"))
            .await
            .map_err(e("list_rollouts"))?
            .is_empty(),
        "per model",
    )?;

    // Events.
    let ev = |model: Option<&str>, kind: &str, n: i64| NewEvent {
        model: model.map(str::to_string),
        kind: kind.to_string(),
        message: format!("{kind} {n}"),
        details: serde_json::json!({ "n": n }),
    };
    let first = s
        .append_event(ev(Some("fraud"), "promoted", 1))
        .await
        .map_err(e("append"))?;
    s.append_event(ev(Some("churn"), "promoted", 2))
        .await
        .map_err(e("append"))?;
    s.append_event(ev(Some("fraud"), "rolled_back", 3))
        .await
        .map_err(e("append"))?;
    s.append_event(ev(None, "started", 4))
        .await
        .map_err(e("append"))?;
    let all = s
        .list_events(&EventFilter::default())
        .await
        .map_err(e("list_events"))?;
    check(
        all.len() == 4 && all.windows(2).all(|w| w[0].id < w[1].id),
        "events oldest first",
    )?;
    check(
        all[0] == first && all[2].details["n"] == 3,
        "events round-trip with details",
    )?;
    let fraud = s
        .list_events(&EventFilter {
            model: Some("fraud".into()),
            ..EventFilter::default()
        })
        .await
        .map_err(e("filter model"))?;
    check(fraud.len() == 2, "filter by model")?;
    let after = s
        .list_events(&EventFilter {
            after: Some(first.id),
            ..EventFilter::default()
        })
        .await
        .map_err(e("filter after"))?;
    check(after.len() == 3, "filter after an id")?;
    let kind = s
        .list_events(&EventFilter {
            kind: Some("rolled_back".into()),
            ..EventFilter::default()
        })
        .await
        .map_err(e("filter kind"))?;
    check(
        kind.len() == 1 && kind[0].message == "rolled_back 3",
        "filter by kind",
    )?;
    let last2 = s
        .list_events(&EventFilter {
            limit: Some(2),
            ..EventFilter::default()
        })
        .await
        .map_err(e("limit"))?;
    check(
        last2.iter().map(|e| e.message.as_str()).collect::<Vec<_>>()
            == vec!["rolled_back 3", "started 4"],
        "limit keeps the newest, oldest first",
    )?;

    check(
        s.generation().await.map_err(e("generation"))? > g0,
        "changes bump the generation",
    )?;
    Ok(())
}
