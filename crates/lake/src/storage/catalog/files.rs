//! The list of a store's Parquet files in the catalog.

use sqlx::Row as _;

use super::db::{now_ms, Catalog};
use crate::error::Result;

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

pub(super) fn file_from(row: &sqlx::sqlite::SqliteRow) -> Result<DataFile> {
    Ok(DataFile {
        path: row.try_get("path")?,
        store: row.try_get("store")?,
        day: row.try_get("day")?,
        rows: row.try_get("rows")?,
        bytes: row.try_get("bytes")?,
    })
}

pub(super) async fn insert_files(
    tx: &mut sqlx::SqliteConnection,
    files: &[DataFile],
) -> Result<()> {
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

impl Catalog {
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
}
