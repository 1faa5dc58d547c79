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
//! Records live in memory (a restarted master starts empty). See
//! `docs/operators-guide.md` (Usage and metering) for the labels, the
//! figures and the size of a record.

mod query;
mod quota;

pub use query::{AttemptRow, GroupBy, UsageQuery, UsageRow};
pub use quota::{FuelQuota, FuelStop, QuotaState};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use weft_core::ids::{AgentId, Incarnation, JobId};
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::task::TaskKey;

/// How an attempt ended, as the ledger labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndLabel {
    /// It ran to completion.
    Finished,
    /// It used up its fuel.
    OutOfFuel,
    /// Its deadline passed in guest code.
    Deadline,
    /// It grew past its memory limit.
    MemoryLimit,
    /// One call returned too much output.
    OutputLimit,
    /// The guest trapped.
    GuestTrap,
    /// The guest returned an error.
    GuestError,
    /// The host failed it (retried).
    HostError,
    /// Killed on request (a kill, a job's end, a quota).
    Killed,
    /// It could not read a map output (the map task runs again).
    FetchFailed,
    /// Its agent was lost before it reported.
    Lost,
    /// Its agent did not start it (busy, stopping, unreachable).
    Refused,
}

impl EndLabel {
    /// Every label, in the order of [`Totals::by_end`].
    pub const ALL: [EndLabel; 12] = [
        EndLabel::Finished,
        EndLabel::OutOfFuel,
        EndLabel::Deadline,
        EndLabel::MemoryLimit,
        EndLabel::OutputLimit,
        EndLabel::GuestTrap,
        EndLabel::GuestError,
        EndLabel::HostError,
        EndLabel::Killed,
        EndLabel::FetchFailed,
        EndLabel::Lost,
        EndLabel::Refused,
    ];

    /// The label of an agent's report.
    pub fn of(end: &EndReason) -> Self {
        match end {
            EndReason::Finished => EndLabel::Finished,
            EndReason::OutOfFuel { .. } => EndLabel::OutOfFuel,
            EndReason::Deadline { .. } => EndLabel::Deadline,
            EndReason::MemoryLimit { .. } => EndLabel::MemoryLimit,
            EndReason::OutputLimit { .. } => EndLabel::OutputLimit,
            EndReason::GuestTrap { .. } => EndLabel::GuestTrap,
            EndReason::GuestError { .. } => EndLabel::GuestError,
            EndReason::HostError { .. } => EndLabel::HostError,
            EndReason::Killed => EndLabel::Killed,
            EndReason::FetchFailed { .. } => EndLabel::FetchFailed,
        }
    }

    /// Its stable name (`finished`, `out_of_fuel`, …, `lost`, `refused`).
    pub fn name(self) -> &'static str {
        match self {
            EndLabel::Lost => "lost",
            EndLabel::Refused => "refused",
            EndLabel::Finished => "finished",
            EndLabel::OutOfFuel => "out_of_fuel",
            EndLabel::Deadline => "deadline",
            EndLabel::MemoryLimit => "memory_limit",
            EndLabel::OutputLimit => "output_limit",
            EndLabel::GuestTrap => "guest_trap",
            EndLabel::GuestError => "guest_error",
            EndLabel::HostError => "host_error",
            EndLabel::Killed => "killed",
            EndLabel::FetchFailed => "fetch_failed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one attempt consumed, as integers (durations in microseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meter {
    /// Fuel burned.
    pub fuel: u64,
    /// Peak linear memory of its guest, in bytes.
    pub peak_memory: u64,
    /// Wall-clock time from instantiation to the end.
    pub wall_us: u64,
    /// CPU time of the thread that ran the guest.
    pub cpu_us: u64,
    /// Time to instantiate the component.
    pub instantiate_us: u64,
    /// Records handed to the guest.
    pub records_in: u64,
    /// Records the guest returned.
    pub records_out: u64,
    /// Bytes handed to the guest.
    pub bytes_in: u64,
    /// Bytes the guest returned.
    pub bytes_out: u64,
    /// Calls into the guest.
    pub calls: u64,
    /// Bytes of log written.
    pub log_bytes: u64,
    /// Shuffle bytes written.
    pub shuffle_written: u64,
    /// Shuffle bytes read.
    pub shuffle_read: u64,
    /// Bytes spilled while sorting shuffle output.
    pub spill: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl From<&TaskMetering> for Meter {
    fn from(m: &TaskMetering) -> Self {
        Self {
            fuel: m.fuel,
            peak_memory: m.peak_memory,
            wall_us: micros(m.wall),
            cpu_us: micros(m.cpu),
            instantiate_us: micros(m.instantiate),
            records_in: m.records_in,
            records_out: m.records_out,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            calls: m.calls,
            log_bytes: m.log_bytes,
            shuffle_written: m.shuffle_bytes_written,
            shuffle_read: m.shuffle_bytes_read,
            spill: m.spill_bytes,
        }
    }
}

impl Meter {
    /// As the metering type clients read.
    pub fn metering(&self) -> TaskMetering {
        TaskMetering {
            fuel: self.fuel,
            peak_memory: self.peak_memory,
            wall: Duration::from_micros(self.wall_us),
            cpu: Duration::from_micros(self.cpu_us),
            instantiate: Duration::from_micros(self.instantiate_us),
            records_in: self.records_in,
            records_out: self.records_out,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            calls: self.calls,
            log_bytes: self.log_bytes,
            shuffle_bytes_written: self.shuffle_written,
            shuffle_bytes_read: self.shuffle_read,
            spill_bytes: self.spill,
        }
    }
}

/// One ended attempt: the ledger's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The tenant, interned ([`Ledger::tenant_name`]).
    pub tenant: u32,
    /// The job's number in this master run.
    pub job: u32,
    /// The action's number in the job (0: the driver).
    pub action: u32,
    /// The stage ([`weft_core::task::DRIVER_STAGE`] for a driver).
    pub stage: u32,
    /// The partition.
    pub partition: u32,
    /// The attempt, from 0.
    pub attempt: u32,
    /// The agent's number in this master run (`u32::MAX`: none known).
    pub agent: u32,
    /// How it ended.
    pub end: EndLabel,
    /// When it was placed, in microseconds since the Unix epoch.
    pub start_us: u64,
    /// When its end reached the master, likewise.
    pub end_us: u64,
    /// The memory limit it held, in bytes.
    pub memory: u64,
    /// What it consumed.
    pub meter: Meter,
}

impl Attempt {
    /// How long it held its place, in microseconds.
    pub fn held_us(&self) -> u64 {
        self.end_us.saturating_sub(self.start_us)
    }

