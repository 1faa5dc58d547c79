//! [`TaskDescriptor`] to and from its proto message: the only place a task's
//! description crosses the wire.

use super::ProtoError;
use super::v1::{self, shuffle_write, task_descriptor, task_input, task_output};
use crate::fold::Fold;
use crate::ids::{ActionId, ShuffleId};
use crate::io::LineFormat;
use crate::limits::TaskLimits;
use crate::plan::Step;
use crate::task::{
    Aggregate, BlockSizes, CachePut, CachedRead, Combiner, Data, DriverWork, MapStatus, MapTable,
    Partitioning, ShuffleRead, ShuffleWrite, TaskBody, TaskDescriptor, TaskInput, TaskKey, TaskOutput,
    TaskWork, TextSplitRef,
};
use std::sync::Arc;
use std::time::Duration;

fn missing(message: &'static str, field: &'static str) -> ProtoError {
    ProtoError::Missing { message, field }
}

impl From<&TaskDescriptor> for v1::TaskDescriptor {
    fn from(d: &TaskDescriptor) -> Self {
        let body = match &d.body {
            TaskBody::Work(w) => task_descriptor::Body::Work(work_to_proto(w)),
            TaskBody::Driver(drv) => task_descriptor::Body::Driver(v1::DriverWork {
                args: drv.args.clone(),
                deadline_ms: drv.deadline.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }),
        };
        v1::TaskDescriptor {
            task: Some((&d.key).into()),
            component: d.component.to_string(),
            limits: Some((&d.limits).into()),
            broadcasts: d.broadcasts.iter().map(|(id, b)| (*id, b.into())).collect(),
            body: Some(body),
        }
    }
}

/// Why a descriptor does not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// A field is missing or holds an unknown value.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The component is not `blake3:<hex>`.
    #[error("bad component digest `{0}`")]
    Digest(String),
}

impl TryFrom<v1::TaskDescriptor> for TaskDescriptor {
    type Error = DescriptorError;

    fn try_from(d: v1::TaskDescriptor) -> Result<Self, DescriptorError> {
        let key = TaskKey::try_from(d.task.as_ref().ok_or(missing("TaskDescriptor", "task"))?)?;
        let component = d.component.parse().map_err(|_| DescriptorError::Digest(d.component.clone()))?;
        let body = match d.body.ok_or(missing("TaskDescriptor", "body"))? {
            task_descriptor::Body::Work(w) => TaskBody::Work(Box::new(work_from_proto(w)?)),
            task_descriptor::Body::Driver(drv) => TaskBody::Driver(DriverWork {
                args: drv.args,
                deadline: (drv.deadline_ms > 0).then(|| Duration::from_millis(drv.deadline_ms)),
            }),
        };
        Ok(TaskDescriptor {
            key,
            component,
            limits: limits(d.limits.as_ref()),
            broadcasts: std::sync::Arc::new(
                d.broadcasts
                    .into_iter()
                    .map(|(id, b)| Ok((id, Data::try_from(b)?)))
                    .collect::<Result<_, ProtoError>>()?,
            ),
            body,
        })
    }
}

/// The attempt's limits; a missing message or a zero field takes the default
/// (proto3 cannot tell "unset" from 0, and no limit is meaningfully 0).
fn limits(l: Option<&v1::TaskLimits>) -> TaskLimits {
    let d = TaskLimits::default();
    let Some(l) = l else { return d };
    let given = TaskLimits::from(l);
    TaskLimits {
        fuel: if l.fuel == 0 { d.fuel } else { given.fuel },
        memory: if l.memory_bytes == 0 { d.memory } else { given.memory },
        deadline: if l.deadline_ms == 0 { d.deadline } else { given.deadline },
        log: if l.log_bytes == 0 { d.log } else { given.log },
        output_per_call: if l.output_per_call_bytes == 0 { d.output_per_call } else { given.output_per_call },
        slots: if l.slots == 0 { d.slots } else { given.slots },
    }
}

