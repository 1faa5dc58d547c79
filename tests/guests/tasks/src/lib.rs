//! Many tasks that do nothing: what the control plane costs per task.
//!
//! `tasks.wasm -- N MODE` runs one action over `N` records in `N` partitions,
//! so every task carries a single record:
//!
//! | mode | action | what a task costs |
//! |---|---|---|
//! | `empty` | `parallelize(0..N, N).count()` | scheduling, launch, the count, the update (no sandbox) |
//! | `identity` | the same with [`identity`] before the count | all of that and a sandbox instance per task |
//! | `nap` | the same with [`nap`] (100 ms asleep) before the count | a task that holds its slot a while (for fairness tests) |
//!
//! A warm-up action of [`WARM_UP`] tasks in the same mode runs first, so the
//! component is fetched and compiled on every agent before the timed action.
//! The driver checks that the count equals `N` (the job fails otherwise) and
//! logs the timed action's duration, measured here with the guest's monotonic
//! clock (`wasi:clocks`), so neither the cluster's start nor the driver's own
//! counts:
//!
//! ```text
//! [info] tasks: mode=identity n=10000 define_s=0.012345 action_s=2.345678 tasks_per_s=4263.1
//! ```
//!
//! `cli/benches/tasks.rs` reads that line.

use std::time::{Duration, Instant};
use weft::prelude::*;

/// Tasks of the warm-up action.
pub const WARM_UP: u64 = 100;

/// The record itself: one sandbox call per task that does no work.
#[weft::map]
pub fn identity(record: u64) -> u64 {
    record
}

/// The record, after 100 ms asleep: a task that holds its slot for a while.
#[weft::map]
pub fn nap(record: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    record
}

/// What each task runs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// The count alone: the host counts the record, no guest call.
    Empty,
    /// [`identity`], then the count.
    Identity,
    /// [`nap`], then the count.
    Nap,
}

impl Mode {
    fn parse(s: &str) -> weft::Result<Self> {
        match s {
            "empty" => Ok(Mode::Empty),
            "identity" => Ok(Mode::Identity),
            "nap" => Ok(Mode::Nap),
            other => Err(weft::Error::msg(format!("unknown mode {other:?}: use `empty`, `identity` or `nap`"))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Empty => "empty",
            Mode::Identity => "identity",
            Mode::Nap => "nap",
        }
    }
}

/// One action over `n` one-record partitions; returns how long defining the
/// dataset and the action took.
fn run(ctx: &Context, mode: Mode, n: u64) -> weft::Result<(Duration, Duration)> {
    let partitions = u32::try_from(n)
        .map_err(|_| weft::Error::msg(format!("N = {n} is more partitions than a u32 holds")))?;
    let started = Instant::now();
    let records = ctx.parallelize(0..n, partitions)?;
    let defined = started.elapsed();
    let started = Instant::now();
    let count = match mode {
        Mode::Empty => records.count()?,
        Mode::Identity => records.map(identity).count()?,
        Mode::Nap => records.map(nap).count()?,
    };
    let acted = started.elapsed();
    if count != n {
        return Err(weft::Error::msg(format!("{} tasks counted {count} records, not {n}", mode.name())));
    }
    Ok((defined, acted))
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [n, mode] = args.as_slice() else {
        return Err(weft::Error::msg("usage: tasks <N> <empty|identity>"));
    };
    let n: u64 = n.parse().map_err(|e| weft::Error::msg(format!("bad N {n:?}: {e}")))?;
    if n == 0 {
        return Err(weft::Error::msg("N must be at least 1"));
    }
    let mode = Mode::parse(mode)?;
    run(ctx, mode, WARM_UP)?;
    let (defined, acted) = run(ctx, mode, n)?;
    let secs = acted.as_secs_f64();
    weft::info!(
        "tasks: mode={} n={n} define_s={:.6} action_s={secs:.6} tasks_per_s={:.1}",
        mode.name(),
        defined.as_secs_f64(),
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
