//! Cloud event integrations and the forwarder's durable state.
//!
//! # Invariants
//!
//! - **Start at the head.** A new integration's cursor is the `seq` just
//!   before its own creation event, read under the append lock in the
//!   creating transaction: it receives that event and everything after,
//!   nothing before (design.md: "begins forwarding immediately").
//! - **Cursor moves only on acknowledgement.** [`Store::record_delivery`]
//!   of an acknowledged batch is the only forward move, and it lands only
//!   while the caller still holds the integration's lease and the settings
//!   revision it read: a worker whose lease was taken over, or whose
//!   integration was replayed or re-pointed meanwhile, cannot overwrite
//!   the newer state.
//! - **Leases.** Several processes may share a PostgreSQL database; one
//!   worker holds an integration at a time under an expiring lease taken
//!   with a conditional UPDATE, so a crashed holder is replaced once its
//!   lease runs out.
//! - **Tenant checks.** Every user-facing read and write names the owning
//!   scope in its `WHERE` clause; another tenant's integration is "not
//!   found". The forwarder's own reads ([`Store::integration_by_id`]) are
//!   not reachable from the API.

use auditlake_core::integration::{CloudTrailConfig, Status, KIND_AWS_CLOUDTRAIL};
use auditlake_core::{time_fmt, Actor, AuditEvent, Integration, Scope};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::append::{WritePool, WriteTx};
use crate::batch::insert_events;
use crate::tenants::{Page, PageOf};
use crate::{rows, Store, StoreError};

const COLS: &str = "id, scope_kind, scope_id, kind, name, account_id, channel_arn, created_us, \
                    updated_us, revision, cursor_seq, status, last_error, last_error_us, \
                    last_success_us, delivered, failed";

fn integration(row: &AnyRow) -> Result<Integration, StoreError> {
    let kind: String = row.try_get("scope_kind")?;
    let scope_id = rows::uuid(row, "scope_id")?;
    let scope = match kind.as_str() {
        "org" => Scope::Org(scope_id),
        "group" => Scope::Group(scope_id),
        other => return Err(StoreError::Corrupt(format!("integration scope {other:?}"))),
    };
    let status: String = row.try_get("status")?;
    let account: String = row.try_get("account_id")?;
    let arn: String = row.try_get("channel_arn")?;
    Ok(Integration {
        id: rows::uuid(row, "id")?,
        scope,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        config: CloudTrailConfig::new(&account, &arn)
            .map_err(|(f, e)| StoreError::Corrupt(format!("integration {f}: {e}")))?,
        created_us: row.try_get("created_us")?,
        updated_us: row.try_get("updated_us")?,
        cursor: row.try_get("cursor_seq")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("integration status {status:?}")))?,
        last_error: row.try_get("last_error")?,
        last_error_us: row.try_get("last_error_us")?,
        last_success_us: row.try_get("last_success_us")?,
        delivered: row.try_get("delivered")?,
        failed: row.try_get("failed")?,
    })
}

fn scope_parts(scope: Scope) -> Result<(&'static str, String), StoreError> {
    match scope {
        Scope::Org(id) => Ok(("org", id.to_string())),
        Scope::Group(id) => Ok(("group", id.to_string())),
        Scope::User => Err(StoreError::Invalid(
            "an integration belongs to an org or a group".into(),
        )),
    }
}

/// The audit event name of a change to an integration. Snyk calls a group's
/// integration a "registration".
fn event_name(scope: Scope, verb: &str) -> &'static str {
    match (scope, verb) {
        (Scope::Group(_), "create") => "group.cloud_events.registration.create",
        (Scope::Group(_), "edit") => "group.cloud_events.registration.edit",
        (Scope::Group(_), "replay") => "group.cloud_events.registration.replay",
        (Scope::Group(_), _) => "group.cloud_events.registration.delete",
        (_, "create") => "org.cloud_events.integration.create",
        (_, "edit") => "org.cloud_events.integration.edit",
        (_, "replay") => "org.cloud_events.integration.replay",
        _ => "org.cloud_events.integration.delete",
    }
}

