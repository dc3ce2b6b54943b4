//! Counting rows per value of one Parquet column from its encoded pages:
//! `SELECT eventdata.eventname, count(*) FROM store GROUP BY
//! eventdata.eventname`, the commonest question asked of an audit trail,
//! without decoding a row.
//!
//! The writer stores such a column, per row group, as a dictionary page (the
//! distinct values) and data pages of codes in Parquet's RLE/bit-packed
//! hybrid encoding. A run of one code adds its length at once and a
//! bit-packed group of eight codes is a few shifts, so counting reads the
//! codes where they lie instead of turning them into Arrow arrays; each
//! dictionary entry becomes a group once per row group. Decoding the rows,
//! even grouped on codes ([`super::dict_group`]), spends most of such a
//! query's time checking and expanding every code.
//!
//! [`CountFromPages::try_new`] takes the place of an aggregation when every
//! aggregate counts rows (`count(*)`, `count(1)`, or none at all) and its
//! input is a Parquet scan without a filter (through projections only),
//! grouped by one string column of the files, top-level or nested in
//! structs. Each partition reads the row groups the scan's partition would
//! have read (the same files, the same byte ranges) and outputs each value
//! once with its count: both the partial state and the final value of
//! `count`. A column chunk that is not all dictionary codes (the writer
//! falls back to plain values when a dictionary grows too big, and other
//! writers may use other encodings) is read through the Arrow reader and
//! counted value by value, so every file is answered.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray as _, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_datafusion_err, Result};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::datasource::physical_plan::{FileGroup, FileSource as _, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::{Column, Literal};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, ReplaceChildrenOptions,
};
use futures::stream::BoxStream;
use futures::StreamExt as _;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use super::pages::{count_chunk, ChunkBytes, ChunkCounts};
use super::shared::{counts_rows, push_slices};

/// Files a partition fetches ahead of the one it counts, so that reading
/// overlaps counting.
const FETCH_AHEAD: usize = 2;

/// An aggregation counting rows per value of a Parquet column, read from the
/// column's pages; see the module docs. It stands in for the
/// `AggregateExec` and the scan below it, and keeps the aggregation for its
/// expressions, schema and properties.
#[derive(Debug)]
pub struct CountFromPages {
    agg: Arc<AggregateExec>,
    /// The scan's files, by partition.
    file_groups: Vec<FileGroup>,
    object_store_url: ObjectStoreUrl,
    /// The grouped column's path in the files' schema.
    path: Vec<String>,
    metrics: ExecutionPlanMetricsSet,
}

