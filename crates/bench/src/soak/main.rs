//! `auditlake-soak`: issue 7's load and soak run. One real release server
//! (`auditlake serve` on SQLite in a temporary directory, its lake enabled
//! and the forwarder sending to that lake) takes, at once and for
//! `--minutes`:
//!
//! - batched ingest into random orgs of a group, a standalone org and the
//!   group itself (paced, unique idempotency IDs);
//! - audit search on random orgs and the group;
//! - lake queries (`StartQuery` / `GetQueryResults` through the AWS SDK);
//! - the forwarder delivering to one group registration and two org
//!   integrations throughout.
//!
//! It records per-operation throughput, p50/p99 latency and errors (any
//! non-2xx answer, transport error or failed query), and the server's RSS
//! every 10 s (the run fails when its peak passes `--max-rss-mib`, 500 by
//! default). Afterwards it waits (bounded) until no integration lags,
//! then checks delivery exactly: for each integration, the event IDs the
//! lake's store holds (`eventdata.uid`, read with SQL through the SDK) must
//! equal the events of the server's own log that the integration's scope
//! rule selects from its creation on, with no duplicate; every event the
//! ingest answers acknowledged must be in that log; and `auditlake verify`
//! must find every hash chain intact. Results: a table on stdout,
//! `OUT/soak.md` and `OUT/soak.json`. The exit code is non-zero when the
//! run did not pass.

#[path = "../load.rs"]
#[expect(
    dead_code,
    reason = "shared with auditlake-bench, which uses the drivers this binary does not"
)]
mod load;
mod report;
#[path = "../server.rs"]
#[expect(
    dead_code,
    reason = "shared with auditlake-bench, which uses the parts this binary does not"
)]
mod server;
mod workers;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::Parser;
use serde_json::{json, Value};
use uuid::Uuid;

use auditlake_core::{time_fmt, Scope};
use auditlake_lake::AccessKey;
use auditlake_store::Store;

use report::{drain, integrations, machine, markdown, mib, Delivery};
use server::{rss, Server};
use workers::{
    create, id_of, ingest_worker, query_rows, query_worker, rss_series, search_worker, Ctx, Shared,
};

/// Version of the tenancy resources (orgs).
const V_TENANCY: &str = "2023-05-29";
/// Version of ingest.
const V_INGEST: &str = "2024-10-15";
/// Version of audit search.
const V_SEARCH: &str = "2023-09-11";
/// Version of the cloud-event integrations.
const V_CLOUD: &str = "2023-01-25~experimental";
/// Region of the lake's ARNs.
const REGION: &str = "us-east-1";

/// Runs ingest, search, forwarding and lake queries at once against one
/// release server, then checks every delivery (issue 7's soak).
#[derive(Debug, Parser)]
#[command(name = "auditlake-soak", version, about)]
struct Args {
    /// The auditlake binary to run (a release build)
    #[arg(long, default_value = "target/release/auditlake")]
    bin: PathBuf,
    /// Where results go
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// Minutes of load [default: 10; quick: 1]
    #[arg(long)]
    minutes: Option<f64>,
    /// A one-minute smoke run
    #[arg(long)]
    quick: bool,
    /// Orgs in the group (the bootstrap org included)
    #[arg(long, default_value_t = 5)]
    orgs: usize,
    /// Ingest: events per second in all, paced (open loop)
    #[arg(long, default_value_t = 1000)]
    ingest_rate: u64,
    /// Ingest: events per request
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Ingest: concurrent clients
    #[arg(long, default_value_t = 2)]
    ingest_clients: usize,
    /// Search: requests per second in all, paced
    #[arg(long, default_value_t = 20)]
    search_rate: u64,
    /// Search: concurrent clients
    #[arg(long, default_value_t = 2)]
    search_clients: usize,
    /// Lake queries: concurrent clients, each starting its next query a
    /// second after the previous one finished
    #[arg(long, default_value_t = 1)]
    query_clients: usize,
    /// Longest the wait for the integrations to catch up may take, in seconds
    #[arg(long, default_value_t = 600)]
    drain_secs: u64,
    /// The run fails when the server's peak RSS (VmHWM) exceeds this many
    /// MiB (issue 7: a server under load stays under 500 MiB)
    #[arg(long, default_value_t = 500)]
    max_rss_mib: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let minutes = args.minutes.unwrap_or(if args.quick { 1.0 } else { 10.0 });
    if !(minutes > 0.0 && minutes <= 120.0) {
        bail!("--minutes must be in (0, 120]");
    }
    std::fs::create_dir_all(&args.out)?;
    let bin = std::fs::canonicalize(&args.bin)
        .with_context(|| format!("no server binary at {}", args.bin.display()))?;
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path().to_path_buf();
    let db_url = format!("sqlite://{}/auditlake.db", data_dir.display());
    let started_at = time_fmt::format_micros(time_fmt::now_micros());

