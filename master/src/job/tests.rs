use super::*;
use crate::dag;
use crate::free::Free;
use weft_core::ids::{DatasetId, Incarnation, JobId};
use weft_core::plan::{Node, Plan, ShuffleKind, Step, StepKind};
use weft_core::task::Data;

/// The plan of a word count over 2 splits into 3 reduce partitions: (plan, lines, counts).
fn counting() -> (Plan, DatasetId, DatasetId) {
    let mut p = Plan::new();
    let lines = p.add(Node::text_file("in", 2), false).unwrap();
    let pairs = p.add(Node::Narrow { parent: lines, step: Step::new(StepKind::Map, "one") }, true).unwrap();
    let counts =
        p.add(Node::Shuffle { parent: pairs, kind: ShuffleKind::SumByKey, partitions: 3 }, true).unwrap();
    (p, lines, counts)
}

/// Word count: stage 0 (2 map tasks), stage 1 (3 result tasks).
fn word_count() -> JobRun {
    let (p, lines, counts) = counting();
    let graph = dag::build(&p, counts, &[(lines, 2)].into()).unwrap();
    JobRun::new(action(1), graph, 3)
}

fn action(seq: u32) -> ActionId {
    ActionId { job: JobId { incarnation: Incarnation(1), seq: 1 }, seq }
}

const A: AgentId = AgentId { incarnation: Incarnation(1), seq: 1 };
const B: AgentId = AgentId { incarnation: Incarnation(1), seq: 2 };

fn finish(run: &mut JobRun, key: &TaskKey, result: &'static [u8]) {
    let result = TaskResult { records: 1, batch: Data::Inline(bytes::Bytes::from_static(result)) };
    let outcome = Outcome::Finished { result, partition_bytes: vec![10, 20, 30] };
    run.on_outcome(key, outcome);
}

fn launch_all(run: &mut JobRun, agent: AgentId) -> Vec<TaskKey> {
    run.ready().into_iter().map(|(s, p)| run.launch(s, p, agent).unwrap()).collect()
}

fn fetch_failed(shuffle: ShuffleId, map: u32) -> Outcome {
    Outcome::Failed(EndReason::FetchFailed { shuffle, map, message: "peer gone".into() })
}

fn shuffle(run: &JobRun) -> ShuffleId {
    match run.graph().stages[0].kind {
        StageKind::ShuffleMap { shuffle, .. } => shuffle,
        StageKind::Result => unreachable!(),
    }
}

#[test]
fn stages_run_in_order_and_results_are_collected() {
    let mut run = word_count();
    assert_eq!(run.ready(), [(StageId(0), 0), (StageId(0), 1)], "only the map stage is ready");
    let maps = launch_all(&mut run, A);
    assert!(run.ready().is_empty(), "launched tasks are not ready again");
    assert_eq!(run.progress()[0].running, 2);
    finish(&mut run, &maps[0], b"");
    assert!(run.ready().is_empty(), "reduce waits for every map output");
    finish(&mut run, &maps[1], b"");
    assert_eq!(run.map_locations(shuffle(&run)).unwrap(), [(0, A), (1, A)]);

    let reduces = launch_all(&mut run, B);
    assert_eq!(reduces.len(), 3);
    for (k, r) in reduces.iter().zip([&b"r0"[..], b"r1", b"r2"]) {
        assert_eq!(run.state(), &JobState::Running);
        let r: &'static [u8] = Box::leak(r.to_vec().into_boxed_slice());
        finish(&mut run, k, r);
    }
    assert_eq!(run.state(), &JobState::Succeeded);
    let batches: Vec<Data> = run.results().unwrap().into_iter().map(|r| r.batch).collect();
    let inline = |b: &'static [u8]| Data::Inline(bytes::Bytes::from_static(b));
    assert_eq!(batches, [inline(b"r0"), inline(b"r1"), inline(b"r2")]);
    let progress = run.progress();
    assert_eq!(
        progress.iter().map(|p| (p.kind, p.tasks, p.finished, p.running)).collect::<Vec<_>>(),
        [("map", 2, 2, 0), ("result", 3, 3, 0)]
    );
}

