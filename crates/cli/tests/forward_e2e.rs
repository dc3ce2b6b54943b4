//! Forwarding end to end, with the real binaries on both backends.
//!
//! The seed's flow: a lake runs as its own process (the peer, as AWS would be), `auditlake lake
//! setup` plays the console's "add integration" step with the group's ID
//! as External ID, the seed's curl registers the group, users act, and the
//! seed's SQL finds their events with the right `principalid`, `eventname`
//! and `additionaleventdata`. The server sends with credentials from the
//! standard AWS environment variables, as it would to AWS.
//!
//! Crashes: the server is killed with SIGKILL again and again at random
//! moments while it delivers a backlog; in the end the lake holds every
//! event exactly once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use auditlake_store::testing::TestDb;
use auditlake_store::Backend;
use serde_json::{json, Value};

mod common;

use auditlake_testkit::wait_until_every;
use common::{json_of, run, spawn_until, Killed};

/// Runs `sql` through `auditlake lake query --json` until `done` holds for
/// the rows (bounded), returning them.
async fn query_until(
    lake_dir: &Path,
    url: &str,
    sql: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let dir = lake_dir.to_str().unwrap();
    // Each look is a `lake query` process of its own.
    wait_until_every(
        "the lake shows the expected rows",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let rows = json_of(&run(&[
                "lake",
                "query",
                "--json",
                "--data-dir",
                dir,
                "--endpoint",
                url,
                sql,
            ]));
            let rows = rows.as_array().unwrap().clone();
            if done(&rows) {
                Ok(rows)
            } else {
                Err(rows)
            }
        },
    )
    .await
}

