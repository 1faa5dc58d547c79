//! The usage ledger: one compact record per ended task attempt and driver
//! attempt, and every total the master reports computed from those records.
//!
//! The core hands the ledger each attempt's start (when it is placed) and
//! end (the agent's report, or the master's verdict when no report can come:
//! `lost` with its agent, `refused` by it). A record keeps the tenant
//! (interned), the job, action, stage, partition and attempt numbers, the
//! agent, the start and end times, the end's label, the memory limit the
//! attempt held, and its full metering as integers ([`Attempt`]). Failed,
//! killed, lost and refused attempts are records like finished ones.
//!
//! [`Totals::add`] is the one roll-up: stage, action, job and tenant totals
//! are folds of it over the records ([`Ledger::usage`]), and the per-job
//! totals kept as records arrive (what `weft status` shows and the fuel
//! budget reads) are the same fold, one record at a time. The per-tenant
//! fuel quota ([`FuelQuota`]) counts the fuel of the tenant's attempts that
//! ended in the current fixed UTC window; [`Ledger::fuel_left`] caps both the
//! job's budget and the tenant's quota in one place.
//!
//! Records live in memory, and the master's state store keeps them
//! ([`Ledger::take_new`], [`Ledger::restore`]): a restarted master reads
//! back every record of earlier runs. Jobs and agents are interned, so one
//! ledger holds the attempts of several master runs. See
//! `docs/operators-guide.md` (Usage and metering) for the labels, the
//! figures and the size of a record.

mod query;
mod quota;
mod record;

pub use query::{AttemptRow, GroupBy, UsageQuery, UsageRow};
pub use quota::{FuelQuota, FuelStop, QuotaState};
use record::micros;
pub use record::{Attempt, EndLabel, Meter, StoredAttempt, Totals};

use rustc_hash::FxHashMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::ids::{AgentId, JobId};
use weft_core::metering::TaskMetering;
use weft_core::task::TaskKey;

/// An attempt placed and not yet ended.
#[derive(Debug, Clone, Copy)]
struct Open {
    agent: u32,
    /// The master asked its agent to kill it.
    killing: bool,
    start_us: u64,
    memory: u64,
}

/// What the ledger keeps per job.
#[derive(Debug, Clone, Default)]
struct JobEntry {
    tenant: u32,
    /// Every record of the job, rolled up as it arrived.
    totals: Totals,
    /// Its attempts placed and not yet ended.
    open: u64,
}

/// The wall clock, read from the core's monotonic one.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    unix_us: u64,
}

impl Clock {
    fn now() -> Self {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Self { instant: Instant::now(), unix_us: micros(unix) }
    }

    fn unix_us(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(d) => self.unix_us.saturating_add(micros(d)),
            None => self.unix_us.saturating_sub(micros(self.instant.duration_since(at))),
        }
    }
}

/// Every ended attempt of this master run, and the rules that sum them.
#[derive(Debug)]
pub struct Ledger {
    clock: Clock,
    tenants: Vec<Arc<str>>,
    tenant_ids: HashMap<Arc<str>, u32>,
    /// Jobs by their number here (an [`Attempt`]'s `job`), and back.
    job_ids: Vec<JobId>,
    job_index: FxHashMap<JobId, u32>,
    jobs: FxHashMap<u32, JobEntry>,
    /// Agents by their number here (an [`Attempt`]'s `agent`), and back.
    agent_ids: Vec<AgentId>,
    agent_index: FxHashMap<AgentId, u32>,
    open: FxHashMap<TaskKey, Open>,
    records: Vec<Attempt>,
    /// How many records [`Ledger::take_new`] has handed out.
    taken: usize,
    quotas: quota::Quotas,
}

