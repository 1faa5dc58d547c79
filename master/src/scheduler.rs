//! The task scheduler: puts ready tasks of running jobs on free agent slots.
//!
//! Each action on a dataset is a job: a [`JobRun`] over its stage graph with a
//! [`JobContext`] describing its tasks. The scheduler keeps the free slots of
//! every active agent, and on every change (a job submitted, an agent joining,
//! a task ending) places ready tasks: jobs in submission order, each task on
//! the active agent with the most free slots. It launches through a
//! [`Launcher`] (the agents' gRPC service in a cluster) and learns of task ends
//! through [`MasterEvent`]s. A launch that fails puts the task back as
//! interrupted; a lost agent takes its attempts and map outputs with it
//! (the job run recomputes them). When a job ends, its waiter gets the result.

use crate::job::{JobRun, JobState, Outcome, StageProgress};
use crate::launch::{JobContext, LaunchError, ResultSink, task_spec};
use crate::registry::Registry;
use crate::service::{MasterEvent, TaskEvent};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;
use weft_core::ids::{AgentId, ShuffleId, StageId};
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::proto::v1;
use weft_core::task::{TaskKey, TaskState};

/// The future a [`Launcher`] returns.
pub type LaunchFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Sends a task to an agent.
pub trait Launcher: Send + Sync {
    /// Launch `spec` on the agent listening at `address`.
    fn launch(&self, agent: AgentId, address: &str, spec: v1::TaskSpec) -> LaunchFuture;
}

/// What a finished job hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// The result tasks' batches, by partition.
    Records(Vec<bytes::Bytes>),
    /// The total count.
    Count(u64),
    /// Text output was written by every result task (the caller commits it).
    Written,
}

/// How a job ended, for its waiter.
pub type JobResult = Result<(JobOutput, TaskMetering), String>;

/// The stage id that marks a job's driver task.
pub const DRIVER_STAGE: StageId = StageId(u32::MAX);

/// How a driver task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverEnd {
    /// Its end reason (`Finished` when `main` returned `Ok`).
    pub end: EndReason,
    /// The driver's log.
    pub log: String,
    /// What the driver itself consumed.
    pub metering: TaskMetering,
}

enum DriverSlot {
    Pending,
    Running(AgentId),
}

struct Driver {
    job: String,
    spec: v1::TaskSpec,
    attempt: u32,
    slot: DriverSlot,
    waiter: Option<oneshot::Sender<DriverEnd>>,
}

struct Active {
    ctx: JobContext,
    run: JobRun,
    running: HashMap<TaskKey, AgentId>,
    waiter: Option<oneshot::Sender<JobResult>>,
}

/// Every job's stage progress, by job name, as the scheduler last saw it.
pub type ProgressBoard = Arc<Mutex<HashMap<String, Vec<StageProgress>>>>;

/// The scheduler's state; drive it with [`submit`](Self::submit),
/// [`on_event`](Self::on_event) and [`schedule`](Self::schedule).
pub struct Scheduler {
    registry: Arc<Mutex<Registry>>,
    launcher: Arc<dyn Launcher>,
    busy: HashMap<AgentId, u32>,
    drivers_on: HashMap<AgentId, u32>,
    jobs: Vec<Active>,
    drivers: Vec<Driver>,
    board: ProgressBoard,
}

impl Scheduler {
    /// A scheduler over the agents of `registry`.
    pub fn new(registry: Arc<Mutex<Registry>>, launcher: Arc<dyn Launcher>) -> Self {
        Self {
            registry,
            launcher,
            busy: HashMap::new(),
            drivers_on: HashMap::new(),
            jobs: Vec::new(),
            drivers: Vec::new(),
            board: ProgressBoard::default(),
        }
    }

    /// Where the scheduler posts every job's progress.
    pub fn board(&self) -> ProgressBoard {
        self.board.clone()
    }

    fn post(board: &ProgressBoard, job: &Active) {
        board.lock().unwrap_or_else(PoisonError::into_inner).insert(job.ctx.job.clone(), job.run.progress());
    }

    /// Run a job's driver (its `main`): `spec` must carry `driver`. Drivers are
    /// placed like tasks but counted apart from task slots (at most one per slot
    /// on an agent), so a driver waiting on its actions never starves them.
    pub fn submit_driver(&mut self, job: &str, spec: v1::TaskSpec) -> oneshot::Receiver<DriverEnd> {
        let (tx, rx) = oneshot::channel();
        self.drivers.push(Driver {
            job: job.to_string(),
            spec,
            attempt: 0,
            slot: DriverSlot::Pending,
            waiter: Some(tx),
        });
        rx
    }

