//! The lake's catalog: event data stores, channels and their policies,
//! queries, the per-channel `id` index that makes retries idempotent, the
//! buffer of acknowledged events not yet in Parquet, and the list of
//! Parquet files. One SQLite database in the lake directory.
//!
//! Every acknowledged `PutAuditEvents` entry is committed here (WAL,
//! `synchronous=NORMAL`: a committed transaction survives a crash of the
//! process) before the answer goes out; `storage` moves it to Parquet
//! later and drops it from the buffer in the transaction that lists the
//! new file.

use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr as _;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row as _, SqlitePool};

use sha2::{Digest as _, Sha256};

use crate::error::{LakeError, Result};
use crate::record::Record;

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

/// An event data store.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDataStore {
    /// UUID; what SQL names after `FROM`.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region it was created in.
    pub region: String,
    /// Unique per account.
    pub name: String,
    /// `ENABLED`, `STOPPED_INGESTION` or `PENDING_DELETION`.
    pub status: String,
    /// Days events are kept.
    pub retention_days: i64,
    /// Whether deletion is refused.
    pub termination_protection: bool,
    /// Echoed `MultiRegionEnabled`.
    pub multi_region: bool,
    /// Echoed `OrganizationEnabled`.
    pub organization: bool,
    /// `EXTENDABLE_RETENTION_PRICING` or `FIXED_RETENTION_PRICING`.
    pub billing_mode: String,
    /// `AdvancedEventSelectors` as JSON.
    pub selectors: serde_json::Value,
    /// Tags as JSON.
    pub tags: serde_json::Value,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    /// `EVENT_DATA_STORE`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The event data store's ARN.
    pub location: String,
}

/// A channel's `IngestionStatus`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestionStatus {
    /// Last call that stored at least one event.
    pub success_ms: Option<i64>,
    /// An event ID of that call.
    pub success_event: Option<String>,
    /// Last call, successful or not.
    pub attempt_ms: Option<i64>,
    /// An event ID of that call, when it got one.
    pub attempt_event: Option<String>,
    /// Error code of the last failed entry or call.
    pub error_code: Option<String>,
}

/// A channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// UUID.
    pub id: String,
    /// Owning account.
    pub account: String,
    /// Region it was created in.
    pub region: String,
    /// Unique per account.
    pub name: String,
    /// `Source`, e.g. the product name.
    pub source: String,
    /// Event data stores it feeds.
    pub destinations: Vec<Destination>,
    /// Tags as JSON.
    pub tags: serde_json::Value,
    /// Resource policy document, as sent.
    pub policy: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Latest ingestion outcome.
    pub ingestion: IngestionStatus,
}

/// A Parquet file of one store and day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// Object-store path.
    pub path: String,
    /// Store it belongs to.
    pub store: String,
    /// `YYYY-MM-DD` of its events.
    pub day: String,
    /// Events in it.
    pub rows: i64,
    /// Its size.
    pub bytes: i64,
}

/// A query's lifecycle state, as `QueryStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QueryStatus {
    /// Waiting for a slot.
    Queued,
    /// Executing.
    Running,
    /// Results are ready.
    Finished,
    /// The query failed; see its error.
    Failed,
    /// Cancelled by `CancelQuery`.
    Cancelled,
    /// Ran past the timeout.
    TimedOut,
}

impl QueryStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
            Self::TimedOut => "TIMED_OUT",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "QUEUED" => Self::Queued,
            "RUNNING" => Self::Running,
            "FINISHED" => Self::Finished,
            "FAILED" => Self::Failed,
            "CANCELLED" => Self::Cancelled,
            "TIMED_OUT" => Self::TimedOut,
            _ => return None,
        })
    }

    /// Whether the query can still change.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A query's row in the catalog (results are read separately).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRow {
    /// UUID.
    pub id: String,
    /// Account that started it.
    pub account: String,
    /// Store IDs it reads.
    pub stores: Vec<String>,
    /// The SQL as sent.
    pub statement: String,
    /// State.
    pub status: QueryStatus,
    /// Started, ms since the epoch.
    pub created_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Events in the files it read.
    pub events_scanned: i64,
    /// Bytes of the files it read.
    pub bytes_scanned: i64,
    /// Run time.
    pub exec_ms: i64,
    /// Result rows.
    pub result_count: i64,
}

/// One accepted entry of a `PutAuditEvents` call, ready to store.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The source's `id`.
    pub id: String,
    /// The record, stored once per destination store.
    pub record: Record,
}

/// Outcome of storing one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The source's `id`.
    pub id: String,
    /// The lake's `eventID`: the original one when `id` was seen before.
    pub event_id: String,
    /// Whether this was a repeat of an earlier call's entry.
    pub duplicate: bool,
}

