//! Queries run in worker processes, so that a statement can fail but never
//! crash, starve or slow the server beside it.
//!
//! DataFusion's memory pool accounts for what its operators reserve, not
//! for every allocation: accumulators such as `array_agg`, the output of a
//! cross join and scalar functions such as `repeat` allocate outside it.
//! So queries run in child processes ([`QueryWorker`]: by default the
//! `auditlake` binary's hidden `lake query-worker` command), under the
//! operating system's limits, set by the server on the child before it is
//! given any work:
//!
//! - memory: `RLIMIT_DATA` of the query's memory limit (heap and private
//!   mappings; an allocation past it fails and the child aborts), with
//!   DataFusion's pool at three quarters of it so that the operators it
//!   does account for fail first, with a clear error;
//! - CPU: a nice value of [`NICE`], so that the server's threads win every
//!   contended core, and before each job `RLIMIT_CPU` a little past the
//!   wall-clock limit as a backstop (the server kills the child at the
//!   wall-clock limit);
//! - results: the child renders rows and refuses more than the row limit;
//!   the server reads at most the byte limit of its answer.
//!
//! A worker runs one job at a time and serves the next from a pool
//! ([`Workers`]): its DataFusion session and caches (the files' footers,
//! page indexes and statistics) stay warm, which is most of a short
//! query's time. A worker whose job failed, timed out or was cancelled is
//! killed rather than reused, and one that dies fails only its query, with
//! the reason read from its exit status and standard error.
//!
//! The protocol is line-based: a JSON [`Job`] per line on the worker's
//! standard input; per job a header line ([`Header`]) on its standard
//! output, followed for a finished job by the result set's JSON, of the
//! length the header gives.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::local::LocalFileSystem;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::engine::{append_rows, engine_error, with_tables, Engine};
use super::limits::{QueryLimits, ResultSet};
use crate::error::{LakeError, Result};
use crate::query::sql;

/// The nice value of query workers: the lowest priority a process can
/// have, short of `SCHED_IDLE`.
pub const NICE: i32 = 19;

/// How the server starts a query worker: a program that runs
/// [`worker_main`] and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryWorker {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl QueryWorker {
    /// The running executable with `args`: the `auditlake` binary runs the
    /// worker as `auditlake lake query-worker`.
    pub fn current_exe(args: &[&str]) -> std::io::Result<Self> {
        Ok(Self {
            program: std::env::current_exe()?,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        })
    }
}

/// What a worker runs: a statement over the files of the stores it names.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The statement, as `StartQuery` received and checked it.
    pub statement: String,
    /// The paths of each named store's files in the object store.
    pub tables: Vec<(String, Vec<String>)>,
    /// The root of the local object store.
    pub objects: PathBuf,
    /// Bytes of DataFusion's memory pool.
    pub pool_bytes: usize,
    /// Most result rows.
    pub max_result_rows: usize,
    /// Most bytes of rendered results.
    pub max_result_bytes: usize,
    /// See [`QueryLimits::group_on_codes`].
    pub group_on_codes: bool,
}

/// The line a worker writes for a job: how the run ended. A finished run's
/// result set follows, `bytes` long.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Header {
    Finished { rows: usize, bytes: usize },
    Failed { memory: bool, message: String },
}

/// How a run in a worker ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Its rows and the result set's JSON, as the catalog stores it.
    Finished { rows: usize, results: String },
    /// It failed; the message is for `DescribeQuery`'s `ErrorMessage`.
    Failed(String),
    /// The CPU-time backstop ended it.
    TimedOut,
}

