//! Per-task metering: what one task attempt consumed and how it ended.
//!
//! Every task attempt produces one [`TaskMetering`], whether it finished or not.
//! Records roll up to stage, job and tenant (see [`TaskMetering::add`]); the
//! [`EndReason`] is the one typed verdict the scheduler acts on.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a task attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EndReason {
    /// The task ran to completion.
    Finished,
    /// The task used up its fuel (metered CPU budget).
    OutOfFuel {
        /// The fuel it was given.
        limit: u64,
    },
    /// The task ran past its wall-clock deadline (in guest code or waiting in a host call).
    Deadline {
        /// The deadline it was given.
        #[serde(with = "humantime_serde_compat")]
        limit: Duration,
    },
    /// The task tried to grow linear memory beyond its limit.
    MemoryLimit {
        /// The limit in bytes.
        limit: u64,
        /// The size it asked for, in bytes.
        requested: u64,
    },
    /// One call returned more output than a call may.
    OutputLimit {
        /// The limit in bytes.
        limit: u64,
        /// The bytes returned.
        produced: u64,
    },
    /// The guest trapped: a panic, `unreachable`, a stack overflow, an out-of-bounds access...
    GuestTrap {
        /// What kind of trap.
        kind: TrapKind,
        /// The trap, with the guest's panic message when it printed one.
        message: String,
    },
    /// The guest returned an error (a user function's `Err`, undecodable input, an unknown function).
    GuestError {
        /// The guest's message.
        message: String,
    },
    /// The host failed the task (instantiation, I/O, a broken component); not the guest's doing.
    HostError {
        /// What went wrong.
        message: String,
    },
    /// The task was killed on request.
    Killed,
    /// A reduce task could not read a map output: the scheduler recomputes
    /// that map output from lineage, then runs the task again.
    FetchFailed {
        /// The shuffle read.
        shuffle: crate::ids::ShuffleId,
        /// The map partition whose output could not be read.
        map: u32,
        /// Why (the peer, the error).
        message: String,
    },
    /// A persisted partition was not where the master said (evicted, or
    /// its agent gone): the scheduler forgets it and computes the partition
    /// from lineage instead. Not a failure of the task.
    CacheMiss {
        /// The persisted dataset.
        dataset: crate::ids::DatasetId,
        /// Its partition.
        partition: u32,
        /// Why.
        message: String,
    },
}

/// The kinds of guest trap weft distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrapKind {
    /// A Rust panic (the guest printed `panicked at ...` before trapping).
    Panic,
    /// An `unreachable` instruction.
    Unreachable,
    /// The call stack is exhausted (unbounded recursion).
    StackOverflow,
    /// An out-of-bounds memory or table access.
    OutOfBounds,
    /// Integer division by zero, overflow or a bad float-to-int conversion.
    Arithmetic,
    /// An indirect call to a null or mistyped function.
    BadCall,
    /// Any other trap.
    Other,
}

impl EndReason {
    /// Whether the task finished successfully.
    pub fn is_success(&self) -> bool {
        matches!(self, EndReason::Finished)
    }

    /// Whether running the same attempt again could succeed. Resource-limit and
    /// guest failures are deterministic and are not retried; host errors are.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            EndReason::HostError { .. } | EndReason::FetchFailed { .. } | EndReason::CacheMiss { .. }
        )
    }

    /// A short stable name, for metrics labels and summaries.
    pub fn name(&self) -> &'static str {
        match self {
            EndReason::Finished => "finished",
            EndReason::OutOfFuel { .. } => "out_of_fuel",
            EndReason::Deadline { .. } => "deadline",
            EndReason::MemoryLimit { .. } => "memory_limit",
            EndReason::OutputLimit { .. } => "output_limit",
            EndReason::GuestTrap { .. } => "guest_trap",
            EndReason::GuestError { .. } => "guest_error",
            EndReason::HostError { .. } => "host_error",
            EndReason::Killed => "killed",
            EndReason::FetchFailed { .. } => "fetch_failed",
            EndReason::CacheMiss { .. } => "cache_miss",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Finished => write!(f, "finished"),
            EndReason::OutOfFuel { limit } => {
                write!(f, "out of fuel after {limit} units (raise it with --fuel)")
            }
            EndReason::Deadline { limit } => {
                write!(
                    f,
                    "deadline of {} exceeded (raise it with --task-deadline)",
                    humantime::format_duration(*limit)
                )
            }
            EndReason::MemoryLimit { limit, requested } => write!(
                f,
                "memory limit of {} exceeded: guest asked for {} (raise it with --task-memory)",
                bytesize::ByteSize(*limit),
                bytesize::ByteSize(*requested)
            ),
            EndReason::OutputLimit { limit, produced } => write!(
                f,
                "one call returned {} of output, over the {} limit per call",
                bytesize::ByteSize(*produced),
                bytesize::ByteSize(*limit)
            ),
            EndReason::GuestTrap { kind, message } => write!(f, "guest trapped ({kind:?}): {message}"),
            EndReason::GuestError { message } => write!(f, "guest error: {message}"),
            EndReason::HostError { message } => write!(f, "host error: {message}"),
            EndReason::Killed => write!(f, "killed"),
            EndReason::FetchFailed { shuffle, map, message } => {
                write!(f, "could not fetch map output {map} of {shuffle}: {message}")
            }
            EndReason::CacheMiss { dataset, partition, message } => {
                write!(f, "persisted partition {partition} of {dataset} is gone: {message}")
            }
        }
    }
}