    // The lake's key is chosen here and handed over in the environment, so
    // this tool signs with it without reading the server's files.
    let key = AccessKey::generate();
    let boot = server::bootstrap(&bin, &db_url).await?;
    let data_dir_s = data_dir.display().to_string();
    let serve_args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--lake-listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir_s,
        "--database-url",
        &db_url,
        "--cloudtrail-endpoint",
        "local",
        "--event-source",
        "soak.auditlake",
        // The soak measures the server under sustained load, not the
        // per-token limit (one token drives everything).
        "--rate-limit-per-minute",
        "0",
    ];
    let envs = [
        ("AUDITLAKE_LAKE_ACCESS_KEY_ID", key.access_key_id.as_str()),
        (
            "AUDITLAKE_LAKE_SECRET_ACCESS_KEY",
            key.secret_access_key.as_str(),
        ),
        ("AUDITLAKE_LAKE_ACCOUNT_ID", key.account_id.as_str()),
    ];
    let (srv, lines) = Server::start_with(
        &bin,
        &serve_args,
        &envs,
        &["auditlake lake listening on "],
        args.out.join("soak-server.log"),
    )
    .await?;
    let lake_url = lines[1].clone();
    eprintln!("server {} (pid {}), lake {lake_url}", srv.base, srv.pid);
    let result = run(&args, minutes, &boot, &srv, &lake_url, &key, &db_url).await;
    let stopped = srv.stop().await;
    let mut report = result?;
    stopped?;

    // The hash chains, checked by the CLI once the server has stopped.
    let verify = tokio::process::Command::new(&bin)
        .args(["verify", "--json", "--database-url", &db_url])
        .output()
        .await?;
    let chains: Value = serde_json::from_slice(&verify.stdout).unwrap_or(Value::Null);
    let chains_n = chains.as_array().map_or(0, Vec::len);
    let broken = chains.as_array().map_or(usize::MAX, |a| {
        a.iter().filter(|c| !c["first_break"].is_null()).count()
    });
    let verify_ok = verify.status.success() && broken == 0 && chains_n > 0;
    report["verify"] = json!({"ok": verify_ok, "chains": chains_n, "broken": broken,
        "stderr": String::from_utf8_lossy(&verify.stderr).trim().to_owned()});
    let pass = report["pass"].as_bool().unwrap_or(false) && verify_ok;
    report["pass"] = json!(pass);
    report["date"] = json!(started_at);
    report["machine"] = machine();
    report["command"] = json!(std::env::args().collect::<Vec<_>>().join(" "));

    let md = markdown(&report);
    println!("{md}");
    std::fs::write(args.out.join("soak.md"), &md)?;
    std::fs::write(
        args.out.join("soak.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    if !pass {
        bail!(
            "the soak did not pass (see {})",
            args.out.join("soak.md").display()
        );
    }
    Ok(())
}

