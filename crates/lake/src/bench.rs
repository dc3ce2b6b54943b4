//! Entry points for the merge benchmark in `crates/bench` (cargo feature
//! `bench`, off in every build but the benchmarks'): compaction's merge
//! and Parquet writer with the sizes compaction uses, from their private
//! modules. Not an API; nothing else may use it.

pub use crate::storage::files::{
    parquet_bytes, COMPACT_MAX_FILES, COMPACT_MAX_ROWS, MERGE_BATCH_ROWS,
};
pub use crate::storage::merge::sorted_merge;
