//! The seed, end to end, with the real binaries on both backends: a lake
//! runs as its own process (the peer, as AWS would be), `auditlake lake
//! setup` plays the console's "add integration" step with the group's ID
//! as External ID, the seed's curl registers the group, users act, and the
//! seed's SQL finds their events with the right `principalid`, `eventname`
//! and `additionaleventdata`. The server sends with credentials from the
//! standard AWS environment variables, as it would to AWS.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auditlake_store::testing::TestDb;
use auditlake_store::Backend;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_auditlake");

/// Kills the child when the test ends, also on a panic.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `auditlake ARGS` and reads stdout until a line starts with each
/// of `wanted`; returns the process and the rest of each such line.
fn spawn_until(args: &[&str], env: &[(&str, &str)], wanted: &[&str]) -> (Killed, Vec<String>) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("AUDITLAKE_LOG", "warn")
        .env_remove("AUDITLAKE_LAKE_ACCESS_KEY_ID")
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn auditlake");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    while found.iter().any(Option::is_none) {
        let line = lines
            .next()
            .expect("the process exited before announcing itself")
            .unwrap();
        for (i, w) in wanted.iter().enumerate() {
            if let Some(rest) = line.strip_prefix(w) {
                found[i] = Some(rest.trim().to_owned());
            }
        }
    }
    (
        Killed(child),
        found.into_iter().map(Option::unwrap).collect(),
    )
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run auditlake");
    assert!(
        out.status.success(),
        "auditlake {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `sql` through `auditlake lake query --json` until `done` holds for
/// the rows (bounded), returning them.
async fn query_until(
    lake_dir: &Path,
    url: &str,
    sql: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let dir = lake_dir.to_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
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
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lake never showed the expected rows; last: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn seed_flow(backend: Backend) {
    let db = TestDb::new(backend).await;
    let lake_dir = tempfile::tempdir().unwrap();
    let dir = lake_dir.path().to_str().unwrap().to_owned();

    // The peer: a lake of its own, with a generated key.
    let (_lake, announced) = spawn_until(
        &[
            "lake",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
        ],
        &[],
        &[
            "auditlake lake credentials: ",
            "auditlake lake listening on ",
        ],
    );
    let key = json_of(&std::fs::read_to_string(&announced[0]).unwrap());
    let lake_url = announced[1].clone();
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
    let (_server, announced) = spawn_until(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-lake",
            "--database-url",
            &db.url,
            "--cloudtrail-endpoint",
            &lake_url,
            "--event-source",
            "audit.example.com",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", key["access_key_id"].as_str().unwrap()),
            (
                "AWS_SECRET_ACCESS_KEY",
                key["secret_access_key"].as_str().unwrap(),
            ),
            ("AWS_CONFIG_FILE", "/nonexistent"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
        &["auditlake listening on "],
    );
    let host = announced[0].clone();

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

    // The operator's view agrees.
    let list = json_of(&run(&[
        "integrations",
        "list",
        "--json",
        "--database-url",
        &db.url,
    ]));
    let reg = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == reg_id)
        .expect("the registration is listed");
    assert_eq!(reg["status"], "healthy", "{reg}");
    assert_eq!(reg["external_id"], group);

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
