//! The guest side: one job on the [`WasmPool`](crate::WasmPool) that
//! instantiates the component, runs the chain over every batch the input sends,
//! and passes each output batch on to the output side.
//!
//! This is the only place guest code runs, so it is the only part of a task
//! that runs on a pool thread. It waits on two bounded channels (input in,
//! output out) and does nothing but call the guest in between: the instance
//! stays on one thread from instantiation to finish, so the CPU time the
//! sandbox measures is the guest's.
//!
//! # Deadline
//!
//! The job starts the attempt's [`Clock`] and hands its deadline to the
//! sandbox, which enforces it inside guest calls (`Deadline`). Waiting for
//! input or for room in the output channel is bounded by the same deadline
//! here; when it passes during such a wait the host is what held the attempt
//! up, so the attempt ends as a retryable host error naming the host work
//! under way on that side (see [`deadline`](super::deadline)).

use super::deadline::{Clock, Doing};
use super::input::Msg;
use super::spec::Segment;
use crate::sandbox::{OpKind, Prepared, Sandbox, TaskContext, TaskInstance, TaskReport};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::mpsc::{Receiver, Sender};
use weft_codec::{WHOLE_PARTITION, batch};
use weft_core::metering::{EndReason, TaskMetering};

/// Everything the pool job needs, owned (the job outlives the caller's borrow).
pub(super) struct GuestJob {
    pub sandbox: Sandbox,
    pub component: Arc<Prepared>,
    pub ctx: TaskContext,
    /// The chain, cut where persisted datasets are computed.
    pub segments: Vec<Segment>,
    /// The batches of each persisted partition the chain computes.
    pub kept: Kept,
    /// What a wait past the deadline is blamed on.
    pub waits: Waits,
}

/// The batches kept for each persisted partition a task computes, by its
/// index in the spec's `cache`.
#[derive(Debug, Clone, Default)]
pub(super) struct Kept(Arc<Mutex<Vec<Vec<bytes::Bytes>>>>);

impl Kept {
    pub fn new(partitions: usize) -> Self {
        Self(Arc::new(Mutex::new(vec![Vec::new(); partitions])))
    }

    /// Keep `batch` as part of the `tee`-th persisted partition, if any
    /// (a `Bytes` shares the buffer; callers that go on owning it copy).
    fn keep(&self, tee: Option<usize>, batch: impl FnOnce() -> bytes::Bytes) {
        if let Some(i) = tee
            && let Some(kept) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get_mut(i)
        {
            kept.push(batch());
        }
    }

    /// The batches, taken out.
    pub fn take(&self) -> Vec<Vec<bytes::Bytes>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Bytes kept so far.
    pub fn bytes(&self) -> u64 {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().flatten().map(|b| b.len() as u64).sum()
    }
}

/// The attempt's clock and the host work under way on either side of the
/// guest: what a wait past the deadline is blamed on.
pub(super) struct Waits {
    pub clock: Clock,
    pub input: Doing,
    pub output: Doing,
}

impl Waits {
    /// The end of an attempt whose deadline passed while the guest job waited
    /// for its next input batch.
    fn for_input(&self) -> EndReason {
        let doing = self.input.current().unwrap_or_else(|| "waiting for the task's input".into());
        self.clock.stalled(doing).end_reason()
    }

    /// The end of an attempt whose deadline passed while the guest job waited
    /// for room in the output channel.
    fn for_output(&self) -> EndReason {
        let doing = self.output.current().unwrap_or_else(|| "waiting to hand over the task's output".into());
        self.clock.stalled(doing).end_reason()
    }
}

impl GuestJob {
    /// Run the attempt over the batches of `input`, sending outputs to `output`.
    pub async fn run(self, input: Receiver<Msg>, output: Sender<Vec<u8>>) -> TaskReport {
        let deadline = self.waits.clock.start();
        if self.host_only() {
            return self.pass_through(input, output).await;
        }
        let instance = self.sandbox.instantiate_until(&self.component, self.ctx, deadline.into_std()).await;
        let mut instance = match instance {
            Ok(instance) => instance,
            Err(report) => return report,
        };
        let end =
            drive(&mut instance, &self.segments, &self.kept, input, output, deadline, &self.waits).await;
        instance.finish(end)
    }

    /// Whether the chain calls no user function.
    pub fn host_only(&self) -> bool {
        self.segments.iter().all(|s| s.chain.ops.is_empty())
    }

    /// Run an attempt with an empty chain: no instance at all, batches go
    /// straight through in the host (and the future is `Send`, unlike
    /// [`run`](Self::run)'s, so it need not go to the pool).
    pub async fn pass_through(self, input: Receiver<Msg>, output: Sender<Vec<u8>>) -> TaskReport {
        let deadline = self.waits.clock.start();
        let keyed = self.segments.first().is_some_and(|s| s.chain.input_keyed);
        let tee = self.segments.first().and_then(|s| s.tee);
        pass_through(input, output, keyed, (&self.kept, tee), deadline, &self.waits).await
    }
}

