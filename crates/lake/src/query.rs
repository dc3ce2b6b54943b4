//! Queries: `StartQuery` checks and plans a statement at once (so a bad
//! statement fails the call, as in CloudTrail Lake), then runs that plan
//! over the stores' files in the background with a concurrency limit and a
//! timeout. Results are kept in
//! the catalog, so `GetQueryResults` pages through them after a restart
//! too.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::{SQLOptions, SessionConfig};
use futures::StreamExt as _;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Mutex, OwnedSemaphorePermit, Semaphore};

use crate::catalog::{now_ms, Catalog, QueryRow, QueryStatus};
use crate::dict_group::GroupOnCodes;
use crate::error::{LakeError, Result};
use crate::record;
use crate::sql::{self, Prepared};
use crate::storage::Storage;

/// Limits of the query engine.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Queries running at once; more wait as `QUEUED`.
    pub max_concurrent: usize,
    /// A query running longer ends as `TIMED_OUT`.
    pub timeout: Duration,
    /// A query producing more rows fails and asks for a `LIMIT`.
    pub max_result_rows: usize,
    /// Memory one query may use for sorts, joins and aggregates.
    pub memory_limit: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_concurrent: 4,
            timeout: Duration::from_secs(600),
            max_result_rows: 1_000_000,
            memory_limit: 1 << 30,
        }
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

/// The query engine.
#[derive(Debug, Clone)]
pub struct Queries {
    catalog: Catalog,
    storage: Storage,
    limits: QueryLimits,
    slots: Arc<Semaphore>,
    cancels: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    engine: Engine,
}

const OBJECTS_URL: &str = "lake://objects/";

/// What every statement is planned from: DataFusion's session state with
/// the lake's functions, the group-by rule and the objects' store, built
/// once. A statement gets a clone with a catalog of its own, so concurrent
/// queries never see each other's tables; cloning copies the function
/// tables, where building a state registers every function again.
///
/// The runtime's caches are shared by all queries: the parsed footers and
/// page indexes of the files and the statistics planning derives from
/// them. Files are never rewritten in place (a flush or a merge writes a
/// new name) and the caches check each entry against the file's size and
/// modification time, so an entry is never stale; both are bounded by
/// DataFusion's default limits (least recently used entries go first).
/// Memory is not shared: each run gets a pool of its own (see
/// [`Engine::task`]).
#[derive(Clone)]
struct Engine {
    state: SessionState,
    memory_limit: usize,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    fn new(limits: &QueryLimits, objects: Option<Arc<dyn ObjectStore>>) -> Result<Self> {
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
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(GroupOnCodes))
            .build();
        for f in sql::functions() {
            state.register_udf(Arc::new(f))?;
        }
        Ok(Self {
            state,
            memory_limit: limits.memory_limit,
        })
    }

    /// A session state whose catalog holds `tables` (by store ID) and
    /// nothing else.
    fn session(&self, tables: Vec<(String, Arc<dyn TableProvider>)>) -> Result<SessionState> {
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
        // template's would be the time the server started.
        state.mark_start_execution();
        Ok(state)
    }

    /// The context one run executes in: the state's functions and
    /// configuration, with a memory pool of its own (the limit is per
    /// query) over the shared caches and objects.
    fn task(&self, state: &SessionState) -> Result<Arc<TaskContext>> {
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_limit(self.memory_limit, 1.0)
            .build_arc()?;
        Ok(Arc::new(TaskContext::from(state).with_runtime(runtime)))
    }

    /// A table over Parquet files of the stored schema, by their paths in
    /// the lake's object store; an empty one for none. The table keeps the
    /// files' statistics, which planning reads for every file, in the
    /// engine's cache (without it, each query derived them again from every
    /// footer).
    fn files_table<'a>(
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
    /// optimised, is what the run executes once the empty tables are
    /// swapped for the stores' files ([`with_tables`]).
    async fn check_plan(&self, prepared: &Prepared) -> Result<LogicalPlan> {
        let mut tables = Vec::with_capacity(prepared.store_ids.len());
        for id in &prepared.store_ids {
            tables.push((id.clone(), empty_table()?));
        }
        let state = self.session(tables)?;
        let plan = state
            .statement_to_plan(clone_statement(prepared))
            .await
            .map_err(engine_error)?;
        read_only().verify_plan(&plan).map_err(engine_error)?;
        Ok(plan)
    }
}

