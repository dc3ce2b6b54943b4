//! `auditlake-lake-bench`: measures the local CloudTrail Lake against
//! issue 4's targets, with the baselines the issue names taken in the same
//! run on the same machine:
//!
//! 1. ingest: `PutAuditEvents` in 100-event calls of ~1 KB events from
//!    several SDK clients over loopback (target 20,000 events/s);
//! 2. storage: Parquet bytes per stored event against the raw JSON sent
//!    (target at least 5x smaller);
//! 3. queries: on N stored events (default 10,000,000), the seed query and
//!    a group-by over `eventdata.eventname`, through the SDK against the
//!    release server, side by side with DuckDB reading the same Parquet
//!    files (targets: at most 1.0x DuckDB, seed query under 300 ms).
//!
//! The server is the release binary (`auditlake lake serve`), a child
//! process. Every load loop is bounded by a count and a deadline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use auditlake_testkit::{try_spawn_until, Killed};
use aws_sdk_cloudtrail as ct;
use aws_sdk_cloudtraildata as ctd;
use clap::Parser;
use serde_json::{json, Value};

use auditlake_lake::storage::catalog::{now_ms, EventDataStore};
use auditlake_lake::storage::record::Record;
use auditlake_lake::{AccessKey, Lake, LakeConfig};

/// Benchmarks the local CloudTrail Lake (issue 4's targets).
#[derive(Debug, Parser)]
#[command(name = "auditlake-lake-bench", version, about)]
struct Args {
    /// The auditlake binary to run (a release build)
    #[arg(long, default_value = "target/release/auditlake")]
    bin: PathBuf,
    /// Where results go
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Python with the duckdb package, for the baseline
    #[arg(long, default_value = "python3")]
    python: PathBuf,
    /// Ingest: events sent
    #[arg(long, default_value_t = 200_000)]
    ingest_events: usize,
    /// Ingest: concurrent clients
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Queries: events stored
    #[arg(long, default_value_t = 10_000_000)]
    query_events: usize,
    /// Queries: measured runs of each query (after one warm-up), for
    /// auditlake and DuckDB alike; enough for a median that holds still
    /// between runs of the same binary
    #[arg(long, default_value_t = 21)]
    runs: usize,
    /// Longest the ingest phase may run, in seconds
    #[arg(long, default_value_t = 300)]
    deadline: u64,
}

const ACCOUNT: &str = "123456789012";

fn key() -> AccessKey {
    AccessKey {
        access_key_id: "AKIABENCHMARK0000000".into(),
        secret_access_key: "bench-secret-not-for-production-0000".into(),
        account_id: ACCOUNT.into(),
    }
}

struct Server {
    child: Killed,
    url: String,
}

impl Server {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        let k = key();
        let mut cmd = Command::new(bin);
        cmd.args(["lake", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("AUDITLAKE_LOG", "warn")
            .env("AUDITLAKE_LAKE_ACCESS_KEY_ID", &k.access_key_id)
            .env("AUDITLAKE_LAKE_SECRET_ACCESS_KEY", &k.secret_access_key)
            .env("AUDITLAKE_LAKE_ACCOUNT_ID", &k.account_id);
        let (child, announced) = try_spawn_until(
            &mut cmd,
            &["auditlake lake listening on "],
            Duration::from_secs(60),
        )
        .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Self {
            child,
            url: announced[0].clone(),
        })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.0.wait()?;
        Ok(())
    }
}

fn control(url: &str) -> ct::Client {
    auditlake_cloudtrail::client::control(url, &key(), "us-east-1")
}

fn data(url: &str) -> ctd::Client {
    auditlake_cloudtrail::client::data(url, &key(), "us-east-1")
}

/// Creates an integration store, a channel and its policy with the CLI's
/// own `lake setup`, as a user would.
fn setup(bin: &Path, url: &str) -> anyhow::Result<(String, String)> {
    let k = key();
    let out = Command::new(bin)
        .args([
            "lake",
            "setup",
            "--external-id",
            EXTERNAL_ID,
            "--name",
            "bench",
        ])
        .args(["--retention-days", "3653", "--json", "--endpoint", url])
        .env("AUDITLAKE_LAKE_ACCESS_KEY_ID", &k.access_key_id)
        .env("AUDITLAKE_LAKE_SECRET_ACCESS_KEY", &k.secret_access_key)
        .env("AUDITLAKE_LAKE_ACCOUNT_ID", &k.account_id)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "lake setup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_owned)
            .context("lake setup output")
    };
    Ok((field("event_data_store_id")?, field("channel_arn")?))
}

/// The External ID the benchmark channel's policy requires.
const EXTERNAL_ID: &str = "bench-org";

const NAMES: [&str; 8] = [
    "api.access",
    "org.settings.edit",
    "org.user.add",
    "org.project.create",
    "group.org.add",
    "org.user.remove",
    "org.webhook.create",
    "org.target.delete",
];

