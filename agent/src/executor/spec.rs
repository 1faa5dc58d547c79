//! [`TaskSpec`]: what one task attempt runs, in domain types.
//!
//! A spec is what the scheduler's `TaskPlan` becomes once it reaches an agent:
//! the input resolved to something readable (a text split with its location, a
//! parallelized batch, the block locations of a reduce partition), the chain of
//! narrow steps, and where the output goes. Protocol messages are converted to
//! a spec at the edge; nothing here knows about prost.

use crate::sandbox::{Chain, Op, OpKind, Prepared, TaskInfo};
use crate::shuffle::{BlockLocation, MapId, Partitioner, ShuffleId};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use weft_core::ids::StageId;
use weft_core::io::{DataLocation, LineFormat, OutputCommitter, TextSplit};
use weft_core::limits::TaskLimits;
use weft_core::plan::{Step, StepKind};
pub use weft_core::task::CachePut;

/// One task attempt, ready to run.
#[derive(Clone)]
pub struct TaskSpec {
    /// The job, as the master names it.
    pub job: String,
    /// The stage the task belongs to.
    pub stage: StageId,
    /// The partition it computes.
    pub partition: u32,
    /// Which attempt of that partition this is.
    pub attempt: u32,
    /// The job's component, loaded into the agent's sandbox.
    pub component: Arc<Prepared>,
    /// The attempt's budget (capped by the sandbox's maxima).
    pub limits: TaskLimits,
    /// Broadcast values the guest may read.
    pub broadcasts: Arc<BTreeMap<u64, bytes::Bytes>>,
    /// Where the records come from.
    pub input: Input,
    /// The narrow steps run over every batch, in order; empty passes batches through.
    pub chain: Vec<Step>,
    /// Whether the input holds pairs (two batch entries per record).
    pub input_keyed: bool,
    /// Whether the chain's output holds pairs (ignored for an empty chain,
    /// whose output is its input).
    pub output_keyed: bool,
    /// What happens to the chain's output.
    pub output: OutputSpec,
    /// Persisted datasets the chain computes on its way: their batches are
    /// kept and handed back with the outcome.
    pub cache: Vec<CachePut>,
}

impl std::fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpec")
            .field("job", &self.job)
            .field("stage", &self.stage)
            .field("partition", &self.partition)
            .field("attempt", &self.attempt)
            .field("input", &self.input)
            .field("chain", &self.chain)
            .field("output", &self.output)
            .finish_non_exhaustive()
    }
}

/// Where a task's records come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// The lines of one split of a text dataset (plain, or a whole `.gz` or
    /// `.zst` object), one record per line: `String` (checked UTF-8) or `Bytes`.
    Text {
        /// The dataset's location (its store).
        location: DataLocation,
        /// The byte range to read.
        split: TextSplit,
        /// Whether lines are checked UTF-8 text or bytes.
        lines: LineFormat,
    },
    /// One batch handed over whole (a partition of a parallelized dataset).
    Records(Vec<u8>),
    /// Batches handed over in order (a persisted partition).
    Batches(Vec<bytes::Bytes>),
    /// One reduce partition of a shuffle: every map task's block, merged by key
    /// and aggregated in the host.
    Shuffle {
        /// One block per map output, in map order.
        blocks: Vec<BlockLocation>,
        /// What the host does with the merged pairs.
        aggregate: Aggregate,
    },
    /// One reduce partition of two shuffles, inner-joined on key bytes: one
    /// pair per matching (left, right) combination, valued `(L, R)`.
    Join {
        /// The left shuffle's blocks.
        left: Vec<BlockLocation>,
        /// The right shuffle's blocks.
        right: Vec<BlockLocation>,
    },
}

/// Host-side work on a reduce partition's merged, key-sorted pairs: the
/// task descriptor's own type. Merge passes the sorted pairs on (a key's pairs
/// always arrive in one batch, so a guest `reduce` step heading the chain
/// folds each key once); descending order buffers the partition.
pub use weft_core::task::Aggregate;

/// What a task does with its chain's output.
#[derive(Clone)]
pub enum OutputSpec {
    /// Write shuffle output (a data file and an index) for a child stage.
    Shuffle {
        /// The directory holding this agent's map outputs.
        dir: PathBuf,
        /// The shuffle written.
        shuffle: ShuffleId,
        /// This map task.
        map: MapId,
        /// This attempt of it (the `#N` of its task key): the files are named by it.
        attempt: u32,
        /// How keys map to reduce partitions.
        partitioner: Partitioner,
        /// Map-side combine.
        combiner: MapCombine,
    },
    /// Return a uniform sample of the records' keys (up to `size`, one entry
    /// each) and how many records there were: a sort's range bounds come from
    /// these. The reservoir is seeded with `seed`, so a retry samples alike.
    KeySample {
        /// Keys kept at most.
        size: u32,
        /// The random seed (the partition).
        seed: u64,
    },
    /// Return the records to the driver as one batch (`collect`), stopping
    /// after `limit` records when one is given (`take`).
    Result {
        /// At most this many records.
        limit: Option<u64>,
    },
    /// Write `String` records as lines of one part file and commit it.
    Text {
        /// The job's output committer.
        committer: OutputCommitter,
        /// The part file's partition number.
        partition: u32,
        /// The attempt number the committer records.
        attempt: u32,
    },
    /// Count the records (`count`); nothing else leaves the task.
    Count,
}