/// What `StartQuery` does before it accepts a statement, on an engine of
/// its own: plans `prepared` against empty tables of the stores' shape and
/// checks that the plan only reads. For the fuzz target and tests, which
/// have no lake.
pub async fn check_plan(prepared: &Prepared, limits: &QueryLimits) -> Result<LogicalPlan> {
    Engine::new(limits, None)?.check_plan(prepared).await
}

fn empty_table() -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(record::schema(), vec![vec![]])?))
}

/// `plan` with each store's scan reading `tables` instead of the empty
/// table it was checked against, in subqueries too. The tables have the
/// same schema, so nothing else in the plan changes; a scan of a table
/// that is not there is an internal error rather than an empty result.
fn with_tables(
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

fn engine_error(e: datafusion::error::DataFusionError) -> LakeError {
    LakeError::bad("InvalidQueryStatementException", e.strip_backtrace())
}

impl Queries {
    /// An engine over `storage`.
    pub fn new(catalog: Catalog, storage: Storage, limits: QueryLimits) -> Result<Self> {
        Ok(Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            engine: Engine::new(&limits, Some(storage.objects()))?,
            catalog,
            storage,
            limits,
            cancels: Arc::default(),
        })
    }

    /// Checks the statement against `account`'s stores and starts it.
    pub async fn start(&self, account: &str, statement: &str) -> Result<String> {
        let prepared = sql::prepare(statement)?;
        for id in &prepared.store_ids {
            match self.catalog.store(account, id).await? {
                None => {
                    return Err(LakeError::bad(
                        "EventDataStoreNotFoundException",
                        format!("The event data store {id} does not exist."),
                    ))
                }
                Some(s) if s.status == "PENDING_DELETION" => {
                    return Err(LakeError::bad(
                        "InactiveEventDataStoreException",
                        format!("The event data store {id} is pending deletion."),
                    ))
                }
                Some(_) => {}
            }
        }
        let plan = self.engine.check_plan(&prepared).await?;

        // A query that can run at once is recorded as running: one write
        // less than QUEUED then RUNNING, and what DescribeQuery should say.
        let slot = Arc::clone(&self.slots).try_acquire_owned().ok();
        let row = QueryRow {
            id: uuid::Uuid::new_v4().to_string(),
            account: account.to_owned(),
            stores: prepared.store_ids.clone(),
            statement: statement.to_owned(),
            status: if slot.is_some() {
                QueryStatus::Running
            } else {
                QueryStatus::Queued
            },
            created_ms: now_ms(),
            error: None,
            events_scanned: 0,
            bytes_scanned: 0,
            exec_ms: 0,
            result_count: 0,
        };
        self.catalog.insert_query(&row).await?;
        let (cancel_tx, cancel_rx) = oneshot::channel();
        self.cancels.lock().await.insert(row.id.clone(), cancel_tx);
        let this = self.clone();
        let id = row.id.clone();
        tokio::spawn(async move {
            let id = row.id.clone();
            if let Err(e) = this.run(row, prepared, plan, slot, cancel_rx).await {
                tracing::error!(query = %id, error = %e, "query bookkeeping failed");
            }
            this.cancels.lock().await.remove(&id);
        });
        Ok(id)
    }

    /// Runs a started query to its end and records the outcome. `slot` is
    /// the concurrency slot `start` took, or none when the query was
    /// queued: it waits for one here.
    async fn run(
        &self,
        mut row: QueryRow,
        prepared: Prepared,
        plan: LogicalPlan,
        slot: Option<OwnedSemaphorePermit>,
        cancel: oneshot::Receiver<()>,
    ) -> Result<()> {
        let started = Instant::now();
        let work = async {
            let _slot = match slot {
                Some(slot) => slot,
                None => {
                    let slot = Arc::clone(&self.slots)
                        .acquire_owned()
                        .await
                        .expect("semaphore never closed");
                    if !self
                        .catalog
                        .set_query_status(&row.id, QueryStatus::Running)
                        .await?
                    {
                        return Ok(None);
                    }
                    slot
                }
            };
            self.execute(&prepared, plan).await.map(Some)
        };
        let outcome = tokio::select! {
            r = work => r,
            _ = cancel => return Ok(()),
            _ = tokio::time::sleep(self.limits.timeout) => {
                row.status = QueryStatus::TimedOut;
                row.error = Some(format!("The query ran longer than {} seconds.", self.limits.timeout.as_secs()));
                row.exec_ms = started.elapsed().as_millis() as i64;
                self.catalog.finish_query(&row, None).await?;
                return Ok(());
            }
        };
        row.exec_ms = started.elapsed().as_millis() as i64;
        match outcome {
            Ok(None) => Ok(()),
            Ok(Some((results, scanned_rows, scanned_bytes))) => {
                row.status = QueryStatus::Finished;
                row.events_scanned = scanned_rows;
                row.bytes_scanned = scanned_bytes;
                row.result_count = results.rows.len() as i64;
                let json = serde_json::to_string(&results)?;
                self.catalog.finish_query(&row, Some(&json)).await?;
                Ok(())
            }
            Err(e) => {
                if matches!(e, LakeError::Aws { .. }) {
                    tracing::debug!(query = %row.id, error = %e, "query failed");
                } else {
                    tracing::error!(query = %row.id, error = %e, "query failed");
                }
                row.status = QueryStatus::Failed;
                row.error = Some(match &e {
                    LakeError::Aws { message, .. } => message.clone(),
                    other => other.to_string(),
                });
                self.catalog.finish_query(&row, None).await?;
                Ok(())
            }
        }
    }

    /// Runs the plan `StartQuery` checked over the current data: flushes
    /// the buffer of the stores it reads, then reads their files.
    async fn execute(
        &self,
        prepared: &Prepared,
        plan: LogicalPlan,
    ) -> Result<(ResultSet, i64, i64)> {
        for id in &prepared.store_ids {
            self.storage.flush(id).await?;
        }
        let _gate = self.storage.files_gate.read().await;
        let (mut scanned_rows, mut scanned_bytes) = (0, 0);
        let mut tables = HashMap::with_capacity(prepared.store_ids.len());

        for id in &prepared.store_ids {
            let files = self.catalog.files(id).await?;
            scanned_rows += files.iter().map(|f| f.rows).sum::<i64>();
            scanned_bytes += files.iter().map(|f| f.bytes).sum::<i64>();
            let table = self
                .engine
                .files_table(files.iter().map(|f| f.path.as_str()))?;
            tables.insert(id.clone(), table);
        }
        let plan = with_tables(plan, &tables)?;
        // The plan carries its tables; the run's catalog stays empty.
        let state = self.engine.session(Vec::new())?;
        let columns: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let physical = state
            .create_physical_plan(&plan)
            .await
            .map_err(engine_error)?;
        let mut stream =
            execute_stream(physical, self.engine.task(&state)?).map_err(engine_error)?;
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(engine_error)?;
            if rows.len() + batch.num_rows() > self.limits.max_result_rows {
                return Err(LakeError::bad(
                    "InvalidQueryStatementException",
                    format!(
                        "The query returns more than {} rows; add a LIMIT or a narrower WHERE.",
                        self.limits.max_result_rows
                    ),
                ));
            }
            append_rows(&batch, &mut rows)?;
        }
        Ok((ResultSet { columns, rows }, scanned_rows, scanned_bytes))
    }

    /// Cancels an active query of `account`.
    pub async fn cancel(&self, account: &str, id: &str) -> Result<QueryStatus> {
        let row = self
            .catalog
            .query(account, id)
            .await?
            .ok_or_else(|| query_not_found(id))?;
        if !row.status.is_active() {
            return Err(LakeError::bad(
                "InactiveQueryException",
                format!(
                    "The query {id} is {} and cannot be cancelled.",
                    row.status.as_str()
                ),
            ));
        }
        let mut cancelled = row.clone();
        cancelled.status = QueryStatus::Cancelled;
        if self.catalog.finish_query(&cancelled, None).await? {
            if let Some(tx) = self.cancels.lock().await.remove(id) {
                let _ = tx.send(());
            }
            Ok(QueryStatus::Cancelled)
        } else {
            // It finished between the read and the update.
            let now = self
                .catalog
                .query(account, id)
                .await?
                .ok_or_else(|| query_not_found(id))?;
            Err(LakeError::bad(
                "InactiveQueryException",
                format!(
                    "The query {id} is {} and cannot be cancelled.",
                    now.status.as_str()
                ),
            ))
        }
    }
}