/// Read-only connections beside the writer.
const READ_CONNECTIONS: u32 = 2;

/// The catalog database.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The one writer connection.
    pool: SqlitePool,
    /// Read-only connections: in WAL mode they read committed data beside
    /// the writer, so a flush reading thousands of buffered records, or a
    /// lookup of a channel, does not wait for (or hold up) the ingest's
    /// writes.
    reads: SqlitePool,
}

/// Decodes one row.
type FromRow<T> = fn(&sqlx::sqlite::SqliteRow) -> Result<T>;

/// The columns of `QueryRow` (results are read separately: they are big).
const QUERY_COLUMNS: &str = "id, account, stores, statement, status, created_ms, error, \
    events_scanned, bytes_scanned, exec_ms, result_count";

fn b(v: bool) -> i64 {
    i64::from(v)
}

fn store_from(row: &sqlx::sqlite::SqliteRow) -> Result<EventDataStore> {
    Ok(EventDataStore {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        region: row.try_get("region")?,
        name: row.try_get("name")?,
        status: row.try_get("status")?,
        retention_days: row.try_get("retention_days")?,
        termination_protection: row.try_get::<i64, _>("termination_protection")? != 0,
        multi_region: row.try_get::<i64, _>("multi_region")? != 0,
        organization: row.try_get::<i64, _>("organization")? != 0,
        billing_mode: row.try_get("billing_mode")?,
        selectors: serde_json::from_str(row.try_get("selectors")?)?,
        tags: serde_json::from_str(row.try_get("tags")?)?,
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
    })
}

fn channel_from(row: &sqlx::sqlite::SqliteRow) -> Result<Channel> {
    Ok(Channel {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        region: row.try_get("region")?,
        name: row.try_get("name")?,
        source: row.try_get("source")?,
        destinations: serde_json::from_str(row.try_get("destinations")?)?,
        tags: serde_json::from_str(row.try_get("tags")?)?,
        policy: row.try_get("policy")?,
        created_ms: row.try_get("created_ms")?,
        ingestion: IngestionStatus {
            success_ms: row.try_get("success_ms")?,
            success_event: row.try_get("success_event")?,
            attempt_ms: row.try_get("attempt_ms")?,
            attempt_event: row.try_get("attempt_event")?,
            error_code: row.try_get("error_code")?,
        },
    })
}

fn query_from(row: &sqlx::sqlite::SqliteRow) -> Result<QueryRow> {
    let status: String = row.try_get("status")?;
    Ok(QueryRow {
        id: row.try_get("id")?,
        account: row.try_get("account")?,
        stores: serde_json::from_str(row.try_get("stores")?)?,
        statement: row.try_get("statement")?,
        status: QueryStatus::parse(&status).unwrap_or(QueryStatus::Failed),
        created_ms: row.try_get("created_ms")?,
        error: row.try_get("error")?,
        events_scanned: row.try_get("events_scanned")?,
        bytes_scanned: row.try_get("bytes_scanned")?,
        exec_ms: row.try_get("exec_ms")?,
        result_count: row.try_get("result_count")?,
    })
}

/// The outcome of a write whose only expected failure is a taken unique
/// name, answered with `taken()`.
fn unique(
    r: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
    taken: impl FnOnce() -> LakeError,
) -> Result<()> {
    match r {
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => Err(taken()),
        r => r.map(drop).map_err(Into::into),
    }
}

/// A key of the per-channel `id` index (`event_ids`). It starts with 8
/// bytes of SHA-256 of the channel ID, so that a channel's keys are one
/// range (deleting a channel deletes the range), then a tag and the `id`:
///
/// - a UUID in its canonical text form (the forwarder's ids, and what most
///   senders send): tag [`UUID_ID`] and its 16 bytes;
/// - any other `id` of at most [`RAW_ID_MAX`] bytes: tag [`RAW_ID`] and
///   the `id` itself;
/// - a longer one: tag [`HASHED_ID`] and the first 16 bytes of SHA-256 of
///   the channel ID and the `id`. Two such `id`s of one channel would need
///   the same 128-bit hash to be taken for one another: for a channel with
///   10^10 events, a chance of about 10^-19.
///
/// The tags keep the three kinds apart, so no two `id`s share a key but
/// through that hash. With the `eventID` as 16 bytes a row is about a third
/// of one holding the three UUIDs as text (the index is most of the
/// catalog). Keys keep the order of `id`s that come in order (time-ordered
/// UUIDs, counters), so each call's new keys land on the last pages of the
/// B-tree; hashing every `id` would scatter them over the whole tree, and
/// each commit would rewrite about a page per entry into the WAL.
#[derive(Clone, Copy)]
struct IdKey {
    bytes: [u8; 8 + 1 + RAW_ID_MAX],
    len: usize,
}

