//! The logical plan a driver builds: datasets with lineage.
//!
//! Each driver import (`text-file`, `narrow`, `shuffle`, `join`, `union`)
//! adds one [`Node`] to the job's [`Plan`] and returns its
//! [`DatasetId`]. Nothing runs until an action; the master's DAG scheduler then
//! cuts the lineage of the action's dataset into stages at wide dependencies.
//! The plan checks what it can when a node is added (parents exist, shuffles
//! and joins get pair datasets, unions join like with like), so a driver error
//! surfaces at the call that caused it.

use crate::ids::DatasetId;
use serde::{Deserialize, Serialize};

/// How one narrow step applies its user function (mirrors the WIT `op-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// One record in, one out.
    Map,
    /// One record in, kept or dropped.
    Filter,
    /// One record in, zero or more out.
    FlatMap,
    /// A whole batch in, a whole batch out.
    MapBatch,
    /// Sorted pairs in; equal keys folded with the function.
    Reduce,
}

/// One narrow step: a user function and how to apply it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// How the function is applied.
    pub kind: StepKind,
    /// The exported user function's name.
    pub function: String,
    /// The value bound to the function as its parameter
    /// (`points.map(gradient.with(&w))`): the id of one of the job's
    /// broadcast values, which the guest decodes once per task instance.
    #[serde(default)]
    pub param: Option<u64>,
}

impl Step {
    /// A step applying `function` as `kind`, with no parameter.
    pub fn new(kind: StepKind, function: impl Into<String>) -> Self {
        Step { kind, function: function.into(), param: None }
    }
}

/// A wide (shuffle) transformation of a pair dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShuffleKind {
    /// Fold values of equal keys with the named guest reduce function (combined map-side too).
    ReduceByKey {
        /// The reduce function.
        function: String,
    },
    /// Sum s64 values of equal keys natively in the host.
    SumByKey,
    /// All values of each key, as one framed list.
    GroupByKey,
    /// Total order by key bytes.
    SortByKey {
        /// Ascending when true.
        ascending: bool,
    },
    /// Redistribute by key hash.
    PartitionBy,
    /// Fold the 8-byte (`i64` or `f64`) values of equal keys natively in
    /// the host (combined map-side too).
    FoldByKey {
        /// The fold.
        fold: crate::fold::Fold,
    },
}

/// One dataset of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Lines of text files (plain, `.gz` or `.zst`).
    TextFile {
        /// Where the text is.
        uri: String,
        /// At least this many partitions.
        min_partitions: u32,
        /// Whether the lines are checked UTF-8 text (`text_file`) or bytes
        /// (`text_file_bytes`).
        #[serde(default)]
        lines: crate::io::LineFormat,
    },
    /// Records the driver holds: one batch per partition (inline, or a block
    /// of the master's artifact store).
    Parallelize {
        /// The partitions' batches.
        partitions: Vec<crate::task::Data>,
    },
    /// A narrow step over a parent.
    Narrow {
        /// The parent dataset.
        parent: DatasetId,
        /// The step.
        step: Step,
    },
    /// A wide step over a pair parent.
    Shuffle {
        /// The parent dataset (pairs).
        parent: DatasetId,
        /// What the shuffle does.
        kind: ShuffleKind,
        /// Output partitions; 0 keeps the parent's count.
        partitions: u32,
    },
    /// Inner join of two pair datasets on key bytes.
    Join {
        /// Left side.
        left: DatasetId,
        /// Right side.
        right: DatasetId,
        /// Output partitions; 0 takes the larger side's count.
        partitions: u32,
    },
    /// The partitions of `a`, then those of `b`.
    Union {
        /// First input.
        a: DatasetId,
        /// Second input.
        b: DatasetId,
    },
}

/// Where an agent keeps a persisted dataset's computed partitions (Spark's
/// `StorageLevel`, without replication or serialisation choices: weft keeps
/// partitions as the batches the host already holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageLevel {
    /// In memory; a partition that does not fit, or is evicted, is
    /// recomputed from lineage when next needed (what `cache()` asks for).
    MemoryOnly,
    /// In memory while it fits; evicted or oversized partitions go to disk.
    MemoryAndDisk,
    /// On disk only.
    DiskOnly,
}

impl StorageLevel {
    /// Whether partitions may live on disk.
    pub fn uses_disk(self) -> bool {
        !matches!(self, StorageLevel::MemoryOnly)
    }

