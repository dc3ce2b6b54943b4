//! End-to-end tests of the real `auditlake` binary on both backends:
//! `admin bootstrap --json`, `serve`, and a kill -9 during ingest that must
//! lose no acknowledged event.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditlake_store::testing::TestDb;
use auditlake_store::{Backend, Store};
use auditlake_testkit::{wait_until, wait_until_every};
use serde_json::{json, Value};

mod common;

use common::{Killed, BIN};

fn bootstrap(url: &str) -> Value {
    common::run_json(&["admin", "bootstrap", "--json", "--database-url", url])
}

/// The token `/metrics` wants from the servers of these tests.
const METRICS_TOKEN: &str = "metrics-token-for-tests";

/// Starts `auditlake serve` and returns it with its base URL, once it
/// announced that it listens.
fn serve(url: &str) -> (Killed, String) {
    let (child, announced) = common::spawn_until(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-lake",
            "--database-url",
            url,
        ],
        &[("AUDITLAKE_METRICS_TOKEN", METRICS_TOKEN)],
        &["auditlake listening on "],
    );
    (child, announced[0].clone())
}

/// GET with a token, answer parsed as JSON.
async fn get_json(http: &reqwest::Client, url: &str, token: &str) -> Value {
    http.get(url)
        .header("authorization", format!("token {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn bootstrap_prints_ids_and_a_working_token(backend: Backend) {
    let db = TestDb::new(backend).await;
    let b = bootstrap(&db.url);
    for key in ["user_id", "token", "group_id", "org_id"] {
        assert!(
            b[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} in {b}"
        );
    }
    let (mut child, base) = serve(&db.url);
    let http = reqwest::Client::new();
    let token = b["token"].as_str().unwrap();
    let me = get_json(
        &http,
        &format!("{base}/rest/self?version=2024-10-15"),
        token,
    )
    .await;
    assert_eq!(me["data"]["id"], b["user_id"]);
    let org_url = format!(
        "{base}/rest/orgs/{}?version=2024-10-15",
        b["org_id"].as_str().unwrap()
    );
    let org = get_json(&http, &org_url, token).await;
    assert_eq!(org["data"]["attributes"]["group_id"], b["group_id"]);
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // An integration, for the delivery series of /metrics.
    let org_id = b["org_id"].as_str().unwrap();
    let integration: Value = http
        .post(format!(
            "{base}/rest/orgs/{org_id}/cloud_events/integrations?version=2023-01-25~experimental"
        ))
        .header("authorization", format!("token {token}"))
        .header("content-type", "application/vnd.api+json")
        .body(
            serde_json::json!({"data": {"type": "org_integration", "attributes": {
                "type": "aws-cloudtrail", "name": "m", "config": {"account_id": "123456789012",
                "channel_arn": "arn:aws:cloudtrail:us-east-1:123456789012:channel/m"}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let integration_id = integration["data"]["id"].as_str().unwrap();
    // /metrics wants its bearer token, and names no tenant unless asked.
    for wrong in [None, Some("Bearer nope"), Some(&*format!("token {token}"))] {
        let mut rb = http.get(format!("{base}/metrics"));
        if let Some(h) = wrong {
            rb = rb.header("authorization", h);
        }
        let res = rb.send().await.unwrap();
        assert_eq!(res.status(), 401, "{wrong:?}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
    }
    let metrics = http
        .get(format!("{base}/metrics"))
        .header("authorization", format!("Bearer {METRICS_TOKEN}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("auditlake_http_requests_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("integration=\"{integration_id}\"")),
        "{metrics}"
    );
    for id in ["org_id", "group_id"] {
        assert!(
            !metrics.contains(b[id].as_str().unwrap()),
            "{id} in {metrics}"
        );
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    db.cleanup().await;
}

/// Sends events while the server is killed with SIGKILL; every event the
/// server acknowledged must be in the database afterwards, exactly once.
async fn kill_9_during_ingest_loses_no_acknowledged_event(backend: Backend) {
    let db = TestDb::new(backend).await;
    let b = bootstrap(&db.url);
    let token = b["token"].as_str().unwrap().to_owned();
    let org = b["org_id"].as_str().unwrap().to_owned();
    let (mut child, base) = serve(&db.url);

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (enough_tx, enough_rx) = tokio::sync::watch::channel(false);
    let mut senders = Vec::new();
    for worker in 0..8 {
        let (acked, base, token, org, enough_tx) = (
            acked.clone(),
            base.clone(),
            token.clone(),
            org.clone(),
            enough_tx.clone(),
        );
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..10_000 {
                // Alternate single events and batches of 10.
                let ids: Vec<String> = if n % 2 == 0 {
                    vec![format!("w{worker}-{n}")]
                } else {
                    (0..10).map(|i| format!("w{worker}-{n}-{i}")).collect()
                };
                let items: Vec<Value> = ids
                    .iter()
                    .map(|id| json!({"type": "audit_event", "attributes": {
                        "idempotency_id": id, "event": "org.project.add", "content": {"marker": id}}}))
                    .collect();
                let data = if items.len() == 1 { items[0].clone() } else { Value::Array(items) };
                let res = http
                    .post(format!("{base}/rest/orgs/{org}/audit_logs/events?version=2024-10-15"))
                    .header("authorization", format!("token {token}"))
                    .header("content-type", "application/vnd.api+json")
                    .body(json!({"data": data}).to_string())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 201 => {
                        let mut set = acked.lock().unwrap();
                        set.extend(ids);
                        if set.len() >= 400 {
                            let _ = enough_tx.send(true);
                        }
                    }
                    // The server is gone: stop.
                    _ => return,
                }
            }
        }));
    }
    let mut enough_rx = enough_rx;
    enough_rx
        .wait_for(|v| *v)
        .await
        .expect("senders acknowledged enough");
    // SIGKILL while requests are in flight.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 400);

    // A restarted server opens the same database (recovery runs on open).
    let (mut child, _base) = serve(&db.url);
    let store = Store::connect(&db.url).await.unwrap();
    let head = store.head().await.unwrap();
    let events = store.read_log(0, head + 1).await.unwrap();
    let mut stored = HashSet::new();
    for e in events.iter().filter(|e| e.event == "org.project.add") {
        let c: Value = serde_json::from_str(&e.content).unwrap();
        let marker = c["marker"].as_str().unwrap().to_owned();
        assert!(stored.insert(marker.clone()), "event {marker} stored twice");
    }
    let lost: Vec<&String> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=head).collect::<Vec<_>>(),
        "the log stays gapless across the crash"
    );
    store.close().await;
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let reports = common::run_json(&["verify", "--json", "--database-url", &db.url]);
    assert!(
        reports
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["first_break"].is_null()),
        "every hash chain holds across the crash: {reports}"
    );
    db.cleanup().await;
}

/// `auditlake verify` passes an untouched log, and names the first event
/// of the chain whose row was edited behind the server's back.
async fn verify_reports_a_tampered_row(backend: Backend) {
    let db = TestDb::new(backend).await;
    let b = bootstrap(&db.url);
    let (org, group) = (
        b["org_id"].as_str().unwrap(),
        b["group_id"].as_str().unwrap(),
    );
    let all = common::run_json(&["verify", "--json", "--database-url", &db.url]);
    let chains: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["chain"].as_str().unwrap())
        .collect();
    assert!(chains.contains(&org) && chains.contains(&group), "{all}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|r| r["first_break"].is_null()),
        "{all}"
    );
    let table = common::run(&["verify", "--org", org, "--database-url", &db.url]);
    assert!(table.contains("intact") && table.contains(org), "{table}");

    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let sql = format!("SELECT MIN(seq) AS seq FROM audit_events WHERE org_id = '{org}'");
    let seq: i64 = sqlx::Row::get(
        &sqlx::query(&sql).fetch_one(&mut conn).await.unwrap(),
        "seq",
    );
    sqlx::query("UPDATE audit_events SET content = '{\"tampered\":true}' WHERE seq = $1")
        .bind(seq)
        .execute(&mut conn)
        .await
        .unwrap();

    let out = Command::new(BIN)
        .args([
            "verify",
            "--json",
            "--group",
            group,
            "--database-url",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a broken chain fails the command");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 2 chains are broken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports = common::json_of(&String::from_utf8(out.stdout).unwrap());
    let by_chain = |id: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["chain"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no report for {id}: {reports}"))
    };
    assert_eq!(by_chain(org)["first_break"]["seq"], seq, "{reports}");
    assert!(by_chain(group)["first_break"].is_null(), "{reports}");

    let out = Command::new(BIN)
        .args(["verify", "--org", group, "--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("no organization {group}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.cleanup().await;
}

macro_rules! both_backends {
    ($($name:ident),*) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(auditlake_store::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(auditlake_store::Backend::Postgres).await
            }
        }
    )*};
}

/// SIGTERM stops the server cleanly: it exits with success and the
/// database opens again without recovery errors.
async fn sigterm_shuts_down_gracefully(backend: Backend) {
    let db = TestDb::new(backend).await;
    bootstrap(&db.url);
    let (mut child, base) = serve(&db.url);
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "server exited with {exit}");
    let store = Store::connect(&db.url).await.unwrap();
    assert!(store.head().await.unwrap() > 0);
    store.close().await;
    db.cleanup().await;
}

both_backends!(
    sigterm_shuts_down_gracefully,
    bootstrap_prints_ids_and_a_working_token,
    kill_9_during_ingest_loses_no_acknowledged_event,
    verify_reports_a_tampered_row
);

/// `serve` with its lake on the embedded default announces its listening
/// addresses as its first lines, before the note on the lake's generated
/// key: scripts (the benchmark tool among them) read the first line to
/// find the server, and the note once came first.
#[test]
fn serve_announces_where_it_listens_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lake-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("AUDITLAKE_LOG", "warn")
        .env_remove("AUDITLAKE_LAKE_ACCESS_KEY_ID")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn auditlake serve");
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .take(3)
        .map(Result::unwrap)
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let prefixes = [
        "auditlake listening on http://127.0.0.1:",
        "auditlake lake listening on http://127.0.0.1:",
        "auditlake lake credentials: ",
    ];
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, prefix) in lines.iter().zip(prefixes) {
        assert!(
            line.starts_with(prefix),
            "{line:?} should start with {prefix:?}: {lines:?}"
        );
    }
    assert!(
        lines[2].ends_with("lake-credentials.json"),
        "{:?}",
        lines[2]
    );
}

