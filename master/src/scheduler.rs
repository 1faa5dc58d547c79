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
//! (the job run recomputes them). When a job ends, its waiter gets the result
//! and any of its attempts still running are killed.
//!
//! Map outputs belong to the submitted job (the *scope*), not to one action:
//! they are kept when an action ends, adopted by the next action of the same
//! job, and deleted from every agent when the job's driver ends. Killing a job
//! ends its driver and its running actions, and kills their attempts.

use crate::job::{JobRun, JobState, MapOutputs, Offer, Outcome, Placement, StageProgress, TaskResult};
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

/// The future a [`Launcher`] call returns: `Err` with a message when the call
/// did not reach the agent or the agent refused it.
pub type LaunchFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Talks to agents: the scheduler's only way out.
pub trait Launcher: Send + Sync {
    /// Launch `spec` on the agent listening at `address`.
    fn launch(&self, agent: AgentId, address: &str, spec: v1::TaskSpec) -> LaunchFuture;
    /// Kill the attempt `task` on that agent (it reports `KILLED` as usual).
    fn kill(&self, agent: AgentId, address: &str, task: &TaskKey) -> LaunchFuture;
    /// Delete the shuffle files the agent keeps for the submitted job `scope`.
    fn remove_shuffles(&self, agent: AgentId, address: &str, scope: &str) -> LaunchFuture;
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
    /// Each result task's key sample (one key per entry) and how many records
    /// it sampled from.
    Samples(Vec<(u64, bytes::Bytes)>),
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
    /// The job's accumulators: the additions of every task attempt its
    /// actions took as finished.
    accumulators: BTreeMap<String, i64>,
}

struct Active {
    ctx: JobContext,
    run: JobRun,
    waiter: Option<oneshot::Sender<JobResult>>,
}

/// Every job's stage progress, by job name, as the scheduler last saw it. Only
/// the latest action of each submitted job is kept.
pub type ProgressBoard = Arc<Mutex<HashMap<String, Vec<StageProgress>>>>;

/// The scheduler's state; drive it with [`submit`](Self::submit),
/// [`on_event`](Self::on_event) and [`schedule`](Self::schedule).
pub struct Scheduler {
    registry: Arc<Mutex<Registry>>,
    launcher: Arc<dyn Launcher>,
    jobs: Vec<Active>,
    drivers: Vec<Driver>,
    board: ProgressBoard,
    /// Every attempt launched and not yet ended, with its agent (its slot is taken).
    running: HashMap<TaskKey, AgentId>,
    /// Map outputs kept between the actions of each submitted job.
    shuffles: HashMap<String, MapOutputs>,
    /// Kills and clean-ups to send; see [`take_chores`](Self::take_chores).
    chores: Vec<LaunchFuture>,
}

impl Scheduler {
    /// A scheduler over the agents of `registry`.
    pub fn new(registry: Arc<Mutex<Registry>>, launcher: Arc<dyn Launcher>) -> Self {
        Self {
            registry,
            launcher,
            jobs: Vec::new(),
            drivers: Vec::new(),
            board: ProgressBoard::default(),
            running: HashMap::new(),
            shuffles: HashMap::new(),
            chores: Vec::new(),
        }
    }

    /// Kill and clean-up calls decided since the last call, for the caller to
    /// run; their failures only need logging (an agent that misses a kill
    /// still ends the attempt at its deadline).
    pub fn take_chores(&mut self) -> Vec<LaunchFuture> {
        std::mem::take(&mut self.chores)
    }

    fn agents(&self) -> Vec<(AgentId, String, u32)> {
        let reg = self.registry.lock().unwrap_or_else(PoisonError::into_inner);
        reg.active().iter().map(|a| (a.id, a.address.clone(), a.resources.slots)).collect()
    }

    fn address(&self, agent: AgentId) -> Option<String> {
        self.agents().into_iter().find(|(id, _, _)| *id == agent).map(|(_, addr, _)| addr)
    }

