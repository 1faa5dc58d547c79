//! The master's state store: what a master keeps on disk so that a master
//! killed at any moment and started again on the same data directory goes
//! on where it stopped.
//!
//! One [redb](https://docs.rs/redb) file, `<data-dir>/state.redb`, holds
//! every master run's number (a new run takes one no run has had, so no id
//! is ever handed out twice), every job as a [`JobRecord`] (what was
//! submitted, its plan, splits and range bounds, how far its driver got, its
//! end), the answers of a live job's numbered actions, one [`ActEntry`] each
//! (written once, not with every change of their job), where a live job's map
//! outputs and kept partitions are ([`PlacesRecord`]), and every ended attempt's
//! ledger record ([`StoredAttempt`]). The core says which jobs changed in a
//! way that must survive ([`Core::take_writes`](crate::state::Core::take_writes));
//! the loop that owns it commits them, with the ledger's new records, in one
//! transaction before it carries out the decisions that followed them, so
//! nothing a client, an agent or a driver has heard of is lost.
//!
//! See `docs/architecture.md` (a master that restarts) for what a restarted
//! master does with them.

use crate::job::{CacheIndex, KeptAt, MapOutput, MapOutputs};
use crate::ledger::StoredAttempt;
use crate::state::{ActRecord, Job, JobPhase, JobSpec};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weft_core::access::JobCapability;
use weft_core::artifact::Digest;
use weft_core::ids::{AgentId, DatasetId, Incarnation, JobId, ShuffleId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::plan::Plan;
use weft_core::task::{BlockSizes, Data};

/// The store's file in the master's data directory.
pub const FILE: &str = "state.redb";

/// The layout this build reads and writes.
pub(crate) const FORMAT: u32 = 1;

/// Whether this build reads a store of layout `format`.
pub(crate) fn check_format(format: u32) -> Result<(), String> {
    if format > FORMAT {
        return Err(format!(
            "it was written by a newer weft (layout {format}; this one reads {FORMAT}): run that weft, or move it away to start empty"
        ));
    }
    Ok(())
}

/// A run number none of `runs` had: every id this run hands out carries it.
pub(crate) fn new_run(runs: &[u32]) -> Incarnation {
    let mut incarnation = Incarnation::fresh();
    while runs.contains(&incarnation.0) {
        incarnation = Incarnation::fresh();
    }
    incarnation
}

const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const JOBS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("jobs");
const ATTEMPTS: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("attempts");
const PLACES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("places");
const ACTS: TableDefinition<'static, (u64, u32), &[u8]> = TableDefinition::new("acts");

/// The store cannot be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("the master's state store {path}: {message}")]
pub struct StoreError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong, and what to do about it.
    pub message: String,
}

/// A job as the store keeps it: what was submitted (the S3 settings of its
/// tenant's grants are read again from the tenants file, so no secret is
/// kept here) and what must survive of its run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// A name for people.
    pub name: String,
    /// Who submitted it.
    pub tenant: String,
    /// Its component's digest.
    pub component: [u8; 32],
    /// Its arguments.
    pub args: Vec<String>,
    /// Its tasks' limits.
    pub limits: TaskLimits,
    /// Failures of one task before an action fails.
    pub max_task_attempts: u32,
    /// Restarts of its driver allowed.
    pub driver_restarts_allowed: u32,
    /// The driver's wall-clock limit.
    pub deadline: Option<Duration>,
    /// The submitter's working directory.
    pub working_dir: Option<PathBuf>,
    /// Its capability.
    pub capability: [u8; 32],
    /// Its fuel budget.
    pub fuel_budget: Option<u64>,
    /// Where it stands.
    pub phase: JobPhase,
    /// Why it failed.
    pub message: String,
    /// Its driver's log, once it ended.
    pub driver_log: String,
    /// The datasets its driver defined.
    pub plan: Plan,
    /// Its broadcast values.
    pub broadcasts: BTreeMap<u64, Data>,
    /// The splits of its text datasets.
    pub splits: BTreeMap<DatasetId, Vec<TextSplit>>,
    /// The range bounds of its sorts.
    pub range_bounds: BTreeMap<ShuffleId, Vec<Vec<u8>>>,
    /// The last action number given.
    pub actions_run: u32,
    /// Its accumulators.
    pub accumulators: BTreeMap<String, i64>,
    /// Blocks of its driver traffic in the master's artifact store.
    pub blocks: Vec<[u8; 32]>,
    /// Its driver's last attempt number.
    pub driver_attempt: u32,
    /// Times its driver was started again.
    pub driver_restarts: u32,
    /// Empty: the answers of its numbered actions are kept apart, one
    /// [`ActEntry`] each (earlier weft kept them here, and what it kept is
    /// still read).
    pub acts: BTreeMap<u32, StoredAct>,
    /// The text outputs its numbered actions set up: what each asked, and where.
    pub outputs: BTreeMap<u32, ([u8; 32], String)>,
}

