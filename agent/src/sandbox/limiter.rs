//! The per-store resource limiter: linear memory, tables and instances.
//!
//! Growing memory past the task's limit traps the guest at once with
//! [`MemoryLimitExceeded`], rather than making `memory.grow` return -1: a Rust
//! guest would abort on the failed allocation anyway, and a typed error lets the
//! task end with [`EndReason::MemoryLimit`](weft_core::metering::EndReason)
//! instead of an anonymous trap.

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
    peak: usize,
}

impl Limiter {
    /// A limiter allowing `memory_limit` bytes of linear memory.
    pub fn new(memory_limit: u64) -> Self {
        Self { memory_limit: usize::try_from(memory_limit).unwrap_or(usize::MAX), peak: 0 }
    }

    /// The largest linear memory granted so far.
    pub fn peak(&self) -> u64 {
        self.peak as u64
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.memory_limit as u64,
                requested: desired as u64,
            }));
        }
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
}
