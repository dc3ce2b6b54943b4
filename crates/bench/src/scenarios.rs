//! The scenarios of issue 3's performance targets. Each one gets fresh
//! databases and its own server process, and reports [`Metric`]s.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use auditlake_core::{time_fmt, Actor, EventName, NewEvent, Scope};
use auditlake_store::{Backend, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::db::{self, FreshDb, RawRow};
use crate::load::{self, LoadResult, Req};
use crate::report::{Metric, Target};
use crate::server::{self, RssSampler, Server};

/// Sizes and limits of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `auditlake` release binary.
    pub bin: PathBuf,
    /// PostgreSQL database to issue `CREATE DATABASE` from.
    pub pg_admin: String,
    /// Output directory (server logs go here too).
    pub out: PathBuf,
    /// Scenario 1: events in all.
    pub events: usize,
    /// Scenario 1: events per request.
    pub batch_size: usize,
    /// Scenario 1: concurrent clients.
    pub batch_clients: usize,
    /// Scenario 2: requests (one event each).
    pub requests: usize,
    /// Scenario 2: concurrent clients.
    pub single_clients: usize,
    /// Scenario 2 and 3: unmeasured requests first.
    pub warmup: usize,
    /// Scenario 3: stored events.
    pub search_events: usize,
    /// Scenario 3: orgs they are spread over.
    pub orgs: usize,
    /// Scenario 3: search requests.
    pub searches: usize,
    /// Scenario 3: concurrent clients.
    pub search_clients: usize,
    /// Longest a load phase may run.
    pub deadline: Duration,
}

/// Short name of a backend for reports.
pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

const MIB: f64 = 1024.0 * 1024.0;
/// Issue 3's memory target.
const RSS_TARGET_MIB: f64 = 150.0;

/// Memory of the server during one scenario.
struct Memory {
    rest: u64,
    max_sampled: u64,
    hwm: u64,
}

impl Memory {
    fn metrics(&self, m: &mut Vec<Metric>, backend: Backend, scenario: &'static str) {
        let b = backend_name(backend);
        m.push(
            Metric::new(
                b,
                scenario,
                "server RSS at rest",
                self.rest as f64 / MIB,
                "MiB",
            )
            .target(Target::Below(RSS_TARGET_MIB)),
        );
        m.push(
            Metric::new(
                b,
                scenario,
                "server RSS max sampled under load",
                self.max_sampled as f64 / MIB,
                "MiB",
            )
            .target(Target::Below(RSS_TARGET_MIB)),
        );
        m.push(Metric::new(
            b,
            scenario,
            "server peak RSS (VmHWM)",
            self.hwm as f64 / MIB,
            "MiB",
        ));
    }
}

/// Starts the server on `db`, waits a second for it to settle and takes
/// its resting RSS.
async fn start_server(
    plan: &Plan,
    db: &FreshDb,
    backend: Backend,
    scenario: &str,
) -> anyhow::Result<(Server, u64)> {
    let log = plan
        .out
        .join(format!("server-{}-{scenario}.log", backend_name(backend)));
    let server = Server::start(&plan.bin, &db.url, log).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rest = server::rss(server.pid).map(|r| r.0).unwrap_or(0);
    Ok((server, rest))
}

/// Runs the unmeasured warm-up requests, then the measured ones, each
/// checked for failures; returns both results.
async fn warmed_load(
    what: &str,
    http: &reqwest::Client,
    token: &str,
    (warm, measured): (Vec<Req>, Vec<Req>),
    clients: usize,
    expect: u16,
    deadline: Duration,
) -> anyhow::Result<(LoadResult, LoadResult)> {
    let w = load::run_load(http, token, warm, clients, expect, deadline).await?;
    check_load(&format!("{what} warm-up"), &w)?;
    let r = load::run_load(http, token, measured, clients, expect, deadline).await?;
    check_load(what, &r)?;
    Ok((w, r))
}

fn check_load(what: &str, r: &LoadResult) -> anyhow::Result<()> {
    if r.errors > 0 {
        bail!(
            "{what}: {} of {} requests failed; first: {}",
            r.errors,
            r.ok + r.errors,
            r.first_error.as_deref().unwrap_or("?")
        );
    }
    if r.timed_out {
        eprintln!("  warning: {what} hit the deadline; measured what was sent");
    }
    Ok(())
}

/// Runs `f` with a fresh database that is removed afterwards, whatever
/// happened.
async fn with_db<T, F, Fut>(plan: &Plan, backend: Backend, f: F) -> anyhow::Result<T>
where
    F: FnOnce(FreshDb) -> Fut,
    Fut: std::future::Future<Output = (FreshDb, anyhow::Result<T>)>,
{
    let db = FreshDb::new(backend, &plan.pg_admin).await?;
    let (db, res) = f(db).await;
    db.cleanup().await;
    res
}

