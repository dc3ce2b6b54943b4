//! Queries: `StartQuery` checks and plans a statement at once (so a bad
//! statement fails the call, as in CloudTrail Lake), then runs it over the
//! stores' files in a worker process (`worker`) under the query limits:
//! memory, CPU priority, wall time, result rows and bytes, and slots per
//! account and in all. Results are kept in the catalog, so
//! `GetQueryResults` pages through them after a restart too.
//!
//! - `sql`: the dialect: the read-only guard, store IDs as table names,
//!   CloudTrail's functions;
//! - `engine`: DataFusion set up for the lake's dialect (planning, tables,
//!   rendering of results);
//! - `codes`: the operators that group on dictionary codes;
//! - `worker`: the worker process, both sides of its pipe.

pub(crate) mod codes;
mod engine;
mod limits;
pub(crate) mod sql;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{oneshot, Mutex, OwnedSemaphorePermit, Semaphore};

use crate::error::{LakeError, Result};
use crate::storage::catalog::{now_ms, Catalog, QueryRow, QueryStatus};
use crate::storage::Storage;
use sql::Prepared;

#[cfg(any(test, feature = "fuzzing"))]
pub use engine::check_plan;
pub use limits::{QueryLimits, ResultSet};
pub use worker::{worker_main, QueryWorker, NICE};

/// The right to run: a slot of the account's and one of all.
struct Slot {
    _account: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// Slots in all and per account. A query takes its account's slot before
/// one of all, so that a query waiting behind its own account's holds
/// nothing another account could use.
#[derive(Debug)]
struct Slots {
    all: Arc<Semaphore>,
    per_account: usize,
    accounts: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Slots {
    fn new(limits: &QueryLimits) -> Self {
        Self {
            all: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            per_account: limits.max_concurrent_per_account.max(1),
            accounts: Default::default(),
        }
    }

    fn account(&self, account: &str) -> Arc<Semaphore> {
        let mut accounts = self.accounts.lock().expect("not poisoned");
        Arc::clone(
            accounts
                .entry(account.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account))),
        )
    }

    /// A slot if one is free now.
    fn try_take(&self, account: &str) -> Option<Slot> {
        let mine = self.account(account).try_acquire_owned().ok()?;
        let all = Arc::clone(&self.all).try_acquire_owned().ok()?;
        Some(Slot {
            _account: mine,
            _all: all,
        })
    }

    /// A slot, once one is free.
    async fn take(&self, account: &str) -> Slot {
        // Never closed, so acquiring only waits.
        let mine = self.account(account).acquire_owned().await.expect("open");
        let all = Arc::clone(&self.all).acquire_owned().await.expect("open");
        Slot {
            _account: mine,
            _all: all,
        }
    }
}

/// The query engine.
#[derive(Debug, Clone)]
pub struct Queries {
    catalog: Catalog,
    storage: Storage,
    /// The root of the local object store, which workers read.
    objects: PathBuf,
    limits: QueryLimits,
    /// Warm worker processes.
    workers: Arc<worker::Workers>,
    slots: Arc<Slots>,
    cancels: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
    /// Plans statements in `StartQuery`; never executes one.
    planner: engine::Engine,
}

impl Queries {
    /// An engine over `storage`, whose files lie under `objects`, running
    /// queries in `worker` processes.
    pub fn new(
        catalog: Catalog,
        storage: Storage,
        objects: PathBuf,
        limits: QueryLimits,
        worker: QueryWorker,
    ) -> Result<Self> {
        Ok(Self {
            slots: Arc::new(Slots::new(&limits)),
            planner: engine::Engine::new(None, false)?,
            workers: Arc::new(worker::Workers::new(worker, limits.clone())),
            catalog,
            storage,
            objects,
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
        self.planner.check_plan(&prepared).await?;

        // A query that can run at once is recorded as running: one write
        // less than QUEUED then RUNNING, and what DescribeQuery should say.
        let slot = self.slots.try_take(account);
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
            if let Err(e) = this.run(row, prepared, slot, cancel_rx).await {
                tracing::error!(query = %id, error = %e, "query bookkeeping failed");
            }
            this.cancels.lock().await.remove(&id);
        });
        Ok(id)
    }

