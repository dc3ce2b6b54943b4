//! What both operators that group on codes use: which aggregates count
//! rows, and handing on a stage's groups in batches of the session's size.

use std::collections::VecDeque;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::Literal;

/// Whether `a` is `count` of a value that is never null (`count(*)` is
/// planned as `count(1)`): its value per group is the group's row count,
/// and both its state and its result are that one `Int64`.
pub(super) fn counts_rows(a: &AggregateFunctionExpr) -> bool {
    let int64 = |f: &FieldRef| f.data_type() == &DataType::Int64;
    a.fun().name() == "count"
        && !a.expressions().is_empty()
        && a.expressions().iter().all(|e| {
            e.downcast_ref::<Literal>()
                .is_some_and(|l| !l.value().is_null())
        })
        && int64(&a.field())
        && a.state_fields().is_ok_and(|s| s.len() == 1 && int64(&s[0]))
}

/// Queues `batch` as slices of at most `batch_size` rows: a stage's groups
/// come out in one batch, and the stages above expect the session's size.
pub(super) fn push_slices(
    batch: &RecordBatch,
    batch_size: usize,
    ready: &mut VecDeque<RecordBatch>,
) {
    let rows = batch.num_rows();
    let mut offset = 0;
    while offset < rows {
        let len = batch_size.min(rows - offset);
        ready.push_back(batch.slice(offset, len));
        offset += len;
    }
}
