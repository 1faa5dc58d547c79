//! A stage's [`TaskPlan`] becomes the [`TaskDescriptor`] an agent runs.
//! Nothing else in the master describes tasks.

use crate::dag::{CachePoint, PartitionerSpec, Source, Stage, StageKind, TaskPlan};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_core::artifact::Digest;
use weft_core::ids::{AgentId, DatasetId, JobId, ShuffleId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::plan::{Node, Plan, Step};
use weft_core::task::{
    CachePut, CachedRead, Data, Partitioning, ShuffleRead, ShuffleWrite, TaskBody, TaskDescriptor, TaskInput,
    TaskKey, TaskOutput, TaskWork, TextSplitRef,
};

/// What the job's result tasks do with their records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultSink {
    /// Return them (collect; take with a limit).
    Records {
        /// At most this many per task; `None` for all.
        limit: Option<u64>,
    },
    /// Count them.
    Count,
    /// Write them as text lines under this URI.
    Text(String),
    /// Return a sample of up to this many keys per task, and its record count
    /// (a sort's sample job).
    KeySample(u32),
}

/// What every task of one action's job shares.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The submitted job: its actions' shuffle files live under it, so a
    /// later action can read map outputs an earlier one wrote.
    pub job: JobId,
    /// The component.
    pub component: Digest,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// Broadcast values, by id.
    pub broadcasts: Arc<BTreeMap<u64, Data>>,
    /// The plan the job computes.
    pub plan: Plan,
    /// The splits of each text dataset, with the URI they were planned from.
    pub text: BTreeMap<DatasetId, (String, Arc<[TextSplit]>)>,
    /// The result stage's sink.
    pub sink: ResultSink,
    /// The range bounds of the job's sorts into several partitions, by shuffle
    /// (from their sample jobs).
    pub range_bounds: BTreeMap<ShuffleId, Vec<Vec<u8>>>,
}

/// Why a task cannot be described yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// A shuffle's map outputs are not all available.
    #[error("map outputs of {0} are not all available")]
    MissingMapOutputs(ShuffleId),
    /// An agent holding map output has no known address.
    #[error("agent {0} holds map output but is not registered")]
    UnknownAgent(AgentId),
    /// A dataset the task reads is not in the context.
    #[error("dataset {0} has no {1} in the job context")]
    MissingInput(DatasetId, &'static str),
    /// The attempt names a stage or partition its job's graph does not have.
    #[error("the job's graph has no task {0}")]
    NoSuchTask(TaskKey),
    /// A sort into several partitions whose sample job has not run.
    #[error("the range bounds of {0} are not known (its sample job has not run)")]
    MissingRangeBounds(ShuffleId),
}

/// Where a persisted partition is kept, seen from the agent a task is placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kept {
    /// On that agent.
    Here,
    /// On the agent whose block service is at this address.
    At(String),
}