fn iso(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("valid time");
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).expect("formats")
}

/// A realistic ~1 KB `eventData`: a settings edit with before/after.
fn event_data(n: usize, secs: i64) -> String {
    json!({
        "version": "1.0",
        "userIdentity": {"type": "User", "principalId": format!("3f2e1d0c-{:04x}-4b5a-9c8d-7e6f5a4b3c2d", n % 500),
            "details": {"email": format!("user{}@customer.example", n % 500)}},
        "userAgent": "auditlake-forwarder/0.1 (+https://auditlake.example)",
        "eventSource": "auditlake.example.com",
        "eventName": NAMES[n % NAMES.len()],
        "eventTime": iso(secs),
        "UID": format!("0190b2c4-{:04x}-7000-8000-{:012x}", n % 65536, n),
        "recipientAccountId": ACCOUNT,
        "sourceIPAddress": format!("198.51.100.{}", n % 250),
        "additionalEventData": {
            "org_id": format!("9a8b7c6d-{:04x}-4e3f-8a1b-2c3d4e5f6a7b", n % 200),
            "group_id": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
            "url": format!("https://auditlake.example.com/rest/orgs/9a8b7c6d-{:04x}-4e3f-8a1b-2c3d4e5f6a7b/settings?version=2024-10-15", n % 200),
            "method": "PATCH",
            "status": 200,
            "before": {"name": format!("Platform team {}", n % 37), "slack_alerts": n.is_multiple_of(2), "default_role": "org_member"},
            "after": {"name": format!("Platform team {}", (n + 1) % 37), "slack_alerts": !n.is_multiple_of(2), "default_role": "org_member"},
            "request_id": format!("req-{n:016x}")
        }
    })
    .to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                total += dir_bytes(&p);
            } else if let Ok(m) = e.metadata() {
                total += m.len();
            }
        }
    }
    total
}

/// One query run to completion, in milliseconds.
struct Timing {
    /// From `StartQuery` sent to the results received.
    wall: f64,
    /// The engine's own figure (`ExecutionTimeInMillis`).
    engine: f64,
    /// The `StartQuery` round trip.
    start: f64,
    /// The `GetQueryResults` round trip.
    results: f64,
    rows: usize,
}

/// Runs a query to completion, polling `DescribeQuery` every 2 ms.
async fn timed_query(c: &ct::Client, sql: &str) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let id = c
        .start_query()
        .query_statement(sql)
        .send()
        .await?
        .query_id
        .context("query id")?;
    let start = started.elapsed().as_secs_f64() * 1000.0;
    let engine_ms = loop {
        let d = c.describe_query().query_id(&id).send().await?;
        match d.query_status() {
            Some(ct::types::QueryStatus::Finished) => {
                break d
                    .query_statistics()
                    .and_then(|s| s.execution_time_in_millis())
                    .unwrap_or(0) as f64
            }
            Some(ct::types::QueryStatus::Queued | ct::types::QueryStatus::Running) => {
                tokio::time::sleep(Duration::from_millis(2)).await
            }
            other => bail!("query ended {other:?}: {:?}", d.error_message()),
        }
    };
    let asked = Instant::now();
    let results = c.get_query_results().query_id(&id).send().await?;
    Ok(Timing {
        wall: started.elapsed().as_secs_f64() * 1000.0,
        engine: engine_ms,
        start,
        results: asked.elapsed().as_secs_f64() * 1000.0,
        rows: results.query_result_rows().len(),
    })
}