#[test]
fn host_errors_are_retried_up_to_the_limit() {
    let mut run = word_count();
    let host = || Outcome::Failed(EndReason::HostError { message: "disk full".into() });
    for attempt in 0..3 {
        let key = run.launch(StageId(0), 0, A).unwrap();
        assert_eq!(key.attempt, attempt, "each retry is a new attempt");
        run.on_outcome(&key, host());
    }
    let JobState::Failed(msg) = run.state() else { panic!("{:?}", run.state()) };
    assert!(msg.contains("failed 3 times") && msg.contains("disk full"), "{msg}");
    assert!(run.ready().is_empty(), "a failed job launches nothing");
}

#[test]
fn guest_failures_fail_the_job_at_once() {
    let mut run = word_count();
    let key = run.launch(StageId(0), 1, A).unwrap();
    run.on_outcome(&key, Outcome::Failed(EndReason::OutOfFuel { limit: 100 }));
    let JobState::Failed(msg) = run.state() else { panic!() };
    assert!(msg.contains("out of fuel"), "{msg}");
}

#[test]
fn late_events_from_old_attempts_are_ignored() {
    let mut run = word_count();
    let old = run.launch(StageId(0), 0, A).unwrap();
    run.on_agent_lost(A);
    let new = run.launch(StageId(0), 0, B).unwrap();
    assert_eq!(new.attempt, old.attempt + 1);
    finish(&mut run, &old, b"");
    assert!(run.map_locations(shuffle(&run)).is_none(), "the stale finish did not count");
    finish(&mut run, &new, b"");
    assert_eq!(run.map_locations(shuffle(&run)).map(|l| l.len()), None, "map 1 still missing");
}

#[test]
fn a_map_output_names_the_attempt_that_wrote_it() {
    let mut run = word_count();
    let first = launch_all(&mut run, A);
    run.on_outcome(&first[0], Outcome::Failed(EndReason::HostError { message: "disk full".into() }));
    let retry = run.launch(StageId(0), 0, B).unwrap();
    assert_eq!(retry.attempt, 1);
    finish(&mut run, &retry, b"");
    finish(&mut run, &first[1], b"");
    let outs = &run.map_outputs()[&shuffle(&run)];
    let written: Vec<_> = outs.iter().map(|o| o.as_ref().map(|o| (o.agent, o.attempt))).collect();
    assert_eq!(written, [Some((B, 1)), Some((A, 0))], "each output is its finishing attempt's");
}

#[test]
fn a_lost_agent_takes_its_tasks_and_map_outputs_with_it() {
    let mut run = word_count();
    let maps = launch_all(&mut run, A);
    finish(&mut run, &maps[0], b"");
    let m1 = run.launch(StageId(0), 1, B);
    assert!(m1.is_none(), "map 1 is running on A already");
    let interrupted = run.on_agent_lost(A);
    assert_eq!(interrupted, [maps[1]], "the running attempt is reported");
    assert_eq!(
        run.ready(),
        [(StageId(0), 0), (StageId(0), 1)],
        "both maps run again: map 0's output was on A"
    );
    assert_eq!(run.state(), &JobState::Running, "losing an agent is not a failure");
}

