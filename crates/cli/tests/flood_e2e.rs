//! A flood of large requests against the real `auditlake serve`: valid
//! ingest batches near the 16 MiB limit, malformed bodies of that size,
//! oversized ones, and 1 MiB lake calls, all at once. The server must stay
//! under 500 MiB of resident memory (its peak, `VmHWM`, read from
//! `/proc`), keep answering `/healthz` while the flood runs, store every
//! batch it accepted and refuse the rest with its API's error.

use std::time::Duration;

use serde_json::{json, Value};

mod common;

use common::{run_json, spawn_until};

/// The bound on the server's resident memory.
const RSS_LIMIT_KIB: u64 = 500 * 1024;
/// Clients sending at once, and the large requests each sends.
const CLIENTS: usize = 24;
const ROUNDS: usize = 2;
/// Events per valid batch, and the payload size of each: 1,000 events of
/// 15 KB make a body just under the 16 MiB ingest limit.
const BATCH: usize = 1_000;
const PAYLOAD: usize = 15_000;

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Whether `e` is the server closing the connection while the request's
/// body was still being sent. A server may answer an over-limit or
/// unauthenticated request at once and close without reading the rest of
/// its body; a client still writing it then sees the write fail (broken
/// pipe, reset) instead of the answer, depending on timing.
fn closed_mid_body(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            );
        }
        source = s.source();
    }
    false
}

fn batch(client: usize, round: usize) -> String {
    let filler = "x".repeat(PAYLOAD);
    let items: Vec<Value> = (0..BATCH)
        .map(|i| {
            json!({"type": "audit_event", "attributes": {
                "idempotency_id": format!("c{client}-r{round}-{i}"),
                "event": "org.flood.test",
                "content": {"filler": filler}}})
        })
        .collect();
    json!({ "data": items }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_large_requests_stays_under_500_mib_and_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let b = run_json(&["admin", "bootstrap", "--json", "--data-dir", data]);
    let (token, org) = (
        b["token"].as_str().unwrap().to_owned(),
        b["org_id"].as_str().unwrap().to_owned(),
    );
    let (server, announced) = spawn_until(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lake-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--no-forwarder",
            "--rate-limit-per-minute",
            "0",
        ],
        &[],
        &["auditlake listening on ", "auditlake lake listening on "],
    );
    let (api, lake) = (announced[0].clone(), announced[1].clone());
    let pid = server.0.id();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let ingest = format!("{api}/rest/orgs/{org}/audit_logs/events?version=2024-10-15");

    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, ingest, lake, token) =
            (http.clone(), ingest.clone(), lake.clone(), token.clone());
        clients.push(tokio::spawn(async move {
            let post = |body: Vec<u8>| {
                http.post(&ingest)
                    .header("authorization", format!("token {token}"))
                    .header("content-type", "application/vnd.api+json")
                    .body(body)
                    .send()
            };
            let mut accepted = 0;
            for round in 0..ROUNDS {
                // Each client sends one kind of large request per round, so
                // every kind is in flight at the same time.
                match (client + round) % 4 {
                    0 | 1 => {
                        let r = post(batch(client, round).into_bytes()).await.unwrap();
                        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                        accepted += BATCH;
                    }
                    2 => {
                        // 16 MiB that is not JSON:API: read whole, refused.
                        let mut junk = b"{\"data\": [".to_vec();
                        junk.resize(16 * 1024 * 1024 - 16, b'[');
                        let r = post(junk).await.unwrap();
                        assert_eq!(r.status(), 400);
                        let e: Value = r.json().await.unwrap();
                        assert!(e["errors"][0]["detail"].is_string(), "{e}");
                    }
                    _ => {
                        // Over the limit, and a 1 MiB lake call that is not
                        // signed: both refused in their API's shape.
                        match post(vec![b' '; 17 * 1024 * 1024]).await {
                            Ok(r) => {
                                assert_eq!(r.status(), 413);
                                let e: Value = r.json().await.unwrap();
                                assert!(e["errors"][0]["status"] == "413", "{e}");
                            }
                            Err(e) => assert!(closed_mid_body(&e), "{e:?}"),
                        }
                        let sent = http
                            .post(format!("{lake}/PutAuditEvents?channelArn=x"))
                            .body(vec![b'{'; 1024 * 1024])
                            .send()
                            .await;
                        match sent {
                            Ok(r) => {
                                assert_eq!(r.status(), 403);
                                let e: Value = r.json().await.unwrap();
                                assert!(e["__type"].is_string() || e["message"].is_string(), "{e}");
                            }
                            Err(e) => assert!(closed_mid_body(&e), "{e:?}"),
                        }
                    }
                }
            }
            accepted
        }));
    }

    // /healthz answers while the flood is in flight (until every client is
    // done, or one failed: its panic surfaces when it is awaited below).
    let mut answered_during_flood = 0;
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while !clients.iter().all(tokio::task::JoinHandle::is_finished) {
        every.tick().await;
        let r = http
            .get(format!("{api}/healthz"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("/healthz answers within 10 s under the flood");
        assert_eq!(r.status(), 200);
        answered_during_flood += 1;
    }
    let mut accepted = 0;
    for c in clients {
        accepted += c.await.unwrap();
    }
    assert!(answered_during_flood >= 3, "{answered_during_flood}");

    let peak = peak_rss_kib(pid);
    println!("peak RSS under the flood: {} MiB", peak / 1024);
    assert!(
        peak < RSS_LIMIT_KIB,
        "peak RSS {} MiB is over 500 MiB",
        peak / 1024
    );

    // Everything acknowledged is stored, once.
    drop(server);
    assert_eq!(accepted, BATCH * CLIENTS * ROUNDS / 2);
    let url = format!("sqlite://{data}/auditlake.db");
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let stored: i64 = sqlx::Row::get(
        &sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE event = 'org.flood.test'")
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        "n",
    );
    assert_eq!(stored as usize, accepted);
}
