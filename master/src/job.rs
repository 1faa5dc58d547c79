//! One job's run through its stages: which tasks are ready, which attempt is
//! current, where map outputs live, and what a failure means.
//!
//! [`JobRun`] is a pure state machine; the scheduler feeds it offers and task
//! events and launches what it returns. The rules:
//!
//! - **Two-level placement**, as in Mesos: the scheduler's allocator offers
//!   the free places and memory of the cluster ([`FreeIndex`]) to each job in
//!   turn, and the job [accepts](JobRun::accept) some with ready tasks,
//!   placing each where its demand fits and it would rather run, and declines
//!   the rest, which go to the next job. A reduce task would rather run on the
//!   agent that holds most of its input; other tasks spread over the agents
//!   with the most free memory.
//! - **Amortised**: each stage keeps a queue of its pending partitions and
//!   counts of its running and finished tasks, so placing a task, applying
//!   its end and reporting progress cost the same in a job of ten tasks as in
//!   one of a million.
//! - A stage's tasks are **ready** once every parent stage's map outputs are all
//!   available. Tasks run in attempts; only the current attempt's events count
//!   (a late event from an older attempt is ignored).
//! - A **host error** is retried, up to `max_attempts` failures per task.
//! - A **guest failure** (out of fuel, memory or time, a trap, a user error) is
//!   deterministic: the job fails at once with that reason instead of burning
//!   the cluster on retries.
//! - A **lost agent** loses the attempts running on it (they run again without
//!   counting as failures) and the map outputs it held: their map tasks run
//!   again, as Spark recomputes lost shuffle output from lineage.
//! - A **fetch failure** (a reduce task could not read a map output, the typed
//!   end [`EndReason::FetchFailed`]) marks that output lost, re-runs its map
//!   task, then the reduce task. It is not a failure of the reading task, but
//!   a map output found lost [`MAX_STAGE_ATTEMPTS`] times, each time by a
//!   reader launched after it was computed again (a block corrupt as
//!   written, a disk that eats them), fails the job, as Spark's
//!   `spark.stage.maxConsecutiveAttempts`, instead of looping. The first
//!   fetch failure from an agent loses every output it holds, as Spark does.
//! - Map outputs **outlive the action**: a later action of the same submitted job
//!   [adopts](JobRun::adopt) the map outputs of shuffles it shares with earlier
//!   ones, and their map tasks do not run again (Spark's skipped stages).
//! - A stage whose every task can read a **kept persisted partition** is
//!   [cut](JobRun::cut_at_kept) from its parents: they do not run for it, as
//!   Spark does not visit the dependencies of a fully cached RDD. If one of its
//!   tasks finds nothing kept when it is placed (an agent was lost, a
//!   partition evicted), the stage joins its parents again and that task waits
//!   for their map outputs.

mod speculation;

use speculation::Copy;
pub use speculation::{Loser, Speculation};

use crate::dag::{JobGraph, Source, StageKind};
use crate::free::{Demand, FreeIndex};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use weft_core::ids::{ActionId, AgentId, DatasetId, ShuffleId, StageId};
use weft_core::metering::EndReason;
use weft_core::task::{BlockSizes, TaskKey, TaskState};

/// Past this many map outputs a reduce task prefers no agent, as in Spark
/// (`SHUFFLE_PREF_MAP_THRESHOLD`): finding the agents that hold a fifth of its
/// input costs a pass over every map output for every reduce task, and spread
/// over that many map tasks the input rarely sits on so few agents.
pub const PREF_MAP_THRESHOLD: usize = 1000;

/// How many times one map output may be found lost by a fetch (each time
/// computed again) before its job fails.
pub const MAX_STAGE_ATTEMPTS: u32 = 4;

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Tasks remain.
    Running,
    /// Every result task finished.
    Succeeded,
    /// A task failed for good; the message says why.
    Failed(String),
}

/// How far one stage has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageProgress {
    /// The stage.
    pub stage: StageId,
    /// `map` or `result`.
    pub kind: &'static str,
    /// Its tasks.
    pub tasks: u32,
    /// Attempts running now.
    pub running: u32,
    /// Tasks done.
    pub finished: u32,
    /// Failed attempts so far.
    pub failed: u32,
}

