//! Storage: the catalog (stores, channels, queries, the `id` index and the
//! ingest buffer, in SQLite) and the Parquet files behind `object_store`.
//!
//! - `record`: an accepted event as a row of the stored schema;
//! - `catalog`: the SQLite catalog and ingest buffer;
//! - `files`: buffered records become Parquet files per store and day;
//!   compaction and retention;
//! - `merge`: the streaming sorted merge that compaction uses (DataFusion's).

pub mod catalog;
mod files;
mod merge;
pub mod record;

pub use files::{encode, Storage, COMPACT_MIN_FILES};
