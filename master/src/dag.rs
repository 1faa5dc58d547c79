//! Cutting a dataset's lineage into stages.
//!
//! An action on a dataset starts a job. [`build`] walks the dataset's lineage
//! back from the action:
//!
//! - **Narrow** steps (map, filter, flat_map, map_batch) are *pipelined*: they
//!   join the chain of the task that computes their parent's partition, so a
//!   stage runs its whole chain in one sandbox instance, batch by batch.
//! - **Union** concatenates its inputs' partitions; each keeps its own chain.
//! - **Wide** dependencies (shuffles, joins) *cut* the lineage: the parent's
//!   partitions become a shuffle-map stage whose tasks partition (and, where
//!   the operation allows, combine) their output by key; the child reads one
//!   reduce partition per task from every map output.
//!
//! The result is a [`JobGraph`]: stages in an order where every stage comes
//! after the stages it reads from, the result stage last. A shuffle reachable
//! along several paths (a diamond) becomes one map stage. Shuffle ids derive
//! from dataset ids, so a later job over the same datasets can reuse map
//! outputs that are still available, as Spark skips stages.
//!
//! **Persisted** datasets do not cut the lineage: a task whose chain computes
//! one carries a *cache point* for it (keep the batches leaving that many
//! steps as the dataset's partition) and may read it instead: at launch, the
//! scheduler looks for the deepest persisted partition along the task's
//! lineage that an agent keeps, and if there is one, the task reads it and
//! runs only the rest of its chain. A stage whose tasks can all read kept
//! partitions is cut from its parents when the action starts
//! ([`JobRun::cut_at_kept`](crate::job::JobRun::cut_at_kept); see
//! `docs/architecture.md`, "Caching").
//!
//! Text inputs are split by the caller (it needs I/O); `build` only needs how
//! many splits each text dataset has.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_core::ids::{DatasetId, ShuffleId, StageId};
use weft_core::plan::{Node, Plan, PlanError, ShuffleKind, Step, StepKind, StorageLevel};
pub use weft_core::task::{Aggregate, Combiner as CombinerSpec};

/// A chain of narrow steps, shared by the tasks that run it.
type Chain = Arc<[Step]>;

/// Where a task's input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Split `split` of text dataset `dataset`.
    Text {
        /// The text dataset.
        dataset: DatasetId,
        /// Which of its splits.
        split: u32,
    },
    /// Partition `partition` of a parallelized dataset.
    Parallelize {
        /// The dataset.
        dataset: DatasetId,
        /// Which partition.
        partition: u32,
    },
    /// Reduce partition `reduce` of a shuffle, merged by key and aggregated.
    Shuffle {
        /// The shuffle read.
        shuffle: ShuffleId,
        /// The reduce partition.
        reduce: u32,
        /// What the host does with the merged pairs before the chain.
        aggregate: Aggregate,
    },
    /// Reduce partition `reduce` of two shuffles, inner-joined on key bytes.
    Join {
        /// Left side.
        left: ShuffleId,
        /// Right side.
        right: ShuffleId,
        /// The reduce partition.
        reduce: u32,
    },
}

/// How map tasks assign keys to reduce partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionerSpec {
    /// Hash of the key bytes.
    Hash,
    /// Key ranges from a sample of the keys (for total order).
    RangeFromSample {
        /// Ascending when true.
        ascending: bool,
        /// The dataset whose keys are sampled: the sort's parent.
        sample: DatasetId,
    },
}

/// A persisted dataset's partition along a task's lineage: computed by the
/// first `after` steps of the task's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePoint {
    /// The persisted dataset.
    pub dataset: DatasetId,
    /// Its partition.
    pub partition: u32,
    /// How many steps of the task's chain compute it (0: the source).
    pub after: u32,
    /// Where agents keep it.
    pub level: StorageLevel,
    /// Whether its records are pairs.
    pub keyed: bool,
}

/// One task of a stage: where its input comes from and the chain it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskPlan {
    /// The partition it computes.
    pub partition: u32,
    /// Its input.
    pub source: Source,
    /// The narrow steps, run in one sandbox call per batch (shared by the
    /// tasks of a stage that run the same chain).
    pub chain: Arc<[Step]>,
    /// Whether the source yields pairs.
    pub input_keyed: bool,
    /// Whether the chain yields pairs.
    pub output_keyed: bool,
    /// The persisted datasets its chain computes, shallowest first: where
    /// one's partition is kept, the task may read it instead of computing
    /// it, and must keep it when it computes it.
    pub cache: Vec<CachePoint>,
}