/// An [`ActRecord`] as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAct {
    /// What was asked.
    pub asked: [u8; 32],
    /// The encoded answer, or the status code and message.
    pub answer: Result<Vec<u8>, (i32, String)>,
}

impl JobRecord {
    /// What the store keeps of `job`.
    pub fn of(job: &Job) -> Self {
        let s = &job.spec;
        Self {
            id: job.id,
            name: s.name.clone(),
            tenant: s.tenant.clone(),
            component: *s.component.as_bytes(),
            args: s.args.clone(),
            limits: s.limits.clone(),
            max_task_attempts: s.max_task_attempts,
            driver_restarts_allowed: s.driver_restarts,
            deadline: s.deadline,
            working_dir: s.working_dir.clone(),
            capability: s.capability.0,
            fuel_budget: s.fuel_budget,
            phase: job.phase,
            message: job.message.clone(),
            driver_log: job.driver_log.clone(),
            plan: job.plan.clone(),
            broadcasts: (*job.broadcasts).clone(),
            splits: job.splits.iter().map(|(d, s)| (*d, s.to_vec())).collect(),
            range_bounds: job.range_bounds.clone(),
            actions_run: job.actions_run,
            accumulators: job.accumulators.clone(),
            blocks: job.blocks.iter().map(|d| *d.as_bytes()).collect(),
            driver_attempt: job.driver_attempt,
            driver_restarts: job.driver_restarts,
            acts: BTreeMap::new(),
            outputs: job.outputs.clone(),
        }
    }

    /// The job again, as a master restarting finds it: a live job's driver
    /// waits for a slot, under an attempt number no earlier run used; `s3`
    /// are its tenant's S3 settings now.
    pub fn into_job(self, s3: Arc<weft_core::access::S3Grants>) -> Job {
        let spec = JobSpec {
            name: self.name,
            tenant: self.tenant,
            component: Digest::from_bytes(self.component),
            args: self.args,
            limits: self.limits,
            max_task_attempts: self.max_task_attempts,
            driver_restarts: self.driver_restarts_allowed,
            deadline: self.deadline,
            working_dir: self.working_dir,
            capability: JobCapability(self.capability),
            fuel_budget: self.fuel_budget,
            s3,
        };
        let mut job = Job::new(self.id, spec);
        job.phase = self.phase;
        job.message = self.message;
        job.driver_log = self.driver_log;
        job.plan = self.plan;
        job.broadcasts = Arc::new(self.broadcasts);
        job.splits = self.splits.into_iter().map(|(d, s)| (d, s.into())).collect();
        job.range_bounds = self.range_bounds;
        job.actions_run = self.actions_run;
        job.accumulators = self.accumulators;
        job.blocks = self.blocks.into_iter().map(Digest::from_bytes).collect();
        job.driver_restarts = self.driver_restarts;
        job.acts = self.acts.into_iter().map(|(n, a)| (n, ActRecord::from(a))).collect();
        job.outputs = self.outputs;
        if job.phase == JobPhase::Running {
            // The attempt an earlier run launched may still be ending somewhere.
            job.driver_attempt = self.driver_attempt + 1;
        } else {
            job.driver_attempt = self.driver_attempt;
            job.end_restored();
        }
        job
    }
}

impl From<&ActRecord> for StoredAct {
    fn from(a: &ActRecord) -> Self {
        Self { asked: a.asked, answer: a.answer.clone() }
    }
}

impl From<StoredAct> for ActRecord {
    fn from(a: StoredAct) -> Self {
        Self { asked: a.asked, answer: a.answer }
    }
}

/// The answer of a live job's numbered action, kept alone: written once when
/// the action ends and deleted when it is dropped or its job ends, so a job
/// that runs many actions writes each answer once, not with every change of
/// its [`JobRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActEntry {
    /// The job.
    pub job: JobId,
    /// The action's number.
    pub number: u32,
    /// What it asked and answered.
    pub act: StoredAct,
}

/// Where a live job's map outputs and kept partitions are, by the ids of
/// the agents that hold them. A restarted master takes back what an agent
/// held when that agent registers again naming its earlier id (its files
/// and kept blocks are still there); what the agents that do not come back
/// held is computed again, as after any agent loss.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacesRecord {
    /// The job.
    pub job: JobId,
    /// Each shuffle's map outputs, by map partition (`None`: not computed).
    pub shuffles: BTreeMap<ShuffleId, Vec<Option<StoredOutput>>>,
    /// Kept partitions: dataset, partition, where.
    pub cached: Vec<(DatasetId, u32, StoredKept)>,
}

