//! A driver's plan delta (its new datasets, cache marks and broadcast
//! values) to and from its proto message.

use super::ProtoError;
use super::v1::{self, plan_node};
use crate::fold::Fold;
use crate::ids::DatasetId;
use crate::io::LineFormat;
use crate::plan::{Node, PlanDelta, ShuffleKind, Step, StorageLevel};
use crate::task::Data;

/// A storage level (`None`: not persisted) as its proto enum.
pub(super) fn level_to_proto(level: Option<StorageLevel>) -> v1::StorageLevel {
    match level {
        None => v1::StorageLevel::None,
        Some(StorageLevel::MemoryOnly) => v1::StorageLevel::MemoryOnly,
        Some(StorageLevel::MemoryAndDisk) => v1::StorageLevel::MemoryAndDisk,
        Some(StorageLevel::DiskOnly) => v1::StorageLevel::DiskOnly,
    }
}

/// A proto storage level (`NONE`: not persisted).
pub(super) fn level_from_proto(level: i32) -> Result<Option<StorageLevel>, ProtoError> {
    Ok(match v1::StorageLevel::try_from(level) {
        Ok(v1::StorageLevel::None) => None,
        Ok(v1::StorageLevel::MemoryOnly) => Some(StorageLevel::MemoryOnly),
        Ok(v1::StorageLevel::MemoryAndDisk) => Some(StorageLevel::MemoryAndDisk),
        Ok(v1::StorageLevel::DiskOnly) => Some(StorageLevel::DiskOnly),
        Err(_) => return Err(ProtoError::UnknownEnum { field: "storage level", value: level }),
    })
}

/// The line format a proto's `bytes` flag stands for.
pub(super) fn lines(bytes: bool) -> LineFormat {
    if bytes { LineFormat::Bytes } else { LineFormat::Utf8 }
}

fn node_to_proto(node: &Node, keyed: bool) -> plan_node::Node {
    use plan_node::Node as P;
    match node {
        Node::TextFile { uri, min_partitions, lines } => P::TextFile(v1::TextFileNode {
            uri: uri.clone(),
            min_partitions: *min_partitions,
            bytes: *lines == LineFormat::Bytes,
        }),
        Node::Parallelize { partitions } => P::Parallelize(v1::ParallelizeNode {
            partitions: partitions.iter().map(Into::into).collect(),
            keyed,
        }),
        Node::Narrow { parent, step } => {
            P::Narrow(v1::NarrowNode { parent: parent.0, step: Some(step.into()), keyed })
        }
        Node::Shuffle { parent, kind, partitions } => {
            let (kind, function) = match kind {
                ShuffleKind::ReduceByKey { function } => (v1::ShuffleKind::ReduceByKey, function.clone()),
                ShuffleKind::SumByKey => (v1::ShuffleKind::SumByKey, String::new()),
                ShuffleKind::GroupByKey => (v1::ShuffleKind::GroupByKey, String::new()),
                ShuffleKind::SortByKey { ascending: true } => (v1::ShuffleKind::SortAscending, String::new()),
                ShuffleKind::SortByKey { ascending: false } => {
                    (v1::ShuffleKind::SortDescending, String::new())
                }
                ShuffleKind::PartitionBy => (v1::ShuffleKind::PartitionBy, String::new()),
                ShuffleKind::FoldByKey { fold } => {
                    let kind = match fold {
                        Fold::SumF64 => v1::ShuffleKind::SumF64ByKey,
                        Fold::Min => v1::ShuffleKind::MinByKey,
                        Fold::Max => v1::ShuffleKind::MaxByKey,
                    };
                    (kind, String::new())
                }
            };
            P::Shuffle(v1::ShuffleNode {
                parent: parent.0,
                kind: kind as i32,
                function,
                partitions: *partitions,
            })
        }
        Node::Join { left, right, partitions } => {
            P::Join(v1::JoinNode { left: left.0, right: right.0, partitions: *partitions })
        }
        Node::Union { a, b } => P::Union(v1::UnionNode { a: a.0, b: b.0 }),
    }
}

