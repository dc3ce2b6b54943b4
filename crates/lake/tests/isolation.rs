//! A query can fail, but it cannot take the lake down: each runs in a
//! worker process under the query limits. Statements that allocate outside
//! DataFusion's memory pool, run for too long, or kill their process end
//! `FAILED` or `TIMED_OUT` with a message while the lake keeps answering;
//! one account's queries cannot take every slot.

mod common;

use std::time::Duration;

use auditlake_lake::QueryLimits;
use auditlake_testkit::wait_until;
use aws_sdk_cloudtrail::types::QueryStatus;

use common::*;

fn limits() -> QueryLimits {
    QueryLimits {
        max_concurrent: 2,
        max_concurrent_per_account: 1,
        timeout: Duration::from_secs(3),
        memory_limit: 256 << 20,
        ..QueryLimits::default()
    }
}

/// Caps this test process's heap at 4 GiB, so that a query that escaped
/// its worker fails the test instead of exhausting the machine.
fn cap_memory() {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let cap = Some(4u64 << 30);
    setrlimit(
        Resource::Data,
        Rlimit {
            current: cap,
            maximum: cap,
        },
    )
    .unwrap();
}

/// A lake with one store of `n` events; the lake and the store's ID.
async fn lake_with_events(limits: QueryLimits, n: usize) -> (TestLake, String) {
    cap_memory();
    let t = TestLake::start_with(tempfile::tempdir().unwrap(), limits).await;
    let s = setup(&t.control(OWNER), "hostile", None).await;
    put_events(&t.data(OWNER), &s.channel_arn, n).await;
    (t, s.store_id)
}

/// A statement that streams billions of rows in little memory: it runs
/// until it is stopped.
fn endless(s: &str) -> String {
    format!("select sum(length(concat(a.eventid, b.eventid))) from {s} a, {s} b, {s} c, {s} d")
}

