//! The task executor: runs one task attempt end to end — input, the chain of
//! user functions in the sandbox, output — and reports how it went.
//!
//! # What happens
//!
//! [`Executor::execute`] takes a [`TaskSpec`] and returns a [`TaskOutcome`]:
//! the sandbox's [`TaskReport`] (end reason, metering, log, accumulators), the
//! [`Output`] the attempt produced, and the host-side I/O it did
//! ([`IoMetering`]). Three parts run at once, joined by two bounded channels:
//!
//! ```text
//!   input (caller's runtime)        guest (WasmPool thread)          output
//!   text split ─ LineReader ──┐                                  ┌─ ShuffleWriter   (blocking thread)
//!   records batch ────────────┼─▶ [chan] ─▶ run_chain per batch ─▶ [chan] ─┼─ text part writer (caller's runtime)
//!   shuffle fetch ─ merge ────┘         (+ guest combine)        └─ collect / count
//!     (fetch async, merge+aggregate on a blocking thread)
//! ```
//!
//! 1. **Input** ([`input`](self::Input)): a text split is read with ranged
//!    object-store reads through [`LineReader`](weft_core::io::LineReader), one
//!    `String` record per line; a parallelized batch is handed over whole; a
//!    reduce partition is fetched through the [`ShuffleReader`] (concurrent,
//!    bytes in flight bounded), merged by key and aggregated natively
//!    ([`Aggregate`]); a join fetches both sides and inner-joins them.
//! 2. **Chain**: the guest job instantiates the component once per attempt and
//!    calls [`TaskInstance::run_chain`](crate::TaskInstance::run_chain) once
//!    per batch, so every narrow step of the stage costs one boundary crossing
//!    per batch. An empty chain passes batches through without instantiating.
//! 3. **Output**: pairs go to a [`ShuffleWriter`](crate::shuffle::ShuffleWriter)
//!    (native `SumI64` combine inside the writer), records are collected
//!    (`collect`, `take` stops early) or counted, `String` records become the
//!    lines of a part file. Output is *published* — the shuffle files merged
//!    and renamed into place, the part file committed — only once the attempt
//!    has succeeded, so a failed attempt leaves nothing behind that a reader
//!    would trust.
//!
//! # Threads
//!
//! WebAssembly runs only on the [`WasmPool`]: the guest job is the one part of
//! a task that goes there, and it does nothing but wait on its channels and
//! call the guest. Object-store reads and shuffle fetches are async and stay on
//! the caller's runtime (the agent's I/O runtime); native CPU work — merging
//! and aggregating fetched blocks, sorting and spilling shuffle output — runs
//! on tokio's blocking threads. The channels hold
//! [`ExecutorConfig::channel_batches`] batches each, so a fast input cannot run
//! far ahead of a slow guest, nor a fast guest ahead of a slow store
//! (backpressure both ways), and memory per task stays at a few batches.
//!
//! # Map-side combine
//!
//! `SumI64` runs natively inside the shuffle writer, folding pairs in a hash
//! table as they arrive. A guest combine ([`MapCombine::Guest`]) runs inside
//! the guest instead, as the last step of the chain (WIT `combine`): the SDK
//! folds the pairs the chain yields into a table keyed by key bytes and keeps
//! it across batches, handing it back when it grows past a bound and once
//! more at the end (`flush-chain`, called after the last batch). So a map
//! task writes about one pair per key, and the pairs it folded never cross
//! the sandbox boundary.
//!
//! # Failures
//!
//! Every outcome carries a report, whatever failed:
//!
//! - the guest's failures (trap, fuel, memory, deadline, its errors) are the
//!   sandbox's classification, unchanged;
//! - host failures ([`ExecError`]: reading input, fetching blocks, writing or
//!   committing output) end the attempt as `HostError` with a message naming
//!   what failed. When the input fails, the guest job is told
//!   (so the attempt does not look complete); when the output fails, the
//!   guest job's channel closes and it stops;
//! - the first failure wins: a guest that trapped is reported as trapped even
//!   if the output side then saw its channel close.
//!
//! - the task's deadline is one clock for all three parts, and when it passes
//!   the verdict follows what the attempt was doing: a guest in a call ends
//!   as `Deadline` (the user's code was slow), a guest waiting on input or
//!   output, or output still being committed after the guest finished, ends
//!   as a retryable `HostError` naming the host work that stalled ("the
//!   deadline of 30s passed while fetching shuffle block shuffle_2_3_0_1 from
//!   127.0.0.1:4567"). See the `deadline` module.
//!
//! A failed shuffle fetch additionally yields [`Output::FetchFailed`] naming
//! the block, so the scheduler recomputes the lost map output instead of
//! retrying the reduce task against the same missing block.
//!
//! # Metering
//!
//! The sandbox meters the guest ([`TaskMetering`]).
//! What the executor adds — bytes read from storage, shuffle bytes read and
//! written, spill bytes, output bytes — is in [`IoMetering`], next to the
//! report rather than inside `TaskMetering`: the proto conversion builds
//! `TaskMetering` field by field, so extending it belongs with a proto change.

