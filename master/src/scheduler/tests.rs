use super::*;
use crate::dag;
use crate::launch::ResultSink;
use crate::registry::Resources;
use std::time::{Duration, Instant};
use weft_core::ids::{DatasetId, StageId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::plan::{Node, Plan, ShuffleKind, Step, StepKind};

/// Records launches; the test plays the agents.
#[derive(Default)]
struct Recorder {
    launched: Mutex<Vec<(AgentId, v1::TaskSpec)>>,
    killed: Mutex<Vec<(AgentId, TaskKey)>>,
    removed: Mutex<Vec<(AgentId, String)>>,
}

impl Launcher for Recorder {
    fn launch(&self, agent: AgentId, _address: &str, spec: v1::TaskSpec) -> LaunchFuture {
        self.launched.lock().unwrap().push((agent, spec));
        Box::pin(async { Ok(()) })
    }

    fn kill(&self, agent: AgentId, _address: &str, task: &TaskKey) -> LaunchFuture {
        self.killed.lock().unwrap().push((agent, task.clone()));
        Box::pin(async { Ok(()) })
    }

    fn remove_shuffles(&self, agent: AgentId, _address: &str, scope: &str) -> LaunchFuture {
        self.removed.lock().unwrap().push((agent, scope.to_string()));
        Box::pin(async { Ok(()) })
    }
}

fn setup(slots: &[u32]) -> (Scheduler, Arc<Recorder>, Vec<AgentId>) {
    let (s, rec, ids, _) = setup_with_registry(slots);
    (s, rec, ids)
}

fn setup_with_registry(slots: &[u32]) -> (Scheduler, Arc<Recorder>, Vec<AgentId>, Arc<Mutex<Registry>>) {
    let registry = Arc::new(Mutex::new(Registry::new(Duration::from_secs(1), 3)));
    let ids = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let r = Resources { slots: *s, memory: 1 << 30 };
            registry.lock().unwrap().register(
                format!("10.0.0.{i}:7071"),
                r,
                Default::default(),
                Instant::now(),
            )
        })
        .collect();
    let rec = Arc::new(Recorder::default());
    (Scheduler::new(registry.clone(), rec.clone()), rec, ids, registry)
}

fn job(sink: ResultSink, sort_partitions: Option<u32>) -> (JobContext, JobRun) {
    let mut plan = Plan::new();
    let lines = plan.add(Node::TextFile { uri: "file:///in".into(), min_partitions: 2 }, false).unwrap();
    let pairs = plan.add(
        Node::Narrow { parent: lines, step: Step { kind: StepKind::Map, function: "one".into() } },
        true,
    );
    let kind = match sort_partitions {
        Some(_) => ShuffleKind::SortByKey { ascending: true },
        None => ShuffleKind::SumByKey,
    };
    let target = plan
        .add(Node::Shuffle { parent: pairs.unwrap(), kind, partitions: sort_partitions.unwrap_or(3) }, true);
    let graph = dag::build(&plan, target.unwrap(), &[(lines, 2)].into()).unwrap();
    let split = |s, e| TextSplit { path: "in".into(), start: s, end: e, file_len: 10 };
    let ctx = JobContext {
        job: "job-1.1".into(),
        scope: "job-1".into(),
        component: "blake3:00".into(),
        artifact_source: "http://m".into(),
        limits: TaskLimits::default(),
        broadcasts: vec![],
        plan,
        text: [(DatasetId(0), ("file:///in".to_string(), vec![split(0, 5), split(5, 10)]))].into(),
        sink,
        range_bounds: BTreeMap::new(),
    };
    (ctx, JobRun::new("job-1.1", graph, 2))
}

/// Action `n` of submitted job `job-1`, as `job` builds it.
fn action(n: u32, sink: ResultSink) -> (JobContext, JobRun) {
    action_of("job-1", n, sink)
}

/// Action `n` of submitted job `scope`.
fn action_of(scope: &str, n: u32, sink: ResultSink) -> (JobContext, JobRun) {
    let (mut ctx, run) = job(sink, None);
    ctx.job = format!("{scope}.{n}");
    ctx.scope = scope.to_string();
    (ctx.clone(), JobRun::new(ctx.job, run.graph().clone(), 2))
}

fn key_of(spec: &v1::TaskSpec) -> TaskKey {
    TaskKey::try_from(spec.task.as_ref().unwrap()).unwrap()
}