async fn start(c: &aws_sdk_cloudtrail::Client, sql: &str) -> String {
    c.start_query()
        .query_statement(sql)
        .send()
        .await
        .unwrap()
        .query_id
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_built_outside_the_memory_pool_fails_the_query_with_its_limit() {
    let (t, s) = lake_with_events(limits(), 10).await;
    let c = t.control(OWNER);
    let id = start(
        &c,
        &format!("select length(repeat('x', 1000000000)) from {s} limit 1"),
    )
    .await;
    let (status, message) = wait_ended(&c, &id).await;
    assert_eq!(status, QueryStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some("The query exceeded its memory limit of 256 MiB.")
    );
    // GetQueryResults answers normally, with the reason.
    let r = c.get_query_results().query_id(&id).send().await.unwrap();
    assert_eq!(r.query_status(), Some(&QueryStatus::Failed));
    assert!(r.error_message().unwrap().contains("memory limit"));
    // And the lake goes on answering queries.
    let rows = run_query(&c, &format!("select count(*) from {s}")).await;
    assert_eq!(rows, [[("count(*)".to_owned(), "10".to_owned())]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accumulator_past_the_limit_fails_and_a_long_query_times_out() {
    let (t, s) = lake_with_events(limits(), 300).await;
    let c = t.control(OWNER);
    let agg = start(
        &c,
        &format!(
            "select a.eventdata.uid as u, array_agg(concat(b.eventdata.uid, repeat('x', 1000))) as l \
             from {s} a, {s} b, {s} c group by 1"
        ),
    )
    .await;
    let (status, message) = wait_ended(&c, &agg).await;
    assert!(
        status == QueryStatus::Failed
            && message
                .as_deref()
                .unwrap()
                .contains("memory limit of 256 MiB")
            || status == QueryStatus::TimedOut,
        "{status:?} {message:?}"
    );
    let before = worker_pids();
    let long = start(&c, &endless(&s)).await;
    // Its worker: one that was not running before (other tests' lakes
    // keep idle workers of their own).
    let ours = wait_until(
        "a worker runs the query",
        Duration::from_secs(2),
        || async {
            let new: Vec<String> = worker_pids()
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            (!new.is_empty()).then_some(new)
        },
    )
    .await;
    let (status, message) = wait_ended(&c, &long).await;
    assert_eq!(status, QueryStatus::TimedOut, "{message:?}");
    assert_eq!(
        message.as_deref(),
        Some("The query ran longer than 3 seconds.")
    );
    // Its process is gone, not left running in the background.
    wait_until(
        "the timed-out worker is gone",
        Duration::from_secs(10),
        || async { !worker_pids().iter().any(|p| ours.contains(p)) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_fails_only_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = auditlake_lake::LakeConfig::new(dir.path());
    config.keys = vec![key(OWNER)];
    // A "worker" that kills itself with SIGSEGV as soon as it starts.
    config.worker = auditlake_lake::QueryWorker {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "kill -SEGV $$".into()],
    };
    let lake = auditlake_lake::Lake::open(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = lake.clone();
    tokio::spawn(async move {
        auditlake_lake::wire::server::serve(listener, served, std::future::pending())
            .await
            .unwrap()
    });
    let c = control_client(&url, &key(OWNER));
    let s = setup(&c, "dies", None).await;
    let id = start(&c, &format!("select count(*) from {}", s.store_id)).await;
    let (status, message) = wait_ended(&c, &id).await;
    assert_eq!(status, QueryStatus::Failed);
    assert_eq!(
        message.as_deref(),
        Some("The query's process ended unexpectedly (signal 11).")
    );
    // The lake itself is fine.
    c.list_event_data_stores().send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_cannot_take_every_slot() {
    let (t, s) = lake_with_events(
        QueryLimits {
            timeout: Duration::from_secs(60),
            ..limits()
        },
        300,
    )
    .await;
    let owner = t.control(OWNER);
    let first = start(&owner, &endless(&s)).await;
    let second = start(&owner, &endless(&s)).await;
    let describe = |c: aws_sdk_cloudtrail::Client, id: String| async move {
        c.describe_query()
            .query_id(id)
            .send()
            .await
            .unwrap()
            .query_status
            .unwrap()
    };
    assert_eq!(
        describe(owner.clone(), first.clone()).await,
        QueryStatus::Running
    );
    assert_eq!(
        describe(owner.clone(), second.clone()).await,
        QueryStatus::Queued,
        "the owner has its one slot"
    );

    // The partner's own store, queried while the owner holds its maximum:
    // it starts at once.
    let partner = t.control(PARTNER);
    let p = setup(&partner, "partner", None).await;
    let started = tokio::time::Instant::now();
    let theirs = start(&partner, &format!("select count(*) from {}", p.store_id)).await;
    assert_ne!(
        describe(partner.clone(), theirs.clone()).await,
        QueryStatus::Queued
    );
    wait_finished(&partner, &theirs).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        describe(owner.clone(), second.clone()).await,
        QueryStatus::Queued
    );
    for id in [first, second] {
        owner.cancel_query().query_id(id).send().await.unwrap();
    }
}

/// One generated statement: joins of up to four copies of the store, an
/// aggregate (with or without a group key) over an expression that may
/// build large values, and an optional order and limit.
fn statement(s: &str) -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let s = s.to_owned();
    (
        1usize..=4,
        any::<bool>(),
        0usize..8,
        0usize..6,
        any::<bool>(),
        prop::option::of(prop_oneof![Just(1u32), Just(100), Just(999_999)]),
        any::<[u8; 4]>(),
    )
        .prop_map(move |(copies, joined, agg, expr, grouped, limit, picks)| {
            let t = |k: u8| format!("t{}", usize::from(k) % copies);
            let expr = match expr {
                0 => format!("{}.eventid", t(picks[0])),
                1 => format!("{}.eventdata.uid", t(picks[0])),
                2 => format!(
                    "concat({}.eventid, {}.eventdata.uid)",
                    t(picks[0]),
                    t(picks[1])
                ),
                3 => format!(
                    "repeat({}.eventid, {})",
                    t(picks[0]),
                    [1, 10, 1000, 100_000][usize::from(picks[1]) % 4]
                ),
                4 => format!(
                    "lpad({}.eventid, {})",
                    t(picks[0]),
                    [10, 10_000, 10_000_000][usize::from(picks[1]) % 3]
                ),
                _ => format!("{}.eventdata.additionaleventdata", t(picks[0])),
            };
            let aggregate = match agg {
                0 => "count(*)".to_owned(),
                1 => format!("count(distinct {expr})"),
                2 => format!("array_agg({expr})"),
                3 => format!("string_agg({expr}, ',')"),
                4 => format!("min({expr})"),
                5 => format!("max({expr})"),
                6 => format!("sum(length({expr}))"),
                _ => format!("approx_distinct({expr})"),
            };
            let mut from = format!("{s} t0");
            for i in 1..copies {
                if joined {
                    from.push_str(&format!(" join {s} t{i} on t{i}.eventid >= t0.eventid"));
                } else {
                    from.push_str(&format!(", {s} t{i}"));
                }
            }
            let key = format!("{}.eventdata.uid", t(picks[2]));
            let mut sql = if grouped {
                format!("select {key} as k, {aggregate} as v from {from} group by 1")
            } else {
                format!("select {aggregate} as v from {from}")
            };
            if picks[3] % 2 == 0 {
                sql.push_str(" order by v desc");
            }
            if let Some(n) = limit {
                sql.push_str(&format!(" limit {n}"));
            }
            sql
        })
}

/// The resident set of a process, in bytes.
fn rss(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Generated joins and aggregates, run (not only planned) under the
/// limits: each ends finished, failed with a message or timed out; every
/// worker seen runs under the memory limit, and the lake's own process
/// grows by no more than a bound.
#[test]
fn generated_joins_and_aggregates_end_within_the_limits() {
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let limits = QueryLimits {
        timeout: Duration::from_secs(2),
        memory_limit: 192 << 20,
        ..limits()
    };
    let (t, s) = runtime.block_on(lake_with_events(limits.clone(), 40));
    let c = t.control(OWNER);
    let me = std::process::id().to_string();
    let resting = rss(&me);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let seen_workers = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&statement(&s), |sql| {
            runtime.block_on(async {
                let id = match c.start_query().query_statement(&sql).send().await {
                    Ok(started) => started.query_id.unwrap(),
                    // Refused at once: a clear error, nothing ran.
                    Err(e) => {
                        let e = e.into_service_error();
                        assert_eq!(
                            e.meta().code(),
                            Some("InvalidQueryStatementException"),
                            "{sql}: {e:?}"
                        );
                        return;
                    }
                };
                // A worker gets its limit between its start and its job;
                // one still without it 200 ms after it was first seen has
                // none.
                let unconfined: std::cell::RefCell<
                    std::collections::HashMap<String, tokio::time::Instant>,
                > = Default::default();
                wait_until(&format!("{sql} ends"), QUERY_WITHIN, || async {
                    for pid in worker_pids() {
                        let limits_text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
                            .unwrap_or_default();
                        let Some(data) =
                            limits_text.lines().find(|l| l.starts_with("Max data size"))
                        else {
                            continue;
                        };
                        // Tests beside this one run workers too, with
                        // limits of their own, none above 256 MiB.
                        let soft = data
                            .split_whitespace()
                            .nth(3)
                            .and_then(|v| v.parse::<u64>().ok());
                        if soft.is_some_and(|bytes| bytes <= 256 << 20) {
                            seen_workers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        } else {
                            let first = *unconfined
                                .borrow_mut()
                                .entry(pid)
                                .or_insert_with(tokio::time::Instant::now);
                            assert!(
                                first.elapsed() < Duration::from_millis(200),
                                "a worker without the memory limit: {data}"
                            );
                        }
                    }
                    let d = c.describe_query().query_id(&id).send().await.unwrap();
                    match d.query_status().unwrap() {
                        QueryStatus::Queued | QueryStatus::Running => false,
                        QueryStatus::Finished | QueryStatus::TimedOut => true,
                        QueryStatus::Failed => {
                            assert!(!d.error_message().unwrap_or("").is_empty(), "{sql}");
                            true
                        }
                        other => panic!("{sql}: {other:?}"),
                    }
                })
                .await;
            });
            Ok(())
        })
        .unwrap();
    assert!(
        seen_workers.into_inner() > 0,
        "no worker was ever seen to check its limit"
    );
    let grown = rss(&me).saturating_sub(resting);
    assert!(
        grown < 200 << 20,
        "the lake's process grew by {} MiB",
        grown >> 20
    );
}

/// Running query workers this process started.
fn worker_pids() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let stat = std::fs::read_to_string(path.join("stat")).ok()?;
            let (comm, rest) = stat.split_once(") ")?;
            let mut fields = rest.split(' ');
            let (state, ppid) = (fields.next(), fields.next());
            (comm.ends_with("(auditlake-query") && state != Some("Z") && ppid == Some(me.as_str()))
                .then(|| path.file_name()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect()
}
