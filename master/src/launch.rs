//! The master's edge to agents: a stage's [`TaskPlan`] becomes the proto
//! `TaskSpec` an agent runs. Nothing else in the master builds task messages.

use crate::dag::{Aggregate, CombinerSpec, PartitionerSpec, Source, Stage, StageKind, TaskPlan};
use std::collections::BTreeMap;
use weft_core::ids::{AgentId, DatasetId, ShuffleId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::plan::{Node, Plan};
use weft_core::proto::v1;
use weft_core::task::TaskKey;

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
    /// The action's job id (`job-N.<action>`): task keys carry it.
    pub job: String,
    /// The submitted job's id (`job-N`): its actions' shuffle files live under it,
    /// so a later action can read map outputs an earlier one wrote.
    pub scope: String,
    /// The component, `blake3:<hex>`.
    pub component: String,
    /// Where agents fetch it (the master's address).
    pub artifact_source: String,
    /// Per-task limits.
    pub limits: TaskLimits,
    /// Broadcast values, by id.
    pub broadcasts: Vec<Vec<u8>>,
    /// The plan the job computes.
    pub plan: Plan,
    /// The splits of each text dataset, with the URI they were planned from.
    pub text: BTreeMap<DatasetId, (String, Vec<TextSplit>)>,
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
    /// A sort into several partitions whose sample job has not run.
    #[error("the range bounds of {0} are not known (its sample job has not run)")]
    MissingRangeBounds(ShuffleId),
}

/// Describe one task attempt for its agent. `maps(shuffle)` gives the map
/// partitions of a shuffle with the address of the agent serving each.
pub fn task_spec(
    ctx: &JobContext,
    stage: &Stage,
    task: &TaskPlan,
    key: &TaskKey,
    maps: &dyn Fn(ShuffleId) -> Result<Vec<(u32, String)>, LaunchError>,
) -> Result<v1::TaskSpec, LaunchError> {
    let read =
        |shuffle: ShuffleId, reduce: u32, aggregate: v1::Aggregate| -> Result<v1::ShuffleRead, LaunchError> {
            let maps =
                maps(shuffle)?.into_iter().map(|(map, address)| v1::MapLocation { map, address }).collect();
            Ok(v1::ShuffleRead { shuffle: shuffle.0, reduce, aggregate: aggregate as i32, maps })
        };
    let source = match &task.source {
        Source::Text { dataset, split } => {
            let (uri, splits) =
                ctx.text.get(dataset).ok_or(LaunchError::MissingInput(*dataset, "text splits"))?;
            let s = splits.get(*split as usize).ok_or(LaunchError::MissingInput(*dataset, "such split"))?;
            v1::task_input::Source::Text(v1::TextSplit {
                location: uri.clone(),
                object: s.path.to_string(),
                start: s.start,
                end: s.end,
                file_len: s.file_len,
            })
        }
        Source::Parallelize { dataset, partition } => match ctx.plan.get(*dataset).map(|d| &d.node) {
            Ok(Node::Parallelize { partitions }) => v1::task_input::Source::Records(
                partitions.get(*partition as usize).cloned().unwrap_or_default().into(),
            ),
            _ => return Err(LaunchError::MissingInput(*dataset, "parallelized records")),
        },
        Source::Shuffle { shuffle, reduce, aggregate } => {
            let agg = match aggregate {
                Aggregate::Merge => v1::Aggregate::Merge,
                Aggregate::SumI64 => v1::Aggregate::SumI64,
                Aggregate::Group => v1::Aggregate::Group,
                Aggregate::Sorted { ascending: true } => v1::Aggregate::SortedAscending,
                Aggregate::Sorted { ascending: false } => v1::Aggregate::SortedDescending,
            };
            v1::task_input::Source::Shuffle(read(*shuffle, *reduce, agg)?)
        }
        Source::Join { left, right, reduce } => v1::task_input::Source::Join(v1::JoinRead {
            left: Some(read(*left, *reduce, v1::Aggregate::Merge)?),
            right: Some(read(*right, *reduce, v1::Aggregate::Merge)?),
        }),
    };
    let sink = match &stage.kind {
        StageKind::ShuffleMap { shuffle, partitions, partitioner, combiner } => {
            let (range_bounds, descending, ranged) = match partitioner {
                PartitionerSpec::Hash => (Vec::new(), false, false),
                PartitionerSpec::RangeFromSample { ascending, .. } if *partitions > 1 => {
                    let bounds =
                        ctx.range_bounds.get(shuffle).ok_or(LaunchError::MissingRangeBounds(*shuffle))?;
                    (bounds.iter().map(|b| b.clone().into()).collect(), !ascending, true)
                }
                // One partition holds every key: nothing to cut.
                PartitionerSpec::RangeFromSample { ascending, .. } => (Vec::new(), !ascending, false),
            };
            let combiner = match combiner {
                CombinerSpec::None => None,
                CombinerSpec::SumI64 => Some(v1::shuffle_write::Combiner::SumI64(true)),
                CombinerSpec::Guest(f) => Some(v1::shuffle_write::Combiner::Guest(f.clone())),
            };
            v1::task_output::Sink::Shuffle(v1::ShuffleWrite {
                shuffle: shuffle.0,
                partitions: *partitions,
                range_bounds,
                descending,
                combiner,
                ranged,
            })
        }
        StageKind::Result => match &ctx.sink {
            ResultSink::Records { limit } => {
                v1::task_output::Sink::Result(v1::ResultOutput { limit: limit.unwrap_or(0) })
            }
            ResultSink::Count => v1::task_output::Sink::Count(v1::CountOutput {}),
            ResultSink::KeySample(size) => v1::task_output::Sink::Sample(v1::KeySampleOutput { size: *size }),
            ResultSink::Text(location) => {
                v1::task_output::Sink::Text(v1::TextOutput { location: location.clone() })
            }
        },
    };
    Ok(v1::TaskSpec {
        task: Some(key.into()),
        component: ctx.component.clone(),
        artifact_source: ctx.artifact_source.clone(),
        limits: Some((&ctx.limits).into()),
        input: Some(v1::TaskInput { source: Some(source) }),
        chain: task.chain.iter().map(Into::into).collect(),
        input_keyed: task.input_keyed,
        output_keyed: task.output_keyed,
        output: Some(v1::TaskOutput { sink: Some(sink) }),
        broadcasts: ctx.broadcasts.iter().enumerate().map(|(i, b)| (i as u64, b.clone().into())).collect(),
        driver: None,
        shuffle_scope: ctx.scope.clone(),
    })
}

#[cfg(test)]
mod tests;
