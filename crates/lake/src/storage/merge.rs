//! A k-way merge of record batch streams that are each sorted by event
//! time into one sorted stream, for compaction.
//!
//! Every Parquet file the lake writes is sorted by `eventtime`, so merging
//! files never needs a sort: the merge holds one small batch per input and
//! one output batch at a time, and its memory stays the same however many
//! rows pass through it, where reading the files whole, concatenating and
//! sorting would hold each merge about three times in memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use datafusion::arrow::array::{AsArray as _, RecordBatch};
use datafusion::arrow::buffer::ScalarBuffer;
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;

/// One input: its source and the batch being read.
struct Cursor<I> {
    source: I,
    batch: RecordBatch,
    times: ScalarBuffer<i64>,
    row: usize,
}

/// Merges `sources`, each sorted by the millisecond timestamp column `key`,
/// into batches of at most `batch_rows` rows sorted by `key`. Rows with the
/// same time keep the order of their sources, then of their rows.
pub struct SortedMerge<I> {
    schema: SchemaRef,
    key: usize,
    batch_rows: usize,
    cursors: Vec<Cursor<I>>,
    /// The next row of every input that has one: (time, input).
    heap: BinaryHeap<Reverse<(i64, usize)>>,
    /// An input whose batch ran out in the last output and must load its
    /// next one before the merge goes on (not before: the output still
    /// referred to the old batch).
    refill: Option<usize>,
    started: bool,
}

impl<I> SortedMerge<I>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>>,
{
    /// A merge of `sources` (all with `schema`) on its column `key`.
    pub fn new(
        schema: SchemaRef,
        key: &str,
        sources: impl IntoIterator<Item = I>,
        batch_rows: usize,
    ) -> Result<Self, ArrowError> {
        let key = schema.index_of(key)?;
        let empty = RecordBatch::new_empty(schema.clone());
        let cursors = sources
            .into_iter()
            .map(|source| Cursor {
                source,
                batch: empty.clone(),
                times: ScalarBuffer::from(Vec::<i64>::new()),
                row: 0,
            })
            .collect();
        Ok(Self {
            schema,
            key,
            batch_rows: batch_rows.max(1),
            cursors,
            heap: BinaryHeap::new(),
            refill: None,
            started: false,
        })
    }

    /// Loads input `i`'s next non-empty batch, or an empty one at its end.
    fn advance(&mut self, i: usize) -> Result<(), ArrowError> {
        let cursor = &mut self.cursors[i];
        cursor.batch = RecordBatch::new_empty(self.schema.clone());
        cursor.times = ScalarBuffer::from(Vec::<i64>::new());
        cursor.row = 0;
        for batch in cursor.source.by_ref() {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            let times = batch
                .column(self.key)
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| {
                    ArrowError::SchemaError(format!(
                        "merge key {} is not a millisecond timestamp",
                        self.schema.field(self.key).name()
                    ))
                })?
                .values()
                .clone();
            self.heap.push(Reverse((times[0], i)));
            cursor.batch = batch;
            cursor.times = times;
            return Ok(());
        }
        Ok(())
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if !self.started {
            self.started = true;
            for i in 0..self.cursors.len() {
                self.advance(i)?;
            }
        }
        if let Some(i) = self.refill.take() {
            self.advance(i)?;
        }
        let mut picks = Vec::with_capacity(self.batch_rows);
        while picks.len() < self.batch_rows {
            let Some(Reverse((_, i))) = self.heap.pop() else {
                break;
            };
            let cursor = &mut self.cursors[i];
            picks.push((i, cursor.row));
            cursor.row += 1;
            if cursor.row < cursor.times.len() {
                self.heap.push(Reverse((cursor.times[cursor.row], i)));
            } else {
                self.refill = Some(i);
                break;
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        let batches: Vec<&RecordBatch> = self.cursors.iter().map(|c| &c.batch).collect();
        interleave_record_batch(&batches, &picks).map(Some)
    }
}

impl<I> Iterator for SortedMerge<I>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>>,
{
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

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
        let id = b
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
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
        SortedMerge::new(schema(), "eventtime", sources, batch_rows)
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
        let pulled = Rc::new(Cell::new(0usize));
        let counting = |n: i64| {
            let pulled = pulled.clone();
            (0..n).map(move |k| {
                pulled.set(pulled.get() + 1);
                Ok(batch(&[(2 * k, k), (2 * k + 1, k)]))
            })
        };
        let mut merge =
            SortedMerge::new(schema(), "eventtime", vec![counting(50), counting(50)], 2).unwrap();
        let first = merge.next().unwrap().unwrap();
        assert_eq!(first.num_rows(), 2);
        assert_eq!(
            pulled.get(),
            2,
            "one batch per input before the first output"
        );
        let rest: usize = merge.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rest + 2, 200);
        assert_eq!(pulled.get(), 100);
    }

    #[test]
    fn a_source_error_ends_the_merge_with_that_error() {
        let failing = vec![
            Ok(batch(&[(1, 1)])),
            Err(ArrowError::ParquetError("torn page".into())),
        ]
        .into_iter();
        let results: Vec<_> = SortedMerge::new(
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
    fn a_key_that_is_not_a_timestamp_is_refused() {
        let mut merge = SortedMerge::new(schema(), "id", vec![source(&[&[(1, 1)]])], 4).unwrap();
        assert!(merge.next().unwrap().is_err());
        assert!(SortedMerge::new(schema(), "nope", Vec::<Source>::new(), 4).is_err());
    }
}
