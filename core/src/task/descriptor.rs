//! [`TaskDescriptor`]: everything an agent needs to run one task attempt.
//!
//! The master builds descriptors, the wire carries them (converted to and from
//! proto in exactly one place, `crate::proto`), and the agent runs them. A
//! descriptor is self-contained and small: it names its input (a text split, a
//! parallelized partition, the map outputs of a reduce partition with the
//! peers holding them and their sizes), the chain of user functions, where the
//! output goes, and the limits.

use crate::artifact::Digest;
use crate::ids::ShuffleId;
use crate::limits::TaskLimits;
use crate::plan::Step;
use crate::task::TaskKey;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Bulk bytes of a job (a parallelized partition, a broadcast value, a
/// result): small ones inline, larger ones as a content-addressed block in the
/// master's artifact store, fetched (and verified) once per agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Data {
    /// The bytes themselves.
    Inline(Bytes),
    /// A block of the master's artifact store.
    Block {
        /// Its digest.
        digest: Digest,
        /// Its length.
        len: u64,
    },
}

impl Data {
    /// Bytes up to this size travel inline in control messages; larger ones
    /// as blocks.
    pub const INLINE_MAX: usize = 64 << 10;

    /// The number of bytes.
    pub fn len(&self) -> u64 {
        match self {
            Data::Inline(b) => b.len() as u64,
            Data::Block { len, .. } => *len,
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for Data {
    fn from(bytes: Vec<u8>) -> Self {
        Data::Inline(bytes.into())
    }
}

impl From<Bytes> for Data {
    fn from(bytes: Bytes) -> Self {
        Data::Inline(bytes)
    }
}

impl Default for Data {
    fn default() -> Self {
        Data::Inline(Bytes::new())
    }
}

/// One task attempt, as the master describes it to an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDescriptor {
    /// The attempt. Its job names the directory its shuffle files live in.
    pub key: TaskKey,
    /// The job's component.
    pub component: Digest,
    /// The attempt's budget.
    pub limits: TaskLimits,
    /// Broadcast values the guest may read, by id (shared by a job's tasks).
    pub broadcasts: Arc<BTreeMap<u64, Data>>,
    /// What it runs.
    pub body: TaskBody,
}

/// What a task attempt runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskBody {
    /// A chain of user functions over an input, into an output.
    Work(Box<TaskWork>),
    /// The job's `main`.
    Driver(DriverWork),
}

/// A job's driver: its `main`, with the job's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverWork {
    /// The job's arguments.
    pub args: Vec<String>,
    /// The driver's own wall-clock limit (the job's deadline), apart from the
    /// task deadline; `None` for none.
    pub deadline: Option<Duration>,
}

/// A task: input, chain, output.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskWork {
    /// Where its records come from.
    pub input: TaskInput,
    /// The narrow steps run over every batch, in order; shared by a stage's tasks.
    pub chain: Arc<[Step]>,
    /// Whether the input holds pairs.
    pub input_keyed: bool,
    /// Whether the chain's output holds pairs.
    pub output_keyed: bool,
    /// Where its output goes.
    pub output: TaskOutput,
    /// Persisted datasets the chain computes on its way, whose partitions
    /// the agent keeps.
    pub cache: Vec<CachePut>,
}

/// Keep the batches leaving the first `after` steps of a task's chain (0:
/// its input) as partition `partition` of persisted dataset `dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePut {
    /// The persisted dataset.
    pub dataset: crate::ids::DatasetId,
    /// Its partition.
    pub partition: u32,
    /// How many steps of the chain compute it.
    pub after: u32,
    /// Where to keep it.
    pub level: crate::plan::StorageLevel,
    /// Whether its records are pairs.
    pub keyed: bool,
}

/// A persisted partition of the task's job, as its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRead {
    /// The persisted dataset.
    pub dataset: crate::ids::DatasetId,
    /// Its partition.
    pub partition: u32,
    /// The block service of the agent keeping it; `None`: this agent.
    pub address: Option<String>,
}

/// A byte range of one text object, as planned by the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSplitRef {
    /// The dataset's location (a URI or an absolute path).
    pub location: String,
    /// The object inside it.
    pub object: String,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// The object's size when the split was planned.
    pub file_len: u64,
    /// Whether the lines are checked UTF-8 text or bytes.
    pub lines: crate::io::LineFormat,
}

/// Where a task's records come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskInput {
    /// The lines of a text split.
    Text(TextSplitRef),
    /// One partition of a parallelized dataset, as one batch.
    Records(Data),
    /// One reduce partition of a shuffle.
    Shuffle(ShuffleRead),
    /// One reduce partition of two shuffles, inner-joined on key bytes.
    Join {
        /// The left side.
        left: ShuffleRead,
        /// The right side.
        right: ShuffleRead,
    },
    /// A persisted partition.
    Cached(CachedRead),
}

/// One reduce partition of a shuffle. Where each map output's block lives is
/// in the shuffle's [`MapTable`](super::MapTable), which reaches the agent
/// before (or with) the first task that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleRead {
    /// The shuffle.
    pub shuffle: ShuffleId,
    /// The reduce partition.
    pub reduce: u32,
    /// What the host does with the merged pairs.
    pub aggregate: Aggregate,
    /// How many map outputs the shuffle has (checked against the table).
    pub maps: u32,
}

/// Host-side work on a reduce partition's merged, key-sorted pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The sorted pairs as they are (a guest reduce step may follow in the chain).
    Merge,
    /// One pair per key: the wrapping sum of its `i64` values.
    SumI64,
    /// One pair per key, its values framed as a list.
    Group,
    /// The pairs sorted by key bytes, in the given direction.
    Sorted {
        /// Ascending when true.
        ascending: bool,
    },
    /// One pair per key: its 8-byte values folded natively.
    Fold(crate::fold::Fold),
}

/// What a map task folds before writing its shuffle output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combiner {
    /// Nothing: every pair is written.
    None,
    /// Native wrapping `i64` sum, inside the shuffle writer.
    SumI64,
    /// The guest's reduce function of that name, run as the chain's last step.
    Guest(String),
    /// A native fold of 8-byte values, inside the shuffle writer.
    Fold(crate::fold::Fold),
}

/// How a map task assigns keys to reduce partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// `xxh3(key) % partitions`.
    Hash,
    /// Sorted inclusive upper bounds (a sort); descending numbers ranges from the top.
    Range {
        /// The bounds (fewer than the partitions).
        bounds: Vec<Bytes>,
        /// Descending order.
        descending: bool,
    },
}

/// A map task's shuffle output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShuffleWrite {
    /// The shuffle written.
    pub shuffle: ShuffleId,
    /// Reduce partitions.
    pub partitions: u32,
    /// How keys map to them.
    pub partitioning: Partitioning,
    /// Map-side combine.
    pub combiner: Combiner,
}

/// Where a task's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutput {
    /// Shuffle files for a child stage.
    Shuffle(ShuffleWrite),
    /// The records, back to the master (collect; take with a limit).
    Records {
        /// At most this many records.
        limit: Option<u64>,
    },
    /// The number of records.
    Count,
    /// Text lines under a location, committed atomically.
    Text {
        /// The output location.
        location: String,
    },
    /// A sample of up to `size` keys and the number of records (a sort's sample job).
    KeySample {
        /// Keys kept at most.
        size: u32,
    },
}
