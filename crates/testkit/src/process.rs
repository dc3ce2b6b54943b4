//! A child process that announces itself on standard output.
//!
//! auditlake's servers bind port 0 and print where they listen (and where
//! they wrote generated credentials) as their first lines. A test or a
//! benchmark starts one with [`spawn_until`] or [`try_spawn_until`], which
//! read stdout until a line starts with each wanted prefix and return the
//! rest of those lines. Standard output keeps being read (and dropped) on a
//! thread afterwards, so a line the process prints later never meets a full
//! or closed pipe. The process is killed when its [`Killed`] handle is
//! dropped, also when a test panics.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long [`spawn_until`] waits for the announcement. A server that has
/// not printed its address by then is stuck rather than slow: starting
/// one takes seconds even in a debug build on a busy machine.
pub const ANNOUNCE_WITHIN: Duration = Duration::from_secs(120);

/// A child process that is killed (and reaped) when this is dropped.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Killed {
    /// The child's process ID.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why a process did not announce itself.
#[derive(Debug)]
pub enum SpawnError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It closed its standard output (it exited, most likely) before a line
    /// started with each of `missing`.
    Exited {
        /// The prefixes no line started with.
        missing: Vec<String>,
        /// Its exit status, when it has one.
        status: Option<ExitStatus>,
        /// Everything it printed.
        printed: Vec<String>,
    },
    /// The deadline passed before a line started with each of `missing`;
    /// the process has been killed.
    TimedOut {
        /// The deadline.
        within: Duration,
        /// The prefixes no line started with.
        missing: Vec<String>,
        /// Everything it printed.
        printed: Vec<String>,
    },
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "could not start the process: {e}"),
            Self::Exited {
                missing,
                status,
                printed,
            } => write!(
                f,
                "the process exited ({status:?}) before announcing {missing:?}; it printed {printed:?}"
            ),
            Self::TimedOut {
                within,
                missing,
                printed,
            } => write!(
                f,
                "the process did not announce {missing:?} within {within:?}; it printed {printed:?}"
            ),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            _ => None,
        }
    }
}

/// Spawns `cmd` with its stdout piped and reads stdout until, for each of
/// `wanted`, a line starts with it (leading whitespace aside); returns the
/// process and the rest of the first such line for each, trimmed, in the
/// order of `wanted`. Panics when that does not happen within
/// [`ANNOUNCE_WITHIN`]; see [`try_spawn_until`].
pub fn spawn_until(cmd: &mut Command, wanted: &[&str]) -> (Killed, Vec<String>) {
    try_spawn_until(cmd, wanted, ANNOUNCE_WITHIN)
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()))
}

/// [`spawn_until`] with a deadline of `within`, failing rather than
/// panicking: the process is killed on failure.
pub fn try_spawn_until(
    cmd: &mut Command,
    wanted: &[&str],
    within: Duration,
) -> Result<(Killed, Vec<String>), SpawnError> {
    let deadline = Instant::now() + within;
    let mut child = Killed(
        cmd.stdout(Stdio::piped())
            .spawn()
            .map_err(SpawnError::Spawn)?,
    );
    let stdout = child.0.stdout.take().expect("stdout is piped");
    // A blocking read has no deadline, so a thread reads and hands the
    // lines over; once nobody takes them it goes on reading, for the life
    // of the process, and drops them.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            if let Some(sender) = &tx {
                let line = String::from_utf8_lossy(&line).into_owned();
                if sender.send(line).is_err() {
                    tx = None;
                }
            }
        }
    });
    let mut found: Vec<Option<String>> = vec![None; wanted.len()];
    let mut printed = Vec::new();
    let missing = |found: &[Option<String>]| -> Vec<String> {
        wanted
            .iter()
            .zip(found)
            .filter(|(_, f)| f.is_none())
            .map(|(w, _)| (*w).to_owned())
            .collect()
    };
    while found.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(SpawnError::TimedOut {
                    within,
                    missing: missing(&found),
                    printed,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Stdout closed: the process is exiting; it is given a
                // moment to be reaped so that its status can be reported.
                let status = crate::wait::poll_blocking(Duration::from_secs(1), || {
                    child.0.try_wait().ok().flatten()
                });
                return Err(SpawnError::Exited {
                    missing: missing(&found),
                    status,
                    printed,
                });
            }
        };
        let text = line.trim_start();
        for (slot, w) in found.iter_mut().zip(wanted) {
            if slot.is_none() {
                if let Some(rest) = text.strip_prefix(w) {
                    *slot = Some(rest.trim().to_owned());
                }
            }
        }
        printed.push(line);
    }
    Ok((child, found.into_iter().map(Option::unwrap).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn returns_the_rest_of_each_announced_line_in_the_order_asked() {
        let (_child, got) = spawn_until(
            &mut sh("echo noise; echo '  b: two '; echo 'a: one'; sleep 30"),
            &["a: ", "b: "],
        );
        assert_eq!(got, ["one", "two"]);
    }

    #[test]
    fn a_process_that_exits_first_is_reported_with_what_it_printed() {
        let err = try_spawn_until(
            &mut sh("echo hello; exit 3"),
            &["listening on "],
            Duration::from_secs(30),
        )
        .unwrap_err();
        match err {
            SpawnError::Exited {
                missing, printed, ..
            } => {
                assert_eq!(missing, ["listening on "]);
                assert_eq!(printed, ["hello"]);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_silent_process_times_out_and_is_killed() {
        let started = Instant::now();
        let err = try_spawn_until(
            &mut sh("sleep 30"),
            &["listening on "],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, SpawnError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_after_the_announcement_never_blocks_the_process() {
        // More than a pipe holds (64 KiB), printed after the announcement;
        // the process can exit only if somebody keeps reading.
        let (mut child, _) = spawn_until(
            &mut sh("echo ready; head -c 1000000 /dev/zero | tr '\\0' x; echo"),
            &["ready"],
        );
        let status =
            crate::wait::wait_until_blocking("the process exits", Duration::from_secs(30), || {
                child.0.try_wait().unwrap()
            });
        assert!(status.success());
    }
}
