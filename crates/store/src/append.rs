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

use std::collections::HashMap;

use auditlake_core::{AuditEvent, NewEvent, Scope};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::writer::Job;
use crate::{rows, Backend, Store, StoreError};

/// Arbitrary constant naming the PostgreSQL advisory lock of the log.
const APPEND_LOCK: i64 = 0x6175_6469_746c_616b; // "auditlak"

/// Rows per multi-row INSERT: 11 parameters each stays far below both
/// backends' parameter limits.
const INSERT_CHUNK: usize = 500;

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
    // Resolve parent groups under the lock: a move of the org that commits
    // while this transaction waits for the lock must be seen here, or an
    // event placed after `group.org.add` in the log would miss the group.
    let mut parents: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    for e in events {
        if let Scope::Org(org) = e.scope {
            if let std::collections::hash_map::Entry::Vacant(slot) = parents.entry(org) {
                let row = sqlx::query("SELECT group_id FROM orgs WHERE id = $1")
                    .bind(org.to_string())
                    .fetch_optional(&mut *conn)
                    .await?
                    .ok_or(StoreError::NotFound("organization"))?;
                slot.insert(rows::opt_uuid(&row, "group_id")?);
            }
        }
    }
    let head: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS head FROM audit_events")
        .fetch_one(&mut *conn)
        .await?
        .try_get("head")?;

    let stored: Vec<AuditEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (org_id, group_id) = match e.scope {
                Scope::Org(o) => (Some(o), parents[&o]),
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
            }
        })
        .collect();

    for chunk in stored.chunks(INSERT_CHUNK) {
        let mut sql = format!("INSERT INTO audit_events ({}) VALUES ", rows::EVENT_COLS);
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 11;
            sql.push('(');
            for c in 1..=11 {
                if c > 1 {
                    sql.push(',');
                }
                sql.push('$');
                sql.push_str(&(b + c).to_string());
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.seq)
                .bind(e.id.to_string())
                .bind(e.created_us)
                .bind(e.event.clone())
                .bind(e.org_id.map(|u| u.to_string()))
                .bind(e.group_id.map(|u| u.to_string()))
                .bind(e.user_id.map(|u| u.to_string()))
                .bind(e.project_id.clone())
                .bind(e.content.clone())
                .bind(e.source_ip.clone())
                .bind(e.user_agent.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(stored)
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
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.submit(
            Job::Ingest {
                scope_id,
                items,
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

/// The body of [`Store::ingest`], in the caller's transaction. Fails for
/// its own reasons (duplicates, conflicts, unknown tenant) only before it
/// writes anything (see `writer`).
pub(crate) async fn ingest_in(
    conn: &mut AnyConnection,
    backend: Backend,
    scope_id: Uuid,
    items: &[IngestItem],
) -> Result<Vec<IngestOutcome>, StoreError> {
    let mut distinct = std::collections::HashSet::new();
    if let Some(dup) = items.iter().find(|it| !distinct.insert(&it.idempotency_id)) {
        return Err(StoreError::Invalid(format!(
            "idempotency id {:?} appears more than once in the batch",
            dup.idempotency_id
        )));
    }
    // Look the IDs up under the append lock, so that a concurrent retry
    // of the same request, committed while this one waited, is seen and
    // replayed rather than failing on the unique key.
    lock_log(conn, backend).await?;
    let scope = scope_id.to_string();
    let mut seen: HashMap<String, (String, Uuid)> = HashMap::new();
    for chunk in items.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "SELECT idempotency_id, request_hash, event_id FROM ingest_ids \
             WHERE scope_id = $1 AND idempotency_id IN (",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("${}", i + 2));
        }
        sql.push(')');
        let mut q = sqlx::query(&sql).bind(scope.clone());
        for it in chunk {
            q = q.bind(it.idempotency_id.clone());
        }
        for row in q.fetch_all(&mut *conn).await? {
            seen.insert(
                row.try_get("idempotency_id")?,
                (row.try_get("request_hash")?, rows::uuid(&row, "event_id")?),
            );
        }
    }

    let mut fresh = Vec::new();
    for it in items {
        if let Some((hash, _)) = seen.get(&it.idempotency_id) {
            if *hash != it.request_hash {
                return Err(StoreError::Conflict(format!(
                    "idempotency id {:?} was already used for a different event",
                    it.idempotency_id
                )));
            }
        } else {
            fresh.push(it.event.clone());
        }
    }
    let created = insert_events(conn, backend, &fresh).await?;
    for chunk in items
        .iter()
        .filter(|it| !seen.contains_key(&it.idempotency_id))
        .zip(&created)
        .collect::<Vec<_>>()
        .chunks(INSERT_CHUNK)
    {
        let mut sql = String::from(
            "INSERT INTO ingest_ids (scope_id, idempotency_id, event_id, request_hash) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            let b = i * 4;
            sql.push_str(&format!("(${},${},${},${})", b + 1, b + 2, b + 3, b + 4));
        }
        let mut q = sqlx::query(&sql);
        for (it, ev) in chunk {
            q = q
                .bind(scope.clone())
                .bind(it.idempotency_id.clone())
                .bind(ev.id.to_string())
                .bind(it.request_hash.clone());
        }
        q.execute(&mut *conn).await?;
    }

    let replayed_ids: Vec<Uuid> = seen.values().map(|(_, id)| *id).collect();
    let replayed = events_by_id(conn, &replayed_ids).await?;

    let mut created = created.into_iter();
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        match seen.get(&it.idempotency_id) {
            Some((_, id)) => {
                let ev = replayed
                    .get(id)
                    .cloned()
                    .ok_or(StoreError::NotFound("replayed event"))?;
                out.push(IngestOutcome::Replayed(ev));
            }
            None => out.push(IngestOutcome::Created(
                created.next().expect("one stored event per fresh item"),
            )),
        }
    }
    Ok(out)
}

async fn events_by_id(
    conn: &mut AnyConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, AuditEvent>, StoreError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(INSERT_CHUNK) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {} FROM audit_events WHERE id IN ({})",
            rows::EVENT_COLS,
            placeholders.join(",")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let e = rows::event(&row)?;
            out.insert(e.id, e);
        }
    }
    Ok(out)
}