/// The map outputs of each shuffle, by map partition (`None`: not available).
pub type MapOutputs = BTreeMap<ShuffleId, Vec<Option<MapOutput>>>;

/// Where the partitions of a job's persisted datasets are kept, by dataset
/// and partition.
pub type CacheIndex = BTreeMap<(DatasetId, u32), KeptAt>;

/// A persisted partition an agent keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptAt {
    /// The agent.
    pub agent: AgentId,
    /// Its bytes.
    pub bytes: u64,
    /// In memory (else on disk).
    pub memory: bool,
}

/// A map task's finished output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOutput {
    /// The agent holding it.
    pub agent: AgentId,
    /// The attempt that wrote it (the one taken as its task's finish): the
    /// agent's files are named by it, and readers are told to fetch it.
    pub attempt: u32,
    /// The size of its block for each reduce partition.
    pub sizes: BlockSizes,
    /// The run's launch count when it was recorded: a fetch failure of an
    /// attempt launched before it cannot be about it (0: from an earlier
    /// action).
    pub since: u64,
}

/// What a finished result task handed back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskResult {
    /// Records it counted (all its output records; for a key sample, the
    /// records sampled from).
    pub records: u64,
    /// The batch it returned (records for collect and take, sampled keys),
    /// empty for other sinks.
    pub batch: weft_core::task::Data,
}

/// How an attempt ended, as the job needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished; a result task's records, or a map task's output sizes.
    Finished {
        /// What a result task returned.
        result: TaskResult,
        /// Output bytes per reduce partition (map stages).
        partition_bytes: Vec<u64>,
    },
    /// Failed with this reason (a fetch failure recomputes the map output it names).
    Failed(EndReason),
    /// Killed or lost: run again without counting a failure.
    Interrupted(TaskState),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    Pending,
    /// `launched`: the run's launch count when it started.
    Running {
        attempt: u32,
        agent: AgentId,
        launched: u64,
    },
    Done,
}

#[derive(Debug, Clone)]
struct TaskRun {
    slot: Slot,
    next_attempt: u32,
    failures: u32,
    /// When it was first declined for want of the agent keeping its
    /// persisted input (delay scheduling).
    waiting_since: Option<Instant>,
    /// When its running attempt started.
    started: Option<Instant>,
    /// A speculative copy of its running attempt, on another agent.
    copy: Option<Copy>,
    /// Whether it waits in its stage's queue of stragglers.
    straggling: bool,
}

/// What placing tasks near their persisted input needs: where partitions
/// are kept, the agents not worth waiting for, and the time now.
#[derive(Debug, Clone, Copy)]
pub struct Locality<'a> {
    /// Where the job's persisted partitions are.
    pub cached: &'a CacheIndex,
    /// Agents excluded for a while (failing, or slow): a task whose input
    /// one of them keeps runs elsewhere at once, without waiting for it.
    pub excluded: &'a [AgentId],
    /// Now.
    pub now: Instant,
}

/// How long a task waits for the agent keeping its persisted input before
/// it runs elsewhere (Spark's `spark.locality.wait`).
pub const DEFAULT_LOCALITY_WAIT: Duration = Duration::from_secs(3);

/// Counts of one stage's tasks, kept as they change.
#[derive(Debug, Clone, Default)]
struct StageCounts {
    running: u32,
    done: u32,
    failed: u32,
}

