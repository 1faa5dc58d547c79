use super::*;
use crate::dag;
use weft_core::ids::{ActionId, Incarnation, StageId};
use weft_core::plan::{ShuffleKind, Step, StepKind, StorageLevel};
use weft_core::task::{Aggregate, Combiner};

const JOB: JobId = JobId { incarnation: Incarnation(7), seq: 7 };

fn split(start: u64, end: u64) -> TextSplit {
    TextSplit { path: "data/in.txt".into(), start, end, file_len: 100 }
}

/// Word count over 2 splits (guest combine), and its context.
fn word_count(sink: ResultSink) -> (JobContext, dag::JobGraph) {
    let mut plan = Plan::new();
    let lines = plan.add(Node::text_file("file:///data", 2), false).unwrap();
    let words = plan.add(Node::Narrow { parent: lines, step: Step::new(StepKind::FlatMap, "split") }, false);
    let pairs = plan
        .add(Node::Narrow { parent: words.unwrap(), step: Step::new(StepKind::Map, "one") }, true)
        .unwrap();
    let counts = plan
        .add(
            Node::Shuffle {
                parent: pairs,
                kind: ShuffleKind::ReduceByKey { function: "add".into() },
                partitions: 2,
            },
            true,
        )
        .unwrap();
    let graph = dag::build(&plan, counts, &[(lines, 2)].into()).unwrap();
    let ctx = JobContext {
        job: JOB,
        component: Digest::of(b"component"),
        limits: TaskLimits::default(),
        broadcasts: Arc::new([(0, Data::Inline(Bytes::from_static(b"pattern")))].into()),
        plan,
        text: [(lines, ("file:///data".to_string(), vec![split(0, 50), split(50, 100)].into()))].into(),
        sink,
        range_bounds: BTreeMap::new(),
    };
    (ctx, graph)
}

fn key(stage: u32, partition: u32) -> TaskKey {
    TaskKey { action: ActionId { job: JOB, seq: 1 }, stage: StageId(stage), partition, attempt: 0 }
}

fn no_maps(s: ShuffleId) -> Result<u32, LaunchError> {
    Err(LaunchError::MissingMapOutputs(s))
}

fn nothing_kept(_: DatasetId, _: u32) -> Option<Kept> {
    None
}

fn two_maps(_: ShuffleId) -> Result<u32, LaunchError> {
    Ok(2)
}

fn work(d: TaskDescriptor) -> TaskWork {
    match d.body {
        TaskBody::Work(w) => *w,
        TaskBody::Driver(_) => panic!("a driver"),
    }
}

#[test]
fn a_map_task_reads_its_split_and_writes_combined_shuffle_output() {
    let (ctx, g) = word_count(ResultSink::Records { limit: None });
    let stage = &g.stages[0];
    let d = descriptor(&ctx, stage, &stage.tasks[1], key(0, 1), &no_maps, &nothing_kept).unwrap();
    assert_eq!(d.key, key(0, 1));
    assert_eq!(d.broadcasts.get(&0), Some(&Data::Inline(Bytes::from_static(b"pattern"))));
    let w = work(d);
    let TaskInput::Text(t) = &w.input else { panic!("{:?}", w.input) };
    assert_eq!(
        (t.location.as_str(), t.object.as_str(), t.start, t.end),
        ("file:///data", "data/in.txt", 50, 100)
    );
    assert_eq!(w.chain.len(), 2);
    assert!(Arc::ptr_eq(&w.chain, &stage.tasks[0].chain), "a stage's tasks share their chain");
    assert!(!w.input_keyed && w.output_keyed);
    let TaskOutput::Shuffle(s) = &w.output else { panic!("{:?}", w.output) };
    assert_eq!((s.partitions, &s.combiner), (2, &Combiner::Guest("add".into())));
}

#[test]
fn a_reduce_task_names_its_shuffle_and_how_many_maps_it_reads() {
    let (ctx, g) = word_count(ResultSink::Count);
    let stage = &g.stages[1];
    let w = work(descriptor(&ctx, stage, &stage.tasks[1], key(1, 1), &two_maps, &nothing_kept).unwrap());
    let TaskInput::Shuffle(r) = &w.input else { panic!("{:?}", w.input) };
    assert_eq!((r.reduce, r.aggregate, r.maps), (1, Aggregate::Merge, 2));
    assert_eq!(&*w.chain, [Step::new(StepKind::Reduce, "add")]);
    assert_eq!(w.output, TaskOutput::Count);

    let err = descriptor(&ctx, stage, &stage.tasks[0], key(1, 0), &no_maps, &nothing_kept).unwrap_err();
    assert!(matches!(err, LaunchError::MissingMapOutputs(_)));
}