fn ended(agent: AgentId, spec: &v1::TaskSpec, state: TaskState) -> MasterEvent {
    let MasterEvent::Task(mut ev) = finished(agent, spec, 0, b"") else { unreachable!() };
    ev.state = state;
    ev.end = Some(match state {
        TaskState::Killed => EndReason::Killed,
        _ => EndReason::OutOfFuel { limit: 1 },
    });
    MasterEvent::Task(ev)
}

fn finished(agent: AgentId, spec: &v1::TaskSpec, count: u64, result: &'static [u8]) -> MasterEvent {
    let r = spec.task.clone().unwrap();
    MasterEvent::Task(Box::new(TaskEvent {
        agent,
        task: TaskKey {
            job: r.job_id,
            stage: StageId(r.stage_id),
            partition: r.partition,
            attempt: r.attempt,
        },
        state: TaskState::Finished,
        end: Some(EndReason::Finished),
        metering: TaskMetering { fuel: 1, ..Default::default() },
        result: bytes::Bytes::from_static(result),
        count,
        partition_bytes: vec![1, 2, 3],
        fetch_failed: None,
        log: String::new(),
        accumulators: [("seen".to_string(), 10)].into(),
    }))
}

fn launch_now(s: &mut Scheduler) -> usize {
    s.schedule().len()
}

#[tokio::test]
async fn a_job_runs_stage_by_stage_on_free_slots_and_answers_its_waiter() {
    let (mut s, rec, agents) = setup(&[1, 2]);
    let (ctx, run) = job(ResultSink::Count, None);
    let mut done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 2, "both map tasks placed");
    let maps = rec.launched.lock().unwrap().clone();
    assert_eq!(maps[0].0, agents[1], "the agent with the most free slots first");
    assert_eq!(launch_now(&mut s), 0, "reduces wait for the maps");

    for (agent, spec) in &maps {
        s.on_event(&finished(*agent, spec, 0, b""));
    }
    assert_eq!(launch_now(&mut s), 3, "three reduce tasks on three free slots");
    let reduces: Vec<_> = rec.launched.lock().unwrap()[2..].to_vec();
    for (i, (agent, spec)) in reduces.iter().enumerate() {
        let Some(v1::task_input::Source::Shuffle(read)) = spec.input.clone().unwrap().source else {
            panic!()
        };
        assert_eq!(read.maps.len(), 2, "every reduce reads both map outputs");
        s.on_event(&finished(*agent, spec, 10 + i as u64, b""));
    }
    let (output, metering) = done.try_recv().unwrap().unwrap();
    assert_eq!(output, JobOutput::Count(33));
    assert_eq!(metering.fuel, 5);
    assert_eq!(s.active_jobs(), 0);
}

#[tokio::test]
async fn a_full_cluster_queues_tasks_until_slots_free() {
    let (mut s, rec, agents) = setup(&[1]);
    let (ctx, run) = job(ResultSink::Records { limit: None }, None);
    let _done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 1);
    assert_eq!(launch_now(&mut s), 0, "one slot, one task");
    let first = rec.launched.lock().unwrap()[0].1.clone();
    s.on_event(&finished(agents[0], &first, 0, b""));
    assert_eq!(launch_now(&mut s), 1, "the slot freed");
}

