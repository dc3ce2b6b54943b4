//! `auditlake-bench`: measures a real `auditlake` server against issue 3's
//! performance targets, next to raw-database baselines taken in the same
//! run on the same machine.
//!
//! It runs the release binary (`admin bootstrap`, then `serve` on
//! `127.0.0.1:0`) as a child process and talks HTTP to it over loopback.
//! Scenarios, on SQLite and PostgreSQL, each on fresh databases:
//!
//! 1. batched ingest (1,000 events per request, a few clients), against
//!    plain INSERTs (SQLite) or COPY (PostgreSQL) of the same rows;
//! 2. single-event ingest from many concurrent clients;
//! 3. search, first page, over a large log spread over many orgs;
//! 4. the server's RSS at rest and under the load of each scenario.
//!
//! Every load loop is bounded by a count and a deadline. Results are
//! printed as a table and written to `OUT/results.{json,md}`.

mod db;
mod load;
mod report;
mod scenarios;
mod server;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use auditlake_store::Backend;
use clap::{Parser, ValueEnum};

use report::{Meta, Metric};
use scenarios::{backend_name, Plan};

/// Benchmarks a real auditlake server (issue 3's targets) against
/// raw-database baselines measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "auditlake-bench", version, about)]
struct Args {
    /// Which database(s) to run on
    #[arg(long, value_enum, default_value = "both")]
    backend: BackendArg,
    /// Scenarios to run (comma-separated)
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    scenario: Vec<ScenarioArg>,
    /// A small smoke run (sizes not given explicitly become small)
    #[arg(long)]
    quick: bool,
    /// Batched ingest: events in all [default: 100000; quick: 10000]
    #[arg(long)]
    events: Option<usize>,
    /// Batched ingest: events per request (1 to 1000)
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Batched ingest: concurrent clients
    #[arg(long, default_value_t = 4)]
    batch_clients: usize,
    /// Single-event ingest: measured requests [default: 30000; quick: 2000]
    #[arg(long)]
    requests: Option<usize>,
    /// Single-event ingest: concurrent clients
    #[arg(long, default_value_t = 64)]
    single_clients: usize,
    /// Search: stored events [default: 1000000; quick: 20000]
    #[arg(long)]
    search_events: Option<usize>,
    /// Search: orgs the events are spread over [default: 1000; quick: 20]
    #[arg(long)]
    orgs: Option<usize>,
    /// Search: measured requests [default: 5000; quick: 500]
    #[arg(long)]
    searches: Option<usize>,
    /// Search: concurrent clients
    #[arg(long, default_value_t = 8)]
    search_clients: usize,
    /// Unmeasured warm-up requests before single-event ingest and search
    /// [default: 500; quick: 100]
    #[arg(long)]
    warmup: Option<usize>,
    /// Longest any load phase may run, in seconds (population: 4 times this)
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
    /// The auditlake binary [default: `auditlake` beside this binary, else
    /// target/release/auditlake]
    #[arg(long)]
    bin: Option<PathBuf>,
    /// PostgreSQL database to create the benchmark databases from (must be
    /// on this machine)
    #[arg(
        long,
        env = "AUDITLAKE_TEST_PG",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
    /// Directory for results and server logs
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// Batched ingest (with the raw baseline)
    Batch,
    /// Single-event ingest
    Single,
    /// Search
    Search,
    /// All three (RSS is measured in each)
    All,
}

fn plan(args: &Args) -> anyhow::Result<Plan> {
    let q = args.quick;
    let pick =
        |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("auditlake")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("target/release/auditlake")),
    };
    if !bin.is_file() {
        bail!(
            "no auditlake binary at {}; build it with `cargo build --release -p auditlake-cli` or pass --bin",
            bin.display()
        );
    }
    let plan = Plan {
        bin: std::fs::canonicalize(&bin)?,
        pg_admin: args.pg_url.clone(),
        out: args.out.clone(),
        events: pick(args.events, 100_000, 10_000),
        batch_size: args.batch_size,
        batch_clients: args.batch_clients,
        requests: pick(args.requests, 30_000, 2_000),
        single_clients: args.single_clients,
        warmup: pick(args.warmup, 500, 100),
        search_events: pick(args.search_events, 1_000_000, 20_000),
        orgs: pick(args.orgs, 1_000, 20),
        searches: pick(args.searches, 5_000, 500),
        search_clients: args.search_clients,
        deadline: Duration::from_secs(args.max_secs),
    };
    if !(1..=1000).contains(&plan.batch_size) {
        bail!("--batch-size must be 1 to 1000 (the API's batch limit)");
    }
    for (name, v, max) in [
        ("--events", plan.events, 10_000_000),
        ("--requests", plan.requests, 1_000_000),
        ("--search-events", plan.search_events, 20_000_000),
        ("--orgs", plan.orgs, 100_000),
        ("--searches", plan.searches, 1_000_000),
        ("--warmup", plan.warmup, 100_000),
        ("--batch-clients", plan.batch_clients, 256),
        ("--single-clients", plan.single_clients, 1024),
        ("--search-clients", plan.search_clients, 1024),
    ] {
        if v > max || (v == 0 && name != "--warmup") {
            bail!("{name} must be 1 to {max}");
        }
    }
    if plan.orgs > plan.search_events {
        bail!("--orgs must not exceed --search-events");
    }
    Ok(plan)
}