impl Default for Ledger {
    fn default() -> Self {
        Self::new()
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self {
            clock: Clock::now(),
            tenants: Vec::new(),
            tenant_ids: HashMap::new(),
            job_ids: Vec::new(),
            job_index: FxHashMap::default(),
            jobs: FxHashMap::default(),
            agent_ids: Vec::new(),
            agent_index: FxHashMap::default(),
            open: FxHashMap::default(),
            records: Vec::new(),
            taken: 0,
            quotas: quota::Quotas::default(),
        }
    }

    fn agent_number(&mut self, agent: AgentId) -> u32 {
        if let Some(n) = self.agent_index.get(&agent) {
            return *n;
        }
        let n = self.agent_ids.len() as u32;
        self.agent_ids.push(agent);
        self.agent_index.insert(agent, n);
        n
    }

    /// The number of `job` here, if it was submitted.
    pub(crate) fn job_number(&self, job: JobId) -> Option<u32> {
        self.job_index.get(&job).copied()
    }

    /// The job numbered `n` here.
    pub fn job_id(&self, n: u32) -> JobId {
        self.job_ids.get(n as usize).copied().unwrap_or_default()
    }

    /// The agent numbered `n` here (`u32::MAX`: none).
    pub fn agent_id(&self, n: u32) -> Option<AgentId> {
        self.agent_ids.get(n as usize).copied()
    }

    /// The records that ended since the last call, for the state store.
    pub fn take_new(&mut self) -> Vec<StoredAttempt> {
        let new = self.records[self.taken..].iter().map(|a| self.stored(a)).collect();
        self.taken = self.records.len();
        new
    }

    fn stored(&self, a: &Attempt) -> StoredAttempt {
        StoredAttempt {
            job: self.job_id(a.job),
            action: a.action,
            stage: a.stage,
            partition: a.partition,
            attempt: a.attempt,
            agent: self.agent_id(a.agent),
            end: a.end,
            start_us: a.start_us,
            end_us: a.end_us,
            memory: a.memory,
            meter: a.meter,
        }
    }

    /// Take back a record an earlier master run kept (its job was restored
    /// first with [`Ledger::job_submitted`]; a record of an unknown job is
    /// skipped).
    pub fn restore(&mut self, s: &StoredAttempt) {
        let Some(job) = self.job_number(s.job) else { return };
        let agent = s.agent.map_or(u32::MAX, |a| self.agent_number(a));
        let Some(j) = self.jobs.get_mut(&job) else { return };
        let a = Attempt {
            tenant: j.tenant,
            job,
            action: s.action,
            stage: s.stage,
            partition: s.partition,
            attempt: s.attempt,
            agent,
            end: s.end,
            start_us: s.start_us,
            end_us: s.end_us,
            memory: s.memory,
            meter: s.meter,
        };
        j.totals.add(&a);
        self.quotas.add(&a);
        self.records.push(a);
        self.taken = self.records.len();
    }

    fn intern(&mut self, tenant: &str) -> u32 {
        if let Some(id) = self.tenant_ids.get(tenant) {
            return *id;
        }
        let id = self.tenants.len() as u32;
        let name: Arc<str> = tenant.into();
        self.tenants.push(Arc::clone(&name));
        self.tenant_ids.insert(name, id);
        id
    }

    /// The name of interned tenant `id`.
    pub fn tenant_name(&self, id: u32) -> &str {
        self.tenants.get(id as usize).map_or("", |t| t)
    }

    /// `job` of `tenant` was accepted: its attempts are billed to `tenant`.
    pub fn job_submitted(&mut self, job: JobId, tenant: &str) {
        let tenant = self.intern(tenant);
        let n = match self.job_index.get(&job) {
            Some(n) => *n,
            None => {
                let n = self.job_ids.len() as u32;
                self.job_ids.push(job);
                self.job_index.insert(job, n);
                n
            }
        };
        self.jobs.insert(n, JobEntry { tenant, ..Default::default() });
    }