/// One job's progress through its graph.
#[derive(Debug)]
pub struct JobRun {
    action: ActionId,
    graph: JobGraph,
    max_attempts: u32,
    tasks: Vec<Vec<TaskRun>>,
    /// Per stage, partitions that became pending, in order (an entry whose
    /// task is no longer pending when it is reached is skipped).
    pending: Vec<VecDeque<u32>>,
    counts: Vec<StageCounts>,
    /// Per shuffle, how many map outputs are missing.
    missing: BTreeMap<ShuffleId, u32>,
    map_outputs: MapOutputs,
    /// Per shuffle, how many times its map outputs changed: the version of
    /// its [`MapTable`](weft_core::task::MapTable).
    versions: BTreeMap<ShuffleId, u32>,
    results: Vec<Option<TaskResult>>,
    state: JobState,
    locality_wait: Duration,
    /// Per stage, whether it is cut from its parents (see [`cut_at_kept`](Self::cut_at_kept)).
    cut: Vec<bool>,
    /// How many times each map output was found lost by a fetch (see
    /// [`MAX_STAGE_ATTEMPTS`]).
    fetch_losses: BTreeMap<(ShuffleId, u32), u32>,
    /// Attempts launched so far: what orders launches and map outputs.
    launches: u64,
    /// When stragglers get a speculative copy, if ever.
    speculation: Option<Speculation>,
    /// Per stage, how long its finished tasks ran, in microseconds.
    durations: Vec<Vec<u64>>,
    /// Per stage, the median of `durations` and how many it was taken over.
    medians: Vec<(usize, u64)>,
    /// Per stage, stragglers waiting for a place for their copy.
    stragglers: Vec<VecDeque<u32>>,
    /// Attempts that lost to another attempt of their task: the caller kills them.
    kills: Vec<speculation::Loser>,
}

impl JobRun {
    /// A run of `graph`, allowing `max_attempts` failures per task.
    pub fn new(action: ActionId, graph: JobGraph, max_attempts: u32) -> Self {
        let tasks = graph
            .stages
            .iter()
            .map(|s| {
                let run = TaskRun {
                    slot: Slot::Pending,
                    next_attempt: 0,
                    failures: 0,
                    waiting_since: None,
                    started: None,
                    copy: None,
                    straggling: false,
                };
                vec![run; s.tasks.len()]
            })
            .collect();
        let pending = graph.stages.iter().map(|s| (0..s.tasks.len() as u32).collect()).collect();
        let counts = vec![StageCounts::default(); graph.stages.len()];
        let cut = vec![false; graph.stages.len()];
        let stages = graph.stages.len();
        let mut map_outputs = BTreeMap::new();
        let mut missing = BTreeMap::new();
        for s in &graph.stages {
            if let StageKind::ShuffleMap { shuffle, .. } = s.kind {
                map_outputs.insert(shuffle, vec![None; s.tasks.len()]);
                missing.insert(shuffle, s.tasks.len() as u32);
            }
        }
        let results = vec![None; graph.result_stage().map_or(0, |s| s.tasks.len())];
        let state = if results.is_empty() { JobState::Succeeded } else { JobState::Running };
        Self {
            action,
            graph,
            max_attempts: max_attempts.max(1),
            tasks,
            pending,
            counts,
            missing,
            map_outputs,
            versions: BTreeMap::new(),
            results,
            state,
            locality_wait: DEFAULT_LOCALITY_WAIT,
            cut,
            fetch_losses: BTreeMap::new(),
            launches: 0,
            speculation: None,
            durations: vec![Vec::new(); stages],
            medians: vec![(0, 0); stages],
            stragglers: vec![VecDeque::new(); stages],
            kills: Vec::new(),
        }
    }

    /// Let a task wait up to `wait` for the agent keeping its persisted input.
    pub fn with_locality_wait(mut self, wait: Duration) -> Self {
        self.locality_wait = wait;
        self
    }

    /// The action this run computes.
    pub fn action(&self) -> ActionId {
        self.action
    }

    /// The graph being run.
    pub fn graph(&self) -> &JobGraph {
        &self.graph
    }

    /// Where the job stands.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// Take over map outputs an earlier action of the same job left: every
    /// available output of a shuffle this graph writes, with as many map
    /// partitions, counts as done here. Returns how many map tasks are skipped.
    pub fn adopt(&mut self, earlier: &MapOutputs) -> usize {
        let mut skipped = 0;
        for (i, stage) in self.graph.stages.iter().enumerate() {
            let StageKind::ShuffleMap { shuffle, .. } = stage.kind else { continue };
            let (Some(theirs), Some(ours)) = (earlier.get(&shuffle), self.map_outputs.get_mut(&shuffle))
            else {
                continue;
            };
            if theirs.len() != ours.len() {
                continue;
            }
            for (p, out) in theirs.iter().enumerate() {
                if let Some(out) = out
                    && self.tasks[i][p].slot == Slot::Pending
                {
                    // Older than every launch of this run.
                    ours[p] = Some(MapOutput { since: 0, ..out.clone() });
                    *self.versions.entry(shuffle).or_default() += 1;
                    self.tasks[i][p].slot = Slot::Done;
                    self.counts[i].done += 1;
                    if let Some(m) = self.missing.get_mut(&shuffle) {
                        *m -= 1;
                    }
                    skipped += 1;
                }
            }
        }
        skipped
    }