/// Set-up, load, drain and the delivery check, while the server runs.
async fn run(
    args: &Args,
    minutes: f64,
    boot: &server::Boot,
    srv: &Server,
    lake_url: &str,
    key: &AccessKey,
    db_url: &str,
) -> anyhow::Result<Value> {
    let http = load::client(Duration::from_secs(60))?;
    let secs = minutes * 60.0;
    let mut ctx = Ctx {
        http,
        base: srv.base.clone(),
        token: boot.token.clone(),
        group: boot.group_id,
        orgs: vec![boot.org_id],
        stop_at: Instant::now(),
        stop: Arc::new(AtomicBool::new(false)),
    };

    // 1. Set-up: more orgs in the group, one standalone org.
    for n in 1..args.orgs.max(2) {
        let doc = create(
            &ctx,
            &format!("/rest/orgs?version={V_TENANCY}"),
            json!({"data": {"type": "org", "attributes": {"name": format!("soak {n}"), "group_id": boot.group_id}}}),
        )
        .await?;
        ctx.orgs.push(id_of(&doc)?);
    }
    let standalone = id_of(
        &create(
            &ctx,
            &format!("/rest/orgs?version={V_TENANCY}"),
            json!({"data": {"type": "org", "attributes": {"name": "soak standalone"}}}),
        )
        .await?,
    )?;
    ctx.orgs.push(standalone);

    // A store, channel and External ID policy per integration, as the
    // console's flow makes them, then the integrations through REST.
    let ct = auditlake_cloudtrail::client::control(lake_url, key, REGION);
    let targets = [
        ("group registration", Scope::Group(boot.group_id)),
        ("org integration (in the group)", Scope::Org(ctx.orgs[1])),
        ("org integration (standalone)", Scope::Org(standalone)),
    ];
    let mut stores: HashMap<Uuid, (String, String)> = HashMap::new();
    for (n, (name, scope)) in targets.iter().enumerate() {
        let external = match scope {
            Scope::Group(g) => *g,
            Scope::Org(o) => *o,
            Scope::User => unreachable!("no user integrations"),
        };
        let setup = auditlake_cloudtrail::client::setup(
            &ct,
            &format!("soak-{n}"),
            &external.to_string(),
            &key.account_id,
            30,
        )
        .await?;
        let config = json!({"account_id": key.account_id, "channel_arn": setup.channel_arn});
        let doc = match scope {
            Scope::Group(g) => create(
                &ctx,
                &format!("/rest/groups/{g}/cloud_events/group_registrations?version={V_CLOUD}"),
                json!({"data": {"type": "group_registration", "attributes": {"type": "aws-cloudtrail", "name": name, "config": config}}}),
            )
            .await?,
            _ => create(
                &ctx,
                &format!("/rest/orgs/{external}/cloud_events/integrations?version={V_CLOUD}"),
                json!({"data": {"type": "org_integration", "attributes": {"type": "aws-cloudtrail", "name": name, "config": config}}}),
            )
            .await?,
        };
        stores.insert(
            id_of(&doc)?,
            (name.to_string(), setup.event_data_store_id.clone()),
        );
    }
    let store_ids: Vec<String> = stores.values().map(|(_, s)| s.clone()).collect();
    eprintln!(
        "set up: {} orgs in the group, 1 standalone, {} integrations; load for {minutes} min",
        ctx.orgs.len() - 1,
        stores.len()
    );

    // 2. The load, all at once.
    let start = Instant::now();
    ctx.stop_at = start + Duration::from_secs_f64(secs);
    let ingest = Shared::default();
    let search = Shared::default();
    let queries = Shared::default();
    let accepted = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let rss_stop = Arc::new(AtomicBool::new(false));
    let rss_task = tokio::spawn(rss_series(
        srv.pid,
        start,
        rss_stop.clone(),
        (secs / 10.0) as usize + 10,
    ));
    let mut tasks = Vec::new();
    let clients = args.ingest_clients.max(1);
    let share = args.ingest_rate as f64 / clients as f64;
    // Bounds by count as well as by the deadline: twice the paced amount.
    let max_batches = (share * secs / args.batch.max(1) as f64 * 2.0) as usize + 2;
    for w in 0..clients {
        tasks.push(tokio::spawn(ingest_worker(
            ctx.clone(),
            w,
            args.batch.clamp(1, 1000),
            share,
            max_batches,
            ingest.clone(),
            accepted.clone(),
        )));
    }
    let sclients = args.search_clients.max(1);
    let sshare = args.search_rate as f64 / sclients as f64;
    for w in 0..sclients {
        tasks.push(tokio::spawn(search_worker(
            ctx.clone(),
            w,
            sshare,
            (sshare * secs * 2.0) as usize + 2,
            search.clone(),
        )));
    }
    for w in 0..args.query_clients {
        tasks.push(tokio::spawn(query_worker(
            ctx.clone(),
            w,
            ct.clone(),
            store_ids.clone(),
            secs as usize + 2,
            queries.clone(),
        )));
    }
    // A minute's progress on stderr, so a long run shows it is alive.
    let progress = {
        let (ingest, search, queries, stop) = (
            ingest.clone(),
            search.clone(),
            queries.clone(),
            ctx.stop.clone(),
        );
        let pid = srv.pid;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            tick.tick().await;
            for _ in 0..240 {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = |s: &Shared| {
                    let s = s.lock().expect("stats");
                    (s.latencies.len(), s.errors)
                };
                eprintln!(
                    "{:>5.0} s: ingest {:?}, search {:?}, queries {:?} (done, errors); RSS {:.1} MiB",
                    start.elapsed().as_secs_f64(),
                    n(&ingest),
                    n(&search),
                    n(&queries),
                    rss(pid).map_or(0.0, |r| mib(r.0))
                );
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    let load_secs = start.elapsed().as_secs_f64();
    ctx.stop.store(true, Ordering::Relaxed);
    progress.abort();

    // 3. Catch-up, then the delivery check. The RSS series keeps running
    //    through the drain: the forwarder's memory while it catches up
    //    belongs to the picture.
    let store = Store::connect(db_url).await?;
    let drained = drain(&store, Duration::from_secs(args.drain_secs)).await;
    rss_stop.store(true, Ordering::Relaxed);
    let rss_points = rss_task.await?;
    let hwm = rss(srv.pid).map_or(0, |r| r.1);
    let drain_secs = match &drained {
        Ok(d) => Some(d.as_secs_f64()),
        Err(e) => {
            eprintln!("drain: {e:#}");
            None
        }
    };
    eprintln!("drained: {drain_secs:?} s; checking deliveries");

    // The whole log, read after the catch-up: nothing appends any more (the
    // drain read the database, not the API).
    let mut log = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_log(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        log.extend(page);
    }
    let in_log: HashSet<Uuid> = log.iter().map(|e| e.id).collect();
    let accepted = std::mem::take(&mut *accepted.lock().expect("accepted"));
    let accepted_missing = accepted.iter().filter(|id| !in_log.contains(id)).count();

    let mut deliveries = Vec::new();
    for i in integrations(&store).await? {
        let (name, store_id) = stores
            .get(&i.id)
            .cloned()
            .ok_or_else(|| anyhow!("an integration the soak did not create: {}", i.id))?;
        // Integrations start at the head: the first event each receives is
        // its own creation.
        let tag = format!("\"integrationPublicId\":\"{}\"", i.id);
        let first = log
            .iter()
            .find(|e| e.event.ends_with(".create") && e.content.contains(&tag))
            .map(|e| e.seq)
            .ok_or_else(|| anyhow!("no creation event for integration {}", i.id))?;
        let expected: HashSet<Uuid> = log
            .iter()
            .filter(|e| e.seq >= first && i.receives(e))
            .map(|e| e.id)
            .collect();
        // Sixteen queries by the ID's last hex digit, so no result comes
        // near the lake's cap on rows per query (1,000,000) however long
        // the run.
        let lake = ctx_ct(lake_url, key);
        let mut rows = Vec::new();
        for h in "0123456789abcdef".chars() {
            rows.extend(
                query_rows(
                    &lake,
                    &format!(
                        "SELECT eventdata.uid AS u FROM {store_id} WHERE eventdata.uid LIKE '%{h}'"
                    ),
                    Duration::from_secs(600),
                )
                .await?,
            );
        }
        let mut seen = HashSet::with_capacity(rows.len());
        let (mut duplicates, mut unexpected) = (0, 0);
        for r in &rows {
            let id = r.get("u").and_then(|s| Uuid::parse_str(s).ok());
            match id {
                Some(id) if !seen.insert(id) => duplicates += 1,
                Some(id) if !expected.contains(&id) => unexpected += 1,
                Some(_) => {}
                None => unexpected += 1,
            }
        }
        let missing = expected.iter().filter(|id| !seen.contains(id)).count();
        deliveries.push(Delivery {
            name,
            scope: match i.scope {
                Scope::Org(o) => format!("org {o}"),
                Scope::Group(g) => format!("group {g}"),
                Scope::User => "user".into(),
            },
            store_id,
            expected: expected.len(),
            rows: rows.len(),
            missing,
            duplicates,
            unexpected,
            status: i.status.as_str().to_owned(),
        });
    }
    deliveries.sort_by(|a, b| a.name.cmp(&b.name));
    store.close().await;

    let op = |name: &str, s: &Shared, unit_events: bool| {
        let s = s.lock().expect("stats");
        let l = load::latency(s.latencies.clone());
        let ok = s.latencies.len() - s.errors;
        json!({
            "operation": name,
            "ok": ok,
            "errors": s.errors,
            "error_samples": s.samples,
            "per_s": ok as f64 / load_secs,
            "events": if unit_events { json!(s.events) } else { Value::Null },
            "events_per_s": if unit_events { json!(s.events as f64 / load_secs) } else { Value::Null },
            "p50_ms": l.p50, "p90_ms": l.p90, "p99_ms": l.p99, "max_ms": l.max,
        })
    };
    let ops = vec![
        op(
            &format!(
                "ingest ({} events/request, {} clients, {} events/s offered)",
                args.batch, clients, args.ingest_rate
            ),
            &ingest,
            true,
        ),
        op(
            &format!(
                "search (first page, {} clients, {} requests/s offered)",
                sclients, args.search_rate
            ),
            &search,
            false,
        ),
        op(
            &format!(
                "lake query (StartQuery..GetQueryResults, {} clients)",
                args.query_clients
            ),
            &queries,
            false,
        ),
    ];
    let errors: u64 = ops.iter().map(|o| o["errors"].as_u64().unwrap_or(0)).sum();
    let (rss_min, rss_max) = rss_points
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let rss_ok = mib(hwm) <= args.max_rss_mib as f64;
    let pass = errors == 0
        && rss_ok
        && drain_secs.is_some()
        && accepted_missing == 0
        && deliveries.iter().all(Delivery::ok)
        && deliveries.len() == stores.len();
    Ok(json!({
        "minutes": minutes,
        "load_seconds": load_secs,
        "orgs_in_group": ctx.orgs.len() - 1,
        "operations": ops,
        "errors": errors,
        "events_in_log": log.len(),
        "accepted_events": accepted.len(),
        "accepted_missing_from_log": accepted_missing,
        "drain_seconds": drain_secs,
        "drain_error": drained.err().map(|e| format!("{e:#}")),
        "rss": {
            "interval_s": 10,
            "min_mib": if rss_points.is_empty() { 0.0 } else { mib(rss_min) },
            "max_mib": mib(rss_max),
            "peak_hwm_mib": mib(hwm),
            "bound_mib": args.max_rss_mib,
            "within_bound": rss_ok,
            "series": rss_points.iter().map(|(t, b)| json!([(*t * 10.0).round() / 10.0, (mib(*b) * 10.0).round() / 10.0])).collect::<Vec<_>>(),
        },
        "deliveries": deliveries.iter().map(|d| json!({
            "integration": d.name, "scope": d.scope, "store": d.store_id, "status": d.status,
            "expected": d.expected, "stored": d.rows, "missing": d.missing,
            "duplicates": d.duplicates, "unexpected": d.unexpected, "ok": d.ok(),
        })).collect::<Vec<_>>(),
        "pass": pass,
    }))
}

/// A control-plane client for the delivery check (a fresh one, so its
/// connections are not shared with the load's).
fn ctx_ct(lake_url: &str, key: &AccessKey) -> aws_sdk_cloudtrail::Client {
    auditlake_cloudtrail::client::control(lake_url, key, REGION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_renders_failures_visibly() {
        let r = json!({"pass": false, "date": "d", "machine": {"nproc": 2, "cpu": "x", "memory_gib": 1.0},
            "command": "c", "load_seconds": 1.0, "orgs_in_group": 2, "events_in_log": 3,
            "accepted_events": 2, "accepted_missing_from_log": 0,
            "operations": [{"operation": "ingest", "ok": 1, "errors": 1, "error_samples": ["status 500"],
                "per_s": 1.0, "events_per_s": 100.0, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0}],
            "drain_seconds": null, "drain_error": "5 events still waiting",
            "deliveries": [{"integration": "g", "scope": "group x", "status": "healthy", "expected": 3,
                "stored": 2, "missing": 1, "duplicates": 0, "unexpected": 0, "ok": false}],
            "verify": {"ok": true, "chains": 4, "broken": 0},
            "rss": {"min_mib": 1.0, "max_mib": 2.0, "peak_hwm_mib": 600.0, "bound_mib": 500, "within_bound": false, "series": [[0.0, 1.0]]}});
        let md = markdown(&r);
        assert!(md.starts_with("# Soak: FAIL"), "{md}");
        assert!(md.contains("status 500"), "{md}");
        assert!(md.contains("NOT drained"), "{md}");
        assert!(md.contains("| **no** |"), "{md}");
        assert!(md.contains("(bound 500: EXCEEDED)"), "{md}");
    }
}
