//! The master as one state machine: agents, jobs, their actions, stages and
//! task attempts, owned by one value and changed only through its methods.
//!
//! [`Core`] is sans-I/O: inputs are plain values (an agent registered, task
//! attempts ended, a job submitted, an action to run, the clock), and its
//! decisions come out as [`Effect`]s (launch these tasks on that agent in one
//! call, kill those, remove a job's files, an action ended) that a thin I/O
//! layer (`node::core`) carries out. Nothing here awaits, locks or builds a
//! protocol message, so its tests drive it with plain values, and its state
//! is plain data that a later step can persist.
//!
//! The allocator is two-level, as in Mesos: [`Core::schedule`] offers the free
//! slots of the cluster (a [`SlotIndex`](crate::slots::SlotIndex)) to each
//! running action in turn, in submission order (the place where Dominant
//! Resource Fairness will order them); each action's [`JobRun`] takes slots
//! for its ready tasks and leaves the rest. All the tasks one round places on
//! an agent go out in one launch. See `docs/architecture.md` (control plane).

mod agents;
mod fair;
mod jobs;

pub use agents::{Agent, Agents, Resources};
pub use jobs::{Job, JobPhase, JobSpec, JobView, StageView};

use crate::dag::JobGraph;
use crate::job::{JobRun, JobState, Outcome, TaskResult};
use crate::launch::{JobContext, LaunchError, ResultSink, descriptor};
use crate::ledger::{EndLabel, FuelQuota, FuelStop, Ledger};
pub use fair::{Amount, Quota};
use fair::{Claim, Shares};
use jobs::DriverSlot;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_core::access::JobCapability;
use weft_core::artifact::Digest;
use weft_core::ids::{ActionId, AgentId, DatasetId, Incarnation, JobId, ShuffleId};
use weft_core::io::TextSplit;
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::plan::PlanDelta;
use weft_core::task::{
    Data, DriverWork, MapStatus, MapTable, TaskBody, TaskDescriptor, TaskInput, TaskKey, TaskState,
};

/// What a finished action hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// The result tasks' batches, by partition (inline or as blocks).
    Records(Vec<Data>),
    /// The total count.
    Count(u64),
    /// Text output was written by every result task, in this many partitions
    /// (the caller commits it).
    Written(u32),
    /// Each result task's key sample (one key per entry) and how many records
    /// it sampled from.
    Samples(Vec<(u64, Data)>),
}

/// How an action ended: its output, or why it failed.
pub type JobResult = Result<JobOutput, String>;

/// How one task attempt ended, as its agent reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEnd {
    /// The attempt.
    pub key: TaskKey,
    /// How it ended.
    pub end: EndReason,
    /// What it consumed.
    pub metering: TaskMetering,
    /// A result task's records (one batch), or a sample task's keys.
    pub result: Data,
    /// Records counted, returned or written.
    pub count: u64,
    /// A map task's stored bytes per reduce partition.
    pub partition_bytes: Vec<u64>,
    /// Its bounded log.
    pub log: String,
    /// Its additions to the job's accumulators, by name.
    pub accumulators: BTreeMap<String, i64>,
}

/// Why an agent did not start a task it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No free slot (stale attempts hold them): try later or elsewhere.
    Busy,
    /// It can run nowhere.
    Invalid,
    /// The agent is going away.
    Stopping,
    /// The agent lacks (or has another version of) a map-output table the
    /// task reads: launch it again, with the table.
    Stale,
}

/// A decision for the I/O layer to carry out.
#[derive(Debug)]
pub enum Effect {
    /// Start these attempts on `agent`, in one call.
    Launch {
        /// The agent.
        agent: AgentId,
        /// Its address.
        address: String,
        /// The attempts.
        tasks: Vec<TaskDescriptor>,
        /// The map-output tables they read that the agent has not been sent
        /// (at their current version): installed before the tasks.
        tables: Vec<Arc<MapTable>>,
        /// The capability of each job the tasks belong to.
        access: Vec<(JobId, JobCapability)>,
    },
    /// Stop these attempts on `agent`.
    Kill {
        /// The agent.
        agent: AgentId,
        /// Its address.
        address: String,
        /// The attempts.
        tasks: Vec<TaskKey>,
    },
    /// Delete the files `agent` keeps for `job`.
    RemoveJob {
        /// The agent.
        agent: AgentId,
        /// Its address.
        address: String,
        /// The job.
        job: JobId,
    },
    /// Delete these blocks of driver traffic from the master's artifact
    /// store: the last job that used them has ended.
    DeleteBlocks(Vec<Digest>),
    /// An action ended: answer whoever waits on it.
    ActionEnded {
        /// The action.
        action: ActionId,
        /// How.
        result: JobResult,
    },
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How often agents heartbeat.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before an agent is lost.
    pub lost_after: u32,
    /// The most bytes a `collect` or `take` may return to its driver.
    pub max_result_size: u64,
}

