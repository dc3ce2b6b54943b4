//! The real `auditlake` binary as a child process: `admin bootstrap`, then
//! `serve` on a loopback port, and its memory as the kernel reports it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use auditlake_testkit::{try_spawn_until, try_wait_until, Killed};
use uuid::Uuid;

/// What `auditlake admin bootstrap --json` created.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The admin user.
    pub user_id: Uuid,
    /// The admin's API token.
    pub token: String,
    /// The group the admin administers.
    pub group_id: Uuid,
    /// The org inside that group.
    pub org_id: Uuid,
}

/// A command for the server binary with a clean configuration: no config
/// file or data directory inherited from the caller's environment.
fn command(bin: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for var in [
        "AUDITLAKE_CONFIG",
        "AUDITLAKE_DATA_DIR",
        "AUDITLAKE_DATABASE_URL",
        "AUDITLAKE_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `auditlake admin bootstrap --json` against `url`.
pub async fn bootstrap(bin: &Path, url: &str) -> anyhow::Result<Boot> {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::from(command(bin))
            .args(["admin", "bootstrap", "--json", "--database-url", url])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("auditlake admin bootstrap did not finish within 120 s")?
    .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "auditlake admin bootstrap failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| anyhow!("no JSON in the bootstrap output: {stdout}"))?;
    let v: serde_json::Value = serde_json::from_str(line).context("bootstrap JSON")?;
    let id = |k: &str| -> anyhow::Result<Uuid> {
        v[k].as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| anyhow!("bootstrap JSON lacks {k}: {line}"))
    };
    Ok(Boot {
        user_id: id("user_id")?,
        token: v["token"]
            .as_str()
            .ok_or_else(|| anyhow!("bootstrap JSON lacks token"))?
            .to_owned(),
        group_id: id("group_id")?,
        org_id: id("org_id")?,
    })
}

/// A running `auditlake serve`.
pub struct Server {
    child: Killed,
    /// Its process ID.
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Server {
    /// Starts `auditlake serve` on a free loopback port and waits for its
    /// `auditlake listening on http://ADDR` line.
    pub async fn start(bin: &Path, url: &str, log: PathBuf) -> anyhow::Result<Self> {
        // The benchmark measures the REST server, not the per-token limit;
        // the lake (issue 4, measured by its own bench) would take port
        // 8081 and a directory under the working directory.
        let args = [
            "serve",
            "--no-lake",
            "--listen",
            "127.0.0.1:0",
            "--rate-limit-per-minute",
            "0",
            "--database-url",
            url,
        ];
        let (server, _) = Self::start_with(bin, &args, &[], &[], log).await?;
        Ok(server)
    }

    /// Starts the binary with `args` (and `envs` on top of the cleaned
    /// environment) and waits until it announces `auditlake listening on
    /// http://ADDR` on loopback and a line starting with each of `more`.
    /// Returns the server and the rest of those lines, the address first.
    pub async fn start_with(
        bin: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        more: &[&str],
        log: PathBuf,
    ) -> anyhow::Result<(Self, Vec<String>)> {
        const LISTENING: &str = "auditlake listening on http://";
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("creating server log {}", log.display()))?;
        let mut cmd = command(bin);
        cmd.args(args)
            .envs(envs.iter().copied())
            .stderr(Stdio::from(log_file));
        let wanted: Vec<String> = std::iter::once(LISTENING)
            .chain(more.iter().copied())
            .map(str::to_owned)
            .collect();
        // Reading the announcement blocks; it is done off the runtime.
        let (child, announced) = tokio::task::spawn_blocking(move || {
            let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
            try_spawn_until(&mut cmd, &wanted, Duration::from_secs(60))
        })
        .await?
        .with_context(|| format!("starting {} (log: {})", bin.display(), log.display()))?;
        let addr = announced[0].clone();
        let sock: std::net::SocketAddr = addr.parse().context("server address")?;
        if !sock.ip().is_loopback() {
            bail!("server listens on {sock}, not on loopback");
        }
        Ok((
            Server {
                pid: child.id(),
                child,
                base: format!("http://{addr}"),
            },
            announced,
        ))
    }

    /// Asks the server to stop (SIGTERM, a graceful shutdown), killing it
    /// when it has not exited after 20 s.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        let child = &mut self.child.0;
        let exited = try_wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            std::future::ready(child.try_wait())
        })
        .await?;
        if exited.is_none() {
            eprintln!("server {} ignored SIGTERM for 20 s; killing it", self.pid);
            child.kill()?;
        }
        Ok(())
    }
}

/// `VmRSS` and `VmHWM` (peak RSS since start) of a process, in bytes.
pub fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples a process's `VmRSS` every 50 ms in the background and keeps the
/// largest value seen, until stopped.
pub struct RssSampler {
    max: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (max.clone(), stop.clone());
        let task = tokio::spawn(async move {
            // Bounded: at most an hour of samples even if never stopped.
            for _ in 0..72_000 {
                match rss(pid) {
                    Some((now, _)) => {
                        m.fetch_max(now, Ordering::Relaxed);
                    }
                    None => break,
                }
                if s.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { max, stop, task }
    }

    /// Stops sampling; the largest `VmRSS` seen, in bytes.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.max.load(Ordering::Relaxed)
    }
}