    fn end_driver(&mut self, job: &str, end: DriverEnd) {
        if let Some(i) = self.drivers.iter().position(|d| d.job == job) {
            let d = self.drivers.remove(i);
            if let DriverSlot::Running(agent) = d.slot
                && let Some(n) = self.drivers_on.get_mut(&agent)
            {
                *n = n.saturating_sub(1);
            }
            if let Some(w) = d.waiter {
                let _ = w.send(end);
            }
        }
    }

    /// Start a job; the receiver gets its result when it ends.
    pub fn submit(&mut self, ctx: JobContext, run: JobRun) -> oneshot::Receiver<JobResult> {
        let (tx, rx) = oneshot::channel();
        let mut active = Active { ctx, run, running: HashMap::new(), waiter: Some(tx) };
        if Self::finish_if_done(&mut active) {
            return rx;
        }
        self.jobs.push(active);
        rx
    }

    /// Jobs not yet ended.
    pub fn active_jobs(&self) -> usize {
        self.jobs.len()
    }

    /// Apply what an agent reported.
    pub fn on_event(&mut self, event: &MasterEvent) {
        match event {
            MasterEvent::AgentRegistered(_) => {}
            MasterEvent::AgentLost(agent) => {
                self.busy.remove(agent);
                let lost: Vec<String> = self
                    .drivers
                    .iter()
                    .filter(|d| matches!(d.slot, DriverSlot::Running(a) if a == *agent))
                    .map(|d| d.job.clone())
                    .collect();
                for job in lost {
                    let message = format!("the agent running the driver ({agent}) was lost");
                    let end = DriverEnd {
                        end: EndReason::HostError { message },
                        log: String::new(),
                        metering: Default::default(),
                    };
                    self.end_driver(&job, end);
                }
                for job in &mut self.jobs {
                    for key in job.run.on_agent_lost(*agent) {
                        job.running.remove(&key);
                    }
                }
            }
            MasterEvent::Task(ev) => self.on_task(ev),
        }
        self.reap();
    }

    fn on_task(&mut self, ev: &TaskEvent) {
        if !ev.state.is_terminal() {
            return;
        }
        if ev.task.stage == DRIVER_STAGE {
            let current = self.drivers.iter().any(|d| d.job == ev.task.job && d.attempt == ev.task.attempt);
            if current {
                let end = ev.end.clone().unwrap_or(EndReason::Killed);
                let end = DriverEnd { end, log: ev.log.clone(), metering: ev.metering.clone() };
                self.end_driver(&ev.task.job, end);
            }
            return;
        }
        let Some(job) = self.jobs.iter_mut().find(|j| j.ctx.job == ev.task.job) else { return };
        if job.running.remove(&ev.task).is_some()
            && let Some(n) = self.busy.get_mut(&ev.agent)
        {
            *n = n.saturating_sub(1);
        }
        let outcome = match (ev.state, &ev.end, ev.fetch_failed) {
            (_, _, Some((shuffle, map))) => Outcome::FetchFailed { shuffle, map },
            (TaskState::Finished, _, None) => {
                let result = match job.ctx.sink {
                    ResultSink::Count => bytes::Bytes::copy_from_slice(&ev.count.to_le_bytes()),
                    _ => ev.result.clone(),
                };
                Outcome::Finished { result, partition_bytes: ev.partition_bytes.clone() }
            }
            (TaskState::Failed, Some(end), None) => Outcome::Failed(end.clone()),
            (TaskState::Failed, None, None) => {
                Outcome::Failed(EndReason::HostError { message: "no end reason".into() })
            }
            (state, _, None) => Outcome::Interrupted(state),
        };
        if !ev.log.is_empty() {
            tracing::debug!(task = %ev.task, log = %ev.log, "task log");
        }
        job.run.on_outcome(&ev.task, &ev.metering, outcome);
    }

    /// Post progress and end the jobs that are done, answering their waiters.
    fn reap(&mut self) {
        let board = self.board.clone();
        self.jobs.retain_mut(|j| {
            Self::post(&board, j);
            !Self::finish_if_done(j)
        });
    }

    fn finish_if_done(job: &mut Active) -> bool {
        let result = match job.run.state() {
            JobState::Running => return false,
            JobState::Failed(msg) => Err(msg.clone()),
            JobState::Succeeded => {
                let results = job.run.results().unwrap_or_default();
                let output = match job.ctx.sink {
                    ResultSink::Count => JobOutput::Count(
                        results
                            .iter()
                            .map(|b| b.as_ref().try_into().map(u64::from_le_bytes).unwrap_or(0))
                            .sum(),
                    ),
                    ResultSink::Records { .. } => JobOutput::Records(results),
                    ResultSink::Text(_) => JobOutput::Written,
                };
                Ok((output, job.run.metering().clone()))
            }
        };
        if let Some(w) = job.waiter.take() {
            let _ = w.send(result);
        }
        true
    }

