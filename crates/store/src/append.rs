//! The one path that writes audit events.
//!
//! # Invariants
//!
//! - **Order.** `seq` is the global append order. It is assigned as
//!   `max(seq) + 1` while the appender holds the append lock, so it is
//!   gapless and follows commit order: a reader that has seen `seq = n` will
//!   never later find a committed event with `seq <= n` it did not see. That
//!   is what lets a forwarder keep a single integer cursor. On SQLite the
//!   lock is the single write connection; on PostgreSQL a transaction-level
//!   advisory lock (`APPEND_LOCK`) taken at the start of the append and
//!   released at commit, so several server processes on one database still
//!   agree.
//! - **Atomicity.** Events are inserted in the caller's transaction, beside
//!   the state change they describe.
//! - **Scope.** An org event's `group_id` is read from the org row inside
//!   the same transaction, under the append lock: the parent group at the
//!   event's place in the log.
//! - **Idempotency.** Ingested events carry a client ID unique per target
//!   tenant; a repeat returns the stored event and writes nothing. The IDs
//!   are looked up under the append lock, so concurrent repeats replay too.
//! - **Integrity.** Each event is linked into its tenant's hash chain as it
//!   is written, from the chain's head, which moves in the same transaction
//!   (see [`crate::chain`]).

use std::collections::HashMap;

use auditlake_core::{AuditEvent, NewEvent, Scope};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};
use uuid::Uuid;

use crate::writer::Job;
use crate::{chain, rows, Backend, Store, StoreError};

/// Arbitrary constant naming the PostgreSQL advisory lock of the log.
const APPEND_LOCK: i64 = 0x6175_6469_746c_616b; // "auditlak"

/// Rows per multi-row INSERT: 11 parameters each stays far below both
/// backends' parameter limits.
pub(crate) const INSERT_CHUNK: usize = 500;

/// Rows per JSON parameter of a PostgreSQL bulk statement.
pub(crate) const PG_JSON_CHUNK: usize = 5_000;

/// An event row as a JSON object for `json_to_recordset`.
#[derive(serde::Serialize)]
struct EventRow<'a> {
    seq: i64,
    id: Uuid,
    created_us: i64,
    event: &'a str,
    org_id: Option<Uuid>,
    group_id: Option<Uuid>,
    user_id: Option<Uuid>,
    project_id: Option<&'a str>,
    content: &'a str,
    source_ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    ingested_by: Option<Uuid>,
    chain_hash: &'a str,
}

impl<'a> EventRow<'a> {
    fn of(e: &'a AuditEvent, chain_hash: &'a str) -> Self {
        Self {
            seq: e.seq,
            id: e.id,
            created_us: e.created_us,
            event: &e.event,
            org_id: e.org_id,
            group_id: e.group_id,
            user_id: e.user_id,
            project_id: e.project_id.as_deref(),
            content: &e.content,
            source_ip: e.source_ip.as_deref(),
            user_agent: e.user_agent.as_deref(),
            ingested_by: e.ingested_by,
            chain_hash,
        }
    }
}

/// Appends `events` in the transaction behind `conn`, returning them as
/// stored (with `seq` and `group_id` filled in).
pub(crate) async fn insert_events(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[NewEvent],
) -> Result<Vec<AuditEvent>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    lock_log(conn, backend).await?;
    let parents = resolve_parents(conn, backend, events.iter()).await?;
    if events
        .iter()
        .any(|e| matches!(e.scope, Scope::Org(o) if !parents.contains_key(&o)))
    {
        return Err(StoreError::NotFound("organization"));
    }
    write_events(conn, backend, events.iter(), &parents).await
}

/// The parent group of every org the events name, read under the append
/// lock: a move of the org that commits while this transaction waits for
/// the lock must be seen here, or an event placed after `group.org.add` in
/// the log would miss the group. Orgs that do not exist are left out.
pub(crate) async fn resolve_parents<'e>(
    conn: &mut AnyConnection,
    backend: Backend,
    events: impl Iterator<Item = &'e NewEvent>,
) -> Result<HashMap<Uuid, Option<Uuid>>, StoreError> {
    let mut orgs: Vec<Uuid> = events
        .filter_map(|e| match e.scope {
            Scope::Org(o) => Some(o),
            _ => None,
        })
        .collect();
    orgs.sort_unstable();
    orgs.dedup();
    let mut parents = HashMap::with_capacity(orgs.len());
    for chunk in orgs.chunks(INSERT_CHUNK) {
        let sql = format!(
            "SELECT id, group_id FROM orgs WHERE id IN {}",
            placeholders(backend, 1, chunk.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for o in chunk {
            q = q.bind(o.to_string());
        }
        for row in q.fetch_all(&mut *conn).await? {
            parents.insert(rows::uuid(&row, "id")?, rows::opt_uuid(&row, "group_id")?);
        }
    }
    Ok(parents)
}

/// Inserts events whose orgs are all in `parents`, numbering them from the
/// log's head. The caller holds the append lock.
pub(crate) async fn write_events<'e>(
    conn: &mut AnyConnection,
    backend: Backend,
    events: impl Iterator<Item = &'e NewEvent>,
    parents: &HashMap<Uuid, Option<Uuid>>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let head = read_head(conn).await?;
    let stored = number(events, parents, head);
    let links = chain::extend(conn, backend, &stored).await?;
    insert_rows(conn, backend, &stored, &links).await?;
    Ok(stored)
}

/// The log's head: the highest `seq`, 0 when empty.
pub(crate) async fn read_head(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(seq), 0) AS head FROM audit_events")
            .fetch_one(&mut *conn)
            .await?
            .try_get("head")?,
    )
}