struct Action {
    ctx: JobContext,
    run: JobRun,
    /// What each of its attempts claims of its tenant's share.
    claim: Claim,
    /// Bytes of results finished so far.
    result_bytes: u64,
    /// Each shuffle's map-output table as last built, with its version.
    tables: HashMap<ShuffleId, (u32, Arc<MapTable>)>,
    /// The table version each agent was sent, per shuffle.
    sent: HashMap<(AgentId, ShuffleId), u32>,
}

/// Everything the master knows, and the rules that change it.
pub struct Core {
    incarnation: Incarnation,
    /// The agents.
    pub agents: Agents,
    jobs: BTreeMap<JobId, Job>,
    next_job: u32,
    /// Running actions, in submission order.
    actions: Vec<Action>,
    /// Every task attempt launched and not yet ended, with its agent and claim.
    running: HashMap<TaskKey, (AgentId, Claim)>,
    /// What each tenant and action holds: the order of offers.
    shares: Shares,
    effects: Vec<Effect>,
    changed: BTreeSet<JobId>,
    max_result_size: u64,
    /// How many live jobs use each block of driver traffic.
    blocks: HashMap<Digest, u32>,
    /// Every ended attempt, and the totals and fuel caps read from them.
    ledger: Ledger,
}

impl Core {
    /// A master run numbered `incarnation`.
    pub fn new(incarnation: Incarnation, config: &CoreConfig) -> Self {
        Self {
            incarnation,
            agents: Agents::new(incarnation, config.heartbeat_interval, config.lost_after),
            jobs: BTreeMap::new(),
            next_job: 0,
            actions: Vec::new(),
            running: HashMap::new(),
            shares: Shares::default(),
            effects: Vec::new(),
            changed: BTreeSet::new(),
            max_result_size: config.max_result_size,
            blocks: HashMap::new(),
            ledger: Ledger::new(incarnation),
        }
    }

    /// This master run's incarnation.
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The decisions taken since the last call, for the I/O layer.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// The jobs whose view changed since the last call.
    pub fn take_changed(&mut self) -> BTreeSet<JobId> {
        std::mem::take(&mut self.changed)
    }

    // ---- jobs -------------------------------------------------------------

    /// Accept a job: its driver waits for a slot.
    pub fn submit_job(&mut self, spec: JobSpec) -> JobId {
        self.next_job += 1;
        let id = JobId { incarnation: self.incarnation, seq: self.next_job };
        self.ledger.job_submitted(id, &spec.tenant);
        self.jobs.insert(id, Job::new(id, spec));
        self.changed.insert(id);
        id
    }

    /// The job `id`.
    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    /// Take the new part of a live job's plan, sent by its driver with an
    /// action: datasets, cache marks and broadcast values. A part resent after
    /// an unanswered call may repeat what the master holds.
    ///
    /// # Errors
    /// The job is unknown or has ended, or the part does not fit the plan.
    pub fn apply_plan(&mut self, job: JobId, delta: PlanDelta) -> Result<(), String> {
        let j = self.live_job(job)?;
        j.plan.apply(&delta).map_err(|e| e.to_string())?;
        let mut used: Vec<Digest> = delta
            .nodes
            .iter()
            .filter_map(|(node, _)| match node {
                weft_core::plan::Node::Parallelize { partitions } => Some(partitions),
                _ => None,
            })
            .flatten()
            .chain(&delta.broadcasts)
            .filter_map(block_of)
            .collect();
        used.retain(|d| j.blocks.insert(*d));
        let held = j.broadcasts.len() as u64;
        if delta.first_broadcast > held {
            return Err(format!(
                "the driver's new broadcast values start at {}, but the master holds {held}",
                delta.first_broadcast
            ));
        }
        let broadcasts = Arc::make_mut(&mut j.broadcasts);
        for (i, value) in delta.broadcasts.into_iter().enumerate() {
            broadcasts.entry(delta.first_broadcast + i as u64).or_insert(value);
        }
        for d in used {
            *self.blocks.entry(d).or_default() += 1;
        }
        Ok(())
    }

    fn live_job(&mut self, job: JobId) -> Result<&mut Job, String> {
        match self.jobs.get_mut(&job) {
            Some(j) if j.is_live() => Ok(j),
            Some(_) => Err(format!("job {job} has ended")),
            None => Err(format!("no job {job}")),
        }
    }

