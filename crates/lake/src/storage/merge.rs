//! A k-way merge of record batch streams that are each sorted by event
//! time into one sorted stream, for compaction: DataFusion's
//! sort-preserving merge, run on the calling thread.
//!
//! Every Parquet file the lake writes is sorted by `eventtime`, so merging
//! files never needs a sort: the merge holds about one small batch per
//! input and one output batch at a time, and its memory stays the same
//! however many rows pass through it, where reading the files whole,
//! concatenating and sorting would hold each merge about three times in
//! memory.
//!
//! On compaction's inputs DataFusion's merge costs what a hand-written
//! heap merge costs, in instructions and in heap (BENCHMARKS.md, section
//! 6), and it is a fraction of the code to keep, in a crate the lake
//! already depends on.

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

/// Merged batches, in order.
pub type Merged = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// Merges `sources` (all with `schema`), each sorted by its column `key`,
/// into batches of `batch_rows` rows (the last one fewer) sorted by `key`.
/// Rows with the same key keep the order of their sources, then of their
/// rows. The sources are plain iterators (Parquet readers, for
/// compaction), so the merge never waits on anything but them.
pub fn sorted_merge<I>(
    schema: SchemaRef,
    key: &str,
    sources: impl IntoIterator<Item = I>,
    batch_rows: usize,
) -> Result<Merged, ArrowError>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
{
    let ordering = LexOrdering::new([PhysicalSortExpr::new(
        col(key, &schema)?,
        SortOptions::default(),
    )])
    .expect("one sort expression");
    let streams: Vec<SendableRecordBatchStream> = sources
        .into_iter()
        .map(|source| {
            Box::pin(RecordBatchStreamAdapter::new(
                schema.clone(),
                futures::stream::iter(source.map(|b| b.map_err(DataFusionError::from))),
            )) as SendableRecordBatchStream
        })
        .collect();
    // The builder refuses no inputs; merging none gives nothing.
    if streams.is_empty() {
        return Ok(Box::new(std::iter::empty()));
    }
    let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
    let merged = StreamingMergeBuilder::new()
        .with_streams(streams)
        .with_schema(schema)
        .with_expressions(&ordering)
        .with_metrics(BaselineMetrics::new(&ExecutionPlanMetricsSet::new(), 0))
        .with_batch_size(batch_rows.max(1))
        .with_reservation(MemoryConsumer::new("compaction merge").register(&pool))
        // On by default: equal keys would then alternate between sources
        // instead of keeping the sources' order.
        .with_round_robin_tie_breaker(false)
        .build()?;
    Ok(Box::new(
        futures::executor::block_on_stream(merged).map(|b| b.map_err(ArrowError::from)),
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use datafusion::arrow::array::{AsArray as _, Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{
        DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
    };

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "eventtime",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("id", DataType::Int64, false),
        ]))
    }

    /// Rows as (time, id).
    fn batch(rows: &[(i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap()
    }

    fn rows(b: &RecordBatch) -> Vec<(i64, i64)> {
        let t = b.column(0).as_primitive::<TimestampMillisecondType>();
        let id = b.column(1).as_primitive::<Int64Type>();
        (0..b.num_rows())
            .map(|i| (t.value(i), id.value(i)))
            .collect()
    }

    type Source = std::vec::IntoIter<Result<RecordBatch, ArrowError>>;

    fn source(batches: &[&[(i64, i64)]]) -> Source {
        batches
            .iter()
            .map(|b| Ok(batch(b)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn merge_all(sources: Vec<Source>, batch_rows: usize) -> Vec<Vec<(i64, i64)>> {
        sorted_merge(schema(), "eventtime", sources, batch_rows)
            .unwrap()
            .map(|b| rows(&b.unwrap()))
            .collect()
    }

    #[test]
    fn merges_sorted_inputs_into_one_sorted_stream_with_every_row_once() {
        let sources = vec![
            source(&[&[(1, 10), (4, 11)], &[], &[(4, 12), (9, 13)]]),
            source(&[]),
            source(&[&[(2, 20)], &[(3, 21), (4, 22), (8, 23)]]),
            source(&[&[(0, 30), (4, 31), (10, 32)]]),
        ];
        let out = merge_all(sources, 3);
        assert!(out.iter().all(|b| !b.is_empty() && b.len() <= 3), "{out:?}");
        let flat: Vec<_> = out.into_iter().flatten().collect();
        // Equal times keep their sources' order, then their rows'.
        assert_eq!(
            flat,
            [
                (0, 30),
                (1, 10),
                (2, 20),
                (3, 21),
                (4, 11),
                (4, 12),
                (4, 22),
                (4, 31),
                (8, 23),
                (9, 13),
                (10, 32)
            ]
        );
    }

    /// Sorted sources of sorted batches (some empty), as (time, id) rows
    /// with ids numbering the rows source by source.
    fn sources_strategy() -> impl proptest::strategy::Strategy<Value = Vec<Vec<Vec<(i64, i64)>>>> {
        use proptest::prelude::*;
        // Few distinct times, so that ties across sources are common.
        let batches = prop::collection::vec(prop::collection::vec(0i64..20, 0..7), 0..5);
        prop::collection::vec(batches, 0..7).prop_map(|sources| {
            let mut id = 0;
            sources
                .into_iter()
                .map(|batches| {
                    let mut times: Vec<i64> = batches.iter().flatten().copied().collect();
                    times.sort_unstable();
                    let mut times = times.into_iter();
                    batches
                        .iter()
                        .map(|b| {
                            b.iter()
                                .map(|_| {
                                    id += 1;
                                    (times.next().expect("as many times as rows"), id)
                                })
                                .collect()
                        })
                        .collect()
                })
                .collect()
        })
    }

    proptest::proptest! {
        /// Differential: the merge gives what a stable sort by time of all
        /// the rows, source after source, gives; in batches of at most
        /// `batch_rows`, none empty.
        #[test]
        fn merging_is_a_stable_sort_of_the_sources_in_order(
            sources in sources_strategy(),
            batch_rows in 1usize..9,
        ) {
            let mut expected: Vec<(i64, i64)> =
                sources.iter().flatten().flatten().copied().collect();
            expected.sort_by_key(|r| r.0);
            let inputs = sources
                .iter()
                .map(|batches| {
                    let batches: Vec<&[(i64, i64)]> = batches.iter().map(Vec::as_slice).collect();
                    source(&batches)
                })
                .collect();
            let out = merge_all(inputs, batch_rows);
            proptest::prop_assert!(
                out.iter().all(|b| !b.is_empty() && b.len() <= batch_rows),
                "{:?}",
                out
            );
            let flat: Vec<(i64, i64)> = out.into_iter().flatten().collect();
            proptest::prop_assert_eq!(flat, expected);
        }
    }

    #[test]
    fn no_inputs_or_only_empty_ones_give_no_batches() {
        assert!(merge_all(vec![], 4).is_empty());
        assert!(merge_all(vec![source(&[]), source(&[&[]])], 4).is_empty());
    }

    /// The memory bound: an output is made from at most one batch per
    /// input, so the merge reads its inputs as it goes, not up front.
    #[test]
    fn reads_each_input_one_batch_at_a_time() {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counting = |n: i64| {
            let pulled = pulled.clone();
            (0..n).map(move |k| {
                pulled.fetch_add(1, Ordering::Relaxed);
                Ok(batch(&[(2 * k, k), (2 * k + 1, k)]))
            })
        };
        let mut merge =
            sorted_merge(schema(), "eventtime", vec![counting(50), counting(50)], 2).unwrap();
        let first = merge.next().unwrap().unwrap();
        assert_eq!(first.num_rows(), 2);
        assert_eq!(
            pulled.load(Ordering::Relaxed),
            2,
            "one batch per input before the first output"
        );
        let rest: usize = merge.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rest + 2, 200);
        assert_eq!(pulled.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_source_error_ends_the_merge_with_that_error() {
        let failing = vec![
            Ok(batch(&[(1, 1)])),
            Err(ArrowError::ParquetError("torn page".into())),
        ]
        .into_iter();
        let results: Vec<_> = sorted_merge(
            schema(),
            "eventtime",
            vec![failing, source(&[&[(5, 2)]])],
            10,
        )
        .unwrap()
        .collect();
        let err = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("the error surfaces");
        assert!(err.to_string().contains("torn page"), "{err}");
    }

    #[test]
    fn a_key_that_is_no_column_is_refused() {
        assert!(sorted_merge(schema(), "nope", vec![source(&[&[(1, 1)]])], 4).is_err());
        assert!(sorted_merge(schema(), "nope", Vec::<Source>::new(), 4).is_err());
    }
}