#[test]
fn result_sinks_follow_the_action() {
    for (sink, expected) in [
        (ResultSink::Records { limit: Some(10) }, TaskOutput::Records { limit: Some(10) }),
        (ResultSink::Text("s3://b/out".into()), TaskOutput::Text { location: "s3://b/out".into() }),
        (ResultSink::KeySample(30), TaskOutput::KeySample { size: 30 }),
    ] {
        let (ctx, g) = word_count(sink);
        let stage = &g.stages[1];
        let w = work(descriptor(&ctx, stage, &stage.tasks[1], key(1, 1), &two_maps, &nothing_kept).unwrap());
        assert_eq!(w.output, expected);
    }
}

#[test]
fn a_multi_partition_sort_writes_with_its_sampled_bounds() {
    let mut plan = Plan::new();
    let xs =
        plan.add(Node::Parallelize { partitions: vec![Data::default(), Data::default()] }, true).unwrap();
    let sorted = plan.add(
        Node::Shuffle { parent: xs, kind: ShuffleKind::SortByKey { ascending: false }, partitions: 3 },
        true,
    );
    let g = dag::build(&plan, sorted.unwrap(), &BTreeMap::new()).unwrap();
    let (mut ctx, _) = word_count(ResultSink::Count);
    ctx.plan = plan;
    let stage = &g.stages[0];
    let StageKind::ShuffleMap { shuffle, .. } = stage.kind else { panic!("a map stage first") };

    // Without bounds (no sample job ran) there is nothing to launch.
    let err = descriptor(&ctx, stage, &stage.tasks[0], key(0, 0), &no_maps, &nothing_kept).unwrap_err();
    assert_eq!(err, LaunchError::MissingRangeBounds(shuffle));

    ctx.range_bounds.insert(shuffle, vec![b"g".to_vec(), b"p".to_vec()]);
    let w = work(descriptor(&ctx, stage, &stage.tasks[0], key(0, 0), &no_maps, &nothing_kept).unwrap());
    let TaskOutput::Shuffle(s) = &w.output else { panic!("a shuffle write") };
    assert_eq!(s.partitions, 3);
    assert_eq!(
        s.partitioning,
        Partitioning::Range { bounds: vec!["g".into(), "p".into()], descending: true }
    );
}

#[test]
fn a_task_reads_the_deepest_kept_partition_of_its_lineage_and_keeps_what_it_computes() {
    // lines -> parse (persisted) -> scale (persisted on disk) -> count
    let mut plan = Plan::new();
    let lines = plan.add(Node::text_file("file:///data", 2), false).unwrap();
    let step = |f: &str| Step { kind: StepKind::Map, function: f.into(), param: None };
    let parsed = plan.add(Node::Narrow { parent: lines, step: step("parse") }, true).unwrap();
    let scaled = plan.add(Node::Narrow { parent: parsed, step: step("scale") }, true).unwrap();
    let last = plan.add(Node::Narrow { parent: scaled, step: step("last") }, false).unwrap();
    plan.persist(parsed, Some(StorageLevel::MemoryOnly)).unwrap();
    plan.persist(scaled, Some(StorageLevel::DiskOnly)).unwrap();
    let g = dag::build(&plan, last, &[(lines, 2)].into()).unwrap();
    let (mut ctx, _) = word_count(ResultSink::Count);
    ctx.plan = plan;
    let stage = &g.stages[0];
    let put = |dataset, after, level| CachePut { dataset, partition: 1, after, level, keyed: true };

    // Nothing kept: computed from the text, both partitions kept on the way.
    let w = work(descriptor(&ctx, stage, &stage.tasks[1], key(0, 1), &no_maps, &nothing_kept).unwrap());
    assert!(matches!(w.input, TaskInput::Text(_)), "{:?}", w.input);
    assert_eq!(w.chain.len(), 3);
    assert_eq!(w.cache, [put(parsed, 1, StorageLevel::MemoryOnly), put(scaled, 2, StorageLevel::DiskOnly)]);

    // The parsed partition is kept here: read it, run the rest, keep the scaled one.
    let here = |d: DatasetId, p: u32| (d == parsed && p == 1).then_some(Kept::Here);
    let w = work(descriptor(&ctx, stage, &stage.tasks[1], key(0, 1), &no_maps, &here).unwrap());
    assert_eq!(w.input, TaskInput::Cached(CachedRead { dataset: parsed, partition: 1, address: None }));
    assert_eq!(w.chain.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(), ["scale", "last"]);
    assert_eq!(w.cache, [put(scaled, 1, StorageLevel::DiskOnly)], "after counts from the cached input");
    assert!(w.input_keyed && !w.output_keyed);

    // Both are kept, the scaled one elsewhere: the deeper one is read, from its agent.
    let both = |d: DatasetId, _| match d {
        d if d == scaled => Some(Kept::At("127.0.0.1:9".into())),
        d if d == parsed => Some(Kept::Here),
        _ => None,
    };
    let w = work(descriptor(&ctx, stage, &stage.tasks[1], key(0, 1), &no_maps, &both).unwrap());
    let want = CachedRead { dataset: scaled, partition: 1, address: Some("127.0.0.1:9".into()) };
    assert_eq!(w.input, TaskInput::Cached(want));
    assert_eq!(w.chain.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(), ["last"]);
    assert!(w.cache.is_empty());
}