/// Refuses a PostgreSQL URL that is not on this machine: the benchmark
/// sends traffic to loopback only.
fn check_local_pg(url: &str) -> anyhow::Result<()> {
    let opts = sqlx::postgres::PgConnectOptions::from_str(url)
        .with_context(|| format!("parsing --pg-url {url}"))?;
    let host = opts.get_host();
    let local = host.starts_with('/')
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !local {
        bail!("--pg-url must point at this machine (loopback or a Unix socket), not {host}");
    }
    Ok(())
}

fn cmd_out(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

async fn meta(plan: &Plan, backends: &[Backend]) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kb: f64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "?".into());
    let commit = match cmd_out("git", &["rev-parse", "HEAD"]) {
        Some(c) => {
            let dirty = cmd_out("git", &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} plus uncommitted changes")
            } else {
                c
            }
        }
        None => "?".into(),
    };
    let mut meta: Meta = vec![
        (
            "date",
            auditlake_core::time_fmt::format_micros(auditlake_core::time_fmt::now_micros()),
        ),
        ("commit", commit),
        (
            "cpus",
            std::thread::available_parallelism()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into()),
        ),
        ("cpu model", model),
        ("memory", mem),
        (
            "kernel",
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into()),
        ),
        ("server binary", plan.bin.display().to_string()),
        (
            "server binary built",
            std::fs::metadata(&plan.bin)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| auditlake_core::time_fmt::format_micros(d.as_micros() as i64))
                .unwrap_or_else(|| "?".into()),
        ),
        ("command", std::env::args().collect::<Vec<_>>().join(" ")),
    ];
    if backends.contains(&Backend::Postgres) {
        if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&plan.pg_admin).await {
            if let Ok(v) = sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&mut c)
                .await
            {
                meta.push(("PostgreSQL", v));
            }
        }
    }
    if let Ok(mut c) =
        <sqlx::SqliteConnection as sqlx::Connection>::connect("sqlite::memory:").await
    {
        if let Ok(v) = sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(&mut c)
            .await
        {
            meta.push(("SQLite", v));
        }
    }
    meta
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let plan = plan(&args)?;
    check_local_pg(&plan.pg_admin)?;
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("creating {}", plan.out.display()))?;
    let backends = match args.backend {
        BackendArg::Sqlite => vec![Backend::Sqlite],
        BackendArg::Postgres => vec![Backend::Postgres],
        BackendArg::Both => vec![Backend::Sqlite, Backend::Postgres],
    };
    let all = args.scenario.contains(&ScenarioArg::All);
    let wanted = |s: ScenarioArg| all || args.scenario.contains(&s);
    let meta = meta(&plan, &backends).await;
    for (k, v) in &meta {
        eprintln!("{k}: {v}");
    }
    eprintln!("plan: {plan:?}\n");

    let mut metrics: Vec<Metric> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for &backend in &backends {
        let b = backend_name(backend);
        for (s, name) in [
            (ScenarioArg::Batch, "batch ingest"),
            (ScenarioArg::Single, "single-event ingest"),
            (ScenarioArg::Search, "search"),
        ] {
            if !wanted(s) {
                continue;
            }
            eprintln!("== {b} / {name}");
            let t = std::time::Instant::now();
            let res = match s {
                ScenarioArg::Batch => scenarios::batch(&plan, backend).await,
                ScenarioArg::Single => scenarios::single(&plan, backend).await,
                ScenarioArg::Search => scenarios::search(&plan, backend).await,
                ScenarioArg::All => unreachable!("not a scenario of its own"),
            };
            match res {
                Ok(m) => metrics.extend(m),
                Err(e) => {
                    eprintln!("  FAILED: {e:#}");
                    failures.push(format!("{b} / {name}: {e:#}"));
                }
            }
            eprintln!("  ({:.1} s)\n", t.elapsed().as_secs_f64());
        }
    }

    println!("{}", report::table(&metrics));
    for f in &failures {
        println!("FAILED: {f}");
    }
    let json = report::to_json(&meta, &metrics, &failures);
    let md = report::markdown(&meta, &metrics, &failures);
    let (jp, mp) = (plan.out.join("results.json"), plan.out.join("results.md"));
    std::fs::write(&jp, serde_json::to_string_pretty(&json)? + "\n")?;
    std::fs::write(&mp, md)?;
    println!("wrote {} and {}", jp.display(), mp.display());
    Ok(failures.is_empty())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // On Ctrl-C the run is dropped, which kills any server it started.
    let res = tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match res {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