#[test]
fn a_fetch_failure_recomputes_the_map_outputs_of_the_agent_it_failed_on() {
    let mut run = word_count();
    let m0 = run.launch(StageId(0), 0, A).unwrap();
    let m1 = run.launch(StageId(0), 1, B).unwrap();
    finish(&mut run, &m0, b"");
    finish(&mut run, &m1, b"");
    let reduces = launch_all(&mut run, A);
    let sh = shuffle(&run);
    run.on_outcome(&reduces[0], fetch_failed(sh, 1));
    assert_eq!(run.ready(), [(StageId(0), 1)], "map 1 runs again before the reduce retries");
    // Another reader launched before map 1 was computed again reports the
    // same loss: it is not counted again.
    run.on_outcome(&reduces[1], fetch_failed(sh, 1));
    assert_eq!(run.ready(), [(StageId(0), 1)]);
    let again = run.launch(StageId(0), 1, B).unwrap();
    finish(&mut run, &again, b"");
    assert_eq!(run.map_locations(sh).unwrap(), [(0, A), (1, B)]);
    assert_eq!(run.ready(), [(StageId(1), 0), (StageId(1), 1)]);
    assert_eq!(run.state(), &JobState::Running);
}

/// Word count, then sorted by key into one partition: map stage, middle stage, result.
fn counted_then_sorted() -> JobRun {
    let (mut p, lines, counts) = counting();
    let sorted = p
        .add(
            Node::Shuffle { parent: counts, kind: ShuffleKind::SortByKey { ascending: true }, partitions: 1 },
            true,
        )
        .unwrap();
    let graph = dag::build(&p, sorted, &[(lines, 2)].into()).unwrap();
    JobRun::new(action(2), graph, 3)
}

#[test]
fn a_later_action_adopts_map_outputs_and_skips_their_tasks() {
    let mut first = word_count();
    for key in launch_all(&mut first, A) {
        finish(&mut first, &key, b"");
    }
    let mut second = word_count();
    assert_eq!(second.adopt(first.map_outputs()), 2, "both map tasks are skipped");
    let ready = second.ready();
    assert_eq!(ready.len(), 3, "only the result tasks run: {ready:?}");
    assert!(ready.iter().all(|(s, _)| *s == StageId(1)));
    assert_eq!(second.map_locations(shuffle(&second)).unwrap(), [(0, A), (1, A)]);
    assert_eq!(second.progress()[0].finished, 2, "a skipped stage shows as done");

    // A fetch failure on an adopted output re-runs that map task (and the
    // other one its agent held).
    let reduce = second.launch(StageId(1), 0, B).unwrap();
    second.on_outcome(&reduce, fetch_failed(shuffle(&second), 1));
    assert_eq!(second.ready()[..2], [(StageId(0), 0), (StageId(0), 1)]);
}

#[test]
fn adopting_partial_or_mismatched_outputs_runs_only_what_is_missing() {
    let mut first = word_count();
    let maps = launch_all(&mut first, A);
    finish(&mut first, &maps[1], b"");
    let mut second = word_count();
    assert_eq!(second.adopt(first.map_outputs()), 1);
    assert_eq!(second.ready(), [(StageId(0), 0)], "only the missing map output is computed");

    let mut other: MapOutputs = BTreeMap::new();
    other.insert(
        shuffle(&second),
        vec![Some(MapOutput { agent: A, attempt: 0, sizes: Default::default(), since: 0 }); 5],
    );
    let mut third = word_count();
    assert_eq!(third.adopt(&other), 0, "a different split count is not the same shuffle output");
    assert_eq!(third.ready().len(), 2);
}

#[test]
fn an_adopted_later_shuffle_spares_the_stages_before_it() {
    let mut first = counted_then_sorted();
    while first.state() == &JobState::Running {
        for key in launch_all(&mut first, A) {
            finish(&mut first, &key, b"");
        }
    }
    assert_eq!(first.state(), &JobState::Succeeded);
    let mut second = counted_then_sorted();
    assert_eq!(second.adopt(first.map_outputs()), 5, "2 map tasks + 3 middle tasks");
    let ready = second.ready();
    assert_eq!(ready, [(StageId(2), 0)], "neither the first nor the middle stage runs again");
}

#[test]
fn a_failed_job_launches_nothing_more() {
    let mut run = word_count();
    run.fail("killed on request");
    assert_eq!(run.state(), &JobState::Failed("killed on request".into()));
    assert!(run.ready().is_empty());
}

