//! DataFusion set up for the lake's dialect: the session state with the
//! lake's functions and the group-by rule, tables over a store's Parquet
//! files, the read-only check of a statement's plan, and the rendering of
//! results as CloudTrail Lake shows them. `StartQuery` plans with it in the
//! server (against empty tables, to refuse bad statements at once); the
//! query worker process executes with it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{
    CatalogProvider as _, CatalogProviderList as _, MemoryCatalogProvider,
    MemoryCatalogProviderList, MemorySchemaProvider, SchemaProvider as _, TableProvider,
};
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{
    FunctionRegistry as _, SessionState, SessionStateBuilder, TaskContext,
};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig};
use object_store::ObjectStore;

use crate::error::{LakeError, Result};
use crate::query::codes::GroupOnCodes;
use crate::query::sql::{self, Prepared};
use crate::storage::record;

const OBJECTS_URL: &str = "lake://objects/";

/// What every statement is planned from: DataFusion's session state with
/// the lake's functions, the group-by rule and the objects' store, built
/// once. A statement gets a clone with a catalog of its own, so concurrent
/// queries never see each other's tables; cloning copies the function
/// tables, where building a state registers every function again.
///
/// The runtime's caches (parsed footers, page indexes, file statistics)
/// are shared by the statements of one engine. Files are never rewritten
/// in place (a flush or a merge writes a new name) and the caches check
/// each entry against the file's size and modification time, so an entry
/// is never stale.
#[derive(Clone)]
pub(crate) struct Engine {
    state: SessionState,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    /// An engine reading files from `objects` (none: planning only), with
    /// the [`GroupOnCodes`] rule when `group_on_codes`.
    pub(crate) fn new(objects: Option<Arc<dyn ObjectStore>>, group_on_codes: bool) -> Result<Self> {
        let mut config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        // Evaluate filters (including the dynamic one a `ORDER BY .. LIMIT`
        // builds) while decoding, so the wide `eventdata` columns of rows
        // that cannot qualify are never decoded.
        config.options_mut().execution.parquet.pushdown_filters = true;
        let runtime = RuntimeEnvBuilder::new().build_arc()?;
        if let Some(objects) = objects {
            let url = url::Url::parse(OBJECTS_URL).expect("constant URL");
            runtime.register_object_store(&url, objects);
        }
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features();
        if group_on_codes {
            state = state.with_physical_optimizer_rule(Arc::new(GroupOnCodes));
        }
        let mut state = state.build();
        for f in sql::functions() {
            state.register_udf(Arc::new(f))?;
        }
        Ok(Self { state })
    }

    /// A session state whose catalog holds `tables` (by store ID) and
    /// nothing else.
    pub(crate) fn session(
        &self,
        tables: Vec<(String, Arc<dyn TableProvider>)>,
    ) -> Result<SessionState> {
        let mut state = self.state.clone();
        let names = &state.config_options().catalog;
        let (catalog_name, schema_name) =
            (names.default_catalog.clone(), names.default_schema.clone());
        let schema = MemorySchemaProvider::new();
        for (id, table) in tables {
            schema.register_table(id, table)?;
        }
        let catalog = MemoryCatalogProvider::new();
        catalog.register_schema(&schema_name, Arc::new(schema))?;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(catalog_name, Arc::new(catalog));
        state.register_catalog_list(Arc::new(catalogs));
        // `now()` and the like read the time execution started; the
        // template's would be the time the engine was built.
        state.mark_start_execution();
        Ok(state)
    }

    /// The context one run executes in: the state's functions and
    /// configuration, with a memory pool of `memory_limit` bytes of its own
    /// over the shared caches and objects.
    pub(crate) fn task(
        &self,
        state: &SessionState,
        memory_limit: usize,
    ) -> Result<Arc<TaskContext>> {
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_limit(memory_limit, 1.0)
            .build_arc()?;
        Ok(Arc::new(TaskContext::from(state).with_runtime(runtime)))
    }

