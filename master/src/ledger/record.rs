//! The ledger's record of one attempt ([`Attempt`]), its labels and
//! metering as integers, and the one roll-up of records ([`Totals::add`]).

use std::time::Duration;
use weft_core::metering::{EndReason, TaskMetering};

/// How an attempt ended, as the ledger labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
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
    /// Killed as a revocable task, to give a role its reserved room back
    /// (it runs again; not a failure).
    Preempted,
    /// A persisted partition it was to read was gone (it runs again,
    /// computing the partition; not a failure).
    CacheMiss,
}

impl EndLabel {
    /// Every label, in the order of [`Totals::by_end`].
    pub const ALL: [EndLabel; 14] = [
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
        EndLabel::Preempted,
        EndLabel::CacheMiss,
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
            EndReason::CacheMiss { .. } => EndLabel::CacheMiss,
        }
    }

    /// Its stable name (`finished`, `out_of_fuel`, …, `lost`, `refused`).
    pub fn name(self) -> &'static str {
        match self {
            EndLabel::Lost => "lost",
            EndLabel::Refused => "refused",
            EndLabel::Preempted => "preempted",
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
            EndLabel::CacheMiss => "cache_miss",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// What one attempt consumed, as integers (durations in microseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The most bytes the host held in memory for its data.
    pub peak_host_memory: u64,
}

pub(super) fn micros(d: Duration) -> u64 {
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
            peak_host_memory: m.peak_host_memory,
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
            peak_host_memory: self.peak_host_memory,
        }
    }
}

/// One ended attempt: the ledger's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// The tenant, interned ([`Ledger::tenant_name`](super::Ledger::tenant_name)).
    pub tenant: u32,
    /// The job's number in the ledger ([`Ledger::job_id`](super::Ledger::job_id)).
    pub job: u32,
    /// The action's number in the job (0: the driver).
    pub action: u32,
    /// The stage ([`weft_core::task::DRIVER_STAGE`] for a driver).
    pub stage: u32,
    /// The partition.
    pub partition: u32,
    /// The attempt, from 0.
    pub attempt: u32,
    /// The agent's number in the ledger (`u32::MAX`: none known;
    /// [`Ledger::agent_id`](super::Ledger::agent_id)).
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

/// An attempt's record as the master's state store keeps it: as
/// [`Attempt`], with the job and agent named in full (a record outlives the
/// master run that numbered them) and the tenant left to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredAttempt {
    /// The job.
    pub job: weft_core::ids::JobId,
    /// The action's number in the job (0: the driver).
    pub action: u32,
    /// The stage.
    pub stage: u32,
    /// The partition.
    pub partition: u32,
    /// The attempt, from 0.
    pub attempt: u32,
    /// Its agent, if known.
    pub agent: Option<weft_core::ids::AgentId>,
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
        t.peak_host_memory = t.peak_host_memory.max(m.peak_host_memory);
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
