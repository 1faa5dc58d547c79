//! One deadline for the whole attempt, and whose fault it is when it passes.
//!
//! A task's deadline covers guest code and host work alike, but the two fail
//! differently: a guest that is still computing when the clock runs out is
//! the user's problem (`Deadline`, not retried), while an attempt held up by a
//! slow peer or a slow object store is the host's (`HostError`, retried, on
//! another agent if need be). The verdict is taken from what the attempt was
//! doing at that instant, never from an error's text:
//!
//! | when the clock runs out, | the verdict |
//! |---|---|
//! | the guest is in a call (its own code, or a host call it made, such as a sleep) | `Deadline`, from the sandbox |
//! | the guest job waits for its next input batch | `HostError`: the input's host work under way |
//! | the guest job waits for room in the output channel | `HostError`: the output's host work under way |
//! | the guest is done and the output is still being written or committed | `HostError`: that work |
//!
//! Each side of the attempt keeps a [`Doing`] register of the host work it has
//! in flight (a block fetch, a ranged read, a part upload, a commit), so the
//! message names what stalled: "the deadline of 30s passed while fetching
//! shuffle block shuffle_2_3_0_1 from 127.0.0.1:4567".
//!
//! The [`Clock`] starts when the guest job starts on its pool thread (as the
//! sandbox's own deadline does, so time queued for a thread is not charged to
//! the task), and the guest job, the sandbox instance, the input and output
//! sides all use that one instant. A side still at host work when it passes is
//! cut off ([`Clock::bound`]); a side only waiting for the guest is left to the
//! guest's verdict.

use super::error::ExecError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The attempt's deadline: unset until the guest job starts, then fixed.
#[derive(Clone)]
pub(super) struct Clock {
    limit: Duration,
    deadline: Arc<watch::Sender<Option<Instant>>>,
}

impl Clock {
    /// A clock for an attempt allowed `limit`, not started yet.
    pub fn new(limit: Duration) -> Self {
        Self { limit, deadline: Arc::new(watch::channel(None).0) }
    }

    /// Start the clock now, unless it already runs; the deadline either way.
    pub fn start(&self) -> Instant {
        let mut deadline = Instant::now() + self.limit;
        self.deadline.send_if_modified(|set| match set {
            Some(already) => {
                deadline = *already;
                false
            }
            None => {
                *set = Some(deadline);
                true
            }
        });
        deadline
    }

    /// Resolves once the clock has started and its deadline has passed.
    async fn passed(&self) {
        let mut started = self.deadline.subscribe();
        let deadline = match started.wait_for(Option::is_some).await {
            Ok(set) => *set,
            // The sender lives as long as `self`: cannot happen.
            Err(_) => None,
        };
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    /// The failure of an attempt whose deadline passed while the host was
    /// `doing` something.
    pub fn stalled(&self, doing: impl Into<String>) -> ExecError {
        ExecError::Stalled { limit: self.limit, doing: doing.into() }
    }

    /// Run one side's `work` to its end, unless the deadline passes while
    /// that side has host work in flight: then `work` is dropped (cancelling
    /// the fetch, read or upload) and the result is [`ExecError::Stalled`]
    /// naming the oldest work under way. A side that is only waiting for the
    /// guest when the clock runs out is left alone: the guest job stops at the
    /// deadline and the side then ends by itself.
    pub async fn bound<T>(
        &self,
        doing: &Doing,
        work: impl Future<Output = Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        tokio::select! {
            biased;
            result = work => result,
            what = async {
                self.passed().await;
                doing.busy().await
            } => Err(self.stalled(what)),
        }
    }
}

/// The host work one side of an attempt has in flight, oldest first.
///
/// Cheap to clone (clones share the register); usable from blocking threads.
#[derive(Clone)]
pub(super) struct Doing {
    work: Arc<watch::Sender<Work>>,
}

#[derive(Default)]
struct Work {
    next: u64,
    pending: BTreeMap<u64, String>,
    /// The work [`Clock::bound`] cut off, kept so that the guest job, racing
    /// to the same deadline, still finds it after the work is gone.
    stalled: Option<String>,
}

impl Default for Doing {
    fn default() -> Self {
        Self { work: Arc::new(watch::channel(Work::default()).0) }
    }
}

impl Doing {
    /// Note that `what` ("fetching shuffle block …") is under way until the
    /// returned guard is dropped (also when its future is cancelled).
    pub fn begin(&self, what: impl Into<String>) -> Underway {
        let what = what.into();
        let mut id = 0;
        self.work.send_modify(|work| {
            id = work.next;
            work.next += 1;
            work.pending.insert(id, what);
        });
        Underway { doing: self.clone(), id }
    }

    /// The oldest work under way, or the work that was cut off for stalling.
    pub fn current(&self) -> Option<String> {
        let work = self.work.borrow();
        work.pending.values().next().or(work.stalled.as_ref()).cloned()
    }

    /// The oldest work under way, once there is any, recorded as stalled.
    async fn busy(&self) -> String {
        let mut changes = self.work.subscribe();
        let current = match changes.wait_for(|work| !work.pending.is_empty()).await {
            Ok(work) => work.pending.values().next().cloned(),
            Err(_) => None,
        };
        match current {
            Some(what) => {
                self.work.send_modify(|work| work.stalled = Some(what.clone()));
                what
            }
            None => std::future::pending().await,
        }
    }
}

/// Host work under way; dropping it ends it.
#[must_use = "the work counts as under way only while the guard lives"]
pub(super) struct Underway {
    doing: Doing,
    id: u64,
}

impl Drop for Underway {
    fn drop(&mut self) {
        let id = self.id;
        self.doing.work.send_modify(|work| {
            work.pending.remove(&id);
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_work_under_way_is_named_and_dropped_work_is_gone() {
        let doing = Doing::default();
        assert_eq!(doing.current(), None);
        let first = doing.begin("fetching a");
        let second = doing.begin("fetching b");
        assert_eq!(doing.current().as_deref(), Some("fetching a"));
        drop(first);
        assert_eq!(doing.current().as_deref(), Some("fetching b"));
        drop(second);
        assert_eq!(doing.current(), None);
    }

    #[tokio::test]
    async fn a_side_at_host_work_is_cut_off_and_a_side_waiting_for_the_guest_is_not() {
        let clock = Clock::new(Duration::from_millis(30));
        let doing = Doing::default();
        // Not started: nothing is bounded yet, so quick work just finishes.
        assert_eq!(clock.bound(&doing, async { Ok(7) }).await.unwrap(), 7);
        let deadline = clock.start();
        assert_eq!(clock.start(), deadline, "the clock starts once");

        let stalled = clock
            .bound(&doing, async {
                let _reading = doing.begin("reading split 0..10 of file:///in.txt");
                std::future::pending::<Result<(), ExecError>>().await
            })
            .await
            .unwrap_err();
        assert!(Instant::now() >= deadline);
        assert_eq!(
            stalled.to_string(),
            "the deadline of 30ms passed while reading split 0..10 of file:///in.txt"
        );
        // The cut-off work is no longer under way, but is still named as what
        // stalled, for the guest job racing to the same deadline.
        assert_eq!(doing.current().as_deref(), Some("reading split 0..10 of file:///in.txt"));
        assert_eq!(doing.work.borrow().pending.len(), 0);

        // Past the deadline, but idle (waiting for the guest): it ends by itself.
        let idle = clock.bound(&doing, async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok("done")
        });
        assert_eq!(idle.await.unwrap(), "done");
    }
}