impl CountFromPages {
    /// This operator in place of `agg` and its scan, or `None` when they do
    /// not qualify.
    pub fn try_new(agg: &AggregateExec) -> Option<Self> {
        let group_by = agg.group_expr();
        let [(key, _)] = group_by.expr() else {
            return None;
        };
        let strings = matches!(
            key.data_type(&agg.input().schema()),
            Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        ) || matches!(
            key.data_type(&agg.input().schema()),
            Ok(DataType::Dictionary(_, v)) if *v == DataType::Utf8
        );
        let qualifies = matches!(agg.mode(), AggregateMode::Partial | AggregateMode::Single)
            && strings
            && group_by.is_single()
            && agg.limit_options().is_none()
            && agg.dynamic_expressions_produced().is_empty()
            && agg
                .aggr_expr()
                .iter()
                .zip(agg.filter_expr())
                .all(|(a, filter)| filter.is_none() && counts_rows(a));
        if !qualifies {
            return None;
        }
        let (path, scan) = scanned_column(key, agg.input())?;
        let (config, _) = scan.downcast_to_file_source::<ParquetSource>()?;
        let partitions = agg.properties().output_partitioning().partition_count();
        if config.file_groups.len() != partitions
            || (agg.mode() == &AggregateMode::Single && partitions != 1)
        {
            return None;
        }
        Some(Self {
            agg: Arc::new(agg.clone()),
            file_groups: config.file_groups.clone(),
            object_store_url: config.object_store_url.clone(),
            path,
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The path in the files of the column `expr` reads from `input`, and the
/// scan, when `input` is a Parquet scan without a filter, a limit or
/// per-file extensions (through projections), and `expr` a column of its
/// files or a field of one.
fn scanned_column<'a>(
    expr: &Arc<dyn PhysicalExpr>,
    input: &'a Arc<dyn ExecutionPlan>,
) -> Option<(Vec<String>, &'a DataSourceExec)> {
    let (index, fields) = field_path(expr)?;
    if let Some(projection) = input.downcast_ref::<ProjectionExec>() {
        let inner = &projection.expr().get(index)?.expr;
        let (mut path, scan) = scanned_column(inner, projection.input())?;
        path.extend(fields);
        return Some((path, scan));
    }
    let scan = input.downcast_ref::<DataSourceExec>()?;
    let (config, source) = scan.downcast_to_file_source::<ParquetSource>()?;
    let unfiltered = source.filter().is_none()
        && config.limit.is_none()
        && config
            .file_groups
            .iter()
            .flat_map(FileGroup::files)
            .all(|f| f.extensions.is_empty());
    if !unfiltered {
        return None;
    }
    let table_expr = match source.projection() {
        Some(projection) => Arc::clone(&projection.iter().nth(index)?.expr),
        None => Arc::new(Column::new("", index)) as Arc<dyn PhysicalExpr>,
    };
    let (column, inner) = field_path(&table_expr)?;
    // Past the file's columns are the table's partition columns.
    let name = config.file_schema().fields().get(column)?.name().clone();
    let path = std::iter::once(name).chain(inner).chain(fields).collect();
    Some((path, scan))
}

/// `expr` as a column index and the names of the struct fields it reads
/// below that column (`get_field(col, 'a', 'b')` nested any way).
fn field_path(expr: &Arc<dyn PhysicalExpr>) -> Option<(usize, Vec<String>)> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return Some((column.index(), Vec::new()));
    }
    let call = expr.downcast_ref::<ScalarFunctionExpr>()?;
    let [inner, names @ ..] = call.args() else {
        return None;
    };
    if call.name() != "get_field" || names.is_empty() {
        return None;
    }
    let (column, mut path) = field_path(inner)?;
    for name in names {
        let literal = name.downcast_ref::<Literal>()?;
        path.push(literal.value().try_as_str()??.to_owned());
    }
    Some((column, path))
}

impl DisplayAs for CountFromPages {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let aggs: Vec<&str> = self.agg.aggr_expr().iter().map(|a| a.name()).collect();
        let files: usize = self.file_groups.iter().map(FileGroup::len).sum();
        write!(
            f,
            "CountFromPages: mode={:?}, column={}, aggr=[{}], files={files}",
            self.agg.mode(),
            self.path.join("."),
            aggs.join(", ")
        )
    }
}