mod deadline;
mod error;
mod input;
mod output;
mod run;
mod spec;

pub use error::ExecError;
pub use output::Output;
pub use spec::{Aggregate, CachePut, Input, MapCombine, OutputSpec, SpecError, TaskSpec};

use crate::WasmPool;
use crate::executor::deadline::{Clock, Doing};
use crate::sandbox::{Sandbox, TaskContext, TaskReport};
use crate::shuffle::{BlockFetcher, LocalFetcher, ReaderConfig, ShuffleReader, WriterConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::Instrument;
use weft_core::metering::TaskMetering;

/// Tuning of an [`Executor`]. Loads from TOML; unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExecutorConfig {
    /// Batches each channel (input → guest, guest → output) holds.
    pub channel_batches: usize,
    /// Target size of an input batch: lines per read, aggregated shuffle pairs.
    pub batch_bytes: usize,
    /// How reduce partitions are fetched.
    pub reader: ReaderConfig,
    /// How shuffle output is buffered, spilled and stored.
    pub writer: WriterConfig,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            channel_batches: 2,
            batch_bytes: 1 << 20,
            reader: ReaderConfig::default(),
            writer: WriterConfig::default(),
        }
    }
}

impl ExecutorConfig {
    /// Set the input batch size in bytes.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(1);
        self
    }

    /// Set the channel capacity in batches.
    pub fn with_channel_batches(mut self, batches: usize) -> Self {
        self.channel_batches = batches.max(1);
        self
    }

    /// Set the shuffle writer's tuning.
    pub fn with_writer(mut self, writer: WriterConfig) -> Self {
        self.writer = writer;
        self
    }

    /// Set the shuffle reader's tuning.
    pub fn with_reader(mut self, reader: ReaderConfig) -> Self {
        self.reader = reader;
        self
    }
}

/// The host-side I/O of one attempt, beside the guest's [`TaskMetering`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMetering {
    /// Bytes read from the object store (text input) or handed over (records).
    pub input_bytes: u64,
    /// Stored bytes of the shuffle blocks fetched.
    pub shuffle_bytes_read: u64,
    /// Bytes of the shuffle data file written.
    pub shuffle_bytes_written: u64,
    /// Pairs in the shuffle data file, after combining.
    pub shuffle_records_written: u64,
    /// Bytes spilled to disk while sorting shuffle output or merging a
    /// shuffle read.
    pub spill_bytes: u64,
    /// Bytes of text output written (newlines included).
    pub output_bytes: u64,
    /// The most bytes the host held in memory for the attempt's data: its
    /// input (handed-over records, a text batch, or the fetched shuffle
    /// blocks a merge holds) plus its output (the shuffle sort buffer at its
    /// peak, or the result records).
    pub peak_host_memory: u64,
}

