//! Task attempts: their identity and their state machine.
//!
//! ```text
//! PENDING ──► STAGING ──► RUNNING ──► FINISHED
//!                │           ├──────► FAILED
//!                │           ├──────► KILLED
//!                └───────────┴──────► LOST   (its agent stopped heartbeating)
//! ```

mod descriptor;
mod map_table;

pub use descriptor::{
    Aggregate, CachePut, CachedRead, Combiner, Data, DriverWork, Partitioning, ShuffleRead, ShuffleWrite,
    TaskBody, TaskDescriptor, TaskInput, TaskOutput, TaskWork, TextSplitRef,
};
pub use map_table::{BlockSizes, MapStatus, MapTable};

use crate::ids::{ActionId, JobId, StageId};
use serde::{Deserialize, Serialize};

/// The stage number that marks a job's driver task.
pub const DRIVER_STAGE: StageId = StageId(u32::MAX);

/// One attempt of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskKey {
    /// The action (or sample job, or driver) it belongs to.
    pub action: ActionId,
    /// The stage within the job.
    pub stage: StageId,
    /// The partition the task computes.
    pub partition: u32,
    /// The attempt, from 0.
    pub attempt: u32,
}

impl TaskKey {
    /// Attempt `attempt` of the driver of `job`.
    pub fn driver(job: JobId, attempt: u32) -> Self {
        Self { action: ActionId::driver(job), stage: DRIVER_STAGE, partition: 0, attempt }
    }

    /// The submitted job: shuffle files live under it, shared by its actions.
    pub fn job(&self) -> JobId {
        self.action.job
    }

    /// Whether this is a driver attempt.
    pub fn is_driver(&self) -> bool {
        self.stage == DRIVER_STAGE
    }
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_driver() {
            write!(f, "{}/driver#{}", self.action.job, self.attempt)
        } else {
            write!(f, "{}/{}/p{}#{}", self.action, self.stage, self.partition, self.attempt)
        }
    }
}

/// Where a task attempt is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Waiting for resources.
    Pending,
    /// Sent to an agent, not started yet (fetching the component, reading input).
    Staging,
    /// Running in a sandbox.
    Running,
    /// Ended successfully.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped on request.
    Killed,
    /// Its agent was lost.
    Lost,
}

impl TaskState {
    /// Whether the attempt has ended.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskState::Finished | TaskState::Failed | TaskState::Killed | TaskState::Lost)
    }

    /// Whether a move from `self` to `next` is allowed.
    pub fn can_become(self, next: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, next),
            (Pending, Staging)
                | (Staging, Running)
                | (Pending | Staging | Running, Killed | Lost)
                | (Staging | Running, Finished | Failed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;

    #[test]
    fn the_state_machine_only_moves_forward() {
        assert!(Pending.can_become(Staging) && Staging.can_become(Running) && Running.can_become(Finished));
        assert!(Running.can_become(Lost) && Pending.can_become(Killed));
        assert!(!Finished.can_become(Running), "a finished attempt never runs again");
        assert!(!Running.can_become(Pending));
        assert!(!Lost.can_become(Finished));
        assert!(Finished.is_terminal() && !Running.is_terminal());
    }
}