    fn kill_attempt(&mut self, key: &TaskKey, agent: AgentId) {
        if let Some(address) = self.address(agent) {
            self.chores.push(self.launcher.kill(agent, &address, key));
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
            accumulators: BTreeMap::new(),
        });
        rx
    }

    /// The value of the submitted job `job`'s accumulator `name`: the sum of
    /// what the finished tasks of its actions added (0 before any did).
    /// `None` when the job has no driver.
    ///
    /// As in Spark, a task's additions count once per successful run: a task
    /// that runs again (its map output was lost, or a later action recomputes
    /// an uncached dataset) adds again. Failed, killed and superseded
    /// attempts add nothing.
    pub fn accumulator(&self, job: &str, name: &str) -> Option<i64> {
        let d = self.drivers.iter().find(|d| d.job == job)?;
        Some(d.accumulators.get(name).copied().unwrap_or(0))
    }

    /// The submitted job's driver ended: so do its actions, and its shuffle
    /// files are deleted from every agent.
    fn end_driver(&mut self, job: &str, end: DriverEnd) {
        let Some(i) = self.drivers.iter().position(|d| d.job == job) else { return };
        let d = self.drivers.remove(i);
        for active in self.jobs.iter_mut().filter(|a| a.ctx.scope == job) {
            active.run.fail(format!("the job's driver ended: {}", end.end));
        }
        self.reap();
        self.shuffles.remove(job);
        for (agent, address, _) in self.agents() {
            self.chores.push(self.launcher.remove_shuffles(agent, &address, job));
        }
        if let Some(w) = d.waiter {
            let _ = w.send(end);
        }
    }

    /// Kill the submitted job `job`: its driver and its actions' attempts.
    /// Returns whether it had a driver to kill.
    pub fn kill(&mut self, job: &str) -> bool {
        let Some(d) = self.drivers.iter().find(|d| d.job == job) else { return false };
        let key = TaskKey { job: d.job.clone(), stage: DRIVER_STAGE, partition: 0, attempt: d.attempt };
        if let DriverSlot::Running(agent) = d.slot {
            self.kill_attempt(&key, agent);
        }
        let end = DriverEnd { end: EndReason::Killed, log: String::new(), metering: TaskMetering::default() };
        self.end_driver(job, end);
        true
    }

    /// Start a job; the receiver gets its result when it ends. Map outputs an
    /// earlier action of the same submitted job left are adopted, not recomputed.
    pub fn submit(&mut self, ctx: JobContext, mut run: JobRun) -> oneshot::Receiver<JobResult> {
        let (tx, rx) = oneshot::channel();
        if let Some(earlier) = self.shuffles.get(&ctx.scope) {
            let skipped = run.adopt(earlier);
            if skipped > 0 {
                tracing::info!(job = %ctx.job, skipped, "map outputs of earlier actions reused");
            }
        }
        {
            // Only the latest action of a submitted job stays on the board.
            let prefix = format!("{}.", ctx.scope);
            let mut board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
            board.retain(|k, _| !k.starts_with(&prefix));
        }
        self.jobs.push(Active { ctx, run, waiter: Some(tx) });
        self.reap();
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
                self.running.retain(|_, a| a != agent);
                for outputs in self.shuffles.values_mut() {
                    for o in outputs.values_mut().flatten() {
                        if o.as_ref().is_some_and(|o| o.agent == *agent) {
                            *o = None;
                        }
                    }
                }
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
                    job.run.on_agent_lost(*agent);
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
        self.running.remove(&ev.task);
        let Some(job) = self.jobs.iter_mut().find(|j| j.ctx.job == ev.task.job) else { return };
        let outcome = match (ev.state, &ev.end, ev.fetch_failed) {
            (_, _, Some((shuffle, map))) => Outcome::FetchFailed { shuffle, map },
            (TaskState::Finished, _, None) => {
                let result = TaskResult { records: ev.count, batch: ev.result.clone() };
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
        let finished = matches!(outcome, Outcome::Finished { .. });
        // A sort's sample job runs its result stage's functions only to sample
        // keys; the sort's map stage runs them again, and counts.
        let sampling = matches!(job.ctx.sink, ResultSink::KeySample(_))
            && job.run.graph().result_stage().is_some_and(|s| s.id == ev.task.stage);
        if job.run.on_outcome(&ev.task, &ev.metering, outcome)
            && finished
            && !sampling
            && let Some(d) = self.drivers.iter_mut().find(|d| d.job == job.ctx.scope)
        {
            for (name, delta) in &ev.accumulators {
                let sum = d.accumulators.entry(name.clone()).or_default();
                *sum = sum.wrapping_add(*delta);
            }
        }
    }

    /// Post progress and end the jobs that are done: answer their waiters,
    /// keep their map outputs for later actions, kill their leftover attempts.
    fn reap(&mut self) {
        let board = self.board.clone();
        let mut ended = Vec::new();
        self.jobs.retain_mut(|j| {
            Self::post(&board, j);
            let done = Self::finish_if_done(j);
            if done {
                ended.push((j.ctx.scope.clone(), j.ctx.job.clone(), j.run.map_outputs().clone()));
            }
            !done
        });
        for (scope, job, outputs) in ended {
            // A driver that already ended has had its shuffle files removed.
            if self.drivers.iter().any(|d| d.job == scope) {
                self.shuffles.entry(scope).or_default().extend(outputs);
            }
            let leftover: Vec<(TaskKey, AgentId)> =
                self.running.iter().filter(|(k, _)| k.job == job).map(|(k, a)| (k.clone(), *a)).collect();
            for (key, agent) in leftover {
                self.kill_attempt(&key, agent);
            }
        }
    }

    fn finish_if_done(job: &mut Active) -> bool {
        let result = match job.run.state() {
            JobState::Running => return false,
            JobState::Failed(msg) => Err(msg.clone()),
            JobState::Succeeded => {
                let results = job.run.results().unwrap_or_default();
                let output = match job.ctx.sink {
                    ResultSink::Count => JobOutput::Count(results.iter().map(|r| r.records).sum()),
                    ResultSink::Records { .. } => {
                        JobOutput::Records(results.into_iter().map(|r| r.batch).collect())
                    }
                    ResultSink::Text(_) => JobOutput::Written,
                    ResultSink::KeySample(_) => {
                        JobOutput::Samples(results.into_iter().map(|r| (r.records, r.batch)).collect())
                    }
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
        let agents = self.agents();
        let addresses: BTreeMap<AgentId, String> =
            agents.iter().map(|(id, addr, _)| (*id, addr.clone())).collect();
        let mut launches = Vec::new();
        // Drivers and tasks are counted apart: each agent has as many driver
        // slots as task slots.
        let free_of = |taken: &HashMap<AgentId, u32>| -> Vec<Offer> {
            agents
                .iter()
                .map(|(agent, _, slots)| Offer {
                    agent: *agent,
                    slots: slots.saturating_sub(taken.get(agent).copied().unwrap_or(0)),
                })
                .collect()
        };
        let mut drivers_on: HashMap<AgentId, u32> = HashMap::new();
        for d in &self.drivers {
            if let DriverSlot::Running(agent) = d.slot {
                *drivers_on.entry(agent).or_default() += 1;
            }
        }
        let mut busy: HashMap<AgentId, u32> = HashMap::new();
        for agent in self.running.values() {
            *busy.entry(*agent).or_default() += 1;
        }
        let mut driver_offers = free_of(&drivers_on);
        for d in self.drivers.iter_mut().filter(|d| matches!(d.slot, DriverSlot::Pending)) {
            let Some(i) = Offer::roomiest(&driver_offers, |_| true) else { break };
            let agent = driver_offers[i].agent;
            let Some(address) = addresses.get(&agent) else { continue };
            driver_offers[i].slots -= 1;
            let key = TaskKey { job: d.job.clone(), stage: DRIVER_STAGE, partition: 0, attempt: d.attempt };
            let mut spec = d.spec.clone();
            spec.task = Some((&key).into());
            d.slot = DriverSlot::Running(agent);
            launches.push((key, agent, self.launcher.launch(agent, address, spec)));
        }
        // The allocator's offers: every agent's free task slots, to each job
        // in submission order; what a job declines goes to the next.
        let mut offers = free_of(&busy);
        offers.retain(|o| o.slots > 0);
        let mut failed_jobs = Vec::new();
        for (j, job) in self.jobs.iter_mut().enumerate() {
            if offers.is_empty() {
                break;
            }
            for Placement { stage: stage_id, partition, agent } in job.run.accept(&offers) {
                let Some(address) = addresses.get(&agent).cloned() else { continue };
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
                        if let Some(o) = offers.iter_mut().find(|o| o.agent == agent) {
                            o.slots = o.slots.saturating_sub(1);
                        }
                        self.running.insert(key.clone(), agent);
                        launches.push((key, agent, self.launcher.launch(agent, &address, spec)));
                    }
                    Err(e) => {
                        failed_jobs.push((j, key, e));
                        break;
                    }
                }
            }
            offers.retain(|o| o.slots > 0);
        }
        // A map output on an agent just lost (its `AgentLost` event is on the
        // way) is recomputed: the task waits. Anything else the master cannot
        // describe will not become describable by waiting: its job fails at
        // once, naming the task.
        for (j, key, e) in failed_jobs {
            match e {
                LaunchError::MissingMapOutputs(_) | LaunchError::UnknownAgent(_) => {
                    let lost = Outcome::Interrupted(TaskState::Lost);
                    self.jobs[j].run.on_outcome(&key, &TaskMetering::default(), lost);
                }
                LaunchError::MissingInput(..) | LaunchError::MissingRangeBounds(_) => {
                    self.jobs[j].run.fail(format!("task {key} cannot be launched: {e}"));
                }
            }
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
            }
            return;
        }
        if self.running.remove(key).is_some()
            && let Some(job) = self.jobs.iter_mut().find(|j| j.ctx.job == key.job)
        {
            job.run.on_outcome(key, &TaskMetering::default(), Outcome::Interrupted(TaskState::Lost));
        }
    }
}

#[cfg(test)]
mod tests;
