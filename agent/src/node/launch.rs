//! The edge between the `Agent` service and the executor: a
//! [`TaskDescriptor`] (converted from proto by `weft_core::proto`) becomes a
//! `Parsed` launch (everything but the component), checked before the attempt
//! is accepted; the component is fetched and loaded afterwards.

use super::config::AgentConfig;
use crate::blocks::{BlockStore, InvalidJobId, JobId, JobKeys, MapTables};
use crate::executor::{Input, OutputSpec};
use crate::shuffle::{BlockId, BlockLocation, MapId, Partitioner, ReduceId, ShuffleId};
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_core::access::{Access, Policy, S3Grants};
use weft_core::artifact::Digest;
use weft_core::io::{DataLocation, IoError, OutputCommitter, TextSplit};
use weft_core::limits::TaskLimits;
use weft_core::plan::Step;
use weft_core::proto::DescriptorError;
use weft_core::task::{
    Data, MapTable, Partitioning, ShuffleRead, TaskBody as TaskBody_, TaskDescriptor, TaskInput, TaskKey,
    TaskOutput,
};

/// Why a task descriptor cannot be run; the launch of that task is refused
/// as invalid, with this message.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A field does not convert (missing, unknown enum value, bad digest).
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
    /// The job id cannot name a directory.
    #[error("bad job id: {0}")]
    JobId(#[from] InvalidJobId),
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
    /// A location inside the agent's own directories.
    #[error(transparent)]
    Access(#[from] weft_core::access::AccessError),
    /// The map-output table the task reads is missing or does not match it:
    /// the master sends the table again (a `Stale` refusal, not a failure).
    #[error("the map-output table of shuffle {shuffle} {problem}")]
    Stale {
        /// The shuffle.
        shuffle: u32,
        /// What is wrong with the table.
        problem: String,
    },
}

/// A launch, parsed: the attempt and everything it needs but the component.
pub(crate) struct Parsed {
    pub key: TaskKey,
    /// Whose shuffle files the task writes and reads: the submitted job's.
    pub job: JobId,
    pub component: Digest,
    /// Where to fetch the component from (a master address).
    pub artifact_source: String,
    pub limits: TaskLimits,
    /// Broadcast values, some still blocks to fetch.
    pub broadcasts: Arc<BTreeMap<u64, Data>>,
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
    /// The map-output tables of the shuffles the input reads.
    pub tables: Vec<(ShuffleId, Arc<MapTable>)>,
    /// A parallelized partition held as a block: fetched into `input` before
    /// the attempt runs.
    pub records: Option<Data>,
    /// A persisted partition: read (here or from a peer) into `input`
    /// before the attempt runs.
    pub cached: Option<weft_core::task::CachedRead>,
    /// Persisted partitions the chain computes, to keep.
    pub cache: Vec<weft_core::task::CachePut>,
}

/// Where a batch of launches comes from: the master's addresses.
pub(crate) struct Origin<'a> {
    /// Its `Artifacts` service (empty: the configured master).
    pub artifact_source: &'a str,
    /// Its `Driver` service (empty: the configured master).
    pub master: &'a str,
    /// The jobs' capabilities and S3 settings, as the master sent them.
    pub keys: Option<&'a JobKeys>,
}

/// The longest a driver runs when its job sets no deadline: a year stands for
/// "no limit" without overflowing the clock.
const NO_DEADLINE: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

/// Parse `task`; nothing is read or fetched.
pub(crate) fn parse(
    task: TaskDescriptor,
    origin: &Origin<'_>,
    config: &AgentConfig,
    store: &BlockStore,
    tables: &MapTables,
    own: &Policy,
) -> Result<Parsed, LaunchError> {
    let key = task.key;
    let job = JobId::from(key.job());
    let or_master = |s: &str| match s {
        "" => config.masters().next().unwrap_or_default().to_string(),
        s => s.to_string(),
    };
    let broadcasts = task.broadcasts;
    let mut limits = task.limits;
    let body = match task.body {
        TaskBody_::Driver(d) => {
            // The driver has its own wall-clock limit (the job's deadline),
            // apart from the task deadline that bounds each of its tasks.
            limits.deadline = d.deadline.unwrap_or(NO_DEADLINE);
            Body::Driver { args: d.args, master: or_master(origin.master) }
        }
        TaskBody_::Work(w) => {
            let mut read = Reads { tables, action: key.action, used: Vec::new() };
            // The job's own S3 settings for its grants' roots; the agent's elsewhere.
            let s3 = origin.keys.map(|k| k.s3(key.job())).unwrap_or_default();
            let (mut records, mut cached) = (None, None);
            let input = match w.input {
                TaskInput::Records(Data::Inline(b)) => Input::Records(b.to_vec()),
                TaskInput::Records(block) => {
                    records = Some(block);
                    Input::Records(Vec::new())
                }
                TaskInput::Cached(read) => {
                    cached = Some(read);
                    Input::Batches(Vec::new())
                }
                other => input(other, config, &s3, own, &mut read)?,
            };
            let output = output(w.output, &key, config, &s3, own, store, &job)?;
            Body::Task(Box::new(TaskBody {
                input,
                chain: w.chain.to_vec(),
                input_keyed: w.input_keyed,
                output_keyed: w.output_keyed,
                output,
                tables: read.used,
                records,
                cached,
                cache: w.cache,
            }))
        }
    };
    Ok(Parsed {
        key,
        job,
        component: task.component,
        artifact_source: or_master(origin.artifact_source),
        limits,
        broadcasts,
        body,
    })
}

