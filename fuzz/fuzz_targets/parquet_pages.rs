//! The page decoding that counts a group-by's rows from dictionary codes
//! (`page_count`), fed mutated column chunks of real Parquet files.
//!
//! Asserts: a corrupt chunk is an error, never a panic, a timeout or an
//! allocation sized by a value read from it (libFuzzer's RSS limit), and
//! counts that come out account for every row of the row group.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditlake_lake::fuzzing::count_pages(data));