/// Describe one task attempt for its agent. `maps(shuffle)` gives the
/// number of map outputs of a shuffle, all of them available (where they
/// live travels in the shuffle's [`MapTable`](weft_core::task::MapTable), not
/// in each reduce task). `kept(dataset, partition)` says where a persisted
/// partition is kept: the task reads the deepest one along its lineage that
/// is, and computes (and keeps) the rest.
pub fn descriptor(
    ctx: &JobContext,
    stage: &Stage,
    task: &TaskPlan,
    key: TaskKey,
    maps: &dyn Fn(ShuffleId) -> Result<u32, LaunchError>,
    kept: &dyn Fn(DatasetId, u32) -> Option<Kept>,
) -> Result<TaskDescriptor, LaunchError> {
    let put = |c: &CachePoint, after: u32| CachePut {
        dataset: c.dataset,
        partition: c.partition,
        after,
        level: c.level,
        keyed: c.keyed,
    };
    let read_from = task.cache.iter().rev().find_map(|c| kept(c.dataset, c.partition).map(|k| (c, k)));
    if let Some((c, k)) = read_from {
        let address = match k {
            Kept::Here => None,
            Kept::At(address) => Some(address),
        };
        let input = TaskInput::Cached(CachedRead { dataset: c.dataset, partition: c.partition, address });
        let chain: Arc<[Step]> = Arc::from(task.chain.get(c.after as usize..).unwrap_or_default());
        let cache =
            task.cache.iter().filter(|p| p.after > c.after).map(|p| put(p, p.after - c.after)).collect();
        return Ok(describe_work(
            ctx,
            key,
            TaskWork {
                input,
                input_keyed: c.keyed,
                output_keyed: if chain.is_empty() { c.keyed } else { task.output_keyed },
                chain,
                output: output(ctx, stage)?,
                cache,
            },
        ));
    }
    let read = |shuffle: ShuffleId, reduce: u32, aggregate| -> Result<ShuffleRead, LaunchError> {
        Ok(ShuffleRead { shuffle, reduce, aggregate, maps: maps(shuffle)? })
    };
    let input = match &task.source {
        Source::Text { dataset, split } => {
            let (uri, splits) =
                ctx.text.get(dataset).ok_or(LaunchError::MissingInput(*dataset, "text splits"))?;
            let s = splits.get(*split as usize).ok_or(LaunchError::MissingInput(*dataset, "such split"))?;
            let lines = match ctx.plan.get(*dataset).map(|d| &d.node) {
                Ok(Node::TextFile { lines, .. }) => *lines,
                _ => return Err(LaunchError::MissingInput(*dataset, "text file")),
            };
            TaskInput::Text(TextSplitRef {
                location: uri.clone(),
                object: s.path.to_string(),
                start: s.start,
                end: s.end,
                file_len: s.file_len,
                lines,
            })
        }
        Source::Parallelize { dataset, partition } => match ctx.plan.get(*dataset).map(|d| &d.node) {
            Ok(Node::Parallelize { partitions }) => {
                TaskInput::Records(partitions.get(*partition as usize).cloned().unwrap_or_default())
            }
            _ => return Err(LaunchError::MissingInput(*dataset, "parallelized records")),
        },
        Source::Shuffle { shuffle, reduce, aggregate } => {
            TaskInput::Shuffle(read(*shuffle, *reduce, *aggregate)?)
        }
        Source::Join { left, right, reduce } => TaskInput::Join {
            left: read(*left, *reduce, weft_core::task::Aggregate::Merge)?,
            right: read(*right, *reduce, weft_core::task::Aggregate::Merge)?,
        },
    };
    Ok(describe_work(
        ctx,
        key,
        TaskWork {
            input,
            chain: Arc::clone(&task.chain),
            input_keyed: task.input_keyed,
            output_keyed: task.output_keyed,
            output: output(ctx, stage)?,
            cache: task.cache.iter().map(|c| put(c, c.after)).collect(),
        },
    ))
}

/// Where a task of `stage` sends its output.
fn output(ctx: &JobContext, stage: &Stage) -> Result<TaskOutput, LaunchError> {
    Ok(match &stage.kind {
        StageKind::ShuffleMap { shuffle, partitions, partitioner, combiner } => {
            let partitioning = match partitioner {
                PartitionerSpec::Hash => Partitioning::Hash,
                PartitionerSpec::RangeFromSample { ascending, .. } if *partitions > 1 => {
                    let bounds =
                        ctx.range_bounds.get(shuffle).ok_or(LaunchError::MissingRangeBounds(*shuffle))?;
                    Partitioning::Range {
                        bounds: bounds.iter().map(|b| Bytes::from(b.clone())).collect(),
                        descending: !ascending,
                    }
                }
                // One partition holds every key: nothing to cut.
                PartitionerSpec::RangeFromSample { ascending, .. } => {
                    Partitioning::Range { bounds: Vec::new(), descending: !ascending }
                }
            };
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: *shuffle,
                partitions: *partitions,
                partitioning,
                combiner: combiner.clone(),
            })
        }
        StageKind::Result => match &ctx.sink {
            ResultSink::Records { limit } => TaskOutput::Records { limit: *limit },
            ResultSink::Count => TaskOutput::Count,
            ResultSink::KeySample(size) => TaskOutput::KeySample { size: *size },
            ResultSink::Text(location) => TaskOutput::Text { location: location.clone() },
        },
    })
}

/// The descriptor of attempt `key` running `work`.
fn describe_work(ctx: &JobContext, key: TaskKey, work: TaskWork) -> TaskDescriptor {
    TaskDescriptor {
        key,
        component: ctx.component,
        limits: ctx.limits.clone(),
        broadcasts: Arc::clone(&ctx.broadcasts),
        body: TaskBody::Work(Box::new(work)),
    }
}

#[cfg(test)]
mod tests;
