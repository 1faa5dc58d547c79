//! Limits on one task: the sandbox's budget.
//!
//! Set at submit time, with cluster-wide defaults and maxima. Sizes and durations
//! read and print in human units (`64MiB`, `30s`).

use crate::metering::humantime_serde_compat;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The budget of one task attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TaskLimits {
    /// Fuel (metered CPU budget, about one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Linear memory the instance may grow to.
    pub memory: ByteSize,
    /// Wall-clock deadline from instantiation, covering guest code and host calls.
    #[serde(with = "humantime_serde_compat")]
    pub deadline: Duration,
    /// Bytes of stdout/stderr/log kept per task; more is counted and dropped.
    pub log: ByteSize,
    /// Largest output one call may return.
    pub output_per_call: ByteSize,
    /// Task slots the task holds on its agent while it runs (its CPU demand
    /// for the allocator: a task of 2 slots counts as two tasks of 1). It
    /// still runs on one thread.
    pub slots: u32,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000_000,
            memory: ByteSize::mib(512),
            deadline: Duration::from_secs(600),
            log: ByteSize::kib(64),
            output_per_call: ByteSize::mib(256),
            slots: 1,
        }
    }
}

impl TaskLimits {
    /// Set the fuel budget.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Set the memory limit.
    pub fn with_memory(mut self, bytes: u64) -> Self {
        self.memory = ByteSize::b(bytes);
        self
    }

    /// Set the wall-clock deadline.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Set the log size kept per task.
    pub fn with_log(mut self, bytes: u64) -> Self {
        self.log = ByteSize::b(bytes);
        self
    }

    /// Set the output limit per call.
    pub fn with_output_per_call(mut self, bytes: u64) -> Self {
        self.output_per_call = ByteSize::b(bytes);
        self
    }

    /// Set the task slots held.
    pub fn with_slots(mut self, slots: u32) -> Self {
        self.slots = slots;
        self
    }

    /// These limits, each capped at `max`'s.
    pub fn capped_by(&self, max: &TaskLimits) -> TaskLimits {
        TaskLimits {
            fuel: self.fuel.min(max.fuel),
            memory: self.memory.min(max.memory),
            deadline: self.deadline.min(max.deadline),
            log: self.log.min(max.log),
            output_per_call: self.output_per_call.min(max.output_per_call),
            slots: self.slots.min(max.slots),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_units_from_toml() {
        let l: TaskLimits = toml::from_str("memory = \"64MiB\"\ndeadline = \"250ms\"").unwrap();
        assert_eq!(l.memory, ByteSize::mib(64));
        assert_eq!(l.deadline, Duration::from_millis(250));
        assert_eq!(l.fuel, TaskLimits::default().fuel);
    }

    #[test]
    fn unknown_keys_are_an_error() {
        let err = toml::from_str::<TaskLimits>("memroy = \"1GiB\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `memroy`"), "{err}");
    }

    #[test]
    fn capping_takes_the_smaller_of_each() {
        let max = TaskLimits::default().with_memory(1 << 20).with_fuel(10);
        let l = TaskLimits::default().with_fuel(100).capped_by(&max);
        assert_eq!((l.fuel, l.memory.as_u64()), (10, 1 << 20));
    }
}