impl IdKey {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Tag of an `id` that is a UUID in canonical (lowercase, hyphenated) text.
const UUID_ID: u8 = 0;
/// Tag of a short `id` kept as itself.
const RAW_ID: u8 = 1;
/// Tag of a long `id` kept as a hash.
const HASHED_ID: u8 = 2;
/// The longest `id` (in bytes) kept as itself: its key is then 32 bytes.
const RAW_ID_MAX: usize = 23;

fn channel_prefix(channel: &str) -> [u8; 8] {
    let digest = Sha256::digest(channel.as_bytes());
    digest[..8].try_into().expect("8 bytes")
}

/// The first key past every key of the channel with `prefix`; `None` when
/// no key is (a prefix of all ones).
fn next_prefix(prefix: [u8; 8]) -> Option<Vec<u8>> {
    u64::from_be_bytes(prefix)
        .checked_add(1)
        .map(|next| next.to_be_bytes().to_vec())
}

/// The first 16 bytes of SHA-256 of `channel`, NUL, `id`.
fn id_hash(channel: &str, id: &str) -> [u8; 16] {
    let mut hash = Sha256::new();
    // Channel IDs are UUIDs: no NUL inside one, so the pair is unambiguous.
    hash.update(channel.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    hash.finalize()[..16].try_into().expect("16 bytes")
}

/// `id` if it is a UUID written the one canonical way, so that the 16 bytes
/// stand for exactly one `id` string.
fn canonical_uuid(id: &str) -> Option<uuid::Uuid> {
    if id.len() != uuid::fmt::Hyphenated::LENGTH {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut text).as_bytes() == id.as_bytes()).then_some(uuid)
}

/// The key of `id` in `channel`, whose prefix is `prefix`
/// ([`channel_prefix`], computed once per call rather than per entry).
fn id_key(prefix: [u8; 8], channel: &str, id: &str) -> IdKey {
    let mut key = IdKey {
        bytes: [0; 8 + 1 + RAW_ID_MAX],
        len: 0,
    };
    key.bytes[..8].copy_from_slice(&prefix);
    key.len = if let Some(uuid) = canonical_uuid(id) {
        key.bytes[8] = UUID_ID;
        key.bytes[9..25].copy_from_slice(uuid.as_bytes());
        25
    } else if id.len() <= RAW_ID_MAX {
        key.bytes[8] = RAW_ID;
        key.bytes[9..9 + id.len()].copy_from_slice(id.as_bytes());
        9 + id.len()
    } else {
        key.bytes[8] = HASHED_ID;
        key.bytes[9..25].copy_from_slice(&id_hash(channel, id));
        25
    };
    key
}

/// An `eventID` (a UUID the lake made) as its 16 bytes.
fn event_id_bytes(event_id: &str) -> Result<Vec<u8>> {
    let id = uuid::Uuid::parse_str(event_id)
        .map_err(|e| LakeError::Invariant(format!("eventID {event_id:?} is not a UUID: {e}")))?;
    Ok(id.as_bytes().to_vec())
}

fn event_id_text(bytes: &[u8]) -> Result<String> {
    let id = uuid::Uuid::from_slice(bytes)
        .map_err(|e| LakeError::Invariant(format!("stored eventID is not a UUID: {e}")))?;
    Ok(id.hyphenated().to_string())
}

/// Free pages the catalog keeps for the next burst of ingest (8 MiB of 4
/// KiB pages) rather than giving them back to the file system.
const KEEP_FREE_PAGES: i64 = 2_048;

/// Pages given back per statement: about 20 ms of the one writing
/// connection, so that ingest calls get it between steps.
const RECLAIM_STEP: i64 = 1_024;

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
    async fn optional<T>(&self, sql: &str, binds: &[&str], from: FromRow<T>) -> Result<Option<T>> {
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
    async fn all<T>(&self, sql: &str, binds: &[&str], from: FromRow<T>) -> Result<Vec<T>> {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.fetch_all(&self.reads).await?.iter().map(from).collect()
    }

    // --- event data stores -------------------------------------------------

    /// Inserts a store; `EventDataStoreAlreadyExistsException` on a taken name.
    pub async fn insert_store(&self, s: &EventDataStore) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO event_data_stores (id, account, region, name, status, retention_days, \
             termination_protection, multi_region, organization, billing_mode, selectors, tags, \
             created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.account)
        .bind(&s.region)
        .bind(&s.name)
        .bind(&s.status)
        .bind(s.retention_days)
        .bind(b(s.termination_protection))
        .bind(b(s.multi_region))
        .bind(b(s.organization))
        .bind(&s.billing_mode)
        .bind(s.selectors.to_string())
        .bind(s.tags.to_string())
        .bind(s.created_ms)
        .bind(s.updated_ms)
        .execute(&self.pool)
        .await;
        unique(r, || {
            LakeError::bad(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists.", s.name),
            )
        })
    }

