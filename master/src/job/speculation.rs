//! Speculative execution, as Spark's `spark.speculation`: once a share of a
//! stage's tasks ([`Speculation::quantile`]) has finished, a task running
//! longer than [`Speculation::multiplier`] times their median gets a copy
//! on another agent. The first of the two to finish is the task's end and
//! the other is killed ([`JobRun::take_kills`]); when one fails or is lost,
//! the other carries on as the task's attempt. Output stays exactly once:
//! a map output is the winner's (the loser's files are on another agent), a
//! text partition is committed by one attempt only (see the committer).
//! An original out-run by its copy counts against its agent, which the core
//! excludes as slow after a few; the tasks still running there are copied
//! at once (see `docs/architecture.md`, speculative execution).

use super::{EndReason, JobRun, JobState, Outcome, Slot};
use crate::free::{Demand, FreeIndex};
use std::time::{Duration, Instant};
use weft_core::ids::AgentId;
use weft_core::task::TaskKey;

/// When a running task is a straggler worth a second attempt.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Speculation {
    /// The share of a stage's tasks that must have finished before any of
    /// its tasks is speculated (Spark's `spark.speculation.quantile`).
    pub quantile: f64,
    /// How many times the median time of the stage's finished tasks a task
    /// must have run (Spark's `spark.speculation.multiplier`).
    pub multiplier: f64,
    /// Tasks that have run less than this are never speculated.
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub min_runtime: Duration,
}

impl Default for Speculation {
    fn default() -> Self {
        Self { quantile: 0.75, multiplier: 1.5, min_runtime: Duration::from_millis(100) }
    }
}

/// An attempt that lost to another attempt of its task, to kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loser {
    /// The attempt.
    pub key: TaskKey,
    /// Where it runs.
    pub agent: AgentId,
    /// It is an original its speculative copy out-ran: its agent was
    /// slower than the copy's.
    pub outrun: bool,
}

/// A speculative copy of a task's running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Copy {
    pub(super) attempt: u32,
    pub(super) agent: AgentId,
    pub(super) launched: u64,
    pub(super) started: Instant,
}

impl JobRun {
    /// Speculate on stragglers as `s` says (`None`: never).
    pub fn with_speculation(mut self, s: Option<Speculation>) -> Self {
        self.speculation = s;
        self
    }

    /// Attempts that lost to another attempt of their task, to kill, with
    /// their agents.
    pub fn take_kills(&mut self) -> Vec<Loser> {
        std::mem::take(&mut self.kills)
    }

    fn key(&self, i: usize, p: usize, attempt: u32) -> TaskKey {
        TaskKey { action: self.action, stage: self.graph.stages[i].id, partition: p as u32, attempt }
    }

    /// Find the stragglers at `now`: running tasks of stages far enough
    /// along that have run much longer than their stage's finished tasks,
    /// and tasks that have run [`Speculation::min_runtime`] on one of the
    /// `slow` agents. Each waits for a place for a copy; returns how many
    /// were found.
    pub fn speculate(&mut self, now: Instant, slow: &[AgentId]) -> usize {
        let Some(s) = self.speculation else { return 0 };
        if self.state != JobState::Running {
            return 0;
        }
        let mut found = 0;
        for i in 0..self.graph.stages.len() {
            let (n, done) = (self.tasks[i].len(), self.durations[i].len());
            if self.counts[i].running == 0 {
                continue;
            }
            let threshold = if n >= 2 && (done as f64) >= (s.quantile * n as f64).ceil() {
                if self.medians[i].0 != done {
                    let mut d = self.durations[i].clone();
                    let median = *d.select_nth_unstable(done / 2).1;
                    self.medians[i] = (done, median);
                }
                Duration::from_micros(self.medians[i].1).mul_f64(s.multiplier).max(s.min_runtime)
            } else if slow.is_empty() {
                continue;
            } else {
                Duration::MAX
            };
            for p in 0..n {
                let t = &mut self.tasks[i][p];
                let Slot::Running { agent, .. } = t.slot else { continue };
                let ran = t.started.map(|at| now.saturating_duration_since(at));
                let past = |d: Duration| ran.is_some_and(|r| r > d);
                if t.copy.is_none()
                    && !t.straggling
                    && (past(threshold) || (past(s.min_runtime) && slow.contains(&agent)))
                {
                    t.straggling = true;
                    self.stragglers[i].push_back(p as u32);
                    found += 1;
                }
            }
        }
        found
    }