    /// Whether partitions may live in memory.
    pub fn uses_memory(self) -> bool {
        !matches!(self, StorageLevel::DiskOnly)
    }
}

/// A dataset: its node, whether it holds pairs, whether and where to keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// How it is computed.
    pub node: Node,
    /// Whether its records are (key, value) pairs.
    pub keyed: bool,
    /// Where its partitions are kept once computed; `None`: not kept.
    pub persist: Option<StorageLevel>,
}

/// Why a node cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A parent id that this plan never returned.
    #[error("unknown dataset {0}: use a dataset handle from this job's driver")]
    UnknownDataset(DatasetId),
    /// A shuffle or join over a dataset that is not pairs.
    #[error(
        "{operation} needs a pair dataset, but {dataset} holds plain records: map to (key, value) pairs first"
    )]
    NotKeyed {
        /// The operation.
        operation: &'static str,
        /// The offending dataset.
        dataset: DatasetId,
    },
    /// A union of a pair dataset and a plain one.
    #[error("union of {a} and {b}: one holds pairs and the other plain records")]
    MixedUnion {
        /// First input.
        a: DatasetId,
        /// Second input.
        b: DatasetId,
    },
    /// Zero partitions asked for where no default exists.
    #[error("{0} needs at least one partition")]
    NoPartitions(&'static str),
    /// An empty function name.
    #[error("a {0:?} step needs a user function name")]
    NoFunction(StepKind),
    /// A step whose parameter names a broadcast value the job does not have.
    #[error(
        "`{function}` is bound to broadcast value {param}, but the job has only {held}: bind values made in this driver"
    )]
    UnknownParam {
        /// The step's function.
        function: String,
        /// The broadcast id it names.
        param: u64,
        /// How many broadcast values the job has.
        held: u64,
    },
    /// A driver's new datasets do not start where the master's plan ends.
    #[error("the driver's new datasets start at {driver}, but the master holds {master}: plans out of step")]
    OutOfStep {
        /// Where the driver's start.
        driver: u32,
        /// How many the master holds.
        master: u32,
    },
}

/// A driver run's datasets, indexed by [`DatasetId`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    datasets: Vec<Dataset>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// The dataset `id`.
    pub fn get(&self, id: DatasetId) -> Result<&Dataset, PlanError> {
        self.datasets.get(id.0 as usize).ok_or(PlanError::UnknownDataset(id))
    }

    /// How many datasets the plan holds.
    pub fn len(&self) -> usize {
        self.datasets.len()
    }

    /// Whether the plan is empty.
    pub fn is_empty(&self) -> bool {
        self.datasets.is_empty()
    }

    /// Add a node; `keyed` says whether a narrow step's output holds pairs (the
    /// SDK knows from the function's type). Other nodes' keyedness follows from the node.
    pub fn add(&mut self, node: Node, keyed: bool) -> Result<DatasetId, PlanError> {
        let keyed = checked(&node, keyed, |id| Ok(self.get(id)?.keyed))?;
        let id = DatasetId(self.datasets.len() as u32);
        self.datasets.push(Dataset { node, keyed, persist: None });
        Ok(id)
    }

    /// `target` and every dataset it is computed from, in id order.
    pub fn lineage(&self, target: DatasetId) -> Result<Vec<DatasetId>, PlanError> {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![target];
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            match &self.get(id)?.node {
                Node::TextFile { .. } | Node::Parallelize { .. } => {}
                Node::Narrow { parent, .. } | Node::Shuffle { parent, .. } => todo.push(*parent),
                Node::Join { left: a, right: b, .. } | Node::Union { a, b } => todo.extend([*a, *b]),
            }
        }
        Ok(seen.into_iter().collect())
    }

    /// Keep a dataset's partitions at `level` once computed (`None`: stop
    /// keeping them).
    pub fn persist(&mut self, id: DatasetId, level: Option<StorageLevel>) -> Result<(), PlanError> {
        self.get(id)?;
        self.datasets[id.0 as usize].persist = level;
        Ok(())
    }
}

impl Node {
    /// A [`Node::TextFile`] of UTF-8 lines (what `text_file` adds).
    pub fn text_file(uri: impl Into<String>, min_partitions: u32) -> Self {
        Node::TextFile { uri: uri.into(), min_partitions, lines: crate::io::LineFormat::Utf8 }
    }
}