/// What a stage's tasks do with their output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Write shuffle output for a child stage.
    ShuffleMap {
        /// The shuffle written.
        shuffle: ShuffleId,
        /// Reduce partitions.
        partitions: u32,
        /// How keys map to them.
        partitioner: PartitionerSpec,
        /// Map-side combine.
        combiner: CombinerSpec,
    },
    /// Feed the job's action.
    Result,
}

/// A set of tasks with the same shape, run once their parents finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    /// Its id within the job.
    pub id: StageId,
    /// What its tasks produce.
    pub kind: StageKind,
    /// One per partition.
    pub tasks: Vec<TaskPlan>,
    /// The stages whose shuffle output it reads.
    pub parents: Vec<StageId>,
}

/// A job's stages, every stage after its parents, the result stage last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobGraph {
    /// The stages.
    pub stages: Vec<Stage>,
}

impl JobGraph {
    /// The final stage, whose tasks feed the action.
    pub fn result_stage(&self) -> Option<&Stage> {
        self.stages.last()
    }
}

/// Why a job graph cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// The plan refers to a dataset it does not hold.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A text dataset whose splits the caller did not provide.
    #[error("text dataset {0} has not been split into partitions")]
    Unsplit(DatasetId),
}

/// Build the job graph computing `target`. `text_splits` gives the number of
/// splits of every text dataset in its lineage.
pub fn build(
    plan: &Plan,
    target: DatasetId,
    text_splits: &BTreeMap<DatasetId, u32>,
) -> Result<JobGraph, DagError> {
    let mut b = Builder { plan, text_splits, stages: Vec::new(), map_stages: BTreeMap::new() };
    let (tasks, parents) = b.partitions(target)?;
    let id = StageId(b.stages.len() as u32);
    b.stages.push(Stage { id, kind: StageKind::Result, tasks, parents });
    Ok(JobGraph { stages: b.stages })
}

struct Builder<'a> {
    plan: &'a Plan,
    text_splits: &'a BTreeMap<DatasetId, u32>,
    stages: Vec<Stage>,
    map_stages: BTreeMap<ShuffleId, StageId>,
}