/// A [`MapOutput`] as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOutput {
    /// The agent holding it.
    pub agent: AgentId,
    /// The attempt that wrote it (its files are named by it).
    pub attempt: u32,
    /// Its blocks' mean size.
    pub mean: u64,
    /// Its large blocks' exact sizes.
    pub exact: Vec<(u32, u64)>,
}

/// A [`KeptAt`] as the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKept {
    /// The agent keeping it.
    pub agent: AgentId,
    /// Its bytes.
    pub bytes: u64,
    /// In memory (else on disk).
    pub memory: bool,
}

impl PlacesRecord {
    /// What the store keeps of `job`'s map outputs and kept partitions.
    pub fn of(job: JobId, shuffles: &MapOutputs, cached: &CacheIndex) -> Self {
        let output = |o: &MapOutput| StoredOutput {
            agent: o.agent,
            attempt: o.attempt,
            mean: o.sizes.mean,
            exact: o.sizes.exact.clone(),
        };
        Self {
            job,
            shuffles: shuffles
                .iter()
                .filter(|(_, outs)| outs.iter().any(Option::is_some))
                .map(|(s, outs)| (*s, outs.iter().map(|o| o.as_ref().map(output)).collect()))
                .collect(),
            cached: cached
                .iter()
                .map(|((d, p), k)| (*d, *p, StoredKept { agent: k.agent, bytes: k.bytes, memory: k.memory }))
                .collect(),
        }
    }

    /// Whether it places nothing.
    pub fn is_empty(&self) -> bool {
        self.shuffles.is_empty() && self.cached.is_empty()
    }

    /// The agents it names.
    pub fn agents(&self) -> BTreeSet<AgentId> {
        let outputs = self.shuffles.values().flatten().flatten().map(|o| o.agent);
        outputs.chain(self.cached.iter().map(|(_, _, k)| k.agent)).collect()
    }

    /// Take out what `old` held, as held by `new` now: its map outputs (in
    /// vectors as long as their shuffle's, `None` elsewhere) and its kept
    /// partitions.
    pub fn take_held(&mut self, old: AgentId, new: AgentId) -> (MapOutputs, CacheIndex) {
        let mut outputs = MapOutputs::new();
        for (shuffle, outs) in &mut self.shuffles {
            if !outs.iter().flatten().any(|o| o.agent == old) {
                continue;
            }
            let mine = outs
                .iter_mut()
                .map(|slot| {
                    slot.take_if(|o| o.agent == old).map(|o| MapOutput {
                        agent: new,
                        attempt: o.attempt,
                        sizes: BlockSizes { mean: o.mean, exact: o.exact },
                        since: 0,
                    })
                })
                .collect();
            outputs.insert(*shuffle, mine);
        }
        self.shuffles.retain(|_, outs| outs.iter().any(Option::is_some));
        let mut cached = CacheIndex::new();
        self.cached.retain(|(d, p, k)| {
            if k.agent == old {
                cached.insert((*d, *p), KeptAt { agent: new, bytes: k.bytes, memory: k.memory });
            }
            k.agent != old
        });
        (outputs, cached)
    }

    /// Add what `other` places where this one places nothing.
    pub fn fill_from(&mut self, other: &PlacesRecord) {
        for (shuffle, theirs) in &other.shuffles {
            let ours = self.shuffles.entry(*shuffle).or_insert_with(|| vec![None; theirs.len()]);
            if ours.len() == theirs.len() {
                for (o, t) in ours.iter_mut().zip(theirs) {
                    if o.is_none() {
                        o.clone_from(t);
                    }
                }
            }
        }
        for (d, p, k) in &other.cached {
            if !self.cached.iter().any(|(d2, p2, _)| d2 == d && p2 == p) {
                self.cached.push((*d, *p, *k));
            }
        }
    }
}

/// What the core hands the store to keep, in one transaction.
#[derive(Debug, Default)]
pub struct Writes {
    /// Jobs that changed, as they are now.
    pub jobs: Vec<JobRecord>,
    /// Ledger records that ended since the last writes.
    pub attempts: Vec<StoredAttempt>,
    /// Where jobs' map outputs and kept partitions are now (`None`: nowhere
    /// worth keeping, the job ended; its record goes).
    pub places: Vec<(JobId, Option<PlacesRecord>)>,
    /// Numbered actions' answers kept or dropped, in order.
    pub acts: Vec<ActWrite>,
}

