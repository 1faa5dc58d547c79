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
//! The sandbox enforces the deadline inside guest calls. Waiting for input or
//! for room in the output channel is bounded by the same deadline here, so a
//! stalled fetch or a slow store cannot keep an attempt alive past its budget.

use super::input::Msg;
use crate::sandbox::{Chain, OpKind, Prepared, Sandbox, TaskContext, TaskInstance, TaskReport};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{Receiver, Sender};
use weft_codec::batch;
use weft_core::metering::{EndReason, TaskMetering};

/// Everything the pool job needs, owned (the job outlives the caller's borrow).
pub(super) struct GuestJob {
    pub sandbox: Sandbox,
    pub component: Arc<Prepared>,
    pub ctx: TaskContext,
    pub chain: Chain,
}

impl GuestJob {
    /// Run the attempt over the batches of `input`, sending outputs to `output`.
    pub async fn run(self, input: Receiver<Msg>, output: Sender<Vec<u8>>) -> TaskReport {
        let limit = self.ctx.limits.capped_by(&self.sandbox.config().max_limits).deadline;
        let deadline = tokio::time::Instant::now() + limit;
        if self.chain.ops.is_empty() {
            return pass_through(input, output, self.chain.input_keyed, deadline, limit).await;
        }
        let mut instance = match self.sandbox.instantiate(&self.component, self.ctx).await {
            Ok(instance) => instance,
            Err(report) => return report,
        };
        let end = drive(&mut instance, &self.chain, input, output, deadline).await;
        instance.finish(end.unwrap_or(EndReason::Deadline { limit }))
    }
}

/// The loop of an instantiated attempt. Returns the end reason of the attempt
/// unless the guest's own error already set it (then `finish` reports that),
/// or `None` when the deadline passed while waiting.
async fn drive(
    instance: &mut TaskInstance,
    chain: &Chain,
    mut input: Receiver<Msg>,
    output: Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
) -> Option<EndReason> {
    loop {
        let msg = match tokio::time::timeout_at(deadline, input.recv()).await {
            Err(_) => return None,
            Ok(None) => return flush(instance, chain, &output, deadline).await,
            Ok(Some(msg)) => msg,
        };
        let batch = match msg {
            Msg::Abort(end) => return Some(end),
            Msg::Batch(batch) => batch,
        };
        let out = match instance.run_chain(chain, &batch).await {
            Ok(out) => out,
            // The instance is spent and remembers why; `finish` reports it.
            Err(end) => return Some(end),
        };
        if out.is_empty() {
            continue;
        }
        match tokio::time::timeout_at(deadline, output.send(out)).await {
            Err(_) => return None,
            // The output side stopped: it has enough (a `take`) or it failed,
            // which the executor reports. Either way the guest is done.
            Ok(Err(_)) => return Some(EndReason::Finished),
            Ok(Ok(())) => {}
        }
    }
}

/// After the last batch: a chain ending in a guest `combine` hands back the
/// pairs it still holds (the SDK folds across calls).
async fn flush(
    instance: &mut TaskInstance,
    chain: &Chain,
    output: &Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
) -> Option<EndReason> {
    if chain.ops.last().is_none_or(|op| op.kind != OpKind::Combine) {
        return Some(EndReason::Finished);
    }
    let out = match instance.flush_chain(chain).await {
        Ok(out) => out,
        Err(end) => return Some(end),
    };
    if !out.is_empty() && tokio::time::timeout_at(deadline, output.send(out)).await.is_err() {
        return None;
    }
    Some(EndReason::Finished)
}

/// An empty chain: no instance at all, batches go
/// straight through. The report counts them as the sandbox would.
async fn pass_through(
    mut input: Receiver<Msg>,
    output: Sender<Vec<u8>>,
    keyed: bool,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
) -> TaskReport {
    let started = Instant::now();
    let mut metering = TaskMetering::default();
    let end = loop {
        let batch = match tokio::time::timeout_at(deadline, input.recv()).await {
            Err(_) => break None,
            Ok(None) => break Some(EndReason::Finished),
            Ok(Some(Msg::Abort(end))) => break Some(end),
            Ok(Some(Msg::Batch(batch))) => batch,
        };
        let records = match batch::count(&batch) {
            Ok(n) if !keyed || n % 2 == 0 => (if keyed { n / 2 } else { n }) as u64,
            Ok(n) => {
                let message = format!("input batch is malformed: {n} entries do not make pairs");
                break Some(EndReason::HostError { message });
            }
            Err(e) => break Some(EndReason::HostError { message: format!("input batch is malformed: {e}") }),
        };
        metering.records_in += records;
        metering.records_out += records;
        metering.bytes_in += batch.len() as u64;
        metering.bytes_out += batch.len() as u64;
        match tokio::time::timeout_at(deadline, output.send(batch)).await {
            Err(_) => break None,
            Ok(Err(_)) => break Some(EndReason::Finished),
            Ok(Ok(())) => {}
        }
    };
    metering.wall = started.elapsed();
    let end = end.unwrap_or(EndReason::Deadline { limit });
    host_report(end, metering)
}

/// A report for an attempt that ran no guest code.
pub(super) fn host_report(end: EndReason, metering: TaskMetering) -> TaskReport {
    TaskReport { end, metering, log: String::new(), accumulators: BTreeMap::new() }
}