    /// Place ready tasks on free slots and launch them. Launch failures come
    /// back as interrupted attempts through [`on_launch_failed`](Self::on_launch_failed).
    pub fn schedule(&mut self) -> Vec<(TaskKey, AgentId, LaunchFuture)> {
        let agents: Vec<(AgentId, String, u32)> = {
            let reg = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
            reg.active().iter().map(|a| (a.id, a.address.clone(), a.resources.slots)).collect()
        };
        let addresses: BTreeMap<AgentId, String> =
            agents.iter().map(|(id, addr, _)| (*id, addr.clone())).collect();
        let mut launches = Vec::new();
        for d in self.drivers.iter_mut().filter(|d| matches!(d.slot, DriverSlot::Pending)) {
            let Some((agent, address)) = most_free(&agents, &self.drivers_on) else {
                break;
            };
            let key = TaskKey { job: d.job.clone(), stage: DRIVER_STAGE, partition: 0, attempt: d.attempt };
            let mut spec = d.spec.clone();
            spec.task = Some((&key).into());
            d.slot = DriverSlot::Running(agent);
            *self.drivers_on.entry(agent).or_default() += 1;
            launches.push((key, agent, self.launcher.launch(agent, &address, spec)));
        }
        let mut failed_jobs = Vec::new();
        'place: for (j, job) in self.jobs.iter_mut().enumerate() {
            for (stage_id, partition) in job.run.ready() {
                let Some((agent, address)) = most_free(&agents, &self.busy) else {
                    break 'place;
                };
                let Some(stage) = job.run.graph().stages.iter().find(|s| s.id == stage_id).cloned() else {
                    continue;
                };
                let Some(plan) = stage.tasks.get(partition as usize).cloned() else { continue };
                let Some(key) = job.run.launch(stage_id, partition, agent) else { continue };
                let run = &job.run;
                let maps = |shuffle: ShuffleId| -> Result<Vec<(u32, String)>, LaunchError> {
                    let locs = run.map_locations(shuffle).ok_or(LaunchError::MissingMapOutputs(shuffle))?;
                    locs.into_iter()
                        .map(|(m, a)| {
                            addresses
                                .get(&a)
                                .map(|addr| (m, addr.clone()))
                                .ok_or(LaunchError::UnknownAgent(a))
                        })
                        .collect()
                };
                match task_spec(&job.ctx, &stage, &plan, &key, &maps) {
                    Ok(spec) => {
                        *self.busy.entry(agent).or_default() += 1;
                        job.running.insert(key.clone(), agent);
                        launches.push((key, agent, self.launcher.launch(agent, &address, spec)));
                    }
                    Err(e) => {
                        failed_jobs.push((j, key, e));
                    }
                }
            }
        }
        for (j, key, e) in failed_jobs {
            let outcome = Outcome::Failed(EndReason::GuestError { message: e.to_string() });
            self.jobs[j].run.on_outcome(&key, &TaskMetering::default(), outcome);
        }
        self.reap();
        launches
    }

    /// A launch did not reach its agent: free the slot and run the task again.
    pub fn on_launch_failed(&mut self, key: &TaskKey, agent: AgentId, error: &str) {
        tracing::warn!(task = %key, %agent, %error, "launch failed; the task will run again");
        if key.stage == DRIVER_STAGE {
            if let Some(d) = self.drivers.iter_mut().find(|d| d.job == key.job && d.attempt == key.attempt) {
                d.slot = DriverSlot::Pending;
                d.attempt += 1;
                if let Some(n) = self.drivers_on.get_mut(&agent) {
                    *n = n.saturating_sub(1);
                }
            }
            return;
        }
        if let Some(job) = self.jobs.iter_mut().find(|j| j.ctx.job == key.job)
            && job.running.remove(key).is_some()
        {
            if let Some(n) = self.busy.get_mut(&agent) {
                *n = n.saturating_sub(1);
            }
            job.run.on_outcome(key, &TaskMetering::default(), Outcome::Interrupted(TaskState::Lost));
        }
    }
}

/// The agent with the most free slots given `used` per agent (lowest id on a
/// tie), and its address; `None` when every slot is taken.
fn most_free(agents: &[(AgentId, String, u32)], used: &HashMap<AgentId, u32>) -> Option<(AgentId, String)> {
    agents
        .iter()
        .map(|(id, addr, slots)| (*id, addr, slots.saturating_sub(*used.get(id).unwrap_or(&0))))
        .filter(|(_, _, free)| *free > 0)
        .max_by_key(|(id, _, free)| (*free, std::cmp::Reverse(*id)))
        .map(|(id, addr, _)| (id, addr.clone()))
}

#[cfg(test)]
mod tests;