/// `QueryIdNotFoundException`.
pub fn query_not_found(id: &str) -> LakeError {
    LakeError::bad(
        "QueryIdNotFoundException",
        format!("The query {id} does not exist."),
    )
}

fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn clone_statement(p: &Prepared) -> datafusion::sql::parser::Statement {
    p.statement.clone()
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

fn append_rows(batch: &RecordBatch, rows: &mut Vec<Vec<Option<String>>>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Prepares and plans `sql` on a thread with the stack of a tokio
    /// worker (2 MiB), where `StartQuery` runs; a stack overflow aborts the
    /// whole test binary.
    fn plan_on_worker_stack(sql: String) -> std::result::Result<(), String> {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let prepared = sql::prepare(&sql).map_err(|e| e.to_string())?;
                runtime
                    .block_on(check_plan(&prepared, &QueryLimits::default()))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    /// The lake's group-by on event names counts the codes in the pages of
    /// its own files: the rule recognises the plan the lake makes (its
    /// table, schema and projection), and the counts are right.
    #[tokio::test]
    async fn event_names_are_counted_from_the_pages() {
        use datafusion::physical_plan::{collect, displayable};
        use object_store::local::LocalFileSystem;
        use object_store::ObjectStoreExt as _;

        let dir = tempfile::tempdir().unwrap();
        let objects = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let stamp = record::Stamp {
            account: "123456789012",
            region: "us-east-1",
            channel_arn: "arn:aws:cloudtrail:us-east-1:123456789012:channel/c",
            now_ms: 0,
        };
        let names = ["org.create", "api.access", "org.user.add"];
        let records = (0..1_000)
            .map(|i| {
                let data = format!(
                    r#"{{"version":"1.0","userIdentity":{{"type":"User","principalId":"u-{i}"}},
                    "eventSource":"auditlake","eventName":"{}","eventTime":"2024-03-01T10:20:30Z",
                    "UID":"e-{i}","recipientAccountId":"123456789012"}}"#,
                    names[i % 3]
                );
                record::build(&data, format!("id-{i}"), &stamp).unwrap()
            })
            .collect();
        let (bytes, _) = crate::storage::encode(records).unwrap();
        let path = "store/day/file.parquet";
        objects.put(&path.into(), bytes.into()).await.unwrap();

        let store = "8a6f0c1e-2b7d-4c1a-9e3f-5d2b1a0c9e8f";
        let engine = Engine::new(&QueryLimits::default(), Some(objects)).unwrap();
        let prepared = sql::prepare(&format!(
            "SELECT eventdata.eventname, count(*) FROM {store} GROUP BY eventdata.eventname"
        ))
        .unwrap();
        let plan = engine.check_plan(&prepared).await.unwrap();
        let statistics = engine
            .state
            .runtime_env()
            .cache_manager
            .get_file_statistic_cache()
            .unwrap();
        assert!(statistics.is_empty());
        let tables = HashMap::from([(
            store.to_owned(),
            engine.files_table([path].into_iter()).unwrap(),
        )]);
        let plan = with_tables(plan, &tables).unwrap();
        let state = engine.session(Vec::new()).unwrap();
        let physical = state.create_physical_plan(&plan).await.unwrap();
        let shown = displayable(physical.as_ref()).indent(true).to_string();
        assert!(shown.contains("CountFromPages"), "{shown}");
        // Planning kept the file's statistics for the next query.
        assert_eq!(statistics.len(), 1);

        let batches = collect(physical, engine.task(&state).unwrap())
            .await
            .unwrap();
        let mut counts = Vec::new();
        for b in &batches {
            let names = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let n = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                counts.push((names.as_string::<i32>().value(i).to_owned(), n.value(i)));
            }
        }
        counts.sort();
        assert_eq!(
            counts,
            [
                ("api.access", 333),
                ("org.create", 334),
                ("org.user.add", 333)
            ]
            .map(|(name, n)| (name.to_owned(), n))
        );
    }

    /// A query that finds every slot taken waits as `QUEUED`; cancelled
    /// while it waits, it never runs; otherwise it runs once a slot
    /// frees. A query that finds a slot free is `RUNNING` from the start.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_wait_for_a_slot_as_queued() {
        use crate::testing::{LocalLake, OWNER};
        use aws_sdk_cloudtrail::types::QueryStatus as S;

        let dir = tempfile::tempdir().unwrap();
        let t = LocalLake::start(dir.path()).await;
        let c = t.control(OWNER);
        let arn = c
            .create_event_data_store()
            .name("slots")
            .send()
            .await
            .unwrap()
            .event_data_store_arn
            .unwrap();
        let sql = format!("SELECT count(*) FROM {}", arn.rsplit('/').next().unwrap());
        let start = || async {
            c.start_query()
                .query_statement(&sql)
                .send()
                .await
                .unwrap()
                .query_id
                .unwrap()
        };
        let status = |id: String| {
            let c = c.clone();
            async move {
                c.describe_query()
                    .query_id(id)
                    .send()
                    .await
                    .unwrap()
                    .query_status
                    .unwrap()
            }
        };

        let slots = Arc::clone(&t.lake.queries().slots);
        let all = u32::try_from(slots.available_permits()).unwrap();
        let held = slots.acquire_many_owned(all).await.unwrap();
        let cancelled = start().await;
        assert_eq!(status(cancelled.clone()).await, S::Queued);
        c.cancel_query().query_id(&cancelled).send().await.unwrap();
        let waiting = start().await;
        assert_eq!(status(waiting.clone()).await, S::Queued);
        drop(held);
        let mut finished = false;
        for _ in 0..500 {
            match status(waiting.clone()).await {
                S::Queued | S::Running => tokio::time::sleep(Duration::from_millis(10)).await,
                S::Finished => {
                    finished = true;
                    break;
                }
                other => panic!("the waiting query ended {other:?}"),
            }
        }
        assert!(
            finished,
            "the waiting query did not run once the slots freed"
        );
        assert_eq!(status(cancelled).await, S::Cancelled);

        let at_once = start().await;
        assert_ne!(status(at_once).await, S::Queued);
    }

    /// A statement of the longest length made of one operator chain
    /// (`1+1+1...`) overflowed a worker's stack and aborted the process
    /// (found by the `sql` fuzz target); it is refused with a clear error,
    /// while the deepest chain allowed plans on that stack.
    #[test]
    fn operator_chains_are_bounded_and_plan_on_a_worker_stack() {
        let store = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let chain = |term: &str, op: &str, n: usize| {
            format!("SELECT {} FROM {store}", vec![term; n].join(op))
        };
        for op in ["+", " AND ", " = ", "||"] {
            let longest = chain("1", op, (sql::MAX_STATEMENT - 60) / (op.len() + 1));
            assert!(longest.len() <= sql::MAX_STATEMENT);
            let err = plan_on_worker_stack(longest).unwrap_err();
            assert!(err.contains("too complex"), "{op}: {err}");
        }
        for (term, op) in [("eventid", " || "), ("1", "+"), ("true", " AND ")] {
            plan_on_worker_stack(chain(term, op, sql::MAX_OPERATORS + 1))
                .unwrap_or_else(|e| panic!("{term}{op}: {e}"));
        }
    }
}