impl ExecutionPlan for CountFromPages {
    fn name(&self) -> &str {
        "CountFromPages"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // The aggregation's expressions are never evaluated: the column is
        // read from the files by its path.
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(exec_datafusion_err!("CountFromPages has no children"))
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(
                datafusion::physical_plan::execution_plan::ChildrenPropertiesMode::Recompute,
            ),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self
            .file_groups
            .get(partition)
            .ok_or_else(|| exec_datafusion_err!("no partition {partition}"))?
            .files()
            .to_vec();
        let store = context.runtime_env().object_store(&self.object_store_url)?;
        let cache = context
            .runtime_env()
            .cache_manager
            .get_file_metadata_cache();
        let fetches = {
            let path = Arc::new(self.path.clone());
            futures::stream::iter(files)
                .map(move |file| {
                    fetch(
                        Arc::clone(&store),
                        Arc::clone(&cache),
                        file,
                        Arc::clone(&path),
                    )
                })
                .buffered(FETCH_AHEAD)
                .boxed()
        };
        let reservation = MemoryConsumer::new(format!("CountFromPages[{partition}]"))
            .register(context.memory_pool());
        let run = Run {
            fetches,
            groups: Groups::new(self.agg.schema(), self.agg.aggr_expr().len(), reservation),
            hand_on_early: self.agg.mode() == &AggregateMode::Partial,
            ready: VecDeque::new(),
            done: false,
            batch_size: context.session_config().batch_size().max(1),
            counted: MetricBuilder::new(&self.metrics).counter("row_groups_counted", partition),
            decoded: MetricBuilder::new(&self.metrics).counter("row_groups_decoded", partition),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::unfold(run, Run::next);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// A file's row groups to count, with the grouped column's chunk of each.
struct Fetched {
    metadata: Arc<ParquetMetaData>,
    /// The column's index among the file's leaf columns; `None` when the
    /// file lacks it (every row is then in the null group).
    leaf: Option<usize>,
    /// Row groups in the file's range, with the column chunk's bytes.
    chunks: Vec<(usize, Bytes)>,
}

/// Reads a file's footer (from the engine's cache when it holds it) and the
/// grouped column's chunks of the row groups in the file's range. A row
/// group belongs to the range holding its first byte, as for the scan.
async fn fetch(
    store: Arc<dyn ObjectStore>,
    cache: Arc<FileMetadataCache>,
    file: PartitionedFile,
    path: Arc<Vec<String>>,
) -> Result<Fetched> {
    let metadata = DFParquetMetadata::new(store.as_ref(), &file.object_meta)
        .with_file_metadata_cache(Some(cache))
        .with_page_index_policy(Some(PageIndexPolicy::Skip))
        .fetch_metadata()
        .await?;
    let schema = metadata.file_metadata().schema_descr();
    let leaf =
        (0..schema.num_columns()).find(|&i| schema.column(i).path().parts() == path.as_slice());
    let groups: Vec<usize> = (0..metadata.num_row_groups())
        .filter(|&g| {
            let first = metadata.row_group(g).column(0);
            let offset = first
                .dictionary_page_offset()
                .unwrap_or_else(|| first.data_page_offset());
            file.range.as_ref().is_none_or(|r| r.contains(offset))
        })
        .collect();
    let chunks = match leaf {
        Some(leaf) => {
            let ranges: Vec<Range<u64>> = groups
                .iter()
                .map(|&g| {
                    let (start, len) = metadata.row_group(g).column(leaf).byte_range();
                    start..start + len
                })
                .collect();
            let bytes = store
                .get_ranges(&file.object_meta.location, &ranges)
                .await?;
            groups.into_iter().zip(bytes).collect()
        }
        None => groups.into_iter().map(|g| (g, Bytes::new())).collect(),
    };
    Ok(Fetched {
        metadata,
        leaf,
        chunks,
    })
}

/// One partition's execution: counts its files as they arrive, then hands
/// on the groups in batches.
struct Run {
    fetches: BoxStream<'static, Result<Fetched>>,
    groups: Groups,
    /// Whether this is a partial stage, which may hand its groups on before
    /// the end when memory runs short.
    hand_on_early: bool,
    ready: VecDeque<RecordBatch>,
    done: bool,
    batch_size: usize,
    counted: Count,
    decoded: Count,
    metrics: BaselineMetrics,
}

impl Run {
    async fn next(mut self) -> Option<(Result<RecordBatch>, Self)> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                self.metrics.record_output(batch.num_rows());
                return Some((Ok(batch), self));
            }
            if self.done {
                self.metrics.done();
                return None;
            }
            let step = match self.fetches.next().await {
                Some(Ok(fetched)) => self.count_file(fetched),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.emit()
                }
            };
            if let Err(e) = step {
                self.done = true;
                self.ready.clear();
                return Some((Err(e), self));
            }
        }
    }

    fn count_file(&mut self, fetched: Fetched) -> Result<()> {
        let Fetched {
            metadata,
            leaf,
            chunks,
        } = fetched;
        for (group, bytes) in chunks {
            let row_group = metadata.row_group(group);
            let Some(leaf) = leaf else {
                self.groups.add(None, row_group.num_rows() as u64);
                continue;
            };
            let elapsed = self.metrics.elapsed_compute().clone();
            let _timer = elapsed.timer();
            match count_chunk(bytes.clone(), row_group, leaf)? {
                Some(chunk) => {
                    chunk.add_to(&mut self.groups)?;
                    self.counted.add(1);
                }
                None => {
                    decode_chunk(bytes, &metadata, leaf, group, &mut self.groups)?;
                    self.decoded.add(1);
                }
            }
        }
        if self.groups.reserve().is_err() {
            if self.hand_on_early {
                self.emit()?;
            } else {
                self.groups.reserve()?;
            }
        }
        Ok(())
    }

    fn emit(&mut self) -> Result<()> {
        if let Some(batch) = self.groups.emit()? {
            push_slices(&batch, self.batch_size, &mut self.ready);
        }
        Ok(())
    }
}