/// Scenario 1: batched ingest over HTTP, with the raw-database baseline
/// measured in the same run on the same rows.
pub async fn batch(plan: &Plan, backend: Backend) -> anyhow::Result<Vec<Metric>> {
    with_db(plan, backend, |db| async move {
        let r = batch_on(plan, backend, &db).await;
        (db, r)
    })
    .await
}

async fn batch_on(plan: &Plan, backend: Backend, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let b = backend_name(backend);
    let boot = server::bootstrap(&plan.bin, &db.url).await?;
    let events = load::gen_events(
        &format!("batch-{}", Uuid::new_v4().simple()),
        plan.events,
        1,
    );

    // Baseline: the same rows, as the server would store them, into a table
    // of the same shape in a fresh database.
    let ddl = db::audit_events_ddl(db).await?;
    let now = time_fmt::now_micros();
    let rows: Vec<RawRow> = events
        .iter()
        .enumerate()
        .map(|(i, e)| RawRow {
            seq: i as i64 + 1,
            id: auditlake_core::new_id().to_string(),
            created_us: now,
            event: e.event.to_owned(),
            org_id: Some(boot.org_id.to_string()),
            group_id: Some(boot.group_id.to_string()),
            user_id: Some(boot.user_id.to_string()),
            project_id: Some(e.project_id.clone()),
            content: e.content.to_string(),
            source_ip: Some("127.0.0.1".to_owned()),
            user_agent: Some(load::USER_AGENT.to_owned()),
        })
        .collect();
    let raw = with_db(plan, backend, |base| async {
        let r = match backend {
            Backend::Sqlite => db::sqlite_insert_baseline(&base, &ddl, &rows).await,
            Backend::Postgres => db::pg_copy_baseline(&base, &ddl, &rows).await,
        };
        (base, r)
    })
    .await
    .context("baseline")?;
    drop(rows);
    let raw_rate = plan.events as f64 / raw.as_secs_f64().max(1e-9);
    eprintln!(
        "  baseline ({}): {} rows in {:.2} s = {:.0} rows/s",
        match backend {
            Backend::Sqlite => "INSERT, one transaction",
            Backend::Postgres => "COPY csv",
        },
        plan.events,
        raw.as_secs_f64(),
        raw_rate
    );

    // The bodies are made before the server starts, so that a profile of
    // the server's first seconds shows ingest, not the client's JSON.
    let bodies: Vec<String> = events
        .chunks(plan.batch_size)
        .map(load::batch_body)
        .collect();
    drop(events);
    let (server, rest) = start_server(plan, db, backend, "batch").await?;
    let url = format!(
        "{}/rest/orgs/{}/audit_logs/events?version=2024-10-15",
        server.base, boot.org_id
    );
    let reqs: Vec<Req> = bodies
        .into_iter()
        .map(|body| Req::Post(url.clone(), body))
        .collect();
    let batches = reqs.len();
    let http = load::client(Duration::from_secs(120))?;
    let sampler = RssSampler::start(server.pid);
    let r = load::run_load(
        &http,
        &boot.token,
        reqs,
        plan.batch_clients,
        201,
        plan.deadline,
    )
    .await;
    let max_sampled = sampler.finish().await;
    let hwm = server::rss(server.pid).map(|r| r.1).unwrap_or(0);
    server.stop().await?;
    let r = r?;
    check_load("batched ingest", &r)?;
    let stored = db::count_events(&db.url, load::INGEST_EVENT).await? as usize;
    // Every request succeeded (or the run failed above); when the deadline
    // cut the run short, count what the server stored.
    let events_ok = if r.timed_out { stored } else { plan.events };
    if stored != events_ok || r.ok > batches {
        bail!("the server acknowledged {events_ok} events but stored {stored}");
    }
    let rate = events_ok as f64 / r.elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "  auditlake: {events_ok} events in {:.2} s = {rate:.0} events/s",
        r.elapsed.as_secs_f64()
    );
    let target = match backend {
        Backend::Sqlite => 50_000.0,
        Backend::Postgres => 30_000.0,
    };
    let mut m = vec![
        Metric::new(b, "batch ingest", "events/s", rate, "events/s")
            .baseline(raw_rate)
            .target(Target::AtLeast(target))
            .note(format!(
                "{} events, {} per request, {} clients; baseline: {}",
                events_ok,
                plan.batch_size,
                plan.batch_clients,
                match backend {
                    Backend::Sqlite => format!(
                        "plain INSERTs ({} rows each), one transaction, WAL, synchronous=NORMAL",
                        db::SQLITE_ROWS_PER_INSERT
                    ),
                    Backend::Postgres => "COPY FROM STDIN (csv), one statement".to_owned(),
                }
            )),
        Metric::new(
            b,
            "batch ingest",
            "ratio auditlake/raw",
            rate / raw_rate,
            "x",
        )
        .target(Target::AtLeast(0.5)),
        Metric::new(
            b,
            "batch ingest",
            "request latency p50",
            r.latency.p50,
            "ms",
        ),
        Metric::new(
            b,
            "batch ingest",
            "request latency p99",
            r.latency.p99,
            "ms",
        ),
    ];
    Memory {
        rest,
        max_sampled,
        hwm,
    }
    .metrics(&mut m, backend, "batch ingest");
    Ok(m)
}