/// Offers of `n` places and `n` GiB per agent.
fn offers(slots: &[(AgentId, u32)]) -> FreeIndex {
    let mut index = FreeIndex::new();
    for (agent, n) in slots {
        index.set(*agent, Free { places: *n, memory: u64::from(*n) << 30 });
    }
    index
}

/// A task of one slot and 1 GiB.
const ONE: Demand = Demand { places: 1, memory: 1 << 30 };

#[test]
fn a_job_accepts_offers_with_ready_tasks_and_declines_the_rest() {
    let mut run = word_count();

    // Two map tasks over offers of 2 + 3 slots: spread, most free first.
    let mut slots = offers(&[(A, 2), (B, 3)]);
    let maps = run.accept(&mut slots, ONE);
    let agents: Vec<AgentId> = maps.iter().map(|(_, a)| *a).collect();
    assert_eq!(agents, [B, A], "one on each agent, the one with more slots first");
    assert_eq!((slots.free(A).places, slots.free(B).places), (1, 2), "the slots taken, the rest declined");
    assert!(run.accept(&mut offers(&[(A, 4), (B, 4)]), ONE).is_empty(), "nothing ready: every slot declined");

    // Their outputs are 10/20/30 bytes per reduce partition on one agent,
    // and 1 byte each on the other.
    let bytes = |key: &TaskKey| if key.partition == 1 { vec![10, 20, 30] } else { vec![1, 1, 1] };
    for (key, _) in &maps {
        let outcome = Outcome::Finished { result: TaskResult::default(), partition_bytes: bytes(key) };
        run.on_outcome(key, outcome);
    }
    let holder = run.map_locations(shuffle(&run)).unwrap()[1].1;

    // Each reduce task would rather run where most of its input is; with one
    // slot there, the others go where there is room.
    let other = if holder == A { B } else { A };
    let placed = run.accept(&mut offers(&[(holder, 1), (other, 4)]), ONE);
    let on_holder = placed.iter().filter(|(_, a)| *a == holder).count();
    assert_eq!((placed.len(), on_holder), (3, 1), "{placed:?}");
    assert!(run.ready().is_empty(), "every task placed");
}

#[test]
fn placing_a_task_costs_the_same_in_a_large_job() {
    // 100,000 tasks: every placement round pops from the stage's queue, so
    // placing all of them in rounds of 8 slots takes linear time overall
    // (counted here as calls that return, not timed).
    let mut p = Plan::new();
    let xs = p.add(Node::Parallelize { partitions: vec![Data::default(); 100_000] }, false).unwrap();
    let graph = dag::build(&p, xs, &BTreeMap::new()).unwrap();
    let mut run = JobRun::new(action(1), graph, 1);
    let mut launched = 0;
    while launched < 100_000 {
        let placed = run.accept(&mut offers(&[(A, 8)]), ONE);
        assert_eq!(placed.len(), 8.min(100_000 - launched));
        for (key, _) in placed {
            let outcome = Outcome::Finished { result: TaskResult::default(), partition_bytes: vec![] };
            assert!(run.on_outcome(&key, outcome));
            launched += 1;
        }
        assert_eq!(run.progress()[0].finished as usize, launched);
    }
    assert_eq!(run.state(), &JobState::Succeeded);
}