/// The groups of one partition: each value seen and its row count.
struct Groups {
    schema: SchemaRef,
    aggregates: usize,
    ids: HashMap<String, usize>,
    null_group: Option<usize>,
    names: Vec<Option<String>>,
    counts: Vec<i64>,
    name_bytes: usize,
    reservation: MemoryReservation,
}

impl Groups {
    fn new(schema: SchemaRef, aggregates: usize, reservation: MemoryReservation) -> Self {
        Self {
            schema,
            aggregates,
            ids: HashMap::new(),
            null_group: None,
            names: Vec::new(),
            counts: Vec::new(),
            name_bytes: 0,
            reservation,
        }
    }

    fn add(&mut self, value: Option<&str>, rows: u64) {
        let group = match value {
            None => match self.null_group {
                Some(g) => g,
                None => {
                    self.names.push(None);
                    self.counts.push(0);
                    *self.null_group.insert(self.names.len() - 1)
                }
            },
            Some(v) => match self.ids.get(v) {
                Some(&g) => g,
                None => {
                    self.names.push(Some(v.to_owned()));
                    self.counts.push(0);
                    self.ids.insert(v.to_owned(), self.names.len() - 1);
                    self.name_bytes += 2 * v.len();
                    self.names.len() - 1
                }
            },
        };
        self.counts[group] += rows as i64;
    }

    /// Grows the memory reservation to the groups' size; the pool's error
    /// when it refuses.
    fn reserve(&mut self) -> Result<()> {
        use std::mem::size_of;
        let size = self.name_bytes
            + self.names.capacity() * size_of::<Option<String>>()
            + self.counts.capacity() * size_of::<i64>()
            + self.ids.capacity() * (size_of::<(String, usize)>() + 1);
        self.reservation.try_resize(size)
    }

    /// The groups so far as one batch of the stage's schema, and a fresh
    /// start; `None` when there are none.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        if self.names.is_empty() {
            return Ok(None);
        }
        let names = StringArray::from(std::mem::take(&mut self.names));
        let mut columns = vec![cast(&names, self.schema.field(0).data_type())?];
        let counts: ArrayRef = Arc::new(Int64Array::from(std::mem::take(&mut self.counts)));
        columns.extend((0..self.aggregates).map(|_| Arc::clone(&counts)));
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.ids = HashMap::new();
        self.null_group = None;
        self.name_bytes = 0;
        self.reservation.free();
        Ok(Some(batch))
    }
}

/// Counting a decoded chunk: its entries become groups.
impl ChunkCounts {
    fn add_to(&self, groups: &mut Groups) -> Result<()> {
        for (entry, &n) in self.dictionary.iter().zip(&self.counts) {
            // An entry no row uses must not become a group.
            if n > 0 {
                let value = std::str::from_utf8(entry)
                    .map_err(|e| exec_datafusion_err!("dictionary entry is not UTF-8: {e}"))?;
                groups.add(Some(value), n);
            }
        }
        if self.nulls > 0 {
            groups.add(None, self.nulls);
        }
        Ok(())
    }
}

