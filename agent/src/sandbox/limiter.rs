//! The per-store resource limiter: linear memory, tables and instances, and
//! the host memory a guest makes the agent hold for it.
//!
//! Growing memory past the task's limit traps the guest at once with
//! [`MemoryLimitExceeded`], rather than making `memory.grow` return -1: a Rust
//! guest would abort on the failed allocation anyway, and a typed error lets the
//! task end with [`EndReason::MemoryLimit`](weft_core::metering::EndReason)
//! instead of an anonymous trap.
//!
//! The limit covers more than linear memory: what the host keeps on the
//! guest's behalf for as long as the attempt lives (its accumulators, a
//! driver's plan and broadcast values) is [charged](Limiter::charge_host)
//! against the same limit, so a guest cannot make the agent grow past the
//! memory it reserved for the attempt by asking the host to hold things.

use wasmtime::ResourceLimiter;

/// Tables grow in elements; no sane guest needs more. (Counts of instances,
/// tables and memories are bounded by the pooling allocator.)
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// A guest tried to grow linear memory past its limit.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("linear memory limit of {limit} bytes exceeded: guest asked for {requested} bytes")]
pub struct MemoryLimitExceeded {
    /// The limit.
    pub limit: u64,
    /// The size asked for.
    pub requested: u64,
}

/// Enforces a task's memory limit and records its peak.
#[derive(Debug)]
pub struct Limiter {
    memory_limit: usize,
    /// Linear memory granted.
    linear: usize,
    /// Host memory held for the guest ([`charge_host`](Self::charge_host)).
    host: usize,
    peak: usize,
}

impl Limiter {
    /// A limiter allowing `memory_limit` bytes of linear memory and host
    /// memory together.
    pub fn new(memory_limit: u64) -> Self {
        Self {
            memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX),
            linear: 0,
            host: 0,
            peak: 0,
        }
    }

    /// The largest linear memory granted so far.
    pub fn peak(&self) -> u64 {
        self.peak as u64
    }

    /// The host memory charged to the guest so far.
    pub fn host(&self) -> u64 {
        self.host as u64
    }

    /// Count `bytes` the host keeps for the guest until the attempt ends
    /// against its limit, or refuse them (the caller traps the guest with
    /// the error, which ends the attempt `MEMORY_LIMIT`).
    pub fn charge_host(&mut self, bytes: usize) -> Result<(), MemoryLimitExceeded> {
        let total = self.linear.saturating_add(self.host).saturating_add(bytes);
        if total > self.memory_limit {
            return Err(MemoryLimitExceeded { limit: self.memory_limit as u64, requested: total as u64 });
        }
        self.host += bytes;
        Ok(())
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = desired.saturating_add(self.host);
        if total > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_limit as u64,
                requested: total as u64,
            }));
        }
        self.linear = desired;
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_the_limit_is_a_typed_error() {
        let mut l = Limiter::new(1 << 20);
        assert!(l.memory_growing(0, 65536, None).unwrap());
        let err = l.memory_growing(65536, 2 << 20, None).unwrap_err();
        let typed = err.downcast_ref::<MemoryLimitExceeded>().unwrap();
        assert_eq!((typed.limit, typed.requested), (1 << 20, 2 << 20));
        assert_eq!(l.peak(), 65536);
    }

    #[test]
    fn host_memory_and_linear_memory_share_the_limit() {
        let mut l = Limiter::new(1 << 20);
        assert!(l.memory_growing(0, 512 << 10, None).unwrap());
        l.charge_host(256 << 10).unwrap();
        assert_eq!(l.host(), 256 << 10);
        // Linear memory may no longer grow into what the host holds...
        let err = l.memory_growing(512 << 10, 1 << 20, None).unwrap_err();
        assert_eq!(err.downcast_ref::<MemoryLimitExceeded>().unwrap().requested, (1 << 20) + (256 << 10));
        assert!(l.memory_growing(512 << 10, 768 << 10, None).unwrap());
        // ...and the host takes no more than is left.
        let refused = l.charge_host(1).unwrap_err();
        assert_eq!((refused.limit, refused.requested), (1 << 20, (1 << 20) + 1));
        assert_eq!(l.host(), 256 << 10, "a refused charge is not counted");
    }
}
