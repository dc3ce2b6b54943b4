//! The dashboard in real headless Chromium (Debian's `/usr/bin/chromium`,
//! driven by `playwright-core`; both installed by `scripts/ensure-browser.sh`,
//! which the test command runs): the real server, with its own lake and the
//! forwarder sending to it, walked through the seed's flow by
//! `tests/browser/dashboard.mjs`. Screenshots of every step are kept in
//! `target/dashboard-screenshots/`.

use std::path::PathBuf;
use std::process::Command;

mod common;

use common::{run_json as run, spawn_until, BIN};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_dashboard_flow_in_chromium() {
    let browser_dir = repo().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir() && PathBuf::from("/usr/bin/chromium").exists(),
        "Chromium or playwright-core is missing: run scripts/ensure-browser.sh (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let db = format!("sqlite://{data}/auditlake.db");
    let boot = run(&["admin", "bootstrap", "--json", "--database-url", &db]);
    let other_user = run(&[
        "admin",
        "create-user",
        "--json",
        "--database-url",
        &db,
        "--email",
        "other@example.com",
        "--name",
        "Other",
    ]);
    let other = run(&[
        "admin",
        "create-org",
        "--json",
        "--database-url",
        &db,
        "--name",
        "Other Org",
        "--admin-email",
        "other@example.com",
    ]);
    assert!(other_user["user_id"].is_string());
    let other_token = run(&[
        "admin",
        "create-token",
        "--json",
        "--database-url",
        &db,
        "--email",
        "other@example.com",
    ]);
    let password = "correct horse battery staple";
    let out = Command::new(BIN)
        .args([
            "admin",
            "set-password",
            "--database-url",
            &db,
            "--email",
            "admin@example.com",
        ])
        .env("AUDITLAKE_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (_server, announced) = spawn_until(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lake-listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--database-url",
            &db,
            "--cloudtrail-endpoint",
            "local",
        ],
        &[],
        &["auditlake listening on ", "auditlake lake listening on "],
    );
    let (base, lake) = (announced[0].clone(), announced[1].clone());
    let org = boot["org_id"].as_str().unwrap();
    // The console step in the server's own lake, with the org's ID.
    let setup = run(&[
        "lake",
        "setup",
        "--json",
        "--external-id",
        org,
        "--data-dir",
        &data,
        "--endpoint",
        &lake,
    ]);
    let channel_arn = setup["channel_arn"].as_str().unwrap();
    let account = channel_arn.split(':').nth(4).unwrap();

    // A settings edit, for the audit log's before/after.
    let token = boot["token"].as_str().unwrap();
    let res = reqwest::Client::new()
        .patch(format!("{base}/rest/orgs/{org}?version=2024-10-15"))
        .header("authorization", format!("token {token}"))
        .header("content-type", "application/vnd.api+json")
        .body(
            serde_json::json!({"data": {"type": "org", "id": org, "attributes": {"settings": {"require_mfa": true}}}})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let shots = repo().join("target/dashboard-screenshots");
    let out = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .env("BASE", &base)
        .env("TOKEN", token)
        .env("EMAIL", "admin@example.com")
        .env("PASSWORD", password)
        .env("ORG_ID", org)
        .env("GROUP_ID", boot["group_id"].as_str().unwrap())
        .env("ACCOUNT", account)
        .env("CHANNEL_ARN", channel_arn)
        .env("OTHER_ORG_ID", other["org_id"].as_str().unwrap())
        .env("OTHER_TOKEN", other_token["token"].as_str().unwrap())
        .env("SHOTS", &shots)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
