//! Queries in the catalog: their state, and their results once finished.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::db::Catalog;
use crate::error::Result;

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

/// The columns of `QueryRow` (results are read separately: they are big).
const QUERY_COLUMNS: &str = "id, account, stores, statement, status, created_ms, error, \
    events_scanned, bytes_scanned, exec_ms, result_count";

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

impl Catalog {
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