fn work_to_proto(w: &TaskWork) -> v1::TaskWork {
    let input = match &w.input {
        TaskInput::Text(t) => task_input::Source::Text(v1::TextSplit {
            location: t.location.clone(),
            object: t.object.clone(),
            start: t.start,
            end: t.end,
            file_len: t.file_len,
            bytes: t.lines == LineFormat::Bytes,
        }),
        TaskInput::Records(r) => task_input::Source::Records(r.into()),
        TaskInput::Shuffle(r) => task_input::Source::Shuffle(read_to_proto(r)),
        TaskInput::Join { left, right } => task_input::Source::Join(v1::JoinRead {
            left: Some(read_to_proto(left)),
            right: Some(read_to_proto(right)),
        }),
        TaskInput::Cached(c) => task_input::Source::Cached(v1::CachedRead {
            dataset: c.dataset.0,
            partition: c.partition,
            address: c.address.clone(),
        }),
    };
    let sink = match &w.output {
        TaskOutput::Shuffle(s) => {
            let (range_bounds, descending, ranged) = match &s.partitioning {
                Partitioning::Hash => (Vec::new(), false, false),
                Partitioning::Range { bounds, descending } => (bounds.clone(), *descending, true),
            };
            let combiner = match &s.combiner {
                Combiner::None => None,
                Combiner::SumI64 => Some(shuffle_write::Combiner::SumI64(true)),
                Combiner::Guest(f) => Some(shuffle_write::Combiner::Guest(f.clone())),
                Combiner::Fold(fold) => Some(shuffle_write::Combiner::Fold(fold_to_proto(*fold) as i32)),
            };
            task_output::Sink::Shuffle(v1::ShuffleWrite {
                shuffle: s.shuffle.0,
                partitions: s.partitions,
                range_bounds,
                descending,
                combiner,
                ranged,
            })
        }
        TaskOutput::Records { limit } => {
            task_output::Sink::Result(v1::ResultOutput { limit: limit.unwrap_or(0) })
        }
        TaskOutput::Count => task_output::Sink::Count(v1::CountOutput {}),
        TaskOutput::Text { location } => {
            task_output::Sink::Text(v1::TextOutput { location: location.clone() })
        }
        TaskOutput::KeySample { size } => task_output::Sink::Sample(v1::KeySampleOutput { size: *size }),
    };
    v1::TaskWork {
        input: Some(v1::TaskInput { source: Some(input) }),
        chain: w.chain.iter().map(Into::into).collect(),
        input_keyed: w.input_keyed,
        output_keyed: w.output_keyed,
        output: Some(v1::TaskOutput { sink: Some(sink) }),
        cache: w
            .cache
            .iter()
            .map(|c| v1::CachePut {
                dataset: c.dataset.0,
                partition: c.partition,
                after: c.after,
                level: super::plan::level_to_proto(Some(c.level)) as i32,
                keyed: c.keyed,
            })
            .collect(),
    }
}

fn work_from_proto(w: v1::TaskWork) -> Result<TaskWork, ProtoError> {
    let input = match w.input.and_then(|i| i.source).ok_or(missing("TaskWork", "input"))? {
        task_input::Source::Text(t) => TaskInput::Text(TextSplitRef {
            location: t.location,
            object: t.object,
            start: t.start,
            end: t.end,
            file_len: t.file_len,
            lines: super::plan::lines(t.bytes),
        }),
        task_input::Source::Records(r) => TaskInput::Records(Data::try_from(r)?),
        task_input::Source::Shuffle(r) => TaskInput::Shuffle(read_from_proto(r)?),
        task_input::Source::Join(j) => TaskInput::Join {
            left: read_from_proto(j.left.ok_or(missing("JoinRead", "left"))?)?,
            right: read_from_proto(j.right.ok_or(missing("JoinRead", "right"))?)?,
        },
        task_input::Source::Cached(c) => TaskInput::Cached(CachedRead {
            dataset: crate::ids::DatasetId(c.dataset),
            partition: c.partition,
            address: c.address,
        }),
    };
    let output = match w.output.and_then(|o| o.sink).ok_or(missing("TaskWork", "output"))? {
        task_output::Sink::Shuffle(s) => {
            let partitioning = if s.ranged || !s.range_bounds.is_empty() {
                Partitioning::Range { bounds: s.range_bounds, descending: s.descending }
            } else {
                Partitioning::Hash
            };
            let combiner = match s.combiner {
                None | Some(shuffle_write::Combiner::SumI64(false)) => Combiner::None,
                Some(shuffle_write::Combiner::SumI64(true)) => Combiner::SumI64,
                Some(shuffle_write::Combiner::Guest(f)) => Combiner::Guest(f),
                Some(shuffle_write::Combiner::Fold(fold)) => Combiner::Fold(fold_from_proto(fold)?),
            };
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: ShuffleId(s.shuffle),
                partitions: s.partitions,
                partitioning,
                combiner,
            })
        }
        task_output::Sink::Result(r) => TaskOutput::Records { limit: (r.limit > 0).then_some(r.limit) },
        task_output::Sink::Count(_) => TaskOutput::Count,
        task_output::Sink::Text(t) => TaskOutput::Text { location: t.location },
        task_output::Sink::Sample(s) => TaskOutput::KeySample { size: s.size },
    };
    Ok(TaskWork {
        input,
        chain: w.chain.iter().map(Step::try_from).collect::<Result<Vec<_>, _>>()?.into(),
        input_keyed: w.input_keyed,
        output_keyed: w.output_keyed,
        output,
        cache: w
            .cache
            .iter()
            .map(|c| {
                let level = super::plan::level_from_proto(c.level)?.ok_or(missing("CachePut", "level"))?;
                Ok(CachePut {
                    dataset: crate::ids::DatasetId(c.dataset),
                    partition: c.partition,
                    after: c.after,
                    level,
                    keyed: c.keyed,
                })
            })
            .collect::<Result<_, ProtoError>>()?,
    })
}