/// `1 GiB`, `512 MiB`: how limits are shown in messages.
pub(crate) fn size(bytes: usize) -> String {
    const GIB: usize = 1 << 30;
    const MIB: usize = 1 << 20;
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn memory_message(limits: &QueryLimits) -> String {
    format!(
        "The query exceeded its memory limit of {}.",
        size(limits.memory_limit)
    )
}

/// Jobs a worker serves before it is replaced, so that whatever a long
/// life accumulates (allocator fragmentation, cache growth) stays bounded.
const JOBS_PER_WORKER: u32 = 200;

/// Idle workers, warm, for the next queries; at most one per query slot.
#[derive(Debug)]
pub(crate) struct Workers {
    command: QueryWorker,
    limits: QueryLimits,
    idle: std::sync::Mutex<Vec<Worker>>,
}

impl Workers {
    /// The process IDs of the idle workers.
    #[cfg(test)]
    pub(crate) fn idle_pids(&self) -> Vec<i32> {
        let idle = self.idle.lock().expect("not poisoned");
        idle.iter().map(|w| w.pid.as_raw_nonzero().get()).collect()
    }

    pub(crate) fn new(command: QueryWorker, limits: QueryLimits) -> Self {
        Self {
            command,
            limits,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Runs `job` in an idle worker, or a new one. Dropping the future
    /// kills the worker, which is how a timeout or a cancel ends it.
    pub(crate) async fn run(&self, job: &Job) -> Result<Outcome> {
        let idle = self.idle.lock().expect("not poisoned").pop();
        // One that died while idle (the kernel's OOM killer, say) is not
        // this job's to fail with.
        let alive = idle.and_then(|mut w| matches!(w.child.try_wait(), Ok(None)).then_some(w));
        let mut worker = match alive {
            Some(w) => w,
            None => Worker::spawn(&self.command, &self.limits)?,
        };
        let outcome = worker.run(job, &self.limits).await?;
        // Only a worker that finished its job serves another: one that
        // failed may have left memory fragmented or be dead already.
        if matches!(outcome, Outcome::Finished { .. }) && worker.jobs < JOBS_PER_WORKER {
            let mut idle = self.idle.lock().expect("not poisoned");
            if idle.len() < self.limits.max_concurrent {
                idle.push(worker);
            }
        }
        Ok(outcome)
    }
}

/// A running worker process and its pipes.
#[derive(Debug)]
struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::BufReader<tokio::process::ChildStdout>,
    /// The last 64 KiB it wrote to standard error, when it ends.
    last_words: tokio::task::JoinHandle<String>,
    pid: rustix::process::Pid,
    jobs: u32,
}

impl Worker {
    /// Starts a worker and puts it under `limits`.
    fn spawn(command: &QueryWorker, limits: &QueryLimits) -> Result<Self> {
        let mut child = tokio::process::Command::new(&command.program)
            .args(&command.args)
            // The worker needs nothing of the server's environment, which
            // may hold its secrets.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                LakeError::Io(std::io::Error::new(
                    e.kind(),
                    format!(
                        "starting the query worker {}: {e}",
                        command.program.display()
                    ),
                ))
            })?;
        let pid = child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32))
            .ok_or_else(|| {
                LakeError::Io(std::io::Error::other("the query worker has no process ID"))
            })?;
        // The limits go on before the first job does: until it reads its
        // first job, the worker has only parsed its arguments.
        confine(pid, limits).map_err(LakeError::Io)?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut stderr = child.stderr.take().expect("piped");
        // Read apart from the answers, so that the pipe never fills up and
        // stalls the worker; only the tail is kept.
        let last_words = tokio::spawn(async move {
            let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend(&buf[..n]);
                let over = tail.len().saturating_sub(64 * 1024);
                tail.drain(..over);
            }
            String::from_utf8_lossy(tail.make_contiguous()).into_owned()
        });
        Ok(Self {
            child,
            stdin,
            stdout,
            last_words,
            pid,
            jobs: 0,
        })
    }

    /// Runs one job; a worker that dies on it gives the reason as a
    /// failed outcome.
    async fn run(&mut self, job: &Job, limits: &QueryLimits) -> Result<Outcome> {
        use tokio::io::AsyncBufReadExt as _;
        self.jobs += 1;
        // The CPU backstop counts from what the worker has used so far.
        limit_cpu(self.pid, limits).map_err(LakeError::Io)?;
        let mut line = serde_json::to_vec(job)?;
        line.push(b'\n');
        let sent = async {
            self.stdin.write_all(&line).await?;
            self.stdin.flush().await
        }
        .await;
        let mut header = Vec::new();
        let read = match sent {
            Ok(()) => (&mut self.stdout)
                .take(64 * 1024)
                .read_until(b'\n', &mut header)
                .await
                .ok(),
            Err(_) => None,
        };
        let parsed = match read {
            Some(n) if n > 0 => serde_json::from_slice::<Header>(&header).ok(),
            _ => None,
        };
        let Some(parsed) = parsed else {
            return Ok(self.died(limits).await);
        };
        match parsed {
            Header::Finished { rows, bytes } => {
                if bytes > limits.max_result_bytes + 64 * 1024 {
                    return Ok(Outcome::Failed(too_large(limits.max_result_bytes)));
                }
                let mut results = vec![0u8; bytes];
                if self.stdout.read_exact(&mut results).await.is_err() {
                    return Ok(self.died(limits).await);
                }
                let results = String::from_utf8(results)
                    .map_err(|e| LakeError::Invariant(format!("query worker answer: {e}")))?;
                Ok(Outcome::Finished { rows, results })
            }
            Header::Failed { memory: true, .. } => Ok(Outcome::Failed(memory_message(limits))),
            Header::Failed { message, .. } => Ok(Outcome::Failed(message)),
        }
    }

    /// The outcome of a job whose worker stopped answering: it is killed
    /// if it still runs, and its exit status and last words say why.
    async fn died(&mut self, limits: &QueryLimits) -> Outcome {
        let _ = self.child.start_kill();
        let status = self.child.wait().await;
        let stderr = (&mut self.last_words).await.unwrap_or_default();
        match status {
            Ok(status) => died(status, &stderr, limits),
            Err(e) => Outcome::Failed(format!("The query's process could not be waited for: {e}")),
        }
    }
}