/// The loop of an instantiated attempt. Returns the end reason of the attempt
/// unless the guest's own error already set it (then `finish` reports that).
async fn drive(
    instance: &mut TaskInstance,
    segments: &[Segment],
    kept: &Kept,
    mut input: Receiver<Msg>,
    output: Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
    waits: &Waits,
) -> EndReason {
    'batches: loop {
        let msg = match tokio::time::timeout_at(deadline, input.recv()).await {
            Err(_) => return waits.for_input(),
            Ok(None) => return flush(instance, segments, kept, &output, deadline, waits).await,
            Ok(Some(msg)) => msg,
        };
        // Shared, so that a persisted partition computed on the way keeps
        // the batch without copying it (only a batch both kept and handed
        // on is copied, below).
        let mut out = match msg {
            Msg::Abort(end) => return end,
            Msg::Batch(batch) => batch,
        };
        for segment in segments {
            if !segment.chain.ops.is_empty() {
                out = match instance.run_chain(&segment.chain, &out).await {
                    Ok(out) => out.into(),
                    // The instance is spent and remembers why; `finish` reports it.
                    Err(end) => return end,
                };
            }
            if out.is_empty() {
                continue 'batches;
            }
            kept.keep(segment.tee, || out.clone());
        }
        match tokio::time::timeout_at(deadline, output.send(Vec::from(out))).await {
            Err(_) => return waits.for_output(),
            // The output side stopped: it has enough (a `take`) or it failed,
            // which the executor reports. Either way the guest is done.
            Ok(Err(_)) => return EndReason::Finished,
            Ok(Ok(())) => {}
        }
    }
}

/// After the last batch: a chain ending in a guest `combine` hands back the
/// pairs it still holds (the SDK folds across calls), and a chain with a
/// whole-partition step (`weft:partition:<f>`, `map_partitions`) runs that
/// step over everything it held, then the rest of the chain.
async fn flush(
    instance: &mut TaskInstance,
    segments: &[Segment],
    kept: &Kept,
    output: &Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
    waits: &Waits,
) -> EndReason {
    let holds =
        |op: &crate::sandbox::Op| op.kind == OpKind::Combine || op.function.starts_with(WHOLE_PARTITION);
    // What a segment hands back now runs through the segments after it,
    // kept where one is persisted, as a batch would have.
    let mut carry: Vec<u8> = Vec::new();
    for segment in segments {
        if !carry.is_empty() && !segment.chain.ops.is_empty() {
            carry = match instance.run_chain(&segment.chain, &carry).await {
                Ok(out) => out,
                Err(end) => return end,
            };
        }
        if segment.chain.ops.iter().any(holds) {
            match instance.flush_chain(&segment.chain).await {
                // Batches are frames end to end: two make one.
                Ok(out) => carry.extend_from_slice(&out),
                Err(end) => return end,
            }
        }
        if !carry.is_empty() {
            kept.keep(segment.tee, || bytes::Bytes::copy_from_slice(&carry));
        }
    }
    if !carry.is_empty() && tokio::time::timeout_at(deadline, output.send(carry)).await.is_err() {
        return waits.for_output();
    }
    EndReason::Finished
}

/// An empty chain: no instance at all, batches go straight through, so a
/// deadline passing can only be the host's doing. The report counts batches
/// as the sandbox would.
async fn pass_through(
    mut input: Receiver<Msg>,
    output: Sender<Vec<u8>>,
    keyed: bool,
    (kept, tee): (&Kept, Option<usize>),
    deadline: tokio::time::Instant,
    waits: &Waits,
) -> TaskReport {
    let started = Instant::now();
    let mut metering = TaskMetering::default();
    let end = loop {
        let batch = match tokio::time::timeout_at(deadline, input.recv()).await {
            Err(_) => break waits.for_input(),
            Ok(None) => break EndReason::Finished,
            Ok(Some(Msg::Abort(end))) => break end,
            Ok(Some(Msg::Batch(batch))) => batch,
        };
        let records = match batch::count(&batch) {
            Ok(n) if !keyed || n % 2 == 0 => (if keyed { n / 2 } else { n }) as u64,
            Ok(n) => {
                let message = format!("input batch is malformed: {n} entries do not make pairs");
                break EndReason::HostError { message };
            }
            Err(e) => break EndReason::HostError { message: format!("input batch is malformed: {e}") },
        };
        metering.records_in += records;
        metering.records_out += records;
        metering.bytes_in += batch.len() as u64;
        metering.bytes_out += batch.len() as u64;
        kept.keep(tee, || batch.clone());
        match tokio::time::timeout_at(deadline, output.send(Vec::from(batch))).await {
            Err(_) => break waits.for_output(),
            Ok(Err(_)) => break EndReason::Finished,
            Ok(Ok(())) => {}
        }
    };
    metering.wall = started.elapsed();
    host_report(end, metering)
}

/// A report for an attempt that ran no guest code.
pub(super) fn host_report(end: EndReason, metering: TaskMetering) -> TaskReport {
    TaskReport { end, metering, log: String::new(), accumulators: BTreeMap::new() }
}