fn aggregate_to_proto(a: Aggregate) -> v1::Aggregate {
    match a {
        Aggregate::Merge => v1::Aggregate::Merge,
        Aggregate::SumI64 => v1::Aggregate::SumI64,
        Aggregate::Group => v1::Aggregate::Group,
        Aggregate::Sorted { ascending: true } => v1::Aggregate::SortedAscending,
        Aggregate::Sorted { ascending: false } => v1::Aggregate::SortedDescending,
        Aggregate::Fold(Fold::SumF64) => v1::Aggregate::SumF64,
        Aggregate::Fold(Fold::Min) => v1::Aggregate::Min,
        Aggregate::Fold(Fold::Max) => v1::Aggregate::Max,
    }
}

fn fold_to_proto(fold: Fold) -> v1::Fold {
    match fold {
        Fold::SumF64 => v1::Fold::SumF64,
        Fold::Min => v1::Fold::Min,
        Fold::Max => v1::Fold::Max,
    }
}

fn fold_from_proto(value: i32) -> Result<Fold, ProtoError> {
    match v1::Fold::try_from(value) {
        Ok(v1::Fold::SumF64) => Ok(Fold::SumF64),
        Ok(v1::Fold::Min) => Ok(Fold::Min),
        Ok(v1::Fold::Max) => Ok(Fold::Max),
        Ok(v1::Fold::Unspecified) | Err(_) => Err(ProtoError::UnknownEnum { field: "shuffle.fold", value }),
    }
}

fn read_to_proto(r: &ShuffleRead) -> v1::ShuffleRead {
    v1::ShuffleRead {
        shuffle: r.shuffle.0,
        reduce: r.reduce,
        aggregate: aggregate_to_proto(r.aggregate) as i32,
        maps: r.maps,
    }
}

fn read_from_proto(r: v1::ShuffleRead) -> Result<ShuffleRead, ProtoError> {
    let aggregate = match v1::Aggregate::try_from(r.aggregate) {
        Ok(v1::Aggregate::Merge) => Aggregate::Merge,
        Ok(v1::Aggregate::SumI64) => Aggregate::SumI64,
        Ok(v1::Aggregate::Group) => Aggregate::Group,
        Ok(v1::Aggregate::SortedAscending) => Aggregate::Sorted { ascending: true },
        Ok(v1::Aggregate::SortedDescending) => Aggregate::Sorted { ascending: false },
        Ok(v1::Aggregate::SumF64) => Aggregate::Fold(Fold::SumF64),
        Ok(v1::Aggregate::Min) => Aggregate::Fold(Fold::Min),
        Ok(v1::Aggregate::Max) => Aggregate::Fold(Fold::Max),
        Ok(v1::Aggregate::Unspecified) | Err(_) => {
            return Err(ProtoError::UnknownEnum { field: "aggregate", value: r.aggregate });
        }
    };
    Ok(ShuffleRead { shuffle: ShuffleId(r.shuffle), reduce: r.reduce, aggregate, maps: r.maps })
}

