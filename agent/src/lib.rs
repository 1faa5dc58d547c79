//! weft-agent: where user code runs.
//!
//! An agent runs each task of a job inside a WebAssembly sandbox limited by
//! fuel, memory and a deadline, meters every task, and (with the grid) owns the
//! shuffle files and the block service that serves them to peers.
//!
//! # Core concepts
//!
//! - [`Sandbox`]: one wasmtime engine per agent, with the pooling allocator,
//!   compiled components cached on disk by digest, and weft's imports linked.
//! - [`Prepared`]: a component compiled, linked and checked, ready to
//!   instantiate in microseconds.
//! - [`TaskInstance`]: one task attempt's store and instance; call it batch by
//!   batch, then [`finish`](TaskInstance::finish) it into a [`TaskReport`].
//! - [`WasmPool`]: the threads WebAssembly runs on, apart from the I/O runtime.
//!
//! # Example
//!
//! ```no_run
//! use weft_agent::{Chain, Op, OpKind, Sandbox, SandboxConfig, TaskContext, WasmPool};
//! use weft_core::{artifact::Digest, codec::batch::BatchWriter, limits::TaskLimits};
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Sandbox::new(SandboxConfig::default().with_cache_dir("/var/lib/weft/components"))?;
//! let pool = WasmPool::new(2)?;
//! let bytes = std::fs::read("wordcount.wasm")?;
//! let prepared = sandbox.load(&Digest::of(&bytes), &bytes)?;
//!
//! let mut lines = BatchWriter::new();
//! lines.push(b"to be or not to be");
//! let chain = Chain {
//!     ops: vec![Op { kind: OpKind::FlatMap, function: "split_words".into(), param: None }],
//!     input_keyed: false,
//!     output_keyed: false,
//! };
//! let ctx = TaskContext { limits: TaskLimits::default().with_fuel(1_000_000), ..Default::default() };
//! let (out, report) = pool
//!     .run(move || async move { sandbox.run_task(&prepared, ctx, &chain, [lines.finish()]).await })
//!     .await?;
//! println!("{} ({} fuel, {} records out)", report.end, report.metering.fuel, report.metering.records_out);
//! # Ok(()) }
//! ```

pub mod blocks;
pub mod driver;
pub mod executor;
pub mod node;
mod pool;
pub mod sandbox;
pub mod shuffle;

pub use executor::{Executor, ExecutorConfig, TaskOutcome, TaskSpec};
pub use pool::{PoolClosed, WasmPool};
pub use sandbox::{
    Chain, Op, OpKind, Prepared, Sandbox, SandboxConfig, SandboxError, TaskContext, TaskInstance, TaskReport,
};