async fn seed_flow(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake_dir = tempfile::tempdir().unwrap();
    let dir = lake_dir.path().to_str().unwrap().to_owned();

    // The peer: a lake of its own, with a generated key.
    let (_lake, lake_url, key) = lake_process(&dir);
    let account = key["account_id"].as_str().unwrap().to_owned();

    let boot = json_of(&run(&[
        "admin",
        "bootstrap",
        "--json",
        "--database-url",
        &db.url,
    ]));
    let token = boot["token"].as_str().unwrap().to_owned();
    let group = boot["group_id"].as_str().unwrap().to_owned();
    let org = boot["org_id"].as_str().unwrap().to_owned();
    let user = boot["user_id"].as_str().unwrap().to_owned();

    // The console step: a channel whose policy wants the Group ID.
    let setup = json_of(&run(&[
        "lake",
        "setup",
        "--json",
        "--external-id",
        &group,
        "--data-dir",
        &dir,
        "--endpoint",
        &lake_url,
    ]));
    let channel_arn = setup["channel_arn"].as_str().unwrap().to_owned();
    let store_id = setup["event_data_store_id"].as_str().unwrap().to_owned();

    // The server, sending to the lake with the standard AWS variables.
    let (_server, host) = serve_forwarding(
        &db.url,
        &lake_url,
        &key,
        &["--event-source", "audit.example.com"],
    );

    // The seed's curl, as written, with the host and placeholders replaced.
    let body = format!(
        r#"{{
"data": {{
"type": "group_registration",
"attributes": {{
"type": "aws-cloudtrail",
"name": "security-lake",
"config": {{
"account_id": "{account}",
"channel_arn": "{channel_arn}"
}}
}}
}}
}}"#
    );
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--location",
            "--request",
            "POST",
            &format!("{host}/rest/groups/{group}/cloud_events/group_registrations?version=2023-01-25~experimental"),
            "--header",
            "Content-Type: application/vnd.api+json",
            "--header",
            &format!("Authorization: token {token}"),
            "--data-raw",
            &body,
        ])
        .output()
        .expect("run curl");
    let created = json_of(&String::from_utf8_lossy(&out.stdout));
    let reg_id = created["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no registration id: {created}"))
        .to_owned();

    // Users act: a settings edit, a member added to the group, an API read.
    let http = reqwest::Client::new();
    let send = |m: reqwest::Method, path: String, body: Option<Value>| {
        let mut rb = http
            .request(m, format!("{host}{path}"))
            .header("authorization", format!("token {token}"));
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/vnd.api+json")
                .body(b.to_string());
        }
        rb.send()
    };
    let r = send(
        reqwest::Method::PATCH,
        format!("/rest/orgs/{org}?version=2024-10-15"),
        Some(json!({"data": {"type": "org", "id": org, "attributes": {"settings": {"require_mfa": true}}}})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let bob = json_of(&run(&[
        "admin",
        "create-user",
        "--json",
        "--database-url",
        &db.url,
        "--email",
        "bob@example.com",
        "--name",
        "Bob",
    ]));
    let r = send(
        reqwest::Method::POST,
        format!("/rest/groups/{group}/memberships?version=2024-10-15"),
        Some(json!({"data": {"type": "group_membership",
            "relationships": {"user": {"data": {"type": "user", "id": bob["user_id"]}}}}})),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = send(
        reqwest::Method::GET,
        format!("/rest/orgs/{org}?version=2024-10-15"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    // The seed's query, verbatim but for the store ID.
    let sql = format!(
        "select\neventtime,\neventdata.useridentity,\neventdata.eventname,\neventdata.additionaleventdata\n\
         from {store_id}\norder by eventTime desc\nlimit 10"
    );
    let rows = query_until(lake_dir.path(), &lake_url, &sql, |rows| {
        let names: Vec<&str> = rows
            .iter()
            .filter_map(|r| r["eventname"].as_str())
            .collect();
        names.contains(&"org.settings.edit")
            && names.contains(&"group.user.add")
            && names.contains(&"api.access")
    })
    .await;
    let edit = rows
        .iter()
        .find(|r| r["eventname"] == "org.settings.edit")
        .unwrap();
    assert!(
        edit["useridentity"]
            .as_str()
            .unwrap()
            .contains(&format!("principalid={user}")),
        "{edit}"
    );
    let payload = json_of(edit["additionaleventdata"].as_str().unwrap());
    assert_eq!(payload["after"]["require_mfa"], true);
    assert!(rows.iter().any(|r| r["eventname"] == "api.access"
        && json_of(r["additionaleventdata"].as_str().unwrap())["url"]
            .as_str()
            .is_some_and(|u| u.contains(&format!("/rest/orgs/{org}")))));

    // The operator's view agrees, once the last api.access went out too.
    until_drained(&db.url).await;
    let list = integration_list(&db.url);
    let reg = list
        .iter()
        .find(|r| r["id"] == reg_id)
        .expect("the registration is listed");
    assert_eq!(reg["status"], "healthy", "{reg}");
    assert_eq!(reg["external_id"], group);

    // ...and so does /metrics.
    let metrics = http
        .get(format!("{host}/metrics"))
        .header("authorization", "Bearer forward-metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels = format!("integration=\"{reg_id}\",level=\"group\",external_id=\"{group}\"");
    assert!(
        metrics.contains(&format!(
            "auditlake_integration_status{{{labels},status=\"healthy\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("auditlake_integration_lag_events{{{labels}}} 0")));
    assert!(metrics.contains("auditlake_forwarder_events_delivered_total"));

    drop(_server);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_on_sqlite() {
    seed_flow(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_flow_on_postgres() {
    seed_flow(Backend::Postgres).await
}

/// A lake process of its own, with a generated key: (process, URL, key).
fn lake_process(dir: &str) -> (Killed, String, Value) {
    let (lake, announced) = spawn_until(
        &[
            "lake",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir,
        ],
        &[],
        &[
            "auditlake lake credentials: ",
            "auditlake lake listening on ",
        ],
    );
    let key = json_of(&std::fs::read_to_string(&announced[0]).unwrap());
    (lake, announced[1].clone(), key)
}

/// A lake process with a channel for `external_id`: (process, URL, key,
/// channel ARN, store ID).
fn lake_with_channel(dir: &str, external_id: &str) -> (Killed, String, Value, String, String) {
    let (lake, url, key) = lake_process(dir);
    let setup = json_of(&run(&[
        "lake",
        "setup",
        "--json",
        "--external-id",
        external_id,
        "--data-dir",
        dir,
        "--endpoint",
        &url,
    ]));
    (
        lake,
        url,
        key,
        setup["channel_arn"].as_str().unwrap().to_owned(),
        setup["event_data_store_id"].as_str().unwrap().to_owned(),
    )
}

/// `serve` forwarding to `lake_url`, signed with `key` taken from the
/// standard AWS environment variables, with a short lease so a successor
/// takes over quickly.
fn serve_forwarding(db_url: &str, lake_url: &str, key: &Value, extra: &[&str]) -> (Killed, String) {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-lake",
        "--database-url",
        db_url,
        "--cloudtrail-endpoint",
        lake_url,
        "--forwarder-lease-secs",
        "0.5",
        "--metrics-token",
        "forward-metrics",
        "--metrics-tenant-labels",
    ];
    args.extend_from_slice(extra);
    let (p, announced) = spawn_until(
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().unwrap()),
            (
                "AWS_SECRET_ACCESS_KEY",
                key["secret_access_key"].as_str().unwrap(),
            ),
        ],
        &["auditlake listening on "],
    );
    (p, announced[0].clone())
}

/// The one integration's row of `auditlake integrations list`.
fn integration_row(db_url: &str) -> Value {
    integration_list(db_url)[0].clone()
}

/// Bootstraps a tenant, registers its group with a lake channel, and fills
/// the log with `events` ingested events while nothing forwards. Returns
/// (lake process, lake URL, key, store ID, lake dir, events waiting).
async fn backlog(
    db_url: &str,
    events: usize,
) -> (Killed, String, Value, String, tempfile::TempDir, i64) {
    let lake_dir = tempfile::tempdir().unwrap();
    let boot = json_of(&run(&[
        "admin",
        "bootstrap",
        "--json",
        "--database-url",
        db_url,
    ]));
    let token = boot["token"].as_str().unwrap().to_owned();
    let group = boot["group_id"].as_str().unwrap().to_owned();
    let org = boot["org_id"].as_str().unwrap().to_owned();
    let (lake, lake_url, key, channel_arn, store_id) =
        lake_with_channel(lake_dir.path().to_str().unwrap(), &group);
    let (server, host) = serve_forwarding(db_url, &lake_url, &key, &["--no-forwarder"]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{host}/rest/groups/{group}/cloud_events/group_registrations?version=2023-01-25~experimental"))
        .header("authorization", format!("token {token}"))
        .header("content-type", "application/vnd.api+json")
        .body(json!({"data": {"type": "group_registration", "attributes": {"type": "aws-cloudtrail",
            "name": "crash", "config": {"account_id": key["account_id"], "channel_arn": channel_arn}}}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for chunk in 0..events.div_ceil(1000) {
        let batch: Vec<Value> = (0..1000.min(events - chunk * 1000))
            .map(|i| {
                json!({"type": "audit_event", "attributes": {
                "idempotency_id": format!("e-{chunk}-{i}"), "event": "org.project.test",
                "content": {"n": chunk * 1000 + i}}})
            })
            .collect();
        let r = http
            .post(format!(
                "{host}/rest/orgs/{org}/audit_logs/events?version=2024-10-15"
            ))
            .header("authorization", format!("token {token}"))
            .header("content-type", "application/vnd.api+json")
            .body(json!({ "data": batch }).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    drop(server);
    let waiting = integration_row(db_url)["lag_events"].as_i64().unwrap();
    assert!(waiting > events as i64, "{waiting}");
    (lake, lake_url, key, store_id, lake_dir, waiting)
}

/// Counts the store's rows and distinct UIDs.
fn lake_counts(lake_dir: &Path, url: &str, store_id: &str) -> (i64, i64) {
    let rows = json_of(&run(&[
        "lake",
        "query",
        "--json",
        "--data-dir",
        lake_dir.to_str().unwrap(),
        "--endpoint",
        url,
        &format!("select count(*) as c, count(distinct eventdata.uid) as u from {store_id}"),
    ]));
    let n = |k: &str| rows[0][k].as_str().unwrap().parse::<i64>().unwrap();
    (n("c"), n("u"))
}

/// Waits (bounded) until nothing is waiting for the integration.
/// Every integration, as `auditlake integrations list --json` shows them.
fn integration_list(db_url: &str) -> Vec<Value> {
    let list = json_of(&run(&[
        "integrations",
        "list",
        "--json",
        "--database-url",
        db_url,
    ]));
    list.as_array().unwrap().clone()
}

/// Polls the integration list until `done` holds (bounded by `secs`).
async fn until_list(
    db_url: &str,
    what: &str,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    // Each look is an `integrations list` process of its own.
    wait_until_every(
        what,
        Duration::from_secs(secs),
        Duration::from_millis(50),
        || async {
            let list = integration_list(db_url);
            if done(&list) {
                Ok(list)
            } else {
                Err(list)
            }
        },
    )
    .await
}

/// Waits (bounded) until nothing is waiting for any integration; returns
/// the first one's row.
async fn until_drained(db_url: &str) -> Value {
    let list = until_list(db_url, "everything is delivered", 120, |l| {
        l.iter().all(|r| r["lag_events"] == 0)
    })
    .await;
    list[0].clone()
}

async fn kill_9_while_delivering(backend: Backend, kills: usize) {
    use rand::Rng as _;
    let db = TestDb::new(backend).await;
    // Enough backlog that every kill lands mid-delivery.
    let events = 20_000.max(kills * 1_000);
    let (_lake, lake_url, key, store_id, lake_dir, waiting) = backlog(&db.url, events).await;
    let mut progress = Vec::new();
    for _ in 0..kills {
        let (mut server, _) = serve_forwarding(&db.url, &lake_url, &key, &[]);
        let ms = rand::rng().random_range(50..600);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        server.0.kill().unwrap(); // SIGKILL
        server.0.wait().unwrap();
        progress.push(integration_row(&db.url)["delivered"].as_i64().unwrap());
    }
    let (_server, _) = serve_forwarding(&db.url, &lake_url, &key, &[]);
    let row = until_drained(&db.url).await;
    let (rows, distinct) = lake_counts(lake_dir.path(), &lake_url, &store_id);
    assert_eq!(
        distinct, waiting,
        "every event arrived (progress: {progress:?})"
    );
    assert_eq!(rows, distinct, "none twice");
    assert!(row["delivered"].as_i64().unwrap() >= waiting);
    assert!(
        progress.iter().any(|d| *d > 0 && *d < waiting),
        "some kill landed mid-delivery: {progress:?}"
    );
    drop(_server);
    db.cleanup().await;
}

/// Kills per crash test: 20 in the test suite; `scripts/crash-forward.sh`
/// runs many more.
fn kills() -> usize {
    std::env::var("AUDITLAKE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_loses_and_duplicates_nothing_on_sqlite() {
    kill_9_while_delivering(Backend::Sqlite, kills()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_loses_and_duplicates_nothing_on_postgres() {
    kill_9_while_delivering(Backend::Postgres, kills()).await
}

/// Three servers on one PostgreSQL database share four integrations (the
/// group's and three orgs'); one is killed with SIGKILL mid-way. Every
/// store ends up with each of its events exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_work_and_survive_a_kill_on_postgres() {
    let db = TestDb::new(Backend::Postgres).await;
    let lake_dir = tempfile::tempdir().unwrap();
    let dir = lake_dir.path().to_str().unwrap().to_owned();
    let boot = json_of(&run(&[
        "admin",
        "bootstrap",
        "--json",
        "--database-url",
        &db.url,
    ]));
    let token = boot["token"].as_str().unwrap().to_owned();
    let group = boot["group_id"].as_str().unwrap().to_owned();
    let mut orgs = vec![boot["org_id"].as_str().unwrap().to_owned()];
    for n in 0..2 {
        let o = json_of(&run(&[
            "admin",
            "create-org",
            "--json",
            "--database-url",
            &db.url,
            "--name",
            &format!("org {n}"),
            "--admin-email",
            "admin@example.com",
            "--group-id",
            &group,
        ]));
        orgs.push(o["org_id"].as_str().unwrap().to_owned());
    }
    let (_lake, lake_url, key) = lake_process(&dir);

    let (server, host) = serve_forwarding(&db.url, &lake_url, &key, &["--no-forwarder"]);
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(format!("{host}{path}"))
            .header("authorization", format!("token {token}"))
            .header("content-type", "application/vnd.api+json")
            .body(body.to_string())
            .send()
    };
    // (collection path, resource type, external ID) of each integration.
    let mut targets = vec![(
        format!("/rest/groups/{group}/cloud_events/group_registrations"),
        "group_registration",
        group.clone(),
    )];
    for o in &orgs {
        targets.push((
            format!("/rest/orgs/{o}/cloud_events/integrations"),
            "org_integration",
            o.clone(),
        ));
    }
    let mut stores = Vec::new();
    for (n, (path, kind, external)) in targets.iter().enumerate() {
        let setup = json_of(&run(&[
            "lake",
            "setup",
            "--json",
            "--name",
            &format!("channel-{n}"),
            "--external-id",
            external,
            "--data-dir",
            &dir,
            "--endpoint",
            &lake_url,
        ]));
        let r = post(
            format!("{path}?version=2023-01-25~experimental"),
            json!({"data": {"type": kind, "attributes": {"type": "aws-cloudtrail", "name": format!("i{n}"),
                "config": {"account_id": key["account_id"], "channel_arn": setup["channel_arn"]}}}}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let id = json_of(&r.text().await.unwrap())["data"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        stores.push((
            id,
            setup["event_data_store_id"].as_str().unwrap().to_owned(),
        ));
    }
    for o in &orgs {
        for chunk in 0..4 {
            let batch: Vec<Value> = (0..1000)
                .map(|i| json!({"type": "audit_event", "attributes": {
                    "idempotency_id": format!("e-{chunk}-{i}"), "event": "org.project.test", "content": {"i": i}}}))
                .collect();
            let r = post(
                format!("/rest/orgs/{o}/audit_logs/events?version=2024-10-15"),
                json!({"data": batch}),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 201);
        }
    }
    drop(server);
    let list = integration_list(&db.url);
    let waiting = |id: &str| -> i64 {
        list.iter().find(|r| r["id"] == id).unwrap()["lag_events"]
            .as_i64()
            .unwrap()
    };
    let expected: Vec<i64> = stores.iter().map(|(id, _)| waiting(id)).collect();

    let mut servers: Vec<Killed> = (0..3)
        .map(|_| serve_forwarding(&db.url, &lake_url, &key, &[]).0)
        .collect();
    // Kill one once delivery is under way.
    until_list(&db.url, "something is delivered", 60, |l| {
        l.iter().any(|r| r["delivered"].as_i64().unwrap() > 0)
    })
    .await;
    let mut victim = servers.remove(0);
    victim.0.kill().unwrap();
    victim.0.wait().unwrap();
    until_drained(&db.url).await;
    for ((_, store_id), want) in stores.iter().zip(&expected) {
        let (rows, distinct) = lake_counts(lake_dir.path(), &lake_url, store_id);
        assert_eq!((rows, distinct), (*want, *want), "store {store_id}");
    }
    drop(servers);
    db.cleanup().await;
}