impl Builder<'_> {
    /// The tasks computing `ds`'s partitions, and the map stages they read.
    fn partitions(&mut self, ds: DatasetId) -> Result<(Vec<TaskPlan>, Vec<StageId>), DagError> {
        let dataset = self.plan.get(ds)?;
        let keyed = dataset.keyed;
        let no_steps: Arc<[Step]> = Arc::from(Vec::new());
        let leaf = |partition: u32, source: Source, input_keyed: bool| TaskPlan {
            partition,
            source,
            chain: Arc::clone(&no_steps),
            input_keyed,
            output_keyed: input_keyed,
            cache: Vec::new(),
        };
        let (mut tasks, parents) = match &dataset.node {
            Node::TextFile { .. } => {
                let n = *self.text_splits.get(&ds).ok_or(DagError::Unsplit(ds))?;
                ((0..n).map(|i| leaf(i, Source::Text { dataset: ds, split: i }, false)).collect(), vec![])
            }
            Node::Parallelize { partitions } => {
                let n = partitions.len() as u32;
                (
                    (0..n)
                        .map(|i| leaf(i, Source::Parallelize { dataset: ds, partition: i }, keyed))
                        .collect(),
                    vec![],
                )
            }
            Node::Narrow { parent, step } => {
                let (mut tasks, parents) = self.partitions(*parent)?;
                // Tasks that shared a chain share the longer one too.
                let mut last: Option<(Chain, Chain)> = None;
                for t in &mut tasks {
                    let longer = match &last {
                        Some((old, new)) if Arc::ptr_eq(old, &t.chain) => Arc::clone(new),
                        _ => {
                            let new: Arc<[Step]> =
                                t.chain.iter().cloned().chain(std::iter::once(step.clone())).collect();
                            last = Some((Arc::clone(&t.chain), Arc::clone(&new)));
                            new
                        }
                    };
                    t.chain = longer;
                    t.output_keyed = keyed;
                }
                (tasks, parents)
            }
            Node::Union { a, b } => {
                let (mut tasks, mut parents) = self.partitions(*a)?;
                let (more, more_parents) = self.partitions(*b)?;
                let offset = tasks.len() as u32;
                tasks.extend(more.into_iter().map(|t| TaskPlan { partition: t.partition + offset, ..t }));
                for p in more_parents {
                    if !parents.contains(&p) {
                        parents.push(p);
                    }
                }
                (tasks, parents)
            }
            Node::Shuffle { parent, kind, partitions } => {
                let shuffle = ShuffleId(ds.0 * 2);
                let (partitioner, combiner, aggregate, reduce_step) = match kind {
                    ShuffleKind::ReduceByKey { function } => (
                        PartitionerSpec::Hash,
                        CombinerSpec::Guest(function.clone()),
                        Aggregate::Merge,
                        Some(Step::new(StepKind::Reduce, function.clone())),
                    ),
                    ShuffleKind::SumByKey => {
                        (PartitionerSpec::Hash, CombinerSpec::SumI64, Aggregate::SumI64, None)
                    }
                    ShuffleKind::GroupByKey => {
                        (PartitionerSpec::Hash, CombinerSpec::None, Aggregate::Group, None)
                    }
                    ShuffleKind::SortByKey { ascending } => (
                        PartitionerSpec::RangeFromSample { ascending: *ascending, sample: *parent },
                        CombinerSpec::None,
                        Aggregate::Sorted { ascending: *ascending },
                        None,
                    ),
                    ShuffleKind::PartitionBy => {
                        (PartitionerSpec::Hash, CombinerSpec::None, Aggregate::Merge, None)
                    }
                    ShuffleKind::FoldByKey { fold } => {
                        (PartitionerSpec::Hash, CombinerSpec::Fold(*fold), Aggregate::Fold(*fold), None)
                    }
                };
                let partitions = match *partitions {
                    0 => self.partition_count(*parent)?,
                    n => n,
                };
                let stage = self.map_stage(*parent, shuffle, partitions, partitioner, combiner)?;
                let chain: Arc<[Step]> = reduce_step.into_iter().collect();
                let tasks = (0..partitions)
                    .map(|reduce| TaskPlan {
                        partition: reduce,
                        source: Source::Shuffle { shuffle, reduce, aggregate },
                        chain: Arc::clone(&chain),
                        input_keyed: true,
                        output_keyed: true,
                        cache: Vec::new(),
                    })
                    .collect();
                (tasks, vec![stage])
            }
            Node::Join { left, right, partitions } => {
                let (l, r) = (ShuffleId(ds.0 * 2), ShuffleId(ds.0 * 2 + 1));
                let partitions = match *partitions {
                    0 => self.partition_count(*left)?.max(self.partition_count(*right)?),
                    n => n,
                };
                let ls = self.map_stage(*left, l, partitions, PartitionerSpec::Hash, CombinerSpec::None)?;
                let rs = self.map_stage(*right, r, partitions, PartitionerSpec::Hash, CombinerSpec::None)?;
                let tasks = (0..partitions)
                    .map(|reduce| leaf(reduce, Source::Join { left: l, right: r, reduce }, true))
                    .collect();
                (tasks, if ls == rs { vec![ls] } else { vec![ls, rs] })
            }
        };
        if let Some(level) = dataset.persist {
            for t in &mut tasks {
                let after = t.chain.len() as u32;
                t.cache.push(CachePoint { dataset: ds, partition: t.partition, after, level, keyed });
            }
        }
        Ok((tasks, parents))
    }

    /// How many partitions `ds` has, without building stages.
    fn partition_count(&self, ds: DatasetId) -> Result<u32, DagError> {
        Ok(match &self.plan.get(ds)?.node {
            Node::TextFile { .. } => *self.text_splits.get(&ds).ok_or(DagError::Unsplit(ds))?,
            Node::Parallelize { partitions } => partitions.len() as u32,
            Node::Narrow { parent, .. } => self.partition_count(*parent)?,
            Node::Union { a, b } => self.partition_count(*a)? + self.partition_count(*b)?,
            Node::Shuffle { parent, partitions, .. } => match *partitions {
                0 => self.partition_count(*parent)?,
                n => n,
            },
            Node::Join { left, right, partitions } => match *partitions {
                0 => self.partition_count(*left)?.max(self.partition_count(*right)?),
                n => n,
            },
        })
    }

    /// The map stage writing `shuffle` from `parent`'s partitions, made once.
    fn map_stage(
        &mut self,
        parent: DatasetId,
        shuffle: ShuffleId,
        partitions: u32,
        partitioner: PartitionerSpec,
        combiner: CombinerSpec,
    ) -> Result<StageId, DagError> {
        if let Some(id) = self.map_stages.get(&shuffle) {
            return Ok(*id);
        }
        let (tasks, parents) = self.partitions(parent)?;
        let id = StageId(self.stages.len() as u32);
        self.stages.push(Stage {
            id,
            kind: StageKind::ShuffleMap { shuffle, partitions, partitioner, combiner },
            tasks,
            parents,
        });
        self.map_stages.insert(shuffle, id);
        Ok(id)
    }
}

#[cfg(test)]
mod tests;
