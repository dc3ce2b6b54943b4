//! Helpers the CLI's end-to-end tests share: the binary, processes that are
//! killed when a test ends, commands whose output is JSON.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_auditlake");

/// Kills the child when the test ends, also on a panic.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `auditlake ARGS` and reads stdout until a line starts with each
/// of `wanted`; returns the process and the rest of each such line. The
/// rest of stdout is read (and dropped) on a thread, so a line the process
/// prints later never meets a closed or full pipe.
pub fn spawn_until(args: &[&str], env: &[(&str, &str)], wanted: &[&str]) -> (Killed, Vec<String>) {
    let mut cmd = Command::new(BIN);
    cmd.env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true");
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
    std::thread::spawn(move || lines.for_each(drop));
    (
        Killed(child),
        found.into_iter().map(Option::unwrap).collect(),
    )
}

/// Runs `auditlake ARGS`, which must succeed; its stdout.
pub fn run(args: &[&str]) -> String {
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

pub fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs `auditlake ARGS`, which must succeed and print JSON.
pub fn run_json(args: &[&str]) -> Value {
    json_of(&run(args))
}
