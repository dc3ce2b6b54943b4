//! The load of the soak run: the ingest, search and lake-query workers, the
//! RSS sampler, and what they record per operation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_cloudtrail::types::QueryStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use uuid::Uuid;

use super::server::rss;
use super::{load, V_INGEST, V_SEARCH};

/// What one kind of operation did during the load.
#[derive(Debug, Default)]
pub(super) struct OpStats {
    /// Latency of every finished operation, in microseconds.
    pub(super) latencies: Vec<u64>,
    /// Operations that failed.
    pub(super) errors: usize,
    /// The first few failures, for the report.
    pub(super) samples: Vec<String>,
    /// Events acknowledged (ingest only).
    pub(super) events: usize,
}

impl OpStats {
    pub(super) fn fail(&mut self, us: u64, why: String) {
        self.latencies.push(us);
        self.errors += 1;
        if self.samples.len() < 5 {
            self.samples.push(why);
        }
    }
}

pub(super) type Shared = Arc<Mutex<OpStats>>;

/// Everything the load workers need.
#[derive(Clone)]
pub(super) struct Ctx {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) token: String,
    pub(super) group: Uuid,
    /// Orgs to ingest into and search: the group's and the standalone one.
    pub(super) orgs: Vec<Uuid>,
    pub(super) stop_at: Instant,
    /// Set when the deadline passed or a worker hit a fatal problem.
    pub(super) stop: Arc<AtomicBool>,
}

impl Ctx {
    pub(super) fn done(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.stop_at
    }

    /// A random tenant: each org, or the group, with equal chance.
    pub(super) fn tenant(&self, rng: &mut StdRng) -> (&'static str, Uuid) {
        let i = rng.random_range(0..=self.orgs.len());
        match self.orgs.get(i) {
            Some(org) => ("orgs", *org),
            None => ("groups", self.group),
        }
    }
}

