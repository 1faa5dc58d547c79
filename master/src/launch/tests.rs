use super::*;
use crate::dag;
use weft_core::ids::StageId;
use weft_core::plan::{ShuffleKind, Step, StepKind};

fn split(start: u64, end: u64) -> TextSplit {
    TextSplit { path: "data/in.txt".into(), start, end, file_len: 100 }
}

/// Word count over 2 splits (guest combine), and its context.
fn word_count(sink: ResultSink) -> (JobContext, dag::JobGraph) {
    let mut plan = Plan::new();
    let lines = plan.add(Node::TextFile { uri: "file:///data".into(), min_partitions: 2 }, false).unwrap();
    let words = plan.add(
        Node::Narrow { parent: lines, step: Step { kind: StepKind::FlatMap, function: "split".into() } },
        false,
    );
    let pairs = plan
        .add(
            Node::Narrow {
                parent: words.unwrap(),
                step: Step { kind: StepKind::Map, function: "one".into() },
            },
            true,
        )
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
        job: "job-7.1".into(),
        scope: "job-7".into(),
        component: "blake3:00".into(),
        artifact_source: "http://master:7070".into(),
        limits: TaskLimits::default(),
        broadcasts: vec![b"pattern".to_vec()],
        plan,
        text: [(lines, ("file:///data".to_string(), vec![split(0, 50), split(50, 100)]))].into(),
        sink,
        range_bounds: BTreeMap::new(),
    };
    (ctx, graph)
}

fn key(stage: u32, partition: u32) -> TaskKey {
    TaskKey { job: "job-7.1".into(), stage: StageId(stage), partition, attempt: 0 }
}

fn no_maps(s: ShuffleId) -> Result<Vec<(u32, String)>, LaunchError> {
    Err(LaunchError::MissingMapOutputs(s))
}

#[test]
fn a_map_task_reads_its_split_and_writes_combined_shuffle_output() {
    let (ctx, g) = word_count(ResultSink::Records { limit: None });
    let stage = &g.stages[0];
    let spec = task_spec(&ctx, stage, &stage.tasks[1], &key(0, 1), &no_maps).unwrap();
    let Some(v1::task_input::Source::Text(t)) = spec.input.unwrap().source else { panic!() };
    assert_eq!(
        (t.location.as_str(), t.object.as_str(), t.start, t.end),
        ("file:///data", "data/in.txt", 50, 100)
    );
    assert_eq!(spec.chain.len(), 2);
    assert!(!spec.input_keyed && spec.output_keyed);
    let Some(v1::task_output::Sink::Shuffle(w)) = spec.output.unwrap().sink else { panic!() };
    assert_eq!(w.partitions, 2);
    assert_eq!(w.combiner, Some(v1::shuffle_write::Combiner::Guest("add".into())));
    assert_eq!(spec.broadcasts.get(&0).map(|b| b.as_ref()), Some(&b"pattern"[..]));
    assert_eq!(spec.task.unwrap().job_id, "job-7.1");
    assert_eq!(spec.shuffle_scope, "job-7", "shuffle files live under the submitted job");
}

#[test]
fn a_reduce_task_reads_every_map_output_from_its_agent() {
    let (ctx, g) = word_count(ResultSink::Count);
    let stage = &g.stages[1];
    let maps = |_: ShuffleId| Ok(vec![(0, "10.0.0.1:7071".to_string()), (1, "10.0.0.2:7071".to_string())]);
    let spec = task_spec(&ctx, stage, &stage.tasks[0], &key(1, 0), &maps).unwrap();
    let Some(v1::task_input::Source::Shuffle(r)) = spec.input.unwrap().source else { panic!() };
    assert_eq!(r.reduce, 0);
    assert_eq!(r.aggregate, v1::Aggregate::Merge as i32);
    assert_eq!(
        r.maps.iter().map(|m| m.address.as_str()).collect::<Vec<_>>(),
        ["10.0.0.1:7071", "10.0.0.2:7071"]
    );
    assert_eq!(spec.chain, [v1::Step { kind: v1::StepKind::Reduce as i32, function: "add".into() }]);
    assert!(matches!(spec.output.unwrap().sink, Some(v1::task_output::Sink::Count(_))));

    let err = task_spec(&ctx, stage, &stage.tasks[0], &key(1, 0), &no_maps).unwrap_err();
    assert!(matches!(err, LaunchError::MissingMapOutputs(_)));
}

#[test]
fn result_sinks_follow_the_action() {
    for (sink, check) in [
        (ResultSink::Records { limit: Some(10) }, "result 10"),
        (ResultSink::Text("s3://b/out".into()), "text s3://b/out"),
    ] {
        let (ctx, g) = word_count(sink);
        let stage = &g.stages[1];
        let maps = |_: ShuffleId| Ok(vec![(0, "a".to_string()), (1, "b".to_string())]);
        let spec = task_spec(&ctx, stage, &stage.tasks[1], &key(1, 1), &maps).unwrap();
        let got = match spec.output.unwrap().sink.unwrap() {
            v1::task_output::Sink::Result(r) => format!("result {}", r.limit),
            v1::task_output::Sink::Text(t) => format!("text {}", t.location),
            other => format!("{other:?}"),
        };
        assert_eq!(got, check);
    }
}

#[test]
fn a_multi_partition_sort_writes_with_its_sampled_bounds() {
    let mut plan = Plan::new();
    let xs = plan.add(Node::Parallelize { partitions: vec![vec![], vec![]] }, true).unwrap();
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
    let err = task_spec(&ctx, stage, &stage.tasks[0], &key(0, 0), &no_maps).unwrap_err();
    assert_eq!(err, LaunchError::MissingRangeBounds(shuffle));

    ctx.range_bounds.insert(shuffle, vec![b"g".to_vec(), b"p".to_vec()]);
    let spec = task_spec(&ctx, stage, &stage.tasks[0], &key(0, 0), &no_maps).unwrap();
    let Some(v1::task_output::Sink::Shuffle(w)) = spec.output.unwrap().sink else {
        panic!("a shuffle write")
    };
    assert_eq!(w.partitions, 3);
    assert_eq!(w.range_bounds, [&b"g"[..], &b"p"[..]]);
    assert!(w.descending && w.ranged);
}

#[test]
fn a_sample_job_asks_for_key_samples() {
    let (ctx, graph) = word_count(ResultSink::KeySample(30));
    let stage = graph.result_stage().unwrap();
    let spec = task_spec(&ctx, stage, &stage.tasks[0], &key(1, 0), &|_| Ok(vec![(0, "a:1".into())])).unwrap();
    assert_eq!(
        spec.output.unwrap().sink,
        Some(v1::task_output::Sink::Sample(v1::KeySampleOutput { size: 30 }))
    );
}
