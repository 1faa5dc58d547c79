//! Submitted jobs as the master keeps them: identity, driver, plan, results
//! of earlier actions; and the view of a job that clients read.

use crate::job::{MapOutputs, StageProgress};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weft_core::access::JobCapability;
use weft_core::artifact::Digest;
use weft_core::ids::{ActionId, AgentId, DatasetId, JobId, ShuffleId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::metering::TaskMetering;
use weft_core::plan::Plan;
use weft_core::task::Data;

/// Where a submitted job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Its driver waits for a slot or runs.
    Running,
    /// Its driver's `main` returned `Ok`.
    Succeeded,
    /// Its driver failed (or an action it could not go on without).
    Failed,
    /// Killed on request.
    Killed,
}

/// What a client submits.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// A name for people.
    pub name: String,
    /// Who submitted it.
    pub tenant: String,
    /// Its component.
    pub component: Digest,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its tasks' limits.
    pub limits: TaskLimits,
    /// Failures of one task before an action fails.
    pub max_task_attempts: u32,
    /// How many times its driver is started again on another agent when its
    /// agent is lost (Spark's `--supervise`).
    pub driver_restarts: u32,
    /// The driver's own wall-clock limit; `None` for none.
    pub deadline: Option<Duration>,
    /// The submitter's working directory, against which the job's relative
    /// local paths resolve; `None` from clients that do not send it.
    pub working_dir: Option<std::path::PathBuf>,
    /// What the job's tasks present to read its shuffle blocks from peers.
    pub capability: JobCapability,
    /// The most fuel its tasks may burn in all; `None` for no budget.
    pub fuel_budget: Option<u64>,
    /// The S3 settings of its tenant's grants that carry their own, as they
    /// were at submission: sent to the agents with its tasks.
    pub s3: std::sync::Arc<weft_core::access::S3Grants>,
}

/// Where a job's driver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriverSlot {
    /// Waiting for a driver slot.
    Pending,
    /// Launched on an agent.
    Running(AgentId),
    /// Ended.
    Ended,
}

/// One submitted job.
#[derive(Debug, Clone)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What was submitted.
    pub spec: JobSpec,
    /// Where it stands.
    pub phase: JobPhase,
    /// Why it failed, when it did.
    pub message: String,
    /// The driver's log, once it ended.
    pub driver_log: String,
    /// The datasets its driver defined.
    pub plan: Plan,
    /// Its broadcast values, by id.
    pub broadcasts: Arc<BTreeMap<u64, Data>>,
    /// The splits of each text dataset, planned by the first action that
    /// read it: later actions read the same partitions, so their map outputs
    /// can be reused (and the input is listed once).
    pub splits: BTreeMap<DatasetId, Arc<[TextSplit]>>,
    /// The range bounds of its sorts into several partitions, by shuffle,
    /// sampled by the first action that needed them.
    pub range_bounds: BTreeMap<ShuffleId, Vec<Vec<u8>>>,
    /// Actions (and sample jobs) started so far; the last number given.
    pub actions_run: u32,
    /// The sum of what the finished tasks of its actions added, by name.
    pub accumulators: BTreeMap<String, i64>,
    /// Map outputs kept between its actions.
    pub(crate) shuffles: MapOutputs,
    /// Where the partitions of its persisted datasets are kept.
    pub(crate) cached: crate::job::CacheIndex,
    /// Blocks of its driver traffic in the master's artifact store.
    pub(crate) blocks: std::collections::BTreeSet<weft_core::artifact::Digest>,
    pub(crate) driver: DriverSlot,
    pub(crate) driver_attempt: u32,
    /// Reconciliation's count for the running driver (see `state::Absence`).
    pub(crate) driver_seen: super::Absence,
    /// Times its driver was started again after its agent was lost.
    pub(crate) driver_restarts: u32,
    /// The answers of its driver's numbered actions, by number: a restarted
    /// driver's action of the same number adopts its answer.
    pub(crate) acts: BTreeMap<u32, ActRecord>,
    /// The text outputs its numbered actions set up, by number: what each
    /// asked, and the output's URI. A master that restarted finishes or
    /// clears what its earlier run left there instead of refusing it as
    /// another's.
    pub(crate) outputs: BTreeMap<u32, ([u8; 32], String)>,
    /// The stages of its latest action, as they stood when it ended.
    pub(crate) last_progress: Option<(ActionId, Vec<StageProgress>)>,
}

impl Job {
    pub(crate) fn new(id: JobId, spec: JobSpec) -> Self {
        Self {
            id,
            spec,
            phase: JobPhase::Running,
            message: String::new(),
            driver_log: String::new(),
            plan: Plan::new(),
            broadcasts: Arc::default(),
            splits: BTreeMap::new(),
            range_bounds: BTreeMap::new(),
            actions_run: 0,
            accumulators: BTreeMap::new(),
            shuffles: MapOutputs::new(),
            cached: Default::default(),
            blocks: Default::default(),
            driver: DriverSlot::Pending,
            driver_attempt: 0,
            driver_seen: super::Absence::placed(),
            driver_restarts: 0,
            acts: BTreeMap::new(),
            outputs: BTreeMap::new(),
            last_progress: None,
        }
    }

    /// A job read back from the state store that had ended.
    pub(crate) fn end_restored(&mut self) {
        self.driver = DriverSlot::Ended;
    }

    /// Whether its driver has not ended yet.
    pub fn is_live(&self) -> bool {
        self.driver != DriverSlot::Ended
    }
}

/// One stage of a job's latest action, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageView {
    /// The action.
    pub action: ActionId,
    /// The stage's progress.
    pub progress: StageProgress,
}

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// Its id.
    pub id: JobId,
    /// Its name.
    pub name: String,
    /// The tenant that submitted it.
    pub tenant: String,
    /// Its fuel budget, if any.
    pub fuel_budget: Option<u64>,
    /// Where it stands.
    pub phase: JobPhase,
    /// Why it failed.
    pub message: String,
    /// The stages of its latest action.
    pub stages: Vec<StageView>,
    /// Its metering so far: every ended attempt of its driver and its
    /// actions, summed by the ledger.
    pub totals: TaskMetering,
    /// Its driver's log, once the driver ended.
    pub driver_log: String,
    /// Times its driver was started again after its agent was lost.
    pub driver_restarts: u32,
}

/// How a driver's numbered action ended, kept for a restarted driver: what
/// was asked (a digest of its dataset and action), and the answer, encoded
/// (`Err`: the status code and message it failed with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActRecord {
    /// A digest of the action's dataset and kind: a restarted driver's
    /// action adopts the record only if it asks the same.
    pub asked: [u8; 32],
    /// The encoded answer, or the status code and message.
    pub answer: Result<Vec<u8>, (i32, String)>,
}