    /// Cut from their parents the stages whose every unfinished task can read
    /// a persisted partition some agent keeps (`cached`): they run without
    /// waiting for their parents' map outputs, and those parents run only if
    /// another stage needs them. Call after [`adopt`](Self::adopt). Returns
    /// how many stages were cut.
    pub fn cut_at_kept(&mut self, cached: &CacheIndex) -> usize {
        if cached.is_empty() {
            return 0;
        }
        let mut cut = 0;
        for i in 0..self.graph.stages.len() {
            if self.graph.stages[i].parents.is_empty() || self.stage_ready(i) {
                continue;
            }
            let mut unfinished = (0..self.tasks[i].len() as u32)
                .filter(|p| self.tasks[i][*p as usize].slot != Slot::Done)
                .peekable();
            if unfinished.peek().is_some() && unfinished.all(|p| self.keeper(i, p, cached).is_some()) {
                self.cut[i] = true;
                cut += 1;
            }
        }
        cut
    }

    /// Put `stage` back behind its parents (a launch of one of its tasks
    /// found neither a kept partition nor its parents' map outputs): its
    /// tasks wait for the parents, which run.
    pub fn uncut(&mut self, stage: StageId) {
        if let Some(i) = self.stage_index(stage) {
            self.cut[i] = false;
        }
    }

    /// The map outputs written (or adopted) so far.
    pub fn map_outputs(&self) -> &MapOutputs {
        &self.map_outputs
    }

    /// How many map outputs `shuffle` has, when every one is available.
    pub fn complete_maps(&self, shuffle: ShuffleId) -> Option<u32> {
        let outs = self.map_outputs.get(&shuffle)?;
        (self.missing.get(&shuffle) == Some(&0)).then_some(outs.len() as u32)
    }

    /// How many times the map outputs of `shuffle` changed (set, lost or
    /// adopted): a table sent at one version is stale at any other.
    pub fn map_version(&self, shuffle: ShuffleId) -> u32 {
        self.versions.get(&shuffle).copied().unwrap_or(0)
    }

    /// End the job now with `message` (a kill, a lost driver); attempts still
    /// running are the caller's to stop.
    pub fn fail(&mut self, message: impl Into<String>) {
        if self.state == JobState::Running {
            self.state = JobState::Failed(message.into());
        }
    }

    fn stage_index(&self, stage: StageId) -> Option<usize> {
        // Stage ids are their positions (see `dag::build`).
        let i = stage.0 as usize;
        (self.graph.stages.get(i)?.id == stage).then_some(i)
    }

    fn shuffle_of(&self, stage: usize) -> Option<ShuffleId> {
        match self.graph.stages[stage].kind {
            StageKind::ShuffleMap { shuffle, .. } => Some(shuffle),
            StageKind::Result => None,
        }
    }

    fn stage_ready(&self, stage: usize) -> bool {
        self.graph.stages[stage].parents.iter().all(|p| {
            self.stage_index(*p)
                .and_then(|i| self.shuffle_of(i))
                .and_then(|sh| self.missing.get(&sh))
                .is_some_and(|m| *m == 0)
        })
    }

    /// Every stage's progress.
    pub fn progress(&self) -> Vec<StageProgress> {
        self.graph
            .stages
            .iter()
            .zip(&self.counts)
            .map(|(stage, c)| StageProgress {
                stage: stage.id,
                kind: match stage.kind {
                    StageKind::ShuffleMap { .. } => "map",
                    StageKind::Result => "result",
                },
                tasks: stage.tasks.len() as u32,
                running: c.running,
                finished: c.done,
                failed: c.failed,
            })
            .collect()
    }

