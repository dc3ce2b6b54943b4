//! What a query may use, and the shape of what it returns: shared by the
//! engine's front end and its worker processes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits of the query engine. The defaults protect a small host: two
/// queries at once, one per account, a gibibyte each, two minutes each.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Queries running at once; more wait as `QUEUED`.
    pub max_concurrent: usize,
    /// Queries of one account running at once. Below `max_concurrent`, so
    /// that one account cannot take every slot.
    pub max_concurrent_per_account: usize,
    /// A query running longer ends as `TIMED_OUT`.
    pub timeout: Duration,
    /// A query producing more rows fails and asks for a `LIMIT`.
    pub max_result_rows: usize,
    /// A query whose rendered results are larger fails likewise.
    pub max_result_bytes: usize,
    /// Memory one query's process may allocate.
    pub memory_limit: usize,
    /// Whether a group-by on one dictionary column (event names) may run
    /// on the operators that count codes instead of DataFusion's own
    /// (`GroupOnCodes`). Off: every query runs on stock DataFusion, for
    /// ruling those operators out when an answer looks wrong.
    pub group_on_codes: bool,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 2,
            max_concurrent_per_account: 1,
            timeout: Duration::from_secs(120),
            max_result_rows: 1_000_000,
            max_result_bytes: 64 << 20,
            memory_limit: 1 << 30,
            group_on_codes: true,
        }
    }
}

impl QueryLimits {
    /// Checks the limits make sense together.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_concurrent == 0 || self.max_concurrent_per_account == 0 {
            return Err("query concurrency limits must be at least 1".into());
        }
        if self.max_concurrent_per_account > self.max_concurrent {
            return Err(format!(
                "queries per account ({}) cannot exceed queries in all ({})",
                self.max_concurrent_per_account, self.max_concurrent
            ));
        }
        if self.memory_limit < 64 << 20 {
            return Err("a query's memory limit must be at least 64 MiB".into());
        }
        if self.timeout.is_zero() || self.max_result_rows == 0 || self.max_result_bytes == 0 {
            return Err("query timeout and result limits must be above zero".into());
        }
        Ok(())
    }
}

/// A finished query's results as stored: column names and string cells.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResultSet {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows of cells; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}