/// What one task attempt consumed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMetering {
    /// Fuel consumed (roughly one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Peak linear memory of the instance, in bytes.
    pub peak_memory: u64,
    /// Wall-clock time from instantiation to the end.
    #[serde(with = "humantime_serde_compat")]
    pub wall: Duration,
    /// CPU time of the thread that ran the guest.
    #[serde(with = "humantime_serde_compat")]
    pub cpu: Duration,
    /// Time to instantiate the component.
    #[serde(with = "humantime_serde_compat")]
    pub instantiate: Duration,
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
    /// Bytes of log the guest wrote (stdout, stderr, log import), including any dropped.
    pub log_bytes: u64,
    /// Shuffle bytes written (map tasks).
    #[serde(default)]
    pub shuffle_bytes_written: u64,
    /// Shuffle bytes read (reduce tasks).
    #[serde(default)]
    pub shuffle_bytes_read: u64,
    /// Bytes spilled to disk while sorting shuffle output.
    #[serde(default)]
    pub spill_bytes: u64,
    /// The most bytes the host held in memory for the attempt's data (its
    /// input and output buffers), beside the guest's linear memory.
    #[serde(default)]
    pub peak_host_memory: u64,
}

impl TaskMetering {
    /// Add another record to this one (for roll-ups). Peak memory takes the maximum.
    pub fn add(&mut self, other: &TaskMetering) {
        self.fuel += other.fuel;
        self.peak_memory = self.peak_memory.max(other.peak_memory);
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.instantiate += other.instantiate;
        self.records_in += other.records_in;
        self.records_out += other.records_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.calls += other.calls;
        self.log_bytes += other.log_bytes;
        self.shuffle_bytes_written += other.shuffle_bytes_written;
        self.shuffle_bytes_read += other.shuffle_bytes_read;
        self.spill_bytes += other.spill_bytes;
        self.peak_host_memory = self.peak_host_memory.max(other.peak_host_memory);
    }
}

/// Durations as human strings (`"1.5s"`) in serde, shared by config and metering.
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialize as e.g. `"30s"`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// Deserialize from e.g. `"30s"` or `"250ms"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_errors_are_retried() {
        assert!(EndReason::HostError { message: "disk".into() }.is_retryable());
        assert!(!EndReason::OutOfFuel { limit: 1 }.is_retryable());
        assert!(!EndReason::GuestTrap { kind: TrapKind::Panic, message: "x".into() }.is_retryable());
    }

    #[test]
    fn end_reason_round_trips_through_json() {
        let r = EndReason::Deadline { limit: Duration::from_millis(1500) };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"reason":"deadline","limit":"1s 500ms"}"#);
        assert_eq!(serde_json::from_str::<EndReason>(&json).unwrap(), r);
    }

    #[test]
    fn metering_durations_read_as_human_units() {
        let m = TaskMetering { wall: Duration::from_millis(1500), ..Default::default() };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["wall"], "1s 500ms");
        assert_eq!(serde_json::from_value::<TaskMetering>(json).unwrap(), m);
    }

    #[test]
    fn messages_name_the_fix() {
        let m = EndReason::MemoryLimit { limit: 64 << 20, requested: 65 << 20 }.to_string();
        assert!(m.contains("--task-memory"), "{m}");
    }

    #[test]
    fn roll_up_sums_and_takes_peak() {
        let a = TaskMetering { fuel: 10, peak_memory: 100, records_in: 3, ..Default::default() };
        let b = TaskMetering { fuel: 5, peak_memory: 300, records_in: 4, ..Default::default() };
        let c =
            TaskMetering { shuffle_bytes_written: 8, shuffle_bytes_read: 9, spill_bytes: 10, ..a.clone() };
        let mut t = TaskMetering::default();
        t.add(&a);
        t.add(&b);
        assert_eq!((t.fuel, t.peak_memory, t.records_in), (15, 300, 7));
        t.add(&c);
        t.add(&c);
        assert_eq!((t.shuffle_bytes_written, t.shuffle_bytes_read, t.spill_bytes), (16, 18, 20));
    }
}