    /// Which stages still matter: the result stage, and the parents of a
    /// needed stage with work left. A stage whose outputs were all adopted
    /// does not make its own parents run.
    fn needed(&self) -> Vec<bool> {
        let mut needed = vec![false; self.graph.stages.len()];
        let mut todo: Vec<usize> = self.graph.stages.len().checked_sub(1).into_iter().collect();
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut needed[i], true)
                || self.counts[i].done as usize == self.tasks[i].len()
                || self.cut[i]
            {
                continue;
            }
            todo.extend(self.graph.stages[i].parents.iter().filter_map(|p| self.stage_index(*p)));
        }
        needed
    }

    /// Which stages can launch tasks now: needed, and every parent's map
    /// outputs available or the stage cut from its parents.
    fn launchable(&self) -> Vec<usize> {
        if self.state != JobState::Running {
            return Vec::new();
        }
        let needed = self.needed();
        (0..self.graph.stages.len())
            .filter(|i| needed[*i] && (self.cut[*i] || self.stage_ready(*i)))
            .collect()
    }

    /// Tasks that can be launched now, as (stage, partition), earliest stages first.
    pub fn ready(&self) -> Vec<(StageId, u32)> {
        let mut ready = Vec::new();
        for i in self.launchable() {
            for (p, t) in self.tasks[i].iter().enumerate() {
                if t.slot == Slot::Pending {
                    ready.push((self.graph.stages[i].id, p as u32));
                }
            }
        }
        ready
    }

    /// Tasks waiting to be placed in the stages that can launch now (an upper
    /// bound: a queue may hold a few entries that are no longer pending).
    pub fn waiting(&self) -> usize {
        self.launchable().into_iter().map(|i| self.pending[i].len() + self.stragglers[i].len()).sum()
    }

    /// Whether a task could be launched now.
    pub fn has_ready(&self) -> bool {
        self.launchable().into_iter().any(|i| {
            !self.stragglers[i].is_empty()
                || self.pending[i].iter().any(|p| self.tasks[i][*p as usize].slot == Slot::Pending)
        })
    }

    /// The job's answer to the offered resources: its ready tasks, earliest
    /// stages first, each launched where its `demand` fits, taken from the
    /// index. A task goes to an offered agent it would rather run on (one
    /// holding a good share of its input) if its demand fits there, else to
    /// the agent with the most free memory where it fits. What is not taken
    /// is declined, for the next job.
    pub fn accept(&mut self, free: &mut FreeIndex, demand: Demand) -> Vec<(TaskKey, AgentId)> {
        let none = CacheIndex::new();
        self.accept_up_to(
            free,
            demand,
            usize::MAX,
            Locality { cached: &none, excluded: &[], now: Instant::now() },
        )
    }

    /// [`accept`](Self::accept), placing at most `limit` tasks. A task whose
    /// persisted input an agent keeps goes there; when that agent has no
    /// room it waits, up to the locality wait, before it runs elsewhere
    /// (delay scheduling).
    pub fn accept_up_to(
        &mut self,
        free: &mut FreeIndex,
        demand: Demand,
        limit: usize,
        locality: Locality<'_>,
    ) -> Vec<(TaskKey, AgentId)> {
        let mut placed = Vec::new();
        for i in self.launchable() {
            let mut deferred = Vec::new();
            let full = loop {
                let Some(p) = self.pending[i].pop_front() else { break false };
                if free.is_empty() || placed.len() >= limit {
                    self.pending[i].push_front(p);
                    break true;
                }
                if self.tasks[i][p as usize].slot != Slot::Pending {
                    continue;
                }
                let waiting_since = self.tasks[i][p as usize].waiting_since;
                let stage = self.graph.stages[i].id;
                let keeper = self.keeper(i, p, locality.cached);
                if keeper.is_none() && self.cut[i] && !self.stage_ready(i) {
                    // Its kept input is gone: the stage needs its parents again.
                    self.cut[i] = false;
                    self.pending[i].push_front(p);
                    break false;
                }
                let agent = match keeper {
                    Some(keeper) => match free.take_best_of(&[keeper], demand) {
                        Some(agent) => Some(agent),
                        None if !locality.excluded.contains(&keeper)
                            && locality.now.duration_since(waiting_since.unwrap_or(locality.now))
                                < self.locality_wait =>
                        {
                            self.tasks[i][p as usize].waiting_since =
                                Some(waiting_since.unwrap_or(locality.now));
                            deferred.push(p);
                            continue;
                        }
                        None => free.take_roomiest(demand),
                    },
                    None => {
                        let preferred = self.preferred_agents(stage, p);
                        free.take_best_of(&preferred, demand).or_else(|| free.take_roomiest(demand))
                    }
                };
                let Some(agent) = agent else {
                    self.pending[i].push_front(p);
                    break true;
                };
                self.tasks[i][p as usize].waiting_since = None;
                if let Some(key) = self.start(i, p, agent, locality.now) {
                    placed.push((key, agent));
                }
            };
            // Deferred tasks keep their place at the head of the queue.
            for p in deferred.into_iter().rev() {
                self.pending[i].push_front(p);
            }
            if full || self.place_copies(i, free, demand, limit, &mut placed, locality.now) {
                return placed;
            }
        }
        placed
    }

    /// The agent keeping the deepest persisted partition task `p` of stage
    /// `i` could read, if any.
    fn keeper(&self, i: usize, p: u32, cached: &CacheIndex) -> Option<AgentId> {
        let task = self.graph.stages[i].tasks.get(p as usize)?;
        task.cache.iter().rev().find_map(|c| cached.get(&(c.dataset, c.partition))).map(|k| k.agent)
    }

    /// The agents holding at least a fifth of the task's shuffle input bytes
    /// (Spark's `REDUCER_PREF_LOCS_FRACTION`): below that, running there saves
    /// little. Empty for a task that reads no shuffle, and for one reading
    /// more than [`PREF_MAP_THRESHOLD`] map outputs.
    fn preferred_agents(&self, stage: StageId, partition: u32) -> Vec<AgentId> {
        let Some(task) =
            self.stage_index(stage).and_then(|i| self.graph.stages[i].tasks.get(partition as usize))
        else {
            return Vec::new();
        };
        let (shuffles, reduce) = match &task.source {
            Source::Shuffle { shuffle, reduce, .. } => (vec![*shuffle], *reduce),
            Source::Join { left, right, reduce } => (vec![*left, *right], *reduce),
            Source::Text { .. } | Source::Parallelize { .. } => return Vec::new(),
        };
        let maps: usize = shuffles.iter().filter_map(|s| self.map_outputs.get(s)).map(Vec::len).sum();
        if maps > PREF_MAP_THRESHOLD {
            return Vec::new();
        }
        let mut bytes: BTreeMap<AgentId, u64> = BTreeMap::new();
        for out in shuffles.iter().filter_map(|s| self.map_outputs.get(s)).flatten().flatten() {
            *bytes.entry(out.agent).or_default() += out.sizes.of(reduce);
        }
        let total: u64 = bytes.values().sum();
        bytes.into_iter().filter(|(_, b)| *b > 0 && b.saturating_mul(5) >= total).map(|(a, _)| a).collect()
    }

    /// Record that (stage, partition) was launched on `agent`; returns the attempt's key.
    pub fn launch(&mut self, stage: StageId, partition: u32, agent: AgentId) -> Option<TaskKey> {
        let i = self.stage_index(stage)?;
        self.start(i, partition, agent, Instant::now())
    }

    fn start(&mut self, i: usize, partition: u32, agent: AgentId, now: Instant) -> Option<TaskKey> {
        let stage = self.graph.stages[i].id;
        let t = self.tasks[i].get_mut(partition as usize)?;
        if t.slot != Slot::Pending {
            return None;
        }
        let attempt = t.next_attempt;
        t.next_attempt += 1;
        self.launches += 1;
        t.slot = Slot::Running { attempt, agent, launched: self.launches };
        t.started = Some(now);
        self.counts[i].running += 1;
        Some(TaskKey { action: self.action, stage, partition, attempt })
    }

    /// Move task `p` of stage `i` to `slot`, keeping counts, queues and the
    /// missing map outputs in step.
    fn set_slot(&mut self, i: usize, p: usize, slot: Slot) {
        let old = std::mem::replace(&mut self.tasks[i][p].slot, slot.clone());
        let c = &mut self.counts[i];
        match old {
            Slot::Running { .. } => c.running -= 1,
            Slot::Done => c.done -= 1,
            Slot::Pending => {}
        }
        match slot {
            Slot::Running { .. } => c.running += 1,
            Slot::Done => c.done += 1,
            Slot::Pending => self.pending[i].push_back(p as u32),
        }
    }

    /// Where every map output of `shuffle` lives, by map partition (all must be available).
    pub fn map_locations(&self, shuffle: ShuffleId) -> Option<Vec<(u32, AgentId)>> {
        self.map_outputs
            .get(&shuffle)?
            .iter()
            .enumerate()
            .map(|(m, o)| o.as_ref().map(|o| (m as u32, o.agent)))
            .collect()
    }

    /// The result records, by partition, once the job succeeded.
    pub fn results(&self) -> Option<Vec<TaskResult>> {
        (self.state == JobState::Succeeded)
            .then(|| self.results.iter().map(|r| r.clone().unwrap_or_default()).collect())
    }

    /// Apply the end of an attempt. Events for attempts that are not current
    /// are ignored: the answer is whether this one was taken.
    pub fn on_outcome(&mut self, key: &TaskKey, outcome: Outcome) -> bool {
        let Some(i) = self.stage_index(key.stage) else { return false };
        let Some(t) = self.tasks[i].get(key.partition as usize) else { return false };
        let (agent, launched) = match t.slot {
            Slot::Running { attempt, agent, launched } if attempt == key.attempt => (agent, launched),
            Slot::Running { .. } if t.copy.is_some_and(|c| c.attempt == key.attempt) => {
                return self.copy_ended(i, key, outcome);
            }
            _ => return false,
        };
        let p = key.partition as usize;
        if self.tasks[i][p].copy.is_some() && self.main_ended(i, key, &outcome) {
            return true;
        }
        match outcome {
            Outcome::Finished { result, partition_bytes } => {
                if let Some(started) = self.tasks[i][p].started {
                    let took = Instant::now().saturating_duration_since(started);
                    self.durations[i].push(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
                }
                self.set_slot(i, p, Slot::Done);
                match self.shuffle_of(i) {
                    Some(sh) => {
                        let sizes = BlockSizes::new(&partition_bytes);
                        let since = self.launches;
                        let attempt = key.attempt;
                        self.set_map_output(sh, p, Some(MapOutput { agent, attempt, sizes, since }));
                    }
                    None => self.results[p] = Some(result),
                }
                if i + 1 == self.graph.stages.len() && self.counts[i].done as usize == self.tasks[i].len() {
                    self.state = JobState::Succeeded;
                }
            }
            Outcome::Failed(EndReason::FetchFailed { shuffle, map, message }) => {
                self.set_slot(i, p, Slot::Pending);
                self.fetch_lost(i, shuffle, map, &message, launched);
            }
            // The partition was not kept after all: the caller forgot it, so
            // the next attempt computes it. Not a failure.
            Outcome::Failed(EndReason::CacheMiss { .. }) => self.set_slot(i, p, Slot::Pending),
            Outcome::Failed(end) if end.is_retryable() => {
                self.set_slot(i, p, Slot::Pending);
                self.host_failure(i, key, &end);
            }
            Outcome::Failed(end) => {
                self.set_slot(i, p, Slot::Pending);
                self.counts[i].failed += 1;
                self.state = JobState::Failed(format!("task {key}: {end}"));
            }
            Outcome::Interrupted(_) => self.set_slot(i, p, Slot::Pending),
        }
        true
    }

    /// Task `key` of stage `i` failed for the host's reasons (retried, up to
    /// the most failures allowed).
    fn host_failure(&mut self, i: usize, key: &TaskKey, end: &EndReason) {
        self.counts[i].failed += 1;
        let t = &mut self.tasks[i][key.partition as usize];
        t.failures += 1;
        if t.failures >= self.max_attempts {
            self.state = JobState::Failed(format!("task {key} failed {} times; last: {end}", t.failures));
        }
    }

    /// A reader of stage `i` launched as the run's launch number `launched`
    /// could not fetch map output `map` of `shuffle`.
    fn fetch_lost(&mut self, i: usize, shuffle: ShuffleId, map: u32, message: &str, launched: u64) {
        // Only an output the reader could have read counts: not one
        // already found lost, nor one computed again since the
        // reader was launched (its failure is about the earlier one).
        let holder = self
            .map_outputs
            .get(&shuffle)
            .and_then(|o| o.get(map as usize))
            .and_then(Option::as_ref)
            .filter(|o| o.since < launched)
            .map(|o| o.agent);
        if let Some(holder) = holder {
            let losses = self.fetch_losses.entry((shuffle, map)).or_default();
            *losses += 1;
            if *losses >= MAX_STAGE_ATTEMPTS {
                self.state = JobState::Failed(format!(
                    "{} stage {}: map output {map} of shuffle {} was lost {losses} times, each \
                         time computed again (last: {message}); giving up instead of computing it for ever",
                    self.action, self.graph.stages[i].id.0, shuffle.0
                ));
            }
            // As Spark: an agent a fetch failed from loses every
            // map output it holds (its other readers would fail
            // one by one), each counted once, here.
            self.lose_outputs_of(holder);
        }
    }

    fn set_map_output(&mut self, shuffle: ShuffleId, map: usize, out: Option<MapOutput>) {
        let Some(slot) = self.map_outputs.get_mut(&shuffle).and_then(|outs| outs.get_mut(map)) else {
            return;
        };
        let (was, is) = (slot.is_some(), out.is_some());
        *slot = out;
        *self.versions.entry(shuffle).or_default() += 1;
        if let Some(m) = self.missing.get_mut(&shuffle) {
            match (was, is) {
                (true, false) => *m += 1,
                (false, true) => *m -= 1,
                _ => {}
            }
        }
    }

    fn lose_map_output(&mut self, shuffle: ShuffleId, map: u32) {
        self.set_map_output(shuffle, map as usize, None);
        let stage = self
            .graph
            .stages
            .iter()
            .position(|s| matches!(s.kind, StageKind::ShuffleMap { shuffle: sh, .. } if sh == shuffle));
        if let Some(s) = stage
            && self.tasks[s].get(map as usize).is_some_and(|t| t.slot == Slot::Done)
        {
            self.set_slot(s, map as usize, Slot::Pending);
        }
    }

    /// An agent was lost: its running attempts and the map outputs it held are gone.
    /// Returns the attempts that were running there.
    pub fn on_agent_lost(&mut self, agent: AgentId) -> Vec<TaskKey> {
        let mut interrupted = Vec::new();
        for i in 0..self.graph.stages.len() {
            for p in 0..self.tasks[i].len() {
                let stage = self.graph.stages[i].id;
                let key = |attempt| TaskKey { action: self.action, stage, partition: p as u32, attempt };
                if let Some(c) = self.tasks[i][p].copy.filter(|c| c.agent == agent) {
                    self.tasks[i][p].copy = None;
                    interrupted.push(key(c.attempt));
                }
                if let Slot::Running { attempt, agent: a, .. } = self.tasks[i][p].slot
                    && a == agent
                {
                    interrupted.push(key(attempt));
                    // A copy elsewhere carries on as the task's attempt.
                    match self.tasks[i][p].copy.take() {
                        Some(c) => self.promote(i, p, c),
                        None => self.set_slot(i, p, Slot::Pending),
                    }
                }
            }
        }
        if self.state == JobState::Running {
            self.lose_outputs_of(agent);
        }
        interrupted
    }

    /// Every map output `agent` holds is lost: their map tasks run again.
    fn lose_outputs_of(&mut self, agent: AgentId) {
        let lost: Vec<(ShuffleId, u32)> = self
            .map_outputs
            .iter()
            .flat_map(|(sh, outs)| {
                outs.iter()
                    .enumerate()
                    .filter(|(_, o)| o.as_ref().is_some_and(|o| o.agent == agent))
                    .map(|(m, _)| (*sh, m as u32))
            })
            .collect();
        for (sh, m) in lost {
            self.lose_map_output(sh, m);
        }
    }
}

#[cfg(test)]
mod tests;