/// `events` as they will be stored after `head`: numbered in order, each
/// org event with its parent group from `parents`.
pub(crate) fn number<'e>(
    events: impl Iterator<Item = &'e NewEvent>,
    parents: &HashMap<Uuid, Option<Uuid>>,
    head: i64,
) -> Vec<AuditEvent> {
    events
        .enumerate()
        .map(|(i, e)| {
            let (org_id, group_id) = match e.scope {
                Scope::Org(o) => (Some(o), parents.get(&o).copied().flatten()),
                Scope::Group(g) => (None, Some(g)),
                Scope::User => (None, None),
            };
            AuditEvent {
                seq: head + 1 + i as i64,
                id: e.id,
                created_us: e.created_us,
                event: e.event.as_str().to_owned(),
                org_id,
                group_id,
                user_id: e.user_id,
                project_id: e.project_id.clone(),
                content: e.content.clone(),
                source_ip: e.source_ip.clone(),
                user_agent: e.user_agent.clone(),
                ingested_by: e.ingested_by,
            }
        })
        .collect()
}

/// The `audit_events` rows of `stored` with their chain links.
async fn insert_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    stored: &[AuditEvent],
    links: &[String],
) -> Result<(), StoreError> {
    match backend {
        Backend::Sqlite => {
            for (chunk, links) in stored.chunks(INSERT_CHUNK).zip(links.chunks(INSERT_CHUNK)) {
                let sql = format!(
                    "INSERT INTO audit_events ({}, chain_hash) VALUES {}",
                    rows::EVENT_COLS,
                    placeholders(backend, chunk.len(), 13, 1)
                );
                let mut q = sqlx::query(&sql);
                for (e, link) in chunk.iter().zip(links) {
                    q = q
                        .bind(e.seq)
                        .bind(e.id.to_string())
                        .bind(e.created_us)
                        .bind(e.event.as_str())
                        .bind(e.org_id.map(|u| u.to_string()))
                        .bind(e.group_id.map(|u| u.to_string()))
                        .bind(e.user_id.map(|u| u.to_string()))
                        .bind(e.project_id.as_deref())
                        .bind(e.content.as_str())
                        .bind(e.source_ip.as_deref())
                        .bind(e.user_agent.as_deref())
                        .bind(e.ingested_by.map(|u| u.to_string()))
                        .bind(link.as_str());
                }
                q.execute(&mut *conn).await?;
            }
        }
        // One JSON parameter holding every row: PostgreSQL expands it with
        // json_to_recordset. Thousands of bound parameters cost more to
        // send, parse and bind than the rows themselves.
        Backend::Postgres => {
            for (chunk, links) in stored
                .chunks(PG_JSON_CHUNK)
                .zip(links.chunks(PG_JSON_CHUNK))
            {
                sqlx::query(&PG_INSERT_EVENTS)
                    .bind(pg_event_rows(chunk, links)?)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(())
}

/// PostgreSQL: the statement inserting the event rows held by its JSON
/// parameter `$1` (see [`pg_event_rows`]).
static PG_INSERT_EVENTS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO audit_events ({cols}, chain_hash) \
         SELECT {cols}, chain_hash FROM json_to_recordset($1::json) \
         AS r(seq bigint, id text, created_us bigint, event text, org_id text, \
         group_id text, user_id text, project_id text, content text, \
         source_ip text, user_agent text, ingested_by text, chain_hash text)",
        cols = rows::EVENT_COLS
    )
});

/// PostgreSQL: `stored` with their links as the JSON parameter of
/// [`PG_INSERT_EVENTS`].
fn pg_event_rows(stored: &[AuditEvent], links: &[String]) -> Result<String, StoreError> {
    let rows: Vec<EventRow> = stored
        .iter()
        .zip(links)
        .map(|(e, link)| EventRow::of(e, link))
        .collect();
    serde_json::to_string(&rows).map_err(|e| StoreError::Corrupt(format!("encoding rows: {e}")))
}

/// `BEGIN` and the append lock as one PostgreSQL simple query: one round
/// trip instead of two for every group the writer commits.
static BEGIN_LOCKED_PG: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})"));