/// The agent's own directories, which no task's input or output may be in
/// (the master checked its tenant's grants; it does not know these).
pub(crate) fn own_dirs(config: &AgentConfig) -> Policy {
    Policy::default().deny([config.work_dir.clone(), config.cache_dir.clone()])
}

fn input(
    source: TaskInput,
    config: &AgentConfig,
    s3: &S3Grants,
    own: &Policy,
    read: &mut Reads<'_>,
) -> Result<Input, LaunchError> {
    Ok(match source {
        TaskInput::Text(t) => {
            let settings = s3.for_uri(&t.location, Access::Read).unwrap_or(&config.s3);
            let location = DataLocation::parse(&t.location, settings)?;
            own.check_not_protected(&location)?;
            let path = object_store::path::Path::parse(&t.object)
                .map_err(|e| LaunchError::Object { object: t.object.clone(), reason: e.to_string() })?;
            Input::Text {
                location,
                split: TextSplit { path, start: t.start, end: t.end, file_len: t.file_len },
                lines: t.lines,
            }
        }
        TaskInput::Records(_) => Input::Records(Vec::new()),
        TaskInput::Cached(_) => Input::Batches(Vec::new()),
        TaskInput::Shuffle(r) => Input::Shuffle { blocks: read.blocks(&r)?, aggregate: r.aggregate },
        TaskInput::Join { left, right } => {
            Input::Join { left: read.blocks(&left)?, right: read.blocks(&right)? }
        }
    })
}

/// Shuffle reads resolved against the map-output tables, noting the tables
/// used (the fetcher's locations).
struct Reads<'a> {
    tables: &'a MapTables,
    action: weft_core::ids::ActionId,
    used: Vec<(ShuffleId, Arc<MapTable>)>,
}

impl Reads<'_> {
    /// The blocks of one reduce partition, in map order, each of the map
    /// attempt the table names, with their sizes.
    fn blocks(&mut self, read: &ShuffleRead) -> Result<Vec<BlockLocation>, LaunchError> {
        let stale = |problem: String| LaunchError::Stale { shuffle: read.shuffle.0, problem };
        let table = self
            .tables
            .get(self.action, read.shuffle)
            .ok_or_else(|| stale(format!("was not received for {}", self.action)))?;
        if table.maps.len() != read.maps as usize {
            return Err(stale(format!(
                "lists {} map outputs, the task reads {}",
                table.maps.len(),
                read.maps
            )));
        }
        let shuffle = ShuffleId(read.shuffle.0);
        let blocks = (0..read.maps)
            .zip(&table.maps)
            .map(|(m, status)| BlockLocation {
                block: BlockId::new(shuffle, MapId(m), status.attempt, ReduceId(read.reduce)),
                size: status.sizes.of(read.reduce),
            })
            .collect();
        self.used.push((shuffle, table));
        Ok(blocks)
    }
}

