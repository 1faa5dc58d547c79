//! The driver side of a job: its `run` defines datasets through the driver
//! imports, and its actions go to an [`ActionRunner`].
//!
//! A job's `main` runs sandboxed like any task (Spark's cluster deploy mode
//! runs the driver on a worker). The master owns the job's plan: here each
//! dataset call is only checked (a [`PlanDraft`] knows which datasets hold
//! pairs) and kept until the next action, which carries the plan's new part
//! to the runner — the master's Driver service in a cluster — in the same
//! call. The guest blocks until the result comes back, so loops over actions
//! (iterative jobs) just work.

use crate::sandbox::{
    DatasetId as WitDatasetId, DriverError, DriverFuture, DriverHost, Op, OpKind, ShuffleOp,
    StorageLevel as WitStorageLevel, WitFold,
};
use std::future::Future;
use std::pin::Pin;
use weft_core::codec::batch::{BatchWriter, entries};
use weft_core::fold::Fold;
use weft_core::ids::DatasetId;
use weft_core::io::LineFormat;
use weft_core::plan::{Node, PlanDelta, PlanDraft, PlanError, ShuffleKind, Step, StepKind, StorageLevel};
use weft_core::task::Data;

/// An action on a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Every record.
    Collect,
    /// The number of records.
    Count,
    /// The first `n` records.
    Take(u64),
    /// Lines under a URI, committed atomically.
    SaveAsTextFile(String),
}

/// What an action returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionResult {
    /// Records, as one batch.
    Records(Vec<u8>),
    /// A count.
    Count(u64),
    /// The output was committed.
    Saved,
}

/// The future an [`ActionRunner`] returns.
pub type RunnerFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Runs a driver's actions: turns the plan into a job and waits for it.
pub trait ActionRunner: Send {
    /// Run `action` on `dataset` (holding pairs when `keyed`), sending with
    /// it the part of the plan the master has not seen (`delta`).
    fn run<'a>(
        &'a mut self,
        delta: &'a PlanDelta,
        dataset: DatasetId,
        keyed: bool,
        action: Action,
    ) -> RunnerFuture<'a, ActionResult>;

    /// Keep `bytes` where tasks can fetch them (a block of the master's
    /// artifact store), unless they are small enough to travel inline.
    fn put(&mut self, bytes: Vec<u8>) -> RunnerFuture<'_, Data>;

    /// The sum of finished tasks' additions to an accumulator.
    fn accumulator(&mut self, name: &str) -> RunnerFuture<'_, i64>;
}

/// A [`DriverHost`] that builds a plan and delegates actions.
pub struct PlanDriver<R> {
    args: Vec<String>,
    /// What the driver keeps of its plan (the master owns it).
    plan: PlanDraft,
    runner: R,
}

impl<R: ActionRunner> PlanDriver<R> {
    /// A driver for a job run with `args`.
    pub fn new(args: Vec<String>, runner: R) -> Self {
        Self { args, plan: PlanDraft::new(), runner }
    }

    fn add(&mut self, node: Node, keyed: bool) -> DriverFuture<'_, WitDatasetId> {
        let result = self.plan.add(node, keyed).map(|id| id.0).map_err(invalid);
        Box::pin(std::future::ready(result))
    }

    fn act(&mut self, ds: WitDatasetId, action: Action) -> DriverFuture<'_, ActionResult> {
        Box::pin(async move {
            let keyed = self.plan.keyed(DatasetId(ds)).map_err(invalid)?;
            let delta = self.plan.delta();
            let result = self.runner.run(&delta, DatasetId(ds), keyed, action).await;
            // Taken by the master unless the call failed before it answered;
            // a delta resent then is taken once.
            if result.is_ok() {
                self.plan.sent();
            }
            result.map_err(DriverError::JobFailed)
        })
    }
}

fn invalid(e: PlanError) -> DriverError {
    DriverError::InvalidArgument(e.to_string())
}

fn step(op: Op) -> Result<Step, DriverError> {
    let kind = match op.kind {
        OpKind::Map => StepKind::Map,
        OpKind::Filter => StepKind::Filter,
        OpKind::FlatMap => StepKind::FlatMap,
        OpKind::MapBatch => StepKind::MapBatch,
        OpKind::Reduce => StepKind::Reduce,
        OpKind::Combine => {
            return Err(DriverError::InvalidArgument(format!(
                "`{}`: a combine is not a dataset step (reduce_by_key adds it to the map side itself)",
                op.function
            )));
        }
    };
    Ok(Step { kind, function: op.function, param: op.param })
}

fn unexpected<T>(what: &str) -> Result<T, DriverError> {
    Err(DriverError::JobFailed(format!("the runner answered {what} with the wrong kind of result")))
}

/// Split a batch into `n` partitions of consecutive records (pairs stay whole).
fn split_records(records: &[u8], keyed: bool, n: u32) -> Result<Vec<Vec<u8>>, DriverError> {
    let all: Vec<&[u8]> = entries(records)
        .collect::<Result<_, _>>()
        .map_err(|e| DriverError::InvalidArgument(format!("parallelize: {e}")))?;
    let per = if keyed { 2 } else { 1 };
    if !all.len().is_multiple_of(per) {
        return Err(DriverError::InvalidArgument("parallelize: a key without its value".into()));
    }
    let records = all.len() / per;
    let n = n.max(1) as usize;
    Ok((0..n)
        .map(|i| {
            let (from, to) = (records * i / n, records * (i + 1) / n);
            let mut w = BatchWriter::new();
            for e in &all[from * per..to * per] {
                w.push(e);
            }
            w.finish()
        })
        .collect())
}