/// Check `node` against the datasets it reads (`keyed_of` says whether one
/// holds pairs, or that it does not exist); whether the new dataset holds pairs.
fn checked(
    node: &Node,
    keyed: bool,
    keyed_of: impl Fn(DatasetId) -> Result<bool, PlanError>,
) -> Result<bool, PlanError> {
    let pairs = |id: DatasetId, operation: &'static str| match keyed_of(id)? {
        true => Ok(()),
        false => Err(PlanError::NotKeyed { operation, dataset: id }),
    };
    Ok(match node {
        Node::TextFile { min_partitions, .. } => {
            if *min_partitions == 0 {
                return Err(PlanError::NoPartitions("text_file"));
            }
            false
        }
        Node::Parallelize { partitions } => {
            if partitions.is_empty() {
                return Err(PlanError::NoPartitions("parallelize"));
            }
            keyed
        }
        Node::Narrow { parent, step } => {
            let parent_keyed = keyed_of(*parent)?;
            if step.function.is_empty() {
                return Err(PlanError::NoFunction(step.kind));
            }
            if step.kind == StepKind::Reduce && !parent_keyed {
                return Err(PlanError::NotKeyed { operation: "reduce", dataset: *parent });
            }
            match step.kind {
                StepKind::Filter | StepKind::Reduce => parent_keyed,
                _ => keyed,
            }
        }
        Node::Shuffle { parent, kind, .. } => {
            pairs(*parent, shuffle_name(kind))?;
            true
        }
        Node::Join { left, right, .. } => {
            pairs(*left, "join")?;
            pairs(*right, "join")?;
            true
        }
        Node::Union { a, b } => {
            let (ka, kb) = (keyed_of(*a)?, keyed_of(*b)?);
            if ka != kb {
                return Err(PlanError::MixedUnion { a: *a, b: *b });
            }
            ka
        }
    })
}

/// What a driver keeps of its plan while the master owns it: whether each
/// dataset holds pairs, enough to check every new node at the call that makes
/// it, and the nodes, persist marks and broadcasts the master has not seen
/// yet, which travel with the next action.
#[derive(Debug, Clone, Default)]
pub struct PlanDraft {
    keyed: Vec<bool>,
    /// Datasets the master has (ids below this).
    sent: u32,
    pending: Vec<(Node, bool)>,
    cached: Vec<(DatasetId, Option<StorageLevel>)>,
    /// Broadcast values the master has (ids below this).
    broadcasts_sent: u64,
    broadcasts: Vec<crate::task::Data>,
}

/// The part of a plan a driver has not sent yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanDelta {
    /// The id of the first new dataset (the master's plan must hold exactly
    /// this many datasets).
    pub first: u32,
    /// The new datasets, in id order, each with whether it holds pairs.
    pub nodes: Vec<(Node, bool)>,
    /// Datasets newly persisted (or, with `None`, unpersisted), in call order.
    pub cached: Vec<(DatasetId, Option<StorageLevel>)>,
    /// The id of the first new broadcast value.
    pub first_broadcast: u64,
    /// New broadcast values, in id order.
    pub broadcasts: Vec<crate::task::Data>,
}

impl PlanDraft {
    /// An empty draft.
    pub fn new() -> Self {
        Self::default()
    }

    /// Check and add a node; its id.
    ///
    /// # Errors
    /// As [`Plan::add`].
    pub fn add(&mut self, node: Node, keyed: bool) -> Result<DatasetId, PlanError> {
        let pairs = checked(&node, keyed, |id| self.keyed(id))?;
        if let Node::Narrow { step: Step { function, param: Some(param), .. }, .. } = &node {
            let held = self.broadcasts_sent + self.broadcasts.len() as u64;
            if *param >= held {
                return Err(PlanError::UnknownParam { function: function.clone(), param: *param, held });
            }
        }
        let id = DatasetId(self.keyed.len() as u32);
        self.keyed.push(pairs);
        // As given: the master checks the node again itself.
        self.pending.push((node, keyed));
        Ok(id)
    }

    /// Whether dataset `id` holds pairs.
    ///
    /// # Errors
    /// [`PlanError::UnknownDataset`] for an id this driver never made.
    pub fn keyed(&self, id: DatasetId) -> Result<bool, PlanError> {
        self.keyed.get(id.0 as usize).copied().ok_or(PlanError::UnknownDataset(id))
    }

    /// Keep a dataset's partitions at `level` (`None`: unpersist it).
    ///
    /// # Errors
    /// [`PlanError::UnknownDataset`] for an id this driver never made.
    pub fn persist(&mut self, id: DatasetId, level: Option<StorageLevel>) -> Result<(), PlanError> {
        self.keyed(id)?;
        self.cached.push((id, level));
        Ok(())
    }

