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
//! task places and memory of the cluster (a
//! [`FreeIndex`] per pool) to running actions in the
//! order of weighted Dominant Resource Fairness between tenants; each
//! action's [`JobRun`] takes what its ready tasks fit in and leaves the rest.
//! All the tasks one round places on an agent go out in one launch. See
//! `docs/architecture.md` (control plane).

mod agents;
mod fair;
mod holds;
mod jobs;
mod order;
mod pools;

pub use agents::{Agent, AgentMemory, Agents, EXCLUDE_AFTER, EXCLUDE_FOR, EXCLUDE_WINDOW, Resources};
pub use jobs::{ActRecord, Job, JobPhase, JobSpec, JobView, StageView};
pub use pools::{Pool, Reservation};

use crate::dag::{JobGraph, StageKind};
use crate::free::{Demand, FreeIndex};
use crate::job::{CacheIndex, JobRun, JobState, KeptAt, Locality, Outcome, TaskResult};
use crate::launch::{JobContext, Kept, LaunchError, ResultSink, descriptor};
use crate::ledger::{EndLabel, FuelQuota, FuelStop, Ledger};
use crate::persist::{ActEntry, ActWrite};
pub use fair::{Amount, Quota, Sharing, TenantHolding, TenantSharing, UNRESERVED};
use fair::{Claim, Shares};
use holds::Holds;
use jobs::DriverSlot;
use order::Order;
use rustc_hash::FxHashMap;
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
    /// Persisted partitions it kept on its agent: (dataset, partition, bytes, in memory).
    pub cached: Vec<(DatasetId, u32, u64, bool)>,
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
        /// The S3 settings of the jobs whose grants carry their own.
        s3: Vec<(JobId, Arc<weft_core::access::S3Grants>)>,
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
    /// Delete the files and persisted partitions `agent` keeps for `job`
    /// (with `dataset`, only that dataset's persisted partitions).
    RemoveJob {
        /// The agent.
        agent: AgentId,
        /// Its address.
        address: String,
        /// The job.
        job: JobId,
        /// Only this persisted dataset (unpersist).
        dataset: Option<DatasetId>,
    },
    /// Delete these blocks of driver traffic from the master's artifact
    /// store: the last job that used them has ended.
    DeleteBlocks(Vec<Digest>),
    /// `agent` missed heartbeats, or a connection of its closed: check
    /// whether its port still takes connections, and call
    /// [`Core::agent_unreachable`] with `since` if it refuses them.
    Probe {
        /// The agent.
        agent: AgentId,
        /// Its address.
        address: String,
        /// When the probe was decided.
        since: Instant,
    },
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
    /// How long an action that declined what it was offered is offered
    /// nothing (unless something it may fit in appears first).
    pub offer_filter: Duration,
    /// The longest an action whose tasks fit nowhere holds an agent's room.
    pub hold_timeout: Duration,
    /// How long a task waits for the agent keeping its persisted input.
    pub locality_wait: Duration,
    /// Speculative copies of stragglers, if any.
    pub speculation: Option<crate::job::Speculation>,
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
    /// Every task attempt launched and not yet ended: where, and what it holds.
    running: FxHashMap<TaskKey, Placed>,
    /// Revocable attempts being killed to give their role its room back.
    preempted: BTreeSet<TaskKey>,
    /// Offer filters and holds.
    holds: Holds,
    /// What each tenant and action holds: the order of offers.
    shares: Shares,
    effects: Vec<Effect>,
    changed: BTreeSet<JobId>,
    /// Jobs changed in a way the state store must keep.
    durable: BTreeSet<JobId>,
    /// Live jobs whose map outputs or kept partitions moved (or ended jobs
    /// whose record of them must go), kept with the next writes.
    placed: BTreeSet<JobId>,
    /// What an earlier master run said live jobs' map outputs and kept
    /// partitions were, by the earlier agent ids: taken back as those agents
    /// register again ([`Core::agent_returned`]).
    left: BTreeMap<JobId, crate::persist::PlacesRecord>,
    /// Numbered actions' answers kept or dropped since the last writes.
    acts_changed: BTreeSet<(JobId, u32)>,
    /// A shuffle's map outputs were all computed: where they are is kept
    /// with the next writes, before its readers start.
    places_now: bool,
    /// The earlier agent ids `left` names that have not registered again.
    returning: BTreeSet<AgentId>,
    /// Until when restored drivers wait for `returning` agents.
    returning_until: Option<Instant>,
    max_result_size: u64,
    locality_wait: Duration,
    speculation: Option<crate::job::Speculation>,
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
            running: FxHashMap::default(),
            preempted: BTreeSet::new(),
            holds: Holds::new(config.offer_filter, config.hold_timeout),
            shares: Shares::default(),
            effects: Vec::new(),
            changed: BTreeSet::new(),
            durable: BTreeSet::new(),
            placed: BTreeSet::new(),
            acts_changed: BTreeSet::new(),
            places_now: false,
            left: BTreeMap::new(),
            returning: BTreeSet::new(),
            returning_until: None,
            max_result_size: config.max_result_size,
            locality_wait: config.locality_wait,
            speculation: config.speculation,
            blocks: HashMap::new(),
            ledger: Ledger::new(),
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

    /// What the state store must keep since the last call: the jobs changed
    /// in a way that must survive a restart (submitted, their plan, splits,
    /// bounds or blocks grown, an action started or answered, the driver
    /// started again, the job ended) with their numbered actions' answers
    /// kept or dropped, and, with them, when a shuffle's map outputs were all
    /// computed or when `records`, the ledger's new records and where map
    /// outputs and kept partitions moved. The I/O layer commits them before
    /// it carries out the effects that followed.
    pub fn take_writes(&mut self, records: bool) -> crate::persist::Writes {
        let jobs: Vec<_> = std::mem::take(&mut self.durable)
            .into_iter()
            .filter_map(|id| self.jobs.get(&id))
            .map(crate::persist::JobRecord::of)
            .collect();
        let places_now = std::mem::take(&mut self.places_now);
        if !records && jobs.is_empty() && !places_now {
            return crate::persist::Writes::default();
        }
        let attempts = self.ledger.take_new();
        let places =
            std::mem::take(&mut self.placed).into_iter().map(|id| (id, self.places_of(id))).collect();
        let acts = std::mem::take(&mut self.acts_changed)
            .into_iter()
            .map(|(job, number)| match self.jobs.get(&job).and_then(|j| j.acts.get(&number)) {
                Some(a) => ActWrite::Keep(ActEntry { job, number, act: a.into() }),
                None => ActWrite::Drop(job, number),
            })
            .collect();
        crate::persist::Writes { jobs, attempts, places, acts }
    }

    /// Where `job`'s map outputs and kept partitions are now, as the store
    /// keeps it (with what an earlier run left that was not taken back yet);
    /// `None` once it has ended or they are nowhere.
    fn places_of(&self, job: JobId) -> Option<crate::persist::PlacesRecord> {
        let j = self.jobs.get(&job).filter(|j| j.is_live())?;
        let mut shuffles = j.shuffles.clone();
        for a in self.actions.iter().filter(|a| a.ctx.job == job) {
            shuffles.extend(a.run.map_outputs().iter().map(|(s, o)| (*s, o.clone())));
        }
        let mut record = crate::persist::PlacesRecord::of(job, &shuffles, &j.cached);
        if let Some(left) = self.left.get(&job) {
            record.fill_from(left);
        }
        (!record.is_empty()).then_some(record)
    }

    /// Forget what [`Core::take_writes`] would return: a master that keeps
    /// no state.
    pub fn skip_writes(&mut self) {
        self.durable.clear();
        self.placed.clear();
        self.acts_changed.clear();
        self.places_now = false;
    }

    /// Take back what earlier master runs kept: every job (a live one's
    /// driver starts again, its numbered actions answered from what they
    /// kept), every ledger record, and where live jobs' map outputs and kept
    /// partitions were (taken back as their agents register again, see
    /// [`Core::agent_returned`]). `s3` gives a tenant's S3 settings now.
    /// Before any agent registers.
    pub fn restore(
        &mut self,
        restored: crate::persist::Restored,
        s3: impl Fn(&str) -> Arc<weft_core::access::S3Grants>,
    ) {
        for record in restored.jobs {
            let tenant = record.tenant.clone();
            let job = record.into_job(s3(&tenant));
            self.ledger.job_submitted(job.id, &tenant);
            if job.is_live() {
                for d in &job.blocks {
                    *self.blocks.entry(*d).or_default() += 1;
                }
                tracing::info!(job = %job.id, "a job of an earlier master run goes on: its driver starts again");
            }
            // Answers an earlier weft kept in the job's record move to
            // their own entries.
            self.acts_changed.extend(job.acts.keys().map(|n| (job.id, *n)));
            self.jobs.insert(job.id, job);
        }
        for entry in restored.acts {
            match self.jobs.get_mut(&entry.job).filter(|j| j.is_live()) {
                Some(j) => {
                    j.acts.insert(entry.number, entry.act.into());
                }
                // Its job ended: the entry goes with the next writes.
                None => {
                    self.acts_changed.insert((entry.job, entry.number));
                }
            }
        }
        for a in &restored.attempts {
            self.ledger.restore(a);
        }
        for record in restored.places {
            if self.jobs.get(&record.job).is_some_and(Job::is_live) {
                self.returning.extend(record.agents());
                self.left.insert(record.job, record);
            } else {
                // Its job ended: the record goes with the next writes.
                self.placed.insert(record.job);
            }
        }
    }

    /// An agent that an earlier master run knew as `previous` registered
    /// again as `agent`: the map outputs and kept partitions it held for
    /// live jobs are taken back (its files and kept blocks are still there),
    /// for the jobs' next actions and the ones running now.
    pub fn agent_returned(&mut self, previous: AgentId, agent: AgentId) {
        if !self.returning.remove(&previous) {
            return;
        }
        let (mut outputs, mut partitions) = (0, 0);
        for (job, record) in &mut self.left {
            let (held, kept) = record.take_held(previous, agent);
            let Some(j) = self.jobs.get_mut(job).filter(|j| j.is_live()) else { continue };
            for (shuffle, outs) in &held {
                let ours = j.shuffles.entry(*shuffle).or_insert_with(|| vec![None; outs.len()]);
                if ours.len() != outs.len() {
                    continue;
                }
                for (o, h) in ours.iter_mut().zip(outs) {
                    if o.is_none() && h.is_some() {
                        o.clone_from(h);
                        outputs += 1;
                    }
                }
            }
            for (at, k) in kept {
                partitions += u32::from(j.cached.insert(at, k).is_none());
            }
            for a in self.actions.iter_mut().filter(|a| a.ctx.job == *job) {
                if a.run.adopt(&held) > 0 {
                    self.changed.insert(*job);
                }
            }
            self.placed.insert(*job);
        }
        self.left.retain(|_, r| !r.is_empty());
        if self.returning.is_empty() {
            self.left.clear();
        }
        tracing::info!(%agent, %previous, outputs, partitions, "an agent of an earlier master run is back: what it holds is taken back");
    }

    /// Whether restored drivers still wait for agents of an earlier master
    /// run to register again (for at most the time an agent takes to be
    /// found lost), so that they adopt what those agents hold instead of
    /// computing it again.
    fn awaits_agents(&mut self, now: Instant) -> bool {
        if self.returning.is_empty() {
            return false;
        }
        let until = *self.returning_until.get_or_insert(now + self.agents.lost_after());
        if now < until {
            return true;
        }
        tracing::info!(
            agents = self.returning.len(),
            "agents of an earlier master run did not come back: what they held is computed again"
        );
        self.returning.clear();
        self.left.clear();
        self.placed.extend(self.jobs.values().filter(|j| j.is_live()).map(|j| j.id));
        false
    }

    // ---- jobs -------------------------------------------------------------

    /// Accept a job: its driver waits for a slot.
    pub fn submit_job(&mut self, spec: JobSpec) -> JobId {
        self.next_job += 1;
        let id = JobId { incarnation: self.incarnation, seq: self.next_job };
        self.ledger.job_submitted(id, &spec.tenant);
        self.jobs.insert(id, Job::new(id, spec));
        self.changed.insert(id);
        self.durable.insert(id);
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
        let restarted = j.driver_attempt > 0;
        j.plan.apply(&delta).map_err(|e| match restarted {
            false => e.to_string(),
            true => format!(
                "{e} (the driver was started again: a restarted driver must build the same datasets in \
                 the same order, so they may not depend on the clock, randomness or the environment)"
            ),
        })?;
        self.durable.insert(job);
        let Some(j) = self.jobs.get_mut(&job) else { return Ok(()) };
        // Unpersisted datasets: forget where their partitions are, and have
        // the agents keeping them drop them.
        let mut unpersisted: BTreeMap<AgentId, Vec<DatasetId>> = BTreeMap::new();
        for (ds, _) in delta.cached.iter().filter(|(_, level)| level.is_none()) {
            j.cached.retain(|(d, _), k| {
                if d == ds {
                    let held = unpersisted.entry(k.agent).or_default();
                    if !held.contains(ds) {
                        held.push(*ds);
                    }
                }
                d != ds
            });
        }
        self.placed.insert(job);
        for (agent, datasets) in unpersisted {
            let Some(address) = self.agents.address(agent) else { continue };
            for dataset in datasets {
                let address = address.to_string();
                self.effects.push(Effect::RemoveJob { agent, address, job, dataset: Some(dataset) });
            }
        }
        let Some(j) = self.jobs.get_mut(&job) else { return Ok(()) };
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
            self.durable.insert(job);
        }
    }

    /// Remember the range bounds sampled for a sort of `job`.
    pub fn set_range_bounds(&mut self, job: JobId, shuffle: ShuffleId, bounds: Vec<Vec<u8>>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.range_bounds.insert(shuffle, bounds);
            self.durable.insert(job);
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
        self.durable.insert(ctx.job);
        let action = ActionId { job: ctx.job, seq: job.actions_run };
        let mut run = JobRun::new(action, graph, job.spec.max_task_attempts)
            .with_locality_wait(self.locality_wait)
            .with_speculation(self.speculation);
        let claim = Claim {
            tenant: self.shares.tenant(&job.spec.tenant),
            places: job.spec.limits.slots.max(1),
            memory: job.spec.limits.memory.as_u64(),
        };
        if !job.is_live() {
            run.fail(format!("job {} has ended", ctx.job));
        }
        let skipped = run.adopt(&job.shuffles);
        if skipped > 0 {
            tracing::info!(%action, skipped, "map outputs of earlier actions reused");
        }
        let cut = run.cut_at_kept(&job.cached);
        if cut > 0 {
            tracing::info!(%action, cut, "stages read kept partitions instead of their parents");
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

    /// How `job`'s driver's action number `seq` ended, if it did (in this
    /// run of the driver or an earlier one).
    pub fn act_record(&self, job: JobId, seq: u32) -> Option<&ActRecord> {
        self.jobs.get(&job)?.acts.get(&seq)
    }

    /// Keep how `job`'s driver's action number `seq` ended, for a driver
    /// started again (answers over 4 MiB are not kept, and past 16 MiB of
    /// answers a job's oldest go: those actions run again, adopting what
    /// the job left).
    pub fn record_act(&mut self, job: JobId, seq: u32, record: ActRecord) {
        let size = |r: &ActRecord| match &r.answer {
            Ok(bytes) => bytes.len(),
            Err((_, message)) => message.len(),
        };
        if let Some(j) = self.jobs.get_mut(&job).filter(|j| j.is_live())
            && size(&record) <= MAX_ACT_RECORD
        {
            j.acts.insert(seq, record);
            self.acts_changed.insert((job, seq));
            let mut kept: usize = j.acts.values().map(size).sum();
            while kept > MAX_ACT_RECORDS
                && let Some((n, oldest)) = j.acts.pop_first()
            {
                kept -= size(&oldest);
                self.acts_changed.insert((job, n));
            }
            self.durable.insert(job);
        }
    }

    /// The text output `job`'s driver's action number `seq` set up, if any:
    /// what it asked, and where.
    pub fn output_claim(&self, job: JobId, seq: u32) -> Option<&([u8; 32], String)> {
        self.jobs.get(&job)?.outputs.get(&seq)
    }

    /// Keep that `job`'s driver's action number `seq`, asking `asked`, set up
    /// the text output at `uri` (before any task writes there).
    pub fn claim_output(&mut self, job: JobId, seq: u32, asked: [u8; 32], uri: String) {
        if let Some(j) = self.jobs.get_mut(&job).filter(|j| j.is_live()) {
            j.outputs.insert(seq, (asked, uri));
            self.durable.insert(job);
        }
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
        if let Some(DriverSlot::Running(agent)) = self.jobs.get(&job).map(|j| j.driver) {
            self.release_driver(job, agent);
        }
        let Some(j) = self.jobs.get_mut(&job) else { return };
        j.driver = DriverSlot::Ended;
        j.driver_log = log;
        self.durable.insert(job);
        self.placed.insert(job);
        self.left.remove(&job);
        if j.phase == JobPhase::Running {
            if end == EndReason::Finished {
                j.phase = JobPhase::Succeeded;
            } else {
                j.phase = JobPhase::Failed;
                j.message = end.to_string();
            }
        }
        j.shuffles.clear();
        j.cached.clear();
        self.acts_changed.extend(j.acts.keys().map(|n| (job, *n)));
        j.acts.clear();
        j.outputs.clear();
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
            self.effects.push(Effect::RemoveJob { agent: agent.id, address, job, dataset: None });
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
            driver_restarts: j.driver_restarts,
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

    /// Set how tenants share the cluster: weights, quotas, roles (from the
    /// tenants file; applies to what runs now).
    pub fn configure(&mut self, sharing: Sharing) {
        self.shares.configure(sharing);
        self.holds.lift_all();
    }

    /// Task places and memory `tenant`'s running tasks hold.
    pub fn held(&self, tenant: &str) -> (u64, u64) {
        self.shares.held(tenant)
    }

    /// Every tenant's holding up to `now` and over time, with the cluster's task
    /// places and memory (what shares are shares of).
    pub fn holdings(&mut self, now: Instant) -> (Vec<TenantHolding>, (u64, u64)) {
        self.shares.at(now);
        let (places, memory) = self.agents.totals();
        let mut holdings = self.shares.holdings(places, memory);
        let index: HashMap<String, usize> =
            holdings.iter().enumerate().map(|(i, h)| (h.tenant.clone(), i)).collect();
        for j in self.jobs.values().filter(|j| j.is_live()) {
            if let Some(h) = index.get(&j.spec.tenant).and_then(|i| holdings.get_mut(*i)) {
                h.jobs += 1;
                h.drivers += u32::from(matches!(j.driver, DriverSlot::Running(_)));
            }
        }
        (holdings, (places, memory))
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
        self.holds.lift_all();
        tracing::info!(agent = %id, %address, slots = resources.slots, "agent registered");
        id
    }

    /// An agent registered with reservations of its own (`--reserve`: role,
    /// slots and memory).
    ///
    /// # Errors
    /// The reservations pass what the agent offers (it is not registered).
    pub fn register_agent_reserving(
        &mut self,
        address: String,
        resources: Resources,
        attributes: BTreeMap<String, String>,
        reservations: Vec<(String, Demand)>,
        now: Instant,
    ) -> Result<AgentId, String> {
        let mut named = Vec::with_capacity(reservations.len());
        for (role, amount) in &reservations {
            if role == UNRESERVED || role.is_empty() {
                return Err(format!("`{role}` is not a role to reserve for"));
            }
            named.push(Reservation { role: self.shares.role(role), amount: *amount, dynamic: false });
        }
        pools::check(&named, resources.slots, resources.memory)?;
        let id = self.register_agent(address, resources, attributes, now);
        for r in named {
            self.agents.reserve(id, r, now)?;
        }
        Ok(id)
    }

    /// Reserve `amount` of live agent `agent` for `role` (a dynamic
    /// reservation; one made before for the role is replaced).
    ///
    /// # Errors
    /// No such live agent, or the reservations would pass what it offers.
    pub fn reserve(
        &mut self,
        agent: AgentId,
        role: &str,
        amount: Demand,
        now: Instant,
    ) -> Result<(), String> {
        if role == UNRESERVED || role.is_empty() {
            return Err(format!(
                "`{role}` is not a role to reserve for: name the role of the tenants it is for"
            ));
        }
        let role = self.shares.role(role);
        self.holds.lift_all();
        self.agents.reserve(agent, Reservation { role, amount, dynamic: true }, now)
    }

    /// Drop the dynamic reservation of `agent` for `role`; what it reserved.
    /// Tasks in it keep running, holding unreserved room until they end.
    ///
    /// # Errors
    /// No such agent or dynamic reservation.
    pub fn unreserve(&mut self, agent: AgentId, role: &str, now: Instant) -> Result<Demand, String> {
        let role = self.shares.role(role);
        self.agents.unreserve(agent, role, now)
    }

    /// The live agent whose id or address is `name`.
    pub fn find_agent(&self, name: &str) -> Option<AgentId> {
        self.agents.live().into_iter().find(|a| a.address == name || a.id.to_string() == name).map(|a| a.id)
    }

    /// The live agents, with their reservations (by role name).
    pub fn agent_views(&self) -> Vec<(Agent, Vec<(String, Reservation)>)> {
        self.agents
            .live()
            .into_iter()
            .map(|a| {
                let named = a
                    .pools
                    .reservations()
                    .iter()
                    .map(|r| (self.shares.role_name(r.role).to_string(), *r))
                    .collect();
                (a.clone(), named)
            })
            .collect()
    }

    /// An agent heartbeat; `false` tells it to register again.
    pub fn heartbeat(&mut self, agent: AgentId, now: Instant) -> bool {
        self.agents.heartbeat(agent, now)
    }

    /// An agent's heartbeat with the attempts it runs (drivers included):
    /// reconcile them with the master's, as Mesos does. An attempt it runs
    /// that the master does not know as running there (given up for lost,
    /// ended, of a job that ended) is killed; an attempt the master thinks
    /// runs there, whose launch the agent took, and that two heartbeats in a
    /// row leave out (its end never arrived) is lost: a task runs again, a
    /// driver's job fails as when its agent is lost. `false`: the agent is
    /// unknown, and must register again.
    pub fn heartbeat_running(&mut self, agent: AgentId, running: &[TaskKey], now: Instant) -> bool {
        let Some((previous, tasks, drivers)) =
            self.agents.get(agent).filter(|a| !a.lost).map(|a| (a.last_seen, a.running, a.drivers))
        else {
            return false;
        };
        self.agents.heartbeat(agent, now);
        self.shares.at(now);
        let listed: std::collections::HashSet<&TaskKey> = running.iter().collect();
        let unknown: Vec<TaskKey> = running
            .iter()
            .filter(|key| {
                if key.is_driver() {
                    self.jobs.get(&key.job()).is_none_or(|j| {
                        j.driver != DriverSlot::Running(agent) || j.driver_attempt != key.attempt
                    })
                } else {
                    self.running.get(key).is_none_or(|r| r.agent != agent)
                }
            })
            .copied()
            .collect();
        if !unknown.is_empty() {
            tracing::warn!(%agent, attempts = ?unknown, "reconciliation: the agent runs attempts the master does not; killing them");
            if let Some(address) = self.agents.address(agent) {
                let address = address.to_string();
                self.effects.push(Effect::Kill { agent, address, tasks: unknown });
            }
        }
        // Scans of every attempt and job, skipped for an agent without any:
        // a per-agent index would make them O(its own) (not built yet).
        let mut gone = Vec::new();
        if tasks > 0 {
            for (key, r) in &mut self.running {
                if r.agent == agent && r.seen.beat(listed.contains(key), previous) {
                    gone.push(*key);
                }
            }
        }
        gone.sort();
        for key in gone {
            tracing::warn!(task = %key, %agent, "reconciliation: the agent no longer runs the attempt; it is lost");
            self.attempt_lost(agent, key, now);
        }
        let drivers: Vec<JobId> = if drivers == 0 {
            Vec::new()
        } else {
            self.jobs
                .values_mut()
                .filter(|j| j.driver == DriverSlot::Running(agent))
                .filter_map(|j| {
                    let key = TaskKey::driver(j.id, j.driver_attempt);
                    j.driver_seen.beat(listed.contains(&key), previous).then_some(j.id)
                })
                .collect()
        };
        for job in drivers {
            tracing::warn!(%job, %agent, "reconciliation: the agent no longer runs the driver");
            self.ledger.closed(TaskKey::driver(job, self.jobs[&job].driver_attempt), EndLabel::Lost, now);
            self.driver_lost(job, agent, format!("the agent running the driver ({agent}) no longer runs it"));
        }
        self.reap();
        true
    }

    /// `agent` took the launch of these attempts at `now`: from then on,
    /// heartbeats that leave them out count (see [`Core::heartbeat_running`]).
    pub fn launch_delivered(&mut self, agent: AgentId, keys: &[TaskKey], now: Instant) {
        for key in keys {
            if key.is_driver() {
                if let Some(j) = self.jobs.get_mut(&key.job())
                    && j.driver == DriverSlot::Running(agent)
                    && j.driver_attempt == key.attempt
                {
                    j.driver_seen.delivered(now);
                }
            } else if let Some(r) = self.running.get_mut(key).filter(|r| r.agent == agent) {
                r.seen.delivered(now);
            }
        }
    }

    /// The addresses of agents lost in the last ten minutes, which no
    /// live agent serves: heartbeat answers carry them, so that tasks still
    /// reading blocks from one stop waiting at once (the fetch fails, and the
    /// lost map output is computed again) instead of at their fetch timeout.
    pub fn lost_peers(&self, now: Instant) -> Vec<String> {
        self.agents.recently_lost(now, LOST_PEERS_FOR)
    }

    /// Attempt `key`, which the master placed on live `agent`, no longer runs
    /// there: it ends lost and its task runs again.
    fn attempt_lost(&mut self, agent: AgentId, key: TaskKey, now: Instant) {
        let Some(r) = self.running.remove(&key) else { return };
        self.shares.end(key.action, r.claim);
        self.agents.freed(agent, r.pool, r.claim.demand(), now);
        self.ledger.closed(key, EndLabel::Lost, now);
        self.preempted.remove(&key);
        self.holds.lift(key.action);
        if let Some(a) = self.actions.iter_mut().find(|a| a.run.action() == key.action) {
            a.run.on_outcome(&key, Outcome::Interrupted(TaskState::Lost));
            self.changed.insert(key.job());
        }
    }

    /// `agent` no longer keeps these persisted partitions (job, dataset,
    /// partition): the next tasks compute them.
    pub fn forget_cached(&mut self, agent: AgentId, dropped: &[(JobId, DatasetId, u32)]) {
        for (job, dataset, partition) in dropped {
            if let Some(j) = self.jobs.get_mut(job)
                && j.cached.get(&(*dataset, *partition)).is_some_and(|k| k.agent == agent)
            {
                j.cached.remove(&(*dataset, *partition));
                self.placed.insert(*job);
            }
        }
    }

    /// Note what a live agent's heartbeat says of its memory (for views).
    pub fn agent_memory(&mut self, agent: AgentId, memory: AgentMemory) {
        self.agents.set_memory(agent, memory);
    }

    /// An agent registering names `previous`, the id it had: if that agent
    /// is still live here (it restarted, or came back, before it was found
    /// silent), it is lost now, so that what ran under it runs again at once
    /// instead of after `lost-after` heartbeats.
    pub fn agent_replaced(&mut self, previous: AgentId, now: Instant) {
        self.shares.at(now);
        if self.agents.lose(previous, now) {
            tracing::warn!(agent = %previous, "the agent registered again: its previous registration is LOST");
            self.agent_lost(previous, now);
        }
    }

    /// A connection `agent` held to the master closed (or a launch to it
    /// failed): check its port now. Its process may be gone, killed with
    /// its sockets closed by its kernel, as Spark hears of an executor whose
    /// connection disassociated; a live agent reconnecting loses nothing.
    pub fn agent_disconnected(&mut self, agent: AgentId, now: Instant) {
        if let Some(address) = self.agents.probe(agent, now) {
            self.effects.push(Effect::Probe { agent, address, since: now });
        }
    }

    /// `agent`'s port, probed from `since` (it had missed heartbeats, or a
    /// connection of its closed), refuses connections: its process is gone
    /// (a paused or slow agent's kernel still takes them), so it is lost now
    /// rather than after `lost-after` heartbeats, as Spark loses an executor
    /// whose connection dropped. Nothing if it heartbeat since.
    pub fn agent_unreachable(&mut self, agent: AgentId, since: Instant, now: Instant) {
        self.shares.at(now);
        if self.agents.silent_since(agent, since) && self.agents.lose(agent, now) {
            tracing::warn!(%agent, "agent unheard of since it was probed and its port refuses connections: LOST");
            self.agent_lost(agent, now);
        }
    }

    /// The live jobs, and the newest job's number (a job numbered higher,
    /// submitted later, is live too): what an agent registering keeps the
    /// files of.
    pub fn live_jobs(&self) -> (Vec<JobId>, u32) {
        (self.jobs.values().filter(|j| j.is_live()).map(|j| j.id).collect(), self.next_job)
    }

    /// The clock moved: declare silent agents lost, check the ports of
    /// those that missed heartbeats, end pauses that are over.
    pub fn tick(&mut self, now: Instant) {
        self.shares.at(now);
        for agent in self.agents.sweep(now) {
            tracing::warn!(%agent, "agent missed its heartbeats: LOST");
            self.agent_lost(agent, now);
        }
        for (agent, address) in self.agents.overdue(now) {
            self.effects.push(Effect::Probe { agent, address, since: now });
        }
        self.agents.prune_exclusions(now);
        self.speculate(now);
    }

    /// Find every action's stragglers (those on slow agents included); how
    /// many were found.
    fn speculate(&mut self, now: Instant) -> usize {
        let slow = self.agents.slow(now);
        self.actions.iter_mut().map(|a| a.run.speculate(now, &slow)).sum()
    }

    /// Kill the attempts that lost to another attempt of their task; an
    /// original out-run by its copy counts against its agent, which is
    /// excluded as slow after a few.
    fn kill_losers(&mut self, now: Instant) {
        let losers: Vec<crate::job::Loser> =
            self.actions.iter_mut().flat_map(|a| a.run.take_kills()).collect();
        for l in losers {
            tracing::debug!(task = %l.key, agent = %l.agent, "another attempt of its task finished first: killed");
            if l.outrun && self.agents.outrun(l.agent, now) {
                tracing::warn!(
                    agent = %l.agent, outrun = agents::SLOW_AFTER, within = ?agents::SLOW_WINDOW,
                    "agent EXCLUDED as slow for {:?}: its tasks keep being out-run by their speculative copies; what runs there is copied elsewhere",
                    agents::SLOW_FOR
                );
                // Its other running tasks straggle too: copy them now.
                self.places_now |= self.speculate(now) > 0;
            }
            self.kill_attempts(l.agent, vec![l.key]);
        }
    }

    fn agent_lost(&mut self, agent: AgentId, now: Instant) {
        self.ledger.agent_lost(agent, now);
        let shares = &mut self.shares;
        self.running.retain(|key, r| {
            let keep = r.agent != agent;
            if !keep {
                shares.end(key.action, r.claim);
            }
            keep
        });
        for j in self.jobs.values_mut().filter(|j| j.is_live()) {
            for o in j.shuffles.values_mut().flatten() {
                if o.as_ref().is_some_and(|o| o.agent == agent) {
                    *o = None;
                }
            }
            j.cached.retain(|_, k| k.agent != agent);
            self.placed.insert(j.id);
        }
        let lost: Vec<JobId> =
            self.jobs.values().filter(|j| j.driver == DriverSlot::Running(agent)).map(|j| j.id).collect();
        for job in lost {
            self.driver_lost(job, agent, format!("the agent running the driver ({agent}) was lost"));
        }
        for a in &mut self.actions {
            a.run.on_agent_lost(agent);
            self.changed.insert(a.ctx.job);
        }
        self.reap();
    }

    /// The driver of `job` no longer runs on `agent` (`why`): started again
    /// on another agent while the job has restarts left (Spark's
    /// `--supervise`), else the job fails. Its actions go on running: the new
    /// driver's actions of the same numbers adopt them, and what they left
    /// (map outputs, kept partitions, committed output), as the answers of
    /// those that ended.
    fn driver_lost(&mut self, job: JobId, agent: AgentId, why: String) {
        let Some(j) = self.jobs.get_mut(&job) else { return };
        if j.driver != DriverSlot::Running(agent) {
            return;
        }
        if j.driver_restarts >= j.spec.driver_restarts {
            let message = match j.driver_restarts {
                0 => why,
                n => format!("{why}; the driver was started {} times, its last restart allowed", n + 1),
            };
            self.end_driver(job, EndReason::HostError { message }, String::new());
            return;
        }
        j.driver_restarts += 1;
        j.driver_attempt += 1;
        j.driver = DriverSlot::Pending;
        self.durable.insert(job);
        tracing::warn!(%job, restart = j.driver_restarts, of = j.spec.driver_restarts, %why, "driver restarted");
        self.release_driver(job, agent);
        self.changed.insert(job);
    }

    /// The running driver of `job` left `agent`: its driver slot there and
    /// its claim on its tenant's share are free again.
    fn release_driver(&mut self, job: JobId, agent: AgentId) {
        self.agents.drivers(agent, false);
        if let Some(claim) = self.driver_claim(job) {
            self.shares.end(ActionId::driver(job), claim);
        }
    }

    /// Task attempts on `agent` ended; `false` when the agent is unknown (it
    /// must register again; the updates are not taken).
    pub fn task_ends(&mut self, agent: AgentId, ends: Vec<TaskEnd>, now: Instant) -> bool {
        self.shares.at(now);
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
        let label = match EndLabel::of(&end.end) {
            EndLabel::Killed if self.preempted.contains(&key) => EndLabel::Preempted,
            label => label,
        };
        self.ledger.ended(key, label, &end.metering, now);
        if key.is_driver() {
            let Some(j) = self.jobs.get(&key.job()) else { return };
            if j.driver == DriverSlot::Running(agent) && j.driver_attempt == key.attempt {
                self.end_driver(key.job(), end.end, end.log);
            }
            return;
        }
        let current = self.running.remove(&key);
        let was_running = current.is_some();
        if let Some(r) = current {
            self.shares.end(key.action, r.claim);
            self.agents.freed(agent, r.pool, r.claim.demand(), now);
        }
        self.holds.lift(key.action);
        if self.preempted.remove(&key) {
            tracing::debug!(task = %key, "a preempted revocable task ended; it runs again");
        }
        if !end.log.is_empty() {
            tracing::debug!(task = %key, log = %end.log, "task log");
        }
        // Only an attempt the master ran there counts against the agent.
        if let EndReason::HostError { message } = &end.end
            && was_running
            && self.agents.task_failed(agent, now)
        {
            tracing::warn!(
                %agent, failures = agents::EXCLUDE_AFTER, within = ?agents::EXCLUDE_WINDOW, last = %message,
                "agent EXCLUDED for {:?}: its tasks keep failing",
                agents::EXCLUDE_FOR
            );
        }
        let Some(a) = self.actions.iter_mut().find(|a| a.run.action() == key.action) else { return };
        self.changed.insert(key.job());
        self.placed.insert(key.job());
        let finished = end.end == EndReason::Finished;
        if let Some(j) = self.jobs.get_mut(&key.job()) {
            match &end.end {
                EndReason::Finished if j.is_live() => {
                    for &(dataset, partition, bytes, memory) in &end.cached {
                        j.cached.insert((dataset, partition), KeptAt { agent, bytes, memory });
                    }
                }
                // Whoever was said to keep it does not: compute it instead.
                EndReason::CacheMiss { dataset, partition, .. } => {
                    j.cached.remove(&(*dataset, *partition));
                }
                _ => {}
            }
        }
        let result_len = end.result.len();
        if finished
            && let Some(d) = block_of(&end.result)
            && let Some(j) = self.jobs.get_mut(&key.job())
            && j.blocks.insert(d)
        {
            *self.blocks.entry(d).or_default() += 1;
            self.durable.insert(key.job());
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
        // A shuffle's map outputs all computed: where they are is committed
        // before its readers start, so a restarted master need not compute
        // them again.
        let shuffle = a.run.graph().stages.get(key.stage.0 as usize).and_then(|s| match s.kind {
            StageKind::ShuffleMap { shuffle, .. } if s.id == key.stage => Some(shuffle),
            _ => None,
        });
        if taken && finished && shuffle.is_some_and(|s| a.run.complete_maps(s).is_some()) {
            self.places_now = true;
        }
        self.kill_losers(now);
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
        self.shares.at(now);
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
            if let Some(r) = self.running.remove(&key) {
                self.shares.end(key.action, r.claim);
                self.agents.freed(agent, r.pool, r.claim.demand(), now);
            }
            self.preempted.remove(&key);
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
        self.agent_disconnected(agent, now);
    }

    fn driver_not_started(&mut self, key: TaskKey, agent: AgentId) {
        if let Some(j) = self.jobs.get_mut(&key.job())
            && j.driver == DriverSlot::Running(agent)
            && j.driver_attempt == key.attempt
        {
            j.driver = DriverSlot::Pending;
            j.driver_attempt += 1;
            self.durable.insert(key.job());
            self.release_driver(key.job(), agent);
        }
    }

    /// What a running driver of `job` claims of its tenant's share.
    fn driver_claim(&mut self, job: JobId) -> Option<Claim> {
        let j = self.jobs.get(&job)?;
        let memory = j.spec.limits.memory.as_u64();
        let tenant = j.spec.tenant.clone();
        Some(Claim { tenant: self.shares.tenant(&tenant), places: 1, memory })
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
            self.placed.insert(action.job);
            let mut leftover: BTreeMap<AgentId, Vec<TaskKey>> = BTreeMap::new();
            for (key, r) in &self.running {
                if key.action == action {
                    leftover.entry(r.agent).or_default().push(*key);
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
        self.shares.at(now);
        let mut out = Placing::default();
        self.place_drivers(now, &mut out.batches);
        // Weighted DRF: the action of the tenant with the smallest weighted
        // dominant share is offered slots first (between one tenant's
        // actions, the one running fewest), for as many tasks as keep its
        // tenant below the next tenant's share; then the order is looked at
        // again. With one tenant, every action takes what it can in turn.
        let (places, memory) = self.agents.totals();
        let actions = &self.actions;
        for agent in self.holds.expire(now, |x| actions.iter().any(|a| a.run.action() == x)) {
            self.agents.set_held(agent, false, now);
        }
        // Tenants below their guarantee come first; a tenant at its limit is
        // offered nothing, nor is an action filtered after declining (unless
        // an agent is held for it).
        let mut order = Order::default();
        for (i, a) in self.actions.iter().enumerate() {
            let action = a.run.action();
            let filtered = self.holds.is_filtered(action, now) && self.holds.agent_of(action).is_none();
            if !filtered && self.shares.room(a.claim) > 0 {
                order.insert(a.claim.tenant, self.line(a.claim.tenant), self.shares.running(action), i);
            }
        }
        while self.agents.any_free() || self.holds.len() > 0 {
            let Some((tenant, i)) = order.first() else { break };
            let claim = self.actions[i].claim;
            let action = self.actions[i].run.action();
            let running = self.shares.running(action);
            let room = self.shares.room(claim);
            if room == 0 {
                order.remove(tenant, running, i);
                continue;
            }
            let budget = self.shares.budget(claim, places, memory, order.next_share(tenant)).min(room);
            // An agent held for the action first; then a role's tenants take
            // from its reservations, then everyone from the unreserved rest.
            let mut n = 0;
            if let Some(agent) = self.holds.agent_of(action) {
                n = self.place_held(i, agent, budget, now, &mut out);
            }
            let role = self.shares.role_of(tenant);
            if role != 0 && n < budget {
                n += self.place(i, Pool::Reserved(role), budget - n, now, &mut out);
            }
            if n < budget {
                n += self.place(i, Pool::Unreserved, budget - n, now, &mut out);
            }
            if n > 0 {
                if let Some(agent) = self.holds.release(action) {
                    self.agents.set_held(agent, false, now);
                }
                order.update(tenant, self.line(tenant), running, self.shares.running(action), i);
            } else {
                order.remove(tenant, running, i);
                too_large(&self.agents, &mut self.actions[i]);
                self.declined(i, now);
            }
        }
        if self.agents.has_reservations() {
            self.share_reservations(now, &mut out);
        }
        // A map output on an agent just lost (its loss is being handled) is
        // recomputed: the task waits. Anything else the master cannot
        // describe will not become describable by waiting: its action fails
        // at once, naming the task.
        let Placing { batches, failed } = out;
        for (i, key, agent, e) in failed {
            self.ledger.forget(&key);
            if let Some(r) = self.running.remove(&key) {
                self.shares.end(key.action, r.claim);
                self.agents.freed(agent, r.pool, r.claim.demand(), now);
            }
            let run = &mut self.actions[i].run;
            match e {
                LaunchError::MissingMapOutputs(_) | LaunchError::UnknownAgent(_) => {
                    // A task of a stage cut at kept partitions whose keeper
                    // just went: the stage waits for its parents again.
                    run.uncut(key.stage);
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
            // Drivers need no S3 credentials: only the jobs of tasks get them.
            let tasked: BTreeSet<JobId> =
                tasks.iter().filter(|t| !t.key.is_driver()).map(|t| t.key.job()).collect();
            let s3 = tasked
                .into_iter()
                .filter_map(|j| Some((j, Arc::clone(&self.jobs.get(&j)?.spec.s3))))
                .filter(|(_, g)| !g.is_empty())
                .collect();
            let access =
                jobs.into_iter().filter_map(|j| Some((j, self.jobs.get(&j)?.spec.capability))).collect();
            if let Some(address) = self.agents.address(agent) {
                let address = address.to_string();
                self.effects.push(Effect::Launch { agent, address, tasks, tables, access, s3 });
            }
        }
        self.reap();
    }

    /// `tenant`'s place in line: below its guarantee (first), and its
    /// weighted dominant share.
    fn line(&self, tenant: u32) -> order::Line {
        let (places, memory) = self.agents.totals();
        (!self.shares.below_guarantee(tenant), self.shares.share(tenant, places, memory))
    }

    /// Action `i` placed nothing of what it was offered: if it has ready
    /// tasks it is filtered for a while, and if none of its tasks runs (it
    /// starves: they fit nowhere now) it holds the agent where they would
    /// fit once that agent's tasks end.
    fn declined(&mut self, i: usize, now: Instant) {
        let a = &self.actions[i];
        let action = a.run.action();
        if !a.run.has_ready() {
            return;
        }
        self.holds.filter(action, now);
        let starving = self.shares.running(action) == 0;
        let most = 1 + self.agents.live_count() / 10;
        if starving && self.holds.agent_of(action).is_none() && self.holds.len() < most {
            let held = |agent| self.holds.is_held(agent);
            if let Some(agent) = self.agents.to_hold_for(a.claim.demand(), now).filter(|x| !held(*x)) {
                tracing::debug!(%action, %agent, "holding an agent for tasks that fit nowhere now");
                self.holds.hold(action, agent, now);
                self.agents.set_held(agent, true, now);
            }
        }
    }

    /// Place up to `budget` ready tasks of action `i` on `agent`, which is
    /// held for it (in its unreserved pool); how many.
    fn place_held(
        &mut self,
        i: usize,
        agent: AgentId,
        budget: usize,
        now: Instant,
        out: &mut Placing,
    ) -> usize {
        let mut index = FreeIndex::new();
        index.set(agent, self.agents.unreserved_free(agent, now));
        self.place_from(i, Pool::Unreserved, &mut index, budget, now, out)
    }

    /// Place up to `budget` ready tasks of action `i` in `pool`; how many.
    fn place(&mut self, i: usize, pool: Pool, budget: usize, now: Instant, out: &mut Placing) -> usize {
        // The index is taken out while tasks are placed from it (placing
        // changes the agents' pools, not their indexes), then put back.
        let Some(index) = self.agents.pool(pool) else { return 0 };
        let mut index = std::mem::take(index);
        let n = self.place_from(i, pool, &mut index, budget, now, out);
        if let Some(slot) = self.agents.pool(pool) {
            *slot = index;
        }
        n
    }

    /// Place up to `budget` ready tasks of action `i` from `index`, in
    /// `pool`; how many.
    fn place_from(
        &mut self,
        i: usize,
        pool: Pool,
        index: &mut FreeIndex,
        budget: usize,
        now: Instant,
        out: &mut Placing,
    ) -> usize {
        let fuel_left = self.fuel_left(self.actions[i].ctx.job, now);
        let a = &mut self.actions[i];
        let none = CacheIndex::new();
        let cached = self.jobs.get(&a.ctx.job).map_or(&none, |j| &j.cached);
        let excluded = self.agents.excluded();
        let placed = a.run.accept_up_to(index, a.claim.demand(), budget, Locality { cached, now, excluded });
        let n = placed.len();
        for (key, agent) in placed {
            self.agents.placed(agent, pool, a.claim.demand());
            self.shares.start(key.action, a.claim);
            self.running.insert(key, Placed { agent, claim: a.claim, pool, seen: Absence::placed() });
            self.ledger.started(key, agent, a.claim.memory, now);
            let batch = out.batches.entry(agent).or_default();
            let cached = self.jobs.get(&a.ctx.job).map(|j| &j.cached);
            match describe(&self.agents, a, key, agent, &mut batch.tables, cached) {
                Ok(mut d) => {
                    // No task may burn more than its job or tenant has left.
                    if let Some(left) = fuel_left {
                        d.limits.fuel = d.limits.fuel.min(left);
                    }
                    batch.tasks.push(d);
                }
                Err(e) => out.failed.push((i, key, agent, e)),
            }
        }
        n
    }

    /// After a round: a role whose actions still have ready tasks takes back
    /// its reserved room, killing the revocable tasks lent it; reserved room
    /// no role wants is lent, as revocable tasks (Mesos's revocable
    /// resources), to the actions that still have ready tasks.
    fn share_reservations(&mut self, now: Instant, out: &mut Placing) {
        // An action with ready tasks left after the round got less than it
        // could use (whether it was offered nothing it fits, or nothing).
        let waiting = |c: &Self, i: usize| {
            let a = &c.actions[i];
            c.shares.room(a.claim) > 0 && a.run.has_ready()
        };
        let mut wanted: BTreeMap<u32, usize> = BTreeMap::new();
        for i in 0..self.actions.len() {
            let role = self.shares.role_of(self.actions[i].claim.tenant);
            if role != 0 && self.agents.reserved.contains_key(&role) && waiting(self, i) {
                *wanted.entry(role).or_default() += self.actions[i].run.waiting();
            }
        }
        for (role, want) in &wanted {
            self.reclaim(*role, *want);
        }
        let (places, memory) = self.agents.totals();
        let mut lenders: Vec<usize> = (0..self.actions.len()).filter(|i| waiting(self, *i)).collect();
        lenders.sort_by(|x, y| {
            let share = |i: &usize| self.shares.share(self.actions[*i].claim.tenant, places, memory);
            share(x).total_cmp(&share(y)).then(x.cmp(y))
        });
        for i in lenders {
            let own = self.shares.role_of(self.actions[i].claim.tenant);
            for role in self.agents.reserved_roles() {
                let room = self.shares.room(self.actions[i].claim);
                if role != own && !wanted.contains_key(&role) && room > 0 {
                    self.place(i, Pool::Reserved(role), room, now, out);
                }
            }
        }
    }

    /// Kill revocable tasks in `role`'s reserved pools until `want` are
    /// being killed (fewer if fewer run); their tasks run again later
    /// without counting as failures.
    fn reclaim(&mut self, role: u32, want: usize) {
        let pool = Pool::Reserved(role);
        let lent = |r: &Placed| r.pool == pool && self.shares.role_of(r.claim.tenant) != role;
        let mut n = self.preempted.iter().filter(|k| self.running.get(k).is_some_and(lent)).count();
        let mut victims: BTreeMap<AgentId, Vec<TaskKey>> = BTreeMap::new();
        for (key, r) in &self.running {
            if n >= want {
                break;
            }
            if lent(r) && !self.preempted.contains(key) {
                victims.entry(r.agent).or_default().push(*key);
                n += 1;
            }
        }
        for (agent, tasks) in victims {
            tracing::info!(%agent, tasks = tasks.len(), role = self.shares.role_name(role), "preempting revocable tasks");
            self.preempted.extend(tasks.iter().copied());
            self.kill_attempts(agent, tasks);
        }
    }

    /// Place waiting drivers on free driver slots in the DRF order tasks
    /// follow: the tenant below its guarantee, then of the smallest weighted
    /// share, first; a tenant's own drivers in submission order.
    fn place_drivers(&mut self, now: Instant, batches: &mut BTreeMap<AgentId, Batch>) {
        // A restored driver whose job's map outputs or kept partitions are on
        // agents of the earlier run waits for them to register again.
        let waiting = self.awaits_agents(now);
        let pending: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.driver == DriverSlot::Pending && !(waiting && self.left.contains_key(&j.id)))
            .map(|j| j.id)
            .collect();
        let mut order = Order::default();
        let mut claims = Vec::with_capacity(pending.len());
        for (i, job) in pending.iter().enumerate() {
            let claim = self.driver_claim(*job);
            if let Some(c) = claim {
                order.insert(c.tenant, self.line(c.tenant), 0, i);
            }
            claims.push(claim);
        }
        while let Some((tenant, i)) = order.first() {
            order.remove(tenant, 0, i);
            let (job, Some(claim)) = (pending[i], claims[i]) else { continue };
            // A tenant at its limit starts no driver either.
            if self.shares.room(claim) == 0 {
                continue;
            }
            let Some(agent) = self.agents.roomiest_for_driver(now) else { return };
            let Some(j) = self.jobs.get_mut(&job) else { continue };
            j.driver = DriverSlot::Running(agent);
            j.driver_seen = Absence::placed();
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
            order.reline(tenant, self.line(tenant));
        }
    }
}

/// Fail `action` if its tasks demand more slots or memory than any live
/// agent has in all: waiting would never place them.
fn too_large(agents: &Agents, action: &mut Action) {
    let (largest, d) = (agents.largest(), action.claim.demand());
    if largest.slots == 0 {
        return; // no agent yet: one may come
    }
    let message = if d.places > largest.slots {
        format!(
            "its tasks hold {} slots each (--task-slots), but the largest agent has {}",
            d.places, largest.slots
        )
    } else if d.memory > largest.memory {
        format!(
            "its tasks need {} of memory each (--task-memory), but the largest agent offers {} (weft agent --memory)",
            bytesize::ByteSize::b(d.memory),
            bytesize::ByteSize::b(largest.memory)
        )
    } else {
        return;
    };
    if action.run.has_ready() {
        action.run.fail(format!("no agent can run this job's tasks: {message}; ask for less"));
    }
}

/// A running attempt: its agent, what it claims, and the pool it holds it in
/// (revocable when that is another role's reservation).
#[derive(Debug, Clone, Copy)]
struct Placed {
    agent: AgentId,
    claim: Claim,
    pool: Pool,
    /// When it was placed, and the heartbeats in a row since that did not list it.
    seen: Absence,
}

/// What reconciliation counts of an attempt the master thinks runs on an
/// agent: when the agent took its launch (none yet: it may wait behind
/// another launch to that agent, and nothing is counted), and how many
/// heartbeats in a row have not listed it. A heartbeat counts only once the
/// agent took the launch before its previous heartbeat arrived;
/// [`ABSENT_LOST`] in a row and the agent no longer runs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Absence {
    since: Option<Instant>,
    missed: u8,
}

/// The largest answer of a driver's action kept for a restarted driver
/// (answers name result blocks; inline ones are up to 64 KiB a partition).
const MAX_ACT_RECORD: usize = 4 << 20;

/// The most answers of a job's actions kept, in bytes (the oldest go first).
const MAX_ACT_RECORDS: usize = 16 << 20;

/// How long a lost agent's address is named in heartbeat answers: longer
/// than any fetch from it may still be waiting.
const LOST_PEERS_FOR: Duration = Duration::from_secs(600);

/// Heartbeats in a row that must leave out an attempt for it to be lost.
const ABSENT_LOST: u8 = 2;

impl Absence {
    /// Placed; its launch not yet taken by the agent.
    pub(crate) fn placed() -> Self {
        Self { since: None, missed: 0 }
    }

    /// The agent took the launch at `now`.
    fn delivered(&mut self, now: Instant) {
        self.since.get_or_insert(now);
    }

    /// A heartbeat listed it (`listed`) or not; `true` once it is lost.
    fn beat(&mut self, listed: bool, previous_beat: Instant) -> bool {
        if listed {
            self.missed = 0;
        } else if self.since.is_some_and(|since| since < previous_beat) {
            self.missed += 1;
        }
        self.missed >= ABSENT_LOST
    }
}

/// What a scheduling round placed: a batch per agent, and the attempts it
/// could not describe (action index, attempt, agent, why).
#[derive(Default)]
struct Placing {
    batches: BTreeMap<AgentId, Batch>,
    failed: Vec<(usize, TaskKey, AgentId, LaunchError)>,
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
    cached: Option<&CacheIndex>,
) -> Result<TaskDescriptor, LaunchError> {
    let run = &action.run;
    let stage = run.graph().stages.get(key.stage.0 as usize).ok_or(LaunchError::NoSuchTask(key))?;
    let plan = stage.tasks.get(key.partition as usize).ok_or(LaunchError::NoSuchTask(key))?;
    let maps = |shuffle: ShuffleId| run.complete_maps(shuffle).ok_or(LaunchError::MissingMapOutputs(shuffle));
    let kept = |dataset: DatasetId, partition: u32| {
        let at = cached?.get(&(dataset, partition))?.agent;
        match at == agent {
            true => Some(Kept::Here),
            false => agents.address(at).map(|a| Kept::At(a.to_string())),
        }
    };
    let d = descriptor(&action.ctx, stage, plan, key, &maps, &kept)?;
    let reads: &[ShuffleId] = match &d.body {
        TaskBody::Work(w) => match &w.input {
            TaskInput::Shuffle(r) => &[r.shuffle],
            TaskInput::Join { left, right } => &[left.shuffle, right.shuffle],
            TaskInput::Text(_) | TaskInput::Records(_) | TaskInput::Cached(_) => &[],
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
        maps.push(MapStatus { address, attempt: o.attempt, sizes: o.sizes.clone() });
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