async fn ingest(args: &Args, root: &Path, report: &mut Vec<Value>) -> anyhow::Result<()> {
    let dir = root.join("ingest");
    let server = Server::start(&args.bin, &dir)?;
    let c = control(&server.url);
    let (store_id, channel_arn) = setup(&args.bin, &server.url)?;
    let batches = args.ingest_events.div_ceil(100);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Build every request body up front, so the clock measures the lake.
    let mut raw_bytes = 0usize;
    let mut all: Vec<Vec<ctd::types::AuditEvent>> = Vec::with_capacity(batches);
    for b in 0..batches {
        let mut events = Vec::with_capacity(100);
        for i in 0..100 {
            let n = b * 100 + i;
            let text = event_data(n, now - 3600 + (n as i64 % 3600));
            raw_bytes += text.len();
            events.push(
                ctd::types::AuditEvent::builder()
                    .id(format!("e{n}"))
                    .event_data(text)
                    .build()?,
            );
        }
        all.push(events);
    }
    let per_event = raw_bytes as f64 / (batches * 100) as f64;
    eprintln!(
        "ingest: {} events of {per_event:.0} bytes from {} clients",
        batches * 100,
        args.clients
    );
    let queue = std::sync::Arc::new(std::sync::Mutex::new(all));
    let deadline = Instant::now() + Duration::from_secs(args.deadline);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (queue, client, arn) = (queue.clone(), data(&server.url), channel_arn.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sent = 0usize;
            loop {
                let Some(events) = queue.lock().expect("queue").pop() else {
                    break;
                };
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                let out = client
                    .put_audit_events()
                    .channel_arn(&arn)
                    .external_id(EXTERNAL_ID)
                    .set_audit_events(Some(events))
                    .send()
                    .await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(
                    out.failed().is_empty(),
                    "entries failed: {:?}",
                    out.failed().first()
                );
                sent += out.successful().len();
            }
            anyhow::Ok((sent, latencies))
        }));
    }
    let mut sent = 0;
    let mut latencies = Vec::new();
    for t in tasks {
        let (s, l) = t.await??;
        sent += s;
        latencies.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let rate = sent as f64 / secs;
    eprintln!("ingest: {sent} events in {secs:.1}s = {rate:.0} events/s");
    report.push(json!({"metric": "PutAuditEvents ingest (100-event calls, ~1 KB events)", "value": rate, "unit": "events/s",
        "baseline": 20000.0, "baseline_name": "target", "ratio": rate / 20000.0, "met": rate >= 20000.0,
        "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99), "events": sent}));

    // A query flushes the buffer of its store: afterwards every event is in Parquet.
    timed_query(&c, &format!("select count(*) from {store_id}")).await?;
    let parquet = dir_bytes(&dir.join("lake/objects")) as f64;
    let catalog = ["catalog.db", "catalog.db-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join("lake").join(f))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum::<u64>() as f64;
    let live = catalog_live_bytes(&dir.join("lake/catalog.db")).await? as f64;
    let ratio = raw_bytes as f64 / parquet;
    let with_index = raw_bytes as f64 / (parquet + live);
    eprintln!(
        "storage: raw {raw_bytes} B, parquet {parquet} B ({ratio:.1}x), catalog files {catalog} B \
         of which pages in use {live} B ({with_index:.1}x with those)"
    );
    report.push(json!({"metric": "bytes per stored event (Parquet)", "value": parquet / sent as f64, "unit": "bytes",
        "baseline": per_event, "baseline_name": "raw eventData JSON", "ratio": ratio, "met": ratio >= 5.0}));
    report.push(json!({"metric": "bytes per stored event (Parquet + the catalog's pages in use: id index, file list)", "value": (parquet + live) / sent as f64, "unit": "bytes",
        "baseline": per_event, "baseline_name": "raw eventData JSON", "ratio": with_index, "met": with_index >= 5.0,
        "catalog_file_bytes": catalog}));
    server.stop()
}

/// Bytes of the catalog's pages in use (`page_count - freelist_count`),
/// read beside the running server (WAL mode lets a reader in): what the
/// catalog keeps for the stored events, without the pages a flush freed
/// for reuse, which keep the file at the ingest buffer's high-water mark.
async fn catalog_live_bytes(db: &Path) -> anyhow::Result<u64> {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    let mut pragma = async |name: &str| -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(&format!("PRAGMA {name}"))
            .fetch_one(&mut conn)
            .await?)
    };
    let (pages, free, size) = (
        pragma("page_count").await?,
        pragma("freelist_count").await?,
        pragma("page_size").await?,
    );
    conn.close().await?;
    Ok(u64::try_from((pages - free) * size)?)
}

/// Writes `n` events over ten days straight into a lake directory.
async fn load(dir: &Path, n: usize) -> anyhow::Result<(String, PathBuf)> {
    let mut config = LakeConfig::new(dir.join("lake"));
    config.keys = vec![key()];
    let lake = Lake::open(config).await?;
    let store = EventDataStore {
        id: uuid::Uuid::new_v4().to_string(),
        account: ACCOUNT.into(),
        region: "us-east-1".into(),
        name: "query-bench".into(),
        status: "ENABLED".into(),
        retention_days: 3653,
        termination_protection: false,
        multi_region: true,
        organization: false,
        billing_mode: "EXTENDABLE_RETENTION_PRICING".into(),
        selectors: json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["ActivityAuditLog"]}]}]),
        tags: json!([]),
        created_ms: now_ms(),
        updated_ms: now_ms(),
    };
    lake.catalog().insert_store(&store).await?;
    let days = 10;
    let start = time::OffsetDateTime::now_utc().unix_timestamp() / 86_400 * 86_400 - days * 86_400;
    let span = days * 86_400;
    let chunk = 500_000;
    let arn = format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:channel/bench");
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let take = chunk.min(n - done);
        let mut records = Vec::with_capacity(take);
        for k in done..done + take {
            let secs = start + (k as i64 * span) / n as i64;
            let stamp = auditlake_lake::storage::record::Stamp {
                account: ACCOUNT,
                region: "us-east-1",
                channel_arn: &arn,
                now_ms: secs * 1000,
            };
            let r: Record = auditlake_lake::storage::record::build(
                &event_data(k, secs),
                uuid::Uuid::new_v4().to_string(),
                &stamp,
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            records.push(r);
        }
        lake.storage().import(&store.id, records).await?;
        done += take;
        eprintln!(
            "load: {done}/{n} events ({:.0}s)",
            started.elapsed().as_secs_f64()
        );
    }
    lake.close().await;
    Ok((
        store.id.clone(),
        dir.join("lake/objects/eds").join(&store.id),
    ))
}