impl std::fmt::Debug for OutputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Shuffle { dir, shuffle, map, attempt, partitioner, combiner } => f
                .debug_struct("Shuffle")
                .field("dir", dir)
                .field("shuffle", shuffle)
                .field("map", map)
                .field("attempt", attempt)
                .field("partitioner", partitioner)
                .field("combiner", combiner)
                .finish(),
            Self::KeySample { size, seed } => {
                f.debug_struct("KeySample").field("size", size).field("seed", seed).finish()
            }
            Self::Result { limit } => f.debug_struct("Result").field("limit", limit).finish(),
            Self::Text { committer, partition, attempt } => f
                .debug_struct("Text")
                .field("location", &committer.location().uri())
                .field("partition", partition)
                .field("attempt", attempt)
                .finish(),
            Self::Count => f.write_str("Count"),
        }
    }
}

/// How a map task folds equal keys before writing its shuffle output: the
/// task descriptor's [`Combiner`](weft_core::task::Combiner). A guest combine
/// runs as the chain's last step (see the [module docs](super#map-side-combine)).
pub use weft_core::task::Combiner as MapCombine;

/// Why a spec cannot run; checked before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// Shuffle output needs pairs.
    #[error("shuffle output needs a pair dataset, but the task's output holds plain records")]
    ShuffleOfPlainRecords,
    /// Text output needs plain `String` records.
    #[error("text output needs plain String records, but the task's output holds pairs")]
    TextOfPairs,
    /// A shuffle input always yields pairs.
    #[error("a shuffle or join input yields pairs, but the spec says its input is plain")]
    ShuffleInputNotKeyed,
    /// Keys can be sampled from pairs only.
    #[error("a key sample needs a pair dataset, but the task's output holds plain records")]
    SampleOfPlainRecords,
}

impl TaskSpec {
    /// Whether the records leaving the chain are pairs.
    pub fn produces_pairs(&self) -> bool {
        if self.chain.is_empty() { self.input_keyed } else { self.output_keyed }
    }

    /// Check that input, chain and output fit together.
    ///
    /// # Errors
    /// The first mismatch found.
    pub fn validate(&self) -> Result<(), SpecError> {
        if matches!(self.input, Input::Shuffle { .. } | Input::Join { .. }) && !self.input_keyed {
            return Err(SpecError::ShuffleInputNotKeyed);
        }
        match &self.output {
            OutputSpec::Shuffle { .. } if !self.produces_pairs() => Err(SpecError::ShuffleOfPlainRecords),
            OutputSpec::Text { .. } if self.produces_pairs() => Err(SpecError::TextOfPairs),
            OutputSpec::KeySample { .. } if !self.produces_pairs() => Err(SpecError::SampleOfPlainRecords),
            _ => Ok(()),
        }
    }

    /// The sandbox chain the steps describe, ending with the guest's
    /// map-side combine when there is one.
    pub(crate) fn sandbox_chain(&self) -> Chain {
        let mut ops: Vec<Op> = self.chain.iter().map(op).collect();
        if let OutputSpec::Shuffle { combiner: MapCombine::Guest(function), .. } = &self.output {
            ops.push(Op { kind: OpKind::Combine, function: function.clone(), param: None });
        }
        Chain { ops, input_keyed: self.input_keyed, output_keyed: self.produces_pairs() }
    }

    /// The sandbox chain cut where persisted datasets are computed: each
    /// segment's output batches are kept as the `tee`-th persisted partition
    /// when it has one (a segment without steps keeps its input). Without
    /// persisted datasets, one segment: the whole chain.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        let whole = self.sandbox_chain();
        let mut points: Vec<(usize, bool, usize)> = self
            .cache
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.after as usize).min(self.chain.len()), c.keyed, i))
            .collect();
        points.sort_unstable();
        let (mut segments, mut at, mut keyed) = (Vec::new(), 0, self.input_keyed);
        for (after, out_keyed, tee) in points {
            let ops = whole.ops[at..after].to_vec();
            segments.push(Segment {
                chain: Chain { ops, input_keyed: keyed, output_keyed: out_keyed },
                tee: Some(tee),
            });
            (at, keyed) = (after, out_keyed);
        }
        if at < whole.ops.len() || segments.is_empty() {
            let ops = whole.ops[at..].to_vec();
            segments.push(Segment {
                chain: Chain { ops, input_keyed: keyed, output_keyed: whole.output_keyed },
                tee: None,
            });
        }
        segments
    }

    /// Where the attempt sits in its job, for the guest's `context` import.
    pub(crate) fn task_info(&self) -> TaskInfo {
        TaskInfo {
            job_id: self.job.clone(),
            stage_id: self.stage.0,
            partition: self.partition,
            attempt: self.attempt,
        }
    }
}

/// A run of the chain, and the persisted partition its output is kept as.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Its steps (none: the batches pass through).
    pub chain: Chain,
    /// The index in [`TaskSpec::cache`] of the partition its output is.
    pub tee: Option<usize>,
}

/// The sandbox op for a plan step.
pub(crate) fn op(step: &Step) -> Op {
    let kind = match step.kind {
        StepKind::Map => OpKind::Map,
        StepKind::Filter => OpKind::Filter,
        StepKind::FlatMap => OpKind::FlatMap,
        StepKind::MapBatch => OpKind::MapBatch,
        StepKind::Reduce => OpKind::Reduce,
    };
    Op { kind, function: step.function.clone(), param: step.param }
}