    /// Writes every mutable field of a store back.
    pub async fn update_store(&self, s: &EventDataStore) -> Result<()> {
        let r = sqlx::query(
            "UPDATE event_data_stores SET name = ?, status = ?, retention_days = ?, \
             termination_protection = ?, multi_region = ?, organization = ?, billing_mode = ?, \
             selectors = ?, updated_ms = ? WHERE id = ?",
        )
        .bind(&s.name)
        .bind(&s.status)
        .bind(s.retention_days)
        .bind(b(s.termination_protection))
        .bind(b(s.multi_region))
        .bind(b(s.organization))
        .bind(&s.billing_mode)
        .bind(s.selectors.to_string())
        .bind(s.updated_ms)
        .bind(&s.id)
        .execute(&self.pool)
        .await;
        unique(r, || {
            LakeError::bad(
                "EventDataStoreAlreadyExistsException",
                format!("An event data store named {} already exists.", s.name),
            )
        })
    }

    /// The store with this ID in this account.
    pub async fn store(&self, account: &str, id: &str) -> Result<Option<EventDataStore>> {
        self.optional(
            "SELECT * FROM event_data_stores WHERE id = ? AND account = ?",
            &[id, account],
            store_from,
        )
        .await
    }

    /// An account's stores, oldest first.
    pub async fn stores(&self, account: &str) -> Result<Vec<EventDataStore>> {
        self.all(
            "SELECT * FROM event_data_stores WHERE account = ? ORDER BY created_ms, id",
            &[account],
            store_from,
        )
        .await
    }

    /// Every store of every account (for retention).
    pub async fn all_stores(&self) -> Result<Vec<EventDataStore>> {
        self.all(
            "SELECT * FROM event_data_stores ORDER BY created_ms, id",
            &[],
            store_from,
        )
        .await
    }

    /// Removes a store and its catalog entries; returns its files so the
    /// caller can delete them.
    pub async fn purge_store(&self, id: &str) -> Result<Vec<DataFile>> {
        let mut tx = self.pool.begin().await?;
        let files = sqlx::query("SELECT * FROM files WHERE store = ?")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(file_from)
            .collect::<Result<Vec<_>>>()?;
        for sql in [
            "DELETE FROM files WHERE store = ?",
            "DELETE FROM pending WHERE store = ?",
            "DELETE FROM event_data_stores WHERE id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(files)
    }

    // --- channels ----------------------------------------------------------

    /// Inserts a channel; `ChannelAlreadyExistsException` on a taken name.
    pub async fn insert_channel(&self, c: &Channel) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO channels (id, account, region, name, source, destinations, tags, policy, created_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.account)
        .bind(&c.region)
        .bind(&c.name)
        .bind(&c.source)
        .bind(serde_json::to_string(&c.destinations)?)
        .bind(c.tags.to_string())
        .bind(&c.policy)
        .bind(c.created_ms)
        .execute(&self.pool)
        .await;
        unique(r, || channel_exists(&c.name))
    }

    /// Writes a channel's name, destinations and policy back.
    pub async fn update_channel(&self, c: &Channel) -> Result<()> {
        let r =
            sqlx::query("UPDATE channels SET name = ?, destinations = ?, policy = ? WHERE id = ?")
                .bind(&c.name)
                .bind(serde_json::to_string(&c.destinations)?)
                .bind(&c.policy)
                .bind(&c.id)
                .execute(&self.pool)
                .await;
        unique(r, || channel_exists(&c.name))
    }

    /// The channel with this ID in this account.
    pub async fn channel(&self, account: &str, id: &str) -> Result<Option<Channel>> {
        self.optional(
            "SELECT * FROM channels WHERE id = ? AND account = ?",
            &[id, account],
            channel_from,
        )
        .await
    }

    /// The channel with this ID, whichever account owns it (data plane:
    /// a partner writes to a channel of another account).
    pub async fn channel_any_account(&self, id: &str) -> Result<Option<Channel>> {
        self.optional("SELECT * FROM channels WHERE id = ?", &[id], channel_from)
            .await
    }

    /// An account's channels, oldest first.
    pub async fn channels(&self, account: &str) -> Result<Vec<Channel>> {
        self.all(
            "SELECT * FROM channels WHERE account = ? ORDER BY created_ms, id",
            &[account],
            channel_from,
        )
        .await
    }