/// A numbered action's answer to keep, or one to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActWrite {
    /// Keep this answer.
    Keep(ActEntry),
    /// Drop the answer of this job's action of this number.
    Drop(JobId, u32),
}

impl ActWrite {
    /// Which job's action it is about.
    pub fn key(&self) -> (JobId, u32) {
        match self {
            ActWrite::Keep(e) => (e.job, e.number),
            ActWrite::Drop(job, number) => (*job, *number),
        }
    }
}

impl Writes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.attempts.is_empty() && self.places.is_empty() && self.acts.is_empty()
    }

    /// Add `newer` writes to these (refused, to be tried again): a job's
    /// newer record replaces its older one.
    pub fn merge(&mut self, newer: Writes) {
        let jobs: BTreeSet<_> = newer.jobs.iter().map(|j| j.id).collect();
        self.jobs.retain(|j| !jobs.contains(&j.id));
        self.jobs.extend(newer.jobs);
        self.attempts.extend(newer.attempts);
        let placed: BTreeSet<_> = newer.places.iter().map(|(j, _)| *j).collect();
        self.places.retain(|(j, _)| !placed.contains(j));
        self.places.extend(newer.places);
        self.acts.extend(newer.acts);
    }
}

/// What earlier master runs left.
#[derive(Debug, Default)]
pub struct Restored {
    /// How many master runs used the store before this one.
    pub runs: usize,
    /// Every job, oldest first.
    pub jobs: Vec<JobRecord>,
    /// Every ledger record, oldest first.
    pub attempts: Vec<StoredAttempt>,
    /// Where live jobs' map outputs and kept partitions were.
    pub places: Vec<PlacesRecord>,
    /// Live jobs' numbered actions' answers.
    pub acts: Vec<ActEntry>,
}

/// The open store. One master at a time: a second master on the same data
/// directory is refused.
pub struct StateStore {
    db: Database,
    path: PathBuf,
    next_attempt: u64,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore").field("path", &self.path).finish_non_exhaustive()
    }
}

pub(crate) fn job_key(id: JobId) -> u64 {
    (u64::from(id.incarnation.0) << 32) | u64::from(id.seq)
}