/// A change of an integration's settings; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct IntegrationChange {
    /// New name.
    pub name: Option<String>,
    /// New destination.
    pub config: Option<CloudTrailConfig>,
}

/// What a worker holds while it delivers: the integration as read when the
/// lease was taken, and the revision its acknowledgements are fenced by.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The integration.
    pub integration: Integration,
    /// The settings revision read with it.
    pub revision: i64,
    /// The lease holder's name.
    pub owner: String,
}

/// The outcome of one delivery attempt, recorded on the integration.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Every event up to `cursor` was acknowledged: `delivered` of them in
    /// this step, after `failed` entry failures that were retried.
    Acknowledged {
        /// The new cursor.
        cursor: i64,
        /// Events acknowledged.
        delivered: i64,
        /// Entry failures seen (and retried) on the way.
        failed: i64,
    },
    /// The attempt failed; nothing moved.
    Failed {
        /// `retrying` or `failing`.
        status: Status,
        /// What the destination or the network said.
        error: String,
        /// Entries the destination refused in this attempt.
        failed: i64,
    },
}

/// How far an integration is behind the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    /// Events waiting for delivery.
    pub events: i64,
    /// The oldest waiting event's time, epoch microseconds.
    pub oldest_us: Option<i64>,
}

impl Lag {
    /// The age of the oldest waiting event at `now_us`, in microseconds
    /// (0 when nothing waits).
    pub fn age_us(&self, now_us: i64) -> i64 {
        self.oldest_us.map_or(0, |o| (now_us - o).max(0))
    }
}

