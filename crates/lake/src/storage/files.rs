//! Columnar storage: buffered records become Parquet files, one set per
//! event data store and UTC day, behind the `object_store` abstraction
//! (the lake opens a local directory, `objects/` in its directory; nothing
//! here depends on which store it is).
//!
//! The catalog lists which files exist. A file is written first and listed
//! second, in the same transaction that drops its records from the
//! buffer, so a crash in between leaves an unlisted file that start-up
//! removes, never a record in two places. Small files of a day are merged
//! (compaction); days past a store's retention are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::error::ArrowError;
use futures::TryStreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tokio::sync::{Mutex, RwLock};

use crate::error::Result;
use crate::storage::catalog::{Catalog, DataFile};
use crate::storage::merge::sorted_merge;
use crate::storage::record::{self, Record};

/// Records moved from the buffer to Parquet per round (one row group):
/// a round holds them in memory a few times over.
const FLUSH_CHUNK: i64 = 64 * 1024;
/// A day with at least this many files gets compacted.
pub const COMPACT_MIN_FILES: usize = 8;
/// Most rows in a file compaction writes; files of half as many or more
/// are left alone, so a day's big file is not read back into every
/// compaction. The merge streams, so rows cost memory only as the
/// compressed input and output files (some tens of MiB at this size).
const COMPACT_MAX_ROWS: i64 = 128 * 1024;
/// Most files one merge reads: it holds about one batch of each.
const COMPACT_MAX_FILES: usize = 32;
/// Rows per batch a merge reads from each file and writes.
const MERGE_BATCH_ROWS: usize = 1024;
/// Rows per Parquet row group: small enough that a time filter skips most
/// of a file, large enough to compress well.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The Parquet side of the lake.
#[derive(Debug, Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    catalog: Catalog,
    /// One flush or compaction at a time, so no record is written twice.
    writer: Arc<Mutex<()>>,
    /// Queries hold it shared while they read files; deleting replaced
    /// files takes it exclusively.
    pub(crate) files_gate: Arc<RwLock<()>>,
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        // The event name's pages are dictionary codes, a few bits per row,
        // that zstd barely shrinks; uncompressed, a reader of that column
        // (every group-by on it) skips making a zstd compressor and
        // decompressor for each column chunk, which the Parquet reader
        // does per chunk and which cost more than decoding the codes.
        .set_column_compression(
            ColumnPath::new(vec!["eventdata".into(), "eventname".into()]),
            Compression::UNCOMPRESSED,
        )
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Encodes records, sorted by event time, as one Parquet file.
pub fn encode(mut records: Vec<Record>) -> Result<(Bytes, i64)> {
    records.sort_by_key(|r| r.event_time_ms);
    let batch = record::to_batch(&records)?;
    parquet_bytes([Ok(batch)], records.len() * 256)
}

