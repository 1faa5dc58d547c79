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
//!
//! # Map-side guest combine
//!
//! [`MapCombine::Guest`](super::MapCombine::Guest) cannot use the shuffle
//! writer's combiner: that callback is synchronous and the sandbox is async.
//! Instead each output batch of the chain is sorted here by key bytes (stably,
//! so equal keys keep their order) and handed to the guest's `reduce` as a
//! second call on the same instance, which folds it to one pair per key before
//! the batch goes to the writer. Pairs of one key from different batches are
//! not folded on the map side; the reduce side folds them.

use super::input::Msg;
use crate::sandbox::{Chain, Prepared, Sandbox, TaskContext, TaskInstance, TaskReport};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc::{Receiver, Sender};
use weft_codec::batch::{self, BatchWriter};
use weft_core::metering::{EndReason, TaskMetering};

/// Everything the pool job needs, owned (the job outlives the caller's borrow).
pub(super) struct GuestJob {
    pub sandbox: Sandbox,
    pub component: Arc<Prepared>,
    pub ctx: TaskContext,
    pub chain: Chain,
    pub combine: Option<Chain>,
}

impl GuestJob {
    /// Run the attempt over the batches of `input`, sending outputs to `output`.
    pub async fn run(self, input: Receiver<Msg>, output: Sender<Vec<u8>>) -> TaskReport {
        let limit = self.ctx.limits.capped_by(&self.sandbox.config().max_limits).deadline;
        let deadline = tokio::time::Instant::now() + limit;
        if self.chain.ops.is_empty() && self.combine.is_none() {
            return pass_through(input, output, self.chain.input_keyed, deadline, limit).await;
        }
        let mut instance = match self.sandbox.instantiate(&self.component, self.ctx).await {
            Ok(instance) => instance,
            Err(report) => return report,
        };
        let end = drive(&mut instance, &self.chain, self.combine.as_ref(), input, output, deadline).await;
        instance.finish(end.unwrap_or(EndReason::Deadline { limit }))
    }
}

/// The loop of an instantiated attempt. Returns the end reason of the attempt
/// unless the guest's own error already set it (then `finish` reports that),
/// or `None` when the deadline passed while waiting.
async fn drive(
    instance: &mut TaskInstance,
    chain: &Chain,
    combine: Option<&Chain>,
    mut input: Receiver<Msg>,
    output: Sender<Vec<u8>>,
    deadline: tokio::time::Instant,
) -> Option<EndReason> {
    loop {
        let msg = match tokio::time::timeout_at(deadline, input.recv()).await {
            Err(_) => return None,
            Ok(None) => return Some(EndReason::Finished),
            Ok(Some(msg)) => msg,
        };
        let batch = match msg {
            Msg::Abort(end) => return Some(end),
            Msg::Batch(batch) => batch,
        };
        let mut out = if chain.ops.is_empty() {
            batch
        } else {
            match instance.run_chain(chain, &batch).await {
                Ok(out) => out,
                // The instance is spent and remembers why; `finish` reports it.
                Err(end) => return Some(end),
            }
        };
        if let Some(combine) = combine
            && !out.is_empty()
        {
            let sorted = match sort_pairs(&out) {
                Ok(sorted) => sorted,
                Err(e) => {
                    let message = format!("the chain's output is not a pair batch: {e}");
                    return Some(EndReason::HostError { message });
                }
            };
            out = match instance.run_chain(combine, &sorted).await {
                Ok(out) => out,
                Err(end) => return Some(end),
            };
        }
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

/// An empty chain with no guest combine: no instance at all, batches go
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

/// The pairs of `batch`, stably sorted by key bytes.
pub(super) fn sort_pairs(batch: &[u8]) -> Result<Vec<u8>, weft_codec::DecodeError> {
    let mut all: Vec<(&[u8], &[u8])> = batch::pairs(batch).collect::<Result<_, _>>()?;
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = BatchWriter::with_capacity(batch.len());
    for (k, v) in all {
        out.push(k);
        out.push(v);
    }
    Ok(out.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pairs_of(items: &[(&str, &str)]) -> Vec<u8> {
        let mut w = BatchWriter::new();
        for (k, v) in items {
            w.push(k.as_bytes());
            w.push(v.as_bytes());
        }
        w.finish()
    }

    #[test]
    fn sort_is_by_key_bytes_and_stable() {
        let input = pairs_of(&[("b", "1"), ("a", "2"), ("b", "3"), ("a", "4"), ("", "5")]);
        let sorted = sort_pairs(&input).unwrap();
        assert_eq!(sorted, pairs_of(&[("", "5"), ("a", "2"), ("a", "4"), ("b", "1"), ("b", "3")]));
        assert!(sort_pairs(&pairs_of(&[("a", "1")])[..9]).is_err());
    }
}