#[test]
fn a_reduce_task_over_too_many_map_outputs_prefers_no_agent() {
    // Every map output on A, all of it for reduce partition 0: A is preferred
    // up to the threshold, and past it the pass over the outputs is skipped.
    for (maps, preferred) in [(PREF_MAP_THRESHOLD, vec![A]), (PREF_MAP_THRESHOLD + 1, vec![])] {
        let mut p = Plan::new();
        let xs = p.add(Node::Parallelize { partitions: vec![Data::default(); maps] }, true).unwrap();
        let sums = p.add(Node::Shuffle { parent: xs, kind: ShuffleKind::SumByKey, partitions: 2 }, true);
        let graph = dag::build(&p, sums.unwrap(), &BTreeMap::new()).unwrap();
        let mut run = JobRun::new(action(1), graph, 1);
        for key in launch_all(&mut run, A) {
            let outcome = Outcome::Finished { result: TaskResult::default(), partition_bytes: vec![7, 0] };
            assert!(run.on_outcome(&key, outcome));
        }
        assert_eq!(run.preferred_agents(StageId(1), 0), preferred, "{maps} map outputs");
    }
}

/// Two text partitions parsed into a persisted dataset, counted.
fn persisted() -> (JobRun, DatasetId) {
    let mut p = Plan::new();
    let lines = p.add(Node::text_file("in", 2), false).unwrap();
    let step = Step { kind: StepKind::Map, function: "parse".into(), param: None };
    let parsed = p.add(Node::Narrow { parent: lines, step }, true).unwrap();
    p.persist(parsed, Some(weft_core::plan::StorageLevel::MemoryOnly)).unwrap();
    let graph = dag::build(&p, parsed, &[(lines, 2)].into()).unwrap();
    (JobRun::new(action(1), graph, 1).with_locality_wait(Duration::from_secs(3)), parsed)
}

#[test]
fn a_task_waits_for_the_agent_keeping_its_input_then_runs_elsewhere() {
    let (mut run, parsed) = persisted();
    let kept = |agent| KeptAt { agent, bytes: 10, memory: true };
    let cached: CacheIndex = [((parsed, 0), kept(A)), ((parsed, 1), kept(B))].into();
    let t0 = Instant::now();
    let at = |secs| Locality { cached: &cached, excluded: &[], now: t0 + Duration::from_secs(secs) };

    // Only A has room: partition 0 goes there, partition 1 waits for B.
    let placed = run.accept_up_to(&mut offers(&[(A, 4)]), ONE, usize::MAX, at(0));
    assert_eq!(placed.iter().map(|(k, a)| (k.partition, *a)).collect::<Vec<_>>(), [(0, A)]);
    let placed = run.accept_up_to(&mut offers(&[(A, 4)]), ONE, usize::MAX, at(2));
    assert!(placed.is_empty(), "within the locality wait it still waits for B");
    // Past the wait it runs where there is room.
    let placed = run.accept_up_to(&mut offers(&[(A, 4)]), ONE, usize::MAX, at(4));
    assert_eq!(placed.iter().map(|(k, a)| (k.partition, *a)).collect::<Vec<_>>(), [(1, A)]);

    // A task whose input an excluded agent keeps does not wait for it.
    let (mut run, _) = persisted();
    let excluded = Locality { cached: &cached, excluded: &[B], now: t0 };
    let placed = run.accept_up_to(&mut offers(&[(A, 4)]), ONE, usize::MAX, excluded);
    assert_eq!(placed.iter().map(|(k, a)| (k.partition, *a)).collect::<Vec<_>>(), [(0, A), (1, A)]);
}

#[test]
fn a_cache_miss_runs_the_task_again_without_counting_a_failure() {
    let (mut run, parsed) = persisted();
    let keys = launch_all(&mut run, A);
    let miss = EndReason::CacheMiss { dataset: parsed, partition: 0, message: "evicted".into() };
    // One attempt allowed, yet a miss is no failure: the task is ready again.
    assert!(run.on_outcome(&keys[0], Outcome::Failed(miss)));
    assert_eq!(run.state(), &JobState::Running);
    assert_eq!(run.ready(), [(keys[0].stage, 0)]);
    assert_eq!(run.progress()[0].failed, 0);
}

