//! `auditlake-merge-bench`: compaction's sorted merge, DataFusion's
//! sort-preserving merge, against the hand-written heap merge it replaced
//! (issue 22), on the same inputs, for speed and peak memory.
//!
//! The inputs are what compaction reads: Parquet files written by the
//! lake's own encoder (`storage::encode`, as a flush writes them), each
//! sorted by event time, of realistic events (~1 KB `eventData`). Each
//! case is a number of such runs of equal size, in one of two time
//! layouts: `interleaved`, every run spread over the whole day (the most
//! work per row for a merge), and `consecutive`, each run its own slice
//! of the day with a little overlap (files flushed one after another).
//! Event times are whole seconds, so equal times across runs are common
//! and the tie order is checked too.
//!
//! Two modes per case:
//!
//! - `merge`: the merge alone, over batches decoded beforehand (as the
//!   Parquet reader yields them, 1,024 rows each); the output is dropped;
//! - `compact`: what compaction runs: Parquet bytes → readers → merge →
//!   the lake's Parquet writer.
//!
//! Before measuring, both merges' outputs of every case are compared row
//! by row; a difference ends the run with an error. Then:
//!
//! - speed: rounds that alternate the two merges in one process; the
//!   median of each one's wall time and thread CPU time;
//! - peak memory: in the same rounds, the highest heap (bytes allocated
//!   and not yet freed, counted by this binary's global allocator) above
//!   the heap at the merge's start, which holds the inputs; the largest
//!   of the rounds. The resident set would also count code paged in on a
//!   merge's first use and memory the C allocator keeps after a free;
//! - instructions (`--callgrind`, when valgrind is installed): each
//!   (case, merge) of the `merge` mode once in a child process under
//!   callgrind, counting only the merge call: the figure that the other
//!   builds on a shared machine do not move.
//!
//! Results go to `<out>/merge-results.md` and `.json`.

mod heap;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use auditlake_lake::bench::{parquet_bytes, sorted_merge, MERGE_BATCH_ROWS};
use auditlake_lake::storage::encode;
use auditlake_lake::storage::record::{schema, Record};
use bytes::Bytes;
use clap::Parser;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use datafusion::arrow::array::{AsArray as _, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::arrow::error::ArrowError;

/// Compares compaction's merge (DataFusion's) with the hand-written heap
/// merge it replaced (issue 22).
#[derive(Debug, Parser)]
#[command(name = "auditlake-merge-bench", version)]
struct Args {
    /// Cases as RUNSxROWS (sorted runs of ROWS rows each), comma-separated.
    /// Compaction merges at most 32 files and 131,072 rows at a time.
    #[arg(
        long,
        default_value = "8x16384,32x4096,32x32768",
        value_delimiter = ','
    )]
    cases: Vec<String>,
    /// Time layouts of the runs: interleaved, consecutive
    #[arg(long, default_value = "interleaved,consecutive", value_delimiter = ',')]
    layouts: Vec<Layout>,
    /// Timed rounds per case and mode, each running both merges
    #[arg(long, default_value_t = 11)]
    rounds: usize,
    /// Also count instructions under valgrind's callgrind (slow: about a
    /// minute per case)
    #[arg(long)]
    callgrind: bool,
    /// Where results go
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Internal: run one `merge`-mode merge of the inputs in this
    /// directory (callgrind's child processes)
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
    /// Internal: the child's merge
    #[arg(long, hide = true, default_value = "heap")]
    merge: Which,
}

/// Counts the heap, for the peak memory figures.
#[global_allocator]
static HEAP: peak_alloc::PeakAlloc = peak_alloc::PeakAlloc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Layout {
    Interleaved,
    Consecutive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    /// The hand-written heap merge (`heap::SortedMerge`).
    Heap,
    /// The lake's: DataFusion's `StreamingMergeBuilder`.
    Datafusion,
}

impl Which {
    const BOTH: [Which; 2] = [Which::Heap, Which::Datafusion];

    fn name(self) -> &'static str {
        match self {
            Which::Heap => "heap",
            Which::Datafusion => "datafusion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Merge,
    Compact,
}

impl Mode {
    const BOTH: [Mode; 2] = [Mode::Merge, Mode::Compact];

    fn name(self) -> &'static str {
        match self {
            Mode::Merge => "merge",
            Mode::Compact => "compact",
        }
    }
}

const NAMES: [&str; 8] = [
    "org.settings.update",
    "org.member.add",
    "org.member.remove",
    "org.sso.update",
    "org.token.create",
    "org.token.revoke",
    "org.webhook.create",
    "org.target.delete",
];

fn iso(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("valid time");
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).expect("formats")
}