    /// Its memory limit times the time it held it, in byte-seconds.
    pub fn memory_byte_seconds(&self) -> u64 {
        let v = u128::from(self.memory) * u128::from(self.held_us()) / 1_000_000;
        u64::try_from(v).unwrap_or(u64::MAX)
    }
}

/// The sum of some attempts: what every report rolls up with [`Totals::add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Attempts.
    pub attempts: u64,
    /// Attempts by end, in the order of [`EndLabel::ALL`].
    pub by_end: [u64; EndLabel::ALL.len()],
    /// Their metering summed (peak memory: the largest peak).
    pub meter: Meter,
    /// Time their places were held, in microseconds (slot-time).
    pub slot_us: u64,
    /// Their memory limits times the time held, in byte-seconds.
    pub memory_byte_seconds: u64,
}

impl Totals {
    /// Add one attempt: the one roll-up.
    pub fn add(&mut self, a: &Attempt) {
        let (t, m) = (&mut self.meter, &a.meter);
        self.attempts += 1;
        self.by_end[a.end.index()] += 1;
        t.fuel += m.fuel;
        t.peak_memory = t.peak_memory.max(m.peak_memory);
        t.wall_us += m.wall_us;
        t.cpu_us += m.cpu_us;
        t.instantiate_us += m.instantiate_us;
        t.records_in += m.records_in;
        t.records_out += m.records_out;
        t.bytes_in += m.bytes_in;
        t.bytes_out += m.bytes_out;
        t.calls += m.calls;
        t.log_bytes += m.log_bytes;
        t.shuffle_written += m.shuffle_written;
        t.shuffle_read += m.shuffle_read;
        t.spill += m.spill;
        self.slot_us += a.held_us();
        self.memory_byte_seconds += a.memory_byte_seconds();
    }

    /// Attempts that ended with `label`.
    pub fn ended(&self, label: EndLabel) -> u64 {
        self.by_end[label.index()]
    }
}

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
    incarnation: Incarnation,
    clock: Clock,
    tenants: Vec<Arc<str>>,
    tenant_ids: HashMap<Arc<str>, u32>,
    jobs: HashMap<u32, JobEntry>,
    open: HashMap<TaskKey, Open>,
    records: Vec<Attempt>,
    quotas: quota::Quotas,
}

impl Ledger {
    /// An empty ledger for the master run `incarnation`.
    pub fn new(incarnation: Incarnation) -> Self {
        Self {
            incarnation,
            clock: Clock::now(),
            tenants: Vec::new(),
            tenant_ids: HashMap::new(),
            jobs: HashMap::new(),
            open: HashMap::new(),
            records: Vec::new(),
            quotas: quota::Quotas::default(),
        }
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
        self.jobs.insert(job.seq, JobEntry { tenant, ..Default::default() });
    }

    /// Attempt `key` was placed on `agent`, holding `memory` bytes, at `now`.
    pub fn started(&mut self, key: TaskKey, agent: AgentId, memory: u64, now: Instant) {
        let start_us = self.clock.unix_us(now);
        if let Some(j) = self.jobs.get_mut(&key.job().seq) {
            let open = Open { agent: agent.seq, killing: false, start_us, memory };
            if self.open.insert(key, open).is_none() {
                j.open += 1;
            }
        }
    }

    /// Attempt `key` was placed but never left the master: no record.
    pub fn forget(&mut self, key: &TaskKey) {
        if self.open.remove(key).is_some()
            && let Some(j) = self.jobs.get_mut(&key.job().seq)
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
        let keys: Vec<TaskKey> =
            self.open.iter().filter(|(_, o)| o.agent == agent.seq).map(|(k, _)| *k).collect();
        for key in keys {
            self.record(key, EndLabel::Lost, Meter::default(), now);
        }
    }

    fn record(&mut self, key: TaskKey, end: EndLabel, meter: Meter, now: Instant) {
        if key.job().incarnation != self.incarnation {
            return;
        }
        let end_us = self.clock.unix_us(now);
        let Some(j) = self.jobs.get_mut(&key.job().seq) else { return };
        let open = self.open.remove(&key);
        if open.is_some() {
            j.open = j.open.saturating_sub(1);
        }
        let open = open.unwrap_or(Open { agent: u32::MAX, killing: false, start_us: end_us, memory: 0 });
        let end = match end {
            EndLabel::Finished | EndLabel::Lost | EndLabel::Refused => end,
            _ if open.killing => EndLabel::Killed,
            _ => end,
        };
        let a = Attempt {
            tenant: j.tenant,
            job: key.job().seq,
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
        self.jobs
            .get(&job.seq)
            .filter(|_| job.incarnation == self.incarnation)
            .map_or_else(Totals::default, |j| j.totals)
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
