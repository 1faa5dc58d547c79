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
}

impl Launcher for Recorder {
    fn launch(&self, agent: AgentId, _address: &str, spec: v1::TaskSpec) -> LaunchFuture {
        self.launched.lock().unwrap().push((agent, spec));
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
        job: "job-1".into(),
        component: "blake3:00".into(),
        artifact_source: "http://m".into(),
        limits: TaskLimits::default(),
        broadcasts: vec![],
        plan,
        text: [(DatasetId(0), ("file:///in".to_string(), vec![split(0, 5), split(5, 10)]))].into(),
        sink,
    };
    (ctx, JobRun::new("job-1", graph, 2))
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
    assert!(err.contains("sort into 1 partition"), "{err}");
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