impl StateStore {
    /// Open (or create) the store at `path`, read back what earlier runs
    /// kept, and take a run number none of them had.
    ///
    /// # Errors
    /// The file cannot be created or read, another master has it open, it
    /// was written by a newer weft, or a record does not decode.
    pub fn open(path: &Path) -> Result<(Self, Incarnation, Restored), StoreError> {
        let fail = |message: String| StoreError { path: path.to_path_buf(), message };
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => fail(
                "another master has it open: give each master its own --data-dir (or stop the other one)"
                    .into(),
            ),
            e => fail(e.to_string()),
        })?;
        let store = Self { db, path: path.to_path_buf(), next_attempt: 0 };
        let (runs, restored) = store.read().map_err(fail)?;
        let mut store = store;
        store.next_attempt = restored.attempts.len() as u64;
        let incarnation = new_run(&runs);
        let mut all = runs;
        all.push(incarnation.0);
        store.put_meta(&all).map_err(fail)?;
        Ok((store, incarnation, restored))
    }

    fn read(&self) -> Result<(Vec<u32>, Restored), String> {
        let tx = self.db.begin_read().map_err(|e| e.to_string())?;
        let mut runs = Vec::new();
        match tx.open_table(META) {
            Ok(meta) => {
                if let Some(v) = meta.get("format").map_err(|e| e.to_string())? {
                    let format: u32 = postcard::from_bytes(v.value()).map_err(|e| e.to_string())?;
                    check_format(format)?;
                }
                if let Some(v) = meta.get("runs").map_err(|e| e.to_string())? {
                    runs = postcard::from_bytes(v.value()).map_err(|e| e.to_string())?;
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
        let mut restored = Restored { runs: runs.len(), ..Restored::default() };
        restored.jobs = read_all(&tx, JOBS, "job")?;
        restored.attempts = read_all(&tx, ATTEMPTS, "attempt record")?;
        restored.places = read_all(&tx, PLACES, "places record")?;
        restored.acts = read_all(&tx, ACTS, "action answer")?;
        Ok((runs, restored))
    }

    fn put_meta(&self, runs: &[u32]) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
            let format = postcard::to_allocvec(&FORMAT).map_err(|e| e.to_string())?;
            meta.insert("format", format.as_slice()).map_err(|e| e.to_string())?;
            let runs = postcard::to_allocvec(runs).map_err(|e| e.to_string())?;
            meta.insert("runs", runs.as_slice()).map_err(|e| e.to_string())?;
            // Created now, so that a read finds them.
            tx.open_table(JOBS).map_err(|e| e.to_string())?;
            tx.open_table(ATTEMPTS).map_err(|e| e.to_string())?;
            tx.open_table(PLACES).map_err(|e| e.to_string())?;
            tx.open_table(ACTS).map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())
    }

    /// Keep `writes`, durably, in one transaction.
    ///
    /// # Errors
    /// The disk refused them (full, gone, read-only).
    pub fn write(&mut self, writes: &Writes) -> Result<(), StoreError> {
        let fail = |message: String| StoreError { path: self.path.clone(), message };
        let tx = self.db.begin_write().map_err(|e| fail(e.to_string()))?;
        let mut next = self.next_attempt;
        {
            let mut jobs = tx.open_table(JOBS).map_err(|e| fail(e.to_string()))?;
            for job in &writes.jobs {
                let bytes = postcard::to_allocvec(job).map_err(|e| fail(e.to_string()))?;
                jobs.insert(job_key(job.id), bytes.as_slice()).map_err(|e| fail(e.to_string()))?;
            }
            let mut attempts = tx.open_table(ATTEMPTS).map_err(|e| fail(e.to_string()))?;
            for a in &writes.attempts {
                let bytes = postcard::to_allocvec(a).map_err(|e| fail(e.to_string()))?;
                attempts.insert(next, bytes.as_slice()).map_err(|e| fail(e.to_string()))?;
                next += 1;
            }
            let mut places = tx.open_table(PLACES).map_err(|e| fail(e.to_string()))?;
            for (job, record) in &writes.places {
                match record {
                    Some(r) => {
                        let bytes = postcard::to_allocvec(r).map_err(|e| fail(e.to_string()))?;
                        places.insert(job_key(*job), bytes.as_slice()).map_err(|e| fail(e.to_string()))?;
                    }
                    None => {
                        places.remove(job_key(*job)).map_err(|e| fail(e.to_string()))?;
                    }
                }
            }
            let mut acts = tx.open_table(ACTS).map_err(|e| fail(e.to_string()))?;
            for write in &writes.acts {
                let (job, number) = write.key();
                let key = (job_key(job), number);
                match write {
                    ActWrite::Keep(entry) => {
                        let bytes = postcard::to_allocvec(entry).map_err(|e| fail(e.to_string()))?;
                        acts.insert(key, bytes.as_slice()).map_err(|e| fail(e.to_string()))?;
                    }
                    ActWrite::Drop(..) => {
                        acts.remove(key).map_err(|e| fail(e.to_string()))?;
                    }
                }
            }
        }
        tx.commit().map_err(|e| fail(e.to_string()))?;
        self.next_attempt = next;
        Ok(())
    }
}

/// Where the master keeps its state: the embedded store, or etcd when it
/// is one of several masters (`--ha`).
#[derive(Debug, Clone)]
pub enum Store {
    /// `<data-dir>/state.redb`.
    Local(Arc<std::sync::Mutex<StateStore>>),
    /// etcd, written while this master leads.
    Etcd(Arc<tokio::sync::Mutex<crate::ha::EtcdStore>>),
}

impl Store {
    /// Keep `writes`; hands them back with the outcome (to be tried again
    /// with the next ones when refused).
    pub async fn write(&self, writes: Writes) -> (Writes, Result<(), StoreError>) {
        match self {
            Store::Local(store) => {
                let store = Arc::clone(store);
                let done = tokio::task::spawn_blocking(move || {
                    let result =
                        store.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write(&writes);
                    (writes, result)
                })
                .await;
                done.unwrap_or_else(|e| {
                    (Writes::default(), Err(StoreError { path: PathBuf::new(), message: e.to_string() }))
                })
            }
            Store::Etcd(store) => {
                let result = store.lock().await.write(&writes).await;
                (writes, result)
            }
        }
    }
}

fn read_all<K: redb::Key + 'static, T: for<'de> Deserialize<'de>>(
    tx: &redb::ReadTransaction,
    table: TableDefinition<'_, K, &[u8]>,
    what: &str,
) -> Result<Vec<T>, String> {
    let table = match tx.open_table(table) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut out = Vec::new();
    for entry in table.iter().map_err(|e| e.to_string())? {
        let (key, value) = entry.map_err(|e| e.to_string())?;
        let record = postcard::from_bytes(value.value())
            .map_err(|e| format!("{what} {:?} does not decode: {e}", key.value()))?;
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
