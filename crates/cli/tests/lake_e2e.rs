//! End-to-end tests of `auditlake lake ...` with the real binary: the
//! console-like `setup`, events through the AWS SDK, kill -9 after the
//! acknowledgement, and `query` after the restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use auditlake_testkit::Killed;
use aws_sdk_cloudtraildata as ctd;

const BIN: &str = env!("CARGO_BIN_EXE_auditlake");

/// Starts `auditlake lake serve` on a free port; returns it, its URL and
/// the credentials file it announced. The listening line must come first
/// (scripts wait for it), the generated key's location right after: the
/// lines are read here, in order, rather than by `spawn_until`, which
/// takes them in any order.
fn lake_serve(dir: &Path) -> (Killed, String, String) {
    let mut child = Command::new(BIN)
        .args(["lake", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("AUDITLAKE_LOG", "warn")
        .env_remove("AUDITLAKE_LAKE_ACCESS_KEY_ID")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn auditlake lake serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let child = Killed(child);
    let mut next = || lines.next().expect("announce line").unwrap();
    let first = next();
    let url = first
        .strip_prefix("auditlake lake listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let second = next();
    let creds = second
        .strip_prefix("auditlake lake credentials: ")
        .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
        .to_owned();
    (child, url, creds)
}

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("lake")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("run auditlake lake");
    assert!(
        out.status.success(),
        "auditlake lake {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_ingest_kill_9_restart_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, creds_path) = lake_serve(dir.path());
    let key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&creds_path).unwrap()).unwrap();
    let account = key["account_id"].as_str().unwrap().to_owned();

    let setup: serde_json::Value = serde_json::from_str(&cli(
        dir.path(),
        &[
            "setup",
            "--external-id",
            "org-42",
            "--endpoint",
            &url,
            "--json",
        ],
    ))
    .unwrap();
    let channel_arn = setup["channel_arn"].as_str().unwrap().to_owned();
    let store_id = setup["event_data_store_id"].as_str().unwrap().to_owned();
    assert!(channel_arn.contains(&format!(":{account}:channel/")));

    let creds = ctd::config::Credentials::new(
        key["access_key_id"].as_str().unwrap(),
        key["secret_access_key"].as_str().unwrap(),
        None,
        None,
        "test",
    );
    let client = ctd::Client::from_conf(
        ctd::Config::builder()
            .behavior_version(ctd::config::BehaviorVersion::latest())
            .region(ctd::config::Region::new("us-east-1"))
            .endpoint_url(&url)
            .credentials_provider(creds)
            .build(),
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut acked = 0;
    for batch in 0..5 {
        let events: Vec<_> = (0..20)
            .map(|i| {
                let n = batch * 20 + i;
                let t = time::OffsetDateTime::from_unix_timestamp(now - 200 + n).unwrap();
                let data = serde_json::json!({
                    "version": "1.0",
                    "userIdentity": {"type": "User", "principalId": format!("user-{n}")},
                    "eventSource": "auditlake.test",
                    "eventName": "org.user.add",
                    "eventTime": t.format(&time::format_description::well_known::Rfc3339).unwrap(),
                    "UID": format!("e{n}"),
                    "recipientAccountId": account,
                    "additionalEventData": {"n": n}
                });
                ctd::types::AuditEvent::builder()
                    .id(format!("e{n}"))
                    .event_data(data.to_string())
                    .build()
                    .unwrap()
            })
            .collect();
        let out = client
            .put_audit_events()
            .channel_arn(&channel_arn)
            .external_id("org-42")
            .set_audit_events(Some(events))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
        acked += out.successful().len();
    }
    assert_eq!(acked, 100);

    // A wrong External ID is refused by the policy `setup` wrote.
    let err = client
        .put_audit_events()
        .channel_arn(&channel_arn)
        .external_id("org-43")
        .audit_events(
            ctd::types::AuditEvent::builder()
                .id("x")
                .event_data("{}")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        err.into_service_error(),
        ctd::operation::put_audit_events::PutAuditEventsError::ChannelInsufficientPermission(_)
    ));

    // Kill -9 right after the acknowledgements, then restart on the same
    // directory.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let (mut child, url, _) = lake_serve(dir.path());

    let rows: serde_json::Value = serde_json::from_str(&cli(
        dir.path(),
        &[
            "query",
            "--endpoint",
            &url,
            "--json",
            &format!("select count(*) as n, count(distinct eventdata.uid) as u from {store_id}"),
        ],
    ))
    .unwrap();
    assert_eq!(rows, serde_json::json!([{"n": "100", "u": "100"}]));

    let table = cli(
        dir.path(),
        &[
            "query",
            "--endpoint",
            &url,
            &format!(
                "select eventtime, eventdata.useridentity, eventdata.eventname, eventdata.additionaleventdata\nfrom {store_id} order by eventTime desc limit 10"
            ),
        ],
    );
    assert!(table.contains("eventname"), "{table}");
    assert!(table.contains("principalid=user-99"), "{table}");
    assert!(
        !table.contains("principalid=user-89,"),
        "only the newest ten: {table}"
    );
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}
