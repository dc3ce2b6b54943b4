//! Waiting until a condition holds, with a deadline.
//!
//! Tests that drive real processes, databases and sockets cannot know when
//! the other side is done, so they look again and again: [`wait_until`]
//! polls an async check, [`wait_until_blocking`] a blocking one, and both
//! panic after a deadline with a message naming what was awaited and the
//! last state the check reported. [`try_wait_until`] is the same loop for
//! tools that report errors instead of panicking.
//!
//! The async waits run on tokio's clock ([`tokio::time`]): under a paused
//! clock (`#[tokio::test(start_paused = true)]`) their sleeps advance it
//! instead of taking real time, so code on tokio time can be awaited too.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

/// How often [`wait_until`] looks: often enough that a condition is seen
/// soon after it holds, seldom enough that polling a server does not
/// compete with the work being awaited.
pub const EVERY: Duration = Duration::from_millis(20);

/// What a check reports: done with a value, or not yet (with the state it
/// saw, for the message when the deadline passes).
pub trait Progress {
    /// The value when done.
    type Done;
    /// `Ok` when done; otherwise the state seen, if the check gave one.
    fn into_progress(self) -> Result<Self::Done, Option<String>>;
}

/// `true` is done.
impl Progress for bool {
    type Done = ();
    fn into_progress(self) -> Result<(), Option<String>> {
        if self {
            Ok(())
        } else {
            Err(None)
        }
    }
}

/// `Some(value)` is done.
impl<T> Progress for Option<T> {
    type Done = T;
    fn into_progress(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)` is done; `Err(state)` is not yet, and the last `state` is
/// shown if the deadline passes.
impl<T, E: Debug> Progress for Result<T, E> {
    type Done = T;
    fn into_progress(self) -> Result<T, Option<String>> {
        self.map_err(|state| Some(format!("{state:?}")))
    }
}

fn timed_out(what: &str, within: Duration, last: Option<String>) -> ! {
    match last {
        Some(state) => panic!("timed out after {within:?} waiting until {what}; last: {state}"),
        None => panic!("timed out after {within:?} waiting until {what}"),
    }
}

/// Runs `check` every [`EVERY`] until it reports done, and returns its
/// value; panics when `within` passes first, naming `what` ("the
/// integration is caught up") and the last state seen.
pub async fn wait_until<P, F, Fut>(what: &str, within: Duration, check: F) -> P::Done
where
    P: Progress,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    wait_until_every(what, within, EVERY, check).await
}

/// [`wait_until`], looking every `every`: for checks that are expensive
/// themselves, such as running a process.
pub async fn wait_until_every<P, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> P::Done
where
    P: Progress,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await.into_progress() {
            Ok(done) => return done,
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            timed_out(what, within, last);
        }
        tokio::time::sleep(every).await;
    }
}

/// [`wait_until`] for a blocking `check`, on the real clock.
pub fn wait_until_blocking<P, F>(what: &str, within: Duration, mut check: F) -> P::Done
where
    P: Progress,
    F: FnMut() -> P,
{
    let mut last = None;
    let done = poll_blocking(within, || match check().into_progress() {
        Ok(done) => Some(done),
        Err(state) => {
            last = state;
            None
        }
    });
    done.unwrap_or_else(|| timed_out(what, within, last))
}

/// Runs `check` every [`EVERY`] until it gives `Some`, blocking the thread
/// in between; `None` when `within` passes first.
// The one sleep on a thread the workspace allows (clippy.toml bans
// `std::thread::sleep`): a blocking check has nothing to await, and this
// names the condition slept for.
#[allow(clippy::disallowed_methods)]
pub(crate) fn poll_blocking<T>(
    within: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(done) = check() {
            return Some(done);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(EVERY);
    }
}

/// Runs the fallible `check` every `every` until it gives `Some` value or
/// an error; `Ok(None)` when `within` passes first. For tools, which
/// report a deadline as an error of their own rather than panic.
pub async fn try_wait_until<T, E, F, Fut>(
    within: Duration,
    every: Duration,
    mut check: F,
) -> Result<Option<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(done) = check().await? {
            return Ok(Some(done));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    // These run on tokio's paused clock: the waits below last minutes of
    // tokio time and no real time.

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_check_gives_one() {
        let start = tokio::time::Instant::now();
        let calls = Cell::new(0);
        let v = wait_until("the third call", Duration::from_secs(60), || async {
            calls.set(calls.get() + 1);
            (calls.get() == 3).then_some("done")
        })
        .await;
        assert_eq!(v, "done");
        assert_eq!(calls.get(), 3);
        assert_eq!(start.elapsed(), EVERY * 2, "one pause between calls");
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out after 60s waiting until never; last: 7")]
    async fn panics_at_the_deadline_naming_the_wait_and_the_last_state() {
        wait_until("never", Duration::from_secs(60), || async {
            Err::<(), _>(7)
        })
        .await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_passes_on_tokio_time() {
        let start = tokio::time::Instant::now();
        let out = try_wait_until(Duration::from_secs(600), Duration::from_secs(1), || async {
            Ok::<Option<()>, ()>(None)
        })
        .await;
        assert_eq!(out, Ok(None));
        assert_eq!(start.elapsed(), Duration::from_secs(600));
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_wait_at_once() {
        let out = try_wait_until(Duration::from_secs(60), EVERY, || async {
            Err::<Option<()>, _>("broken")
        })
        .await;
        assert_eq!(out, Err("broken"));
    }

    #[test]
    #[should_panic(expected = "waiting until it is true")]
    fn the_blocking_wait_panics_at_its_deadline() {
        wait_until_blocking("it is true", Duration::from_millis(50), || false);
    }
}