#[tokio::test]
async fn failed_launches_and_lost_agents_put_tasks_back() {
    let (mut s, rec, agents, registry) = setup_with_registry(&[1, 1]);
    let (ctx, run) = job(ResultSink::Count, None);
    let _done = s.submit(ctx, run);
    let launched = s.schedule();
    assert_eq!(launched.len(), 2);
    let (key, agent, _) = &launched[0];
    s.on_launch_failed(key, *agent, "connection refused");
    let again = s.schedule();
    assert_eq!(again.len(), 1, "the task whose launch failed runs again");
    assert_eq!(again[0].0.attempt, 1);

    // As in the master: the sweep marks silent agents lost, then the events go out.
    let lost = registry.lock().unwrap().sweep(Instant::now() + Duration::from_secs(60));
    assert_eq!(lost, agents);
    for agent in lost {
        s.on_event(&MasterEvent::AgentLost(agent));
    }
    assert_eq!(launch_now(&mut s), 0, "no agents left");
    assert_eq!(rec.launched.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_job_that_cannot_be_described_fails_with_the_reason() {
    let (mut s, _, _) = setup(&[4]);
    let (ctx, run) = job(ResultSink::Count, Some(3));
    let mut done = s.submit(ctx, run);
    launch_now(&mut s);
    let err = done.try_recv().unwrap().unwrap_err();
    assert!(err.contains("cannot be launched") && err.contains("range bounds"), "{err}");
}

fn driver_spec() -> v1::TaskSpec {
    v1::TaskSpec {
        driver: Some(v1::DriverSpec { args: vec!["in".into()], master: "http://m".into() }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_driver_does_not_take_the_slot_its_tasks_need() {
    let (mut s, rec, agents) = setup(&[1]);
    let mut driver = s.submit_driver("job-1", driver_spec());
    let (ctx, run) = job(ResultSink::Count, None);
    let _done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 2, "the driver and one task on a one-slot agent");
    let (agent, spec) = rec.launched.lock().unwrap()[0].clone();
    let key = spec.task.clone().unwrap();
    assert_eq!((agent, key.stage_id), (agents[0], DRIVER_STAGE.0));

    let mut ev = match finished(agent, &spec, 0, b"") {
        MasterEvent::Task(ev) => ev,
        _ => unreachable!(),
    };
    ev.log = "top words: the".into();
    s.on_event(&MasterEvent::Task(ev));
    let end = driver.try_recv().unwrap();
    assert_eq!((end.end, end.log.as_str()), (EndReason::Finished, "top words: the"));
}

#[tokio::test]
async fn a_lost_agent_ends_its_driver() {
    let (mut s, _, agents, registry) = setup_with_registry(&[2]);
    let mut driver = s.submit_driver("job-1", driver_spec());
    assert_eq!(launch_now(&mut s), 1);
    let lost = registry.lock().unwrap().sweep(Instant::now() + Duration::from_secs(60));
    assert_eq!(lost, agents);
    s.on_event(&MasterEvent::AgentLost(agents[0]));
    let end = driver.try_recv().unwrap();
    assert!(
        matches!(end.end, EndReason::HostError { ref message } if message.contains("lost")),
        "{:?}",
        end.end
    );
}

#[tokio::test]
async fn a_later_action_reuses_the_map_outputs_of_an_earlier_one() {
    let (mut s, rec, agents) = setup(&[4]);
    let _driver = s.submit_driver("job-1", driver_spec());
    let (ctx, run) = action(1, ResultSink::Count);
    let mut first = s.submit(ctx, run);
    for round in 0..2 {
        s.schedule();
        let launched = rec.launched.lock().unwrap().clone();
        for (agent, spec) in launched.iter().filter(|(_, sp)| sp.driver.is_none()) {
            if round == 0 || key_of(spec).stage == StageId(1) {
                s.on_event(&finished(*agent, spec, 1, b""));
            }
        }
    }
    assert_eq!(first.try_recv().unwrap().unwrap().0, JobOutput::Count(3));
    let before = rec.launched.lock().unwrap().len();

    let (ctx, run) = action(2, ResultSink::Count);
    let _second = s.submit(ctx, run);
    s.schedule();
    let launched = rec.launched.lock().unwrap()[before..].to_vec();
    assert_eq!(launched.len(), 3, "only the three reduce tasks run again");
    for (_, spec) in &launched {
        assert_eq!(key_of(spec).job, "job-1.2");
        assert_eq!(spec.shuffle_scope, "job-1");
        let Some(v1::task_input::Source::Shuffle(read)) = spec.input.clone().unwrap().source else {
            panic!()
        };
        assert_eq!(read.maps.len(), 2, "reading the first action's map outputs");
        assert!(read.maps.iter().all(|m| m.address == "10.0.0.0:7071"));
    }
    let board = s.board();
    let board = board.lock().unwrap();
    assert_eq!(board.keys().collect::<Vec<_>>(), ["job-1.2"], "only the latest action is on the board");
    let _ = agents;
}

#[tokio::test]
async fn the_end_of_a_driver_removes_its_shuffle_files_everywhere() {
    let (mut s, rec, agents) = setup(&[1, 1]);
    let _driver = s.submit_driver("job-1", driver_spec());
    s.schedule();
    let (agent, spec) = rec.launched.lock().unwrap()[0].clone();
    s.on_event(&finished(agent, &spec, 0, b""));
    s.take_chores();
    let mut removed = rec.removed.lock().unwrap().clone();
    removed.sort();
    assert_eq!(removed, [(agents[0], "job-1".to_string()), (agents[1], "job-1".to_string())]);
}

#[tokio::test]
async fn killing_a_job_kills_its_driver_and_attempts_and_frees_their_slots() {
    let (mut s, rec, _) = setup(&[2]);
    let mut driver = s.submit_driver("job-1", driver_spec());
    let (ctx, run) = action(1, ResultSink::Count);
    let mut done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 3, "the driver and both map tasks");
    assert!(s.kill("job-1"));
    assert!(!s.kill("job-1"), "killed once");
    assert_eq!(driver.try_recv().unwrap().end, EndReason::Killed);
    let err = done.try_recv().unwrap().unwrap_err();
    assert!(err.contains("driver ended") && err.contains("killed"), "{err}");

    let launched = rec.launched.lock().unwrap().clone();
    let mut killed: Vec<TaskKey> = rec.killed.lock().unwrap().iter().map(|(_, k)| k.clone()).collect();
    killed.sort_by_key(|k| (k.stage, k.partition));
    let mut expected: Vec<TaskKey> = launched.iter().map(|(_, sp)| key_of(sp)).collect();
    expected.sort_by_key(|k| (k.stage, k.partition));
    assert_eq!(killed, expected, "the driver and both map attempts are killed");

    // The slots are free once the agent reports the kills.
    let (ctx, run) = action_of("job-2", 1, ResultSink::Count);
    let _other = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 0, "the killed attempts still hold the slots");
    for (agent, spec) in launched.iter().filter(|(_, sp)| sp.driver.is_none()) {
        s.on_event(&ended(*agent, spec, TaskState::Killed));
    }
    assert_eq!(launch_now(&mut s), 2, "their slots come back when the kills land");
}

#[tokio::test]
async fn a_failed_job_kills_its_other_attempts_and_gets_its_slots_back() {
    let (mut s, rec, agents) = setup(&[2]);
    let (ctx, run) = job(ResultSink::Count, None);
    let mut done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 2);
    let launched = rec.launched.lock().unwrap().clone();
    s.on_event(&ended(agents[0], &launched[0].1, TaskState::Failed));
    assert!(done.try_recv().unwrap().unwrap_err().contains("fuel"));
    assert_eq!(rec.killed.lock().unwrap().clone(), [(agents[0], key_of(&launched[1].1))]);

    let (ctx, run) = action_of("job-2", 1, ResultSink::Count);
    let _next = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 1, "one slot is still held by the attempt being killed");
    s.on_event(&ended(agents[0], &launched[1].1, TaskState::Killed));
    assert_eq!(launch_now(&mut s), 1, "and it comes back when the kill lands");
}