fn output(
    sink: TaskOutput,
    key: &TaskKey,
    config: &AgentConfig,
    s3: &S3Grants,
    own: &Policy,
    store: &BlockStore,
    job: &JobId,
) -> Result<OutputSpec, LaunchError> {
    Ok(match sink {
        TaskOutput::Shuffle(w) => {
            let partitioner = match w.partitioning {
                Partitioning::Hash => Partitioner::hash(w.partitions),
                Partitioning::Range { bounds, descending } => {
                    let bounds = bounds.iter().map(|b| b.to_vec()).collect();
                    Partitioner::range(bounds, w.partitions, descending).map_err(LaunchError::Partitioner)?
                }
            };
            OutputSpec::Shuffle {
                dir: store.shuffle_dir(job),
                shuffle: ShuffleId(w.shuffle.0),
                map: MapId(key.partition),
                attempt: key.attempt,
                partitioner,
                combiner: w.combiner,
            }
        }
        TaskOutput::Records { limit } => OutputSpec::Result { limit },
        TaskOutput::Text { location } => {
            let settings = s3.for_uri(&location, Access::Write).unwrap_or(&config.s3);
            let location = DataLocation::parse(&location, settings)?;
            own.check_not_protected(&location)?;
            OutputSpec::Text {
                committer: OutputCommitter::new(location),
                partition: key.partition,
                attempt: key.attempt,
            }
        }
        TaskOutput::Count => OutputSpec::Count,
        TaskOutput::KeySample { size } => OutputSpec::KeySample { size, seed: u64::from(key.partition) },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use weft_core::ids::{ActionId, Incarnation, JobId as CoreJobId, ShuffleId as CoreShuffleId, StageId};
    use weft_core::task::{Aggregate, BlockSizes, Combiner, DriverWork, MapStatus, ShuffleWrite, TaskWork};

    const ORIGIN: Origin<'static> = Origin { artifact_source: "", master: "", keys: None };

    fn descriptor() -> TaskDescriptor {
        let job = CoreJobId { incarnation: Incarnation(0xabc), seq: 1 };
        TaskDescriptor {
            key: TaskKey { action: ActionId { job, seq: 3 }, stage: StageId(1), partition: 4, attempt: 2 },
            component: Digest::of(b"x"),
            limits: TaskLimits::default(),
            broadcasts: Arc::default(),
            body: TaskBody_::Work(Box::new(TaskWork {
                input: TaskInput::Shuffle(ShuffleRead {
                    shuffle: CoreShuffleId(3),
                    reduce: 4,
                    aggregate: Aggregate::SumI64,
                    maps: 2,
                }),
                chain: Arc::from(Vec::new()),
                input_keyed: true,
                output_keyed: true,
                output: TaskOutput::Shuffle(ShuffleWrite {
                    shuffle: CoreShuffleId(5),
                    partitions: 2,
                    partitioning: Partitioning::Hash,
                    combiner: Combiner::Guest("add".into()),
                }),
                cache: Vec::new(),
            })),
        }
    }

    /// The table of shuffle 3 for the descriptor's action: map 0 on one
    /// peer, map 1 (written by its attempt 3, with a large block for reduce
    /// 4) on another.
    fn tables() -> MapTables {
        let tables = MapTables::default();
        let d = descriptor();
        let mut sizes = vec![10; 8];
        sizes[4] = 500;
        tables.install(MapTable {
            action: d.key.action,
            shuffle: CoreShuffleId(3),
            addresses: vec!["10.0.0.1:1".into(), "10.0.0.2:1".into()],
            maps: vec![
                MapStatus { address: 0, attempt: 0, sizes: BlockSizes::new(&[77; 8]) },
                MapStatus { address: 1, attempt: 3, sizes: BlockSizes::new(&sizes) },
            ],
        });
        tables
    }

    fn parse_with(d: TaskDescriptor, tables: &MapTables) -> Result<Parsed, LaunchError> {
        let config = AgentConfig::default();
        parse(d, &ORIGIN, &config, &BlockStore::new("/work"), tables, &own_dirs(&config))
    }

    #[test]
    fn a_reduce_parses_with_its_map_locations_sizes_and_the_jobs_block_dir() {
        let store = BlockStore::new("/work");
        let p = parse_with(descriptor(), &tables()).unwrap();
        assert_eq!(p.job.as_str(), "job-00000abc-1", "shuffle files live under the submitted job");
        assert_eq!(
            p.artifact_source,
            AgentConfig::default().master,
            "an empty origin is the configured master"
        );
        let Body::Task(t) = p.body else { panic!("not a task") };
        let located: Vec<_> =
            t.tables.iter().map(|(s, t)| (*s, t.address(1).map(|a| a.to_string()))).collect();
        assert_eq!(located, [(ShuffleId(3), Some("10.0.0.2:1".to_string()))]);
        let Input::Shuffle { blocks, aggregate } = &t.input else { panic!("{:?}", t.input) };
        let read: Vec<_> = blocks.iter().map(|b| (b.block, b.size)).collect();
        assert_eq!(
            read,
            [
                (BlockId::new(ShuffleId(3), MapId(0), 0, ReduceId(4)), 77),
                (BlockId::new(ShuffleId(3), MapId(1), 3, ReduceId(4)), 500)
            ]
        );
        assert_eq!(*aggregate, Aggregate::SumI64);
        let OutputSpec::Shuffle { dir, map, attempt, combiner, .. } = &t.output else {
            panic!("{:?}", t.output)
        };
        assert_eq!((dir.clone(), *map), (store.shuffle_dir(&p.job), MapId(4)));
        assert_eq!(*attempt, 2, "the map output is named by the task's own attempt");
        assert_eq!(combiner, &Combiner::Guest("add".into()));
    }

    #[test]
    fn a_reduce_without_its_table_or_with_another_shape_is_stale() {
        let err = parse_with(descriptor(), &MapTables::default()).err().unwrap();
        assert!(matches!(err, LaunchError::Stale { shuffle: 3, .. }), "{err}");
        let mut d = descriptor();
        if let TaskBody_::Work(w) = &mut d.body
            && let TaskInput::Shuffle(r) = &mut w.input
        {
            r.maps = 3;
        }
        let err = parse_with(d, &tables()).err().unwrap().to_string();
        assert!(err.contains("lists 2 map outputs, the task reads 3"), "{err}");
    }

    #[test]
    fn inputs_and_outputs_in_the_agents_own_directories_are_refused() {
        let config = AgentConfig { work_dir: "/var/lib/weft/agent".into(), ..AgentConfig::default() };
        let mut d = descriptor();
        if let TaskBody_::Work(w) = &mut d.body {
            w.output = TaskOutput::Text { location: "file:///var/lib/weft/agent/../agent/jobs/x".into() };
        }
        let err = parse(d, &ORIGIN, &config, &BlockStore::new("/work"), &tables(), &own_dirs(&config))
            .err()
            .unwrap();
        assert!(err.to_string().contains("weft keeps for itself"), "{err}");
        let mut d = descriptor();
        if let TaskBody_::Work(w) = &mut d.body {
            w.input = TaskInput::Text(weft_core::task::TextSplitRef {
                location: "/var/lib/weft/agent/artifacts".into(),
                object: "var/lib/weft/agent/artifacts/x".into(),
                start: 0,
                end: 1,
                file_len: 1,
                lines: weft_core::io::LineFormat::Utf8,
            });
        }
        assert!(matches!(
            parse(d, &ORIGIN, &config, &BlockStore::new("/work"), &tables(), &own_dirs(&config)),
            Err(LaunchError::Access(_))
        ));
    }

    #[test]
    fn a_driver_runs_under_its_own_deadline() {
        let store = BlockStore::new("/work");
        let mut d = descriptor();
        d.body = TaskBody_::Driver(DriverWork { args: vec![], deadline: None });
        let p = parse(
            d.clone(),
            &ORIGIN,
            &AgentConfig::default(),
            &store,
            &MapTables::default(),
            &Policy::default(),
        )
        .unwrap();
        assert_eq!(p.limits.deadline, NO_DEADLINE, "no job deadline: the task deadline does not apply");
        d.body =
            TaskBody_::Driver(DriverWork { args: vec![], deadline: Some(std::time::Duration::from_secs(9)) });
        let p = parse(d, &ORIGIN, &AgentConfig::default(), &store, &MapTables::default(), &Policy::default())
            .unwrap();
        assert_eq!(p.limits.deadline, std::time::Duration::from_secs(9));
    }

    #[test]
    fn bad_locations_and_bounds_are_refused() {
        let store = BlockStore::new("/work");
        let mut d = descriptor();
        if let TaskBody_::Work(w) = &mut d.body {
            w.output = TaskOutput::Shuffle(ShuffleWrite {
                shuffle: CoreShuffleId(5),
                partitions: 1,
                partitioning: Partitioning::Range { bounds: vec!["a".into(), "b".into()], descending: false },
                combiner: Combiner::None,
            });
        }
        assert!(matches!(
            parse(d, &ORIGIN, &AgentConfig::default(), &store, &tables(), &Policy::default()),
            Err(LaunchError::Partitioner(_))
        ));
        let mut d = descriptor();
        if let TaskBody_::Work(w) = &mut d.body {
            w.output = TaskOutput::Text { location: "gs://nope/out".into() };
        }
        assert!(matches!(
            parse(d, &ORIGIN, &AgentConfig::default(), &store, &tables(), &Policy::default()),
            Err(LaunchError::Location(_))
        ));
    }
}
