//! Grouping decoded batches on their dictionary codes.
//!
//! DataFusion groups a dictionary column through its row format: every
//! row's value is turned back into bytes and hashed. A dictionary batch
//! already says which rows share a value, so [`DictionaryGroupBy`] maps each
//! entry of a dictionary to its group once, when the dictionary first
//! appears (a Parquet column chunk shares one across its batches), and per
//! row only follows the integer code. The aggregates themselves are
//! DataFusion's own `GroupsAccumulator`s, fed the group of each row exactly
//! as `AggregateExec` feeds them. It qualifies for one `Dictionary(Int32,
//! Utf8)` key, no grouping sets, aggregates with group accumulators, no
//! ordering or distinct; the output schema, partitioning and the stages
//! above it are those of the `AggregateExec` it replaces.
//!
//! Memory is reserved from the query's pool as groups accumulate. When the
//! pool refuses, a partial stage hands on what it has and starts afresh (its
//! output is merged by the final stage anyway, as `AggregateExec` does); a
//! stage producing final values fails with the pool's error.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayData, ArrayRef, AsArray as _, BooleanArray, Int32Array, Int64Array, RecordBatch,
    StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_datafusion_err, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{
    AggregateExec, AggregateInputMode, AggregateOutputMode,
};
use datafusion::physical_plan::execution_plan::ChildrenPropertiesMode;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode,
    PlanProperties, ReplaceChildrenOptions,
};
use futures::StreamExt as _;

use super::shared::{counts_rows, push_slices};

/// An aggregation of raw rows grouped by one dictionary-encoded string
/// column; see the module docs. It stands in for the `AggregateExec` it was
/// made from and keeps that plan for its expressions, schema and
/// properties.
#[derive(Debug)]
pub struct DictionaryGroupBy {
    agg: Arc<AggregateExec>,
    metrics: ExecutionPlanMetricsSet,
}