/// Word count whose counts (the shuffle's output) are persisted: (run, counts).
fn persisted_counts() -> (JobRun, DatasetId) {
    let (mut p, lines, counts) = counting();
    p.persist(counts, Some(weft_core::plan::StorageLevel::MemoryOnly)).unwrap();
    let graph = dag::build(&p, counts, &[(lines, 2)].into()).unwrap();
    (JobRun::new(action(1), graph, 3), counts)
}

#[test]
fn a_stage_whose_partitions_are_all_kept_runs_without_its_parents() {
    let (mut run, counts) = persisted_counts();
    let kept = |agent| KeptAt { agent, bytes: 10, memory: true };
    let cached: CacheIndex = (0..3).map(|p| ((counts, p), kept(if p == 1 { B } else { A }))).collect();
    assert_eq!(run.cut_at_kept(&cached), 1);
    assert_eq!(run.ready(), [(StageId(1), 0), (StageId(1), 1), (StageId(1), 2)], "no map task runs");
    let locality = Locality { cached: &cached, excluded: &[], now: Instant::now() };
    let placed = run.accept_up_to(&mut offers(&[(A, 4), (B, 4)]), ONE, usize::MAX, locality);
    let mut at: Vec<_> = placed.iter().map(|(k, a)| (k.stage, k.partition, *a)).collect();
    at.sort();
    assert_eq!(at, [(StageId(1), 0, A), (StageId(1), 1, B), (StageId(1), 2, A)]);
    for (key, _) in &placed {
        finish(&mut run, key, b"");
    }
    assert_eq!(run.state(), &JobState::Succeeded);
    assert_eq!(run.progress()[0].finished, 0, "the map stage never ran");

    // Not every partition kept: nothing is cut.
    let (mut partial, _) = persisted_counts();
    let two: CacheIndex = cached.iter().filter(|((_, p), _)| *p != 2).map(|(k, v)| (*k, *v)).collect();
    assert_eq!(partial.cut_at_kept(&two), 0);
    assert_eq!(partial.ready(), [(StageId(0), 0), (StageId(0), 1)]);
}

#[test]
fn a_cut_stage_whose_kept_partition_is_gone_waits_for_its_parents_again() {
    let (mut run, counts) = persisted_counts();
    let kept = KeptAt { agent: A, bytes: 10, memory: true };
    let mut cached: CacheIndex = (0..3).map(|p| ((counts, p), kept)).collect();
    assert_eq!(run.cut_at_kept(&cached), 1);
    let now = Instant::now();
    let placed = run.accept_up_to(
        &mut offers(&[(A, 1)]),
        ONE,
        usize::MAX,
        Locality { cached: &cached, excluded: &[], now },
    );
    assert_eq!(placed.len(), 1);
    let (first, _) = placed[0];
    // A read miss on the first; the others' partitions are lost with their agent.
    let miss = EndReason::CacheMiss { dataset: counts, partition: first.partition, message: "gone".into() };
    assert!(run.on_outcome(&first, Outcome::Failed(miss)));
    cached.clear();
    let placed = run.accept_up_to(
        &mut offers(&[(A, 4)]),
        ONE,
        usize::MAX,
        Locality { cached: &cached, excluded: &[], now },
    );
    assert!(placed.is_empty(), "the reduce tasks cannot read the shuffle before its map tasks ran");
    assert_eq!(run.ready(), [(StageId(0), 0), (StageId(0), 1)], "the parents run again");
    for key in launch_all(&mut run, A) {
        finish(&mut run, &key, b"");
    }
    assert_eq!(run.ready(), [(StageId(1), 0), (StageId(1), 1), (StageId(1), 2)]);
    for key in launch_all(&mut run, B) {
        finish(&mut run, &key, b"");
    }
    assert_eq!(run.state(), &JobState::Succeeded);
}

