//! Ingest: the `id` index that makes retries idempotent, the buffer of
//! acknowledged events not yet in Parquet, and giving the buffer's freed
//! pages back.

use std::collections::HashSet;

use sqlx::Row as _;

use super::db::{now_ms, Catalog};
use super::files::{insert_files, DataFile};
use super::ids::{channel_prefix, event_id_bytes, event_id_text, id_key, IdKey};
use crate::error::Result;
use crate::storage::record::Record;

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

/// Free pages the catalog keeps for the next burst of ingest (8 MiB of 4
/// KiB pages) rather than giving them back to the file system.
const KEEP_FREE_PAGES: i64 = 2_048;

/// Pages given back per statement (4 MiB): a short hold of the one writing
/// connection, so that ingest calls get it between steps.
const RECLAIM_STEP: i64 = 1_024;

impl Catalog {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{self, Stamp};

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
