use super::*;
use weft_core::plan::Node;

fn step(kind: StepKind, f: &str) -> Step {
    Step::new(kind, f)
}

fn text(p: &mut Plan, splits: &mut BTreeMap<DatasetId, u32>, n: u32) -> DatasetId {
    let ds = p.add(Node::text_file("in", n), false).unwrap();
    splits.insert(ds, n);
    ds
}

fn narrow(p: &mut Plan, parent: DatasetId, kind: StepKind, f: &str, keyed: bool) -> DatasetId {
    p.add(Node::Narrow { parent, step: step(kind, f) }, keyed).unwrap()
}

#[test]
fn word_count_is_a_map_stage_and_a_result_stage() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let lines = text(&mut p, &mut splits, 2);
    let words = narrow(&mut p, lines, StepKind::FlatMap, "split_words", false);
    let pairs = narrow(&mut p, words, StepKind::Map, "one", true);
    let counts = p
        .add(
            Node::Shuffle {
                parent: pairs,
                kind: ShuffleKind::ReduceByKey { function: "add".into() },
                partitions: 3,
            },
            true,
        )
        .unwrap();
    let out = narrow(&mut p, counts, StepKind::Map, "format", false);

    let g = build(&p, out, &splits).unwrap();
    assert_eq!(g.stages.len(), 2);
    let (map, result) = (&g.stages[0], &g.stages[1]);
    let shuffle = ShuffleId(counts.0 * 2);
    assert_eq!(
        map.kind,
        StageKind::ShuffleMap {
            shuffle,
            partitions: 3,
            partitioner: PartitionerSpec::Hash,
            combiner: CombinerSpec::Guest("add".into())
        }
    );
    assert_eq!(map.tasks.len(), 2, "one map task per input split");
    assert_eq!(map.tasks[1].source, Source::Text { dataset: lines, split: 1 });
    assert_eq!(*map.tasks[0].chain, [step(StepKind::FlatMap, "split_words"), step(StepKind::Map, "one")]);
    assert!(!map.tasks[0].input_keyed && map.tasks[0].output_keyed);

    assert_eq!(result.kind, StageKind::Result);
    assert_eq!(result.parents, [map.id]);
    assert_eq!(result.tasks.len(), 3, "one result task per reduce partition");
    let t = &result.tasks[2];
    assert_eq!(t.source, Source::Shuffle { shuffle, reduce: 2, aggregate: Aggregate::Merge });
    assert_eq!(*t.chain, [step(StepKind::Reduce, "add"), step(StepKind::Map, "format")]);
    assert!(t.input_keyed && !t.output_keyed);
}

#[test]
fn narrow_steps_pipeline_into_one_stage() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let mut ds = text(&mut p, &mut splits, 4);
    for f in ["a", "b", "c"] {
        ds = narrow(&mut p, ds, StepKind::Map, f, false);
    }
    ds = narrow(&mut p, ds, StepKind::Filter, "keep", false);
    let g = build(&p, ds, &splits).unwrap();
    assert_eq!(g.stages.len(), 1);
    assert_eq!(g.stages[0].tasks.len(), 4);
    assert_eq!(g.stages[0].tasks[3].chain.len(), 4);
}

#[test]
fn sum_and_group_aggregate_in_the_host() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let lines = text(&mut p, &mut splits, 1);
    let pairs = narrow(&mut p, lines, StepKind::Map, "one", true);
    let sums =
        p.add(Node::Shuffle { parent: pairs, kind: ShuffleKind::SumByKey, partitions: 2 }, true).unwrap();
    let g = build(&p, sums, &splits).unwrap();
    assert!(matches!(g.stages[0].kind, StageKind::ShuffleMap { combiner: CombinerSpec::SumI64, .. }));
    assert!(g.stages[1].tasks[0].chain.is_empty(), "no guest call needed on the reduce side");
    assert!(matches!(g.stages[1].tasks[0].source, Source::Shuffle { aggregate: Aggregate::SumI64, .. }));

    let fold = weft_core::fold::Fold::Max;
    let maxes = p
        .add(Node::Shuffle { parent: pairs, kind: ShuffleKind::FoldByKey { fold }, partitions: 2 }, true)
        .unwrap();
    let g = build(&p, maxes, &splits).unwrap();
    assert!(
        matches!(g.stages[0].kind, StageKind::ShuffleMap { combiner: CombinerSpec::Fold(f), .. } if f == fold)
    );
    assert!(g.stages[1].tasks[0].chain.is_empty(), "a native fold needs no guest call either");
    assert!(
        matches!(g.stages[1].tasks[0].source, Source::Shuffle { aggregate: Aggregate::Fold(f), .. } if f == fold)
    );

    let groups =
        p.add(Node::Shuffle { parent: pairs, kind: ShuffleKind::GroupByKey, partitions: 2 }, true).unwrap();
    let g = build(&p, groups, &splits).unwrap();
    assert!(matches!(g.stages[0].kind, StageKind::ShuffleMap { combiner: CombinerSpec::None, .. }));
    assert!(matches!(
        g.stages[1].tasks[1].source,
        Source::Shuffle { aggregate: Aggregate::Group, reduce: 1, .. }
    ));
}