/// Scenario 2: one event per request from many concurrent clients.
pub async fn single(plan: &Plan, backend: Backend) -> anyhow::Result<Vec<Metric>> {
    with_db(plan, backend, |db| async move {
        let r = single_on(plan, backend, &db).await;
        (db, r)
    })
    .await
}

async fn single_on(plan: &Plan, backend: Backend, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let b = backend_name(backend);
    let boot = server::bootstrap(&plan.bin, &db.url).await?;
    let (server, rest) = start_server(plan, db, backend, "single").await?;
    let url = format!(
        "{}/rest/orgs/{}/audit_logs/events?version=2024-10-15",
        server.base, boot.org_id
    );
    let events = load::gen_events(
        &format!("single-{}", Uuid::new_v4().simple()),
        plan.warmup + plan.requests,
        2,
    );
    let mut reqs: Vec<Req> = events
        .iter()
        .map(|e| Req::Post(url.clone(), load::single_body(e)))
        .collect();
    drop(events);
    let measured = reqs.split_off(plan.warmup.min(reqs.len()));
    let http = load::client(Duration::from_secs(30))?;
    let sampler = RssSampler::start(server.pid);
    let result = async {
        warmed_load(
            "single-event ingest",
            &http,
            &boot.token,
            (reqs, measured),
            plan.single_clients,
            201,
            plan.deadline,
        )
        .await
    }
    .await;
    let max_sampled = sampler.finish().await;
    let hwm = server::rss(server.pid).map(|r| r.1).unwrap_or(0);
    server.stop().await?;
    let (w, r) = result?;
    let stored = db::count_events(&db.url, load::INGEST_EVENT).await?;
    if stored as usize != w.ok + r.ok {
        bail!(
            "the server acknowledged {} events but stored {stored}",
            w.ok + r.ok
        );
    }
    eprintln!(
        "  auditlake: {} requests in {:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        r.ok,
        r.elapsed.as_secs_f64(),
        r.rate(),
        r.latency.p50,
        r.latency.p99
    );
    let note = format!(
        "{} requests (after {} warm-up), {} clients",
        r.ok, w.ok, plan.single_clients
    );
    let mut m = vec![
        Metric::new(b, "single-event ingest", "requests/s", r.rate(), "req/s")
            .target(Target::AtLeast(5_000.0))
            .note(note),
        Metric::new(b, "single-event ingest", "latency p50", r.latency.p50, "ms"),
        Metric::new(b, "single-event ingest", "latency p90", r.latency.p90, "ms"),
        Metric::new(b, "single-event ingest", "latency p99", r.latency.p99, "ms")
            .target(Target::Below(25.0)),
        Metric::new(b, "single-event ingest", "latency max", r.latency.max, "ms"),
    ];
    Memory {
        rest,
        max_sampled,
        hwm,
    }
    .metrics(&mut m, backend, "single-event ingest");
    Ok(m)
}

/// Event names of the search data set.
const SEARCH_EVENTS: &[&str] = &[
    "org.project.test",
    "org.project.add",
    "org.target.create",
    "org.webhook.add",
    "org.project.settings.edit",
];

/// Scenario 3: search over a large log spread over many orgs.
pub async fn search(plan: &Plan, backend: Backend) -> anyhow::Result<Vec<Metric>> {
    with_db(plan, backend, |db| async move {
        let r = search_on(plan, backend, &db).await;
        (db, r)
    })
    .await
}