    /// Attempt `key` was placed on `agent`, holding `memory` bytes, at `now`.
    pub fn started(&mut self, key: TaskKey, agent: AgentId, memory: u64, now: Instant) {
        let start_us = self.clock.unix_us(now);
        let agent = self.agent_number(agent);
        if let Some(j) = self.job_number(key.job()).and_then(|n| self.jobs.get_mut(&n)) {
            let open = Open { agent, killing: false, start_us, memory };
            if self.open.insert(key, open).is_none() {
                j.open += 1;
            }
        }
    }

    /// Attempt `key` was placed but never left the master: no record.
    pub fn forget(&mut self, key: &TaskKey) {
        if self.open.remove(key).is_some()
            && let Some(j) = self.job_number(key.job()).and_then(|n| self.jobs.get_mut(&n))
        {
            j.open = j.open.saturating_sub(1);
        }
    }

    /// The master asked the agent of attempt `key` to kill it: unless it
    /// finishes first, it ends `killed`, whatever its agent reports (a
    /// driver whose actions were failed by the kill may return an error
    /// before the kill reaches it).
    pub fn killing(&mut self, key: &TaskKey) {
        if let Some(o) = self.open.get_mut(key) {
            o.killing = true;
        }
    }

    /// Attempt `key` ended as `end` at `now` having consumed `metering`.
    /// An end for an attempt the ledger does not know as open (reported
    /// after the master closed it as lost or refused) is still recorded: what
    /// it consumed was consumed.
    pub fn ended(&mut self, key: TaskKey, end: EndLabel, metering: &TaskMetering, now: Instant) {
        self.record(key, end, Meter::from(metering), now);
    }

    /// Attempt `key` ended without a report (`Lost`, `Refused`).
    pub fn closed(&mut self, key: TaskKey, end: EndLabel, now: Instant) {
        if self.open.contains_key(&key) {
            self.record(key, end, Meter::default(), now);
        }
    }

    /// `agent` was lost: its open attempts end `lost`.
    pub fn agent_lost(&mut self, agent: AgentId, now: Instant) {
        let Some(agent) = self.agent_index.get(&agent).copied() else { return };
        let keys: Vec<TaskKey> =
            self.open.iter().filter(|(_, o)| o.agent == agent).map(|(k, _)| *k).collect();
        for key in keys {
            self.record(key, EndLabel::Lost, Meter::default(), now);
        }
    }

    fn record(&mut self, key: TaskKey, end: EndLabel, meter: Meter, now: Instant) {
        let end_us = self.clock.unix_us(now);
        let Some(job) = self.job_number(key.job()) else { return };
        let Some(j) = self.jobs.get_mut(&job) else { return };
        let open = self.open.remove(&key);
        if open.is_some() {
            j.open = j.open.saturating_sub(1);
        }
        let open = open.unwrap_or(Open { agent: u32::MAX, killing: false, start_us: end_us, memory: 0 });
        let end = match end {
            EndLabel::Finished | EndLabel::Lost | EndLabel::Refused | EndLabel::Preempted => end,
            _ if open.killing => EndLabel::Killed,
            _ => end,
        };
        let a = Attempt {
            tenant: j.tenant,
            job,
            action: key.action.seq,
            stage: key.stage.0,
            partition: key.partition,
            attempt: key.attempt,
            agent: open.agent,
            end,
            start_us: open.start_us,
            end_us,
            memory: open.memory,
            meter,
        };
        j.totals.add(&a);
        self.quotas.add(&a);
        self.records.push(a);
    }

    /// The totals of `job` so far (every ended attempt of it).
    pub fn job_totals(&self, job: JobId) -> Totals {
        self.job_number(job).and_then(|n| self.jobs.get(&n)).map_or_else(Totals::default, |j| j.totals)
    }

    /// Every record, oldest end first.
    pub fn records(&self) -> &[Attempt] {
        &self.records
    }

    /// The wall-clock time of `now`.
    pub fn unix_time(&self, now: Instant) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.clock.unix_us(now))
    }
}

#[cfg(test)]
mod tests;