    /// Runs a started query to its end and records the outcome. `slot` is
    /// the slot `start` took, or none when the query was queued: it waits
    /// for one here. The wall-clock limit counts from the start of the run.
    async fn run(
        &self,
        mut row: QueryRow,
        prepared: Prepared,
        slot: Option<Slot>,
        cancel: oneshot::Receiver<()>,
    ) -> Result<()> {
        let waited = async {
            match slot {
                Some(slot) => Ok::<_, LakeError>(Some(slot)),
                None => {
                    let slot = self.slots.take(&row.account).await;
                    let running = self
                        .catalog
                        .set_query_status(&row.id, QueryStatus::Running)
                        .await?;
                    Ok(running.then_some(slot))
                }
            }
        };
        tokio::pin!(cancel);
        let _slot = tokio::select! {
            slot = waited => match slot? {
                Some(slot) => slot,
                None => return Ok(()),
            },
            _ = &mut cancel => return Ok(()),
        };
        let started = Instant::now();
        let outcome = tokio::select! {
            r = self.execute(&row.statement, &prepared) => r,
            _ = &mut cancel => return Ok(()),
            _ = tokio::time::sleep(self.limits.timeout) => Ok((worker::Outcome::TimedOut, 0, 0)),
        };
        row.exec_ms = started.elapsed().as_millis() as i64;
        let (outcome, scanned_rows, scanned_bytes) = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(query = %row.id, error = %e, "query failed");
                let message = match e {
                    LakeError::Aws { message, .. } => message,
                    other => other.to_string(),
                };
                (worker::Outcome::Failed(message), 0, 0)
            }
        };
        row.events_scanned = scanned_rows;
        row.bytes_scanned = scanned_bytes;
        let results = match outcome {
            worker::Outcome::Finished { rows, results } => {
                row.status = QueryStatus::Finished;
                row.result_count = rows as i64;
                Some(results)
            }
            worker::Outcome::Failed(message) => {
                tracing::debug!(query = %row.id, message, "query failed");
                row.status = QueryStatus::Failed;
                row.error = Some(message);
                None
            }
            worker::Outcome::TimedOut => {
                row.status = QueryStatus::TimedOut;
                row.error = Some(format!(
                    "The query ran longer than {} seconds.",
                    self.limits.timeout.as_secs()
                ));
                None
            }
        };
        self.catalog.finish_query(&row, results.as_deref()).await?;
        Ok(())
    }

    /// Runs the statement `StartQuery` checked over the current data in a
    /// worker: flushes the buffer of the stores it reads, then hands the
    /// worker their files, which stay in place until it is done.
    async fn execute(
        &self,
        statement: &str,
        prepared: &Prepared,
    ) -> Result<(worker::Outcome, i64, i64)> {
        for id in &prepared.store_ids {
            self.storage.flush(id).await?;
        }
        let _gate = self.storage.files_gate.read().await;
        let (mut scanned_rows, mut scanned_bytes) = (0, 0);
        let mut tables = Vec::with_capacity(prepared.store_ids.len());
        for id in &prepared.store_ids {
            let files = self.catalog.files(id).await?;
            scanned_rows += files.iter().map(|f| f.rows).sum::<i64>();
            scanned_bytes += files.iter().map(|f| f.bytes).sum::<i64>();
            tables.push((id.clone(), files.into_iter().map(|f| f.path).collect()));
        }
        let job = worker::Job {
            statement: statement.to_owned(),
            tables,
            objects: self.objects.clone(),
            pool_bytes: self.limits.memory_limit / 4 * 3,
            max_result_rows: self.limits.max_result_rows,
            max_result_bytes: self.limits.max_result_bytes,
            group_on_codes: self.limits.group_on_codes,
        };
        let outcome = self.workers.run(&job).await?;
        Ok((outcome, scanned_rows, scanned_bytes))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::record;
    use datafusion::arrow::array::AsArray as _;
    use datafusion::arrow::datatypes::DataType;

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
                    .block_on(check_plan(&prepared))
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    /// A statement of 120 `UNION ALL`s would overflow a worker's stack in
    /// `StartQuery` and abort the server: past the bound it is refused, and
    /// the deepest allowed plans.
    #[test]
    fn deep_unions_are_bounded_and_plan_on_a_worker_stack() {
        let store = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
        let union = |n: usize| {
            (0..=n)
                .map(|i| format!("select eventid, {i} as n from {store}"))
                .collect::<Vec<_>>()
                .join(" union all ")
        };
        let err = plan_on_worker_stack(union(sql::MAX_SET_OPERATIONS + 1)).unwrap_err();
        assert!(err.contains("too complex"), "{err}");
        let err = plan_on_worker_stack(union(120)).unwrap_err();
        assert!(err.contains("too complex"), "{err}");
        plan_on_worker_stack(union(sql::MAX_SET_OPERATIONS)).unwrap();
    }

    /// The lake's group-by on event names counts the codes in the pages of
    /// its own files: the rule recognises the plan the lake makes (its
    /// table, schema and projection), and the counts are right.
    #[tokio::test]
    async fn event_names_are_counted_from_the_pages_unless_turned_off() {
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

        // Off, the same answer comes from DataFusion's own operators.
        for group_on_codes in [true, false] {
            let store = "8a6f0c1e-2b7d-4c1a-9e3f-5d2b1a0c9e8f";
            let engine = engine::Engine::new(Some(objects.clone()), group_on_codes).unwrap();
            let prepared = sql::prepare(&format!(
                "SELECT eventdata.eventname, count(*) FROM {store} GROUP BY eventdata.eventname"
            ))
            .unwrap();
            let plan = engine.check_plan(&prepared).await.unwrap();
            let statistics = engine
                .state()
                .runtime_env()
                .cache_manager
                .get_file_statistic_cache()
                .unwrap();
            assert!(statistics.is_empty());
            let tables = HashMap::from([(
                store.to_owned(),
                engine.files_table([path].into_iter()).unwrap(),
            )]);
            let plan = engine::with_tables(plan, &tables).unwrap();
            let state = engine.session(Vec::new()).unwrap();
            let physical = state.create_physical_plan(&plan).await.unwrap();
            let shown = displayable(physical.as_ref()).indent(true).to_string();
            assert_eq!(shown.contains("CountFromPages"), group_on_codes, "{shown}");
            assert!(!shown.contains("DictionaryGroupBy"), "{shown}");
            // Planning kept the file's statistics for the next query.
            assert_eq!(statistics.len(), 1);

            let batches = collect(physical, engine.task(&state, 1 << 30).unwrap())
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

        let slots = Arc::clone(&t.lake.queries().slots.all);
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

    /// A worker that finished its job serves the next one warm; one whose
    /// job failed is not kept.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_worker_serves_the_next_query_unless_its_job_failed() {
        use crate::testing::{LocalLake, OWNER};
        use aws_sdk_cloudtrail::types::QueryStatus as S;

        let dir = tempfile::tempdir().unwrap();
        let limits = QueryLimits {
            memory_limit: 256 << 20,
            ..QueryLimits::default()
        };
        let t = LocalLake::start_with(dir.path(), limits).await;
        let c = t.control(OWNER);
        let arn = c
            .create_event_data_store()
            .name("warm")
            .send()
            .await
            .unwrap()
            .event_data_store_arn
            .unwrap();
        let store = arn.rsplit('/').next().unwrap().to_owned();
        let run = |sql: String| {
            let c = c.clone();
            async move {
                let id = c
                    .start_query()
                    .query_statement(sql)
                    .send()
                    .await
                    .unwrap()
                    .query_id
                    .unwrap();
                for _ in 0..1000 {
                    let status = c
                        .describe_query()
                        .query_id(&id)
                        .send()
                        .await
                        .unwrap()
                        .query_status
                        .unwrap();
                    if !matches!(status, S::Queued | S::Running) {
                        return status;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("the query never ended");
            }
        };
        let workers = Arc::clone(&t.lake.queries().workers);
        assert!(workers.idle_pids().is_empty());
        let count = format!("select count(*) from {store}");
        assert_eq!(run(count.clone()).await, S::Finished);
        let first = workers.idle_pids();
        assert_eq!(first.len(), 1);
        assert_eq!(run(count.clone()).await, S::Finished);
        assert_eq!(workers.idle_pids(), first, "the same worker, kept warm");
        let huge = format!("select length(repeat('x', 1000000000)) from {store} limit 1");
        assert_eq!(run(huge).await, S::Failed);
        assert!(
            workers.idle_pids().is_empty(),
            "the failed job's worker is gone"
        );
        assert_eq!(run(count).await, S::Finished);
        let next = workers.idle_pids();
        assert_eq!(next.len(), 1);
        assert_ne!(next, first);
    }

    /// A statement of the longest length made of one operator chain
    /// (`1+1+1...`) would overflow a worker's stack and abort the process:
    /// it is refused with a clear error, while the deepest chain allowed
    /// plans on that stack.
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
