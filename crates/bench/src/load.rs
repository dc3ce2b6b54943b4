//! Generated events and the HTTP load drivers. Every driver is bounded by a
//! request count and a deadline, and talks only to the loopback server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::Mutex;

/// User agent of every request (and so of every ingested event).
pub const USER_AGENT: &str = "auditlake-bench/0.1";

/// Target size of an event's `content`, in bytes of JSON.
pub const CONTENT_BYTES: usize = 300;

/// A CI-result payload of about [`CONTENT_BYTES`] bytes.
pub fn content(i: u64, rng: &mut StdRng) -> Value {
    let commit: String = (0..20)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect();
    let passed = rng.random_range(50..2000u32);
    let mut v = json!({
        "projectName": format!("proj-{}", i % 50),
        "origin": "github",
        "branch": "main",
        "commit": commit,
        "result": if rng.random_bool(0.9) { "pass" } else { "fail" },
        "durationMs": rng.random_range(100..600_000u32),
        "runner": format!("runner-{:02}", i % 16),
        "tests": {"passed": passed, "failed": rng.random_range(0..5u32), "skipped": rng.random_range(0..20u32)},
        "url": format!("https://ci.example.test/builds/{i}"),
    });
    let len = v.to_string().len();
    // `,"note":""` adds 10 bytes around the filler.
    if len + 10 < CONTENT_BYTES {
        v["note"] = json!("x".repeat(CONTENT_BYTES - len - 10));
    }
    v
}

/// One event to ingest.
#[derive(Debug, Clone)]
pub struct GenEvent {
    /// Client idempotency ID.
    pub idempotency_id: String,
    /// Event name.
    pub event: &'static str,
    /// Project.
    pub project_id: String,
    /// Payload.
    pub content: Value,
}

/// The event name every ingest scenario uses.
pub const INGEST_EVENT: &str = "org.project.test";

/// `n` events with unique idempotency IDs (prefixed by `tag`).
pub fn gen_events(tag: &str, n: usize, seed: u64) -> Vec<GenEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n as u64)
        .map(|i| GenEvent {
            idempotency_id: format!("{tag}-{i}"),
            event: INGEST_EVENT,
            project_id: format!("proj-{}", i % 50),
            content: content(i, &mut rng),
        })
        .collect()
}

fn event_json(e: &GenEvent) -> Value {
    json!({
        "type": "audit_event",
        "attributes": {
            "idempotency_id": e.idempotency_id,
            "event": e.event,
            "project_id": e.project_id,
            "content": e.content,
        }
    })
}

/// A JSON:API ingest body holding `events` as an array.
pub fn batch_body(events: &[GenEvent]) -> String {
    json!({ "data": events.iter().map(event_json).collect::<Vec<_>>() }).to_string()
}

/// A JSON:API ingest body holding one event object.
pub fn single_body(e: &GenEvent) -> String {
    json!({ "data": event_json(e) }).to_string()
}

/// An HTTP client for the loopback server: no proxy (so nothing leaves the
/// machine), keep-alive connections, a timeout per request.
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .build()?)
}

/// Latency statistics, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Percentiles of latencies given in microseconds (nearest rank).
pub fn latency(mut us: Vec<u64>) -> Latency {
    if us.is_empty() {
        return Latency::default();
    }
    us.sort_unstable();
    let at = |q: f64| -> f64 {
        let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1] as f64 / 1000.0
    };
    Latency {
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// What one load run did.
#[derive(Debug, Clone)]
pub struct LoadResult {
    /// Requests answered with the expected status.
    pub ok: usize,
    /// Requests that failed (other status or transport error).
    pub errors: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
    /// Per-request latency.
    pub latency: Latency,
    /// Whether the deadline cut the run short.
    pub timed_out: bool,
}

impl LoadResult {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One request of a load run.
pub enum Req {
    /// POST this body to the URL.
    Post(String, String),
    /// GET the URL.
    Get(String),
}

/// Sends `requests` from `clients` concurrent tasks (each takes the next
/// unsent request), expecting `expect` as the status. Stops early at
/// `deadline` (requests not sent by then are left out of the result).
pub async fn run_load(
    http: &reqwest::Client,
    token: &str,
    requests: Vec<Req>,
    clients: usize,
    expect: u16,
    deadline: Duration,
) -> anyhow::Result<LoadResult> {
    let total = requests.len();
    let queue: Arc<Vec<Mutex<Option<Req>>>> =
        Arc::new(requests.into_iter().map(|r| Mutex::new(Some(r))).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let auth = format!("token {token}");
    let start = Instant::now();
    let stop_at = start + deadline;
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (queue, next, http, auth) = (queue.clone(), next.clone(), http.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            let mut timed_out = false;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if Instant::now() >= stop_at {
                    timed_out = true;
                    break;
                }
                let taken = queue[i].lock().ok().and_then(|mut slot| slot.take());
                let Some(req) = taken else {
                    continue;
                };
                let builder = match req {
                    Req::Post(url, body) => http
                        .post(url)
                        .header("content-type", "application/vnd.api+json")
                        .body(body),
                    Req::Get(url) => http.get(url),
                };
                let t = Instant::now();
                let res = builder.header("authorization", &auth).send().await;
                let outcome = match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        match r.bytes().await {
                            Ok(_) if status == expect => Ok(()),
                            Ok(body) => Err(format!(
                                "status {status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(300)])
                            )),
                            Err(e) => Err(format!("reading the body: {e}")),
                        }
                    }
                    Err(e) => Err(format!("request: {e}")),
                };
                lat.push(t.elapsed().as_micros() as u64);
                if let Err(e) = outcome {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
            (lat, errors, first_error, timed_out)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    let (mut errors, mut first_error, mut timed_out) = (0, None, false);
    for t in tasks {
        let (l, e, f, to) = t.await?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
        timed_out |= to;
    }
    let elapsed = start.elapsed();
    let sent = lat.len();
    Ok(LoadResult {
        ok: sent - errors,
        errors,
        first_error,
        elapsed,
        latency: latency(lat),
        timed_out,
    })
}

/// GETs `url` and returns the JSON body, failing on any status but 200.
pub async fn get_json(http: &reqwest::Client, token: &str, url: &str) -> anyhow::Result<Value> {
    let res = http
        .get(url)
        .header("authorization", format!("token {token}"))
        .send()
        .await?;
    let status = res.status();
    let body = res.text().await?;
    if status.as_u16() != 200 {
        bail!("GET {url}: {status}: {body}");
    }
    serde_json::from_str(&body).map_err(|e| anyhow!("GET {url}: bad JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_about_300_bytes() {
        let mut rng = StdRng::seed_from_u64(1);
        for i in [0, 7, 99_999, 12_345_678] {
            let n = content(i, &mut rng).to_string().len();
            assert!((CONTENT_BYTES - 5..=CONTENT_BYTES + 40).contains(&n), "{n}");
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let l = latency((1..=100).map(|i| i * 1000).collect());
        assert_eq!((l.p50, l.p90, l.p99, l.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(latency(vec![]).p99, 0.0);
    }
}