#[test]
fn a_join_reads_two_shuffles() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let a = text(&mut p, &mut splits, 2);
    let a = narrow(&mut p, a, StepKind::Map, "ka", true);
    let b = text(&mut p, &mut splits, 5);
    let b = narrow(&mut p, b, StepKind::Map, "kb", true);
    let j = p.add(Node::Join { left: a, right: b, partitions: 4 }, true).unwrap();
    let g = build(&p, j, &splits).unwrap();
    assert_eq!(g.stages.len(), 3);
    assert_eq!((g.stages[0].tasks.len(), g.stages[1].tasks.len()), (2, 5));
    let result = g.result_stage().unwrap();
    assert_eq!(result.parents, [StageId(0), StageId(1)]);
    assert_eq!(
        result.tasks[3].source,
        Source::Join { left: ShuffleId(j.0 * 2), right: ShuffleId(j.0 * 2 + 1), reduce: 3 }
    );
}

#[test]
fn union_concatenates_partitions_with_their_own_chains() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let a = text(&mut p, &mut splits, 2);
    let a = narrow(&mut p, a, StepKind::Map, "from_a", false);
    let b = text(&mut p, &mut splits, 3);
    let u = p.add(Node::Union { a, b }, false).unwrap();
    let u = narrow(&mut p, u, StepKind::Map, "after", false);
    let g = build(&p, u, &splits).unwrap();
    let tasks = &g.stages[0].tasks;
    assert_eq!(tasks.iter().map(|t| t.partition).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(*tasks[0].chain, [step(StepKind::Map, "from_a"), step(StepKind::Map, "after")]);
    assert_eq!(*tasks[4].chain, [step(StepKind::Map, "after")]);
    assert_eq!(tasks[4].source, Source::Text { dataset: DatasetId(2), split: 2 });
}

#[test]
fn a_shuffle_on_two_paths_is_one_map_stage_before_its_readers() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let lines = text(&mut p, &mut splits, 2);
    let pairs = narrow(&mut p, lines, StepKind::Map, "one", true);
    let sums =
        p.add(Node::Shuffle { parent: pairs, kind: ShuffleKind::SumByKey, partitions: 2 }, true).unwrap();
    let left = narrow(&mut p, sums, StepKind::Filter, "big", true);
    let j = p.add(Node::Join { left, right: sums, partitions: 2 }, true).unwrap();
    let g = build(&p, j, &splits).unwrap();
    let map_stages = g
        .stages
        .iter()
        .filter(
            |s| matches!(&s.kind, StageKind::ShuffleMap { shuffle, .. } if *shuffle == ShuffleId(sums.0 * 2)),
        )
        .count();
    assert_eq!(map_stages, 1, "the sum shuffle is written once");
    for (i, s) in g.stages.iter().enumerate() {
        assert_eq!(s.id, StageId(i as u32));
        assert!(s.parents.iter().all(|p| p.0 < s.id.0), "stage {} comes after its parents", s.id);
    }
}

#[test]
fn zero_partitions_means_the_parents_count() {
    let (mut p, mut splits) = (Plan::new(), BTreeMap::new());
    let a = text(&mut p, &mut splits, 3);
    let a = narrow(&mut p, a, StepKind::Map, "ka", true);
    let b = text(&mut p, &mut splits, 5);
    let b = narrow(&mut p, b, StepKind::Map, "kb", true);
    let sums = p.add(Node::Shuffle { parent: a, kind: ShuffleKind::SumByKey, partitions: 0 }, true).unwrap();
    assert_eq!(build(&p, sums, &splits).unwrap().stages[1].tasks.len(), 3);
    let j = p.add(Node::Join { left: sums, right: b, partitions: 0 }, true).unwrap();
    assert_eq!(build(&p, j, &splits).unwrap().result_stage().unwrap().tasks.len(), 5, "the larger side");
}

#[test]
fn unsplit_text_is_an_error() {
    let mut p = Plan::new();
    let t = p.add(Node::text_file("in", 1), false).unwrap();
    assert_eq!(build(&p, t, &BTreeMap::new()), Err(DagError::Unsplit(t)));
    assert!(matches!(build(&p, DatasetId(9), &BTreeMap::new()), Err(DagError::Plan(_))));
}