/// How one attempt went.
#[derive(Debug, Clone)]
pub struct TaskOutcome {
    /// The verdict, the guest's metering, its log and accumulators.
    pub report: TaskReport,
    /// What the attempt produced ([`Output::None`] when it failed).
    pub output: Output,
    /// What the host read and wrote for it.
    pub io: IoMetering,
    /// The persisted partitions its chain computed, with their batches
    /// (empty unless it succeeded): the caller keeps them.
    pub cached: Vec<(CachePut, Vec<bytes::Bytes>)>,
}

impl TaskOutcome {
    /// Whether the attempt succeeded (and its output was published).
    pub fn is_success(&self) -> bool {
        self.report.end.is_success()
    }
}

/// Runs task attempts: the sandbox, the pool it runs on, and the shuffle reader.
///
/// Cheap to share behind an `Arc`; every [`execute`](Self::execute) is
/// independent. The fetcher is injected: [`LocalFetcher`] reads map outputs
/// from a local directory; a remote fetcher plugs in behind [`BlockFetcher`].
pub struct Executor<F = LocalFetcher> {
    sandbox: Sandbox,
    pool: Arc<WasmPool>,
    reader: ShuffleReader<F>,
    config: ExecutorConfig,
}

impl<F> std::fmt::Debug for Executor<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<F: BlockFetcher> Executor<F> {
    /// An executor running guests in `sandbox` on `pool`, fetching shuffle
    /// blocks through `fetcher`.
    pub fn new(sandbox: Sandbox, pool: Arc<WasmPool>, fetcher: F) -> Self {
        let config = ExecutorConfig::default();
        let reader = ShuffleReader::new(fetcher, config.reader.clone());
        Self { sandbox, pool, reader, config }
    }

    /// Use `config`.
    pub fn with_config(self, config: ExecutorConfig) -> Self {
        let dir = self.reader.spill_dir().to_path_buf();
        let reader =
            ShuffleReader::new(self.reader.into_fetcher(), config.reader.clone()).with_spill_dir(dir);
        Self { reader, config, ..self }
    }

    /// Spill shuffle reads that pass their memory budget into `dir` (by
    /// default the system's temporary directory).
    pub fn with_spill_dir(self, dir: impl Into<std::path::PathBuf>) -> Self {
        Self { reader: self.reader.with_spill_dir(dir), ..self }
    }

    /// The configuration in use.
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    /// Run one task attempt to its end.
    ///
    /// Never fails: every failure is in the outcome's report (see the [module
    /// docs](self#failures)). Call it on the agent's I/O runtime; guest code
    /// runs on the pool and CPU-heavy host work on blocking threads.
    ///
    /// # Cancel safety
    /// Not cancel safe. Dropping the future abandons the input and output
    /// sides (nothing is published); the guest job then sees its channels
    /// close and stops at its next batch, within the task's deadline.
    pub async fn execute(&self, spec: TaskSpec) -> TaskOutcome {
        let span = tracing::info_span!(
            "weft.agent.execute",
            job_id = %spec.job,
            stage_id = spec.stage.0,
            partition = spec.partition,
            attempt = spec.attempt,
        );
        self.execute_inner(spec).instrument(span).await
    }

