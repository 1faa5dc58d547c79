use super::*;
use crate::dag;
use weft_core::limits::TaskLimits;
use weft_core::plan::{Node, Plan};

fn core() -> (Core, Instant) {
    let config =
        CoreConfig { heartbeat_interval: Duration::from_secs(1), lost_after: 3, max_result_size: 100 };
    (Core::new(Incarnation(0xabc), &config), Instant::now())
}

fn spec() -> JobSpec {
    JobSpec {
        name: "job".into(),
        tenant: String::new(),
        component: weft_core::artifact::Digest::of(b"c"),
        args: vec!["in".into()],
        limits: TaskLimits::default(),
        max_task_attempts: 2,
        deadline: Some(Duration::from_secs(7200)),
        working_dir: None,
    }
}

/// A count over `n` parallelized partitions of `job`.
fn count(core: &Core, job: JobId, n: usize) -> (JobContext, JobGraph) {
    let mut plan = Plan::new();
    let xs = plan.add(Node::Parallelize { partitions: vec![Data::default(); n] }, false).unwrap();
    let graph = dag::build(&plan, xs, &BTreeMap::new()).unwrap();
    let j = core.job(job).unwrap();
    let ctx = JobContext {
        job,
        component: j.spec.component,
        limits: j.spec.limits.clone(),
        broadcasts: Arc::default(),
        plan,
        text: BTreeMap::new(),
        sink: ResultSink::Count,
        range_bounds: BTreeMap::new(),
    };
    (ctx, graph)
}

fn launches(effects: &[Effect]) -> Vec<(AgentId, Vec<TaskKey>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Launch { agent, tasks, .. } => Some((*agent, tasks.iter().map(|t| t.key).collect())),
            _ => None,
        })
        .collect()
}

fn finished(key: TaskKey) -> TaskEnd {
    TaskEnd {
        key,
        end: EndReason::Finished,
        metering: TaskMetering { fuel: 1, shuffle_bytes_written: 5, ..Default::default() },
        result: Data::default(),
        count: 1,
        partition_bytes: vec![],
        log: String::new(),
        accumulators: BTreeMap::new(),
    }
}

#[test]
fn one_launch_per_agent_per_round_and_the_driver_gets_its_own_deadline() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let b = c.register_agent("b:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    assert_eq!(job.to_string(), "job-00000abc-1");
    c.schedule(now);
    let effects = c.take_effects();
    let Some(Effect::Launch { tasks, .. }) = effects.first() else { panic!("{effects:?}") };
    let TaskBody::Driver(d) = &tasks[0].body else { panic!("a driver first") };
    assert_eq!(d.deadline, Some(Duration::from_secs(7200)), "the job's deadline, not the task's");
    assert!(tasks[0].key.is_driver());

    let (ctx, graph) = count(&c, job, 10);
    let action = c.run_action(ctx, graph);
    c.schedule(now);
    let batches = launches(&c.take_effects());
    assert_eq!(batches.len(), 2, "one launch per agent: {batches:?}");
    assert_eq!(batches.iter().map(|(_, t)| t.len()).sum::<usize>(), 8, "every free slot, no more");
    assert!(batches.iter().all(|(agent, _)| [a, b].contains(agent)));

    for (agent, keys) in batches {
        assert!(c.task_ends(agent, keys.into_iter().map(finished).collect(), now));
    }
    c.schedule(now);
    let batches = launches(&c.take_effects());
    assert_eq!(batches.iter().map(|(_, t)| t.len()).sum::<usize>(), 2, "the last two tasks");
    for (agent, keys) in batches {
        c.task_ends(agent, keys.into_iter().map(finished).collect(), now);
    }
    let ended: Vec<_> = c
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::ActionEnded { action, result } => Some((action, result)),
            _ => None,
        })
        .collect();
    assert_eq!(ended, [(action, Ok(JobOutput::Count(10)))]);
    let view = c.view(job).unwrap();
    assert_eq!((view.totals.fuel, view.totals.shuffle_bytes_written), (10, 50), "totals carry every task");
}

#[test]
fn a_busy_agent_is_paused_and_its_tasks_run_elsewhere() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 2);
    c.run_action(ctx, graph);
    c.schedule(now);
    let batches = launches(&c.take_effects());
    let keys: Vec<TaskKey> = batches.into_iter().flat_map(|(_, k)| k).filter(|k| !k.is_driver()).collect();
    assert_eq!(keys.len(), 2);
    c.launch_refused(a, keys.iter().map(|k| (*k, Refused::Busy, "busy".into())).collect(), now);
    c.schedule(now);
    assert!(launches(&c.take_effects()).is_empty(), "a refusing agent is not offered again at once");
    let b = c.register_agent("b:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    c.schedule(now);
    let batches = launches(&c.take_effects());
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, b);
    assert!(batches[0].1.iter().all(|k| k.attempt == 1), "new attempts: {:?}", batches[0].1);
}

#[test]
fn a_failed_action_still_counts_its_tasks_in_the_totals() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 1, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 1);
    c.run_action(ctx, graph);
    c.schedule(now);
    let key = launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).find(|k| !k.is_driver()).unwrap();
    let end = TaskEnd { end: EndReason::OutOfFuel { limit: 9 }, ..finished(key) };
    c.task_ends(a, vec![end], now);
    let failed =
        c.take_effects().into_iter().any(|e| matches!(e, Effect::ActionEnded { result: Err(_), .. }));
    assert!(failed);
    assert_eq!(c.view(job).unwrap().totals.fuel, 1, "the failed task's fuel is billed");
    assert!(
        !c.task_ends(AgentId { incarnation: Incarnation(1), seq: a.seq }, vec![], now),
        "another run's id"
    );
}

#[test]
fn blocks_of_driver_traffic_are_deleted_when_the_last_job_using_them_ends() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let block = Data::Block { digest: weft_core::artifact::Digest::of(b"result"), len: 70_000 };
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let job = c.submit_job(spec());
        let (mut ctx, graph) = count(&c, job, 1);
        ctx.sink = ResultSink::Records { limit: None };
        c.run_action(ctx, graph);
        c.schedule(now);
        let key =
            launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).find(|k| !k.is_driver()).unwrap();
        c.task_ends(a, vec![TaskEnd { result: block.clone(), ..finished(key) }], now);
        jobs.push(job);
    }
    let deleted = |effects: Vec<Effect>| {
        effects
            .into_iter()
            .filter_map(|e| match e {
                Effect::DeleteBlocks(d) => Some(d),
                _ => None,
            })
            .flatten()
            .collect::<Vec<_>>()
    };
    assert!(deleted(c.take_effects()).is_empty(), "both jobs still run");
    c.kill(jobs[0]);
    assert!(deleted(c.take_effects()).is_empty(), "the other job still uses the block");
    c.kill(jobs[1]);
    let Data::Block { digest, .. } = block else { unreachable!() };
    assert_eq!(deleted(c.take_effects()), [digest], "the last user ended");
}
