//! Slow clients against both listeners of `auditlake serve`: 100
//! connections from another loopback address that open a chunked request
//! and then send nothing. Ingest from a well-behaved client keeps its p99
//! under 100 ms on the API and on the lake while they are held; the
//! connections beyond the per-address cap are closed at once, and the rest
//! are dropped after the read timeout.

use std::time::{Duration, Instant};

use aws_sdk_cloudtraildata as ctd;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

mod common;

use common::{p99, ServedLake};

const ATTACKERS: usize = 100;
const CAP: usize = 64;
const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens `n` connections from 127.0.0.2 to `addr` that each send `head`
/// (a request line and headers announcing a chunked body) and one chunk of
/// one byte, then nothing.
async fn slow_clients(addr: &str, head: &str, n: usize) -> Vec<TcpStream> {
    let addr: std::net::SocketAddr = addr.trim_start_matches("http://").parse().unwrap();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        // A connection the server closed at once may refuse the write.
        let _ = stream
            .write_all(format!("{head}Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n").as_bytes())
            .await;
        held.push(stream);
    }
    held
}

/// How many of `streams` the server has closed (a read ends or fails
/// within a moment).
async fn closed(streams: &mut [TcpStream]) -> usize {
    let mut n = 0;
    for s in streams.iter_mut() {
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
                // An answer (a 403, a 408) may come before the close.
                Ok(Ok(k)) if k > 0 => continue,
                Ok(_) => {
                    n += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_stall_ingest_on_either_listener() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let db = format!("sqlite://{data}/auditlake.db");
    let timeout = READ_TIMEOUT.as_secs().to_string();
    let cap = CAP.to_string();
    let served = ServedLake::start(
        &data,
        &db,
        &[
            "--no-forwarder",
            "--read-timeout-secs",
            &timeout,
            "--max-connections-per-ip",
            &cap,
        ],
    );
    let (api, lake, token, org, key, channel) = (
        served.api.clone(),
        served.lake.clone(),
        served.token.clone(),
        served.org.clone(),
        served.key.clone(),
        served.channel_arn.clone(),
    );
    let put = auditlake_cloudtrail::client::data(&lake, &key, "us-east-1");
    let http = reqwest::Client::new();
    let ingest_url = format!("{api}/rest/orgs/{org}/audit_logs/events?version=2024-10-15");

    let mut n = 0;
    let mut measure = async |count: usize| {
        let (mut api_times, mut lake_times) = (Vec::new(), Vec::new());
        for _ in 0..count {
            n += 1;
            let t = Instant::now();
            let res = http
                .post(&ingest_url)
                .header("authorization", format!("token {token}"))
                .header("content-type", "application/vnd.api+json")
                .body(
                    json!({"data": {"type": "audit_event", "attributes": {
                        "idempotency_id": format!("i-{n}"), "event": "org.probe.test", "content": {"n": n}}}})
                    .to_string(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            api_times.push(t.elapsed());
            let t = Instant::now();
            let event = ctd::types::AuditEvent::builder()
                .id(format!("e-{n}"))
                .event_data(
                    json!({"version": "1.0", "userIdentity": {"type": "User", "principalId": "u"},
                        "eventSource": "test", "eventName": "org.probe", "eventTime": "2026-12-01T00:00:00Z",
                        "UID": format!("e-{n}"), "recipientAccountId": key.account_id})
                    .to_string(),
                )
                .build()
                .unwrap();
            let out = put
                .put_audit_events()
                .channel_arn(&channel)
                .external_id(&org)
                .audit_events(event)
                .send()
                .await
                .unwrap();
            assert!(out.failed().is_empty());
            lake_times.push(t.elapsed());
        }
        (p99(api_times), p99(lake_times))
    };
    let (api_rest, lake_rest) = measure(100).await;

    let mut on_api = slow_clients(
        &api,
        "POST /login HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n",
        ATTACKERS,
    )
    .await;
    let mut on_lake = slow_clients(
        &lake,
        "POST /PutAuditEvents?channelArn=x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n",
        ATTACKERS,
    )
    .await;
    let started = Instant::now();
    let (api_held, lake_held) = measure(200).await;
    assert!(
        started.elapsed() < READ_TIMEOUT,
        "the measurement outlasted the read timeout; the slow clients were no longer held"
    );
    eprintln!(
        "ingest p99 at rest: API {api_rest:?}, lake {lake_rest:?}; with {ATTACKERS} slow clients on each: API {api_held:?}, lake {lake_held:?}"
    );
    assert!(
        api_held < Duration::from_millis(100),
        "API ingest p99 {api_held:?}"
    );
    assert!(
        lake_held < Duration::from_millis(100),
        "lake ingest p99 {lake_held:?}"
    );

    // Beyond the cap, connections were closed at once; after the read
    // timeout, all of them.
    let (api_closed, lake_closed) = (closed(&mut on_api).await, closed(&mut on_lake).await);
    assert!(api_closed >= ATTACKERS - CAP, "API closed {api_closed}");
    assert!(lake_closed >= ATTACKERS - CAP, "lake closed {lake_closed}");
    let deadline = started + READ_TIMEOUT * 3;
    for (name, streams) in [("API", &mut on_api), ("lake", &mut on_lake)] {
        while closed(streams).await < ATTACKERS {
            assert!(
                Instant::now() < deadline,
                "{name} connections outlived the read timeout"
            );
        }
    }
}