    /// Remember the splits planned for a text dataset of `job`.
    pub fn set_splits(&mut self, job: JobId, ds: DatasetId, splits: Arc<[TextSplit]>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.splits.insert(ds, splits);
        }
    }

    /// Remember the range bounds sampled for a sort of `job`.
    pub fn set_range_bounds(&mut self, job: JobId, shuffle: ShuffleId, bounds: Vec<Vec<u8>>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.range_bounds.insert(shuffle, bounds);
        }
    }

    /// The value of `job`'s accumulator `name` (0 before any task added to
    /// it); `None` when the job is unknown. As in Spark, a task's additions
    /// count once per successful run.
    pub fn accumulator(&self, job: JobId, name: &str) -> Option<i64> {
        Some(self.jobs.get(&job)?.accumulators.get(name).copied().unwrap_or(0))
    }

    /// Run an action of `ctx.job` over `graph`; an [`Effect::ActionEnded`]
    /// reports its end. Map outputs an earlier action of the job left are
    /// adopted, not recomputed.
    pub fn run_action(&mut self, ctx: JobContext, graph: JobGraph) -> ActionId {
        let Some(job) = self.jobs.get_mut(&ctx.job) else {
            let action = ActionId { job: ctx.job, seq: 0 };
            let result = Err(format!("no job {}", ctx.job));
            self.effects.push(Effect::ActionEnded { action, result });
            return action;
        };
        job.actions_run += 1;
        let action = ActionId { job: ctx.job, seq: job.actions_run };
        let mut run = JobRun::new(action, graph, job.spec.max_task_attempts);
        let claim =
            Claim { tenant: self.shares.tenant(&job.spec.tenant), memory: job.spec.limits.memory.as_u64() };
        if !job.is_live() {
            run.fail(format!("job {} has ended", ctx.job));
        }
        let skipped = run.adopt(&job.shuffles);
        if skipped > 0 {
            tracing::info!(%action, skipped, "map outputs of earlier actions reused");
        }
        self.changed.insert(ctx.job);
        self.actions.push(Action {
            ctx,
            run,
            claim,
            result_bytes: 0,
            tables: HashMap::new(),
            sent: HashMap::new(),
        });
        self.reap();
        action
    }

    /// Kill `job`: its driver and its actions' attempts. Returns whether it
    /// was still running.
    pub fn kill(&mut self, job: JobId) -> bool {
        self.stop(job, JobPhase::Killed, "killed on request".into())
    }

    /// End a live job now as `phase` with `message`: its driver and every
    /// task of its actions stop. `false` when it was not live.
    fn stop(&mut self, job: JobId, phase: JobPhase, message: String) -> bool {
        let Some(j) = self.jobs.get_mut(&job) else { return false };
        if !j.is_live() {
            return false;
        }
        j.phase = phase;
        j.message = message;
        if let DriverSlot::Running(agent) = j.driver {
            let key = TaskKey::driver(job, j.driver_attempt);
            self.kill_attempts(agent, vec![key]);
        }
        self.end_driver(job, EndReason::Killed, String::new());
        true
    }

    fn end_driver(&mut self, job: JobId, end: EndReason, log: String) {
        let claim = self.driver_claim(job);
        let Some(j) = self.jobs.get_mut(&job) else { return };
        if let DriverSlot::Running(agent) = j.driver {
            self.agents.drivers(agent, false);
            if let Some(claim) = claim {
                self.shares.end(ActionId::driver(job), claim);
            }
        }
        j.driver = DriverSlot::Ended;
        j.driver_log = log;
        if j.phase == JobPhase::Running {
            if end == EndReason::Finished {
                j.phase = JobPhase::Succeeded;
            } else {
                j.phase = JobPhase::Failed;
                j.message = end.to_string();
            }
        }
        j.shuffles.clear();
        let mut dead = Vec::new();
        for d in std::mem::take(&mut j.blocks) {
            if let Some(n) = self.blocks.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    self.blocks.remove(&d);
                    dead.push(d);
                }
            }
        }
        if !dead.is_empty() {
            self.effects.push(Effect::DeleteBlocks(dead));
        }
        tracing::info!(%job, phase = ?j.phase, "job ended");
        self.changed.insert(job);
        for a in self.actions.iter_mut().filter(|a| a.ctx.job == job) {
            a.run.fail(format!("the job's driver ended: {end}"));
        }
        self.reap();
        for agent in self.agents.live() {
            let address = agent.address.clone();
            self.effects.push(Effect::RemoveJob { agent: agent.id, address, job });
        }
    }

    /// What clients see of `job`.
    pub fn view(&self, job: JobId) -> Option<JobView> {
        let j = self.jobs.get(&job)?;
        let live = self.actions.iter().rev().find(|a| a.ctx.job == job);
        let stages = match (live, &j.last_progress) {
            (Some(a), _) => Some((a.run.action(), a.run.progress())),
            (None, Some((action, p))) => Some((*action, p.clone())),
            (None, None) => None,
        };
        let stages = stages
            .map(|(action, p)| p.into_iter().map(|progress| StageView { action, progress }).collect())
            .unwrap_or_default();
        let totals = self.ledger.job_totals(job).meter.metering();
        Some(JobView {
            id: job,
            name: j.spec.name.clone(),
            tenant: j.spec.tenant.clone(),
            fuel_budget: j.spec.fuel_budget,
            phase: j.phase,
            message: j.message.clone(),
            stages,
            totals,
            driver_log: j.driver_log.clone(),
        })
    }

    /// Why `job` must stop, if its fuel is spent: its budget, or its
    /// tenant's quota.
    fn fuel_over(&self, job: JobId, now: Instant) -> Option<FuelStop> {
        self.ledger.fuel_over(job, self.jobs.get(&job)?.spec.fuel_budget, now)
    }

    /// Fuel `job` may still burn, if its budget or its tenant's quota caps
    /// it: what each of its tasks is launched with at most.
    fn fuel_left(&self, job: JobId, now: Instant) -> Option<u64> {
        self.ledger.fuel_left(job, self.jobs.get(&job)?.spec.fuel_budget, now)
    }

    /// Stop what spent fuel stops: the job over its budget, or every live
    /// job of the tenant over its quota.
    fn fuel_stop(&mut self, job: JobId, why: FuelStop) {
        let jobs = match &why {
            FuelStop::Budget { .. } => vec![job],
            FuelStop::Quota { tenant, .. } => {
                self.jobs.values().filter(|j| j.is_live() && j.spec.tenant == *tenant).map(|j| j.id).collect()
            }
        };
        for j in jobs {
            self.stop(j, JobPhase::Failed, why.to_string());
        }
    }

    /// Why `tenant` may not submit now, if its fuel quota is used up.
    pub fn fuel_quota_over(&self, tenant: &str, now: Instant) -> Option<FuelStop> {
        self.ledger.quota_over(tenant, now)
    }

    /// Set the tenants' fuel quotas (a tenant not named has none).
    pub fn set_fuel_quotas(&mut self, quotas: HashMap<String, FuelQuota>, now: Instant) {
        self.ledger.set_fuel_quotas(quotas, now);
    }

    /// The usage ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Set the tenants' weights (a tenant not named weighs 1).
    pub fn set_weights(&mut self, weights: HashMap<String, f64>) {
        self.shares.set_weights(weights);
    }

    /// Set the tenants' quotas (a tenant not named has none).
    pub fn set_quotas(&mut self, quotas: HashMap<String, Quota>) {
        self.shares.set_quotas(quotas);
    }

    /// Task places and memory `tenant`'s running tasks hold.
    pub fn held(&self, tenant: &str) -> (u64, u64) {
        self.shares.held(tenant)
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobId> {
        self.jobs.keys().copied().collect()
    }

    // ---- agents -----------------------------------------------------------

    /// An agent registered.
    pub fn register_agent(
        &mut self,
        address: String,
        resources: Resources,
        attributes: BTreeMap<String, String>,
        now: Instant,
    ) -> AgentId {
        let id = self.agents.register(address.clone(), resources, attributes, now);
        tracing::info!(agent = %id, %address, slots = resources.slots, "agent registered");
        id
    }

    /// An agent heartbeat; `false` tells it to register again.
    pub fn heartbeat(&mut self, agent: AgentId, now: Instant) -> bool {
        self.agents.heartbeat(agent, now)
    }

    /// The clock moved: declare silent agents lost, end pauses that are over.
    pub fn tick(&mut self, now: Instant) {
        for agent in self.agents.sweep(now) {
            tracing::warn!(%agent, "agent missed its heartbeats: LOST");
            self.agent_lost(agent, now);
        }
    }

    fn agent_lost(&mut self, agent: AgentId, now: Instant) {
        self.ledger.agent_lost(agent, now);
        let shares = &mut self.shares;
        self.running.retain(|key, (a, claim)| {
            let keep = *a != agent;
            if !keep {
                shares.end(key.action, *claim);
            }
            keep
        });
        for j in self.jobs.values_mut() {
            for o in j.shuffles.values_mut().flatten() {
                if o.as_ref().is_some_and(|o| o.agent == agent) {
                    *o = None;
                }
            }
        }
        let lost: Vec<JobId> =
            self.jobs.values().filter(|j| j.driver == DriverSlot::Running(agent)).map(|j| j.id).collect();
        for job in lost {
            let message = format!("the agent running the driver ({agent}) was lost");
            self.end_driver(job, EndReason::HostError { message }, String::new());
        }
        for a in &mut self.actions {
            a.run.on_agent_lost(agent);
            self.changed.insert(a.ctx.job);
        }
        self.reap();
    }

    /// Task attempts on `agent` ended; `false` when the agent is unknown (it
    /// must register again; the updates are not taken).
    pub fn task_ends(&mut self, agent: AgentId, ends: Vec<TaskEnd>, now: Instant) -> bool {
        if !self.agents.is_live(agent) {
            return false;
        }
        for end in ends {
            self.task_end(agent, end, now);
        }
        self.reap();
        true
    }

    fn task_end(&mut self, agent: AgentId, end: TaskEnd, now: Instant) {
        let key = end.key;
        self.ledger.ended(key, EndLabel::of(&end.end), &end.metering, now);
        if key.is_driver() {
            let Some(j) = self.jobs.get(&key.job()) else { return };
            if j.driver == DriverSlot::Running(agent) && j.driver_attempt == key.attempt {
                self.end_driver(key.job(), end.end, end.log);
            }
            return;
        }
        if let Some((_, claim)) = self.running.remove(&key) {
            self.shares.end(key.action, claim);
            self.agents.freed(agent, now);
        }
        if !end.log.is_empty() {
            tracing::debug!(task = %key, log = %end.log, "task log");
        }
        let Some(a) = self.actions.iter_mut().find(|a| a.run.action() == key.action) else { return };
        self.changed.insert(key.job());
        let finished = end.end == EndReason::Finished;
        let result_len = end.result.len();
        if finished
            && let Some(d) = block_of(&end.result)
            && let Some(j) = self.jobs.get_mut(&key.job())
            && j.blocks.insert(d)
        {
            *self.blocks.entry(d).or_default() += 1;
        }
        let outcome = match end.end {
            EndReason::Finished => Outcome::Finished {
                result: TaskResult { records: end.count, batch: end.result },
                partition_bytes: end.partition_bytes,
            },
            EndReason::Killed => Outcome::Interrupted(TaskState::Killed),
            other => Outcome::Failed(other),
        };
        // A sort's sample job runs its result stage's functions only to sample
        // keys; the sort's map stage runs them again, and counts.
        let sampling = matches!(a.ctx.sink, ResultSink::KeySample(_))
            && a.run.graph().result_stage().is_some_and(|s| s.id == key.stage);
        let taken = a.run.on_outcome(&key, outcome);
        // A job over its fuel budget, or of a tenant over its fuel quota,
        // stops, whatever its tasks' ends say.
        if end.metering.fuel > 0
            && let Some(why) = self.fuel_over(key.job(), now)
        {
            self.fuel_stop(key.job(), why);
            return;
        }
        let Some(a) = self.actions.iter_mut().find(|a| a.run.action() == key.action) else { return };
        if taken && finished && matches!(a.ctx.sink, ResultSink::Records { .. }) {
            a.result_bytes += result_len;
            if a.result_bytes > self.max_result_size {
                a.run.fail(format!(
                    "{} returned more than the {} ({} bytes) a collect or take may bring back to its driver \
                     ({} bytes so far; the master's --max-result-size): write large results with \
                     save_as_text_file instead of collecting them",
                    a.run.action(),
                    bytesize::ByteSize(self.max_result_size),
                    self.max_result_size,
                    a.result_bytes,
                ));
            }
        }
        if taken
            && finished
            && !sampling
            && let Some(j) = self.jobs.get_mut(&key.job())
        {
            for (name, delta) in end.accumulators {
                let sum = j.accumulators.entry(name).or_default();
                *sum = sum.wrapping_add(delta);
            }
        }
    }

    /// `agent` did not start some of the tasks it was sent.
    pub fn launch_refused(&mut self, agent: AgentId, refused: Vec<(TaskKey, Refused, String)>, now: Instant) {
        let (mut busy, mut stale) = (false, false);
        for (key, why, message) in refused {
            tracing::debug!(task = %key, %agent, ?why, %message, "launch refused");
            busy |= why == Refused::Busy;
            stale |= why == Refused::Stale;
            self.ledger.closed(key, EndLabel::Refused, now);
            if key.is_driver() {
                self.driver_not_started(key, agent);
                continue;
            }
            if let Some((_, claim)) = self.running.remove(&key) {
                self.shares.end(key.action, claim);
                self.agents.freed(agent, now);
            }
            let outcome = match why {
                Refused::Invalid => Outcome::Failed(EndReason::HostError {
                    message: format!("the agent refused the task: {message}"),
                }),
                Refused::Busy | Refused::Stopping | Refused::Stale => Outcome::Interrupted(TaskState::Lost),
            };
            if let Some(a) = self.actions.iter_mut().find(|a| a.run.action() == key.action) {
                a.run.on_outcome(&key, outcome);
            }
        }
        if busy {
            self.agents.pause(agent, now);
        }
        if stale {
            self.forget_tables(agent);
        }
        self.reap();
    }

    /// Tables sent to `agent` may not have arrived (a launch that failed or
    /// a refusal saying so): send them again with its next tasks.
    fn forget_tables(&mut self, agent: AgentId) {
        for a in &mut self.actions {
            a.sent.retain(|(to, _), _| *to != agent);
        }
    }

    /// A launch did not reach `agent`: its tasks run again (elsewhere or
    /// later), and the agent is offered nothing for a while.
    pub fn launch_failed(&mut self, agent: AgentId, tasks: Vec<TaskKey>, error: &str, now: Instant) {
        tracing::warn!(%agent, tasks = tasks.len(), %error, "launch failed; the tasks will run again");
        self.forget_tables(agent);
        let refused = tasks.into_iter().map(|k| (k, Refused::Stopping, error.to_string())).collect();
        self.launch_refused(agent, refused, now);
        self.agents.pause(agent, now);
    }

    fn driver_not_started(&mut self, key: TaskKey, agent: AgentId) {
        if let Some(j) = self.jobs.get_mut(&key.job())
            && j.driver == DriverSlot::Running(agent)
            && j.driver_attempt == key.attempt
        {
            j.driver = DriverSlot::Pending;
            j.driver_attempt += 1;
            self.agents.drivers(agent, false);
            if let Some(claim) = self.driver_claim(key.job()) {
                self.shares.end(ActionId::driver(key.job()), claim);
            }
        }
    }

    /// What a running driver of `job` claims of its tenant's share.
    fn driver_claim(&mut self, job: JobId) -> Option<Claim> {
        let j = self.jobs.get(&job)?;
        let memory = j.spec.limits.memory.as_u64();
        let tenant = j.spec.tenant.clone();
        Some(Claim { tenant: self.shares.tenant(&tenant), memory })
    }

    fn kill_attempts(&mut self, agent: AgentId, tasks: Vec<TaskKey>) {
        for key in &tasks {
            self.ledger.killing(key);
        }
        if let Some(address) = self.agents.address(agent) {
            let address = address.to_string();
            self.effects.push(Effect::Kill { agent, address, tasks });
        }
    }

    /// End the actions that are done: report them, keep their map outputs
    /// for later actions, kill their leftover attempts.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.actions.len() {
            if *self.actions[i].run.state() == JobState::Running {
                i += 1;
                continue;
            }
            let a = self.actions.remove(i);
            let action = a.run.action();
            let result = match a.run.state() {
                JobState::Failed(msg) => Err(msg.clone()),
                _ => Ok(output(&a)),
            };
            if let Some(j) = self.jobs.get_mut(&action.job) {
                j.last_progress = Some((action, a.run.progress()));
                if j.is_live() {
                    j.shuffles.extend(a.run.map_outputs().clone());
                }
            }
            self.changed.insert(action.job);
            let mut leftover: BTreeMap<AgentId, Vec<TaskKey>> = BTreeMap::new();
            for (key, (agent, _)) in &self.running {
                if key.action == action {
                    leftover.entry(*agent).or_default().push(*key);
                }
            }
            for (agent, tasks) in leftover {
                self.kill_attempts(agent, tasks);
            }
            self.effects.push(Effect::ActionEnded { action, result });
        }
    }

    // ---- placement --------------------------------------------------------

    /// Place pending drivers and ready tasks on free slots: one
    /// [`Effect::Launch`] per agent with everything placed on it.
    pub fn schedule(&mut self, now: Instant) {
        let mut batches: BTreeMap<AgentId, Batch> = BTreeMap::new();
        self.place_drivers(now, &mut batches);
        let mut failed = Vec::new();
        // Weighted DRF: the action of the tenant with the smallest weighted
        // dominant share is offered slots first (between one tenant's
        // actions, the one running fewest), for as many tasks as keep its
        // tenant below the next tenant's share; then the order is looked at
        // again. With one tenant, every action takes what it can in turn.
        let (places, memory) = self.agents.totals();
        let mut declined = vec![false; self.actions.len()];
        while !self.agents.slots.is_empty() {
            // Tenants below their guarantee come first; a tenant at its limit
            // is offered nothing.
            let mut best: Option<(u8, f64, u32, usize)> = None;
            for (i, a) in self.actions.iter().enumerate() {
                if declined[i] || self.shares.room(a.claim.tenant, a.claim.memory) == 0 {
                    continue;
                }
                let key = (
                    u8::from(!self.shares.below_guarantee(a.claim.tenant)),
                    self.shares.share(a.claim.tenant, places, memory),
                    self.shares.running(a.run.action()),
                    i,
                );
                let earlier = |b: &(u8, f64, u32, usize)| {
                    key.0 < b.0
                        || (key.0 == b.0 && (key.1 < b.1 || (key.1 == b.1 && (key.2, key.3) < (b.2, b.3))))
                };
                if best.as_ref().is_none_or(earlier) {
                    best = Some(key);
                }
            }
            let Some((_, _, _, i)) = best else { break };
            let tenant = self.actions[i].claim.tenant;
            let next = self
                .actions
                .iter()
                .enumerate()
                .filter(|(j, a)| !declined[*j] && a.claim.tenant != tenant)
                .map(|(_, a)| self.shares.share(a.claim.tenant, places, memory))
                .fold(f64::INFINITY, f64::min);
            let fuel_left = self.fuel_left(self.actions[i].ctx.job, now);
            let a = &mut self.actions[i];
            let budget = self
                .shares
                .budget(tenant, a.claim.memory, places, memory, next)
                .min(self.shares.room(tenant, a.claim.memory));
            let placed = a.run.accept_up_to(&mut self.agents.slots, budget);
            if placed.is_empty() {
                declined[i] = true;
                continue;
            }
            for (key, agent) in placed {
                self.agents.placed(agent);
                self.shares.start(key.action, a.claim);
                self.running.insert(key, (agent, a.claim));
                self.ledger.started(key, agent, a.claim.memory, now);
                let batch = batches.entry(agent).or_default();
                match describe(&self.agents, a, key, agent, &mut batch.tables) {
                    Ok(mut d) => {
                        // No task may burn more than its job or tenant has left.
                        if let Some(left) = fuel_left {
                            d.limits.fuel = d.limits.fuel.min(left);
                        }
                        batch.tasks.push(d);
                    }
                    Err(e) => failed.push((i, key, agent, e)),
                }
            }
        }
        // A map output on an agent just lost (its loss is being handled) is
        // recomputed: the task waits. Anything else the master cannot
        // describe will not become describable by waiting: its action fails
        // at once, naming the task.
        for (i, key, agent, e) in failed {
            self.ledger.forget(&key);
            if let Some((_, claim)) = self.running.remove(&key) {
                self.shares.end(key.action, claim);
            }
            self.agents.freed(agent, now);
            let run = &mut self.actions[i].run;
            match e {
                LaunchError::MissingMapOutputs(_) | LaunchError::UnknownAgent(_) => {
                    run.on_outcome(&key, Outcome::Interrupted(TaskState::Lost));
                }
                LaunchError::MissingInput(..)
                | LaunchError::MissingRangeBounds(_)
                | LaunchError::NoSuchTask(_) => {
                    run.fail(format!("task {key} cannot be launched: {e}"));
                }
            }
        }
        for (agent, Batch { tasks, tables }) in batches {
            if tasks.is_empty() {
                continue;
            }
            let jobs: BTreeSet<JobId> = tasks.iter().map(|t| t.key.job()).collect();
            let access =
                jobs.into_iter().filter_map(|j| Some((j, self.jobs.get(&j)?.spec.capability))).collect();
            if let Some(address) = self.agents.address(agent) {
                let address = address.to_string();
                self.effects.push(Effect::Launch { agent, address, tasks, tables, access });
            }
        }
        self.reap();
    }

    fn place_drivers(&mut self, now: Instant, batches: &mut BTreeMap<AgentId, Batch>) {
        let pending: Vec<JobId> =
            self.jobs.values().filter(|j| j.driver == DriverSlot::Pending).map(|j| j.id).collect();
        for job in pending {
            let Some(claim) = self.driver_claim(job) else { continue };
            // A tenant at its limit starts no driver either.
            if self.shares.room(claim.tenant, claim.memory) == 0 {
                continue;
            }
            let Some(agent) = self.agents.roomiest_for_driver(now) else { return };
            let Some(j) = self.jobs.get_mut(&job) else { continue };
            j.driver = DriverSlot::Running(agent);
            self.agents.drivers(agent, true);
            // A driver counts against its tenant's share as a task does.
            self.shares.start(ActionId::driver(job), claim);
            let key = TaskKey::driver(job, j.driver_attempt);
            self.ledger.started(key, agent, claim.memory, now);
            let d = TaskDescriptor {
                key,
                component: j.spec.component,
                limits: j.spec.limits.clone(),
                broadcasts: Arc::default(),
                body: TaskBody::Driver(DriverWork { args: j.spec.args.clone(), deadline: j.spec.deadline }),
            };
            batches.entry(agent).or_default().tasks.push(d);
        }
    }
}