    /// A table over Parquet files of the stored schema, by their paths in
    /// the lake's object store; an empty one for none. The table keeps the
    /// files' statistics, which planning reads for every file, in the
    /// engine's cache.
    pub(crate) fn files_table<'a>(
        &self,
        paths: impl ExactSizeIterator<Item = &'a str>,
    ) -> Result<Arc<dyn TableProvider>> {
        if paths.len() == 0 {
            return empty_table();
        }
        let urls = paths
            .map(|path| ListingTableUrl::parse(format!("{OBJECTS_URL}{path}")))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let options =
            ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(record::schema());
        let statistics = self
            .state
            .runtime_env()
            .cache_manager
            .get_file_statistic_cache();
        Ok(Arc::new(
            ListingTable::try_new(config)?.with_cache(statistics),
        ))
    }

    /// Plans a prepared statement against empty tables of the stores'
    /// shape and checks that the plan only reads: what `StartQuery` does
    /// before it accepts a statement, so unknown columns and type errors
    /// fail the call rather than the background run. The plan, not yet
    /// optimised, is what a run executes once the empty tables are swapped
    /// for the stores' files ([`with_tables`]).
    pub(crate) async fn check_plan(&self, prepared: &Prepared) -> Result<LogicalPlan> {
        let mut tables = Vec::with_capacity(prepared.store_ids.len());
        for id in &prepared.store_ids {
            tables.push((id.clone(), empty_table()?));
        }
        let state = self.session(tables)?;
        let plan = state
            .statement_to_plan(prepared.statement.clone())
            .await
            .map_err(engine_error)?;
        read_only().verify_plan(&plan).map_err(engine_error)?;
        Ok(plan)
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> &SessionState {
        &self.state
    }
}

/// What `StartQuery` does before it accepts a statement, on an engine of
/// its own: plans `prepared` against empty tables of the stores' shape and
/// checks that the plan only reads. For the fuzz target and tests, which
/// have no lake.
#[cfg(any(test, feature = "fuzzing"))]
pub async fn check_plan(prepared: &Prepared) -> Result<LogicalPlan> {
    Engine::new(None, false)?.check_plan(prepared).await
}

fn empty_table() -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(record::schema(), vec![vec![]])?))
}

/// `plan` with each store's scan reading `tables` instead of the empty
/// table it was checked against, in subqueries too. The tables have the
/// same schema, so nothing else in the plan changes; a scan of a table
/// that is not there is an internal error rather than an empty result.
pub(crate) fn with_tables(
    plan: LogicalPlan,
    tables: &HashMap<String, Arc<dyn TableProvider>>,
) -> Result<LogicalPlan> {
    let swapped = plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(mut scan) => {
            let table = tables.get(scan.table_name.table()).ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "the plan reads {}, which the statement does not name",
                    scan.table_name
                ))
            })?;
            scan.source = provider_as_source(Arc::clone(table));
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        }
        other => Ok(Transformed::no(other)),
    })?;
    Ok(swapped.data)
}

/// A statement's own failure, as `StartQuery` and a failed run report it.
pub(crate) fn engine_error(e: datafusion::error::DataFusionError) -> LakeError {
    LakeError::bad("InvalidQueryStatementException", e.strip_backtrace())
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Formats one cell the way CloudTrail Lake shows it: timestamps as
/// `YYYY-MM-DD HH:MM:SS.fff`, structs as `{name=value, ...}`.
fn cell(array: &dyn Array, i: usize) -> Result<Option<String>> {
    if array.is_null(i) {
        return Ok(None);
    }
    if let DataType::Struct(fields) = array.data_type() {
        let s = array.as_struct();
        let mut parts = Vec::with_capacity(fields.len());
        for (f, col) in fields.iter().zip(s.columns()) {
            let v = cell(col.as_ref(), i)?.unwrap_or_else(|| "null".to_owned());
            parts.push(format!("{}={}", f.name(), v));
        }
        return Ok(Some(format!("{{{}}}", parts.join(", "))));
    }
    let options = FormatOptions::default()
        .with_null("")
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.3f"));
    let f = ArrayFormatter::try_new(array, &options)?;
    Ok(Some(f.value(i).to_string()))
}

/// Appends `batch`'s rows as rendered cells.
pub(crate) fn append_rows(batch: &RecordBatch, rows: &mut Vec<Vec<Option<String>>>) -> Result<()> {
    let columns: Vec<&ArrayRef> = batch.columns().iter().collect();
    for i in 0..batch.num_rows() {
        let mut row = Vec::with_capacity(columns.len());
        for c in &columns {
            row.push(cell(c.as_ref(), i)?);
        }
        rows.push(row);
    }
    Ok(())
}