fn too_large(bytes: usize) -> String {
    format!(
        "The query's results are larger than {}; add a LIMIT or select fewer columns.",
        size(bytes)
    )
}

/// Puts a new worker under the query limits (see the module's doc).
fn confine(pid: rustix::process::Pid, limits: &QueryLimits) -> std::io::Result<()> {
    use rustix::process::{prlimit, setpriority_process, Resource, Rlimit};
    let memory = limits.memory_limit as u64;
    prlimit(
        Some(pid),
        Resource::Data,
        Rlimit {
            current: Some(memory),
            maximum: Some(memory),
        },
    )?;
    setpriority_process(Some(pid), NICE)?;
    Ok(())
}

/// Sets a worker's `RLIMIT_CPU` to the CPU time it has used plus the
/// query timeout and a margin: a backstop for one job, should the server
/// fail to kill it at the wall-clock limit.
fn limit_cpu(pid: rustix::process::Pid, limits: &QueryLimits) -> std::io::Result<()> {
    use rustix::process::{prlimit, Resource, Rlimit};
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))?;
    // pid (comm) state ppid ... utime (14th) stime (15th), in clock ticks.
    let after_comm = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split(' ').collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let used = (ticks(11) + ticks(12)) / rustix::param::clock_ticks_per_second().max(1);
    let cpu = used + limits.timeout.as_secs() + 5;
    prlimit(
        Some(pid),
        Resource::Cpu,
        Rlimit {
            current: Some(cpu),
            maximum: Some(cpu + 5),
        },
    )?;
    Ok(())
}

/// Why a worker that did not answer ended.
fn died(status: std::process::ExitStatus, stderr: &str, limits: &QueryLimits) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    // Rust's allocation-failure handler prints this before it aborts.
    if stderr.contains("memory allocation of") || stderr.contains("out of memory") {
        return Outcome::Failed(memory_message(limits));
    }
    // SIGXCPU at the soft CPU limit (the hard one's SIGKILL comes only
    // after it).
    if status.signal() == Some(rustix::process::Signal::XCPU.as_raw()) {
        return Outcome::TimedOut;
    }
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
    tracing::warn!(%status, stderr = last.unwrap_or(""), "a query worker ended without an answer");
    Outcome::Failed(match status.signal() {
        Some(signal) => format!("The query's process ended unexpectedly (signal {signal})."),
        None => format!(
            "The query's process ended unexpectedly (exit code {}).",
            status.code().unwrap_or(-1)
        ),
    })
}