/// What one agent is sent in a scheduling round.
#[derive(Default)]
struct Batch {
    tasks: Vec<TaskDescriptor>,
    tables: Vec<Arc<MapTable>>,
}

/// The descriptor of attempt `key` of `action`, placed on `agent`; the
/// map-output tables it reads that `agent` lacks are added to `tables`.
/// Costs O(1) per reduce task: a shuffle's table is built once per version
/// and sent once per agent.
fn describe(
    agents: &Agents,
    action: &mut Action,
    key: TaskKey,
    agent: AgentId,
    tables: &mut Vec<Arc<MapTable>>,
) -> Result<TaskDescriptor, LaunchError> {
    let run = &action.run;
    let stage = run.graph().stages.get(key.stage.0 as usize).ok_or(LaunchError::NoSuchTask(key))?;
    let plan = stage.tasks.get(key.partition as usize).ok_or(LaunchError::NoSuchTask(key))?;
    let maps = |shuffle: ShuffleId| run.complete_maps(shuffle).ok_or(LaunchError::MissingMapOutputs(shuffle));
    let d = descriptor(&action.ctx, stage, plan, key, &maps)?;
    let reads: &[ShuffleId] = match &d.body {
        TaskBody::Work(w) => match &w.input {
            TaskInput::Shuffle(r) => &[r.shuffle],
            TaskInput::Join { left, right } => &[left.shuffle, right.shuffle],
            TaskInput::Text(_) | TaskInput::Records(_) => &[],
        },
        TaskBody::Driver(_) => &[],
    };
    for &shuffle in reads {
        let version = action.run.map_version(shuffle);
        if action.sent.get(&(agent, shuffle)) == Some(&version) {
            continue;
        }
        let table = match action.tables.get(&shuffle) {
            Some((v, t)) if *v == version => Arc::clone(t),
            _ => {
                let t = Arc::new(map_table(agents, &action.run, shuffle)?);
                action.tables.insert(shuffle, (version, Arc::clone(&t)));
                t
            }
        };
        action.sent.insert((agent, shuffle), version);
        tables.push(table);
    }
    Ok(d)
}