/// Counts one row group's column through the Arrow reader, from the column
/// chunk's bytes: for chunks whose pages are not all dictionary codes.
fn decode_chunk(
    bytes: Bytes,
    metadata: &Arc<ParquetMetaData>,
    leaf: usize,
    row_group: usize,
    groups: &mut Groups,
) -> Result<()> {
    let (start, _) = metadata.row_group(row_group).column(leaf).byte_range();
    let arrow = ArrowReaderMetadata::try_new(Arc::clone(metadata), ArrowReaderOptions::new())?;
    let mask = ProjectionMask::leaves(metadata.file_metadata().schema_descr(), [leaf]);
    let batches =
        ParquetRecordBatchReaderBuilder::new_with_metadata(ChunkBytes { start, bytes }, arrow)
            .with_projection(mask)
            .with_row_groups(vec![row_group])
            .build()?;
    for batch in batches {
        let batch = batch?;
        // Down the structs to the one leaf the projection kept; a row is
        // null where any level above the value is.
        let mut column = Arc::clone(batch.column(0));
        let mut nulls = column.logical_nulls();
        while let Some(fields) = column.as_struct_opt() {
            let child = Arc::clone(
                fields
                    .columns()
                    .first()
                    .ok_or_else(|| exec_datafusion_err!("projected struct without fields"))?,
            );
            nulls = NullBuffer::union(nulls.as_ref(), child.logical_nulls().as_ref());
            column = child;
        }
        let strings = cast(&column, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        for i in 0..strings.len() {
            let value = nulls
                .as_ref()
                .is_none_or(|n| n.is_valid(i))
                .then(|| strings.value(i));
            groups.add(value, 1);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{DictionaryArray, StructArray};
    use datafusion::arrow::datatypes::{Field, Fields, Int32Type, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{WriterProperties, WriterVersion};

    use super::*;
    use crate::query::codes::GroupOnCodes;

    fn dict_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    }

    /// `k`: a top-level dictionary column; `s.name`: a nullable string in
    /// a nullable struct; `r.name`: a required dictionary string in a
    /// required struct, as the lake stores `eventdata.eventname`.
    fn schema() -> SchemaRef {
        let s = Fields::from(vec![Field::new("name", DataType::Utf8, true)]);
        let r = Fields::from(vec![Field::new("name", dict_type(), false)]);
        Arc::new(Schema::new(vec![
            Field::new("k", dict_type(), true),
            Field::new("s", DataType::Struct(s), true),
            Field::new("r", DataType::Struct(r), false),
            Field::new("v", DataType::Int64, false),
        ]))
    }

    /// Rows `0..rows` with `distinct` names: `name(i)` picks one, nulls
    /// where `i` says so.
    fn batch(rows: usize, distinct: usize, name: impl Fn(usize) -> usize) -> RecordBatch {
        let names: Vec<String> = (0..distinct).map(|n| format!("org.event.{n:05}")).collect();
        let value = |i: usize| names[name(i) % distinct].as_str();
        let k: DictionaryArray<Int32Type> =
            (0..rows).map(|i| (i % 11 != 3).then(|| value(i))).collect();
        let s_names = StringArray::from_iter((0..rows).map(|i| (i % 7 != 2).then(|| value(i + 1))));
        let s_valid = NullBuffer::from_iter((0..rows).map(|i| i % 13 != 5));
        let s = StructArray::new(
            Fields::from(vec![Field::new("name", DataType::Utf8, true)]),
            vec![Arc::new(s_names)],
            Some(s_valid),
        );
        let r_names: DictionaryArray<Int32Type> = (0..rows).map(|i| value(i + 2)).collect();
        let r = StructArray::new(
            Fields::from(vec![Field::new("name", dict_type(), false)]),
            vec![Arc::new(r_names)],
            None,
        );
        let v = Int64Array::from_iter_values((0..rows).map(|i| i as i64));
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(k), Arc::new(s), Arc::new(r), Arc::new(v)],
        )
        .unwrap()
    }

    fn write(dir: &std::path::Path, name: &str, props: WriterProperties, batches: &[RecordBatch]) {
        let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, schema(), Some(props)).unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    }

    fn small_pages() -> parquet::file::properties::WriterPropertiesBuilder {
        WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_500))
            .set_data_page_row_count_limit(200)
            .set_write_batch_size(100)
    }

    /// Files in every shape the counting path meets: pages of dictionary
    /// codes (v1 and v2, bit-packed and long runs, narrow and wide codes, a
    /// one-entry dictionary), and chunks that are not all codes (no
    /// dictionary; a dictionary that overflowed into plain pages).
    fn write_files(dir: &std::path::Path) -> Vec<&'static str> {
        let mixed = |i: usize| i * 7 + i / 13;
        write(dir, "v1", small_pages().build(), &[batch(4_000, 5, mixed)]);
        write(
            dir,
            "v2",
            small_pages()
                .set_writer_version(WriterVersion::PARQUET_2_0)
                .build(),
            &[batch(3_000, 9, mixed)],
        );
        write(
            dir,
            "runs",
            small_pages().build(),
            &[batch(3_000, 4, |i| i / 400)],
        );
        write(dir, "one", small_pages().build(), &[batch(1_000, 1, mixed)]);
        write(
            dir,
            "wide",
            small_pages().build(),
            &[batch(5_000, 300, mixed)],
        );
        write(
            dir,
            "wider",
            small_pages().build(),
            &[batch(6_000, 5_000, mixed)],
        );
        write(
            dir,
            "plain",
            small_pages().set_dictionary_enabled(false).build(),
            &[batch(2_000, 6, mixed)],
        );
        write(
            dir,
            "overflow",
            small_pages().set_dictionary_page_size_limit(256).build(),
            &[batch(3_000, 400, mixed)],
        );
        vec![
            "v1", "v2", "runs", "one", "wide", "wider", "plain", "overflow",
        ]
    }

    fn context(rule: bool, target_partitions: usize, split_files: bool) -> SessionContext {
        let mut config = SessionConfig::new().with_target_partitions(target_partitions);
        if split_files {
            // Byte ranges of a file go to different partitions.
            config.options_mut().optimizer.repartition_file_min_size = 1;
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(GroupOnCodes));
        }
        SessionContext::new_with_state(state.build())
    }

    fn register(ctx: &SessionContext, dir: &std::path::Path, files: &[&str]) {
        let urls = files
            .iter()
            .map(|f| ListingTableUrl::parse(format!("file://{}/{f}.parquet", dir.display())))
            .collect::<Result<Vec<_>>>()
            .unwrap();
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema());
        let _ = ctx.deregister_table("t");
        ctx.register_table("t", Arc::new(ListingTable::try_new(config).unwrap()))
            .unwrap();
    }

    /// The sorted rows of `sql`, and the executed plan.
    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, Arc<dyn ExecutionPlan>) {
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut rows: Vec<String> = text.lines().map(str::to_owned).collect();
        rows.sort();
        (rows, plan)
    }

    /// The operator in `plan`, if there is one.
    fn counter(plan: &Arc<dyn ExecutionPlan>) -> Option<&CountFromPages> {
        if let Some(c) = plan.downcast_ref::<CountFromPages>() {
            return Some(c);
        }
        plan.children().into_iter().find_map(counter)
    }

    #[tokio::test]
    async fn counting_pages_answers_as_datafusion_does() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path());
        let queries = [
            "SELECT r.name, count(*) FROM t GROUP BY r.name",
            "SELECT s.name, count(*), count(1) FROM t GROUP BY s.name",
            "SELECT k, count(*) AS n FROM t GROUP BY k",
            "SELECT k FROM t GROUP BY k",
            "SELECT upper(k) AS u, count(*) FROM t GROUP BY k",
            "SELECT r.name AS n, count(*) AS c FROM t GROUP BY r.name ORDER BY c DESC, n LIMIT 3",
        ];
        for (partitions, split) in [(1, false), (3, false), (3, true)] {
            let (with, without) = (
                context(true, partitions, split),
                context(false, partitions, split),
            );
            register(&with, dir.path(), &files);
            register(&without, dir.path(), &files);
            for sql in queries {
                let (expected, _) = run(&without, sql).await;
                let (got, plan) = run(&with, sql).await;
                let shown = displayable(plan.as_ref()).indent(true).to_string();
                let count = counter(&plan).unwrap_or_else(|| panic!("{sql}:\n{shown}"));
                if split {
                    assert!(
                        count
                            .file_groups
                            .iter()
                            .flat_map(FileGroup::files)
                            .any(|f| f.range.is_some()),
                        "files are not split:\n{shown}"
                    );
                }
                assert_eq!(
                    got, expected,
                    "{sql} ({partitions} partitions, split {split}):\n{shown}"
                );
            }
        }
    }

    #[tokio::test]
    async fn plans_it_cannot_take_keep_their_operators() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path());
        let (with, without) = (context(true, 2, false), context(false, 2, false));
        register(&with, dir.path(), &files);
        register(&without, dir.path(), &files);
        for sql in [
            // A filter, a count of values that may be null, a key that is
            // not a string, two keys.
            "SELECT k, count(*) FROM t WHERE v > 100 GROUP BY k",
            "SELECT k, count(s.name) FROM t GROUP BY k",
            "SELECT v % 3 AS m, count(*) FROM t GROUP BY v % 3",
            "SELECT k, r.name, count(*) FROM t GROUP BY k, r.name",
        ] {
            let (expected, _) = run(&without, sql).await;
            let (got, plan) = run(&with, sql).await;
            assert!(counter(&plan).is_none(), "{sql}");
            assert_eq!(got, expected, "{sql}");
        }
    }

    /// Row groups counted from pages and decoded, over the files `files`.
    async fn paths_taken(dir: &std::path::Path, files: &[&str]) -> (usize, usize) {
        let ctx = context(true, 2, false);
        register(&ctx, dir, files);
        let (_, plan) = run(&ctx, "SELECT r.name, count(*) FROM t GROUP BY r.name").await;
        let metrics = counter(&plan).unwrap().metrics().unwrap();
        let sum = |name| metrics.sum_by_name(name).map_or(0, |v| v.as_usize());
        (sum("row_groups_counted"), sum("row_groups_decoded"))
    }

    #[tokio::test]
    async fn only_chunks_that_are_not_all_codes_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path());
        // 4,000 and 3,000 rows in row groups of 1,500.
        assert_eq!(paths_taken(dir.path(), &["v1", "v2"]).await, (3 + 2, 0));
        assert_eq!(paths_taken(dir.path(), &["plain"]).await, (0, 2));
        let (counted, decoded) = paths_taken(dir.path(), &["overflow"]).await;
        assert!(decoded > 0 && counted + decoded == 2, "{counted} {decoded}");
    }

    /// Runs `plan`'s counting operator alone, every partition, in a task
    /// whose memory pool holds `memory` bytes.
    async fn run_counter(plan: &Arc<dyn ExecutionPlan>, memory: usize) -> Result<Vec<RecordBatch>> {
        use datafusion::execution::memory_pool::GreedyMemoryPool;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;

        let counter = counter(plan).unwrap();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(memory)))
            .build_arc()
            .unwrap();
        let task = Arc::new(TaskContext::default().with_runtime(runtime));
        let runs = (0..counter.file_groups.len()).map(|p| {
            let stream = counter.execute(p, Arc::clone(&task)).unwrap();
            datafusion::physical_plan::common::collect(stream)
        });
        Ok(futures::future::try_join_all(runs)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    #[tokio::test]
    async fn short_of_memory_a_partial_stage_hands_on_early_and_a_final_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<String> = (0..6).map(|f| format!("part{f}")).collect();
        for f in &files {
            write(
                dir.path(),
                f,
                small_pages().build(),
                &[batch(1_800, 300, |i| i * 7)],
            );
        }
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let sql = "SELECT r.name, count(*) FROM t GROUP BY r.name";

        let ctx = context(true, 2, false);
        register(&ctx, dir.path(), &files);
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for memory in [64 << 20, 4 << 10] {
            let batches = run_counter(&plan, memory).await.unwrap();
            let mut counts = BTreeMap::new();
            for b in &batches {
                let names = cast(b.column(0), &DataType::Utf8).unwrap();
                let n = b
                    .column(1)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                for i in 0..b.num_rows() {
                    *counts
                        .entry(names.as_string::<i32>().value(i).to_owned())
                        .or_insert(0) += n.value(i);
                }
            }
            assert_eq!(counts.len(), 300);
            assert!(counts.values().all(|&n| n == 6 * 1_800 / 300), "{memory}");
            rows.push(batches.iter().map(RecordBatch::num_rows).sum::<usize>());
        }
        // Roomy: each of the two partitions hands on each name once. Tight:
        // once per file.
        assert_eq!(rows, [2 * 300, 6 * 300]);

        // One partition: the stage produces final values and cannot hand
        // them on twice.
        let ctx = context(true, 1, false);
        register(&ctx, dir.path(), &files);
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        assert!(counter(&plan).unwrap().agg.mode() == &AggregateMode::Single);
        let err = run_counter(&plan, 4 << 10).await.unwrap_err().to_string();
        assert!(err.contains("Resources exhausted"), "{err}");
    }

    #[test]
    fn a_dictionary_entry_that_is_not_utf8_is_an_error() {
        let bad = ChunkCounts {
            dictionary: vec![Bytes::from_static(b"\xff")],
            counts: vec![1],
            nulls: 0,
        };
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool> =
            Arc::new(datafusion::execution::memory_pool::UnboundedMemoryPool::default());
        let mut groups = Groups::new(schema, 0, MemoryConsumer::new("t").register(&pool));
        assert!(bad
            .add_to(&mut groups)
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }
}
