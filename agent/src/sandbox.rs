//! The metered WebAssembly sandbox.
//!
//! # How a task runs
//!
//! 1. **One engine per agent.** [`Sandbox::new`] builds a wasmtime
//!    [`Engine`] with the component model, fuel metering and the pooling
//!    allocator. With fuel off it compiles in epoch interruption instead and
//!    starts a thread that advances the epoch every [`SandboxConfig::epoch_tick`].
//! 2. **Compile once.** [`Sandbox::load`] compiles a component (or reads the
//!    machine code from the on-disk cache, keyed by digest and engine settings),
//!    links it against weft's imports and checks it exports the job world; the
//!    result, a [`Prepared`], is kept in memory for every later task.
//! 3. **A fresh store per task.** [`Sandbox::instantiate`] gives each attempt a
//!    new store with its fuel, a deadline, a memory limiter, WASI without
//!    filesystem, network, environment or arguments, and bounded logs.
//! 4. **Batches in, batches out.** [`TaskInstance::run_chain`] hands the guest
//!    one contiguous batch per call and gets one back, counting records and bytes.
//! 5. **A typed end.** Every attempt ends in a [`TaskReport`]: an
//!    [`EndReason`] (finished, out of fuel,
//!    deadline, memory limit, output limit, guest trap, guest error, host error)
//!    and its [`TaskMetering`](weft_core::metering::TaskMetering).
//!
//! Deadlines are enforced by a timer around every async call. It drops a guest
//! waiting in a host call (a sleep, a driver action) at once, and a guest
//! spinning in its own code at its next fuel yield (every 2 M units, about a
//! millisecond); a call hook catches a guest busy calling the host (which
//! burns little fuel) at its next call. With fuel off, an epoch deadline traps the spinning guest
//! instead. Both end in `Deadline`. The executor passes the deadline of its
//! own clock ([`Sandbox::instantiate_until`]), so the guest and the task's
//! input and output share one instant.
//!
//! One call may copy out of the guest as much as its memory limit allows
//! (wasmtime's hostcall fuel, 128 MiB by default, is raised to it), so a
//! result over `output_per_call` always reaches the check that ends it as
//! `OutputLimit`.
//!
//! The sandbox is `Send + Sync` and cheap to share; run instances on the
//! [`WasmPool`](crate::WasmPool), never on the I/O runtime.

mod bindings;
mod cache;
mod engine;
mod error;
mod host;
mod instance;
mod limiter;
mod log;

pub use cache::Prepared;
pub use error::SandboxError;
pub use host::{
    DatasetId, DriverError, DriverFuture, DriverHost, Op, OpKind, ShuffleOp, StorageLevel, TaskInfo, WitFold,
};
pub use instance::{Chain, TaskContext, TaskInstance, TaskReport};
pub use log::TaskLog;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};
use weft_core::artifact::Digest;
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;

/// How the sandbox is set up. Loads from TOML; unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct SandboxConfig {
    /// Where compiled components are kept across restarts; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Instances that may be live at once (task slots plus headroom); sizes the pool.
    pub max_instances: u32,
    /// The largest limits any task may ask for.
    pub max_limits: TaskLimits,
    /// Meter fuel. Off only for benchmarks that measure its cost.
    pub fuel: bool,
    /// Largest WebAssembly call stack.
    pub max_wasm_stack: ByteSize,
    /// How often the epoch advances when fuel is off (with fuel on, deadlines
    /// are checked at fuel yields and no epoch is kept); deadlines are
    /// accurate to about one tick.
    #[serde(with = "weft_core::metering::humantime_serde_compat")]
    pub epoch_tick: Duration,
    /// Prepared components kept in memory.
    pub prepared_capacity: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_instances: 32,
            max_limits: TaskLimits::default()
                .with_memory(4 << 30)
                .with_fuel(u64::MAX)
                .with_deadline(Duration::from_secs(24 * 3600)),
            fuel: true,
            max_wasm_stack: ByteSize::mib(1),
            epoch_tick: Duration::from_millis(1),
            prepared_capacity: 64,
        }
    }
}

impl SandboxConfig {
    /// Keep compiled components under `dir`.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Size the pool for `n` live instances.
    pub fn with_max_instances(mut self, n: u32) -> Self {
        self.max_instances = n;
        self
    }

    /// Turn fuel metering on or off.
    pub fn with_fuel(mut self, on: bool) -> Self {
        self.fuel = on;
        self
    }

    /// Set the largest limits a task may ask for.
    pub fn with_max_limits(mut self, max: TaskLimits) -> Self {
        self.max_limits = max;
        self
    }
}

/// The agent's sandbox: one engine, one linker, the compiled-component cache.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    engine: Engine,
    linker: Linker<host::TaskState>,
    cache: cache::ComponentCache,
}

impl Sandbox {
    /// Build the engine and linker, and start the epoch ticker when fuel is off.
    ///
    /// # Errors
    /// When wasmtime rejects the configuration (e.g. a pool larger than the
    /// address space allows).
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let engine = engine::build(&config)?;
        let mut linker = Linker::new(&engine);
        let config_err = |e: wasmtime::Error| SandboxError::Config { reason: format!("{e:#}") };
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(config_err)?;
        bindings::Job::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(config_err)?;
        if !config.fuel {
            engine::start_ticker(&engine, config.epoch_tick);
        }
        let cache = cache::ComponentCache::new(&engine, config.cache_dir.clone(), config.prepared_capacity);
        Ok(Self { inner: Arc::new(Inner { config, engine, linker, cache }) })
    }

    /// The configuration the sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The prepared component for `digest` if it was loaded before.
    pub fn prepared(&self, digest: &Digest) -> Option<Arc<Prepared>> {
        self.inner.cache.get(digest)
    }

    /// Compile (or fetch from cache), link and check a component. `bytes` must
    /// be the verified content of `digest`. CPU-heavy on a cache miss: call it
    /// off the I/O runtime.
    ///
    /// # Errors
    /// When the bytes are not a component, import what weft does not provide,
    /// or lack the job world's exports.
    pub fn load(&self, digest: &Digest, bytes: &[u8]) -> Result<Arc<Prepared>, SandboxError> {
        self.inner.cache.load(&self.inner.engine, &self.inner.linker, digest, bytes)
    }

    /// Run one whole task: instantiate, run `chain` over each batch, finish.
    /// Returns the output batches and the report.
    pub async fn run_task(
        &self,
        prepared: &Prepared,
        ctx: TaskContext,
        chain: &Chain,
        batches: impl IntoIterator<Item = impl AsRef<[u8]>>,
    ) -> (Vec<Vec<u8>>, TaskReport) {
        let mut inst = match self.instantiate(prepared, ctx).await {
            Ok(inst) => inst,
            Err(report) => return (Vec::new(), report),
        };
        let mut out = Vec::new();
        for b in batches {
            match inst.run_chain(chain, b.as_ref()).await {
                Ok(o) => out.push(o),
                Err(_) => break,
            }
        }
        (out, inst.finish(EndReason::Finished))
    }
}