/// A server whose stdout nobody reads any more (a closed pipe: `serve |
/// head -1`, a supervisor that went away) keeps serving. It once panicked
/// on the announcement after the listening lines and took the server down,
/// which failed a CI run at random when a test stopped reading first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_serving_when_its_stdout_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Killed(
        Command::new(BIN)
            .args([
                "--log-format",
                "json",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--lake-listen",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("AUDITLAKE_LOG", "info")
            .env_remove("AUDITLAKE_LAKE_ACCESS_KEY_ID")
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn auditlake serve"),
    );
    // stdout is gone, so the address comes from the `listening` log line.
    let mut log = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = log.next().expect("serve exited before listening").unwrap();
        let entry: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if entry["fields"]["message"] == "listening" {
            break entry["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    // The API's listener is bound before the announcement and accepts only
    // after it: an answer means the server got past writing to the closed
    // pipe, a refused or reset connection that it died there.
    std::thread::spawn(move || log.for_each(drop));
    let health = reqwest::get(format!("http://{addr}/healthz")).await;
    assert!(
        health.as_ref().is_ok_and(|r| r.status() == 200),
        "serve should keep serving: /healthz {health:?}, exit {:?}",
        child.0.try_wait()
    );
}

/// `auditlake demo` (the README's first command) serves demo tenants and
/// its users generate events that a search finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_tenants_and_generates_events() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, banner) = common::spawn_until(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--lake-listen",
            "127.0.0.1:0",
            "--rate",
            "50",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        // The demo registers its group with its own lake and prints the
        // seed's query for it.
        &[
            "url:",
            "token:",
            "group_id:",
            "OpenAPI:",
            "auditlake lake query ",
        ],
    );
    let [url, token, group, links, query_line] = <[String; 5]>::try_from(banner).unwrap();
    // /metrics is off without --metrics-token: the banner does not offer it.
    assert!(!links.contains("metrics"), "{links}");
    // `token:    TOKEN   (EMAIL, admin of group "...")`
    let token = token.split_whitespace().next().unwrap().to_owned();
    let (flags, sql) = query_line.split_once(" \"").expect("quoted SQL");
    let sql = sql.trim_end_matches('"').to_owned();
    let mut query_args: Vec<String> = ["lake", "query", "--json"].map(String::from).to_vec();
    query_args.extend(flags.split_whitespace().map(String::from));
    query_args.push(sql);
    let http = reqwest::Client::new();
    // The generator runs at 50 actions/s; wait (bounded) until its
    // settings edits and ingested project events show up.
    let seen = RefCell::new(HashSet::new());
    wait_until(
        "the demo's actions show up in a search",
        Duration::from_secs(30),
        || async {
            let page = get_json(
                &http,
                &format!("{url}/rest/groups/{group}/audit_logs/search?version=2023-09-11&size=100"),
                &token,
            )
            .await;
            let mut seen = seen.borrow_mut();
            for item in page["data"]["items"].as_array().unwrap() {
                seen.insert(item["event"].as_str().unwrap().to_owned());
            }
            seen.contains("org.settings.edit")
                && seen.iter().any(|e| {
                    e.starts_with("org.project.")
                        || e.starts_with("org.target.")
                        || e.starts_with("org.webhook.")
                })
        },
    )
    .await;
    let seen = seen.into_inner();
    for expected in [
        "group.create",
        "org.create",
        "group.org.add",
        "org.user.add",
        "org.settings.edit",
    ] {
        assert!(seen.contains(expected), "{expected} missing from {seen:?}");
    }
    // ...and the printed seed query finds the users' actions in the lake.
    let lake_names = RefCell::new(HashSet::new());
    // A `lake query` is a process of its own: looked for less often.
    wait_until_every(
        "the seed query finds two kinds of action",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            let out = Command::new(BIN).args(&query_args).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
            let mut lake_names = lake_names.borrow_mut();
            for r in rows.as_array().unwrap() {
                assert!(r["useridentity"].as_str().unwrap().contains("principalid="));
                lake_names.insert(r["eventname"].as_str().unwrap().to_owned());
            }
            lake_names.len() >= 2
        },
    )
    .await;
    let lake_names = lake_names.into_inner();
    assert!(lake_names.len() >= 2, "the lake got {lake_names:?}");
}