impl Store {
    /// Registers an integration for `scope` starting at the head of the log,
    /// with its audit event.
    pub async fn create_integration(
        &self,
        scope: Scope,
        name: &str,
        config: CloudTrailConfig,
        actor: &Actor,
    ) -> Result<Integration, StoreError> {
        let (kind, scope_id) = scope_parts(scope)?;
        let id = auditlake_core::new_id();
        let now = time_fmt::now_micros();
        let mut tx = self.write.begin().await?;
        crate::tenants::scope_exists(&mut tx, scope).await?;
        let ev = actor.event(
            event_name(scope, "create"),
            scope,
            json!({
                "integrationPublicId": id,
                "type": KIND_AWS_CLOUDTRAIL,
                "name": name,
                "config": config,
            }),
        );
        let stored = insert_events(&mut tx, &[ev]).await?;
        let cursor = stored[0].seq - 1;
        sqlx::query(
            "INSERT INTO integrations (id, scope_kind, scope_id, kind, name, account_id, \
             channel_arn, created_us, updated_us, cursor_seq) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8,$9)",
        )
        .bind(id.to_string())
        .bind(kind)
        .bind(scope_id)
        .bind(KIND_AWS_CLOUDTRAIL)
        .bind(name)
        .bind(config.account_id.clone())
        .bind(config.channel_arn.clone())
        .bind(now)
        .bind(cursor)
        .execute(&mut tx)
        .await?;
        let row = select_one(&mut tx, scope, id).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// `scope`'s integrations, by ID.
    pub async fn integrations_of(
        &self,
        scope: Scope,
        page: Page,
    ) -> Result<PageOf<Integration>, StoreError> {
        let (kind, scope_id) = scope_parts(scope)?;
        // `page` binds one parameter; the scope kind is one of two literals.
        let select = format!(
            "SELECT {COLS} FROM integrations WHERE scope_kind = '{kind}' AND scope_id = $1"
        );
        self.page(&select, scope_id, "id", page, integration).await
    }

    /// One of `scope`'s integrations.
    pub async fn integration(
        &self,
        scope: Scope,
        id: Uuid,
    ) -> Result<Option<Integration>, StoreError> {
        find(&self.read, scope, id).await
    }

    /// Changes the name and/or destination, writing the `edit` event with
    /// `before`/`after` of what changed. A new destination starts over as
    /// `pending`; the cursor stays, so the backlog goes to the new channel.
    pub async fn update_integration(
        &self,
        scope: Scope,
        id: Uuid,
        change: IntegrationChange,
        actor: &Actor,
    ) -> Result<Integration, StoreError> {
        let mut tx = self.write.begin().await?;
        let current = select_one(&mut tx, scope, id).await?;
        let (mut before, mut after) = (serde_json::Map::new(), serde_json::Map::new());
        if let Some(name) = change.name.as_ref().filter(|n| **n != current.name) {
            before.insert("name".into(), json!(current.name));
            after.insert("name".into(), json!(name));
        }
        let new_config = change.config.filter(|c| *c != current.config);
        if let Some(c) = &new_config {
            before.insert("config".into(), json!(current.config));
            after.insert("config".into(), json!(c));
        }
        if before.is_empty() {
            tx.rollback().await?;
            return Ok(current);
        }
        let name = change.name.unwrap_or(current.name.clone());
        let config = new_config.clone().unwrap_or(current.config.clone());
        let status = if new_config.is_some() {
            Status::Pending
        } else {
            current.status
        };
        sqlx::query(
            "UPDATE integrations SET name = $1, account_id = $2, channel_arn = $3, \
             updated_us = $4, status = $5, revision = revision + 1 WHERE id = $6",
        )
        .bind(name)
        .bind(config.account_id)
        .bind(config.channel_arn)
        .bind(time_fmt::now_micros())
        .bind(status.as_str())
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        let ev = actor.event(
            event_name(scope, "edit"),
            scope,
            json!({"integrationPublicId": id, "before": before, "after": after}),
        );
        insert_events(&mut tx, &[ev]).await?;
        let row = select_one(&mut tx, scope, id).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// Removes an integration: nothing more is forwarded to it.
    pub async fn delete_integration(
        &self,
        scope: Scope,
        id: Uuid,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        let current = select_one(&mut tx, scope, id).await?;
        sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await?;
        let ev = actor.event(
            event_name(scope, "delete"),
            scope,
            json!({"integrationPublicId": id, "name": current.name, "config": current.config}),
        );
        insert_events(&mut tx, &[ev]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Moves the cursor back so that the scope's events from `from_us` on
    /// are sent again (the lake keeps one copy per event ID; AWS may store a
    /// second). Events appended with an earlier client timestamp after the
    /// first event at `from_us` are sent again too: the log's order is
    /// `seq`, not time.
    pub async fn replay_integration(
        &self,
        scope: Scope,
        id: Uuid,
        from_us: i64,
        actor: &Actor,
    ) -> Result<Integration, StoreError> {
        let mut tx = self.write.begin().await?;
        let current = select_one(&mut tx, scope, id).await?;
        // Under the append lock, so no event can slip in between the cursor
        // read and the head of the log.
        tx.lock_log().await?;
        let col = scope_column(scope);
        let first: Option<i64> = sqlx::query(&format!(
            "SELECT MIN(seq) AS s FROM audit_events WHERE {col} = $1 AND created_us >= $2"
        ))
        .bind(current.external_id().to_string())
        .bind(from_us)
        .fetch_one(&mut tx)
        .await?
        .try_get("s")?;
        let ev = actor.event(
            event_name(scope, "replay"),
            scope,
            json!({
                "integrationPublicId": id,
                "from": time_fmt::format_micros(from_us),
                "before": {"cursor": current.cursor},
            }),
        );
        let stored = insert_events(&mut tx, &[ev]).await?;
        let cursor = first.map_or(stored[0].seq - 1, |s| s - 1);
        sqlx::query(
            "UPDATE integrations SET cursor_seq = $1, revision = revision + 1, updated_us = $2 \
             WHERE id = $3",
        )
        .bind(cursor)
        .bind(time_fmt::now_micros())
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        let row = select_one(&mut tx, scope, id).await?;
        self.commit(tx).await?;
        Ok(row)
    }

    /// How many of the scope's events wait after the integration's cursor,
    /// and the oldest one's time.
    pub async fn lag(&self, i: &Integration) -> Result<Lag, StoreError> {
        let col = scope_column(i.scope);
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, MIN(created_us) AS oldest FROM audit_events \
             WHERE {col} = $1 AND seq > $2"
        ))
        .bind(i.external_id().to_string())
        .bind(i.cursor)
        .fetch_one(&self.read)
        .await?;
        Ok(Lag {
            events: row.try_get("n")?,
            oldest_us: row.try_get("oldest")?,
        })
    }

    // ---- the forwarder's side ----

    /// Integrations with events after their cursor whose lease is free,
    /// expired or `owner`'s: what a forwarder process should pick up. One
    /// index probe per integration.
    pub async fn integrations_with_work(
        &self,
        owner: &str,
        now_us: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query(
            "SELECT id FROM integrations i \
             WHERE (lease_owner IS NULL OR lease_owner = $1 OR lease_until_us < $2) AND ( \
               (scope_kind = 'org' AND EXISTS (SELECT 1 FROM audit_events e \
                  WHERE e.org_id = i.scope_id AND e.seq > i.cursor_seq)) \
               OR (scope_kind = 'group' AND EXISTS (SELECT 1 FROM audit_events e \
                  WHERE e.group_id = i.scope_id AND e.seq > i.cursor_seq))) \
             ORDER BY id",
        )
        .bind(owner)
        .bind(now_us)
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(|r| rows::uuid(r, "id"))
        .collect()
    }

    /// Takes (or renews) the lease on integration `id` for `owner` until
    /// `until_us`, when it is free, expired or already `owner`'s. Returns
    /// what the holder works with, or `None` when another holds it or the
    /// integration is gone.
    pub async fn lease_integration(
        &self,
        id: Uuid,
        owner: &str,
        now_us: i64,
        until_us: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let taken = sqlx::query(
            "UPDATE integrations SET lease_owner = $1, lease_until_us = $2 WHERE id = $3 \
             AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until_us < $4)",
        )
        .bind(owner)
        .bind(until_us)
        .bind(id.to_string())
        .bind(now_us)
        .execute(self.autocommit())
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(None);
        }
        let sql = format!("SELECT {COLS} FROM integrations WHERE id = $1 AND lease_owner = $2");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(owner)
            .fetch_optional(self.autocommit())
            .await?;
        row.map(|r| {
            Ok(Lease {
                integration: integration(&r)?,
                revision: r.try_get("revision")?,
                owner: owner.to_owned(),
            })
        })
        .transpose()
    }

    /// Extends `lease` until `until_us`. `false` when it was lost (taken
    /// over after expiry, or the integration removed) or the settings
    /// changed: the holder must stop and lease afresh.
    pub async fn renew_lease(&self, lease: &Lease, until_us: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE integrations SET lease_until_us = $1 WHERE id = $2 AND lease_owner = $3 \
             AND revision = $4",
        )
        .bind(until_us)
        .bind(lease.integration.id.to_string())
        .bind(lease.owner.as_str())
        .bind(lease.revision)
        .execute(self.autocommit())
        .await?
        .rows_affected()
            == 1)
    }

    /// Gives a lease up (on shutdown), so another process takes over at
    /// once instead of after expiry.
    pub async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE integrations SET lease_owner = NULL, lease_until_us = 0 \
             WHERE id = $1 AND lease_owner = $2",
        )
        .bind(lease.integration.id.to_string())
        .bind(lease.owner.as_str())
        .execute(self.autocommit())
        .await?;
        Ok(())
    }

    /// The next events for the leased integration after `after`, in log
    /// order, at most `limit`.
    pub async fn events_for(
        &self,
        i: &Integration,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let col = scope_column(i.scope);
        let sql = format!(
            "SELECT {} FROM audit_events WHERE {col} = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            rows::EVENT_COLS
        );
        sqlx::query(&sql)
            .bind(i.external_id().to_string())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(rows::event)
            .collect()
    }

    /// Records a delivery attempt. Lands only while `lease` is still held
    /// at its revision; `false` otherwise (nothing changed, and the holder
    /// must lease afresh).
    pub async fn record_delivery(
        &self,
        lease: &Lease,
        delivery: &Delivery,
    ) -> Result<bool, StoreError> {
        let now = time_fmt::now_micros();
        let q = match delivery {
            Delivery::Acknowledged {
                cursor,
                delivered,
                failed,
            } => sqlx::query(
                "UPDATE integrations SET cursor_seq = $1, delivered = delivered + $2, \
                 failed = failed + $3, status = 'healthy', last_success_us = $4 \
                 WHERE id = $5 AND lease_owner = $6 AND revision = $7 AND cursor_seq <= $1",
            )
            .bind(*cursor)
            .bind(*delivered)
            .bind(*failed)
            .bind(now),
            Delivery::Failed {
                status,
                error,
                failed,
            } => sqlx::query(
                "UPDATE integrations SET status = $1, last_error = $2, failed = failed + $3, \
                 last_error_us = $4 WHERE id = $5 AND lease_owner = $6 AND revision = $7",
            )
            .bind(status.as_str())
            .bind(truncate(error, 2_000))
            .bind(*failed)
            .bind(now),
        };
        Ok(q.bind(lease.integration.id.to_string())
            .bind(lease.owner.as_str())
            .bind(lease.revision)
            .execute(self.autocommit())
            .await?
            .rows_affected()
            == 1)
    }

    /// Where a write outside a transaction runs: SQLite's write
    /// connection; on PostgreSQL any connection.
    fn autocommit(&self) -> &AnyPool {
        match &self.write {
            WritePool::Sqlite(pool) => pool,
            WritePool::Postgres(_) => &self.read,
        }
    }

    /// An integration by ID, for the forwarder and operators (no tenant
    /// check: not reachable from the API).
    pub async fn integration_by_id(&self, id: Uuid) -> Result<Option<Integration>, StoreError> {
        let sql = format!("SELECT {COLS} FROM integrations WHERE id = $1");
        sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(integration)
            .transpose()
    }

    /// Every integration, by ID, for operators (`auditlake integrations
    /// list`, `/metrics`).
    pub async fn all_integrations(&self, page: Page) -> Result<PageOf<Integration>, StoreError> {
        // `page` binds one parameter; this one matches every row.
        let select = format!("SELECT {COLS} FROM integrations WHERE id <> $1");
        self.page(&select, String::new(), "id", page, integration)
            .await
    }
}

fn scope_column(scope: Scope) -> &'static str {
    match scope {
        Scope::Group(_) => "group_id",
        _ => "org_id",
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One of `scope`'s integrations, through `conn` (the read pool, or a
/// transaction that is about to change it).
async fn find<'c, E>(conn: E, scope: Scope, id: Uuid) -> Result<Option<Integration>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let (kind, scope_id) = scope_parts(scope)?;
    let sql = format!(
        "SELECT {COLS} FROM integrations WHERE id = $1 AND scope_kind = $2 AND scope_id = $3"
    );
    sqlx::query(&sql)
        .bind(id.to_string())
        .bind(kind)
        .bind(scope_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(integration)
        .transpose()
}

/// Like [`find`], in a transaction; a missing integration is `NotFound`.
async fn select_one(conn: &mut WriteTx, scope: Scope, id: Uuid) -> Result<Integration, StoreError> {
    find(&mut *conn, scope, id)
        .await?
        .ok_or(StoreError::NotFound("integration"))
}