/// A realistic stored event (the lake benchmark's ~1 KB settings edit).
fn record(n: usize, time_ms: i64) -> Record {
    let secs = time_ms / 1000;
    Record {
        // Increasing with `n`, which numbers the rows run by run: the
        // order check reads the tie order from it.
        event_id: format!("0190b2c4-0000-7000-8000-{n:012x}"),
        event_time_ms: time_ms,
        aws_region: "us-east-1".into(),
        recipient_account_id: "123456789012".into(),
        ingestion_time_ms: time_ms + 1500,
        channel_arn: "arn:aws:cloudtrail:us-east-1:123456789012:channel/bench".into(),
        version: "1.0".into(),
        identity_type: "User".into(),
        principal_id: format!("3f2e1d0c-{:04x}-4b5a-9c8d-7e6f5a4b3c2d", n % 500),
        identity_details: Some(format!(
            r#"{{"email":"user{}@customer.example"}}"#,
            n % 500
        )),
        user_agent: Some("auditlake-forwarder/0.1 (+https://auditlake.example)".into()),
        event_source: "auditlake.example.com".into(),
        event_name: NAMES[n % NAMES.len()].into(),
        data_event_time: iso(secs),
        uid: format!("0190b2c4-{:04x}-7000-8000-{n:012x}", n % 65536),
        request_parameters: None,
        response_elements: None,
        error_code: None,
        error_message: None,
        source_ip_address: Some(format!("198.51.100.{}", n % 250)),
        data_recipient_account_id: "123456789012".into(),
        additional_event_data: Some(
            json!({
                "org_id": format!("9a8b7c6d-{:04x}-4e3f-8a1b-2c3d4e5f6a7b", n % 200),
                "group_id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
                "url": format!("https://auditlake.example.com/rest/orgs/9a8b7c6d-{:04x}-4e3f-8a1b-2c3d4e5f6a7b/settings?version=2024-10-15", n % 200),
                "method": "PATCH",
                "status": 200,
                "before": {"name": format!("Platform team {}", n % 37), "slack_alerts": n.is_multiple_of(2), "default_role": "org_member"},
                "after": {"name": format!("Platform team {}", (n + 1) % 37), "slack_alerts": !n.is_multiple_of(2), "default_role": "org_member"},
                "request_id": format!("req-{n:016x}")
            })
            .to_string(),
        ),
    }
}

/// One case: `runs` sorted runs of `rows` rows.
#[derive(Debug, Clone, Copy)]
struct Case {
    runs: usize,
    rows: usize,
    layout: Layout,
}

impl Case {
    fn name(&self) -> String {
        let layout = match self.layout {
            Layout::Interleaved => "interleaved",
            Layout::Consecutive => "consecutive",
        };
        format!("{} x {} rows, {layout}", self.runs, self.rows)
    }

    /// The case's runs as Parquet files, written by the lake's encoder.
    fn files(&self) -> anyhow::Result<Vec<Bytes>> {
        const DAY_S: i64 = 86_400;
        let day0 = 1_767_225_600; // 2026-01-01
        let mut rng = rand::rngs::StdRng::seed_from_u64(22);
        let mut n = 0;
        (0..self.runs)
            .map(|run| {
                let (from, span) = match self.layout {
                    Layout::Interleaved => (0, DAY_S),
                    Layout::Consecutive => {
                        // Its slice of the day, widened by a tenth on each
                        // side: late events overlap the neighbours.
                        let slice = DAY_S / self.runs as i64;
                        let from = (run as i64 * slice - slice / 10).max(0);
                        (from, (slice + slice / 5).min(DAY_S - from))
                    }
                };
                let records = (0..self.rows)
                    .map(|_| {
                        n += 1;
                        record(n, (day0 + from + rng.random_range(0..span)) * 1000)
                    })
                    .collect();
                Ok(encode(records)?.0)
            })
            .collect()
    }
}

fn parse_case(text: &str, layout: Layout) -> anyhow::Result<Case> {
    let (runs, rows) = text
        .split_once('x')
        .with_context(|| format!("case {text:?} is not RUNSxROWS"))?;
    Ok(Case {
        runs: runs.trim().parse()?,
        rows: rows.trim().parse()?,
        layout,
    })
}

fn reader(bytes: &Bytes) -> anyhow::Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    Ok(ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?
        .with_batch_size(MERGE_BATCH_ROWS)
        .build()?)
}

/// A case's inputs, ready for either mode.
struct Inputs {
    files: Vec<Bytes>,
    /// The files decoded, for the `merge` mode.
    decoded: Vec<Vec<RecordBatch>>,
}

impl Inputs {
    fn new(files: Vec<Bytes>, decode: bool) -> anyhow::Result<Self> {
        let decoded = if decode {
            files
                .iter()
                .map(|f| Ok(reader(f)?.collect::<Result<Vec<_>, _>>()?))
                .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self { files, decoded })
    }