async fn queries(args: &Args, root: &Path, report: &mut Vec<Value>) -> anyhow::Result<()> {
    let dir = root.join("query");
    let (store_id, files) = load(&dir, args.query_events).await?;
    let server = Server::start(&args.bin, &dir)?;
    let c = control(&server.url);
    let seed = format!(
        "select eventtime, eventdata.useridentity, eventdata.eventname, eventdata.additionaleventdata\nfrom {store_id} order by eventTime desc limit 10"
    );
    let group = format!(
        "select eventdata.eventname, count(*) from {store_id} group by eventdata.eventname"
    );
    let mut ours = Vec::new();
    for (name, sql, rows) in [
        ("seed", &seed, 10),
        ("group-by eventname", &group, NAMES.len()),
    ] {
        let got = timed_query(&c, sql).await?.rows;
        anyhow::ensure!(got == rows, "{name}: {got} rows, expected {rows}");
        let mut runs = Vec::new();
        for _ in 0..args.runs {
            runs.push(timed_query(&c, sql).await?);
        }
        let of = |f: fn(&Timing) -> f64| median(runs.iter().map(f).collect());
        let (wall, engine) = (of(|t| t.wall), of(|t| t.engine));
        eprintln!(
            "auditlake {name}: median {wall:.1} ms end to end, {engine:.1} ms in the engine, \
             StartQuery {:.1} ms, GetQueryResults {:.1} ms",
            of(|t| t.start),
            of(|t| t.results)
        );
        ours.push((name, wall, engine));
    }
    server.stop()?;

    let glob = format!("{}/*/*.parquet", files.display());
    let out = Command::new(&args.python)
        .arg("scripts/bench_duckdb.py")
        .arg(&glob)
        .arg(args.runs.to_string())
        .output()
        .context("running the DuckDB baseline")?;
    anyhow::ensure!(
        out.status.success(),
        "duckdb baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duck: Value = serde_json::from_slice(&out.stdout)?;
    for (name, wall, engine) in ours {
        let key = if name == "seed" { "seed" } else { "group" };
        let base = duck[key]["median_ms"].as_f64().context("duckdb timing")?;
        report.push(json!({"metric": format!("query on {} events: {name} (end to end through the SDK)", args.query_events),
            "value": wall, "unit": "ms", "baseline": base, "baseline_name": format!("DuckDB {}", duck["version"].as_str().unwrap_or("?")),
            "ratio": wall / base, "met": wall <= base && (name != "seed" || wall < 300.0), "engine_ms": engine}));
    }
    Ok(())
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
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = time::OffsetDateTime::now_utc().date().to_string();
    json!({"cpu": cpu, "cores": cores, "date": date})
}

fn markdown(machine: &Value, report: &[Value]) -> String {
    let mut s = format!(
        "Machine: {} ({} cores), {}\n\n| metric | auditlake | baseline | ratio | target met |\n| --- | --- | --- | --- | --- |\n",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["date"].as_str().unwrap_or("?")
    );
    for r in report {
        s.push_str(&format!(
            "| {} | {:.1} {} | {:.1} ({}) | {:.2} | {} |\n",
            r["metric"].as_str().unwrap_or(""),
            r["value"].as_f64().unwrap_or(0.0),
            r["unit"].as_str().unwrap_or(""),
            r["baseline"].as_f64().unwrap_or(0.0),
            r["baseline_name"].as_str().unwrap_or(""),
            r["ratio"].as_f64().unwrap_or(0.0),
            if r["met"].as_bool().unwrap_or(false) {
                "yes"
            } else {
                "no"
            },
        ));
    }
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let root = tempfile::Builder::new()
        .prefix("auditlake-lake-bench-")
        .tempdir()?;
    let mut report = Vec::new();
    ingest(&args, root.path(), &mut report).await?;
    queries(&args, root.path(), &mut report).await?;
    let machine = machine();
    let md = markdown(&machine, &report);
    println!("{md}");
    std::fs::write(args.out.join("lake-results.md"), &md)?;
    std::fs::write(
        args.out.join("lake-results.json"),
        serde_json::to_string_pretty(&json!({"machine": machine, "results": report}))?,
    )?;
    Ok(())
}
