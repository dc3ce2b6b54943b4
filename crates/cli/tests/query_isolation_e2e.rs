//! Hostile lake queries against `auditlake serve`, whose API, forwarder
//! and lake share one process, on SQLite and PostgreSQL: each statement
//! ends `FAILED` or `TIMED_OUT` with a message, or finishes, while
//! `/healthz` and ingest keep answering within a second and the server's
//! own memory stays within 300 MiB of its resting size. The server runs
//! under an address-space cap, so a regression fails the test rather than
//! exhausting the machine.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use auditlake_store::testing::TestDb;
use auditlake_store::Backend;
use auditlake_testkit::wait_until_every;
use aws_sdk_cloudtrail::types::QueryStatus;
use serde_json::json;

mod common;

use common::{p99, ServedLake};

const REGION: &str = "us-east-1";

/// The statements, `{s}` standing for the store. Each may finish within
/// the limits, fail or time out, but nothing else.
fn corpus(s: &str) -> Vec<Vec<String>> {
    let one = |sql: String| vec![sql];
    vec![
        // The issue's own: an accumulator over a three-way cross join.
        one(format!(
            "select a.eventdata.uid as u, array_agg(b.eventdata.uid) as l from {s} a, {s} b, {s} c group by 1"
        )),
        one(format!(
            "select a.eventdata.uid as u, string_agg(b.eventdata.uid, ',') as l from {s} a, {s} b, {s} c group by 1"
        )),
        one(format!(
            "select count(distinct concat(a.eventid, b.eventid, c.eventid)) from {s} a, {s} b, {s} c"
        )),
        one(format!(
            "select count(distinct a.eventid || d.eventid) from {s} a, {s} b, {s} c, {s} d"
        )),
        // Huge values from scalar functions, alone and several at once.
        one(format!("select length(repeat('x', 1000000000)) from {s} limit 1")),
        vec![
            format!("select length(repeat('x', 900000000)) from {s} limit 1"),
            format!("select length(lpad('y', 900000000)) from {s} limit 1"),
            format!(
                "select length(concat(repeat('z', 400000000), repeat('w', 400000000))) from {s} limit 1"
            ),
        ],
        // An ORDER BY of a cross join without LIMIT.
        one(format!(
            "select a.eventid, b.eventid from {s} a, {s} b, {s} c order by a.eventtime, b.eventid"
        )),
        // A deep UNION ALL (past the bound: refused at StartQuery), and
        // the deepest allowed.
        one(
            (0..120)
                .map(|i| format!("select eventid, {i} as n from {s}"))
                .collect::<Vec<_>>()
                .join(" union all "),
        ),
        one(
            (0..=32)
                .map(|i| format!("select eventid, {i} as n from {s}"))
                .collect::<Vec<_>>()
                .join(" union all "),
        ),
        // Wide string concatenations.
        one(format!(
            "select concat({}) from {s} a, {s} b",
            vec!["a.eventdata.additionaleventdata"; 60].join(", ")
        )),
        // A pattern that backtracks exponentially in a backtracking engine
        // (DataFusion's regex crate is linear).
        one(format!(
            "select count(*) from {s} where regexp_like(repeat('a', 50000), '^(a+)+$')"
        )),
        // The largest LIMIT under the result cap.
        one(format!(
            "select a.eventid, b.eventdata from {s} a, {s} b limit 999999"
        )),
    ]
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("a memory figure")
}