/// Writes `batches` (of the stored schema) as one Parquet file in memory,
/// with the lake's writer settings; returns its bytes and rows. `capacity`:
/// bytes to reserve up front.
fn parquet_bytes(
    batches: impl IntoIterator<Item = std::result::Result<RecordBatch, ArrowError>>,
    capacity: usize,
) -> Result<(Bytes, i64)> {
    let mut buf = Vec::with_capacity(capacity);
    let mut writer = ArrowWriter::try_new(&mut buf, record::schema(), Some(writer_properties()))?;
    let mut rows = 0;
    for batch in batches {
        let batch = batch?;
        rows += batch.num_rows() as i64;
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok((Bytes::from(buf), rows))
}

impl Storage {
    /// Storage over `objects`, listed in `catalog`.
    pub fn new(objects: Arc<dyn ObjectStore>, catalog: Catalog) -> Self {
        Self {
            objects,
            catalog,
            writer: Arc::new(Mutex::new(())),
            files_gate: Arc::new(RwLock::new(())),
        }
    }

    /// The object store, for the query engine.
    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        self.objects.clone()
    }

    fn new_path(store: &str, day: &str) -> String {
        format!("eds/{store}/{day}/{}.parquet", uuid::Uuid::now_v7())
    }

    /// Stores the Parquet `bytes` (`rows` rows) as a new file of `store`
    /// and `day`, not yet listed.
    async fn write_file(
        &self,
        store: &str,
        day: &str,
        bytes: Bytes,
        rows: i64,
    ) -> Result<DataFile> {
        let path = Self::new_path(store, day);
        let size = bytes.len() as i64;
        self.objects
            .put(
                &ObjectPath::from(path.as_str()),
                PutPayload::from_bytes(bytes),
            )
            .await?;
        Ok(DataFile {
            path,
            store: store.to_owned(),
            day: day.to_owned(),
            rows,
            bytes: size,
        })
    }

    async fn put(&self, store: &str, day: &str, records: Vec<Record>) -> Result<DataFile> {
        // Sorting and compressing a chunk takes a core for a while: off the
        // runtime, so requests keep being answered meanwhile.
        let (bytes, rows) = tokio::task::spawn_blocking(move || encode(records)).await??;
        self.write_file(store, day, bytes, rows).await
    }

    /// Writes one file per UTC day of `records` (not yet listed).
    async fn put_by_day(&self, store: &str, records: Vec<Record>) -> Result<Vec<DataFile>> {
        let mut by_day: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in records {
            by_day.entry(r.day()).or_default().push(r);
        }
        let mut files = Vec::with_capacity(by_day.len());
        for (day, records) in by_day {
            files.push(self.put(store, &day, records).await?);
        }
        Ok(files)
    }

    /// Moves every buffered record of `store` to Parquet.
    pub async fn flush(&self, store: &str) -> Result<()> {
        let _w = self.writer.lock().await;
        loop {
            let (records, max_seq) = self.catalog.pending(store, FLUSH_CHUNK).await?;
            let Some(max_seq) = max_seq else {
                return Ok(());
            };
            let files = self.put_by_day(store, records).await?;
            self.catalog.commit_flush(store, max_seq, &files).await?;
            tracing::debug!(
                store,
                files = files.len(),
                "flushed buffered events to Parquet"
            );
        }
    }

    /// Writes `records` straight to Parquet files of `store`, one per day,
    /// and lists them: a bulk import that skips the ingest buffer (the lake
    /// benchmark loads its data with it; records must be new to the store).
    pub async fn import(&self, store: &str, records: Vec<Record>) -> Result<Vec<DataFile>> {
        let _w = self.writer.lock().await;
        let files = self.put_by_day(store, records).await?;
        self.catalog.swap_files(&[], &files).await?;
        Ok(files)
    }

    /// Flushes every store with buffered records.
    pub async fn flush_all(&self) -> Result<()> {
        for (store, _) in self.catalog.pending_counts().await? {
            self.flush(&store).await?;
        }
        Ok(())
    }

    /// Writes the rows of `files` (of one day) as one new file, sorted by
    /// event time, without listing it. The merge streams (see
    /// [`crate::storage::merge`]): it holds the files' compressed bytes and
    /// about one batch of each, never their rows all at once.
    async fn merge(&self, store: &str, day: &str, files: &[DataFile]) -> Result<DataFile> {
        let mut sources = Vec::with_capacity(files.len());
        for f in files {
            let bytes = self
                .objects
                .get(&ObjectPath::from(f.path.as_str()))
                .await?
                .bytes()
                .await?;
            sources.push(
                ParquetRecordBatchReaderBuilder::try_new(bytes)?
                    .with_batch_size(MERGE_BATCH_ROWS)
                    .build()?,
            );
        }
        let (buf, rows) = tokio::task::spawn_blocking(move || {
            let merged = sorted_merge(record::schema(), "eventtime", sources, MERGE_BATCH_ROWS)?;
            parquet_bytes(merged, 0)
        })
        .await??;
        self.write_file(store, day, buf, rows).await
    }

    /// Merges the small files of each day of `store` that has many.
    pub async fn compact(&self, store: &str) -> Result<usize> {
        let _w = self.writer.lock().await;
        let mut by_day: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
        for f in self.catalog.files(store).await? {
            if f.rows < COMPACT_MAX_ROWS / 2 {
                by_day.entry(f.day.clone()).or_default().push(f);
            }
        }
        let mut merged = 0;
        for (day, files) in by_day {
            if files.len() < COMPACT_MIN_FILES {
                continue;
            }
            let mut group: Vec<DataFile> = Vec::new();
            let mut rows = 0;
            let mut groups = Vec::new();
            for f in files {
                if (rows + f.rows > COMPACT_MAX_ROWS || group.len() == COMPACT_MAX_FILES)
                    && !group.is_empty()
                {
                    groups.push(std::mem::take(&mut group));
                    rows = 0;
                }
                rows += f.rows;
                group.push(f);
            }
            groups.push(group);
            for group in groups.into_iter().filter(|g| g.len() > 1) {
                let new = self.merge(store, &day, &group).await?;
                self.catalog
                    .swap_files(&group, std::slice::from_ref(&new))
                    .await?;
                self.delete_files(&group).await;
                merged += group.len();
            }
        }
        Ok(merged)
    }

    /// Deletes objects no longer listed, once no query reads them.
    pub async fn delete_files(&self, files: &[DataFile]) {
        let _gate = self.files_gate.write().await;
        for f in files {
            if let Err(e) = self
                .objects
                .delete(&ObjectPath::from(f.path.as_str()))
                .await
            {
                tracing::warn!(path = %f.path, error = %e, "could not delete a replaced Parquet file");
            }
        }
    }

    /// Deletes objects under `eds/` that the catalog does not list: files a
    /// crash left between writing and listing them.
    pub async fn remove_unlisted(&self) -> Result<usize> {
        let _w = self.writer.lock().await;
        let listed = self.catalog.all_file_paths().await?;
        let prefix = ObjectPath::from("eds");
        let objects: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await?;
        let mut removed = 0;
        for meta in objects {
            if !listed.contains(meta.location.as_ref()) {
                self.objects.delete(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
