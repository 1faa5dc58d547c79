//! The agent's one wasmtime [`Engine`] and the epoch ticker that drives deadlines.
//!
//! Set `WEFT_WASM_PROFILER=perfmap` to let `perf` name guest functions, or
//! (built with the `profiling` feature) `jitdump` to let it annotate their
//! machine code.

use super::SandboxConfig;
use super::error::SandboxError;
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Extra fiber stack beyond the wasm stack limit, for host frames.
const HOST_STACK_HEADROOM: usize = 512 * 1024;

/// Bytes of a memory slot restored in place (not unmapped) when it is reused.
const KEEP_RESIDENT: usize = 2 << 20;

/// Build the shared engine: component model, fuel (or, with fuel off, epoch
/// interruption) and the pooling allocator sized for `config.max_instances`
/// concurrent tasks.
///
/// Fuel and epochs are never both compiled in. With fuel on, every store
/// yields to its executor every few million units (see `instance.rs`), and the
/// timer around each call ends a guest spinning in its own code at that yield;
/// the epoch checks would only repeat that work at every loop head and
/// function entry, which cost about 12% of guest time on word splitting
/// (`cargo bench -p weft-agent --bench sandbox`).
pub fn build(config: &SandboxConfig) -> Result<Engine, SandboxError> {
    let max_stack = usize::try_from(config.max_wasm_stack.as_u64()).unwrap_or(usize::MAX);
    let max_memory = usize::try_from(config.max_limits.memory.as_u64()).unwrap_or(usize::MAX);
    let n = config.max_instances.max(1);

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n * 32)
        .max_core_instances_per_component(64)
        .total_memories(n * 2)
        .max_memories_per_component(4)
        .total_tables(n * 32)
        .max_tables_per_component(64)
        .total_stacks(n)
        .max_memory_size(max_memory)
        // Reset a slot's memory in place rather than unmapping it: with
        // PAGEMAP_SCAN (Linux 6.7+; `Auto` falls back to the low-address
        // `memset` elsewhere) only the pages a guest dirtied are restored, up
        // to `keep_resident`, and only the rest is given back with `madvise`
        // (at once: batching the decommits would keep up to a batch of
        // released memories resident). Each `madvise` costs a TLB shootdown on every core the
        // agent runs on, and each page it drops a fault at the next
        // instantiation: with one-record tasks these were most of the
        // agent's time (`cargo xtask bench-tasks`).
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10);

    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(config.fuel)
        .epoch_interruption(!config.fuel)
        .max_wasm_stack(max_stack)
        .async_stack_size(max_stack + HOST_STACK_HEADROOM)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // `WEFT_WASM_PROFILER=perfmap` writes /tmp/perf-<pid>.map so that `perf`
    // names the guest's functions, as `wasmtime run --profile=perfmap` does;
    // `jitdump` (with the `profiling` feature) writes the machine code too,
    // for `perf inject --jit` and `perf annotate`.
    match std::env::var("WEFT_WASM_PROFILER").as_deref() {
        Ok("perfmap") => {
            c.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        #[cfg(feature = "profiling")]
        Ok("jitdump") => {
            c.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        Ok(other) => {
            tracing::warn!(
                profiler = other,
                "WEFT_WASM_PROFILER is not one this build knows: use `perfmap`, or `jitdump` in a build \
                 with `--features profiling`"
            );
        }
        Err(_) => {}
    }
    Engine::new(&c).map_err(|e| SandboxError::Config { reason: format!("{e:#}") })
}

/// Increments the engine's epoch every `tick` on its own thread, until the
/// engine is dropped. A store's deadline is a number of ticks from its start.
pub fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new().name("weft-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(tick);
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the epoch ticker; deadlines will not interrupt guests");
    }
}
