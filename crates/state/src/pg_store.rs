//! [`PgStore`]: the `StateStore` port over PostgreSQL, for deployments with several nodes.
//!
//! Records are stored as JSONB next to the columns that key and order them. Where the file
//! backend holds its lock, this backend holds a transaction: an unsubscribe claim takes a
//! transaction-scoped advisory lock on its subscription, and leases are one atomic
//! `INSERT … ON CONFLICT … WHERE` whose fencing token grows with every new holder.
//! Queries are plain `sqlx::query` calls (no compile-time checked macros, so no database is
//! needed to build).
//!
//! Revisions of the scan checkpoints, unsubscribes and decisions are bumped by triggers in the
//! writing transaction and announced with `LISTEN`/`NOTIFY`, so reads of unchanged state are
//! answered from core's caches without a query (see [`crate::pg_revisions`]). The listener
//! holds one connection of the pool; a connection pooler in front of PostgreSQL must hand it a
//! session of its own (`pool_mode = session` for PgBouncer), as `LISTEN` needs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

use quietbox_core::store::{
    Claim, IdempotencyRecord, Incident, Lease, ScanCheckpoint, SenderDecision, SentLink, Snapshot,
    StateError, StatePart, StateStore, SubscriptionKey, TaskPage, TaskQuery, TaskRecord,
    TaskRetention, UnsubscribeAttempt, UnsubscribeEntry,
};

use crate::pg_revisions::{self, Revisions};
use crate::rules;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The PostgreSQL state store. Clones share one pool, one listener and one view of the
/// revisions; the listener stops with the last clone.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    revisions: Arc<Revisions>,
    _tasks: Arc<pg_revisions::Tasks>,
}

fn db(error: sqlx::Error) -> StateError {
    StateError::Backend(error.to_string())
}

fn to_json<T: Serialize>(value: &T) -> Result<Value, StateError> {
    serde_json::to_value(value).map_err(|e| StateError::Backend(format!("cannot serialize: {e}")))
}

fn from_json<T: DeserializeOwned>(table: &str, value: Value) -> Result<T, StateError> {
    serde_json::from_value(value).map_err(|e| StateError::Corrupt {
        location: format!("table {table}"),
        detail: e.to_string(),
    })
}

