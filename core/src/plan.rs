//! The logical plan a driver builds: datasets with lineage.
//!
//! Each driver import (`text-file`, `narrow`, `shuffle`, `join`, `union`,
//! `cache`) adds one [`Node`] to the job's [`Plan`] and returns its
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
}

/// One dataset of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// Lines of text files.
    TextFile {
        /// Where the text is.
        uri: String,
        /// At least this many partitions.
        min_partitions: u32,
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

/// A dataset: its node, whether it holds pairs, whether to cache it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dataset {
    /// How it is computed.
    pub node: Node,
    /// Whether its records are (key, value) pairs.
    pub keyed: bool,
    /// Whether its partitions are kept once computed.
    pub cached: bool,
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

    fn keyed(&self, id: DatasetId, operation: &'static str) -> Result<(), PlanError> {
        match self.get(id)?.keyed {
            true => Ok(()),
            false => Err(PlanError::NotKeyed { operation, dataset: id }),
        }
    }

    /// Add a node; `keyed` says whether a narrow step's output holds pairs (the
    /// SDK knows from the function's type). Other nodes' keyedness follows from the node.
    pub fn add(&mut self, node: Node, keyed: bool) -> Result<DatasetId, PlanError> {
        let keyed = match &node {
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
                let parent_keyed = self.get(*parent)?.keyed;
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
                self.keyed(*parent, shuffle_name(kind))?;
                true
            }
            Node::Join { left, right, .. } => {
                self.keyed(*left, "join")?;
                self.keyed(*right, "join")?;
                true
            }
            Node::Union { a, b } => {
                let (ka, kb) = (self.get(*a)?.keyed, self.get(*b)?.keyed);
                if ka != kb {
                    return Err(PlanError::MixedUnion { a: *a, b: *b });
                }
                ka
            }
        };
        let id = DatasetId(self.datasets.len() as u32);
        self.datasets.push(Dataset { node, keyed, cached: false });
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

    /// Mark a dataset to be cached.
    pub fn cache(&mut self, id: DatasetId) -> Result<(), PlanError> {
        self.get(id)?;
        self.datasets[id.0 as usize].cached = true;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: StepKind, f: &str) -> Step {
        Step { kind, function: f.into() }
    }

    #[test]
    fn keyedness_follows_the_steps() {
        let mut p = Plan::new();
        let lines = p.add(Node::TextFile { uri: "in".into(), min_partitions: 2 }, false).unwrap();
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
        let a = p.add(Node::TextFile { uri: "a".into(), min_partitions: 1 }, false).unwrap();
        let unrelated = p.add(Node::TextFile { uri: "b".into(), min_partitions: 1 }, false).unwrap();
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
        let lines = p.add(Node::TextFile { uri: "in".into(), min_partitions: 1 }, false).unwrap();
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
        assert!(p.cache(DatasetId(42)).is_err());
    }
}