fn node_from_proto(node: plan_node::Node) -> Result<(Node, bool), ProtoError> {
    use plan_node::Node as P;
    Ok(match node {
        P::TextFile(t) => {
            (Node::TextFile { uri: t.uri, min_partitions: t.min_partitions, lines: lines(t.bytes) }, false)
        }
        P::Parallelize(p) => (
            Node::Parallelize {
                partitions: p.partitions.into_iter().map(Data::try_from).collect::<Result<_, _>>()?,
            },
            p.keyed,
        ),
        P::Narrow(n) => {
            let step =
                Step::try_from(&n.step.ok_or(ProtoError::Missing { message: "NarrowNode", field: "step" })?)?;
            (Node::Narrow { parent: DatasetId(n.parent), step }, n.keyed)
        }
        P::Shuffle(s) => {
            let kind = match v1::ShuffleKind::try_from(s.kind) {
                Ok(v1::ShuffleKind::ReduceByKey) => ShuffleKind::ReduceByKey { function: s.function },
                Ok(v1::ShuffleKind::SumByKey) => ShuffleKind::SumByKey,
                Ok(v1::ShuffleKind::GroupByKey) => ShuffleKind::GroupByKey,
                Ok(v1::ShuffleKind::SortAscending) => ShuffleKind::SortByKey { ascending: true },
                Ok(v1::ShuffleKind::SortDescending) => ShuffleKind::SortByKey { ascending: false },
                Ok(v1::ShuffleKind::PartitionBy) => ShuffleKind::PartitionBy,
                Ok(v1::ShuffleKind::SumF64ByKey) => ShuffleKind::FoldByKey { fold: Fold::SumF64 },
                Ok(v1::ShuffleKind::MinByKey) => ShuffleKind::FoldByKey { fold: Fold::Min },
                Ok(v1::ShuffleKind::MaxByKey) => ShuffleKind::FoldByKey { fold: Fold::Max },
                Ok(v1::ShuffleKind::Unspecified) | Err(_) => {
                    return Err(ProtoError::UnknownEnum { field: "shuffle.kind", value: s.kind });
                }
            };
            (Node::Shuffle { parent: DatasetId(s.parent), kind, partitions: s.partitions }, true)
        }
        P::Join(j) => (
            Node::Join { left: DatasetId(j.left), right: DatasetId(j.right), partitions: j.partitions },
            true,
        ),
        P::Union(u) => (Node::Union { a: DatasetId(u.a), b: DatasetId(u.b) }, false),
    })
}

impl From<&PlanDelta> for v1::PlanDelta {
    fn from(d: &PlanDelta) -> Self {
        v1::PlanDelta {
            first: d.first,
            nodes: d
                .nodes
                .iter()
                .map(|(node, keyed)| v1::PlanNode { node: Some(node_to_proto(node, *keyed)) })
                .collect(),
            persisted: d
                .cached
                .iter()
                .map(|(id, level)| v1::Persist { dataset: id.0, level: level_to_proto(*level) as i32 })
                .collect(),
            first_broadcast: d.first_broadcast,
            broadcasts: d.broadcasts.iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<v1::PlanDelta> for PlanDelta {
    type Error = ProtoError;

    fn try_from(d: v1::PlanDelta) -> Result<Self, ProtoError> {
        Ok(PlanDelta {
            first: d.first,
            nodes: d
                .nodes
                .into_iter()
                .map(|n| {
                    node_from_proto(n.node.ok_or(ProtoError::Missing { message: "PlanNode", field: "node" })?)
                })
                .collect::<Result<_, _>>()?,
            cached: d
                .persisted
                .iter()
                .map(|p| Ok((DatasetId(p.dataset), level_from_proto(p.level)?)))
                .collect::<Result<_, ProtoError>>()?,
            first_broadcast: d.first_broadcast,
            broadcasts: d.broadcasts.into_iter().map(Data::try_from).collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanDraft, StepKind};

    #[test]
    fn every_node_kind_round_trips_in_a_delta() {
        let mut draft = PlanDraft::new();
        let lines = draft
            .add(
                Node::TextFile { uri: "s3://b/in".into(), min_partitions: 3, lines: LineFormat::Bytes },
                false,
            )
            .unwrap();
        let xs = draft.add(Node::Parallelize { partitions: vec![Data::from(vec![1, 2])] }, true).unwrap();
        let step = Step::new(StepKind::Map, "one");
        let pairs = draft.add(Node::Narrow { parent: lines, step }, true).unwrap();
        let both = draft.add(Node::Union { a: pairs, b: xs }, false).unwrap();
        for kind in [
            ShuffleKind::ReduceByKey { function: "add".into() },
            ShuffleKind::SumByKey,
            ShuffleKind::GroupByKey,
            ShuffleKind::SortByKey { ascending: true },
            ShuffleKind::SortByKey { ascending: false },
            ShuffleKind::PartitionBy,
            ShuffleKind::FoldByKey { fold: Fold::SumF64 },
            ShuffleKind::FoldByKey { fold: Fold::Min },
            ShuffleKind::FoldByKey { fold: Fold::Max },
        ] {
            draft.add(Node::Shuffle { parent: both, kind, partitions: 2 }, true).unwrap();
        }
        draft.add(Node::Join { left: pairs, right: xs, partitions: 0 }, true).unwrap();
        for level in [StorageLevel::MemoryOnly, StorageLevel::MemoryAndDisk, StorageLevel::DiskOnly] {
            draft.persist(pairs, Some(level)).unwrap();
        }
        draft.persist(xs, None).unwrap();
        assert_eq!(draft.broadcast(Data::from(b"v".to_vec())), 0);
        let delta = draft.delta();
        assert_eq!(PlanDelta::try_from(v1::PlanDelta::from(&delta)).unwrap(), delta);
        let bad = v1::PlanDelta { nodes: vec![v1::PlanNode { node: None }], ..Default::default() };
        assert!(PlanDelta::try_from(bad).is_err());
    }
}