    /// Deletes a channel and its `id` index.
    pub async fn delete_channel(&self, id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let prefix = channel_prefix(id);
        let (from, to) = (prefix.to_vec(), next_prefix(prefix));
        sqlx::query("DELETE FROM event_ids WHERE key >= ? AND (? IS NULL OR key < ?)")
            .bind(&from)
            .bind(&to)
            .bind(&to)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM channels WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a call that stored nothing (every entry failed).
    pub async fn record_failed_attempt(&self, channel: &str, error_code: &str) -> Result<()> {
        sqlx::query(
            "UPDATE channels SET attempt_ms = ?, attempt_event = NULL, error_code = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(error_code)
        .bind(channel)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- ingest ------------------------------------------------------------

    /// Stores the accepted entries of one call in one transaction: entries
    /// whose `id` the channel has seen answer with their original
    /// `eventID` and are not stored again. `stores` are the channel's
    /// destination store IDs. `error_code` is the call's first entry error.
    pub async fn ingest(
        &self,
        channel: &str,
        stores: &[String],
        entries: Vec<NewEntry>,
        error_code: Option<&str>,
    ) -> Result<Vec<Stored>> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let prefix = channel_prefix(channel);
        let keys: Vec<IdKey> = entries
            .iter()
            .map(|e| id_key(prefix, channel, &e.id))
            .collect();
        let mut fresh = HashSet::new();
        if !entries.is_empty() {
            let mut sql = String::from("INSERT INTO event_ids (key, event_id) VALUES ");
            for i in 0..entries.len() {
                sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
            }
            sql.push_str(" ON CONFLICT DO NOTHING RETURNING key");
            let mut q = sqlx::query(&sql);
            for (e, key) in entries.iter().zip(&keys) {
                q = q
                    .bind(key.as_slice().to_vec())
                    .bind(event_id_bytes(&e.record.event_id)?);
            }
            for row in q.fetch_all(&mut *tx).await? {
                fresh.insert(row.try_get::<Vec<u8>, _>(0)?);
            }
        }
        let mut out = Vec::with_capacity(entries.len());
        let mut to_store = Vec::with_capacity(entries.len());
        for (e, key) in entries.into_iter().zip(keys) {
            if fresh.contains(key.as_slice()) {
                out.push(Stored {
                    id: e.id.clone(),
                    event_id: e.record.event_id.clone(),
                    duplicate: false,
                });
                to_store.push(e.record);
            } else {
                let event_id: Vec<u8> =
                    sqlx::query_scalar("SELECT event_id FROM event_ids WHERE key = ?")
                        .bind(key.as_slice())
                        .fetch_one(&mut *tx)
                        .await?;
                out.push(Stored {
                    id: e.id,
                    event_id: event_id_text(&event_id)?,
                    duplicate: true,
                });
            }
        }
        if !to_store.is_empty() && !stores.is_empty() {
            let rows: Vec<(String, &str)> = to_store
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .flat_map(|json| stores.iter().map(move |s| (json.clone(), s.as_str())))
                .collect();
            for chunk in rows.chunks(400) {
                let mut sql = String::from("INSERT INTO pending (store, record) VALUES ");
                for i in 0..chunk.len() {
                    sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
                }
                let mut q = sqlx::query(&sql);
                for (json, store) in chunk {
                    q = q.bind(*store).bind(json);
                }
                q.execute(&mut *tx).await?;
            }
        }
        let last = out.last().map(|s| s.event_id.clone());
        sqlx::query(
            "UPDATE channels SET attempt_ms = ?, attempt_event = ?, \
             success_ms = CASE WHEN ? IS NULL THEN success_ms ELSE ? END, \
             success_event = COALESCE(?, success_event), error_code = ? WHERE id = ?",
        )
        .bind(now)
        .bind(&last)
        .bind(&last)
        .bind(now)
        .bind(&last)
        .bind(error_code)
        .bind(channel)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Up to `limit` buffered records of a store, oldest first, with the
    /// highest sequence number among them. Decoding tens of thousands of
    /// records is CPU work, done on a blocking thread so the runtime keeps
    /// answering requests meanwhile.
    pub async fn pending(&self, store: &str, limit: i64) -> Result<(Vec<Record>, Option<i64>)> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT seq, record FROM pending WHERE store = ? ORDER BY seq LIMIT ?")
                .bind(store)
                .bind(limit)
                .fetch_all(&self.reads)
                .await?;
        tokio::task::spawn_blocking(move || -> Result<_> {
            let max = rows.last().map(|(seq, _)| *seq);
            let records = rows
                .iter()
                .map(|(_, json)| serde_json::from_str(json))
                .collect::<std::result::Result<Vec<Record>, _>>()?;
            Ok((records, max))
        })
        .await?
    }

    /// Stores with buffered records, and how many each has.
    pub async fn pending_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT store, COUNT(*) FROM pending GROUP BY store")
                .fetch_all(&self.reads)
                .await?,
        )
    }

