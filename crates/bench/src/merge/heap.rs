//! The hand-written k-way merge that compaction used before DataFusion's
//! sort-preserving merge, kept here as the benchmark's other side: a binary
//! heap of each input's next event time, and one output batch per call,
//! cut short where an input's batch runs out so that it refers to one
//! batch per input at most.

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