#[test]
fn a_cut_stage_put_back_behind_its_parents_waits_for_them() {
    let (mut run, counts) = persisted_counts();
    let kept = KeptAt { agent: A, bytes: 10, memory: true };
    let cached: CacheIndex = (0..3).map(|p| ((counts, p), kept)).collect();
    assert_eq!(run.cut_at_kept(&cached), 1);
    // Describing a task found no input (its keeper went between placing and
    // describing): the master puts the stage back behind its parents.
    let key = run.launch(StageId(1), 0, A).unwrap();
    run.uncut(StageId(1));
    assert!(run.on_outcome(&key, Outcome::Interrupted(TaskState::Lost)));
    assert_eq!(run.ready(), [(StageId(0), 0), (StageId(0), 1)], "the map stage runs, then the reduce");
}

#[test]
fn a_stage_whose_map_outputs_are_lost_again_and_again_fails_its_job_instead_of_looping() {
    let mut run = word_count();
    let sh = shuffle(&run);
    let mut maps = launch_all(&mut run, A);
    for round in 1..=MAX_STAGE_ATTEMPTS {
        for m in &maps {
            finish(&mut run, m, b"");
        }
        // Every reduce task finds map output 1 lost (corrupt as written):
        // one loss, however many readers report it.
        let reduces = launch_all(&mut run, B);
        assert_eq!(reduces.len(), 3);
        for r in &reduces {
            run.on_outcome(r, fetch_failed(sh, 1));
        }
        if round < MAX_STAGE_ATTEMPTS {
            assert_eq!(run.state(), &JobState::Running, "round {round}");
            assert_eq!(run.ready(), [(StageId(0), 0), (StageId(0), 1)], "A's map outputs run again");
            maps = launch_all(&mut run, A);
        }
    }
    let JobState::Failed(message) = run.state() else { panic!("{:?}", run.state()) };
    assert!(message.contains("map output 1") && message.contains("lost 4 times"), "{message}");
    assert!(message.contains("peer gone"), "{message}");
}

#[test]
fn an_agent_whose_outputs_all_fail_their_fetches_at_once_does_not_fail_the_job() {
    // A killed agent held all 6 map outputs; before the master finds it
    // lost, its readers fail on one output each: one incident, not 6 losses.
    let (p, lines, counts) = counting();
    let graph = dag::build(&p, counts, &[(lines, 6)].into()).unwrap();
    let mut run = JobRun::new(action(1), graph, 3);
    let sh = shuffle(&run);
    for m in launch_all(&mut run, A) {
        finish(&mut run, &m, b"");
    }
    let reduces = launch_all(&mut run, B);
    for (r, map) in reduces.iter().zip(0..) {
        run.on_outcome(r, fetch_failed(sh, map));
    }
    assert_eq!(run.state(), &JobState::Running);
    assert_eq!(run.ready().iter().filter(|(s, _)| *s == StageId(0)).count(), 6, "every output runs again");
}

#[test]
fn a_task_on_a_slow_agent_is_a_straggler_once_it_has_run_the_least_runtime() {
    let s = Speculation { quantile: 0.75, multiplier: 1.5, min_runtime: Duration::from_secs(1) };
    let mut run = word_count().with_speculation(Some(s));
    let at = Instant::now();
    let on_a = run.launch(StageId(0), 0, A).unwrap();
    run.launch(StageId(0), 1, B).unwrap();
    let later = at + Duration::from_secs(2);
    // No task of the stage has finished: nothing to compare with.
    assert_eq!(run.speculate(later, &[]), 0);
    // Not yet past the least runtime, even on a slow agent.
    assert_eq!(run.speculate(at, &[A]), 0);
    // Past it on a slow agent: only that agent's task.
    assert_eq!(run.speculate(later, &[A]), 1);
    let mut placed = Vec::new();
    let mut free = offers(&[(A, 4), (B, 4)]);
    run.place_copies(0, &mut free, ONE, 10, &mut placed, later);
    assert_eq!(placed, [(TaskKey { attempt: 1, ..on_a }, B)], "copied away from the slow agent");
    // Found once: not again while its copy runs.
    assert_eq!(run.speculate(later, &[A]), 0);
}
