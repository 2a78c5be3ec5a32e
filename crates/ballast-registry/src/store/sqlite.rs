//! The embedded metadata store: one SQLite file in WAL mode, shared safely by a running server
//! and CLI invocations on the same data directory. Writes that read-then-write (version
//! numbers, rollbacks) run in `BEGIN IMMEDIATE` transactions so two processes never race.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ballast_core::{RolloutPlan, TrafficPolicy};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

fn db_err(e: sqlx::Error) -> RegistryError {
    RegistryError::Storage(format!("metadata database: {e}"))
}

fn json_err(what: &str, e: serde_json::Error) -> RegistryError {
    RegistryError::Storage(format!("metadata database holds an unreadable {what}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                RegistryError::Storage(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a change the CLI or API acknowledged survives a power loss, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(options).await
    }

    /// An in-memory database (tests).
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(db_err)?
            .foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self> {
        let in_memory = options.get_filename().as_os_str().is_empty()
            || options.get_filename() == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            // One connection for an in-memory database: each connection would see its own.
            .max_connections(if in_memory { 1 } else { 4 })
            .connect_with(options)
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            RegistryError::Storage(format!("metadata database migration failed: {e}"))
        })?;
        Ok(Self { pool })
    }

    async fn begin_immediate(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err)
    }
}

async fn bump<'c, E>(executor: E) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    sqlx::query("UPDATE generation SET value = value + 1 WHERE id = 1")
        .execute(executor)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// NotFound unless `model` has `version`, inside a transaction.
async fn require_version(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    model: &str,
    version: u64,
) -> Result<()> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT version FROM versions WHERE model = ?1 AND version = ?2")
            .bind(model)
            .bind(version as i64)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
    found
        .map(|_| ())
        .ok_or_else(|| crate::no_version(model, version))
}

fn model_from(row: &SqliteRow) -> ModelRecord {
    ModelRecord {
        name: row.get("name"),
        created_at: row.get("created_at"),
        config_toml: row.get("config_toml"),
    }
}

fn version_from(row: &SqliteRow) -> Result<VersionRecord> {
    let manifest: String = row.get("manifest");
    let card: String = row.get("card");
    Ok(VersionRecord {
        model: row.get("model"),
        version: row.get::<i64, _>("version") as u64,
        digest: row.get("digest"),
        size: row.get::<i64, _>("size_bytes") as u64,
        files: serde_json::from_str(&manifest).map_err(|e| json_err("manifest", e))?,
        card: serde_json::from_str(&card).map_err(|e| json_err("model card", e))?,
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        signature: row.get("signature"),
        signer: row.get("signer"),
    })
}

fn alias_from(row: &SqliteRow) -> AliasRecord {
    AliasRecord {
        model: row.get("model"),
        alias: row.get("alias"),
        version: row.get::<i64, _>("version") as u64,
        updated_at: row.get("updated_at"),
    }
}