#[tokio::test]
async fn accumulators_sum_the_finished_attempts_of_the_jobs_actions() {
    let (mut s, rec, _) = setup(&[4]);
    let _driver = s.submit_driver("job-1", driver_spec());
    assert_eq!(s.accumulator("job-1", "seen"), Some(0), "nothing added yet");
    assert_eq!(s.accumulator("job-2", "seen"), None, "no such job");
    let (ctx, run) = action(1, ResultSink::Count);
    let _done = s.submit(ctx, run);
    assert_eq!(launch_now(&mut s), 3, "the driver and both map tasks");
    let maps: Vec<_> =
        rec.launched.lock().unwrap().iter().filter(|(_, sp)| sp.driver.is_none()).cloned().collect();

    // The first map attempt is lost (it adds nothing) and runs again; the
    // second finishes, and a late duplicate of its report is not counted again.
    s.on_event(&ended(maps[0].0, &maps[0].1, TaskState::Lost));
    s.on_event(&finished(maps[1].0, &maps[1].1, 0, b""));
    s.on_event(&finished(maps[1].0, &maps[1].1, 0, b""));
    assert_eq!(s.accumulator("job-1", "seen"), Some(10));
    launch_now(&mut s);
    let retry = rec.launched.lock().unwrap().last().cloned().unwrap();
    assert_eq!(key_of(&retry.1).attempt, 1, "the lost map task runs again");
    s.on_event(&finished(retry.0, &retry.1, 0, b""));
    assert_eq!(s.accumulator("job-1", "seen"), Some(20), "one addition per finished task");
    assert_eq!(s.accumulator("job-1", "other"), Some(0));

    // A second job's tasks add to its own accumulators only.
    let _other = s.submit_driver("job-2", driver_spec());
    let (ctx, run) = action_of("job-2", 1, ResultSink::Count);
    let _done2 = s.submit(ctx, run);
    launch_now(&mut s);
    let theirs =
        rec.launched.lock().unwrap().iter().rev().find(|(_, sp)| key_of(sp).job == "job-2.1").cloned();
    let (agent, spec) = theirs.unwrap();
    s.on_event(&finished(agent, &spec, 0, b""));
    assert_eq!(s.accumulator("job-2", "seen"), Some(10));
    assert_eq!(s.accumulator("job-1", "seen"), Some(20));
}