    /// Lists new files and drops the buffered records they hold, at once.
    pub async fn commit_flush(
        &self,
        store: &str,
        up_to_seq: i64,
        files: &[DataFile],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_files(&mut tx, files).await?;
        sqlx::query("DELETE FROM pending WHERE store = ? AND seq <= ?")
            .bind(store)
            .bind(up_to_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives free pages beyond a reserve of 8 MiB back to the file
    /// system, 4 MiB at a time; returns how many. The ingest
    /// buffer is most of the catalog's writes: a burst grows the file by
    /// about a kilobyte per buffered event, and flushing it to Parquet
    /// frees those pages, which without this the file would keep.
    pub async fn reclaim_free_pages(&self) -> Result<i64> {
        let first = self.free_pages().await?;
        let mut free = first;
        loop {
            let step = (free - KEEP_FREE_PAGES).min(RECLAIM_STEP);
            if step <= 0 {
                break;
            }
            sqlx::query(&format!("PRAGMA incremental_vacuum({step})"))
                .execute(&self.pool)
                .await?;
            let now = self.free_pages().await?;
            // SQLite frees "up to" the count asked: a step that gave
            // nothing back ends the pass.
            let stuck = now >= free;
            free = now;
            if stuck {
                break;
            }
        }
        Ok((first - free).max(0))
    }

    async fn free_pages(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Replaces `old` files with `new` ones at once (compaction).
    pub async fn swap_files(&self, old: &[DataFile], new: &[DataFile]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for f in old {
            sqlx::query("DELETE FROM files WHERE path = ?")
                .bind(&f.path)
                .execute(&mut *tx)
                .await?;
        }
        insert_files(&mut tx, new).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The files of a store, by day then age.
    pub async fn files(&self, store: &str) -> Result<Vec<DataFile>> {
        self.all(
            "SELECT * FROM files WHERE store = ? ORDER BY day, created_ms, path",
            &[store],
            file_from,
        )
        .await
    }

    /// Every listed file path (to find files a crash left unlisted).
    pub async fn all_file_paths(&self) -> Result<std::collections::HashSet<String>> {
        Ok(sqlx::query_scalar("SELECT path FROM files")
            .fetch_all(&self.reads)
            .await?
            .into_iter()
            .collect())
    }

    /// Removes the files of a store older than `day` (exclusive) from the
    /// list and the buffered records of those days; returns the files.
    pub async fn expire(
        &self,
        store: &str,
        before_day: &str,
        before_ms: i64,
    ) -> Result<Vec<DataFile>> {
        let mut tx = self.pool.begin().await?;
        let files = sqlx::query("SELECT * FROM files WHERE store = ? AND day < ?")
            .bind(store)
            .bind(before_day)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(file_from)
            .collect::<Result<Vec<_>>>()?;
        sqlx::query("DELETE FROM files WHERE store = ? AND day < ?")
            .bind(store)
            .bind(before_day)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM pending WHERE store = ? AND CAST(json_extract(record, '$.event_time_ms') AS INTEGER) < ?",
        )
        .bind(store)
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(files)
    }

    // --- queries -----------------------------------------------------------

    /// Records a new query with its first status: `QUEUED`, or `RUNNING`
    /// when it found a free slot and starts at once.
    pub async fn insert_query(&self, q: &QueryRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO queries (id, account, stores, statement, status, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&q.id)
        .bind(&q.account)
        .bind(serde_json::to_string(&q.stores)?)
        .bind(&q.statement)
        .bind(q.status.as_str())
        .bind(q.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Moves an active query to `status`; false when it was no longer
    /// active (a cancel won the race).
    pub async fn set_query_status(&self, id: &str, status: QueryStatus) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE queries SET status = ? WHERE id = ? AND status IN ('QUEUED', 'RUNNING')",
        )
        .bind(status.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Finishes an active query with its outcome; false when it was no
    /// longer active.
    pub async fn finish_query(&self, q: &QueryRow, results: Option<&str>) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE queries SET status = ?, error = ?, events_scanned = ?, bytes_scanned = ?, exec_ms = ?, \
             result_count = ?, results = ? WHERE id = ? AND status IN ('QUEUED', 'RUNNING')",
        )
        .bind(q.status.as_str())
        .bind(&q.error)
        .bind(q.events_scanned)
        .bind(q.bytes_scanned)
        .bind(q.exec_ms)
        .bind(q.result_count)
        .bind(results)
        .bind(&q.id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The query with this ID in this account.
    pub async fn query(&self, account: &str, id: &str) -> Result<Option<QueryRow>> {
        let sql = format!("SELECT {QUERY_COLUMNS} FROM queries WHERE id = ? AND account = ?");
        self.optional(&sql, &[id, account], query_from).await
    }

    /// A finished query's result rows, as stored JSON.
    pub async fn query_results(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT results FROM queries WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.reads)
                .await?
                .flatten(),
        )
    }

    /// An account's queries, newest first.
    pub async fn queries(&self, account: &str) -> Result<Vec<QueryRow>> {
        let sql = format!(
            "SELECT {QUERY_COLUMNS} FROM queries WHERE account = ? ORDER BY created_ms DESC, id"
        );
        self.all(&sql, &[account], query_from).await
    }
}

fn channel_exists(name: &str) -> LakeError {
    LakeError::bad(
        "ChannelAlreadyExistsException",
        format!("A channel named {name} already exists."),
    )
}

fn file_from(row: &sqlx::sqlite::SqliteRow) -> Result<DataFile> {
    Ok(DataFile {
        path: row.try_get("path")?,
        store: row.try_get("store")?,
        day: row.try_get("day")?,
        rows: row.try_get("rows")?,
        bytes: row.try_get("bytes")?,
    })
}

async fn insert_files(tx: &mut sqlx::SqliteConnection, files: &[DataFile]) -> Result<()> {
    let now = now_ms();
    for f in files {
        sqlx::query("INSERT INTO files (path, store, day, rows, bytes, created_ms) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&f.path)
            .bind(&f.store)
            .bind(&f.day)
            .bind(f.rows)
            .bind(f.bytes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, Stamp};

    fn entry(id: &str) -> NewEntry {
        let stamp = Stamp {
            account: "123456789012",
            region: "us-east-1",
            channel_arn: "arn:aws:cloudtrail:us-east-1:123456789012:channel/c",
            now_ms: 0,
        };
        let data = r#"{"version":"1.0","userIdentity":{"type":"User","principalId":"u-1"},
            "eventSource":"auditlake","eventName":"org.create","eventTime":"2024-03-01T10:20:30Z",
            "UID":"e-1","recipientAccountId":"123456789012"}"#;
        let record = record::build(data, uuid::Uuid::new_v4().to_string(), &stamp).unwrap();
        NewEntry {
            id: id.to_owned(),
            record,
        }
    }

    /// `(id, eventID, duplicate)` of each stored entry.
    async fn ingest(catalog: &Catalog, channel: &str, ids: &[&str]) -> Vec<(String, String, bool)> {
        let entries = ids.iter().map(|id| entry(id)).collect();
        catalog
            .ingest(channel, &[], entries, None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.event_id, s.duplicate))
            .collect()
    }

    #[tokio::test]
    async fn an_id_is_stored_once_per_channel_until_the_channel_goes() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).await.unwrap();
        let (a, b) = (
            "0b5f7c64-8d0e-4a58-9d53-5b6f0a7c1e21",
            "5e2a9b18-3c4d-4f6e-8a7b-9c0d1e2f3a4b",
        );
        // One id of each kind of key: short, a canonical UUID, long.
        let (uuid, long) = (
            "01937a4e-2f6b-7c3d-9e8f-0a1b2c3d4e5f",
            "an-id-longer-than-twenty-three-bytes",
        );
        let first = ingest(&catalog, a, &["x", "y", uuid, long]).await;
        assert!(first.iter().all(|(_, _, dup)| !dup));
        // A retry answers with the original eventIDs; another channel's
        // same id is its own event.
        let again = ingest(&catalog, a, &[long, "y", "x", "z", uuid]).await;
        assert_eq!(again[0], (first[3].0.clone(), first[3].1.clone(), true));
        assert_eq!(again[1], (first[1].0.clone(), first[1].1.clone(), true));
        assert_eq!(again[2], (first[0].0.clone(), first[0].1.clone(), true));
        assert!(!again[3].2);
        assert_eq!(again[4], (first[2].0.clone(), first[2].1.clone(), true));
        // The same UUID in capitals is another id.
        assert!(!ingest(&catalog, a, &[&uuid.to_uppercase()]).await[0].2);
        let other = ingest(&catalog, b, &["x"]).await;
        assert!(!other[0].2);

        // Deleting a channel forgets its ids and only its ids.
        catalog.delete_channel(a).await.unwrap();
        assert!(!ingest(&catalog, a, &["x"]).await[0].2);
        assert_eq!(
            ingest(&catalog, b, &["x"]).await[0],
            (other[0].0.clone(), other[0].1.clone(), true)
        );
    }

    #[test]
    fn a_channels_keys_are_one_range() {
        let prefix = channel_prefix("c");
        let next = next_prefix(prefix).unwrap();
        for id in [
            "",
            "a",
            "zzzz",
            "00000000-0000-0000-0000-000000000000",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
            &"z".repeat(128),
        ] {
            let key = id_key(prefix, "c", id);
            assert!(key.as_slice() >= prefix.as_slice() && key.as_slice() < next.as_slice());
        }
        assert_eq!(next_prefix([0xff; 8]), None);
        assert_eq!(
            next_prefix([0, 0, 0, 0, 0, 0, 0, 0xff]).unwrap(),
            [0, 0, 0, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn keys_keep_the_order_of_ids_that_come_in_order() {
        let prefix = channel_prefix("c");
        let key = |id: &str| id_key(prefix, "c", id).as_slice().to_vec();
        // Time-ordered UUIDs (the forwarder's ids) and counters: each
        // call's new keys follow the last ones instead of scattering over
        // the index (the cost the hashed index had, BENCHMARKS.md).
        let uuids: Vec<String> = (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let counters: Vec<String> = (100_000..100_100).map(|n| format!("e{n}")).collect();
        for ids in [&uuids, &counters] {
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| key(id)).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        }
        assert_eq!(key(&uuids[0]).len(), 25);
        assert_eq!(
            key(&uuids[0])[8..],
            [
                &[UUID_ID][..],
                uuid::Uuid::parse_str(&uuids[0]).unwrap().as_bytes()
            ]
            .concat()
        );
        assert_eq!(key("e100000")[8..], *b"\x01e100000");
    }

    #[test]
    fn ids_of_different_kinds_never_share_a_key() {
        let prefix = channel_prefix("c");
        let lower = "01937a4e-2f6b-7c3d-9e8f-0a1b2c3d4e5f";
        let ids = [
            lower.to_owned(),
            lower.to_uppercase(),
            lower.replace('-', ""),
            format!("{{{lower}}}"),
            "x".repeat(RAW_ID_MAX),
            "x".repeat(RAW_ID_MAX + 1),
            "x".repeat(RAW_ID_MAX + 2),
        ];
        let keys: HashSet<Vec<u8>> = ids
            .iter()
            .map(|id| id_key(prefix, "c", id).as_slice().to_vec())
            .collect();
        assert_eq!(keys.len(), ids.len());
        let tags: Vec<u8> = ids
            .iter()
            .map(|id| id_key(prefix, "c", id).as_slice()[8])
            .collect();
        assert_eq!(
            tags,
            [UUID_ID, HASHED_ID, HASHED_ID, HASHED_ID, RAW_ID, HASHED_ID, HASHED_ID]
        );
    }

    async fn pragma(catalog: &Catalog, name: &str) -> i64 {
        sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(&catalog.pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_flushed_burst_gives_its_pages_back_but_a_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(dir.path()).await.unwrap();
        // 2: INCREMENTAL, set when the file was made.
        assert_eq!(pragma(&catalog, "auto_vacuum").await, 2);
        // A burst of buffered records (about 24 MiB), then their flush.
        sqlx::raw_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12000) \
             INSERT INTO pending (store, record) SELECT 's', hex(randomblob(1000)) FROM n",
        )
        .execute(&catalog.pool)
        .await
        .unwrap();
        catalog.commit_flush("s", i64::MAX, &[]).await.unwrap();
        let (pages, free) = (
            pragma(&catalog, "page_count").await,
            pragma(&catalog, "freelist_count").await,
        );
        assert!(free > KEEP_FREE_PAGES + 2 * RECLAIM_STEP, "{free}");

        let given = catalog.reclaim_free_pages().await.unwrap();
        // What is left is the reserve, give or take the few pages a last
        // small step could not free (SQLite frees "up to" the count asked).
        let (now_free, now_pages) = (
            pragma(&catalog, "freelist_count").await,
            pragma(&catalog, "page_count").await,
        );
        assert!(
            (KEEP_FREE_PAGES..KEEP_FREE_PAGES + 16).contains(&now_free),
            "{now_free}"
        );
        assert_eq!(given, free - now_free);
        // The pointer-map pages of the freed pages go with them.
        assert!((given..given + 16).contains(&(pages - now_pages)));
        // Nothing more to give: the reserve stays.
        assert!(catalog.reclaim_free_pages().await.unwrap() < 16);
        let page_size = pragma(&catalog, "page_size").await;
        // The file itself is that much smaller once the WAL is folded in.
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&catalog.pool)
            .await
            .unwrap();
        assert_eq!(busy, 0);
        let size = std::fs::metadata(dir.path().join("catalog.db"))
            .unwrap()
            .len() as i64;
        assert_eq!(size, now_pages * page_size);
    }
}