/// The table of where every map output of `shuffle` lives, all of them
/// available.
fn map_table(agents: &Agents, run: &JobRun, shuffle: ShuffleId) -> Result<MapTable, LaunchError> {
    let outs = run.map_outputs().get(&shuffle).ok_or(LaunchError::MissingMapOutputs(shuffle))?;
    let mut index: HashMap<AgentId, u32> = HashMap::new();
    let mut addresses: Vec<Arc<str>> = Vec::new();
    let mut maps = Vec::with_capacity(outs.len());
    for o in outs {
        let o = o.as_ref().ok_or(LaunchError::MissingMapOutputs(shuffle))?;
        let address = match index.get(&o.agent) {
            Some(i) => *i,
            None => {
                let a = agents.address(o.agent).ok_or(LaunchError::UnknownAgent(o.agent))?;
                addresses.push(Arc::from(a));
                let i = (addresses.len() - 1) as u32;
                index.insert(o.agent, i);
                i
            }
        };
        maps.push(MapStatus { address, sizes: o.sizes.clone() });
    }
    Ok(MapTable { action: run.action(), shuffle, addresses, maps })
}

/// The digest of `data` when it is a block.
fn block_of(data: &Data) -> Option<Digest> {
    match data {
        Data::Block { digest, .. } => Some(*digest),
        Data::Inline(_) => None,
    }
}

fn output(a: &Action) -> JobOutput {
    let results = a.run.results().unwrap_or_default();
    match a.ctx.sink {
        ResultSink::Count => JobOutput::Count(results.iter().map(|r| r.records).sum()),
        ResultSink::Records { .. } => JobOutput::Records(results.into_iter().map(|r| r.batch).collect()),
        ResultSink::Text(_) => JobOutput::Written(results.len() as u32),
        ResultSink::KeySample(_) => {
            JobOutput::Samples(results.into_iter().map(|r| (r.records, r.batch)).collect())
        }
    }
}

#[cfg(test)]
mod tests;
