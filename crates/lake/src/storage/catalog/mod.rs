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
//!
//! One `impl Catalog` per thing it holds: `stores`, `channels`,
//! `ingest` (the `id` index and the buffer, with `ids` computing the
//! index's keys), `files` (the Parquet file list) and `queries`; `db`
//! opens the database.

mod channels;
mod db;
mod files;
mod ids;
mod ingest;
mod queries;
mod stores;

pub use channels::{Channel, Destination, IngestionStatus};
pub use db::{now_ms, Catalog};
pub use files::DataFile;
pub use ingest::{NewEntry, Stored};
pub use queries::{QueryRow, QueryStatus};
pub use stores::EventDataStore;
