//! The catalog's database: its schema, opening it, and the helpers every
//! part of the catalog reads and writes with.

use std::path::Path;
use std::str::FromStr as _;

use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::SqlitePool;

use crate::error::{LakeError, Result};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS event_data_stores (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    termination_protection INTEGER NOT NULL,
    multi_region INTEGER NOT NULL,
    organization INTEGER NOT NULL,
    billing_mode TEXT NOT NULL,
    selectors TEXT NOT NULL,
    tags TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS event_data_stores_name ON event_data_stores (account, name);
CREATE TABLE IF NOT EXISTS channels (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    destinations TEXT NOT NULL,
    tags TEXT NOT NULL,
    policy TEXT,
    created_ms INTEGER NOT NULL,
    success_ms INTEGER,
    success_event TEXT,
    attempt_ms INTEGER,
    attempt_event TEXT,
    error_code TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS channels_name ON channels (account, name);
CREATE TABLE IF NOT EXISTS event_ids (
    key BLOB PRIMARY KEY,
    event_id BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    store TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_store ON pending (store, seq);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    store TEXT NOT NULL,
    day TEXT NOT NULL,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS files_store ON files (store, day);
CREATE TABLE IF NOT EXISTS queries (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    stores TEXT NOT NULL,
    statement TEXT NOT NULL,
    status TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    error TEXT,
    events_scanned INTEGER NOT NULL DEFAULT 0,
    bytes_scanned INTEGER NOT NULL DEFAULT 0,
    exec_ms INTEGER NOT NULL DEFAULT 0,
    result_count INTEGER NOT NULL DEFAULT 0,
    results TEXT
);
CREATE INDEX IF NOT EXISTS queries_account ON queries (account, created_ms);
"#;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Read-only connections beside the writer.
const READ_CONNECTIONS: u32 = 2;

/// The catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The one writer connection.
    pub(super) pool: SqlitePool,
    /// Read-only connections: in WAL mode they read committed data beside
    /// the writer, so a flush reading thousands of buffered records, or a
    /// lookup of a channel, does not wait for (or hold up) the ingest's
    /// writes.
    pub(super) reads: SqlitePool,
}

/// Decodes one row.
pub(super) type FromRow<T> = fn(&sqlx::sqlite::SqliteRow) -> Result<T>;

pub(super) fn b(v: bool) -> i64 {
    i64::from(v)
}

/// The outcome of a write whose only expected failure is a taken unique
/// name, answered with `taken()`.
pub(super) fn unique(
    r: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
    taken: impl FnOnce() -> LakeError,
) -> Result<()> {
    match r {
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(taken()),
        r => r.map(drop).map_err(Into::into),
    }
}

/// Bytes the WAL file is cut back to after a checkpoint (SQLite keeps it
/// at its largest size otherwise).
const WAL_SIZE_LIMIT: i64 = 16 << 20;

impl Catalog {
    /// Opens (creating) the catalog in `dir`. Queries that were running when
    /// the process stopped are marked failed: their task is gone.
    pub async fn open(dir: &Path) -> Result<Self> {
        let url = format!("sqlite://{}", dir.join("catalog.db").display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        // One writing connection: writes are serialised anyway, and it
        // keeps the ingest path free of lock retries. The file settings are
        // the writer's: a read-only connection may not set them.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .auto_vacuum(SqliteAutoVacuum::Incremental)
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT.to_string()),
            )
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::query(
            "UPDATE queries SET status = 'FAILED', error = 'The lake restarted while the query ran; start it again.' \
             WHERE status IN ('QUEUED', 'RUNNING')",
        )
        .execute(&pool)
        .await?;
        // Opened after the schema exists; `read_only` makes a stray write
        // on them an error rather than a lock fight with the writer.
        let reads = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await?;
        Ok(Self { pool, reads })
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    /// The row `sql` finds with `binds`, decoded by `from`.
    pub(super) async fn optional<T>(
        &self,
        sql: &str,
        binds: &[&str],
        from: FromRow<T>,
    ) -> Result<Option<T>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_optional(&self.reads)
            .await?
            .as_ref()
            .map(from)
            .transpose()
    }

    /// Every row `sql` finds with `binds`, decoded by `from`.
    pub(super) async fn all<T>(
        &self,
        sql: &str,
        binds: &[&str],
        from: FromRow<T>,
    ) -> Result<Vec<T>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&self.reads).await?.iter().map(from).collect()
    }
}