    /// Add a broadcast value; its id (ids count from 0 in call order).
    pub fn broadcast(&mut self, value: crate::task::Data) -> u64 {
        self.broadcasts.push(value);
        self.broadcasts_sent + self.broadcasts.len() as u64 - 1
    }

    /// What the master has not seen yet; call [`sent`](Self::sent) once it has.
    pub fn delta(&self) -> PlanDelta {
        PlanDelta {
            first: self.sent,
            nodes: self.pending.clone(),
            cached: self.cached.clone(),
            first_broadcast: self.broadcasts_sent,
            broadcasts: self.broadcasts.clone(),
        }
    }

    /// The master took the last [`delta`](Self::delta).
    pub fn sent(&mut self) {
        self.sent += self.pending.len() as u32;
        self.broadcasts_sent += self.broadcasts.len() as u64;
        self.pending.clear();
        self.cached.clear();
        self.broadcasts.clear();
    }
}

impl Plan {
    /// Apply a driver's [`PlanDelta`] (its datasets and cache marks; its
    /// broadcast values are the caller's to keep).
    ///
    /// # Errors
    /// A delta that does not start where this plan ends, or a node the plan refuses.
    pub fn apply(&mut self, delta: &PlanDelta) -> Result<(), PlanError> {
        // A delta resent after an action the master did not answer may
        // repeat datasets the master already holds: they must be the same.
        if delta.first as usize > self.datasets.len() {
            return Err(PlanError::OutOfStep { driver: delta.first, master: self.datasets.len() as u32 });
        }
        for (i, (node, keyed)) in delta.nodes.iter().cloned().enumerate() {
            let id = delta.first as usize + i;
            match self.datasets.get(id) {
                Some(d) if d.node == node => {}
                Some(_) => {
                    return Err(PlanError::OutOfStep {
                        driver: delta.first,
                        master: self.datasets.len() as u32,
                    });
                }
                None => {
                    self.add(node, keyed)?;
                }
            }
        }
        for (id, level) in &delta.cached {
            self.persist(*id, *level)?;
        }
        Ok(())
    }
}