impl<R: ActionRunner> DriverHost for PlanDriver<R> {
    fn args(&mut self) -> Vec<String> {
        self.args.clone()
    }

    fn text_file(
        &mut self,
        uri: String,
        min_partitions: u32,
        lines: LineFormat,
    ) -> DriverFuture<'_, WitDatasetId> {
        self.add(Node::TextFile { uri, min_partitions, lines }, false)
    }

    fn parallelize(
        &mut self,
        records: Vec<u8>,
        keyed: bool,
        partitions: u32,
    ) -> DriverFuture<'_, WitDatasetId> {
        Box::pin(async move {
            let mut stored = Vec::new();
            for p in split_records(&records, keyed, partitions)? {
                stored.push(self.runner.put(p).await.map_err(DriverError::JobFailed)?);
            }
            self.plan.add(Node::Parallelize { partitions: stored }, keyed).map(|id| id.0).map_err(invalid)
        })
    }

    fn narrow(&mut self, parent: WitDatasetId, op: Op, keyed: bool) -> DriverFuture<'_, WitDatasetId> {
        match step(op) {
            Ok(step) => self.add(Node::Narrow { parent: DatasetId(parent), step }, keyed),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }

    fn shuffle(
        &mut self,
        parent: WitDatasetId,
        op: ShuffleOp,
        partitions: u32,
    ) -> DriverFuture<'_, WitDatasetId> {
        let kind = match op {
            ShuffleOp::ReduceByKey(function) => ShuffleKind::ReduceByKey { function },
            ShuffleOp::SumByKey => ShuffleKind::SumByKey,
            ShuffleOp::GroupByKey => ShuffleKind::GroupByKey,
            ShuffleOp::SortByKey(ascending) => ShuffleKind::SortByKey { ascending },
            ShuffleOp::PartitionBy => ShuffleKind::PartitionBy,
            ShuffleOp::FoldByKey(fold) => ShuffleKind::FoldByKey {
                fold: match fold {
                    WitFold::SumF64 => Fold::SumF64,
                    WitFold::Min => Fold::Min,
                    WitFold::Max => Fold::Max,
                },
            },
        };
        self.add(Node::Shuffle { parent: DatasetId(parent), kind, partitions }, true)
    }

    fn join(
        &mut self,
        left: WitDatasetId,
        right: WitDatasetId,
        partitions: u32,
    ) -> DriverFuture<'_, WitDatasetId> {
        self.add(Node::Join { left: DatasetId(left), right: DatasetId(right), partitions }, true)
    }

    fn union(&mut self, a: WitDatasetId, b: WitDatasetId) -> DriverFuture<'_, WitDatasetId> {
        self.add(Node::Union { a: DatasetId(a), b: DatasetId(b) }, false)
    }

    fn persist(&mut self, ds: WitDatasetId, level: Option<WitStorageLevel>) -> DriverFuture<'_, ()> {
        let level = level.map(|l| match l {
            WitStorageLevel::MemoryOnly => StorageLevel::MemoryOnly,
            WitStorageLevel::MemoryAndDisk => StorageLevel::MemoryAndDisk,
            WitStorageLevel::DiskOnly => StorageLevel::DiskOnly,
        });
        Box::pin(std::future::ready(self.plan.persist(DatasetId(ds), level).map_err(invalid)))
    }

    fn collect(&mut self, ds: WitDatasetId) -> DriverFuture<'_, Vec<u8>> {
        Box::pin(async move {
            match self.act(ds, Action::Collect).await? {
                ActionResult::Records(r) => Ok(r),
                _ => unexpected("collect"),
            }
        })
    }

    fn count(&mut self, ds: WitDatasetId) -> DriverFuture<'_, u64> {
        Box::pin(async move {
            match self.act(ds, Action::Count).await? {
                ActionResult::Count(n) => Ok(n),
                _ => unexpected("count"),
            }
        })
    }

    fn take(&mut self, ds: WitDatasetId, n: u64) -> DriverFuture<'_, Vec<u8>> {
        Box::pin(async move {
            match self.act(ds, Action::Take(n)).await? {
                ActionResult::Records(r) => Ok(r),
                _ => unexpected("take"),
            }
        })
    }

    fn save_as_text_file(&mut self, ds: WitDatasetId, uri: String) -> DriverFuture<'_, ()> {
        Box::pin(async move {
            match self.act(ds, Action::SaveAsTextFile(uri)).await? {
                ActionResult::Saved => Ok(()),
                _ => unexpected("save_as_text_file"),
            }
        })
    }

    fn broadcast(&mut self, value: Vec<u8>) -> DriverFuture<'_, u64> {
        // Ids count from 0 in call order within a job.
        Box::pin(async move {
            let stored = self.runner.put(value).await.map_err(DriverError::JobFailed)?;
            Ok(self.plan.broadcast(stored))
        })
    }

    fn accumulator_value(&mut self, name: String) -> DriverFuture<'_, i64> {
        Box::pin(async move { self.runner.accumulator(&name).await.map_err(DriverError::JobFailed) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelize_splits_records_evenly_and_keeps_pairs_whole() {
        let mut w = BatchWriter::new();
        for i in 0..5u8 {
            w.push(&[i]);
            w.push(&[i + 100]);
        }
        let parts = split_records(&w.finish(), true, 2).unwrap();
        let counts: Vec<usize> = parts.iter().map(|p| entries(p).count()).collect();
        assert_eq!(counts, [4, 6], "2 and 3 pairs");
        let mut odd = BatchWriter::new();
        odd.push(b"k");
        assert!(split_records(&odd.finish(), true, 1).is_err());
    }
}