/// The worker's side: reads jobs from standard input, a line each, runs
/// each and writes its answer to standard output, until standard input
/// ends. The `auditlake` binary calls this for `auditlake lake
/// query-worker` before it starts anything else, and nothing starts here
/// before the first job: the threads made then inherit the nice value the
/// server set.
pub fn worker_main() -> ExitCode {
    use std::io::{BufRead as _, Write as _};
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut runtime = None;
    let mut engine: Option<((PathBuf, bool), Engine)> = None;
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("reading a job: {e}");
                return ExitCode::FAILURE;
            }
        }
        let job: Job = match serde_json::from_str(&line) {
            Ok(job) => job,
            Err(e) => {
                eprintln!("the job is not valid: {e}");
                return ExitCode::FAILURE;
            }
        };
        let runtime = match &runtime {
            Some(r) => r,
            None => {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
                match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .max_blocking_threads(8)
                    .enable_all()
                    .build()
                {
                    Ok(r) => runtime.insert(r),
                    Err(e) => {
                        eprintln!("starting the runtime: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        let (header, results) = match runtime.block_on(execute(&job, &mut engine)) {
            Ok((rows, results)) => (
                Header::Finished {
                    rows,
                    bytes: results.len(),
                },
                results,
            ),
            Err(e) => {
                let memory = matches!(
                    &e,
                    LakeError::Engine(df) if matches!(df.find_root(), datafusion::error::DataFusionError::ResourcesExhausted(_))
                );
                let message = match e {
                    LakeError::Aws { message, .. } => message,
                    other => other.to_string(),
                };
                (Header::Failed { memory, message }, String::new())
            }
        };
        let written = serde_json::to_writer(&mut output, &header)
            .map_err(std::io::Error::from)
            .and_then(|()| output.write_all(b"\n"))
            .and_then(|()| output.write_all(results.as_bytes()))
            .and_then(|()| output.flush());
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
}

/// Plans and runs the job on the worker's engine for the job's objects
/// (made on first use, and kept: its caches serve the next jobs); the rows
/// and the result set's JSON.
async fn execute(
    job: &Job,
    engine: &mut Option<((PathBuf, bool), Engine)>,
) -> Result<(usize, String)> {
    let key = (job.objects.clone(), job.group_on_codes);
    let engine = match engine {
        Some((made_for, e)) if *made_for == key => e,
        _ => {
            let objects = Arc::new(LocalFileSystem::new_with_prefix(&job.objects)?);
            let made = Engine::new(Some(objects), job.group_on_codes)?;
            &engine.insert((key, made)).1
        }
    };
    let prepared = sql::prepare(&job.statement)?;
    let plan = engine.check_plan(&prepared).await?;
    let mut tables = std::collections::HashMap::with_capacity(job.tables.len());
    for (id, paths) in &job.tables {
        tables.insert(
            id.clone(),
            engine.files_table(paths.iter().map(String::as_str))?,
        );
    }
    let plan = with_tables(plan, &tables)?;
    // The plan carries its tables; the run's catalog stays empty.
    let state = engine.session(Vec::new())?;
    let columns: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let physical = state.create_physical_plan(&plan).await.map_err(fail)?;
    let mut stream =
        datafusion::physical_plan::execute_stream(physical, engine.task(&state, job.pool_bytes)?)
            .map_err(fail)?;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(fail)?;
        if rows.len() + batch.num_rows() > job.max_result_rows {
            return Err(LakeError::bad(
                "InvalidQueryStatementException",
                format!(
                    "The query returns more than {} rows; add a LIMIT or a narrower WHERE.",
                    job.max_result_rows
                ),
            ));
        }
        let before = rows.len();
        append_rows(&batch, &mut rows)?;
        bytes += rows[before..]
            .iter()
            .flatten()
            .map(|c| c.as_ref().map_or(4, |s| s.len() + 3))
            .sum::<usize>();
        if bytes > job.max_result_bytes {
            return Err(LakeError::bad(
                "InvalidQueryStatementException",
                too_large(job.max_result_bytes),
            ));
        }
    }
    let n = rows.len();
    Ok((n, serde_json::to_string(&ResultSet { columns, rows })?))
}

/// A run's engine error: memory exhaustion stays an engine error (the
/// header says so), anything else is the statement's own failure.
fn fail(e: datafusion::error::DataFusionError) -> LakeError {
    if matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ResourcesExhausted(_)
    ) {
        LakeError::Engine(e)
    } else {
        engine_error(e)
    }
}