fn shuffle_name(kind: &ShuffleKind) -> &'static str {
    match kind {
        ShuffleKind::ReduceByKey { .. } => "reduce_by_key",
        ShuffleKind::SumByKey => "sum_by_key",
        ShuffleKind::GroupByKey => "group_by_key",
        ShuffleKind::SortByKey { .. } => "sort_by_key",
        ShuffleKind::PartitionBy => "partition_by",
        ShuffleKind::FoldByKey { fold } => fold.name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: StepKind, f: &str) -> Step {
        Step::new(kind, f)
    }

    #[test]
    fn keyedness_follows_the_steps() {
        let mut p = Plan::new();
        let lines = p.add(Node::text_file("in", 2), false).unwrap();
        let pairs = p.add(Node::Narrow { parent: lines, step: step(StepKind::Map, "one") }, true).unwrap();
        let kept = p.add(Node::Narrow { parent: pairs, step: step(StepKind::Filter, "f") }, false).unwrap();
        assert!(p.get(kept).unwrap().keyed, "a filter keeps its parent's shape");
        let counts =
            p.add(Node::Shuffle { parent: kept, kind: ShuffleKind::SumByKey, partitions: 4 }, false).unwrap();
        assert!(p.get(counts).unwrap().keyed);
    }

    #[test]
    fn lineage_follows_parents_only() {
        let mut p = Plan::new();
        let a = p.add(Node::text_file("a", 1), false).unwrap();
        let unrelated = p.add(Node::text_file("b", 1), false).unwrap();
        let c = p.add(Node::Parallelize { partitions: vec![Default::default()] }, false).unwrap();
        let u = p.add(Node::Union { a, b: c }, false).unwrap();
        let m = p.add(Node::Narrow { parent: u, step: step(StepKind::Map, "f") }, false).unwrap();
        assert_eq!(p.lineage(m).unwrap(), [a, c, u, m]);
        assert!(!p.lineage(m).unwrap().contains(&unrelated));
        assert_eq!(p.lineage(DatasetId(99)), Err(PlanError::UnknownDataset(DatasetId(99))));
    }

    #[test]
    fn shuffles_need_pairs_and_name_the_fix() {
        let mut p = Plan::new();
        let lines = p.add(Node::text_file("in", 1), false).unwrap();
        let err = p.add(Node::Shuffle { parent: lines, kind: ShuffleKind::GroupByKey, partitions: 2 }, true);
        let err = err.unwrap_err();
        assert_eq!(err, PlanError::NotKeyed { operation: "group_by_key", dataset: lines });
        assert!(err.to_string().contains("map to (key, value) pairs first"));
    }

    #[test]
    fn unknown_parents_mixed_unions_and_zero_partitions_are_refused() {
        let mut p = Plan::new();
        assert_eq!(
            p.add(Node::Narrow { parent: DatasetId(9), step: step(StepKind::Map, "f") }, false),
            Err(PlanError::UnknownDataset(DatasetId(9)))
        );
        let a = p.add(Node::Parallelize { partitions: vec![Default::default()] }, false).unwrap();
        let b = p.add(Node::Parallelize { partitions: vec![Default::default()] }, true).unwrap();
        assert_eq!(p.add(Node::Union { a, b }, false), Err(PlanError::MixedUnion { a, b }));
        assert_eq!(
            p.add(Node::Parallelize { partitions: vec![] }, false),
            Err(PlanError::NoPartitions("parallelize"))
        );
        assert!(p.persist(DatasetId(42), Some(StorageLevel::MemoryOnly)).is_err());
    }

    #[test]
    fn a_draft_checks_like_a_plan_and_sends_only_what_is_new() {
        let mut draft = PlanDraft::new();
        let mut master = Plan::new();
        let lines = draft.add(Node::text_file("in", 1), false).unwrap();
        let err =
            draft.add(Node::Shuffle { parent: lines, kind: ShuffleKind::GroupByKey, partitions: 1 }, true);
        assert_eq!(
            err,
            Err(PlanError::NotKeyed { operation: "group_by_key", dataset: lines }),
            "as a plan would"
        );
        let pairs =
            draft.add(Node::Narrow { parent: lines, step: step(StepKind::Map, "one") }, true).unwrap();
        draft.persist(pairs, Some(StorageLevel::DiskOnly)).unwrap();
        let first = draft.delta();
        let marks = [(pairs, Some(StorageLevel::DiskOnly))];
        assert_eq!((first.first, first.nodes.len(), first.cached.as_slice()), (0, 2, &marks[..]));
        master.apply(&first).unwrap();
        draft.sent();
        let kept = master.get(pairs).unwrap();
        assert_eq!((kept.persist, kept.keyed), (Some(StorageLevel::DiskOnly), true));
        let counts = draft
            .add(Node::Shuffle { parent: pairs, kind: ShuffleKind::SumByKey, partitions: 2 }, true)
            .unwrap();
        let second = draft.delta();
        assert_eq!((second.first, second.nodes.len()), (2, 1), "only the new dataset travels");
        master.apply(&first).unwrap();
        assert_eq!(master.len(), 2, "a resent delta adds nothing twice");
        let mut other = draft.delta();
        other.nodes[0].0 = Node::text_file("elsewhere", 1);
        other.first = 1;
        assert_eq!(
            master.apply(&other),
            Err(PlanError::OutOfStep { driver: 1, master: 2 }),
            "a different past"
        );
        master.apply(&second).unwrap();
        assert_eq!(master.len(), 3);
        assert!(master.get(counts).unwrap().keyed);
    }

    #[test]
    fn a_bound_parameter_must_name_a_broadcast_value_of_the_job() {
        let mut draft = PlanDraft::new();
        let lines = draft.add(Node::text_file("in", 1), false).unwrap();
        let bound = |param| Node::Narrow {
            parent: lines,
            step: Step { param: Some(param), ..step(StepKind::Map, "scale") },
        };
        assert_eq!(
            draft.add(bound(0), false),
            Err(PlanError::UnknownParam { function: "scale".into(), param: 0, held: 0 })
        );
        assert_eq!(draft.broadcast(crate::task::Data::from(b"w".to_vec())), 0);
        let scaled = draft.add(bound(0), false).unwrap();
        draft.sent();
        assert_eq!(draft.broadcast(crate::task::Data::from(b"v".to_vec())), 1, "ids go on across actions");
        assert!(draft.add(bound(1), false).is_ok());
        assert!(matches!(draft.add(bound(2), false), Err(PlanError::UnknownParam { held: 2, .. })));
        assert_eq!(scaled, DatasetId(1));
    }
}