async fn hostile_corpus(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let served = ServedLake::start(
        &data,
        &db.url,
        &[
            "--cloudtrail-endpoint",
            "local",
            "--query-memory-mib",
            "256",
            "--query-timeout-secs",
            "8",
            "--query-concurrency",
            "3",
            "--query-concurrency-per-account",
            "3",
        ],
    );
    let pid = served.server.0.id();
    // 4 GiB of address space for the server (its workers get less).
    let cap = Some(4u64 << 30);
    rustix::process::prlimit(
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::Resource::As,
        rustix::process::Rlimit {
            current: cap,
            maximum: cap,
        },
    )
    .unwrap();
    let (base, lake, token, org, key) = (
        served.api.clone(),
        served.lake.clone(),
        served.token.clone(),
        served.org.clone(),
        served.key.clone(),
    );
    let (store, channel) = (served.store_id.clone(), served.channel_arn.clone());
    let put = auditlake_cloudtrail::client::data(&lake, &key, REGION);
    for chunk in 0..10 {
        let events = (0..100).map(|i| {
            let n = chunk * 100 + i;
            let data = json!({"version": "1.0", "userIdentity": {"type": "User", "principalId": format!("u-{n}")},
                "eventSource": "test", "eventName": "org.test", "eventTime": "2026-12-01T00:00:00Z",
                "UID": format!("uid-{n}"), "recipientAccountId": key.account_id,
                "additionalEventData": {"n": n, "pad": "p".repeat(200)}});
            aws_sdk_cloudtraildata::types::AuditEvent::builder()
                .id(format!("e-{n}"))
                .event_data(data.to_string())
                .build()
                .unwrap()
        });
        let out = put
            .put_audit_events()
            .channel_arn(&channel)
            .external_id(&org)
            .set_audit_events(Some(events.collect()))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{out:?}");
    }
    let control = auditlake_cloudtrail::client::control(&lake, &key, REGION);
    let http = reqwest::Client::new();
    let ingest_url = format!("{base}/rest/orgs/{org}/audit_logs/events?version=2024-10-15");
    let mut n = 0;
    let mut probe = || {
        n += 1;
        let (http, base, ingest_url, token) = (
            http.clone(),
            base.clone(),
            ingest_url.clone(),
            token.clone(),
        );
        async move {
            let t = Instant::now();
            let health = http.get(format!("{base}/healthz")).send().await.unwrap();
            assert_eq!(health.status(), 200);
            let health_time = t.elapsed();
            let t = Instant::now();
            let body = json!({"data": {"type": "audit_event", "attributes": {
                "idempotency_id": format!("probe-{n}"), "event": "org.probe.test", "content": {"n": n}}}});
            let res = http
                .post(&ingest_url)
                .header("authorization", format!("token {token}"))
                .header("content-type", "application/vnd.api+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
            (health_time, t.elapsed())
        }
    };

    // At rest: a query has run once (the server's side of a query is
    // set up), and ingest has been measured.
    let warm = control
        .start_query()
        .query_statement(format!("select count(*) from {store}"))
        .send()
        .await
        .unwrap()
        .query_id
        .unwrap();
    let mut at_rest = Vec::new();
    loop {
        let d = control
            .describe_query()
            .query_id(&warm)
            .send()
            .await
            .unwrap();
        at_rest.push(probe().await.1);
        if d.query_status() == Some(&QueryStatus::Finished) {
            break;
        }
        assert_eq!(d.query_status(), Some(&QueryStatus::Running));
    }
    for _ in 0..50 {
        at_rest.push(probe().await.1);
    }
    let resting = rss_kib(pid, "VmRSS:");
    // The peak from here on.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let during = RefCell::new(Vec::new());
    let mut ended = Vec::new();
    for statements in corpus(&store) {
        let mut ids = Vec::new();
        for sql in &statements {
            let short: String = sql.chars().take(120).collect();
            match control.start_query().query_statement(sql).send().await {
                Ok(started) => ids.push((started.query_id.unwrap(), short)),
                // Refused at once, with the reason: nothing ran.
                Err(e) => {
                    let e = e.into_service_error();
                    assert_eq!(
                        e.meta().code(),
                        Some("InvalidQueryStatementException"),
                        "{short}: {e:?}"
                    );
                    ended.push(format!("Refused: {}", e.meta().message().unwrap_or("")));
                }
            }
        }
        for (id, sql) in ids {
            // Every look probes the server too: it must answer while the
            // statement runs.
            let d = wait_until_every(
                &format!("{sql} ends"),
                Duration::from_secs(60),
                Duration::from_millis(100),
                || {
                    let probing = probe();
                    let (during, control, id, sql) = (&during, &control, &id, &sql);
                    async move {
                        let (health, ingest) = probing.await;
                        assert!(
                            health < Duration::from_secs(1),
                            "{sql}: /healthz took {health:?}"
                        );
                        assert!(
                            ingest < Duration::from_secs(1),
                            "{sql}: ingest took {ingest:?}"
                        );
                        during.borrow_mut().push(ingest);
                        let d = control.describe_query().query_id(id).send().await.unwrap();
                        match d.query_status().unwrap() {
                            QueryStatus::Queued | QueryStatus::Running => None,
                            _ => Some(d),
                        }
                    }
                },
            )
            .await;
            let status = d.query_status().unwrap().clone();
            match status {
                QueryStatus::Finished => {}
                QueryStatus::Failed | QueryStatus::TimedOut => {
                    let message = d.error_message().unwrap_or_default().to_owned();
                    assert!(!message.is_empty(), "{sql}: {status:?} without a message");
                    // GetQueryResults answers normally afterwards.
                    let r = control
                        .get_query_results()
                        .query_id(&id)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.query_status(), Some(&status));
                    ended.push(format!("{status:?}: {message}"));
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }
    let during = during.into_inner();
    let peak = rss_kib(pid, "VmHWM:");
    assert!(
        peak < resting + 300 * 1024,
        "the server grew from {resting} KiB to a peak of {peak} KiB"
    );
    // The limits were met, not only lucky: some statements hit each.
    assert!(
        ended.iter().any(|m| m.contains("memory limit of 256 MiB")),
        "{ended:#?}"
    );
    assert!(
        ended.iter().any(|m| m.starts_with("TimedOut")),
        "{ended:#?}"
    );

    eprintln!(
        "{backend:?}: ingest p99 at rest {:?} over {}, during the hostile corpus {:?} over {}; outcomes: {ended:#?}",
        p99(at_rest.clone()),
        at_rest.len(),
        p99(during.clone()),
        during.len()
    );
    drop(served);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_cannot_take_serve_down_on_sqlite() {
    hostile_corpus(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_cannot_take_serve_down_on_postgres() {
    hostile_corpus(Backend::Postgres).await
}