impl From<&MapTable> for v1::MapTable {
    fn from(t: &MapTable) -> Self {
        v1::MapTable {
            action: Some(t.action.into()),
            shuffle: t.shuffle.0,
            addresses: t.addresses.iter().map(|a| a.to_string()).collect(),
            maps: t
                .maps
                .iter()
                .map(|m| v1::MapStatus {
                    address: m.address,
                    attempt: m.attempt,
                    mean: m.sizes.mean,
                    exact: m
                        .sizes
                        .exact
                        .iter()
                        .map(|&(reduce, bytes)| v1::ExactSize { reduce, bytes })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl TryFrom<v1::MapTable> for MapTable {
    type Error = ProtoError;

    /// Checked so that a reader can trust it: every map names an address the
    /// table has, and large blocks are listed once each, by partition.
    fn try_from(t: v1::MapTable) -> Result<Self, ProtoError> {
        let action = ActionId::try_from(t.action.as_ref().ok_or(missing("MapTable", "action"))?)?;
        let inconsistent = |reason: String| ProtoError::Inconsistent { message: "MapTable", reason };
        let addresses: Vec<Arc<str>> = t.addresses.into_iter().map(Arc::from).collect();
        let mut maps = Vec::with_capacity(t.maps.len());
        for (i, m) in t.maps.into_iter().enumerate() {
            if m.address as usize >= addresses.len() {
                return Err(inconsistent(format!(
                    "map {i} names address {} of {}",
                    m.address,
                    addresses.len()
                )));
            }
            let exact: Vec<(u32, u64)> = m.exact.into_iter().map(|e| (e.reduce, e.bytes)).collect();
            if exact.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err(inconsistent(format!("map {i} lists its large blocks out of order")));
            }
            maps.push(MapStatus {
                address: m.address,
                attempt: m.attempt,
                sizes: BlockSizes { mean: m.mean, exact },
            });
        }
        Ok(MapTable { action, shuffle: ShuffleId(t.shuffle), addresses, maps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::Digest;
    use crate::ids::{ActionId, Incarnation, JobId, StageId};
    use crate::plan::StepKind;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn key() -> TaskKey {
        let job = JobId { incarnation: Incarnation(9), seq: 1 };
        TaskKey { action: ActionId { job, seq: 2 }, stage: StageId(1), partition: 4, attempt: 0 }
    }

    fn descriptor(input: TaskInput, output: TaskOutput) -> TaskDescriptor {
        TaskDescriptor {
            key: key(),
            component: Digest::of(b"component"),
            limits: TaskLimits::default().with_fuel(77),
            broadcasts: Arc::new(BTreeMap::from([
                (0, Data::Inline(bytes::Bytes::from_static(b"b0"))),
                (1, Data::Block { digest: Digest::of(b"big"), len: 3 }),
            ])),
            body: TaskBody::Work(Box::new(TaskWork {
                input,
                chain: vec![Step::new(StepKind::FlatMap, "split")].into(),
                input_keyed: false,
                output_keyed: true,
                output,
                cache: vec![CachePut {
                    dataset: crate::ids::DatasetId(2),
                    partition: 4,
                    after: 1,
                    level: crate::plan::StorageLevel::MemoryAndDisk,
                    keyed: true,
                }],
            })),
        }
    }

    fn round_trip(d: &TaskDescriptor) -> TaskDescriptor {
        TaskDescriptor::try_from(v1::TaskDescriptor::from(d)).unwrap()
    }

    #[test]
    fn every_input_and_output_round_trips() {
        let read = |shuffle| ShuffleRead {
            shuffle: ShuffleId(shuffle),
            reduce: 3,
            aggregate: Aggregate::Sorted { ascending: false },
            maps: 7,
        };
        let inputs = [
            TaskInput::Text(TextSplitRef {
                location: "s3://b/p".into(),
                object: "p/a.txt".into(),
                start: 1,
                end: 2,
                file_len: 3,
                lines: LineFormat::Bytes,
            }),
            TaskInput::Records(Data::Inline(bytes::Bytes::from_static(b"\x01\0\0\0x"))),
            TaskInput::Records(Data::Block { digest: Digest::of(b"partition"), len: 9 }),
            TaskInput::Shuffle(read(1)),
            TaskInput::Join { left: read(1), right: read(2) },
            TaskInput::Cached(CachedRead { dataset: crate::ids::DatasetId(2), partition: 4, address: None }),
            TaskInput::Cached(CachedRead {
                dataset: crate::ids::DatasetId(2),
                partition: 4,
                address: Some("127.0.0.1:9".into()),
            }),
        ];
        let inputs: Vec<TaskInput> =
            inputs
                .into_iter()
                .chain([Fold::SumF64, Fold::Min, Fold::Max].map(|fold| {
                    TaskInput::Shuffle(ShuffleRead { aggregate: Aggregate::Fold(fold), ..read(3) })
                }))
                .collect();
        let outputs = [
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: ShuffleId(5),
                partitions: 4,
                partitioning: Partitioning::Range { bounds: vec!["m".into()], descending: true },
                combiner: Combiner::Guest("add".into()),
            }),
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: ShuffleId(5),
                partitions: 4,
                partitioning: Partitioning::Range { bounds: vec![], descending: false },
                combiner: Combiner::SumI64,
            }),
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: ShuffleId(5),
                partitions: 4,
                partitioning: Partitioning::Hash,
                combiner: Combiner::None,
            }),
            TaskOutput::Shuffle(ShuffleWrite {
                shuffle: ShuffleId(5),
                partitions: 4,
                partitioning: Partitioning::Hash,
                combiner: Combiner::Fold(Fold::Max),
            }),
            TaskOutput::Records { limit: Some(3) },
            TaskOutput::Records { limit: None },
            TaskOutput::Count,
            TaskOutput::Text { location: "file:///out".into() },
            TaskOutput::KeySample { size: 60 },
        ];
        for input in &inputs {
            for output in &outputs {
                let d = descriptor(input.clone(), output.clone());
                assert_eq!(round_trip(&d), d);
            }
        }
        let driver = TaskDescriptor {
            body: TaskBody::Driver(DriverWork {
                args: vec!["in".into()],
                deadline: Some(Duration::from_secs(3600)),
            }),
            ..descriptor(inputs[0].clone(), TaskOutput::Count)
        };
        assert_eq!(round_trip(&driver), driver);
    }

    #[test]
    fn malformed_descriptors_are_refused() {
        let good =
            v1::TaskDescriptor::from(&descriptor(TaskInput::Records(Data::default()), TaskOutput::Count));
        let mut d = good.clone();
        d.component = "sha256:00".into();
        assert!(matches!(TaskDescriptor::try_from(d), Err(DescriptorError::Digest(_))));
        let mut d = good.clone();
        d.body = None;
        assert!(TaskDescriptor::try_from(d).is_err());
        let mut d = good.clone();
        if let Some(task_descriptor::Body::Work(w)) = &mut d.body {
            w.chain = vec![v1::Step { kind: 0, function: "f".into(), param: None }];
        }
        assert!(TaskDescriptor::try_from(d).is_err(), "an unspecified step kind");
        let mut d = good;
        d.limits = None;
        assert_eq!(TaskDescriptor::try_from(d).unwrap().limits, TaskLimits::default(), "unset limits");
    }

    #[test]
    fn map_tables_round_trip_and_inconsistent_ones_are_refused() {
        let table = MapTable {
            action: key().action,
            shuffle: ShuffleId(3),
            addresses: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            maps: vec![
                MapStatus { address: 1, attempt: 2, sizes: BlockSizes::new(&[1, 2, 300]) },
                MapStatus { address: 0, attempt: 0, sizes: BlockSizes::default() },
            ],
        };
        let proto = v1::MapTable::from(&table);
        assert_eq!(proto.maps[0].attempt, 2, "the attempt that wrote map 0 travels with it");
        assert_eq!(MapTable::try_from(proto.clone()).unwrap(), table);
        assert_eq!(table.address(0).map(|a| &**a), Some("127.0.0.1:2"));
        assert_eq!(table.address(2), None);

        let mut bad = proto.clone();
        bad.maps[0].address = 2;
        let err = MapTable::try_from(bad).unwrap_err().to_string();
        assert!(err.contains("map 0 names address 2 of 2"), "{err}");
        let mut bad = proto.clone();
        bad.maps[0].exact =
            vec![v1::ExactSize { reduce: 2, bytes: 9 }, v1::ExactSize { reduce: 1, bytes: 9 }];
        assert!(MapTable::try_from(bad).is_err(), "large blocks out of order");
        let mut bad = proto;
        bad.action = None;
        assert!(MapTable::try_from(bad).is_err(), "no action");
    }
}