/// POSTs a JSON:API document and returns the answer's status and body.
pub(super) async fn post(ctx: &Ctx, path: &str, body: String) -> anyhow::Result<(u16, String)> {
    let r = ctx
        .http
        .post(format!("{}{path}", ctx.base))
        .header("authorization", format!("token {}", ctx.token))
        .header("content-type", "application/vnd.api+json")
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

/// POSTs during set-up, where anything but 201 ends the run.
pub(super) async fn create(ctx: &Ctx, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, text) = post(ctx, path, body.to_string()).await?;
    if status != 201 {
        bail!("POST {path}: {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

pub(super) fn id_of(doc: &Value) -> anyhow::Result<Uuid> {
    doc["data"]["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| anyhow!("no data.id in {doc}"))
}

/// One ingest client: batches of `batch` events at `rate` events/s (its
/// share), into random tenants, until the deadline or `max_batches`. The
/// IDs the server acknowledged go to `accepted`.
pub(super) async fn ingest_worker(
    ctx: Ctx,
    worker: usize,
    batch: usize,
    rate: f64,
    max_batches: usize,
    stats: Shared,
    accepted: Arc<Mutex<Vec<Uuid>>>,
) {
    let mut rng = StdRng::seed_from_u64(7 + worker as u64);
    // Pacing by a schedule, not by sleeping after each answer, so a slow
    // answer does not lower the offered load (open loop, as real senders).
    let every = Duration::from_secs_f64(batch as f64 / rate.max(0.001));
    let mut next = Instant::now();
    for b in 0..max_batches {
        if ctx.done() {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let events = load::gen_events(&format!("soak-{worker}-{b}"), batch, rng.random());
        let (kind, tenant) = ctx.tenant(&mut rng);
        let path = format!("/rest/{kind}/{tenant}/audit_logs/events?version={V_INGEST}");
        let t = Instant::now();
        let res = post(&ctx, &path, load::batch_body(&events)).await;
        let us = t.elapsed().as_micros() as u64;
        let ids = match res {
            Ok((201, text)) => serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|doc| {
                    doc["data"].as_array().map(|items| {
                        items
                            .iter()
                            .filter_map(|e| e["id"].as_str().and_then(|s| Uuid::parse_str(s).ok()))
                            .collect::<Vec<_>>()
                    })
                })
                .filter(|ids| ids.len() == batch)
                .ok_or_else(|| "201 without one ID per event".to_owned()),
            Ok((status, text)) => Err(format!(
                "POST {path}: {status}: {}",
                &text[..text.len().min(300)]
            )),
            Err(e) => Err(format!("POST {path}: {e}")),
        };
        let mut s = stats.lock().expect("stats");
        match ids {
            Ok(ids) => {
                s.latencies.push(us);
                s.events += ids.len();
                accepted.lock().expect("accepted").extend(ids);
            }
            Err(why) => s.fail(us, why),
        }
    }
}

/// One search client: first pages (100 events) of random tenants' logs,
/// paced at `rate` requests/s, until the deadline or `max`.
pub(super) async fn search_worker(ctx: Ctx, worker: usize, rate: f64, max: usize, stats: Shared) {
    let mut rng = StdRng::seed_from_u64(1_000 + worker as u64);
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut next = Instant::now();
    for _ in 0..max {
        if ctx.done() {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let (kind, tenant) = ctx.tenant(&mut rng);
        let url = format!(
            "{}/rest/{kind}/{tenant}/audit_logs/search?version={V_SEARCH}",
            ctx.base
        );
        let t = Instant::now();
        let res = async {
            let r = ctx
                .http
                .get(&url)
                .header("authorization", format!("token {}", ctx.token))
                .send()
                .await?;
            let status = r.status().as_u16();
            let body = r.bytes().await?;
            anyhow::Ok((status, body))
        }
        .await;
        let us = t.elapsed().as_micros() as u64;
        let mut s = stats.lock().expect("stats");
        match res {
            Ok((200, _)) => s.latencies.push(us),
            Ok((status, body)) => s.fail(
                us,
                format!(
                    "GET {url}: {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            ),
            Err(e) => s.fail(us, format!("GET {url}: {e}")),
        }
    }
}

/// Runs one statement through `StartQuery` and pages every row of its
/// result with `GetQueryResults` (polling until the query ends, bounded by
/// `limit`). Each row is its columns by name.
pub(super) async fn query_rows(
    ct: &aws_sdk_cloudtrail::Client,
    sql: &str,
    limit: Duration,
) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let started = ct
        .start_query()
        .query_statement(sql)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "StartQuery: {}",
                aws_sdk_cloudtrail::error::DisplayErrorContext(e)
            )
        })?;
    let id = started.query_id().context("no QueryId")?.to_owned();
    let until = Instant::now() + limit;
    let mut rows = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = ct
            .get_query_results()
            .query_id(&id)
            .max_query_results(1000)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "GetQueryResults: {}",
                    aws_sdk_cloudtrail::error::DisplayErrorContext(e)
                )
            })?;
        match page.query_status() {
            Some(QueryStatus::Finished) => {
                for row in page.query_result_rows() {
                    rows.push(row.iter().flat_map(|col| col.clone()).collect());
                }
                match page.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => return Ok(rows),
                }
            }
            Some(QueryStatus::Queued | QueryStatus::Running) | None => {
                if Instant::now() > until {
                    bail!("query {id} still running after {limit:?}: {sql}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(other) => bail!(
                "query {id} ended {other:?}: {}",
                page.error_message().unwrap_or("")
            ),
        }
    }
}

/// One lake query client: alternates a group-by and a latest-ten query
/// over random stores, a second apart, until the deadline or `max`.
pub(super) async fn query_worker(
    ctx: Ctx,
    worker: usize,
    ct: aws_sdk_cloudtrail::Client,
    stores: Vec<String>,
    max: usize,
    stats: Shared,
) {
    let mut rng = StdRng::seed_from_u64(2_000 + worker as u64);
    for n in 0..max {
        if ctx.done() {
            break;
        }
        let store = &stores[rng.random_range(0..stores.len())];
        let sql = if n % 2 == 0 {
            format!("SELECT eventdata.eventname AS name, count(*) AS n FROM {store} GROUP BY eventdata.eventname")
        } else {
            format!("SELECT eventtime, eventdata.uid FROM {store} ORDER BY eventtime DESC LIMIT 10")
        };
        let t = Instant::now();
        let res = query_rows(&ct, &sql, Duration::from_secs(120)).await;
        let us = t.elapsed().as_micros() as u64;
        {
            let mut s = stats.lock().expect("stats");
            match res {
                Ok(_) => s.latencies.push(us),
                Err(e) => s.fail(us, format!("{e:#}")),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One RSS sample: seconds since the load started, `VmRSS` in bytes.
pub(super) type RssPoint = (f64, u64);

/// Samples the server's `VmRSS` every 10 s (the first at once) until
/// `stop` is set; bounded by `max` samples.
pub(super) async fn rss_series(
    pid: u32,
    start: Instant,
    stop: Arc<AtomicBool>,
    max: usize,
) -> Vec<RssPoint> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    for _ in 0..max {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match rss(pid) {
            Some((now, _)) => out.push((start.elapsed().as_secs_f64(), now)),
            None => break,
        }
    }
    out
}