/// Opens a PostgreSQL write transaction that already holds the append lock
/// (see [`lock_log`]), on the group-commit writer's own connection. sqlx
/// sends a custom begin statement as it is and fails unless the database
/// then reports an open transaction, so a lock that could not be taken is
/// an error here, not a transaction without it.
pub(crate) async fn begin_locked_pg(
    pool: &sqlx::PgPool,
) -> Result<Transaction<'static, sqlx::Postgres>, StoreError> {
    Ok(pool.begin_with(BEGIN_LOCKED_PG.as_str()).await?)
}

/// Opens a SQLite write transaction holding the append lock, which there is
/// the file's write lock, taken at `BEGIN IMMEDIATE`: a deferred transaction
/// that reads first and then writes fails at once with "database is locked"
/// when another process on the same file wrote meanwhile (SQLite does not
/// wait there, to avoid a deadlock), whereas `IMMEDIATE` waits for the lock
/// under `busy_timeout`. One process has one write connection, so this
/// costs it nothing.
pub(crate) async fn begin_locked_sqlite(
    pool: &AnyPool,
) -> Result<Transaction<'static, Any>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Takes the append lock for the rest of the transaction behind `conn`
/// (PostgreSQL; on SQLite the single write connection is the lock). Taking
/// it again in the same transaction is harmless.
pub(crate) async fn lock_log(conn: &mut AnyConnection, backend: Backend) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// One event submitted through the ingest API.
#[derive(Debug, Clone)]
pub struct IngestItem {
    /// The client's idempotency ID, unique per target tenant.
    pub idempotency_id: String,
    /// A hash of what the client sent, to tell a true repeat from a clash.
    pub request_hash: String,
    /// The event to store when the ID is new.
    pub event: NewEvent,
}

/// The `api.access` event of the request that ingests a batch, written in
/// the batch's own transaction so the request costs one commit, not two.
/// The request's answer depends on the batch's outcome, so there is one
/// event per possible answer; the writer appends the one that applies.
#[derive(Debug, Clone)]
pub struct IngestAccess {
    /// Appended when the batch stores at least one new event.
    pub created: NewEvent,
    /// Appended when every item replays an earlier one.
    pub replayed: NewEvent,
}

/// What happened to one ingested item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored now.
    Created(AuditEvent),
    /// The ID was seen before with the same content: the original event.
    Replayed(AuditEvent),
}

impl IngestOutcome {
    /// The stored event either way.
    pub fn event(&self) -> &AuditEvent {
        match self {
            IngestOutcome::Created(e) | IngestOutcome::Replayed(e) => e,
        }
    }
}

impl Store {
    /// Appends events that describe no other state change (`api.access`,
    /// for example), committed by the group-commit writer.
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<AuditEvent>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let events = events.to_vec();
        self.submit(Job::Append { events, reply }, rx).await
    }

    /// Hands a job to the group-commit writer and waits for its answer.
    async fn submit<T>(
        &self,
        job: Job,
        rx: tokio::sync::oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer dropped the job".into()))?
    }

    /// Stores a batch of ingested events for the tenant `scope_id`, all or
    /// none. Items whose idempotency ID was already used with the same
    /// request hash come back as [`IngestOutcome::Replayed`]; with another
    /// hash the whole batch fails with [`StoreError::Conflict`].
    pub async fn ingest(
        &self,
        scope_id: Uuid,
        items: Vec<IngestItem>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        self.ingest_recorded(scope_id, items, None).await
    }

    /// [`Store::ingest`], also appending the request's `access` event in
    /// the same transaction when the batch succeeds. When it fails nothing
    /// is written, the access event included, and the caller records it.
    pub async fn ingest_recorded(
        &self,
        scope_id: Uuid,
        items: Vec<IngestItem>,
        access: Option<IngestAccess>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit(
            Job::Ingest {
                scope_id,
                items,
                access: access.map(Box::new),
                reply,
            },
            rx,
        )
        .await
    }

    /// Events with `seq > after`, in append order, at most `limit`. The
    /// reader's cursor for following the log.
    pub async fn read_log(&self, after: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            rows::EVENT_COLS
        );
        sqlx::query(&sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(rows::event)
            .collect()
    }

    /// The newest `seq`, 0 when the log is empty.
    pub async fn head(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS head FROM audit_events")
                .fetch_one(&self.read)
                .await?
                .try_get("head")?,
        )
    }
}

/// `rows` groups of `cols` placeholders, `(..),(..)`, numbered from
/// `first`. SQLite gets anonymous `?`: binding numbered parameters costs it
/// a linear name lookup per parameter, quadratic over a 5,500-parameter
/// insert, enough to dominate ingest. PostgreSQL needs `$n`.
pub(crate) fn placeholders(backend: Backend, rows: usize, cols: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
            }
            n += 1;
        }
        sql.push(')');
    }
    sql
}
