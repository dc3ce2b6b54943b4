//! Write transactions, the append lock, and SQLite's insert of audit
//! events.
//!
//! Every event is written by [`crate::batch::apply`] in a [`WriteTx`]: the
//! group-commit writer's groups and each state change's own transaction
//! (through [`crate::batch::insert_events`]) alike. So each backend has one
//! insert path: SQLite's multi-row `INSERT` ([`write_events`]), and
//! PostgreSQL's binary `COPY` (`batch`, `pg_copy`). That needs PostgreSQL's
//! own driver, so writes run on native connections; a state change's other
//! SQL reaches the same connection through the `Any` driver's interface
//! (`&mut WriteTx` is an `Any` executor), and commits with its event.
//!
//! # Invariants
//!
//! - **Order.** `seq` is the global append order. It is assigned as
//!   `max(seq) + 1` while the appender holds the append lock, so it is
//!   gapless and follows commit order: a reader that has seen `seq = n` will
//!   never later find a committed event with `seq <= n` it did not see. That
//!   is what lets a forwarder keep a single integer cursor. On SQLite the
//!   lock is the file's write lock, which every write transaction takes at
//!   `BEGIN IMMEDIATE`; on PostgreSQL a transaction-level advisory lock
//!   (`APPEND_LOCK`) taken before the first read of the log and released at
//!   commit, so several server processes on one database still agree.
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
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{
    Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor, PgPool, Postgres, Row,
    Transaction,
};
use sqlx_core::any::AnyConnectionBackend;
use uuid::Uuid;

use crate::sql::{placeholders, INSERT_CHUNK};
use crate::{chain, rows, Store, StoreError};

/// Arbitrary constant naming the PostgreSQL advisory lock of the log.
const APPEND_LOCK: i64 = 0x6175_6469_746c_616b; // "auditlak"

/// `BEGIN` and the append lock as one PostgreSQL simple query: one round
/// trip instead of two for every group the writer commits.
static BEGIN_LOCKED_PG: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})"));

/// The connections writes run on.
#[derive(Clone)]
pub(crate) enum WritePool {
    /// SQLite's single write connection, so writes never contend for the
    /// database lock within a process.
    Sqlite(AnyPool),
    /// PostgreSQL through its own driver: binary `COPY` and typed array
    /// parameters are not in the `Any` driver.
    Postgres(PgPool),
}

/// A write transaction on either backend.
#[derive(Debug)]
pub(crate) enum WriteTx {
    /// SQLite, through the `Any` driver like the rest of the store.
    Sqlite(Transaction<'static, Any>),
    /// PostgreSQL on a native connection.
    Postgres(Transaction<'static, Postgres>),
}

impl WritePool {
    /// Opens a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and then
    /// writes fails at once with "database is locked" when another process
    /// on the same file wrote meanwhile (SQLite does not wait there, to
    /// avoid a deadlock), whereas `IMMEDIATE` waits under `busy_timeout`.
    /// One process has one write connection, so this costs it nothing. On
    /// PostgreSQL the append lock is taken later ([`WriteTx::lock_log`]),
    /// so a state change's own statements run beside other appends.
    pub(crate) async fn begin(&self) -> Result<WriteTx, StoreError> {
        Ok(match self {
            WritePool::Sqlite(pool) => WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            WritePool::Postgres(pool) => WriteTx::Postgres(pool.begin().await?),
        })
    }

    /// Opens a write transaction that already holds the append lock, for
    /// the group-commit writer. sqlx sends a custom begin statement as it is
    /// and fails unless the database then reports an open transaction, so a
    /// lock that could not be taken is an error here, not a transaction
    /// without it.
    pub(crate) async fn begin_locked(&self) -> Result<WriteTx, StoreError> {
        match self {
            WritePool::Postgres(pool) => Ok(WriteTx::Postgres(
                pool.begin_with(BEGIN_LOCKED_PG.as_str()).await?,
            )),
            WritePool::Sqlite(_) => self.begin().await,
        }
    }

    /// Closes every connection, waiting for running statements.
    pub(crate) async fn close(&self) {
        match self {
            WritePool::Sqlite(pool) => pool.close().await,
            WritePool::Postgres(pool) => pool.close().await,
        }
    }
}

impl WriteTx {
    /// Takes the append lock for the rest of the transaction (PostgreSQL;
    /// a SQLite write transaction holds it from its start). Taking it again
    /// in the same transaction is harmless.
    pub(crate) async fn lock_log(&mut self) -> Result<(), StoreError> {
        if let WriteTx::Postgres(tx) = self {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Commits; the append lock, if held, goes with it.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await?,
            WriteTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Rolls back at once, releasing the append lock, where dropping the
    /// transaction would leave that to the connection's next use.
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => tx.rollback().await?,
            WriteTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// The store's SQL runs on a write transaction as on any `Any` connection:
/// on PostgreSQL through the `Any` driver's interface over the native
/// connection, which is what an `Any` connection to PostgreSQL does inside.
impl<'c> Executor<'c> for &'c mut WriteTx {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteTx::Sqlite(tx) => (&mut **tx).fetch_many(query),
            WriteTx::Postgres(tx) => match query.take_arguments() {
                Ok(args) => AnyConnectionBackend::fetch_many(
                    &mut **tx,
                    query.sql(),
                    query.persistent(),
                    args,
                ),
                Err(e) => Box::pin(futures::stream::once(async { Err(sqlx::Error::Encode(e)) })),
            },
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match self {
            WriteTx::Sqlite(tx) => (&mut **tx).fetch_optional(query),
            WriteTx::Postgres(tx) => match query.take_arguments() {
                Ok(args) => AnyConnectionBackend::fetch_optional(
                    &mut **tx,
                    query.sql(),
                    query.persistent(),
                    args,
                ),
                Err(e) => Box::pin(async { Err(sqlx::Error::Encode(e)) }),
            },
        }
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            WriteTx::Sqlite(tx) => (&mut **tx).prepare_with(sql, parameters),
            WriteTx::Postgres(tx) => AnyConnectionBackend::prepare_with(&mut **tx, sql, parameters),
        }
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match self {
            WriteTx::Sqlite(tx) => (&mut **tx).describe(sql),
            WriteTx::Postgres(tx) => AnyConnectionBackend::describe(&mut **tx, sql),
        }
    }
}

/// SQLite: the parent group of every org the events name, read under the
/// append lock: a move of the org that commits while this transaction
/// waits for the lock must be seen here, or an event placed after
/// `group.org.add` in the log would miss the group. Orgs that do not exist
/// are left out.
pub(crate) async fn resolve_parents<'e>(
    conn: &mut AnyConnection,
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
            placeholders(1, chunk.len())
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

/// SQLite: inserts events whose orgs are all in `parents`, numbering them
/// from the log's head and linking them into their chains. The caller
/// holds the append lock.
pub(crate) async fn write_events<'e>(
    conn: &mut AnyConnection,
    events: impl Iterator<Item = &'e NewEvent>,
    parents: &HashMap<Uuid, Option<Uuid>>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let head: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS head FROM audit_events")
        .fetch_one(&mut *conn)
        .await?
        .try_get("head")?;
    let stored = number(events, parents, head);
    let links = chain::extend(conn, &stored).await?;
    for (chunk, links) in stored.chunks(INSERT_CHUNK).zip(links.chunks(INSERT_CHUNK)) {
        let sql = format!(
            "INSERT INTO audit_events ({}, chain_hash) VALUES {}",
            rows::EVENT_COLS,
            placeholders(chunk.len(), 13)
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
    Ok(stored)
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

impl Store {
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