    /// Place copies of stage `i`'s stragglers on agents other than their
    /// original's, up to `limit` placements in all; whether the offer is
    /// used up.
    pub(super) fn place_copies(
        &mut self,
        i: usize,
        free: &mut FreeIndex,
        demand: Demand,
        limit: usize,
        placed: &mut Vec<(TaskKey, AgentId)>,
        now: Instant,
    ) -> bool {
        while let Some(p) = self.stragglers[i].pop_front() {
            let t = &mut self.tasks[i][p as usize];
            t.straggling = false;
            let Slot::Running { agent: original, .. } = t.slot else { continue };
            if t.copy.is_some() {
                continue;
            }
            if free.is_empty() || placed.len() >= limit {
                t.straggling = true;
                self.stragglers[i].push_front(p);
                return true;
            }
            let Some(agent) = free.take_roomiest_except(demand, original) else {
                // Only its own agent has room: try again at the next offer.
                t.straggling = true;
                self.stragglers[i].push_front(p);
                return false;
            };
            let attempt = t.next_attempt;
            t.next_attempt += 1;
            self.launches += 1;
            t.copy = Some(Copy { attempt, agent, launched: self.launches, started: now });
            tracing::info!(task = %self.key(i, p as usize, attempt), %original, %agent, "a straggler's speculative copy");
            placed.push((self.key(i, p as usize, attempt), agent));
        }
        false
    }

    /// The copy `c` of task `p` of stage `i` becomes its attempt.
    pub(super) fn promote(&mut self, i: usize, p: usize, c: Copy) {
        let t = &mut self.tasks[i][p];
        t.slot = Slot::Running { attempt: c.attempt, agent: c.agent, launched: c.launched };
        t.started = Some(c.started);
        t.copy = None;
    }

    /// The copy `key` of a task of stage `i` ended: finished first, it is
    /// the task's end and the original is killed; otherwise it is dropped
    /// and the original carries on.
    pub(super) fn copy_ended(&mut self, i: usize, key: &TaskKey, outcome: Outcome) -> bool {
        let p = key.partition as usize;
        let Some(c) = self.tasks[i][p].copy.take() else { return false };
        if !matches!(outcome, Outcome::Finished { .. }) {
            return true;
        }
        if let Slot::Running { attempt, agent, .. } = self.tasks[i][p].slot {
            self.kills.push(Loser { key: self.key(i, p, attempt), agent, outrun: true });
        }
        self.promote(i, p, c);
        self.on_outcome(key, outcome)
    }

    /// The attempt `key` of a task of stage `i` with a running copy ended
    /// with `outcome`. Finished, or failed in its guest (the copy would
    /// fail alike), the copy is killed and the end is handled as any
    /// (`false`); otherwise the copy carries on as the task's attempt and
    /// the end is handled here (`true`).
    pub(super) fn main_ended(&mut self, i: usize, key: &TaskKey, outcome: &Outcome) -> bool {
        let p = key.partition as usize;
        let Some(c) = self.tasks[i][p].copy.take() else { return false };
        let launched = match self.tasks[i][p].slot {
            Slot::Running { launched, .. } => launched,
            _ => 0,
        };
        match outcome {
            Outcome::Finished { .. } => {
                self.kills.push(Loser { key: self.key(i, p, c.attempt), agent: c.agent, outrun: false });
                return false;
            }
            Outcome::Failed(end)
                if !end.is_retryable()
                    && !matches!(end, EndReason::FetchFailed { .. } | EndReason::CacheMiss { .. }) =>
            {
                self.kills.push(Loser { key: self.key(i, p, c.attempt), agent: c.agent, outrun: false });
                return false;
            }
            _ => {}
        }
        self.promote(i, p, c);
        match outcome {
            Outcome::Failed(EndReason::FetchFailed { shuffle, map, message }) => {
                self.fetch_lost(i, *shuffle, *map, message, launched);
            }
            Outcome::Failed(end) if end.is_retryable() => self.host_failure(i, key, end),
            _ => {}
        }
        true
    }
}