async fn search_on(plan: &Plan, backend: Backend, db: &FreshDb) -> anyhow::Result<Vec<Metric>> {
    let b = backend_name(backend);
    let boot = server::bootstrap(&plan.bin, &db.url).await?;

    // Population, directly through the store while no server runs: the
    // orgs (inside the bootstrap group, so its admin may search each), then
    // the events in big appends, interleaved across orgs as live traffic
    // would be, with times spread over the last 20 hours (inside the
    // search's default window).
    let t0 = Instant::now();
    let store = Store::connect(&db.url).await?;
    let actor = Actor::user(boot.user_id);
    let mut orgs = vec![boot.org_id];
    for i in 1..plan.orgs.max(1) {
        let org = store
            .create_org(&format!("Bench Org {i}"), Some(boot.group_id), &actor)
            .await?;
        orgs.push(org.id);
    }
    let orgs_time = t0.elapsed();
    let t1 = Instant::now();
    let mut rng = StdRng::seed_from_u64(3);
    let now = time_fmt::now_micros();
    let window = 20 * 3600 * 1_000_000i64;
    let names: Vec<EventName> = SEARCH_EVENTS
        .iter()
        .map(|n| EventName::parse(n))
        .collect::<Result<_, _>>()?;
    const APPEND_BATCH: usize = 5_000;
    let mut done = 0usize;
    while done < plan.search_events {
        let n = APPEND_BATCH.min(plan.search_events - done);
        let batch: Vec<NewEvent> = (0..n)
            .map(|k| {
                let i = (done + k) as u64;
                NewEvent {
                    id: auditlake_core::new_id(),
                    created_us: now - rng.random_range(0..window),
                    event: names[rng.random_range(0..names.len())].clone(),
                    scope: Scope::Org(orgs[rng.random_range(0..orgs.len())]),
                    user_id: Some(boot.user_id),
                    project_id: Some(format!("proj-{}", i % 50)),
                    content: load::content(i, &mut rng).to_string(),
                    source_ip: Some("127.0.0.1".to_owned()),
                    user_agent: Some(load::USER_AGENT.to_owned()),
                    ingested_by: None,
                }
            })
            .collect();
        store.append(&batch).await?;
        done += n;
        if t1.elapsed() > plan.deadline * 4 {
            bail!("population took longer than {:?}", plan.deadline * 4);
        }
    }
    let load_time = t1.elapsed();
    store.close().await;
    if backend == Backend::Postgres {
        db::analyze(&db.url).await?;
    }
    let size = db.size_bytes().await.unwrap_or(0);
    eprintln!(
        "  populated {} orgs in {:.1} s and {} events in {:.1} s ({:.0} events/s); database {:.0} MiB",
        orgs.len(),
        orgs_time.as_secs_f64(),
        plan.search_events,
        load_time.as_secs_f64(),
        plan.search_events as f64 / load_time.as_secs_f64().max(1e-9),
        size as f64 / MIB
    );

    let (server, rest) = start_server(plan, db, backend, "search").await?;
    let http = load::client(Duration::from_secs(30))?;
    let url = |org: Uuid| {
        format!(
            "{}/rest/orgs/{org}/audit_logs/search?version=2023-09-11",
            server.base
        )
    };
    let sampler = RssSampler::start(server.pid);
    let result = async {
        // The first page of one org holds a full default page of events.
        let page = load::get_json(&http, &boot.token, &url(orgs[orgs.len() / 2])).await?;
        let items = page["data"]["items"].as_array().map_or(0, Vec::len);
        let expect = (plan.search_events / orgs.len()).clamp(1, 100) / 2;
        if items < expect {
            bail!("a search returned {items} items; expected about 100: {page}");
        }
        let mut pick = StdRng::seed_from_u64(4);
        let mut reqs = |n: usize| -> Vec<Req> {
            (0..n)
                .map(|_| Req::Get(url(orgs[pick.random_range(0..orgs.len())])))
                .collect()
        };
        let (warm, measured) = (reqs(plan.warmup), reqs(plan.searches));
        let (_, r) = warmed_load(
            "search",
            &http,
            &boot.token,
            (warm, measured),
            plan.search_clients,
            200,
            plan.deadline,
        )
        .await?;
        Ok::<_, anyhow::Error>((items, r))
    }
    .await;
    let max_sampled = sampler.finish().await;
    let hwm = server::rss(server.pid).map(|r| r.1).unwrap_or(0);
    server.stop().await?;
    let (items, r) = result?;
    eprintln!(
        "  auditlake: {} searches in {:.2} s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        r.ok,
        r.elapsed.as_secs_f64(),
        r.rate(),
        r.latency.p50,
        r.latency.p99
    );
    let note = format!(
        "{} events in {} orgs ({} per org), first page ({items} items), {} searches from {} clients",
        plan.search_events,
        orgs.len(),
        plan.search_events / orgs.len(),
        r.ok,
        plan.search_clients
    );
    let mut m = vec![
        Metric::new(b, "search", "latency p50", r.latency.p50, "ms").note(note),
        Metric::new(b, "search", "latency p90", r.latency.p90, "ms"),
        Metric::new(b, "search", "latency p99", r.latency.p99, "ms").target(Target::Below(50.0)),
        Metric::new(b, "search", "requests/s", r.rate(), "req/s"),
        Metric::new(
            b,
            "search",
            "population (store.append, direct)",
            plan.search_events as f64 / load_time.as_secs_f64().max(1e-9),
            "events/s",
        ),
        Metric::new(b, "search", "database size", size as f64 / MIB, "MiB"),
    ];
    Memory {
        rest,
        max_sampled,
        hwm,
    }
    .metrics(&mut m, backend, "search");
    Ok(m)
}
