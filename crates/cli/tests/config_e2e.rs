//! `auditlake config` as an operator runs it: every source at once (a flag,
//! the environment, the file, the defaults), and no secret in its output.

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_auditlake");

/// Runs `auditlake config ARGS` with only `env` of the AUDITLAKE_ variables.
fn config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUDITLAKE_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("config").args(args).envs(env.iter().copied());
    cmd.output().expect("run auditlake config")
}

#[test]
fn config_shows_each_value_with_its_source_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auditlake.toml");
    std::fs::write(
        &file,
        "query_timeout_secs = 7\nlisten = \"127.0.0.1:9\"\nquery_concurrency = 5\n\
         lake_secret_access_key = \"file-secret-value\"\nlake_access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\n",
    )
    .unwrap();
    let out = config(
        &["--json", "--listen", "127.0.0.1:10"],
        &[
            ("AUDITLAKE_CONFIG", file.to_str().unwrap()),
            ("AUDITLAKE_QUERY_CONCURRENCY", "3"),
            ("AUDITLAKE_LAKE_ACCOUNT_ID", "123456789012"),
            ("AUDITLAKE_METRICS_TOKEN", "env-secret-token"),
            (
                "AUDITLAKE_DATABASE_URL",
                "postgres://auditlake:db-password@db.internal/auditlake",
            ),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["file-secret-value", "env-secret-token", "db-password"] {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
    let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let row = |key: &str| {
        let row = rows
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("no row {key}: {stdout}"));
        (
            row["value"].clone(),
            row["source"].as_str().unwrap().to_owned(),
        )
    };
    let s = |v: &str| Value::String(v.to_owned());
    assert_eq!(row("listen"), (s("127.0.0.1:10"), "flag".into()));
    assert_eq!(row("query_concurrency"), (s("3"), "env".into()));
    assert_eq!(row("query_timeout_secs"), (s("7"), "file".into()));
    assert_eq!(row("query_memory_mib"), (s("1024"), "default".into()));
    assert_eq!(
        row("lake_access_key_id"),
        (s("AKIAIOSFODNN7EXAMPLE"), "file".into())
    );
    assert_eq!(
        row("lake_secret_access_key"),
        (s("(set, not shown)"), "file".into())
    );
    assert_eq!(row("metrics_token"), (s("(set, not shown)"), "env".into()));
    assert_eq!(
        row("database_url"),
        (
            s("postgres://auditlake:***@db.internal/auditlake"),
            "env".into()
        )
    );
    assert_eq!(row("cloudtrail_endpoint"), (Value::Null, "unset".into()));
    assert_eq!(row("config"), (s(file.to_str().unwrap()), "env".into()));
}

#[test]
fn config_refuses_what_serve_would_refuse() {
    // A partial lake key, and a per-account limit above the total.
    for (env, wanted) in [
        (
            ("AUDITLAKE_LAKE_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            "a lake key needs all three",
        ),
        (
            ("AUDITLAKE_QUERY_CONCURRENCY_PER_ACCOUNT", "9"),
            "lake query limits",
        ),
    ] {
        let out = config(&[], &[env]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} accepted");
        assert!(stderr.contains(wanted), "{env:?}: {stderr}");
    }
}
