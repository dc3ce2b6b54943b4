//! The alternative to the lake's `SortedMerge`: DataFusion's
//! sort-preserving merge (`StreamingMergeBuilder`, the stream behind
//! `SortPreservingMergeExec`) over the same sources, with the same output
//! rows in the same order, ties included.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::sorts::streaming_merge::StreamingMergeBuilder;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::SendableRecordBatchStream;

/// Merged batches, as `SortedMerge` yields them.
pub type Merged = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Merges `sources` (all with `schema`), each sorted by column `key`, into
/// batches of `batch_rows` rows sorted by `key`; equal keys keep the order
/// of their sources, then of their rows, as in `SortedMerge`. The merge
/// runs on the calling thread: the sources are plain iterators, so the
/// stream never waits on anything but them.
pub fn merge<I>(
    schema: SchemaRef,
    key: &str,
    sources: Vec<I>,
    batch_rows: usize,
) -> Result<Merged, ArrowError>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
{
    // The builder refuses no inputs; merging none gives nothing.
    if sources.is_empty() {
        return Ok(Box::new(std::iter::empty()));
    }
    let streams: Vec<SendableRecordBatchStream> = sources
        .into_iter()
        .map(|source| {
            Box::pin(RecordBatchStreamAdapter::new(
                schema.clone(),
                futures::stream::iter(source.map(|b| b.map_err(DataFusionError::from))),
            )) as SendableRecordBatchStream
        })
        .collect();
    let ordering = LexOrdering::new([PhysicalSortExpr::new(
        col(key, &schema)?,
        SortOptions::default(),
    )])
    .expect("one sort expression");
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
    let merged = StreamingMergeBuilder::new()
        .with_streams(streams)
        .with_schema(schema)
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&ExecutionPlanMetricsSet::new(), 0))
        .with_batch_size(batch_rows.max(1))
        .with_reservation(MemoryConsumer::new("compaction merge").register(&pool))
        // On by default: ties would then alternate between sources instead
        // of keeping the sources' order.
        .with_round_robin_tie_breaker(false)
        .build()?;
    Ok(Box::new(
        futures::executor::block_on_stream(merged).map(|b| b.map_err(ArrowError::from)),
    ))
}
