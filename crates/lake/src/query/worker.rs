//! Queries run in a worker process of their own, so that a statement can
//! fail but never crash, starve or slow the server beside it.
//!
//! DataFusion's memory pool accounts for what its operators reserve, not
//! for every allocation: accumulators such as `array_agg`, the output of a
//! cross join and scalar functions such as `repeat` allocate outside it.
//! So each run is a child process ([`QueryWorker`]: by default the
//! `auditlake` binary's hidden `lake query-worker` command), and the limits
//! are the operating system's, set by the server on the child before it is
//! given any work:
//!
//! - memory: `RLIMIT_DATA` of the query's memory limit (heap and private
//!   mappings; an allocation past it fails and the child aborts), with
//!   DataFusion's pool at three quarters of it so that the operators it
//!   does account for fail first, with a clear error;
//! - CPU: a nice value of [`NICE`], so that the server's threads win every
//!   contended core, and `RLIMIT_CPU` a little past the wall-clock limit as
//!   a backstop (the server kills the child at the wall-clock limit);
//! - results: the child renders rows and refuses more than the row limit;
//!   the server reads at most the byte limit of its answer.
//!
//! The protocol is one JSON [`Job`] on the child's standard input, and one
//! header line ([`Header`]) then the result set's JSON on its standard
//! output. A child that dies fails only its query, with the reason read
//! from its exit status and standard error.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;

use futures::StreamExt as _;
use object_store::local::LocalFileSystem;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::engine::{append_rows, engine_error, with_tables, Engine};
use super::{QueryLimits, ResultSet};
use crate::error::{LakeError, Result};
use crate::sql;

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
}

/// The first line a worker writes: how the run ended. A finished run's
/// result set follows on the next line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Header {
    Finished { rows: usize },
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

/// Runs `job` in a new worker under `limits`. Dropping the future kills
/// the worker, which is how a timeout or a cancel ends it.
pub(crate) async fn run(worker: &QueryWorker, job: &Job, limits: &QueryLimits) -> Result<Outcome> {
    let mut child = tokio::process::Command::new(&worker.program)
        .args(&worker.args)
        // The worker needs nothing of the server's environment, which may
        // hold its secrets.
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
                    worker.program.display()
                ),
            ))
        })?;
    // The limits go on before the job does: until it reads its job, the
    // worker has only parsed its arguments.
    if let Err(e) = confine(&child, limits) {
        let _ = child.kill().await;
        return Err(LakeError::Io(e));
    }
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // The last words of a worker that dies; what it writes beyond 64 KiB
    // is drained, not kept. Read apart from the answer, so that neither
    // pipe can fill up and stall the worker.
    let last_words = tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        String::from_utf8_lossy(&err).into_owned()
    });
    let job = serde_json::to_vec(job)?;
    // The answer: a header line of at most a few KiB, then the results.
    let cap = limits.max_result_bytes as u64 + 64 * 1024;
    let (written, answer) = tokio::join!(
        async move {
            stdin.write_all(&job).await?;
            // Closed here, so the worker reads to the end of its job.
            drop(stdin);
            Ok::<_, std::io::Error>(())
        },
        async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(cap + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        },
    );
    let mut answer = answer?;
    if answer.len() as u64 > cap {
        let _ = child.kill().await;
        return Ok(Outcome::Failed(too_large(limits.max_result_bytes)));
    }
    let status = child.wait().await?;
    let errors = last_words.await.unwrap_or_default();
    if written.is_err() || !status.success() {
        return Ok(died(status, &errors, limits));
    }
    let Some(end) = answer.iter().position(|b| *b == b'\n') else {
        return Ok(died(status, &errors, limits));
    };
    let header: Header = serde_json::from_slice(&answer[..end])?;
    match header {
        Header::Finished { rows } => {
            answer.drain(..=end);
            let results = String::from_utf8(answer)
                .map_err(|e| LakeError::Invariant(format!("query worker answer: {e}")))?;
            Ok(Outcome::Finished { rows, results })
        }
        Header::Failed { memory: true, .. } => Ok(Outcome::Failed(memory_message(limits))),
        Header::Failed { message, .. } => Ok(Outcome::Failed(message)),
    }
}

fn too_large(bytes: usize) -> String {
    format!(
        "The query's results are larger than {}; add a LIMIT or select fewer columns.",
        size(bytes)
    )
}

/// Puts the worker under the query's limits (see the module's doc).
fn confine(child: &tokio::process::Child, limits: &QueryLimits) -> std::io::Result<()> {
    use rustix::process::{prlimit, setpriority_process, Pid, Resource, Rlimit};
    let pid = child
        .id()
        .and_then(|id| Pid::from_raw(id as i32))
        .ok_or_else(|| std::io::Error::other("the query worker has no process ID"))?;
    let memory = limits.memory_limit as u64;
    prlimit(
        Some(pid),
        Resource::Data,
        Rlimit {
            current: Some(memory),
            maximum: Some(memory),
        },
    )?;
    let cpu = limits.timeout.as_secs() + 5;
    prlimit(
        Some(pid),
        Resource::Cpu,
        Rlimit {
            current: Some(cpu),
            maximum: Some(cpu + 5),
        },
    )?;
    setpriority_process(Some(pid), NICE)?;
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

/// The worker's side: reads a job from standard input, runs it and
/// writes the answer to standard output. The `auditlake` binary calls this
/// for `auditlake lake query-worker` before it starts anything else, so the
/// threads it makes here inherit the nice value the server set.
pub fn worker_main() -> ExitCode {
    use std::io::{Read as _, Write as _};
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("reading the job: {e}");
        return ExitCode::FAILURE;
    }
    let job: Job = match serde_json::from_slice(&input) {
        Ok(job) => job,
        Err(e) => {
            eprintln!("the job is not valid: {e}");
            return ExitCode::FAILURE;
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(8)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (header, results) = match runtime.block_on(execute(&job)) {
        Ok((rows, results)) => (Header::Finished { rows }, results),
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
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut out, &header)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.write_all(results.as_bytes()))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// Plans and runs the job; the rows and the result set's JSON.
async fn execute(job: &Job) -> Result<(usize, String)> {
    let objects = Arc::new(LocalFileSystem::new_with_prefix(&job.objects)?);
    let engine = Engine::new(Some(objects))?;
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