    fn decoded_sources(&self) -> Vec<std::vec::IntoIter<Result<RecordBatch, ArrowError>>> {
        self.decoded
            .iter()
            .map(|batches| {
                batches
                    .iter()
                    .cloned()
                    .map(Ok)
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect()
    }
}

/// The merged batches of `sources` by `which`.
fn merged<I>(
    which: Which,
    sources: Vec<I>,
) -> anyhow::Result<Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>>
where
    I: Iterator<Item = Result<RecordBatch, ArrowError>> + Send + 'static,
{
    Ok(match which {
        Which::Heap => Box::new(heap::SortedMerge::new(
            schema(),
            "eventtime",
            sources,
            MERGE_BATCH_ROWS,
        )?),
        Which::Datafusion => sorted_merge(schema(), "eventtime", sources, MERGE_BATCH_ROWS)?,
    })
}

/// One merge of `inputs` in `mode`; returns the rows merged. The only
/// function callgrind counts (`--toggle-collect`), so never inlined.
#[inline(never)]
fn measured_merge(which: Which, mode: Mode, inputs: &Inputs) -> anyhow::Result<usize> {
    match mode {
        Mode::Merge => {
            let sources = inputs.decoded_sources();
            let mut rows = 0;
            for batch in merged(which, sources)? {
                rows += batch?.num_rows();
            }
            Ok(rows)
        }
        Mode::Compact => {
            let sources = inputs
                .files
                .iter()
                .map(reader)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (bytes, rows) = parquet_bytes(merged(which, sources)?, 0)?;
            std::hint::black_box(bytes);
            Ok(usize::try_from(rows)?)
        }
    }
}

/// Both merges give the same rows in the same order with the same schema.
fn check_same_output(case: &Case, inputs: &Inputs) -> anyhow::Result<()> {
    let outputs = Which::BOTH
        .iter()
        .map(|&which| {
            let batches =
                merged(which, inputs.decoded_sources())?.collect::<Result<Vec<_>, _>>()?;
            Ok(concat_batches(&schema(), &batches)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (a, b) = (&outputs[0], &outputs[1]);
    if a.num_rows() != case.runs * case.rows {
        bail!("{}: merged {} rows", case.name(), a.num_rows());
    }
    if a.schema() != b.schema() || a != b {
        bail!(
            "{}: the two merges' outputs differ (rows {} and {})",
            case.name(),
            a.num_rows(),
            b.num_rows()
        );
    }
    // Sorted, and ties in input order: each row's event ID is its run's
    // and row's number, increasing in both.
    let times = a
        .column_by_name("eventtime")
        .context("eventtime")?
        .as_primitive::<TimestampMillisecondType>()
        .values();
    let ids = a
        .column_by_name("eventid")
        .context("eventid")?
        .as_string::<i32>();
    for i in 1..times.len() {
        let tie_in_order = times[i - 1] < times[i] || ids.value(i - 1) < ids.value(i);
        if times[i - 1] > times[i] || !tie_in_order {
            bail!("{}: row {i} is out of order", case.name());
        }
    }
    Ok(())
}

fn thread_cpu_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median wall and thread CPU milliseconds of `rounds` runs of each
/// merge, interleaved (the order alternates every round), and the largest
/// rise of the heap during one.
fn timings(mode: Mode, inputs: &Inputs, rows: usize, rounds: usize) -> anyhow::Result<Vec<Value>> {
    let mut wall = [Vec::new(), Vec::new()];
    let mut cpu = [Vec::new(), Vec::new()];
    let mut heap = [0usize; 2];
    // One untimed run of each first: page faults of the first use.
    for which in Which::BOTH {
        measured_merge(which, mode, inputs)?;
    }
    for round in 0..rounds {
        for k in 0..2 {
            let k = if round % 2 == 0 { k } else { 1 - k };
            let base = HEAP.current_usage();
            HEAP.reset_peak_usage();
            let (w0, c0) = (Instant::now(), thread_cpu_ns());
            let merged = measured_merge(Which::BOTH[k], mode, inputs)?;
            let (c1, w1) = (thread_cpu_ns(), Instant::now());
            heap[k] = heap[k].max(HEAP.peak_usage().saturating_sub(base));
            if merged != rows {
                bail!("merged {merged} rows of {rows}");
            }
            wall[k].push((w1 - w0).as_secs_f64() * 1e3);
            cpu[k].push((c1 - c0) as f64 / 1e6);
        }
    }
    Ok((0..2)
        .map(|k| {
            json!({
                "wall_ms": median(wall[k].clone()),
                "cpu_ms": median(cpu[k].clone()),
                "heap_peak_bytes": heap[k],
            })
        })
        .collect())
}

/// The child: loads `dir`'s inputs and merges them once, for callgrind.
fn child(dir: &Path, which: Which) -> anyhow::Result<()> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let files = paths
        .iter()
        .map(|p| Ok(Bytes::from(std::fs::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let inputs = Inputs::new(files, true)?;
    let rows = measured_merge(which, Mode::Merge, &inputs)?;
    println!("{rows}");
    Ok(())
}

/// Instructions of one `merge`-mode merge of `dir`'s inputs, counted by
/// callgrind in `measured_merge` only.
fn run_callgrind(dir: &Path, which: Which) -> anyhow::Result<u64> {
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=auditlake_merge_bench::measured_merge",
        ])
        .arg(std::env::current_exe()?)
        .arg("--child")
        .arg(dir)
        .args(["--merge", which.name()])
        .output()
        .context("running valgrind")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("callgrind {} failed: {stderr}", which.name());
    }
    let collected = stderr
        .lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, n)| n.trim().to_owned())
        })
        .with_context(|| format!("no instruction count in callgrind's output: {stderr}"))?;
    let n: u64 = collected.parse()?;
    if n == 0 {
        bail!("callgrind counted nothing in measured_merge");
    }
    Ok(n)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({"cpu": cpu, "cores": cores, "commit": commit, "at": at})
}