#[tokio::test]
async fn slots_a_job_declines_are_offered_to_the_next_job() {
    let (mut s, rec, agents) = setup(&[2, 2]);
    let (ctx, run) = action_of("job-1", 1, ResultSink::Count);
    let _first = s.submit(ctx, run);
    let (ctx, run) = action_of("job-2", 1, ResultSink::Count);
    let _second = s.submit(ctx, run);
    // Each job has two map tasks ready: the first takes two of the four slots
    // (one per agent) and declines the others, which the second job takes.
    assert_eq!(launch_now(&mut s), 4);
    let launched = rec.launched.lock().unwrap().clone();
    for job in ["job-1.1", "job-2.1"] {
        let mut on: Vec<AgentId> =
            launched.iter().filter(|(_, sp)| key_of(sp).job == job).map(|(a, _)| *a).collect();
        on.sort();
        assert_eq!(on, agents, "{job} spreads over both agents");
    }
    assert_eq!(launch_now(&mut s), 0, "no slot left");
}

#[tokio::test]
async fn a_sample_job_returns_its_samples_and_its_result_tasks_add_no_accumulators() {
    let (mut s, rec, _) = setup(&[8]);
    let _driver = s.submit_driver("job-1", driver_spec());
    let (ctx, run) = action(1, ResultSink::KeySample(5));
    let mut done = s.submit(ctx, run);
    launch_now(&mut s);
    for (agent, spec) in rec.launched.lock().unwrap().clone().iter().filter(|(_, sp)| sp.driver.is_none()) {
        s.on_event(&finished(*agent, spec, 0, b""));
    }
    assert_eq!(s.accumulator("job-1", "seen"), Some(20), "the map tasks count");
    launch_now(&mut s);
    let results: Vec<_> =
        rec.launched.lock().unwrap().iter().filter(|(_, sp)| key_of(sp).stage.0 == 1).cloned().collect();
    assert_eq!(results.len(), 3);
    for (i, (agent, spec)) in results.iter().enumerate() {
        assert_eq!(
            spec.output.as_ref().unwrap().sink,
            Some(v1::task_output::Sink::Sample(v1::KeySampleOutput { size: 5 }))
        );
        let keys: &'static [u8] = [&b"\x01\0\0\0a"[..], b"\x01\0\0\0b", b""][i];
        s.on_event(&finished(*agent, spec, 100 + i as u64, keys));
    }
    assert_eq!(
        s.accumulator("job-1", "seen"),
        Some(20),
        "sampling tasks add nothing: the sort runs them again"
    );
    let Ok((JobOutput::Samples(samples), _)) = done.try_recv().unwrap() else { panic!("samples") };
    let got: Vec<(u64, &[u8])> = samples.iter().map(|(n, k)| (*n, k.as_ref())).collect();
    assert_eq!(got, [(100, &b"\x01\0\0\0a"[..]), (101, b"\x01\0\0\0b"), (102, b"")]);
}

#[tokio::test]
async fn a_map_output_on_an_agent_just_lost_makes_its_reader_wait_not_fail() {
    let (mut s, rec, agents, registry) = setup_with_registry(&[2, 2]);
    let (ctx, run) = action(1, ResultSink::Count);
    let mut done = s.submit(ctx, run);
    launch_now(&mut s);
    for (agent, spec) in rec.launched.lock().unwrap().clone() {
        s.on_event(&finished(agent, &spec, 0, b""));
    }
    // The registry drops an agent holding map output before its AgentLost
    // event reaches the scheduler.
    let holder = rec.launched.lock().unwrap()[0].0;
    let later = Instant::now() + Duration::from_secs(60);
    registry.lock().unwrap().heartbeat(agents.iter().copied().find(|a| *a != holder).unwrap(), later).ok();
    let lost = registry.lock().unwrap().sweep(later);
    assert_eq!(lost, [holder]);
    launch_now(&mut s);
    assert!(done.try_recv().is_err(), "the job is still running");
    // Then the event arrives: the lost output is recomputed and the job goes on.
    s.on_event(&MasterEvent::AgentLost(holder));
    assert!(launch_now(&mut s) >= 1, "the lost map task runs again");
    assert!(done.try_recv().is_err());
}
