//! The edge between the `Agent` service and the executor: a proto `TaskSpec`
//! becomes a `Parsed` launch (everything but the component), checked before
//! the attempt is accepted; the component is fetched and loaded afterwards.

use super::config::AgentConfig;
use crate::blocks::{BlockStore, InvalidJobId, JobId};
use crate::executor::{Aggregate, Input, MapCombine, OutputSpec};
use crate::shuffle::{BlockId, BlockLocation, MapId, Partitioner, ReduceId, ShuffleId};
use std::collections::BTreeMap;
use std::sync::Arc;
use tonic::Status;
use weft_core::artifact::{Digest, DigestParseError};
use weft_core::io::{DataLocation, IoError, OutputCommitter, TextSplit};
use weft_core::limits::TaskLimits;
use weft_core::plan::Step;
use weft_core::proto::ProtoError;
use weft_core::proto::v1::{self, shuffle_write, task_input, task_output};
use weft_core::task::TaskKey;

/// Why a proto `TaskSpec` cannot be run; the launch is refused with
/// `INVALID_ARGUMENT` and this message.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A field does not convert (missing, unknown enum value).
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The job id cannot name a directory.
    #[error("bad job id: {0}")]
    JobId(#[from] InvalidJobId),
    /// The component is not `blake3:<hex>`.
    #[error("bad component digest: {0}")]
    Digest(#[from] DigestParseError),
    /// An input or output location does not parse.
    #[error(transparent)]
    Location(#[from] IoError),
    /// A text split names an object path that is not valid.
    #[error("bad object path `{object}` in a text split: {reason}")]
    Object {
        /// The path.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// Range bounds that do not fit the partition count.
    #[error(transparent)]
    Partitioner(#[from] crate::shuffle::TooManyBounds),
}

impl From<LaunchError> for Status {
    fn from(e: LaunchError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// A launch, parsed: the attempt and everything it needs but the component.
pub(crate) struct Parsed {
    pub key: TaskKey,
    /// Whose shuffle files the task writes and reads (`shuffle_scope`).
    pub job: JobId,
    pub component: Digest,
    /// Where to fetch the component from (a master address).
    pub artifact_source: String,
    pub limits: TaskLimits,
    pub broadcasts: Arc<BTreeMap<u64, Vec<u8>>>,
    pub body: Body,
}

/// What the attempt runs.
pub(crate) enum Body {
    /// A chain over an input into an output (the executor's task).
    Task(Box<TaskBody>),
    /// The job's `main`, talking to the Driver service at `master`.
    Driver { args: Vec<String>, master: String },
}

/// An executor task without its component.
pub(crate) struct TaskBody {
    pub input: Input,
    pub chain: Vec<Step>,
    pub input_keyed: bool,
    pub output_keyed: bool,
    pub output: OutputSpec,
    /// Which peer serves each map output the input reads.
    pub map_outputs: Vec<(ShuffleId, MapId, String)>,
}

fn missing(message: &'static str, field: &'static str) -> ProtoError {
    ProtoError::Missing { message, field }
}

/// Parse `spec`; nothing is read or fetched.
pub(crate) fn parse(
    spec: v1::TaskSpec,
    config: &AgentConfig,
    store: &BlockStore,
) -> Result<Parsed, LaunchError> {
    let key = TaskKey::try_from(spec.task.as_ref().ok_or(missing("TaskSpec", "task"))?)?;
    // Shuffle files live under the submitted job's id, shared by its actions.
    let job =
        JobId::new(if spec.shuffle_scope.is_empty() { key.job.clone() } else { spec.shuffle_scope.clone() })?;
    let component: Digest = spec.component.parse()?;
    let artifact_source =
        if spec.artifact_source.is_empty() { config.master.clone() } else { spec.artifact_source.clone() };
    let limits = limits(spec.limits.as_ref());
    let broadcasts = Arc::new(spec.broadcasts.iter().map(|(id, b)| (*id, b.to_vec())).collect());
    let body = match spec.driver {
        Some(d) => {
            let master = if d.master.is_empty() { config.master.clone() } else { d.master };
            Body::Driver { args: d.args, master }
        }
        None => {
            let mut map_outputs = Vec::new();
            let input = spec.input.and_then(|i| i.source).ok_or(missing("TaskSpec", "input"))?;
            let input = self::input(input, config, &mut map_outputs)?;
            let sink = spec.output.and_then(|o| o.sink).ok_or(missing("TaskSpec", "output"))?;
            let output = output(sink, &key, config, store, &job)?;
            let chain = spec.chain.iter().map(Step::try_from).collect::<Result<_, _>>()?;
            Body::Task(Box::new(TaskBody {
                input,
                chain,
                input_keyed: spec.input_keyed,
                output_keyed: spec.output_keyed,
                output,
                map_outputs,
            }))
        }
    };
    Ok(Parsed { key, job, component, artifact_source, limits, broadcasts, body })
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
    }
}

fn input(
    source: task_input::Source,
    config: &AgentConfig,
    map_outputs: &mut Vec<(ShuffleId, MapId, String)>,
) -> Result<Input, LaunchError> {
    Ok(match source {
        task_input::Source::Text(t) => {
            let location = DataLocation::parse(&t.location, &config.s3)?;
            let path = object_store::path::Path::parse(&t.object)
                .map_err(|e| LaunchError::Object { object: t.object.clone(), reason: e.to_string() })?;
            Input::Text {
                location,
                split: TextSplit { path, start: t.start, end: t.end, file_len: t.file_len },
            }
        }
        task_input::Source::Records(r) => Input::Records(r.to_vec()),
        task_input::Source::Shuffle(read) => {
            let aggregate = aggregate(read.aggregate)?;
            Input::Shuffle { blocks: blocks(&read, map_outputs), aggregate }
        }
        task_input::Source::Join(join) => {
            let left = join.left.ok_or(missing("JoinRead", "left"))?;
            let right = join.right.ok_or(missing("JoinRead", "right"))?;
            Input::Join { left: blocks(&left, map_outputs), right: blocks(&right, map_outputs) }
        }
    })
}

/// The blocks of one reduce partition, noting who serves each map output.
/// Sizes are unknown here; the reader treats them as minimal.
fn blocks(read: &v1::ShuffleRead, map_outputs: &mut Vec<(ShuffleId, MapId, String)>) -> Vec<BlockLocation> {
    let shuffle = ShuffleId(read.shuffle);
    read.maps
        .iter()
        .map(|m| {
            map_outputs.push((shuffle, MapId(m.map), m.address.clone()));
            BlockLocation { block: BlockId::new(shuffle, MapId(m.map), ReduceId(read.reduce)), size: 0 }
        })
        .collect()
}

fn aggregate(value: i32) -> Result<Aggregate, LaunchError> {
    Ok(match v1::Aggregate::try_from(value) {
        Ok(v1::Aggregate::Merge) => Aggregate::Merge,
        Ok(v1::Aggregate::SumI64) => Aggregate::SumI64,
        Ok(v1::Aggregate::Group) => Aggregate::Group,
        Ok(v1::Aggregate::SortedAscending) => Aggregate::Sorted { ascending: true },
        Ok(v1::Aggregate::SortedDescending) => Aggregate::Sorted { ascending: false },
        Ok(v1::Aggregate::Unspecified) | Err(_) => {
            return Err(ProtoError::UnknownEnum { field: "aggregate", value }.into());
        }
    })
}

fn output(
    sink: task_output::Sink,
    key: &TaskKey,
    config: &AgentConfig,
    store: &BlockStore,
    job: &JobId,
) -> Result<OutputSpec, LaunchError> {
    Ok(match sink {
        task_output::Sink::Shuffle(w) => {
            let partitioner = if w.range_bounds.is_empty() && !w.ranged {
                Partitioner::hash(w.partitions)
            } else {
                let bounds = w.range_bounds.iter().map(|b| b.to_vec()).collect();
                Partitioner::range(bounds, w.partitions, w.descending).map_err(LaunchError::Partitioner)?
            };
            let combiner = match w.combiner {
                None | Some(shuffle_write::Combiner::SumI64(false)) => MapCombine::None,
                Some(shuffle_write::Combiner::SumI64(true)) => MapCombine::SumI64,
                Some(shuffle_write::Combiner::Guest(f)) => MapCombine::Guest(f),
            };
            OutputSpec::Shuffle {
                dir: store.shuffle_dir(job),
                shuffle: ShuffleId(w.shuffle),
                map: MapId(key.partition),
                partitioner,
                combiner,
            }
        }
        task_output::Sink::Result(r) => OutputSpec::Result { limit: (r.limit > 0).then_some(r.limit) },
        task_output::Sink::Text(t) => OutputSpec::Text {
            committer: OutputCommitter::new(DataLocation::parse(&t.location, &config.s3)?),
            partition: key.partition,
            attempt: key.attempt,
        },
        task_output::Sink::Count(_) => OutputSpec::Count,
        task_output::Sink::Sample(s) => {
            OutputSpec::KeySample { size: s.size, seed: u64::from(key.partition) }
        }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> v1::TaskSpec {
        v1::TaskSpec {
            task: Some(v1::TaskRef { job_id: "job-1".into(), stage_id: 1, partition: 4, attempt: 2 }),
            component: Digest::of(b"x").to_string(),
            input: Some(v1::TaskInput {
                source: Some(task_input::Source::Shuffle(v1::ShuffleRead {
                    shuffle: 3,
                    reduce: 4,
                    aggregate: v1::Aggregate::SumI64 as i32,
                    maps: vec![v1::MapLocation { map: 0, address: "10.0.0.1:1".into() }],
                })),
            }),
            input_keyed: true,
            output: Some(v1::TaskOutput {
                sink: Some(task_output::Sink::Shuffle(v1::ShuffleWrite {
                    shuffle: 5,
                    partitions: 2,
                    combiner: Some(shuffle_write::Combiner::Guest("add".into())),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_reduce_spec_parses_with_its_map_locations_and_block_dir() {
        let store = BlockStore::new("/work");
        let p = parse(spec(), &AgentConfig::default(), &store).unwrap();
        assert_eq!(p.limits, TaskLimits::default(), "unset limits are the defaults");
        let Body::Task(t) = p.body else { panic!("not a task") };
        assert_eq!(t.map_outputs, [(ShuffleId(3), MapId(0), "10.0.0.1:1".to_string())]);
        let Input::Shuffle { blocks, aggregate } = &t.input else { panic!("{:?}", t.input) };
        assert_eq!(
            (blocks[0].block, *aggregate),
            (BlockId::new(ShuffleId(3), MapId(0), ReduceId(4)), Aggregate::SumI64)
        );
        let OutputSpec::Shuffle { dir, map, combiner, .. } = &t.output else { panic!("{:?}", t.output) };
        assert_eq!((dir.clone(), *map), (store.shuffle_dir(&p.job), MapId(4)));
        assert_eq!(combiner, &MapCombine::Guest("add".into()));
        assert_eq!(p.job.as_str(), "job-1", "without a scope, the task's own job");
    }

    #[test]
    fn the_shuffle_scope_names_the_block_dir() {
        let store = BlockStore::new("/work");
        let mut s = spec();
        s.task.as_mut().unwrap().job_id = "job-1.3".into();
        s.shuffle_scope = "job-1".into();
        let p = parse(s.clone(), &AgentConfig::default(), &store).unwrap();
        assert_eq!((p.job.as_str(), p.key.job.as_str()), ("job-1", "job-1.3"));
        let Body::Task(t) = p.body else { panic!("not a task") };
        let OutputSpec::Shuffle { dir, .. } = &t.output else { panic!("{:?}", t.output) };
        assert_eq!(dir, &store.shuffle_dir(&JobId::new("job-1").unwrap()));
        s.shuffle_scope = "../x".into();
        assert!(matches!(parse(s, &AgentConfig::default(), &store), Err(LaunchError::JobId(_))));
    }

    #[test]
    fn malformed_specs_are_refused() {
        let config = AgentConfig::default();
        let store = BlockStore::new("/work");
        let mut s = spec();
        s.task.as_mut().unwrap().job_id = "../etc".into();
        assert!(matches!(parse(s, &config, &store), Err(LaunchError::JobId(_))));
        let mut s = spec();
        s.component = "sha256:00".into();
        assert!(matches!(parse(s, &config, &store), Err(LaunchError::Digest(_))));
        let mut s = spec();
        s.output = None;
        assert!(matches!(parse(s, &config, &store), Err(LaunchError::Proto(_))));
        let mut s = spec();
        s.chain = vec![v1::Step { kind: 0, function: "f".into() }];
        assert!(matches!(parse(s, &config, &store), Err(LaunchError::Proto(_))));
    }
}