fn mib(bytes: &Value) -> f64 {
    bytes.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0)
}

fn markdown(machine: &Value, results: &[Value]) -> String {
    let mut s = format!(
        "Commit `{}`, {}, {} ({} cores). Times: medians of the rounds; heap: the \
         highest rise over the inputs; ratios: DataFusion / heap merge.\n\n\
         | case | mode | heap merge wall / CPU ms | DataFusion wall / CPU ms | CPU ratio | \
         heap merge: heap peak MiB | DataFusion: heap peak MiB | instructions ratio |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        machine["commit"].as_str().unwrap_or("?"),
        machine["at"].as_str().unwrap_or("?"),
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
    );
    for r in results {
        let [a, b] = [&r["heap"], &r["datafusion"]];
        let ratio = |k: &str| b[k].as_f64().unwrap_or(0.0) / a[k].as_f64().unwrap_or(1.0);
        let instructions = if a["instructions"].is_u64() {
            format!(
                "{:.3} ({:.0}M / {:.0}M)",
                ratio("instructions"),
                a["instructions"].as_f64().unwrap_or(0.0) / 1e6,
                b["instructions"].as_f64().unwrap_or(0.0) / 1e6
            )
        } else {
            String::new()
        };
        s += &format!(
            "| {} | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.3} | {:.2} | {:.2} | {} |\n",
            r["case"].as_str().unwrap_or("?"),
            r["mode"].as_str().unwrap_or("?"),
            a["wall_ms"].as_f64().unwrap_or(0.0),
            a["cpu_ms"].as_f64().unwrap_or(0.0),
            b["wall_ms"].as_f64().unwrap_or(0.0),
            b["cpu_ms"].as_f64().unwrap_or(0.0),
            ratio("cpu_ms"),
            mib(&a["heap_peak_bytes"]),
            mib(&b["heap_peak_bytes"]),
            instructions,
        );
    }
    s
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.child {
        return child(dir, args.merge);
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let cases = args
        .cases
        .iter()
        .flat_map(|c| args.layouts.iter().map(move |&l| parse_case(c, l)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let machine = machine();
    let mut results = Vec::new();
    for case in &cases {
        let started = Instant::now();
        let files = case.files()?;
        let dir = tempfile::tempdir()?;
        for (i, f) in files.iter().enumerate() {
            std::fs::write(dir.path().join(format!("run-{i:03}.parquet")), f)?;
        }
        let inputs = Inputs::new(files, true)?;
        check_same_output(case, &inputs)?;
        eprintln!(
            "{}: inputs ready and outputs identical ({:.1} s)",
            case.name(),
            started.elapsed().as_secs_f64()
        );
        let rows = case.runs * case.rows;
        for mode in Mode::BOTH {
            let times = timings(mode, &inputs, rows, args.rounds)?;
            let mut result = json!({"case": case.name(), "runs": case.runs,
                "rows_per_run": case.rows, "mode": mode.name()});
            for (k, which) in Which::BOTH.into_iter().enumerate() {
                let mut r = times[k].clone();
                if args.callgrind && mode == Mode::Merge {
                    r["instructions"] = json!(run_callgrind(dir.path(), which)?);
                }
                result[which.name()] = r;
            }
            eprintln!("{result}");
            results.push(result);
        }
    }
    let md = markdown(&machine, &results);
    print!("{md}");
    std::io::stdout().flush()?;
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("merge-results.md"), &md)?;
    std::fs::write(
        args.out.join("merge-results.json"),
        serde_json::to_string_pretty(&json!({"machine": machine, "results": results}))?,
    )?;
    Ok(())
}