impl PgStore {
    /// Connects to `url` and runs the embedded migrations.
    pub async fn connect(url: &str) -> Result<Self, StateError> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(url)
            .await
            .map_err(db)?;
        Self::migrate(pool).await
    }

    /// Connects with every pooled connection using `schema` (created if missing), so that tests
    /// or tenants can share one database without sharing tables.
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self, StateError> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || schema.is_empty()
        {
            return Err(StateError::Backend(format!(
                "invalid schema name {schema:?}"
            )));
        }
        let bootstrap = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(db)?;
        bootstrap
            .execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str())
            .await
            .map_err(db)?;
        bootstrap.close().await;
        let set_path = format!("SET search_path TO {schema}");
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(db)?;
        Self::migrate(pool).await
    }

    /// Runs the migrations, then starts following the revisions (must run inside a Tokio
    /// runtime, as every `async` constructor here does).
    async fn migrate(pool: PgPool) -> Result<Self, StateError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StateError::Backend(format!("migration failed: {e}")))?;
        // The schema the tables were made in, as the triggers name it in their notifications.
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(db)?;
        let revisions = Arc::new(Revisions::new(schema));
        let tasks = pg_revisions::start(pool.clone(), Arc::clone(&revisions));
        Ok(PgStore {
            pool,
            revisions,
            _tasks: Arc::new(tasks),
        })
    }

    /// The pool, for operators' tooling.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The backend process id of the connection that listens for state changes, while it is
    /// connected and in step (`None` meanwhile: reads then ask the database for revisions).
    /// Operators find it in `pg_stat_activity`; tests terminate it.
    pub fn listener_pid(&self) -> Option<i32> {
        self.revisions.listener_pid()
    }

    /// After a committed write to `part`: this store's next read sees it, and the listener has
    /// (normally) heard it.
    /// A failure here does not fail the write (it committed): the listener or the periodic
    /// check learns the revision instead.
    async fn wrote(&self, part: StatePart) {
        if let Err(error) = self.revisions.wrote(&self.pool, part).await {
            tracing::warn!(%error, "cannot read a revision back after a write");
        }
    }

    async fn upsert_entry(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        entry: &UnsubscribeEntry,
    ) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO unsubscribe_entries (sender, list_id, entry, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sender, list_id) DO UPDATE SET entry = excluded.entry, updated_at = excluded.updated_at",
        )
        .bind(&entry.key.sender)
        .bind(entry.key.list_id.as_deref().unwrap_or(""))
        .bind(to_json(entry)?)
        .bind(entry.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn locked_entry(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError> {
        let list_id = key.list_id.as_deref().unwrap_or("");
        // Serializes claims of one subscription across nodes, also when no row exists yet.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
            .bind(&key.sender)
            .bind(list_id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        let row =
            sqlx::query("SELECT entry FROM unsubscribe_entries WHERE sender = $1 AND list_id = $2")
                .bind(&key.sender)
                .bind(list_id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        row.map(|r| from_json("unsubscribe_entries", r.get::<Value, _>("entry")))
            .transpose()
    }
}

#[async_trait]
impl StateStore for PgStore {
    async fn claim_unsubscribe(
        &self,
        attempt: UnsubscribeAttempt,
        stale_after: Duration,
    ) -> Result<Claim, StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let claim = match Self::locked_entry(&mut tx, &attempt.key).await? {
            Some(entry) if !rules::claimable(&entry, attempt.at, stale_after) => {
                Claim::Existing(entry)
            }
            Some(mut entry) => {
                rules::apply_attempt(&mut entry, attempt);
                Self::upsert_entry(&mut tx, &entry).await?;
                Claim::Claimed
            }
            None => {
                Self::upsert_entry(&mut tx, &rules::new_entry(attempt)).await?;
                Claim::Claimed
            }
        };
        tx.commit().await.map_err(db)?;
        if claim == Claim::Claimed {
            self.wrote(StatePart::Unsubscribes).await;
        }
        Ok(claim)
    }

    async fn complete_unsubscribe(&self, attempt: UnsubscribeAttempt) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let entry = match Self::locked_entry(&mut tx, &attempt.key).await? {
            Some(mut entry) => {
                rules::apply_attempt(&mut entry, attempt);
                entry
            }
            None => rules::new_entry(attempt),
        };
        Self::upsert_entry(&mut tx, &entry).await?;
        tx.commit().await.map_err(db)?;
        self.wrote(StatePart::Unsubscribes).await;
        Ok(())
    }

    async fn unsubscribe_entry(
        &self,
        key: &SubscriptionKey,
    ) -> Result<Option<UnsubscribeEntry>, StateError> {
        let row =
            sqlx::query("SELECT entry FROM unsubscribe_entries WHERE sender = $1 AND list_id = $2")
                .bind(&key.sender)
                .bind(key.list_id.as_deref().unwrap_or(""))
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|r| from_json("unsubscribe_entries", r.get::<Value, _>("entry")))
            .transpose()
    }

    async fn unsubscribe_history(
        &self,
        sender: Option<&str>,
    ) -> Result<Vec<UnsubscribeEntry>, StateError> {
        let rows = sqlx::query(
            "SELECT entry FROM unsubscribe_entries WHERE $1::text IS NULL OR sender = $1 ORDER BY sender, list_id",
        )
        .bind(sender)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let mut entries: Vec<UnsubscribeEntry> = rows
            .into_iter()
            .map(|r| from_json("unsubscribe_entries", r.get::<Value, _>("entry")))
            .collect::<Result<_, _>>()?;
        // Same order as the file backend (None list id first), whatever the collation.
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn insert_sent_link(&self, link: SentLink) -> Result<bool, StateError> {
        let result = sqlx::query(
            "INSERT INTO sent_links (link, sender, sent_at) VALUES ($1, $2, $3) ON CONFLICT (link) DO NOTHING",
        )
        .bind(&link.link)
        .bind(&link.sender)
        .bind(link.sent_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_sent_links(&self, links: &[String]) -> Result<(), StateError> {
        sqlx::query("DELETE FROM sent_links WHERE link = ANY($1)")
            .bind(links)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn sent_links(&self) -> Result<Vec<SentLink>, StateError> {
        let rows = sqlx::query("SELECT link, sender, sent_at FROM sent_links ORDER BY seq")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|r| SentLink {
                link: r.get("link"),
                sender: r.get("sender"),
                sent_at: r.get("sent_at"),
            })
            .collect())
    }

    async fn scan_checkpoint(&self, account: &str) -> Result<Option<ScanCheckpoint>, StateError> {
        let row = sqlx::query("SELECT data FROM scan_checkpoints WHERE account = $1")
            .bind(account)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| from_json("scan_checkpoints", r.get::<Value, _>("data")))
            .transpose()
    }

    async fn set_scan_checkpoint(&self, checkpoint: ScanCheckpoint) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO scan_checkpoints (account, data) VALUES ($1, $2)
             ON CONFLICT (account) DO UPDATE SET data = excluded.data",
        )
        .bind(&checkpoint.account)
        .bind(to_json(&checkpoint)?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.wrote(StatePart::ScanCheckpoints).await;
        Ok(())
    }

    async fn incident(&self) -> Result<Option<Incident>, StateError> {
        let row = sqlx::query("SELECT data FROM incident WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row.and_then(|r| r.get::<Option<Value>, _>("data")) {
            Some(value) => from_json("incident", value).map(Some),
            None => Ok(None),
        }
    }

    async fn set_incident(&self, incident: Option<Incident>) -> Result<(), StateError> {
        let data = incident.as_ref().map(to_json).transpose()?;
        sqlx::query("INSERT INTO incident (id, data) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET data = excluded.data")
            .bind(data)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_task(&self, task: TaskRecord) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO tasks (id, context_id, state, data, updated_at, owner_tenant, owner_subject, skill)
             VALUES ($1, $2, $3, $4, $5, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET context_id = excluded.context_id, state = excluded.state,
             data = excluded.data, updated_at = excluded.updated_at, skill = excluded.skill
             WHERE (tasks.state <> ALL($6) OR tasks.state = excluded.state)
             AND tasks.owner_tenant = excluded.owner_tenant AND tasks.owner_subject = excluded.owner_subject",
        )
        .bind(&task.id)
        .bind(&task.context_id)
        .bind(&task.state)
        .bind(to_json(&task)?)
        .bind(task.updated_at)
        // The row lock the upsert takes makes this check and the write one step: a final
        // state written by another replica is never replaced by another state, and the
        // owner never changes (`rules::task_may_be_replaced`).
        .bind(&rules::FINAL_TASK_STATES[..])
        .bind(&task.owner.tenant)
        .bind(&task.owner.subject)
        .bind(&task.skill)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_task(&self, id: &str) -> Result<Option<TaskRecord>, StateError> {
        let row = sqlx::query("SELECT data FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| from_json("tasks", r.get::<Value, _>("data")))
            .transpose()
    }

    async fn list_tasks(&self, query: TaskQuery) -> Result<TaskPage, StateError> {
        macro_rules! filter {
            () => {
                "($1::text IS NULL OR context_id = $1) AND ($2::text IS NULL OR state = $2)
                 AND ($3::text IS NULL OR (owner_tenant = $3 AND owner_subject = $4))
                 AND ($5::text[] IS NULL OR skill = ANY($5))"
            };
        }
        let size = rules::page_size(query.page_size);
        let offset = rules::page_offset(query.page_token.as_deref())?;
        let (tenant, subject) = match &query.owner {
            Some(owner) => (Some(owner.tenant.as_str()), Some(owner.subject.as_str())),
            None => (None, None),
        };
        let total: i64 =
            sqlx::query_scalar(concat!("SELECT count(*) FROM tasks WHERE ", filter!()))
                .bind(&query.context_id)
                .bind(&query.state)
                .bind(tenant)
                .bind(subject)
                .bind(&query.skills)
                .fetch_one(&self.pool)
                .await
                .map_err(db)?;
        let rows = sqlx::query(concat!(
            "SELECT data FROM tasks WHERE ",
            filter!(),
            " ORDER BY updated_at DESC, id COLLATE \"C\" LIMIT $6 OFFSET $7"
        ))
        .bind(&query.context_id)
        .bind(&query.state)
        .bind(tenant)
        .bind(subject)
        .bind(&query.skills)
        .bind(size as i64)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        let tasks: Vec<TaskRecord> = rows
            .into_iter()
            .map(|r| from_json("tasks", r.get::<Value, _>("data")))
            .collect::<Result<_, _>>()?;
        let total_size = usize::try_from(total).unwrap_or(0);
        let next = offset.saturating_add(tasks.len());
        Ok(TaskPage {
            next_page_token: (next < total_size).then(|| next.to_string()),
            tasks,
            total_size,
        })
    }

    async fn prune_tasks(
        &self,
        retention: TaskRetention,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let expired = sqlx::query("DELETE FROM tasks WHERE updated_at < $1")
            .bind(rules::task_cutoff(retention, now))
            .execute(&mut *tx)
            .await
            .map_err(db)?
            .rows_affected();
        let surplus = sqlx::query(
            "DELETE FROM tasks WHERE id IN
             (SELECT id FROM tasks ORDER BY updated_at DESC, id COLLATE \"C\" OFFSET $1)",
        )
        .bind(i64::try_from(retention.max_tasks).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
        tx.commit().await.map_err(db)?;
        Ok(usize::try_from(expired.saturating_add(surplus)).unwrap_or(usize::MAX))
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<Lease>, StateError> {
        let expires_at = now + rules::chrono_ttl(ttl)?;
        // One statement: take a free or expired lease with a new token, extend our own with the
        // same token, or return nothing when another holder has it.
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, fencing_token, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (name) DO UPDATE SET
               fencing_token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $4
                                    THEN leases.fencing_token ELSE leases.fencing_token + 1 END,
               holder = excluded.holder,
               expires_at = excluded.expires_at
             WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder
             RETURNING name, holder, fencing_token, expires_at",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_at)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(row.map(|r| Lease {
            name: r.get("name"),
            holder: r.get("holder"),
            fencing_token: u64::try_from(r.get::<i64, _>("fencing_token")).unwrap_or(0),
            expires_at: r.get("expires_at"),
        }))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Lease, StateError> {
        let expires_at = now + rules::chrono_ttl(ttl)?;
        let updated = sqlx::query(
            "UPDATE leases SET expires_at = $3 WHERE name = $1 AND fencing_token = $2 AND expires_at > $4",
        )
        .bind(&lease.name)
        .bind(lease.fencing_token as i64)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        if updated.rows_affected() == 1 {
            Ok(Lease {
                expires_at,
                ..lease.clone()
            })
        } else {
            Err(StateError::Conflict(format!(
                "lease {} with fencing token {} is no longer held",
                lease.name, lease.fencing_token
            )))
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StateError> {
        // Keep the row (its token must keep growing); just make it expired.
        sqlx::query(
            "UPDATE leases SET expires_at = 'epoch' WHERE name = $1 AND fencing_token = $2",
        )
        .bind(&lease.name)
        .bind(lease.fencing_token as i64)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn check_fence(
        &self,
        name: &str,
        fencing_token: u64,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let held: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM leases WHERE name = $1 AND fencing_token = $2 AND expires_at > $3",
        )
        .bind(name)
        .bind(fencing_token as i64)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        Ok(held.is_some())
    }

    async fn idempotency_get(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        let row = sqlx::query("SELECT data FROM idempotency WHERE key = $1 AND expires_at > $2")
            .bind(key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.map(|r| from_json("idempotency", r.get::<Value, _>("data")))
            .transpose()
    }

    async fn idempotency_put(
        &self,
        record: IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<IdempotencyRecord>, StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM idempotency WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency (key, data, expires_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(&record.key)
        .bind(to_json(&record)?)
        .bind(record.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let existing = if inserted.rows_affected() == 1 {
            None
        } else {
            let row = sqlx::query("SELECT data FROM idempotency WHERE key = $1")
                .bind(&record.key)
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            Some(from_json("idempotency", row.get::<Value, _>("data"))?)
        };
        tx.commit().await.map_err(db)?;
        Ok(existing)
    }

    async fn set_sender_decision(&self, decision: SenderDecision) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO sender_decisions (sender, data) VALUES ($1, $2) ON CONFLICT (sender) DO UPDATE SET data = excluded.data",
        )
        .bind(&decision.sender)
        .bind(to_json(&decision)?)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        self.wrote(StatePart::SenderDecisions).await;
        Ok(())
    }

    async fn sender_decisions(&self) -> Result<Vec<SenderDecision>, StateError> {
        let rows = sqlx::query("SELECT data FROM sender_decisions")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut decisions: Vec<SenderDecision> = rows
            .into_iter()
            .map(|r| from_json("sender_decisions", r.get::<Value, _>("data")))
            .collect::<Result<_, _>>()?;
        decisions.sort_by(|a, b| a.sender.cmp(&b.sender));
        Ok(decisions)
    }

    async fn revision(&self, part: StatePart) -> Result<Option<u64>, StateError> {
        self.revisions.get(&self.pool, part).await.map(Some)
    }

    async fn export(&self) -> Result<Snapshot, StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let json_column = |table: &'static str, sql: &'static str| (table, sql);
        let mut snapshot = Snapshot::default();
        for (table, sql) in [
            json_column(
                "unsubscribe_entries",
                "SELECT entry AS data FROM unsubscribe_entries ORDER BY sender, list_id",
            ),
            json_column(
                "scan_checkpoints",
                "SELECT data FROM scan_checkpoints ORDER BY account",
            ),
            json_column("tasks", "SELECT data FROM tasks ORDER BY id"),
            json_column("idempotency", "SELECT data FROM idempotency ORDER BY key"),
            json_column(
                "sender_decisions",
                "SELECT data FROM sender_decisions ORDER BY sender",
            ),
        ] {
            let rows = sqlx::query(sql).fetch_all(&mut *tx).await.map_err(db)?;
            for row in rows {
                let value: Value = row.get("data");
                match table {
                    "unsubscribe_entries" => snapshot.unsubscribes.push(from_json(table, value)?),
                    "scan_checkpoints" => snapshot.scan_checkpoints.push(from_json(table, value)?),
                    "tasks" => snapshot.tasks.push(from_json(table, value)?),
                    "idempotency" => snapshot.idempotency.push(from_json(table, value)?),
                    _ => snapshot.sender_decisions.push(from_json(table, value)?),
                }
            }
        }
        for row in sqlx::query("SELECT link, sender, sent_at FROM sent_links ORDER BY seq")
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
        {
            snapshot.sent_links.push(SentLink {
                link: row.get("link"),
                sender: row.get("sender"),
                sent_at: row.get("sent_at"),
            });
        }
        for row in
            sqlx::query("SELECT name, holder, fencing_token, expires_at FROM leases ORDER BY name")
                .fetch_all(&mut *tx)
                .await
                .map_err(db)?
        {
            snapshot.leases.push(Lease {
                name: row.get("name"),
                holder: row.get("holder"),
                fencing_token: u64::try_from(row.get::<i64, _>("fencing_token")).unwrap_or(0),
                expires_at: row.get("expires_at"),
            });
        }
        let incident = sqlx::query("SELECT data FROM incident WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
            .and_then(|row| row.get::<Option<Value>, _>("data"));
        if let Some(value) = incident {
            snapshot.incident = Some(from_json("incident", value)?);
        }
        tx.commit().await.map_err(db)?;
        Ok(snapshot)
    }

    async fn import(&self, snapshot: Snapshot) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "TRUNCATE unsubscribe_entries, sent_links, scan_checkpoints, incident, tasks, leases, idempotency, sender_decisions",
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for entry in &snapshot.unsubscribes {
            Self::upsert_entry(&mut tx, entry).await?;
        }
        for link in &snapshot.sent_links {
            sqlx::query("INSERT INTO sent_links (link, sender, sent_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(&link.link)
                .bind(&link.sender)
                .bind(link.sent_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for cp in &snapshot.scan_checkpoints {
            sqlx::query("INSERT INTO scan_checkpoints (account, data) VALUES ($1, $2)")
                .bind(&cp.account)
                .bind(to_json(cp)?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        if let Some(incident) = &snapshot.incident {
            sqlx::query("INSERT INTO incident (id, data) VALUES (1, $1)")
                .bind(to_json(incident)?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for task in &snapshot.tasks {
            sqlx::query("INSERT INTO tasks (id, context_id, state, data, updated_at, owner_tenant, owner_subject, skill) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&task.id)
                .bind(&task.context_id)
                .bind(&task.state)
                .bind(to_json(task)?)
                .bind(task.updated_at)
                .bind(&task.owner.tenant)
                .bind(&task.owner.subject)
                .bind(&task.skill)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for lease in &snapshot.leases {
            sqlx::query("INSERT INTO leases (name, holder, fencing_token, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(&lease.name)
                .bind(&lease.holder)
                .bind(lease.fencing_token as i64)
                .bind(lease.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for record in &snapshot.idempotency {
            sqlx::query("INSERT INTO idempotency (key, data, expires_at) VALUES ($1, $2, $3)")
                .bind(&record.key)
                .bind(to_json(record)?)
                .bind(record.expires_at)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        for decision in &snapshot.sender_decisions {
            sqlx::query("INSERT INTO sender_decisions (sender, data) VALUES ($1, $2)")
                .bind(&decision.sender)
                .bind(to_json(decision)?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        for part in [
            StatePart::ScanCheckpoints,
            StatePart::Unsubscribes,
            StatePart::SenderDecisions,
        ] {
            self.wrote(part).await;
        }
        Ok(())
    }
}