fn rollout_from(row: &SqliteRow) -> Result<RolloutRecord> {
    let plan: String = row.get("plan");
    let state: String = row.get("state");
    Ok(RolloutRecord {
        id: row.get("id"),
        model: row.get("model"),
        baseline: row.get::<i64, _>("baseline") as u64,
        candidate: row.get::<i64, _>("candidate") as u64,
        plan: serde_json::from_str::<RolloutPlan>(&plan)
            .map_err(|e| json_err("rollout plan", e))?,
        state: RolloutState::parse(&state).ok_or_else(|| {
            RegistryError::Storage(format!(
                "metadata database holds an unknown rollout state {state:?}"
            ))
        })?,
        step: row.get::<i64, _>("step") as usize,
        step_started_at: row.get("step_started_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        reason: row.get("reason"),
    })
}

fn event_from(row: &SqliteRow) -> Result<EventRecord> {
    let details: String = row.get("details");
    Ok(EventRecord {
        id: row.get("id"),
        at: row.get("at"),
        model: row.get("model"),
        kind: row.get("kind"),
        message: row.get("message"),
        details: serde_json::from_str(&details).map_err(|e| json_err("event", e))?,
    })
}

fn unknown_model(name: &str) -> RegistryError {
    RegistryError::NotFound(format!("unknown model '{name}'"))
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn generation(&self) -> Result<u64> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(v as u64)
    }

    async fn ensure_model(&self, name: &str) -> Result<ModelRecord> {
        let mut tx = self.begin_immediate().await?;
        let inserted = sqlx::query(
            "INSERT INTO models (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if inserted.rows_affected() > 0 {
            bump(&mut *tx).await?;
        }
        let row = sqlx::query("SELECT * FROM models WHERE name = ?1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(model_from(&row))
    }

    async fn get_model(&self, name: &str) -> Result<Option<ModelRecord>> {
        let row = sqlx::query("SELECT * FROM models WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(model_from))
    }

    async fn list_models(&self) -> Result<Vec<ModelRecord>> {
        let rows = sqlx::query("SELECT * FROM models ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(model_from).collect())
    }

    async fn set_model_config(&self, name: &str, config_toml: Option<&str>) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        let done = sqlx::query("UPDATE models SET config_toml = ?2 WHERE name = ?1")
            .bind(name)
            .bind(config_toml)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(unknown_model(name));
        }
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn insert_version(&self, new: NewVersion) -> Result<Inserted> {
        let manifest = serde_json::to_string(&new.files).map_err(|e| json_err("manifest", e))?;
        let card = serde_json::to_string(&new.card).map_err(|e| json_err("model card", e))?;
        let now = now_ms();
        let mut tx = self.begin_immediate().await?;
        sqlx::query(
            "INSERT INTO models (name, created_at) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING",
        )
        .bind(&new.model)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if let Some(row) = sqlx::query("SELECT * FROM versions WHERE model = ?1 AND digest = ?2")
            .bind(&new.model)
            .bind(&new.digest)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        {
            tx.commit().await.map_err(db_err)?;
            return Ok(Inserted {
                version: version_from(&row)?,
                existed: true,
            });
        }
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE model = ?1",
        )
        .bind(&new.model)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO versions (model, version, digest, size_bytes, manifest, card, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&new.model)
        .bind(next)
        .bind(&new.digest)
        .bind(new.size as i64)
        .bind(&manifest)
        .bind(&card)
        .bind(&new.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Inserted {
            version: VersionRecord {
                model: new.model,
                version: next as u64,
                digest: new.digest,
                size: new.size,
                files: new.files,
                card: new.card,
                created_by: new.created_by,
                created_at: now,
                signature: None,
                signer: None,
            },
            existed: false,
        })
    }

    async fn get_version(&self, model: &str, version: u64) -> Result<Option<VersionRecord>> {
        let row = sqlx::query("SELECT * FROM versions WHERE model = ?1 AND version = ?2")
            .bind(model)
            .bind(version as i64)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(version_from).transpose()
    }

    async fn list_versions(&self, model: &str) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query("SELECT * FROM versions WHERE model = ?1 ORDER BY version")
            .bind(model)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(version_from).collect()
    }

    async fn set_signature(
        &self,
        model: &str,
        version: u64,
        signature: &str,
        signer: &str,
    ) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        let done = sqlx::query(
            "UPDATE versions SET signature = ?3, signer = ?4 WHERE model = ?1 AND version = ?2",
        )
        .bind(model)
        .bind(version as i64)
        .bind(signature)
        .bind(signer)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(crate::no_version(model, version));
        }
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn set_alias(
        &self,
        model: &str,
        alias: &str,
        version: u64,
        actor: &str,
        reason: &str,
    ) -> Result<AliasRecord> {
        let now = now_ms();
        let mut tx = self.begin_immediate().await?;
        require_version(&mut tx, model, version).await?;
        sqlx::query(
            "INSERT INTO aliases (model, alias, version, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(model, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(model)
        .bind(alias)
        .bind(version as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO alias_history (model, alias, version, at, actor, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(model)
        .bind(alias)
        .bind(version as i64)
        .bind(now)
        .bind(actor)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(AliasRecord {
            model: model.to_string(),
            alias: alias.to_string(),
            version,
            updated_at: now,
        })
    }

    async fn remove_alias(&self, model: &str, alias: &str) -> Result<bool> {
        let mut tx = self.begin_immediate().await?;
        let done = sqlx::query("DELETE FROM aliases WHERE model = ?1 AND alias = ?2")
            .bind(model)
            .bind(alias)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let removed = done.rows_affected() > 0;
        if removed {
            bump(&mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }

    async fn get_alias(&self, model: &str, alias: &str) -> Result<Option<AliasRecord>> {
        let row = sqlx::query("SELECT * FROM aliases WHERE model = ?1 AND alias = ?2")
            .bind(model)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(alias_from))
    }

    async fn list_aliases(&self, model: &str) -> Result<Vec<AliasRecord>> {
        let rows = sqlx::query("SELECT * FROM aliases WHERE model = ?1 ORDER BY alias")
            .bind(model)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(alias_from).collect())
    }

    async fn alias_history(&self, model: &str, alias: &str) -> Result<Vec<AliasChange>> {
        let rows =
            sqlx::query("SELECT * FROM alias_history WHERE model = ?1 AND alias = ?2 ORDER BY id")
                .bind(model)
                .bind(alias)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| AliasChange {
                id: row.get("id"),
                model: row.get("model"),
                alias: row.get("alias"),
                version: row.get::<i64, _>("version") as u64,
                at: row.get("at"),
                actor: row.get("actor"),
                reason: row.get("reason"),
                reverted: row.get::<i64, _>("reverted") != 0,
            })
            .collect())
    }

    async fn rollback_alias(
        &self,
        model: &str,
        alias: &str,
        actor: &str,
        reason: &str,
    ) -> Result<(u64, u64)> {
        let now = now_ms();
        let mut tx = self.begin_immediate().await?;
        let live: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT id, version FROM alias_history WHERE model = ?1 AND alias = ?2 AND reverted = 0
             ORDER BY id DESC LIMIT 2",
        )
        .bind(model)
        .bind(alias)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT version FROM aliases WHERE model = ?1 AND alias = ?2")
                .bind(model)
                .bind(alias)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(current) = current else {
            return Err(RegistryError::NotFound(format!(
                "model '{model}' has no alias '{alias}'"
            )));
        };
        let [(top_id, _), (_, previous)] = live.as_slice() else {
            return Err(RegistryError::Conflict(format!(
                "model '{model}': alias '{alias}' has no earlier version to roll back to"
            )));
        };
        sqlx::query("UPDATE alias_history SET reverted = 1 WHERE id = ?1")
            .bind(top_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "UPDATE aliases SET version = ?3, updated_at = ?4 WHERE model = ?1 AND alias = ?2",
        )
        .bind(model)
        .bind(alias)
        .bind(previous)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The rollback itself is history too (marked reverted so a second rollback keeps
        // walking back instead of undoing this one).
        sqlx::query(
            "INSERT INTO alias_history (model, alias, version, at, actor, reason, reverted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
        )
        .bind(model)
        .bind(alias)
        .bind(previous)
        .bind(now)
        .bind(actor)
        .bind(format!("rollback: {reason}"))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok((current as u64, *previous as u64))
    }

    async fn set_policy(&self, model: &str, policy: Option<&TrafficPolicy>) -> Result<()> {
        let mut tx = self.begin_immediate().await?;
        if self.get_model_in(&mut tx, model).await?.is_none() {
            return Err(unknown_model(model));
        }
        match policy.filter(|p| !p.is_empty()) {
            Some(p) => {
                let json = serde_json::to_string(p).map_err(|e| json_err("policy", e))?;
                sqlx::query(
                    "INSERT INTO policies (model, policy, updated_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(model) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                )
                .bind(model)
                .bind(json)
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            }
            None => {
                sqlx::query("DELETE FROM policies WHERE model = ?1")
                    .bind(model)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn get_policy(&self, model: &str) -> Result<Option<TrafficPolicy>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT policy FROM policies WHERE model = ?1")
                .bind(model)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        json.map(|j| serde_json::from_str(&j).map_err(|e| json_err("policy", e)))
            .transpose()
    }

    async fn create_rollout(
        &self,
        model: &str,
        baseline: u64,
        candidate: u64,
        plan: &RolloutPlan,
    ) -> Result<RolloutRecord> {
        let now = now_ms();
        let plan_json = serde_json::to_string(plan).map_err(|e| json_err("rollout plan", e))?;
        let mut tx = self.begin_immediate().await?;
        for v in [baseline, candidate] {
            require_version(&mut tx, model, v).await?;
        }
        let running: Option<i64> =
            sqlx::query_scalar("SELECT id FROM rollouts WHERE model = ?1 AND state = 'running'")
                .bind(model)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let Some(id) = running {
            return Err(RegistryError::Conflict(format!(
                "model '{model}' already has rollout {id} running; cancel it first"
            )));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO rollouts (model, baseline, candidate, plan, state, step, step_started_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'running', 0, ?5, ?5, ?5) RETURNING id",
        )
        .bind(model)
        .bind(baseline as i64)
        .bind(candidate as i64)
        .bind(&plan_json)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(RolloutRecord {
            id,
            model: model.to_string(),
            baseline,
            candidate,
            plan: plan.clone(),
            state: RolloutState::Running,
            step: 0,
            step_started_at: now,
            created_at: now,
            updated_at: now,
            reason: None,
        })
    }

    async fn update_rollout(
        &self,
        id: i64,
        state: RolloutState,
        step: usize,
        reason: Option<&str>,
    ) -> Result<RolloutRecord> {
        let now = now_ms();
        let mut tx = self.begin_immediate().await?;
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .ok_or_else(|| RegistryError::NotFound(format!("no rollout {id}")))?;
        let current = rollout_from(&row)?;
        if current.state != RolloutState::Running {
            return Err(RegistryError::Conflict(format!(
                "rollout {id} is already {}",
                current.state.as_str()
            )));
        }
        let step_started = if step != current.step {
            now
        } else {
            current.step_started_at
        };
        sqlx::query(
            "UPDATE rollouts SET state = ?2, step = ?3, step_started_at = ?4, updated_at = ?5, reason = ?6 WHERE id = ?1",
        )
        .bind(id)
        .bind(state.as_str())
        .bind(step as i64)
        .bind(step_started)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        bump(&mut *tx).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(RolloutRecord {
            state,
            step,
            step_started_at: step_started,
            updated_at: now,
            reason: reason.map(str::to_string),
            ..current
        })
    }

    async fn get_rollout(&self, id: i64) -> Result<Option<RolloutRecord>> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(rollout_from).transpose()
    }

    async fn active_rollout(&self, model: &str) -> Result<Option<RolloutRecord>> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE model = ?1 AND state = 'running'")
            .bind(model)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(rollout_from).transpose()
    }

    async fn list_rollouts(&self, model: Option<&str>) -> Result<Vec<RolloutRecord>> {
        let rows =
            sqlx::query("SELECT * FROM rollouts WHERE (?1 IS NULL OR model = ?1) ORDER BY id DESC")
                .bind(model)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        rows.iter().map(rollout_from).collect()
    }

    async fn append_event(&self, event: NewEvent) -> Result<EventRecord> {
        let now = now_ms();
        let details =
            serde_json::to_string(&event.details).map_err(|e| json_err("event details", e))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (at, model, kind, message, details) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .bind(now)
        .bind(&event.model)
        .bind(&event.kind)
        .bind(&event.message)
        .bind(details)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(EventRecord {
            id,
            at: now,
            model: event.model,
            kind: event.kind,
            message: event.message,
            details: event.details,
        })
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM (
                SELECT * FROM events
                WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR id > ?2) AND (?3 IS NULL OR kind = ?3)
                ORDER BY id DESC LIMIT ?4
             ) ORDER BY id",
        )
        .bind(&filter.model)
        .bind(filter.after)
        .bind(&filter.kind)
        .bind(filter.limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_from).collect()
    }
}

impl SqliteStore {
    async fn get_model_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
        name: &str,
    ) -> Result<Option<ModelRecord>> {
        let row = sqlx::query("SELECT * FROM models WHERE name = ?1")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(model_from))
    }
}
