//! Helpers the CLI's end-to-end tests share: the binary, started the way
//! the tests start it (the spawning itself is `auditlake-testkit`'s),
//! commands whose output is JSON.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

pub use auditlake_testkit::Killed;

pub const BIN: &str = env!("CARGO_BIN_EXE_auditlake");

/// The binary `spawn_until` and `run` start: [`BIN`], or the one
/// `AUDITLAKE_TEST_BIN` names (a release build, to measure it).
pub fn bin() -> std::ffi::OsString {
    std::env::var_os("AUDITLAKE_TEST_BIN").unwrap_or_else(|| BIN.into())
}

/// Spawns `auditlake ARGS` with `env` and reads stdout until a line starts
/// with each of `wanted`; returns the process, killed when dropped, and the
/// rest of each such line (see [`auditlake_testkit::spawn_until`]). The
/// child sees no AWS configuration of the machine running the tests and no
/// lake key from their environment.
pub fn spawn_until(args: &[&str], env: &[(&str, &str)], wanted: &[&str]) -> (Killed, Vec<String>) {
    let mut cmd = Command::new(bin());
    cmd.env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd.args(args)
        .env("AUDITLAKE_LOG", "warn")
        .env_remove("AUDITLAKE_LAKE_ACCESS_KEY_ID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    auditlake_testkit::spawn_until(&mut cmd, wanted)
}

/// Runs `auditlake ARGS`, which must succeed; its stdout.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(bin())
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

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `auditlake ARGS`, which must succeed and print JSON.
pub fn run_json(args: &[&str]) -> Value {
    json_of(&run(args))
}

/// An `auditlake serve` with its own lake, bootstrapped, and a channel of
/// that lake for the bootstrapped org, as the end-to-end tests of both
/// listeners use it.
pub struct ServedLake {
    /// The server process.
    pub server: Killed,
    /// The API's URL.
    pub api: String,
    /// The lake's URL.
    pub lake: String,
    /// The bootstrapped admin's token.
    pub token: String,
    /// The bootstrapped org: the channel's External ID.
    pub org: String,
    /// The key the lake generated.
    pub key: auditlake_cloudtrail::AccessKey,
    /// The channel for the org's External ID.
    pub channel_arn: String,
    /// The store it feeds.
    pub store_id: String,
}

impl ServedLake {
    /// Bootstraps `db_url`, serves it with its lake and `extra` flags from
    /// `data`, and sets up a channel for the bootstrapped org.
    pub fn start(data: &str, db_url: &str, extra: &[&str]) -> Self {
        let boot = run_json(&["admin", "bootstrap", "--json", "--database-url", db_url]);
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--lake-listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--database-url",
            db_url,
        ];
        args.extend_from_slice(extra);
        let (server, announced) = spawn_until(
            &args,
            &[],
            &["auditlake listening on ", "auditlake lake listening on "],
        );
        let org = boot["org_id"].as_str().unwrap().to_owned();
        let lake = announced[1].clone();
        let setup = run_json(&[
            "lake",
            "setup",
            "--json",
            "--external-id",
            &org,
            "--data-dir",
            data,
            "--endpoint",
            &lake,
        ]);
        let key = serde_json::from_value(json_of(
            &std::fs::read_to_string(std::path::Path::new(data).join("lake/lake-credentials.json"))
                .unwrap(),
        ))
        .unwrap();
        Self {
            server,
            api: announced[0].clone(),
            lake,
            token: boot["token"].as_str().unwrap().to_owned(),
            org,
            key,
            channel_arn: setup["channel_arn"].as_str().unwrap().to_owned(),
            store_id: setup["event_data_store_id"].as_str().unwrap().to_owned(),
        }
    }
}

/// The 99th percentile (nearest rank) of `times`.
pub fn p99(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[(times.len() * 99 / 100).min(times.len() - 1)]
}