    async fn execute_inner(&self, spec: TaskSpec) -> TaskOutcome {
        let started = Instant::now();
        if let Err(e) = spec.validate() {
            let end = ExecError::from(e).end_reason();
            let metering = TaskMetering { wall: started.elapsed(), ..Default::default() };
            return failed(run::host_report(end, metering), IoMetering::default());
        }
        let capacity = self.config.channel_batches.max(1);
        let (in_tx, in_rx) = mpsc::channel(capacity);
        let (out_tx, out_rx) = mpsc::channel(capacity);
        let limits = spec.limits.capped_by(&self.sandbox.config().max_limits);
        let clock = Clock::new(limits.deadline);
        let (reading, writing) = (Doing::default(), Doing::default());
        let kept = run::Kept::new(spec.cache.len());
        let job = run::GuestJob {
            sandbox: self.sandbox.clone(),
            component: Arc::clone(&spec.component),
            ctx: TaskContext {
                info: spec.task_info(),
                limits: spec.limits.clone(),
                broadcasts: Arc::clone(&spec.broadcasts),
                driver: None,
            },
            segments: spec.segments(),
            kept: kept.clone(),
            waits: run::Waits { clock: clock.clone(), input: reading.clone(), output: writing.clone() },
        };
        let keyed = spec.produces_pairs();
        // A task without user functions passes its batches through in the
        // host: no sandbox, so no hop to the WebAssembly pool and back.
        let host_only = job.host_only();
        let guest = async {
            let report = if host_only {
                Ok(job.pass_through(in_rx, out_tx).await)
            } else {
                self.pool.run(move || job.run(in_rx, out_tx)).await
            };
            // Started by the job; started here if the job never ran, so the
            // input and output sides are bounded all the same.
            clock.start();
            report
        };
        let (input_result, guest, drained) = tokio::join!(
            input::pump(spec.input, &self.reader, &self.config, in_tx, &clock, &reading),
            guest,
            clock.bound(&writing, output::drain(spec.output, keyed, &self.config, out_rx, &writing)),
        );

        let mut report = guest.unwrap_or_else(|e| {
            let metering = TaskMetering { wall: started.elapsed(), ..Default::default() };
            run::host_report(ExecError::from(e).end_reason(), metering)
        });
        let mut io = IoMetering::default();
        let input_error = match input_result {
            Ok(stats) => {
                io.input_bytes = stats.input_bytes;
                io.shuffle_bytes_read = stats.shuffle_bytes_read;
                io.peak_host_memory = stats.held_bytes;
                io.spill_bytes = stats.spill_bytes;
                None
            }
            Err(e) => Some(e),
        };
        // The first failure wins: the guest's own verdict, then the input's,
        // then the output's.
        let drained = match drained {
            Ok(drained) => Some(drained),
            Err(e) => {
                if report.end.is_success() {
                    report.end = e.end_reason();
                }
                None
            }
        };
        if let Some(e) = &input_error
            && report.end.is_success()
        {
            report.end = e.end_reason();
        }

        let output = match drained {
            Some(drained) if report.end.is_success() => {
                match clock.bound(&writing, output::publish(drained, &writing)).await {
                    Ok(output) => output,
                    Err(e) => {
                        report.end = e.end_reason();
                        Output::None
                    }
                }
            }
            Some(drained) => {
                output::discard(drained).await;
                Output::None
            }
            None => Output::None,
        };
        let output = match (&output, &input_error) {
            (Output::None, Some(e)) if report.end == e.end_reason() => match e.fetch_failed() {
                Some(block) => Output::FetchFailed { block },
                None => Output::None,
            },
            _ => output,
        };
        match &output {
            Output::Shuffle(map) => {
                io.shuffle_bytes_written = map.bytes_written;
                io.shuffle_records_written = map.records_written;
                io.spill_bytes += map.spill_bytes;
                io.peak_host_memory += map.peak_buffer_bytes;
            }
            Output::Records { batch, .. } => io.peak_host_memory += batch.len() as u64,
            Output::Text(part) => io.output_bytes = part.bytes,
            _ => {}
        }
        io.peak_host_memory += kept.bytes();
        let cached = match report.end.is_success() {
            true => spec.cache.iter().copied().zip(kept.take()).collect(),
            false => Vec::new(),
        };
        tracing::debug!(end = report.end.name(), "weft.agent.execute.done");
        TaskOutcome { report, output, io, cached }
    }
}

fn failed(report: TaskReport, io: IoMetering) -> TaskOutcome {
    TaskOutcome { report, output: Output::None, io, cached: Vec::new() }
}