impl DictionaryGroupBy {
    /// This operator in place of `agg`, or `None` when `agg` does not
    /// qualify.
    pub fn try_new(agg: &AggregateExec) -> Option<Self> {
        let group_by = agg.group_expr();
        let [(key, _)] = group_by.expr() else {
            return None;
        };
        let qualifies = agg.mode().input_mode() == AggregateInputMode::Raw
            && group_by.is_single()
            && agg.limit_options().is_none()
            && agg.dynamic_expressions_produced().is_empty()
            && *agg.input_order_mode() == InputOrderMode::Linear
            && agg.aggr_expr().iter().all(|a| {
                a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty()
            })
            && matches!(
                key.data_type(&agg.input().schema()),
                Ok(DataType::Dictionary(k, v)) if *k == DataType::Int32 && *v == DataType::Utf8
            );
        qualifies.then(|| Self {
            agg: Arc::new(agg.clone()),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

impl DisplayAs for DictionaryGroupBy {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self
            .agg
            .group_expr()
            .expr()
            .iter()
            .map(|(e, name)| format!("{e} as {name}"))
            .collect();
        let aggs: Vec<&str> = self.agg.aggr_expr().iter().map(|a| a.name()).collect();
        write!(
            f,
            "DictionaryGroupBy: mode={:?}, gby=[{}], aggr=[{}]",
            self.agg.mode(),
            keys.join(", "),
            aggs.join(", ")
        )
    }
}

impl ExecutionPlan for DictionaryGroupBy {
    fn name(&self) -> &str {
        "DictionaryGroupBy"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.agg.input_distribution_requirements()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let agg = Arc::clone(&self.agg).replace_children(children, options)?;
        Ok(
            match agg.downcast_ref::<AggregateExec>().and_then(Self::try_new) {
                Some(exec) => Arc::new(exec),
                None => agg,
            },
        )
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.agg.input().execute(partition, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new(format!("DictionaryGroupBy[{partition}]"))
            .register(context.memory_pool());
        let run = Run {
            input,
            groups: Groups::new(&self.agg, reservation)?,
            ready: VecDeque::new(),
            done: false,
            batch_size: context.session_config().batch_size().max(1),
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

/// One partition's execution: reads the input to its end (or until memory
/// runs short in a partial stage), then hands on the groups in batches.
struct Run {
    input: SendableRecordBatchStream,
    groups: Groups,
    ready: VecDeque<RecordBatch>,
    done: bool,
    batch_size: usize,
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
            let step = match self.input.next().await {
                Some(Ok(batch)) => {
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let _timer = elapsed.timer();
                    match self.groups.update(&batch) {
                        Ok(true) => self.emit(),
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                    }
                }
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    let elapsed = self.metrics.elapsed_compute().clone();
                    let _timer = elapsed.timer();
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

    fn emit(&mut self) -> Result<()> {
        if let Some(batch) = self.groups.emit()? {
            push_slices(&batch, self.batch_size, &mut self.ready);
        }
        Ok(())
    }
}

/// `entry_groups` of a dictionary entry no row has used yet.
const UNASSIGNED: usize = usize::MAX;

/// The groups of one partition and their accumulators.
struct Groups {
    key: Arc<dyn PhysicalExpr>,
    aggs: Vec<Arc<AggregateFunctionExpr>>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Whether the stage outputs final values (else accumulator state).
    final_values: bool,
    schema: SchemaRef,
    /// Group of each distinct value seen.
    ids: HashMap<String, usize>,
    null_group: Option<usize>,
    /// Value of each group, by group index.
    names: Vec<Option<String>>,
    name_bytes: usize,
    /// The last dictionary seen and the group of each of its entries
    /// ([`UNASSIGNED`] until a row uses it).
    dictionary: Option<ArrayData>,
    entry_groups: Vec<usize>,
    /// Group of each row of the current batch.
    row_groups: Vec<usize>,
    /// Whether every aggregate counts rows (`count(*)`), the common case:
    /// then a batch is counted per dictionary entry, with no group index
    /// per row and no accumulator calls.
    counts_rows: bool,
    /// Rows per group, when `counts_rows`.
    row_counts: Vec<i64>,
    /// Rows per dictionary entry in the current batch.
    entry_counts: Vec<i64>,
    /// Scratch space of `count_entries`.
    tallies: Vec<[i64; 4]>,
    reservation: MemoryReservation,
}

impl Groups {
    fn new(agg: &AggregateExec, reservation: MemoryReservation) -> Result<Self> {
        let aggs = agg.aggr_expr().to_vec();
        let counts_rows = aggs
            .iter()
            .zip(agg.filter_expr())
            .all(|(a, filter)| filter.is_none() && counts_rows(a));
        Ok(Self {
            key: Arc::clone(&agg.group_expr().expr()[0].0),
            accumulators: accumulators(&aggs)?,
            args: aggs.iter().map(|a| a.expressions()).collect(),
            filters: agg.filter_expr().to_vec(),
            aggs,
            final_values: agg.mode().output_mode() == AggregateOutputMode::Final,
            schema: agg.schema(),
            ids: HashMap::new(),
            null_group: None,
            names: Vec::new(),
            name_bytes: 0,
            dictionary: None,
            entry_groups: Vec::new(),
            row_groups: Vec::new(),
            counts_rows,
            row_counts: Vec::new(),
            entry_counts: Vec::new(),
            tallies: Vec::new(),
            reservation,
        })
    }

    fn group_of(&mut self, value: Option<&str>) -> usize {
        let names = &mut self.names;
        let mut add = |name: Option<String>| {
            names.push(name);
            names.len() - 1
        };
        match value {
            None => *self.null_group.get_or_insert_with(|| add(None)),
            Some(v) => match self.ids.get(v) {
                Some(g) => *g,
                None => {
                    let g = add(Some(v.to_owned()));
                    self.ids.insert(v.to_owned(), g);
                    self.name_bytes += 2 * v.len();
                    g
                }
            },
        }
    }

    /// Adds a batch. `Ok(true)`: the memory pool refused the groups' growth
    /// and this partial stage should hand them on now.
    fn update(&mut self, batch: &RecordBatch) -> Result<bool> {
        let rows = batch.num_rows();
        let key = self.key.evaluate(batch)?.into_array(rows)?;
        let dict = key
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| internal_datafusion_err!("group key is {}", key.data_type()))?;
        let values = dict.values();
        let strings = values
            .as_string_opt::<i32>()
            .ok_or_else(|| internal_datafusion_err!("dictionary of {}", values.data_type()))?;
        let data = values.to_data();
        if !self.dictionary.as_ref().is_some_and(|d| d.ptr_eq(&data)) {
            self.entry_groups.clear();
            self.entry_groups.resize(strings.len(), UNASSIGNED);
            self.dictionary = Some(data);
        }
        let keys = dict.keys();
        let nulls = self.count_entries(keys);
        // Only entries some row uses become groups: a dictionary may hold
        // values no row of the batch has (after a filter, say), and a group
        // without rows must not appear.
        for e in 0..self.entry_counts.len() {
            if self.entry_counts[e] > 0 && self.entry_groups[e] == UNASSIGNED {
                self.entry_groups[e] = self.group_of(strings.is_valid(e).then(|| strings.value(e)));
            }
        }
        let null_group = (nulls > 0).then(|| self.group_of(None));
        if self.counts_rows {
            self.add_counts(null_group, nulls);
        } else {
            self.accumulate(batch, keys, null_group)?;
        }
        let grown = self.reservation.try_resize(self.size());
        match grown {
            Ok(()) => Ok(false),
            Err(_) if !self.final_values => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Counts the rows of each dictionary entry into `entry_counts`;
    /// returns the rows with a null key.
    fn count_entries(&mut self, keys: &Int32Array) -> i64 {
        let counts = &mut self.entry_counts;
        counts.clear();
        counts.resize(self.entry_groups.len(), 0);
        let mut nulls = 0;
        match keys.nulls().filter(|n| n.null_count() > 0) {
            None => {
                // Four tallies per entry, one per row of each group of four:
                // rows of the same entry in a row would otherwise each wait
                // for the previous increment of the same counter.
                let tallies = &mut self.tallies;
                tallies.clear();
                tallies.resize(counts.len(), [0; 4]);
                let mut quads = keys.values().chunks_exact(4);
                for q in &mut quads {
                    tallies[q[0] as usize][0] += 1;
                    tallies[q[1] as usize][1] += 1;
                    tallies[q[2] as usize][2] += 1;
                    tallies[q[3] as usize][3] += 1;
                }
                for k in quads.remainder() {
                    tallies[*k as usize][0] += 1;
                }
                for (count, t) in counts.iter_mut().zip(tallies.iter()) {
                    *count = t.iter().sum();
                }
            }
            Some(valid) => {
                for (i, k) in keys.values().iter().enumerate() {
                    if valid.is_valid(i) {
                        counts[*k as usize] += 1;
                    } else {
                        nulls += 1;
                    }
                }
            }
        }
        nulls
    }

    fn add_counts(&mut self, null_group: Option<usize>, nulls: i64) {
        self.row_counts.resize(self.names.len(), 0);
        for (group, n) in self.entry_groups.iter().zip(&self.entry_counts) {
            if *n > 0 {
                self.row_counts[*group] += n;
            }
        }
        if let Some(g) = null_group {
            self.row_counts[g] += nulls;
        }
    }

    fn accumulate(
        &mut self,
        batch: &RecordBatch,
        keys: &Int32Array,
        null_group: Option<usize>,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let entry_groups = &self.entry_groups;
        self.row_groups.clear();
        match (keys.nulls(), null_group) {
            (Some(nulls), Some(null_group)) => {
                self.row_groups
                    .extend(keys.values().iter().enumerate().map(|(i, k)| {
                        if nulls.is_valid(i) {
                            entry_groups[*k as usize]
                        } else {
                            null_group
                        }
                    }))
            }
            _ => self
                .row_groups
                .extend(keys.values().iter().map(|k| entry_groups[*k as usize])),
        }

        let groups = self.names.len();
        for ((acc, args), filter) in self
            .accumulators
            .iter_mut()
            .zip(&self.args)
            .zip(&self.filters)
        {
            let values = args
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<ArrayRef>>>()?;
            let filter = filter
                .as_ref()
                .map(|f| f.evaluate(batch)?.into_array(rows))
                .transpose()?;
            let filter: Option<&BooleanArray> = match &filter {
                Some(f) => Some(f.as_boolean_opt().ok_or_else(|| {
                    internal_datafusion_err!("aggregate filter is {}", f.data_type())
                })?),
                None => None,
            };
            acc.update_batch(&values, &self.row_groups, filter, groups)?;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        use std::mem::size_of;
        self.accumulators.iter().map(|a| a.size()).sum::<usize>()
            + self.name_bytes
            + self.names.capacity() * size_of::<Option<String>>()
            + self.ids.capacity() * (size_of::<(String, usize)>() + 1)
            + (self.entry_groups.capacity() + self.row_groups.capacity()) * size_of::<usize>()
            + (self.row_counts.capacity() + self.entry_counts.capacity()) * size_of::<i64>()
            + self.tallies.capacity() * size_of::<[i64; 4]>()
    }

    /// The groups so far as one batch of the stage's schema, and a fresh
    /// start; `None` when there are none.
    fn emit(&mut self) -> Result<Option<RecordBatch>> {
        if self.names.is_empty() {
            return Ok(None);
        }
        let names = StringArray::from(std::mem::take(&mut self.names));
        let mut columns = vec![cast(&names, self.schema.field(0).data_type())?];
        if self.counts_rows {
            let counts: ArrayRef = Arc::new(Int64Array::from(std::mem::take(&mut self.row_counts)));
            columns.extend(self.aggs.iter().map(|_| Arc::clone(&counts)));
        }
        for acc in self.accumulators.iter_mut().filter(|_| !self.counts_rows) {
            if self.final_values {
                columns.push(acc.evaluate(EmitTo::All)?);
            } else {
                columns.extend(acc.state(EmitTo::All)?);
            }
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        self.accumulators = accumulators(&self.aggs)?;
        self.ids = HashMap::new();
        self.null_group = None;
        self.name_bytes = 0;
        self.dictionary = None;
        self.entry_groups = Vec::new();
        self.reservation.free();
        Ok(Some(batch))
    }
}

fn accumulators(aggs: &[Arc<AggregateFunctionExpr>]) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
    aggs.iter().map(|a| a.create_groups_accumulator()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::common::tree_node::TreeNode as _;

    use super::super::GroupOnCodes;

    use datafusion::arrow::array::{DictionaryArray, Int32Array, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::datasource::MemTable;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable, ExecutionPlanProperties as _};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    fn dict_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", dict_type(), true),
            Field::new("v", DataType::Int64, true),
        ]))
    }

    /// A batch whose key column has its own dictionary `dict` (entries may
    /// repeat or be null) and codes `codes` (`None`: a null key).
    fn batch(dict: &[Option<&str>], codes: &[Option<i32>], v: &[Option<i64>]) -> RecordBatch {
        let keys = DictionaryArray::<Int32Type>::try_new(
            Int32Array::from(codes.to_vec()),
            Arc::new(StringArray::from(dict.to_vec())),
        )
        .unwrap();
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(keys), Arc::new(Int64Array::from(v.to_vec()))],
        )
        .unwrap()
    }

    /// Batches over two partitions: dictionaries that differ between
    /// batches, a repeated entry, a null entry, null keys and null values.
    fn partitions() -> Vec<Vec<RecordBatch>> {
        vec![
            vec![
                batch(
                    &[Some("a"), Some("b"), Some("c")],
                    &[Some(0), Some(1), Some(2), Some(0), None, Some(1)],
                    &[Some(1), Some(2), Some(3), None, Some(5), Some(6)],
                ),
                batch(
                    &[Some("c"), Some("a"), Some("c"), None],
                    &[Some(0), Some(1), Some(2), Some(3), Some(1)],
                    &[Some(7), Some(8), Some(9), Some(10), Some(11)],
                ),
            ],
            vec![
                batch(
                    &[Some("b"), Some("d")],
                    &[Some(1), Some(0), None, Some(1)],
                    &[Some(12), None, Some(14), Some(15)],
                ),
                // Entries no row uses must not become groups.
                batch(
                    &[Some("a"), Some("unused"), Some("e"), None],
                    &[Some(2), Some(0), Some(2)],
                    &[Some(16), Some(17), Some(18)],
                ),
            ],
        ]
    }

    fn context(rule: bool, target_partitions: usize, memory: Option<usize>) -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(target_partitions);
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(bytes) = memory {
            runtime = runtime.with_memory_pool(Arc::new(GreedyMemoryPool::new(bytes)));
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.build_arc().unwrap())
            .with_default_features();
        if rule {
            state = state.with_physical_optimizer_rule(Arc::new(GroupOnCodes));
        }
        SessionContext::new_with_state(state.build())
    }

    /// The rows of `sql` over `data` in order, and the physical plan.
    async fn run(
        ctx: &SessionContext,
        data: Vec<Vec<RecordBatch>>,
        sql: &str,
    ) -> (Vec<String>, String) {
        let table = MemTable::try_new(schema(), data).unwrap();
        ctx.deregister_table("t").unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(true).to_string();
        let batches = collect(plan, ctx.task_ctx()).await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut rows: Vec<String> = text.lines().map(str::to_owned).collect();
        rows.sort();
        (rows, shown)
    }

    #[tokio::test]
    async fn grouping_on_codes_answers_as_datafusion_does() {
        let queries = [
            "SELECT k, count(*), count(v), sum(v), min(v), max(v), avg(v) FROM t GROUP BY k",
            "SELECT k, count(*) FILTER (WHERE v > 5) AS big FROM t GROUP BY k",
            "SELECT k, count(*) FROM t WHERE v IS NOT NULL GROUP BY k HAVING count(*) > 1",
            "SELECT k FROM t GROUP BY k",
            "SELECT upper(k) AS u, count(*) FROM t GROUP BY k",
            "SELECT k, count(*), count(1) FROM t GROUP BY k",
            // A filter keeps each batch's whole dictionary, used or not.
            "SELECT k, count(*) FROM t WHERE v > 7 GROUP BY k",
            "SELECT k, sum(v) FROM t WHERE v > 7 GROUP BY k",
            // Planned as a group by (k, v) under a count grouped by k: the
            // outer stage is one this operator takes.
            "SELECT k, count(DISTINCT v) FROM t GROUP BY k",
        ];
        for n in [1, 2] {
            for sql in queries {
                let (expected, plain) = run(&context(false, n, None), partitions(), sql).await;
                let (got, plan) = run(&context(true, n, None), partitions(), sql).await;
                assert!(!plain.contains("DictionaryGroupBy"), "{plain}");
                assert!(plan.contains("DictionaryGroupBy"), "{sql}:\n{plan}");
                assert_eq!(got, expected, "{sql} ({n} target partitions):\n{plan}");
            }
        }
    }

    #[tokio::test]
    async fn plans_it_cannot_take_keep_datafusions_operator() {
        let ctx = context(true, 2, None);
        for sql in [
            // Two keys, a key that is not a dictionary, an ordered
            // aggregate, grouping sets.
            "SELECT k, v, count(*) FROM t GROUP BY k, v",
            "SELECT v, count(*) FROM t GROUP BY v",
            "SELECT k, array_agg(v ORDER BY v) FROM t GROUP BY k",
            "SELECT k, count(*) FROM t GROUP BY ROLLUP (k)",
        ] {
            let (got, plan) = run(&ctx, partitions(), sql).await;
            assert!(!plan.contains("DictionaryGroupBy"), "{sql}:\n{plan}");
            let (expected, _) = run(&context(false, 2, None), partitions(), sql).await;
            assert_eq!(got, expected, "{sql}");
        }
    }

    /// Counts per key of the partial stage's output batches.
    fn partial_counts(batches: &[RecordBatch]) -> BTreeMap<String, i64> {
        let mut counts = BTreeMap::new();
        for b in batches {
            let keys = cast(b.column(0), &DataType::Utf8).unwrap();
            let keys = keys.as_string::<i32>();
            let n = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                *counts.entry(keys.value(i).to_owned()).or_insert(0) += n.value(i);
            }
        }
        counts
    }

    #[tokio::test]
    async fn a_partial_stage_short_of_memory_hands_on_its_groups_early() {
        // 4,000 distinct keys over 40 batches of 300 rows in two partitions.
        let names: Vec<String> = (0..4_000).map(|i| format!("event.name.{i:05}")).collect();
        let name = |b: usize, j: usize| names[(b * 100 + j) % names.len()].as_str();
        let mut expected = BTreeMap::new();
        let mut data = vec![Vec::new(), Vec::new()];
        for b in 0..40 {
            let dict: Vec<Option<&str>> = (0..300).map(|j| Some(name(b, j))).collect();
            for j in 0..300 {
                *expected.entry(name(b, j).to_owned()).or_insert(0) += 1;
            }
            let codes: Vec<Option<i32>> = (0..300).map(Some).collect();
            data[b % 2].push(batch(&dict, &codes, &[Some(1); 300]));
        }

        // count(*) takes the counting path, count(v) the accumulators'.
        for sql in [
            "SELECT k, count(*) FROM t GROUP BY k",
            "SELECT k, count(v) FROM t GROUP BY k",
        ] {
            let rows = partial_rows(sql, data.clone(), &expected).await;
            // Roomy: each partition hands on each of its keys once. Tight:
            // the groups go on as the pool refuses to grow, so keys repeat.
            assert!(rows[1] > rows[0], "{sql}: {rows:?}");
        }
    }

    /// Runs the partial stage of `sql` over `data` with a roomy and with a
    /// tight memory pool; checks its counts against `expected` and returns
    /// the rows it handed on in each.
    async fn partial_rows(
        sql: &str,
        data: Vec<Vec<RecordBatch>>,
        expected: &BTreeMap<String, i64>,
    ) -> Vec<usize> {
        let ctx = context(true, 2, None);
        let table = MemTable::try_new(schema(), data).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let mut partial = None;
        plan.apply(|node| {
            if node.downcast_ref::<DictionaryGroupBy>().is_some() {
                partial = Some(Arc::clone(node));
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        let partial = partial.expect("the partial stage groups on codes");

        let mut rows = Vec::new();
        for memory in [None, Some(64 << 10)] {
            let task = context(true, 2, memory).task_ctx();
            let runs = (0..partial.output_partitioning().partition_count()).map(|p| {
                let stream = partial.execute(p, Arc::clone(&task)).unwrap();
                datafusion::physical_plan::common::collect(stream)
            });
            let out: Vec<RecordBatch> = futures::future::try_join_all(runs)
                .await
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
            rows.push(out.iter().map(RecordBatch::num_rows).sum::<usize>());
            assert_eq!(&partial_counts(&out), expected, "{sql}, {memory:?}");
        }
        rows
    }
}
