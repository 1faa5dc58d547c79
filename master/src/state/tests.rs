use super::*;
use crate::dag;
use weft_core::limits::TaskLimits;
use weft_core::plan::{Node, Plan};

fn core() -> (Core, Instant) {
    core_with(None)
}

fn core_with(speculation: Option<crate::job::Speculation>) -> (Core, Instant) {
    let config = CoreConfig {
        heartbeat_interval: Duration::from_secs(1),
        lost_after: 3,
        max_result_size: 100,
        offer_filter: Duration::from_millis(200),
        hold_timeout: Duration::from_secs(10),
        locality_wait: Duration::from_secs(3),
        speculation,
    };
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
        driver_restarts: 0,
        deadline: Some(Duration::from_secs(7200)),
        working_dir: None,
        capability: weft_core::access::JobCapability([7; 32]),
        fuel_budget: None,
        s3: Default::default(),
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

/// Settings of the tenants `tenants`, no role quotas.
fn sharing<'a>(tenants: impl IntoIterator<Item = (&'a str, TenantSharing)>) -> Sharing {
    Sharing { tenants: tenants.into_iter().map(|(t, s)| (t.to_string(), s)).collect(), ..Default::default() }
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

fn actions_ended(effects: Vec<Effect>) -> Vec<(ActionId, JobResult)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::ActionEnded { action, result } => Some((action, result)),
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
        cached: Vec::new(),
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
    let effects = c.take_effects();
    for e in &effects {
        if let Effect::Launch { access, .. } = e {
            assert_eq!(access, &[(job, spec().capability)], "each launch carries its job's capability");
        }
    }
    let batches = launches(&effects);
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
    let ended = actions_ended(c.take_effects());
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

/// A sum by key over `maps` parallelized partitions into `reduces`.
fn reduce(core: &Core, job: JobId, maps: usize, reduces: u32) -> (JobContext, JobGraph) {
    use weft_core::plan::{ShuffleKind, Step, StepKind};
    let mut plan = Plan::new();
    let xs = plan.add(Node::Parallelize { partitions: vec![Data::default(); maps] }, true).unwrap();
    let pairs = plan.add(Node::Narrow { parent: xs, step: Step::new(StepKind::Map, "one") }, true).unwrap();
    let sums = plan
        .add(
            Node::Shuffle {
                parent: pairs,
                kind: ShuffleKind::ReduceByKey { function: "add".into() },
                partitions: reduces,
            },
            true,
        )
        .unwrap();
    let graph = dag::build(&plan, sums, &BTreeMap::new()).unwrap();
    let (mut ctx, _) = count(core, job, 1);
    ctx.plan = plan;
    (ctx, graph)
}

/// The tasks and tables of every launch in `effects`.
fn launched(effects: Vec<Effect>) -> Vec<(AgentId, Vec<TaskDescriptor>, Vec<Arc<MapTable>>)> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Launch { agent, tasks, tables, .. } => Some((agent, tasks, tables)),
            _ => None,
        })
        .collect()
}

const TWO_SLOTS: Resources = Resources { slots: 2, memory: 0, queue: 0 };

/// Agents `a:1` and `b:1` of 2 slots, and a job whose driver was placed.
fn two_agents_and_a_job(c: &mut Core, now: Instant) -> (AgentId, AgentId, JobId) {
    let a = c.register_agent("a:1".into(), TWO_SLOTS, BTreeMap::new(), now);
    let b = c.register_agent("b:1".into(), TWO_SLOTS, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    c.schedule(now);
    (a, b, job)
}

#[test]
fn a_map_table_goes_once_to_each_agent_and_again_only_when_its_outputs_change() {
    let (mut c, now) = core();
    let (a, b, job) = two_agents_and_a_job(&mut c, now);
    // The driver's agent survives; the other one is lost later.
    let (driver, _, _) = launched(c.take_effects()).remove(0);
    let other = if driver == a { b } else { a };
    assert!(c.agents.address(other).is_some());
    let (ctx, graph) = reduce(&c, job, 3, 8);
    c.run_action(ctx, graph);

    // The three maps, each reporting its bytes per reduce partition.
    c.schedule(now);
    for (agent, tasks, tables) in launched(c.take_effects()) {
        assert!(tables.is_empty(), "map tasks read no shuffle");
        let ends = tasks
            .iter()
            .map(|t| TaskEnd { partition_bytes: vec![u64::from(t.key.partition) + 1; 8], ..finished(t.key) })
            .collect();
        c.task_ends(agent, ends, now);
    }
    c.schedule(now);
    let mut running = Vec::new();
    for (agent, tasks, tables) in launched(c.take_effects()) {
        // One table per agent, whatever its number of reduce tasks.
        assert_eq!(tables.len(), 1, "{agent}");
        let t = &tables[0];
        assert_eq!(t.maps.iter().map(|m| m.sizes.of(5)).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(t.maps.iter().all(|m| m.attempt == 0), "first attempts wrote them: {t:?}");
        for d in tasks {
            let TaskBody::Work(w) = &d.body else { panic!("a driver") };
            let TaskInput::Shuffle(r) = &w.input else { panic!("{:?}", w.input) };
            assert_eq!(r.maps, 3, "the descriptor names the map count, not the maps");
            running.push((agent, d.key));
        }
    }
    assert_eq!(running.len(), 4);
    // The reduces on the driver's agent end; the next ones come without tables.
    let mut ended = 0;
    for (agent, key) in running.iter().filter(|(agent, _)| *agent == driver) {
        c.task_ends(*agent, vec![finished(*key)], now);
        ended += 1;
    }
    c.schedule(now);
    let launches = launched(c.take_effects());
    assert_eq!(launches.iter().map(|(_, t, _)| t.len()).sum::<usize>(), ended);
    for (agent, tasks, tables) in launches {
        assert!(tables.is_empty(), "the agent has the table already");
        c.task_ends(agent, tasks.iter().map(|t| finished(t.key)).collect(), now);
    }
    // The other agent is lost with its map outputs: they are computed again
    // on the driver's agent, and the changed table goes there once more.
    let later = now + Duration::from_secs(10);
    c.heartbeat(driver, later);
    c.tick(later);
    c.schedule(later);
    for (agent, tasks, tables) in launched(c.take_effects()) {
        assert_eq!(agent, driver);
        assert!(tables.is_empty(), "maps only: {tasks:?}");
        let ends = tasks.iter().map(|t| TaskEnd { partition_bytes: vec![9; 8], ..finished(t.key) }).collect();
        c.task_ends(agent, ends, later);
    }
    c.schedule(later);
    let launches = launched(c.take_effects());
    assert!(!launches.is_empty(), "the reduces left");
    for (agent, _, tables) in launches {
        assert_eq!((agent, tables.len()), (driver, 1), "the new version");
        let t = &tables[0];
        assert!(t.maps.iter().any(|m| m.sizes.of(0) == 9), "recomputed outputs: {t:?}");
        for m in &t.maps {
            let recomputed = m.sizes.of(0) == 9;
            assert_eq!(m.attempt, u32::from(recomputed), "a recomputed output names its new attempt: {t:?}");
        }
        assert!(
            t.maps.iter().all(|m| *t.addresses[m.address as usize] == *c.agents.address(driver).unwrap())
        );
    }
}

/// Tenants `a` and `b` with an action of `n` tasks each (`a`'s submitted
/// first) on one agent of `places` slots; the tasks placed, by tenant.
fn two_tenants(
    places: u32,
    n: usize,
    weights: &[(&str, f64)],
) -> (Core, BTreeMap<String, Vec<TaskKey>>, AgentId) {
    two_tenants_with(places, n, |c| {
        c.configure(sharing(
            weights.iter().map(|(t, w)| (*t, TenantSharing { weight: *w, ..Default::default() })),
        ))
    })
}

/// [`two_tenants`], the core set up by `setup` first.
fn two_tenants_with(
    places: u32,
    n: usize,
    setup: impl FnOnce(&mut Core),
) -> (Core, BTreeMap<String, Vec<TaskKey>>, AgentId) {
    let (mut c, now) = core();
    setup(&mut c);
    let agent = c.register_agent(
        "a:1".into(),
        Resources { slots: places, memory: 0, queue: 0 },
        BTreeMap::new(),
        now,
    );
    let mut owner = BTreeMap::new();
    for tenant in ["a", "b"] {
        let job = c.submit_job(JobSpec { tenant: tenant.into(), ..spec() });
        owner.insert(job, tenant.to_string());
    }
    c.schedule(now);
    c.take_effects();
    // a's action first: alone, it could take every slot.
    for job in owner.keys() {
        let (ctx, graph) = count(&c, *job, n);
        c.run_action(ctx, graph);
    }
    c.schedule(now);
    let mut placed: BTreeMap<String, Vec<TaskKey>> = BTreeMap::new();
    for (_, keys) in launches(&c.take_effects()) {
        for k in keys {
            placed.entry(owner[&k.job()].clone()).or_default().push(k);
        }
    }
    (c, placed, agent)
}

#[test]
fn tenants_share_the_cluster_by_weighted_dominant_share_whoever_came_first() {
    // Equal weights: half each, although a's action came first and could take all.
    let (mut c, placed, agent) = two_tenants(10, 100, &[]);
    assert_eq!((placed["a"].len(), placed["b"].len()), (5, 5), "{placed:?}");
    assert_eq!(c.held("a"), (6, 6 * (512 << 20)), "five tasks and its driver, with their memory limits");
    // A slot b frees goes back to b, the tenant with the smaller share.
    let now = Instant::now();
    c.task_ends(agent, vec![finished(placed["b"][0])], now);
    c.schedule(now);
    let next = launches(&c.take_effects());
    assert_eq!(next.iter().map(|(_, k)| k.len()).sum::<usize>(), 1);
    assert_eq!(next[0].1[0].job(), placed["b"][0].job(), "b's slot stays with b");

    // Weight 2 for a: twice b's places (as close as whole tasks allow).
    let (_, placed, _) = two_tenants(12, 100, &[("a", 2.0)]);
    assert_eq!((placed["a"].len(), placed["b"].len()), (8, 4), "{placed:?}");
}

#[test]
fn a_job_over_its_fuel_budget_stops_and_its_tasks_get_only_what_is_left() {
    let (mut c, now) = core();
    let agent =
        c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(JobSpec { fuel_budget: Some(1_000), ..spec() });
    c.schedule(now);
    c.take_effects();
    let (ctx, graph) = count(&c, job, 10);
    c.run_action(ctx, graph);
    c.schedule(now);
    let effects = c.take_effects();
    let mut first = Vec::new();
    for e in &effects {
        if let Effect::Launch { tasks, .. } = e {
            for t in tasks {
                assert_eq!(t.limits.fuel, 1_000, "no task may burn more than the budget");
                first.push(t.key);
            }
        }
    }
    // One task burns 600: the next is launched with the 400 left.
    let burned =
        |key, fuel| TaskEnd { metering: TaskMetering { fuel, ..Default::default() }, ..finished(key) };
    c.task_ends(agent, vec![burned(first[0], 600)], now);
    c.schedule(now);
    let next: Vec<_> = c
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Launch { tasks, .. } => Some(tasks),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].limits.fuel, 400);
    // Past the budget the job fails, naming it.
    c.task_ends(agent, vec![burned(first[1], 500)], now);
    let view = c.view(job).unwrap();
    assert_eq!(view.phase, JobPhase::Failed);
    assert!(view.message.contains("fuel budget of 1000 is used up (1100 burned)"), "{}", view.message);
    assert!(view.message.contains("--fuel-budget"), "{}", view.message);
}

#[test]
fn a_quota_limit_is_never_passed_and_a_guarantee_is_held_first() {
    let places = |n| Amount { places: n, memory: 0 };
    // a may hold 4 places (its driver and 3 tasks), although the cluster has 12.
    let (c, placed, _) = two_tenants_with(12, 100, |c| {
        let quota = Quota { limit: Some(places(4)), ..Default::default() };
        c.configure(sharing([("a", TenantSharing { quota, ..Default::default() })]));
    });
    assert_eq!(placed["a"].len(), 3, "{placed:?}");
    assert_eq!(c.held("a").0, 4);
    assert_eq!(placed["b"].len(), 12 - 3, "b takes the rest of the task slots: {placed:?}");
    // b is guaranteed 8 places: it holds them before shares are compared.
    let (c, placed, _) = two_tenants_with(12, 100, |c| {
        let quota = Quota { guarantee: places(8), limit: None };
        c.configure(sharing([("b", TenantSharing { quota, ..Default::default() })]));
    });
    assert_eq!(c.held("b").0, 8, "its driver and 7 tasks: {placed:?}");
    assert_eq!(placed["a"].len(), 12 - 7, "a gets the rest: {placed:?}");
}

/// The tasks `c` launches in one scheduling round, in all.
fn round(c: &mut Core, now: Instant) -> Vec<TaskKey> {
    c.schedule(now);
    launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect()
}

#[test]
fn tasks_go_where_their_slots_and_memory_fit_and_one_too_large_for_every_agent_fails_its_action() {
    let (mut c, now) = core();
    // 4 slots and 1 GiB: two tasks of 512 MiB fit, not four.
    let a = c.register_agent(
        "a:1".into(),
        Resources { slots: 4, memory: 1 << 30, queue: 0 },
        BTreeMap::new(),
        now,
    );
    let job = c.submit_job(spec());
    round(&mut c, now); // its driver
    let (ctx, graph) = count(&c, job, 10);
    c.run_action(ctx, graph);
    let first = round(&mut c, now);
    assert_eq!(first.len(), 2, "memory bounds it, not slots");
    c.task_ends(a, vec![finished(first[0])], now);
    assert_eq!(round(&mut c, now).len(), 1, "a finished task's memory is offered again");

    // Tasks of 3 slots on 4 free places: one at a time.
    let (mut c, now) = core();
    c.register_agent("a:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job =
        c.submit_job(JobSpec { tenant: "t".into(), limits: TaskLimits::default().with_slots(3), ..spec() });
    round(&mut c, now);
    let (ctx, graph) = count(&c, job, 10);
    c.run_action(ctx, graph);
    assert_eq!(round(&mut c, now).len(), 1);
    assert_eq!(c.held("t").0, 1 + 3, "its driver and the task's three slots");

    // Tasks of 5 slots fit on no agent: the action fails at once, naming the flag.
    let job = c.submit_job(JobSpec { limits: TaskLimits::default().with_slots(5), ..spec() });
    round(&mut c, now);
    let (ctx, graph) = count(&c, job, 1);
    let action = c.run_action(ctx, graph);
    c.schedule(now);
    let ended = c.take_effects().into_iter().find_map(|e| match e {
        Effect::ActionEnded { action: a, result } if a == action => Some(result),
        _ => None,
    });
    let err = ended.expect("the action ended").unwrap_err();
    assert!(err.contains("hold 5 slots each (--task-slots), but the largest agent has 4"), "{err}");
}

#[test]
fn a_reservation_goes_to_its_role_first_is_lent_revocably_and_taken_back() {
    let (mut c, now) = core();
    c.configure(sharing([("batch", TenantSharing { role: "batch".into(), ..Default::default() })]));
    // 4 slots, 2 of them (and 1 GiB) reserved for the role `batch`.
    let two = Demand { places: 2, memory: 1 << 30 };
    let res = Resources { slots: 4, memory: 2 << 30, queue: 0 };
    let a = c
        .register_agent_reserving("a:1".into(), res, BTreeMap::new(), vec![("batch".into(), two)], now)
        .unwrap();
    let tiny = TaskLimits::default().with_memory(64 << 20);
    // Another tenant alone: its 2 unreserved places, then the reserved 2, lent.
    let other = c.submit_job(JobSpec { tenant: "other".into(), limits: tiny.clone(), ..spec() });
    round(&mut c, now);
    let (ctx, graph) = count(&c, other, 10);
    c.run_action(ctx, graph);
    let lent = round(&mut c, now);
    assert_eq!(lent.len(), 4, "the whole agent, two of them revocably");
    assert!(c.take_effects().is_empty());

    // batch's job comes: its role wants the room back; two of other's are killed.
    let batch = c.submit_job(JobSpec { tenant: "batch".into(), limits: tiny, ..spec() });
    round(&mut c, now);
    let (ctx, graph) = count(&c, batch, 4);
    c.run_action(ctx, graph);
    c.schedule(now);
    let killed: Vec<TaskKey> = c
        .take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Kill { tasks, .. } => Some(tasks),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(killed.len(), 2, "as many as the role's reservation held: {killed:?}");
    assert!(killed.iter().all(|k| k.job() == other));
    // Their ends free the reserved room, which goes to batch.
    let ended = killed.iter().map(|k| TaskEnd { end: EndReason::Killed, ..finished(*k) }).collect();
    c.task_ends(a, ended, now);
    let next = round(&mut c, now);
    assert_eq!(next.iter().filter(|k| k.job() == batch).count(), 2, "{next:?}");
    assert!(next.iter().all(|k| k.job() == batch), "nothing lent while batch waits: {next:?}");
    // The preempted tasks are not failures: other's action still runs.
    assert_eq!(c.view(other).unwrap().phase, JobPhase::Running);
    assert!(c.view(other).unwrap().stages.iter().all(|s| s.progress.failed == 0));
}

#[test]
fn a_large_task_holds_an_agent_until_it_fits_instead_of_starving_behind_small_ones() {
    let (mut c, now) = core();
    // 8 slots and 4 GiB: eight small tasks (512 MiB) fill it.
    let a = c.register_agent(
        "a:1".into(),
        Resources { slots: 8, memory: 4 << 30, queue: 0 },
        BTreeMap::new(),
        now,
    );
    let small = c.submit_job(JobSpec { tenant: "small".into(), ..spec() });
    round(&mut c, now);
    let (ctx, graph) = count(&c, small, 100);
    c.run_action(ctx, graph);
    let mut running = round(&mut c, now);
    assert_eq!(running.len(), 8);
    // A job of 3 GiB tasks comes; the cluster is full.
    let large = c.submit_job(JobSpec {
        tenant: "large".into(),
        limits: TaskLimits::default().with_memory(3 << 30),
        ..spec()
    });
    round(&mut c, now);
    let (ctx, graph) = count(&c, large, 2);
    c.run_action(ctx, graph);
    assert!(round(&mut c, now).is_empty());
    // Small tasks end one by one: without a hold each freed 512 MiB would go
    // to the small job again and the large task would never fit.
    for ended in 1..=6 {
        let key = running.remove(0);
        c.task_ends(a, vec![finished(key)], now);
        let placed = round(&mut c, now);
        if ended < 6 {
            assert!(placed.is_empty(), "the agent is held for the large task: {placed:?}");
        } else {
            assert_eq!(placed.len(), 1, "3 GiB free at last: {placed:?}");
            assert_eq!(placed[0].job(), large);
        }
    }
    // Once it runs, the hold is gone: freed room goes by share again.
    c.task_ends(a, vec![finished(running.remove(0))], now);
    let placed = round(&mut c, now);
    assert_eq!(
        placed.iter().map(|k| k.job()).collect::<Vec<_>>(),
        [small],
        "512 MiB: only a small task fits"
    );
}

/// The attempts `effects` launch.
fn descriptors(effects: Vec<Effect>) -> Vec<TaskDescriptor> {
    effects
        .into_iter()
        .filter_map(|e| match e {
            Effect::Launch { tasks, .. } => Some(tasks),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_tenant_over_its_fuel_quota_stops_every_job_and_may_not_submit() {
    let (mut c, now) = core();
    let agent =
        c.register_agent("a:1".into(), Resources { slots: 8, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let quota = FuelQuota { amount: 1_000, period: Duration::from_secs(86_400) };
    c.set_fuel_quotas([("small".to_string(), quota)].into(), now);
    let tenant = |t: &str| JobSpec { tenant: t.into(), ..spec() };
    let (one, two, other) =
        (c.submit_job(tenant("small")), c.submit_job(tenant("small")), c.submit_job(tenant("big")));
    c.schedule(now);
    c.take_effects();
    for job in [one, two, other] {
        let (ctx, graph) = count(&c, job, 2);
        c.run_action(ctx, graph);
    }
    c.schedule(now);
    let tasks = descriptors(c.take_effects());
    for t in &tasks {
        let cap = if t.key.job() == other { TaskLimits::default().fuel } else { 1_000 };
        assert_eq!(t.limits.fuel, cap, "{}: the quota caps only its tenant's tasks", t.key);
    }
    let of = |job| tasks.iter().filter(|t| t.key.job() == job).map(|t| t.key).collect::<Vec<_>>();
    let burned =
        |key, fuel| TaskEnd { metering: TaskMetering { fuel, ..Default::default() }, ..finished(key) };
    // 700 burned by one job of the tenant: the other's next task gets the 300 left.
    c.task_ends(agent, vec![burned(of(one)[0], 700)], now);
    assert_eq!(c.ledger().quota_state("small", now).unwrap().used, 700);
    assert!(c.fuel_quota_over("small", now).is_none());
    // Past the quota both of its jobs stop, naming it; the other tenant runs on.
    c.task_ends(agent, vec![burned(of(two)[0], 400)], now);
    for job in [one, two] {
        let v = c.view(job).unwrap();
        assert_eq!(v.phase, JobPhase::Failed);
        assert!(
            v.message.contains("fuel quota of 1000 per 1day") && v.message.contains("resets at"),
            "{}",
            v.message
        );
    }
    assert_eq!(c.view(other).unwrap().phase, JobPhase::Running);
    let refused = c.fuel_quota_over("small", now).unwrap().to_string();
    assert!(refused.contains("1100 burned") && refused.contains("[tenant.quota] fuel"), "{refused}");
    assert!(c.fuel_quota_over("big", now).is_none());
    // The killed attempts report, and are billed with their label.
    let killed = |key| TaskEnd { end: EndReason::Killed, ..burned(key, 5) };
    c.task_ends(agent, vec![killed(of(one)[1]), killed(of(two)[1])], now);
    let t = c.ledger().job_totals(one);
    assert_eq!((t.ended(EndLabel::Finished), t.ended(EndLabel::Killed), t.meter.fuel), (1, 1, 705));
    assert_eq!(c.view(one).unwrap().totals.fuel, 705, "the view's totals are the ledger's");
}

#[test]
fn the_ledger_labels_lost_and_refused_attempts_and_the_view_sums_them() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    c.schedule(now);
    c.take_effects();
    let (ctx, graph) = count(&c, job, 4);
    c.run_action(ctx, graph);
    c.schedule(now);
    let keys: Vec<TaskKey> = descriptors(c.take_effects()).iter().map(|t| t.key).collect();
    assert_eq!(keys.len(), 2);
    c.launch_refused(a, vec![(keys[0], Refused::Busy, "busy".into())], now);
    c.task_ends(a, vec![finished(keys[1])], now);
    // The agent goes silent: its driver is lost with it.
    c.tick(now + Duration::from_secs(10));
    let q = crate::ledger::UsageQuery { by: crate::ledger::GroupBy::Attempt, ..Default::default() };
    let rows = c.ledger().usage(&q, now);
    let labels: Vec<(u32, EndLabel)> =
        rows.iter().map(|r| (r.stage.unwrap(), r.attempt.as_ref().unwrap().end)).collect();
    assert_eq!(
        labels,
        [(weft_core::task::DRIVER_STAGE.0, EndLabel::Lost), (0, EndLabel::Refused), (0, EndLabel::Finished)],
        "the driver (action 0) first"
    );
    assert_eq!(c.view(job).unwrap().totals.fuel, 1);
    assert_eq!(c.ledger().job_totals(job).attempts, 3);
}

#[test]
fn drivers_are_placed_by_share_not_by_submission() {
    let (mut c, now) = core();
    // Two driver slots; a submits three jobs before b submits one.
    c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let a: Vec<JobId> = (0..3).map(|_| c.submit_job(JobSpec { tenant: "a".into(), ..spec() })).collect();
    let b = c.submit_job(JobSpec { tenant: "b".into(), ..spec() });
    let started: Vec<JobId> = round(&mut c, now).iter().map(|k| k.job()).collect();
    assert_eq!(started, [a[0], b], "b's driver before a's second: {started:?}");
}

/// The descriptors of the work tasks launched by the next round.
fn work_inputs(c: &mut Core, now: Instant) -> Vec<(AgentId, TaskKey, weft_core::task::TaskInput)> {
    c.schedule(now);
    let mut out = Vec::new();
    for e in c.take_effects() {
        if let Effect::Launch { agent, tasks, .. } = e {
            for t in tasks {
                if let TaskBody::Work(w) = t.body {
                    out.push((agent, t.key, w.input));
                }
            }
        }
    }
    out
}

#[test]
fn kept_partitions_are_read_where_they_are_until_their_agent_drops_them() {
    use weft_core::plan::StorageLevel;
    use weft_core::task::{CachedRead, TaskInput};
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let job = c.submit_job(spec());
    let (mut ctx, _) = count(&c, job, 2);
    let xs = weft_core::ids::DatasetId(0);
    ctx.plan.persist(xs, Some(StorageLevel::MemoryOnly)).unwrap();
    let graph = dag::build(&ctx.plan, xs, &BTreeMap::new()).unwrap();
    c.run_action(ctx.clone(), graph.clone());
    let first = work_inputs(&mut c, now);
    assert!(first.iter().all(|(_, _, i)| matches!(i, TaskInput::Records(_))), "computed: {first:?}");
    let ends = first
        .iter()
        .map(|(_, k, _)| TaskEnd { cached: vec![(xs, k.partition, 100, true)], ..finished(*k) })
        .collect();
    c.task_ends(a, ends, now);

    c.run_action(ctx.clone(), graph.clone());
    let second = work_inputs(&mut c, now);
    let read = |p| TaskInput::Cached(CachedRead { dataset: xs, partition: p, address: None });
    let mut got: Vec<_> = second.iter().map(|(_, k, i)| (k.partition, i.clone())).collect();
    got.sort_by_key(|(p, _)| *p);
    assert_eq!(got, [(0, read(0)), (1, read(1))], "both read where they are kept");
    c.task_ends(a, second.iter().map(|(_, k, _)| finished(*k)).collect(), now);

    // Another agent saying it dropped them changes nothing; their keeper does.
    let b = c.register_agent("b:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now);
    c.forget_cached(b, &[(job, xs, 0), (job, xs, 1)]);
    c.forget_cached(a, &[(job, xs, 1)]);
    c.run_action(ctx, graph);
    let third = work_inputs(&mut c, now);
    let mut got: Vec<_> = third.iter().map(|(_, k, i)| (k.partition, i.clone())).collect();
    got.sort_by_key(|(p, _)| *p);
    assert_eq!(got[0], (0, read(0)));
    assert!(matches!(got[1], (1, TaskInput::Records(_))), "the dropped one is computed: {got:?}");
}

fn kills(effects: &[Effect]) -> Vec<(AgentId, Vec<TaskKey>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Kill { agent, tasks, .. } => Some((*agent, tasks.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn heartbeats_reconcile_what_agents_run_with_what_the_master_placed() {
    let (mut c, t0) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), t0);
    let b = c.register_agent("b:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), t0);
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 4);
    let action = c.run_action(ctx, graph);
    c.schedule(t0);
    let placed = launches(&c.take_effects());
    for (agent, keys) in &placed {
        c.launch_delivered(*agent, keys, t0);
    }
    let on = |agent| -> Vec<TaskKey> {
        placed.iter().filter(|(to, _)| *to == agent).flat_map(|(_, keys)| keys.iter().copied()).collect()
    };
    let (on_a, on_b) = (on(a), on(b));
    let driver = *on_a.iter().chain(&on_b).find(|k| k.is_driver()).unwrap();
    let driver_on = if on_a.contains(&driver) { a } else { b };
    let (tasks_a, tasks_b): (Vec<TaskKey>, Vec<TaskKey>) = (
        on_a.iter().filter(|k| !k.is_driver()).copied().collect(),
        on_b.iter().filter(|k| !k.is_driver()).copied().collect(),
    );
    assert!(!tasks_a.is_empty() && !tasks_b.is_empty(), "{placed:?}");

    // The first heartbeats after placing leave everything out (the launches
    // may not have arrived): nothing is judged; an attempt the master never
    // placed there is killed.
    let stray = TaskKey { attempt: 7, ..tasks_b[0] };
    let t1 = t0 + Duration::from_secs(1);
    assert!(c.heartbeat_running(a, &[stray], t1));
    assert_eq!(kills(&c.take_effects()), [(a, vec![stray])]);
    assert!(c.heartbeat_running(b, &on_b, t1));
    assert!(c.take_effects().is_empty());

    // Agent a's attempts (its updates lost) are left out of two heartbeats
    // that count: then they are lost and run again, not failed.
    let t2 = t1 + Duration::from_secs(1);
    let driver_listed = |agent| if agent == driver_on { vec![driver] } else { vec![] };
    assert!(c.heartbeat_running(a, &driver_listed(a), t2));
    assert!(c.heartbeat_running(b, &on_b, t2));
    c.schedule(t2);
    assert!(launches(&c.take_effects()).is_empty(), "one heartbeat leaving them out is not enough");
    let t3 = t2 + Duration::from_secs(1);
    assert!(c.heartbeat_running(a, &driver_listed(a), t3));
    assert!(c.heartbeat_running(b, &on_b, t3));
    c.schedule(t3);
    let again: Vec<TaskKey> = launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect();
    let mut want: Vec<(u32, u32)> = tasks_a.iter().map(|k| (k.stage.0, k.partition)).collect();
    let mut got: Vec<(u32, u32)> = again.iter().map(|k| (k.stage.0, k.partition)).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "the lost attempts' tasks run again");
    assert!(again.iter().all(|k| k.attempt == 1), "{again:?}");
    let q = crate::ledger::UsageQuery { by: crate::ledger::GroupBy::Attempt, ..Default::default() };
    let lost =
        c.ledger().usage(&q, t3).iter().filter(|r| r.attempt.as_ref().unwrap().end == EndLabel::Lost).count();
    assert_eq!(lost, tasks_a.len(), "closed as lost in the ledger");

    // Every task ends; the action finishes with every partition counted.
    let everything: Vec<(AgentId, TaskKey)> =
        tasks_b.iter().map(|k| (b, *k)).chain(placed_again(&c, &again)).collect();
    for (agent, key) in everything {
        assert!(c.task_ends(agent, vec![finished(key)], t3));
    }
    let ended = actions_ended(c.take_effects());
    assert_eq!(ended, [(action, Ok(JobOutput::Count(4)))]);

    // A driver its agent no longer runs fails its job, as a lost agent's does.
    let t4 = t3 + Duration::from_secs(1);
    let other = if driver_on == a { b } else { a };
    assert!(c.heartbeat_running(other, &[], t4));
    assert!(c.heartbeat_running(driver_on, &[], t4));
    assert_eq!(c.view(job).unwrap().phase, JobPhase::Running, "one heartbeat");
    assert!(c.heartbeat_running(driver_on, &[], t4 + Duration::from_secs(1)));
    let view = c.view(job).unwrap();
    assert_eq!(view.phase, JobPhase::Failed);
    assert!(view.message.contains("no longer runs it"), "{}", view.message);

    // An agent the master does not know is told to register again.
    c.tick(t4 + Duration::from_secs(60));
    assert!(!c.heartbeat_running(a, &[], t4 + Duration::from_secs(61)));
}

#[test]
fn attempts_whose_launch_has_not_reached_their_agent_are_not_judged_by_its_heartbeats() {
    let (mut c, t0) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), t0);
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 2);
    c.run_action(ctx, graph);
    c.schedule(t0);
    let placed: Vec<TaskKey> = launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect();
    assert_eq!(placed.len(), 3, "the driver and two tasks: {placed:?}");
    // The launch waits behind a slow one: heartbeats without them change nothing.
    for s in 1..=5 {
        assert!(c.heartbeat_running(a, &[], t0 + Duration::from_secs(s)));
    }
    c.schedule(t0 + Duration::from_secs(5));
    assert!(launches(&c.take_effects()).is_empty());
    assert_eq!(c.view(job).unwrap().phase, JobPhase::Running);
    // Taken at last, and then left out of two heartbeats: lost.
    c.launch_delivered(a, &placed, t0 + Duration::from_secs(5));
    for s in 6..=8 {
        assert!(c.heartbeat_running(a, &[], t0 + Duration::from_secs(s)));
    }
    assert_eq!(c.view(job).unwrap().phase, JobPhase::Failed, "the driver was lost");
}

/// Where each attempt in `keys` was placed.
fn placed_again(c: &Core, keys: &[TaskKey]) -> Vec<(AgentId, TaskKey)> {
    keys.iter().map(|k| (c.running[k].agent, *k)).collect()
}

/// Register an agent of 4 slots at `address`.
fn agent4(c: &mut Core, address: &str, now: Instant) -> AgentId {
    c.register_agent(address.into(), Resources { slots: 4, memory: 0, queue: 0 }, BTreeMap::new(), now)
}

/// The agent the last scheduling round placed `job`'s driver on, with its key.
fn driver_placed(effects: &[Effect], job: JobId) -> (AgentId, TaskKey) {
    launches(effects)
        .into_iter()
        .find_map(|(agent, keys)| {
            keys.into_iter().find(|k| k.is_driver() && k.job() == job).map(|k| (agent, k))
        })
        .unwrap_or_else(|| panic!("no driver of {job} placed: {effects:?}"))
}

/// Agents `a:1` and `b:1`, and a job whose driver may restart once, its
/// driver placed: the job, the driver's agent, its key, and the other agent.
fn a_driver_on_one_of_two() -> (Core, Instant, JobId, AgentId, TaskKey, AgentId) {
    let (mut c, t0) = core();
    let (a, b) = (agent4(&mut c, "a:1", t0), agent4(&mut c, "b:1", t0));
    let job = c.submit_job(JobSpec { driver_restarts: 1, ..spec() });
    c.schedule(t0);
    let (on, key) = driver_placed(&c.take_effects(), job);
    (c, t0, job, on, key, if on == a { b } else { a })
}

#[test]
fn a_lost_agents_driver_starts_again_elsewhere_while_its_action_goes_on_until_no_restart_is_left() {
    let (mut c, t0, job, _, key, other) = a_driver_on_one_of_two();
    assert_eq!(key.attempt, 0);
    let (ctx, graph) = count(&c, job, 6);
    let action = c.run_action(ctx, graph);
    c.schedule(t0);
    let placed = launches(&c.take_effects());
    let on_other: Vec<TaskKey> =
        placed.iter().filter(|(to, _)| *to == other).flat_map(|(_, k)| k.clone()).collect();
    assert!(!on_other.is_empty(), "{placed:?}");

    // The driver's agent goes silent and is lost; the other heartbeats on.
    let t1 = t0 + Duration::from_secs(4);
    assert!(c.heartbeat(other, t1));
    c.tick(t1);
    let view = c.view(job).unwrap();
    assert_eq!((view.phase, view.driver_restarts), (JobPhase::Running, 1), "{}", view.message);
    let effects = c.take_effects();
    assert!(actions_ended(effects).is_empty(), "the action goes on without its driver");
    // The driver starts again on the other agent, as attempt 1; the lost
    // agent's tasks run again there too.
    c.schedule(t1);
    let effects = c.take_effects();
    let (again, key) = driver_placed(&effects, job);
    assert_eq!((again, key.attempt), (other, 1));
    let rerun: Vec<TaskKey> =
        launches(&effects).into_iter().flat_map(|(_, k)| k).filter(|k| !k.is_driver()).collect();
    for k in on_other.into_iter().chain(rerun) {
        assert!(c.task_ends(other, vec![finished(k)], t1));
    }
    c.schedule(t1);
    let late: Vec<TaskKey> = launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect();
    for k in late {
        assert!(c.task_ends(other, vec![finished(k)], t1));
    }
    assert_eq!(actions_ended(c.take_effects()), [(action, Ok(JobOutput::Count(6)))], "every partition once");
    // The driver the agent lost ends late (say, resumed): ignored.
    assert!(c.task_ends(other, vec![finished(TaskKey::driver(job, 0))], t1));
    assert_eq!(c.view(job).unwrap().phase, JobPhase::Running);

    // Lost again with no restart left: the job fails, saying so.
    let t2 = t1 + Duration::from_secs(4);
    let c_agent = agent4(&mut c, "c:1", t2);
    c.tick(t2);
    let view = c.view(job).unwrap();
    assert_eq!(view.phase, JobPhase::Failed);
    assert!(
        view.message.contains("was lost") && view.message.contains("started 2 times"),
        "{}",
        view.message
    );
    // A job that allows no restart fails at once.
    let plain = c.submit_job(spec());
    c.schedule(t2);
    let (on, _) = driver_placed(&c.take_effects(), plain);
    assert_eq!(on, c_agent);
    c.tick(t2 + Duration::from_secs(4));
    let view = c.view(plain).unwrap();
    assert_eq!((view.phase, view.driver_restarts), (JobPhase::Failed, 0));
    assert!(!view.message.contains("started"), "{}", view.message);
}

#[test]
fn an_agent_whose_tasks_keep_failing_for_the_hosts_reasons_is_excluded_for_a_while() {
    let (mut c, t0) = core();
    let (a, b) = (agent4(&mut c, "a:1", t0), agent4(&mut c, "b:1", t0));
    let job = c.submit_job(JobSpec { max_task_attempts: 10, ..spec() });
    let (ctx, graph) = count(&c, job, 20);
    c.run_action(ctx, graph);
    c.schedule(t0);
    let placed = launches(&c.take_effects());
    let on = |agent: AgentId| -> Vec<TaskKey> {
        placed
            .iter()
            .filter(|(to, _)| *to == agent)
            .flat_map(|(_, k)| k.iter().filter(|k| !k.is_driver()))
            .copied()
            .collect()
    };
    let (on_a, on_b) = (on(a), on(b));
    assert!(on_a.len() >= 4 && on_b.len() >= 3, "{placed:?}");
    let host =
        |key: TaskKey| TaskEnd { end: EndReason::HostError { message: "disk full".into() }, ..finished(key) };
    let excluded = |c: &Core, agent| c.agents.get(agent).unwrap().excluded_until.is_some();
    // Two host failures are not enough; the third excludes the agent.
    assert!(c.task_ends(a, vec![host(on_a[0]), host(on_a[1])], t0));
    assert!(!excluded(&c, a));
    assert!(c.task_ends(a, vec![host(on_a[2])], t0));
    assert_eq!(c.agents.get(a).unwrap().excluded_until, Some(t0 + agents::EXCLUDE_FOR));
    // Nothing is placed on it while it is excluded, drivers included, even
    // after one of its tasks ends and shows free room.
    assert!(c.task_ends(a, vec![finished(on_a[3])], t0));
    for k in &on_b {
        assert!(c.task_ends(b, vec![finished(*k)], t0));
    }
    c.schedule(t0);
    let next = launches(&c.take_effects());
    assert!(!next.is_empty() && next.iter().all(|(to, _)| *to == b), "{next:?}");
    // The last agent not excluded is never excluded: the cluster would stop.
    let on_b: Vec<TaskKey> = next.iter().flat_map(|(_, k)| k.iter().copied()).collect();
    assert!(c.task_ends(b, on_b.iter().take(3).map(|k| host(*k)).collect(), t0));
    assert!(!excluded(&c, b));
    // Once its exclusion is over, it is offered tasks again.
    let t1 = t0 + agents::EXCLUDE_FOR + Duration::from_secs(1);
    for agent in [a, b] {
        assert!(c.heartbeat(agent, t1));
    }
    c.tick(t1);
    c.schedule(t1);
    assert!(launches(&c.take_effects()).iter().any(|(to, _)| *to == a), "a runs tasks again");
}

#[test]
fn exclusions_are_lifted_when_the_last_agent_not_excluded_is_lost() {
    let (mut c, t0) = core();
    let (a, b) = (agent4(&mut c, "a:1", t0), agent4(&mut c, "b:1", t0));
    let job = c.submit_job(JobSpec { max_task_attempts: 10, ..spec() });
    let (ctx, graph) = count(&c, job, 8);
    c.run_action(ctx, graph);
    c.schedule(t0);
    let on_a: Vec<TaskKey> = launches(&c.take_effects())
        .into_iter()
        .filter(|(to, _)| *to == a)
        .flat_map(|(_, k)| k)
        .filter(|k| !k.is_driver())
        .collect();
    let host =
        |key: TaskKey| TaskEnd { end: EndReason::HostError { message: "disk full".into() }, ..finished(key) };
    assert!(c.task_ends(a, on_a.iter().take(3).map(|k| host(*k)).collect(), t0));
    assert!(c.agents.get(a).unwrap().excluded_until.is_some());
    // b falls silent and is lost; a, excluded, is all that is left.
    let t1 = t0 + Duration::from_secs(5);
    assert!(c.heartbeat(a, t1));
    c.tick(t1);
    assert!(!c.agents.is_live(b));
    assert_eq!(c.agents.get(a).unwrap().excluded_until, None, "the cluster must not stop");
    c.schedule(t1);
    assert!(launches(&c.take_effects()).iter().any(|(to, _)| *to == a), "a runs tasks again");
}

/// The core of a master started again on what `c` kept: a new run number.
fn restarted(c: &mut Core, kept: Vec<crate::persist::Writes>) -> Core {
    let mut restored = crate::persist::Restored::default();
    for w in kept.into_iter().chain([c.take_writes(true)]) {
        for job in w.jobs {
            restored.jobs.retain(|j| j.id != job.id);
            restored.jobs.push(job);
        }
        restored.attempts.extend(w.attempts);
        for (job, record) in w.places {
            restored.places.retain(|p| p.job != job);
            restored.places.extend(record);
        }
        for write in w.acts {
            restored.acts.retain(|e| (e.job, e.number) != write.key());
            if let crate::persist::ActWrite::Keep(entry) = write {
                restored.acts.push(entry);
            }
        }
    }
    let (mut again, _) = core();
    // A run number none before it had, for its jobs and agents.
    let run = Incarnation(if c.incarnation.0 == 0xdef { 0xdf0 } else { 0xdef });
    again.incarnation = run;
    again.agents = Agents::new(run, Duration::from_secs(1), 3);
    again.restore(restored, |_| Arc::default());
    again
}

#[test]
fn each_answer_is_kept_once_and_goes_when_dropped_or_when_its_job_ends() {
    let (mut c, now) = core();
    let (_, _, job) = two_agents_and_a_job(&mut c, now);
    c.take_writes(true);
    let kept = |w: &crate::persist::Writes| -> Vec<(u32, bool)> {
        w.acts
            .iter()
            .map(|write| {
                let (j, n) = write.key();
                assert_eq!(j, job);
                (n, matches!(write, crate::persist::ActWrite::Keep(_)))
            })
            .collect()
    };
    // Answers of 4 MiB: past 16 MiB of them, the oldest goes.
    for n in 1..=5_u32 {
        c.record_act(job, n, ActRecord { asked: [n as u8; 32], answer: Ok(vec![n as u8; MAX_ACT_RECORD]) });
        let w = c.take_writes(false);
        assert_eq!(w.jobs.len(), 1, "the job's record, with its actions run");
        assert!(w.jobs[0].acts.is_empty(), "which carries no answer");
        let expected = if n == 5 { vec![(1, false), (5, true)] } else { vec![(n, true)] };
        assert_eq!(kept(&w), expected, "only the new answer, written once");
    }
    assert!(c.kill(job));
    let w = c.take_writes(false);
    assert_eq!(kept(&w), [(2, false), (3, false), (4, false), (5, false)], "the job ended: its answers go");
}

#[test]
fn a_restarted_core_goes_on_with_its_live_jobs_and_keeps_the_ended_ones() {
    let (mut c, now) = core();
    let a = c.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    let ended = c.submit_job(spec());
    let live = c.submit_job(spec());
    let writes = c.take_writes(false);
    assert_eq!(writes.jobs.len(), 2, "a job accepted is kept at once");
    assert!(c.take_writes(false).is_empty(), "nothing changed since");
    c.schedule(now);
    let drivers: Vec<TaskKey> = launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect();
    assert_eq!(drivers.len(), 2);
    let (ctx, graph) = count(&c, live, 2);
    c.run_action(ctx, graph);
    c.schedule(now);
    let tasks: Vec<TaskKey> =
        launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).filter(|k| !k.is_driver()).collect();
    c.task_ends(a, tasks.into_iter().map(finished).collect(), now);
    c.record_act(live, 1, ActRecord { asked: [1; 32], answer: Ok(vec![2]) });
    let end = TaskEnd {
        log: "bye".into(),
        ..finished(drivers.iter().copied().find(|k| k.job() == ended).unwrap())
    };
    c.task_ends(a, vec![end], now);
    let before = (c.view(ended).unwrap(), c.view(live).unwrap());
    assert_eq!(before.0.phase, JobPhase::Succeeded);
    assert_eq!(before.1.totals.fuel, 2, "two tasks of the live job ended");

    let mut again = restarted(&mut c, vec![writes]);
    let (was_ended, was_live) = (again.view(ended).unwrap(), again.view(live).unwrap());
    assert_eq!((was_ended.phase, was_ended.driver_log.as_str()), (JobPhase::Succeeded, "bye"));
    assert_eq!(was_ended.totals, before.0.totals, "an ended job's metering survives");
    assert_eq!(was_live.phase, JobPhase::Running);
    assert_eq!(was_live.totals, before.1.totals, "so does a live one's");
    assert_eq!(again.act_record(live, 1).map(|r| r.answer.clone()), Some(Ok(vec![2])), "its answers too");
    assert_eq!(again.job(live).unwrap().actions_run, 1);

    // The live job's driver starts again, under an attempt number never used.
    let b =
        again.register_agent("a:1".into(), Resources { slots: 2, memory: 0, queue: 0 }, BTreeMap::new(), now);
    again.schedule(now);
    let relaunched: Vec<TaskKey> = launches(&again.take_effects()).into_iter().flat_map(|(_, k)| k).collect();
    let old = drivers.iter().find(|k| k.job() == live).unwrap();
    assert_eq!(relaunched, [TaskKey::driver(live, old.attempt + 1)], "only the live job's driver, on {b}");
    // Its next action and the next job have numbers no earlier run gave.
    let (ctx, graph) = count(&again, live, 1);
    assert_eq!(again.run_action(ctx, graph).seq, 2);
    assert_eq!(again.submit_job(spec()).to_string(), "job-00000def-1");
    let usage = again.ledger().usage(&crate::ledger::UsageQuery::default(), now);
    assert_eq!(c.ledger().records().len(), 3, "the ended driver and the live job's two tasks");
    assert_eq!(usage[0].totals.attempts, 3, "every record of the earlier run");
}

/// Run `job`'s reduce action (`maps` maps into 2 reduce partitions) until its
/// maps have finished, one at a time: the map keys, by the agent that ran
/// them, what the store kept before, and what the last one had it keep.
fn maps_done(
    c: &mut Core,
    job: JobId,
    maps: usize,
    now: Instant,
) -> (BTreeMap<AgentId, Vec<TaskKey>>, crate::persist::Writes, crate::persist::Writes) {
    let (ctx, graph) = reduce(c, job, maps, 2);
    c.run_action(ctx, graph);
    let before = c.take_writes(false);
    let mut ran: BTreeMap<AgentId, Vec<TaskKey>> = BTreeMap::new();
    loop {
        c.schedule(now);
        let placed: Vec<(AgentId, TaskKey)> = launched(c.take_effects())
            .into_iter()
            .flat_map(|(agent, tasks, _)| tasks.into_iter().map(move |t| (agent, t.key)))
            .filter(|(_, k)| !k.is_driver())
            .collect();
        assert!(!placed.is_empty() && placed.iter().all(|(_, k)| k.stage.0 == 0), "maps: {placed:?}");
        for (agent, key) in placed {
            c.task_ends(agent, vec![TaskEnd { partition_bytes: vec![7, 9], ..finished(key) }], now);
            ran.entry(agent).or_default().push(key);
            let writes = c.take_writes(false);
            if ran.values().map(Vec::len).sum::<usize>() == maps {
                return (ran, before, writes);
            }
            assert!(writes.is_empty(), "a map output alone is kept with the next records");
        }
    }
}

#[test]
fn a_restarted_core_takes_back_the_map_outputs_of_the_agents_that_come_back() {
    let (mut c, now) = core();
    let slots = TWO_SLOTS;
    let (a, b, job) = two_agents_and_a_job(&mut c, now);
    let (_, driver) = driver_placed(&c.take_effects(), job);
    let (ran, before, writes) = maps_done(&mut c, job, 4, now);
    assert!(ran.contains_key(&a) && ran.contains_key(&b), "{ran:?}");
    // The shuffle complete, where its outputs are is kept before its
    // readers start.
    assert!(writes.jobs.is_empty(), "not the job's record, only where its outputs are");
    let places = writes.places.iter().find(|(j, _)| *j == job).and_then(|(_, r)| r.clone()).unwrap();
    assert_eq!(places.agents(), BTreeSet::from([a, b]));

    // A restarted master: the driver waits for the agents holding the
    // outputs, a while at most.
    let mut again = restarted(&mut c, vec![before, writes]);
    let a2 = again.register_agent("a:1".into(), slots, BTreeMap::new(), now);
    again.agent_returned(a, a2);
    again.schedule(now);
    assert!(launches(&again.take_effects()).is_empty(), "the driver waits for b");
    let b2 = again.register_agent("b:1".into(), slots, BTreeMap::new(), now);
    again.agent_returned(b, b2);
    again.schedule(now);
    assert_eq!(driver_placed(&again.take_effects(), job).1, TaskKey::driver(job, driver.attempt + 1));
    // The restarted driver's action adopts every map output: only the
    // reduces run, reading the files where the earlier run left them.
    let (ctx, graph) = reduce(&again, job, 4, 2);
    again.run_action(ctx, graph);
    again.schedule(now);
    let launches = launched(again.take_effects());
    let keys: Vec<TaskKey> = launches.iter().flat_map(|(_, t, _)| t.iter().map(|d| d.key)).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|k| k.stage.0 == 1), "no map runs again: {keys:?}");
    let table = &launches[0].2[0];
    assert_eq!(table.maps.len(), 4);
    assert!(table.maps.iter().all(|m| m.attempt == 0 && m.sizes.of(1) == 8), "{table:?}");
    let mut addresses: Vec<&str> = table.addresses.iter().map(|a| &**a).collect();
    addresses.sort_unstable();
    assert_eq!(addresses, ["a:1", "b:1"]);

    // Once more, and b does not come back: after the time an agent takes to
    // be found lost, the driver starts, and only b's outputs run again.
    let writes = again.take_writes(true);
    let mut third = restarted(&mut again, vec![writes]);
    let a3 = third.register_agent("a:1".into(), slots, BTreeMap::new(), now);
    third.agent_returned(a2, a3);
    third.schedule(now);
    assert!(launches_of(&mut third).is_empty(), "the driver waits for b");
    let later = now + Duration::from_secs(4);
    third.heartbeat(a3, later);
    third.schedule(later);
    assert!(launches_of(&mut third).iter().any(|k| k.is_driver()));
    let (ctx, graph) = reduce(&third, job, 4, 2);
    third.run_action(ctx, graph);
    third.schedule(later);
    let mut again_ran: Vec<u32> = launches_of(&mut third).iter().map(|k| k.partition).collect();
    again_ran.sort_unstable();
    let mut of_b: Vec<u32> = ran[&b].iter().map(|k| k.partition).collect();
    of_b.sort_unstable();
    assert_eq!(again_ran, of_b, "b's maps, and only those");
}

/// What the last effects launched, one (agent, task) pair each.
fn placements(c: &mut Core) -> Vec<(AgentId, TaskKey)> {
    launches(&c.take_effects())
        .into_iter()
        .flat_map(|(to, keys)| keys.into_iter().map(move |k| (to, k)))
        .collect()
}

fn launches_of(c: &mut Core) -> Vec<TaskKey> {
    launches(&c.take_effects()).into_iter().flat_map(|(_, k)| k).collect()
}

#[test]
fn a_straggler_gets_a_copy_elsewhere_and_the_first_to_finish_wins() {
    let s = crate::job::Speculation { quantile: 0.5, multiplier: 1.5, min_runtime: Duration::from_secs(1) };
    let (mut c, t0) = core_with(Some(s));
    let (a, b) = (agent4(&mut c, "a:1", t0), agent4(&mut c, "b:1", t0));
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 4);
    let action = c.run_action(ctx, graph);
    c.schedule(t0);
    let placed: Vec<(AgentId, TaskKey)> =
        placements(&mut c).into_iter().filter(|(_, k)| !k.is_driver()).collect();
    assert_eq!(placed.len(), 4);
    // Two finish at once; the other two run on.
    for (to, k) in &placed[..2] {
        assert!(c.task_ends(*to, vec![finished(*k)], t0));
    }
    c.tick(t0 + Duration::from_millis(500));
    c.schedule(t0 + Duration::from_millis(500));
    assert!(launches(&c.take_effects()).is_empty(), "not yet past the least runtime");
    let t1 = t0 + Duration::from_secs(5);
    for agent in [a, b] {
        assert!(c.heartbeat(agent, t1));
    }
    c.tick(t1);
    c.schedule(t1);
    let copies = placements(&mut c);
    assert_eq!(copies.len(), 2, "both stragglers get a copy: {copies:?}");
    for (to, copy) in &copies {
        let (from, original) = placed.iter().find(|(_, k)| k.partition == copy.partition).unwrap();
        assert_ne!(to, from, "a copy runs away from its original");
        assert_eq!(copy.attempt, original.attempt + 1);
    }
    // The first straggler's copy finishes first: its original is killed.
    let (to, copy) = copies[0];
    let (from, original) = *placed.iter().find(|(_, k)| k.partition == copy.partition).unwrap();
    assert!(c.task_ends(to, vec![finished(copy)], t1));
    assert_eq!(kills(&c.take_effects()), [(from, vec![original])]);
    // Its late end counts nothing.
    assert!(c.task_ends(from, vec![finished(original)], t1));
    // The second straggler's copy fails on its host: the original carries on, and wins.
    let (to, copy) = copies[1];
    let (from, original) = *placed.iter().find(|(_, k)| k.partition == copy.partition).unwrap();
    let failed = TaskEnd { end: EndReason::HostError { message: "disk".into() }, ..finished(copy) };
    assert!(c.task_ends(to, vec![failed], t1));
    assert!(c.take_effects().iter().all(|e| !matches!(e, Effect::Kill { .. } | Effect::ActionEnded { .. })));
    assert!(c.task_ends(from, vec![finished(original)], t1));
    assert_eq!(
        actions_ended(c.take_effects()),
        [(action, Ok(JobOutput::Count(4)))],
        "each task counted once"
    );
}

#[test]
fn an_agent_whose_tasks_keep_being_out_run_is_excluded_as_slow_and_its_tasks_are_copied_at_once() {
    let s = crate::job::Speculation { quantile: 0.5, multiplier: 1.5, min_runtime: Duration::from_secs(1) };
    let (mut c, t0) = core_with(Some(s));
    let eight = Resources { slots: 8, memory: 0, queue: 0 };
    let [a, b, d] = ["a:1", "b:1", "d:1"].map(|at| c.register_agent(at.into(), eight, BTreeMap::new(), t0));
    // Job x's 12 tasks, and job y's 3 on the side, all placed at once.
    let x = c.submit_job(spec());
    let (ctx, graph) = count(&c, x, 12);
    c.run_action(ctx, graph);
    let y = c.submit_job(spec());
    let (ctx, graph) = count(&c, y, 3);
    c.run_action(ctx, graph);
    c.schedule(t0);
    let placed: Vec<(AgentId, TaskKey)> =
        placements(&mut c).into_iter().filter(|(_, k)| !k.is_driver()).collect();
    let of = |job: JobId, agent: AgentId| -> Vec<TaskKey> {
        placed.iter().filter(|(to, k)| *to == agent && k.job() == job).map(|(_, k)| *k).collect()
    };
    assert_eq!([a, b, d].map(|agent| of(x, agent).len()), [4, 4, 4], "{placed:?}");
    let y_on_a = of(y, a);
    assert_eq!(y_on_a.len(), 1, "{placed:?}");
    // x's tasks on b and d finish in a second; those on a run on.
    let t1 = t0 + Duration::from_secs(1);
    for agent in [b, d] {
        assert!(c.task_ends(agent, of(x, agent).into_iter().map(finished).collect(), t1));
    }
    let t2 = t0 + Duration::from_secs(2);
    for agent in [a, b, d] {
        assert!(c.heartbeat(agent, t2));
    }
    c.tick(t2);
    c.schedule(t2);
    let copies = placements(&mut c);
    assert_eq!(
        copies.len(),
        4,
        "a's four stragglers of x, none of y (none of its tasks finished): {copies:?}"
    );
    assert!(copies.iter().all(|(to, k)| *to != a && k.job() == x && k.attempt == 1), "{copies:?}");
    // The first copy to out-run its original counts against a; the second
    // excludes it as slow.
    let slow = |c: &Core| c.agents.get(a).unwrap().excluded_until.is_some();
    assert!(c.task_ends(copies[0].0, vec![finished(copies[0].1)], t2));
    assert!(!slow(&c));
    assert!(c.task_ends(copies[1].0, vec![finished(copies[1].1)], t2));
    let ag = c.agents.get(a).unwrap();
    assert_eq!((ag.excluded_until, ag.excluded_why), (Some(t2 + agents::SLOW_FOR), agents::Exclusion::Slow));
    assert_eq!(c.agents.excluded(), [a], "its kept partitions are not waited for");
    // y's task on a is a straggler at once, though no task of its stage
    // has finished: it gets a copy elsewhere.
    c.schedule(t2);
    let next = placements(&mut c);
    assert_eq!(next.len(), 1, "{next:?}");
    assert_ne!(next[0].0, a);
    assert_eq!(next[0].1, TaskKey { attempt: 1, ..y_on_a[0] });
    // Nothing new is placed on a while it is excluded.
    let z = c.submit_job(spec());
    let (ctx, graph) = count(&c, z, 6);
    c.run_action(ctx, graph);
    c.schedule(t2);
    let z_placed = launches(&c.take_effects());
    assert!(!z_placed.is_empty() && z_placed.iter().all(|(to, _)| *to != a), "{z_placed:?}");
    // An original that wins against its copy counts against no agent.
    let (to, copy) = copies[2];
    let original = placed.iter().find(|(_, k)| k.job() == x && k.partition == copy.partition).unwrap().1;
    assert!(c.task_ends(a, vec![finished(original)], t2));
    assert_eq!(kills(&c.take_effects()), [(to, vec![copy])]);
    assert!(!c.agents.is_slow(to, t2));
    // Its exclusion over, a is slow no more.
    let t3 = t2 + agents::SLOW_FOR + Duration::from_secs(1);
    for agent in [a, b, d] {
        assert!(c.heartbeat(agent, t3));
    }
    c.tick(t3);
    assert!(c.agents.excluded().is_empty() && !c.agents.is_slow(a, t3));
}

#[test]
fn an_agent_that_misses_heartbeats_is_probed_and_lost_at_once_if_its_port_refuses() {
    let (mut c, t0) = core();
    let (a, b) = (agent4(&mut c, "a:1", t0), agent4(&mut c, "http://b:1", t0));
    let job = c.submit_job(spec());
    let (ctx, graph) = count(&c, job, 8);
    c.run_action(ctx, graph);
    c.schedule(t0);
    let placed = launches(&c.take_effects());
    let on = |agent| -> Vec<TaskKey> {
        placed
            .iter()
            .filter(|(to, _)| *to == agent)
            .flat_map(|(_, k)| k.clone())
            .filter(|k| !k.is_driver())
            .collect()
    };
    let (on_a, on_b) = (on(a), on(b));
    assert!(!on_b.is_empty(), "{placed:?}");
    // One missed heartbeat is no news.
    let t1 = t0 + Duration::from_millis(1500);
    c.tick(t1);
    assert!(probes(&mut c).is_empty());
    // Two are: both are probed, once per interval.
    let t2 = t0 + Duration::from_millis(2100);
    assert!(c.heartbeat(a, t0 + Duration::from_millis(50)));
    c.tick(t2);
    assert_eq!(probes(&mut c), vec![(a, "a:1".to_string()), (b, "http://b:1".to_string())]);
    c.tick(t2 + Duration::from_millis(500));
    assert!(probes(&mut c).is_empty(), "probed again within the interval");
    // `a` heartbeat meanwhile: a refusal found late loses nothing.
    assert!(c.heartbeat(a, t2 + Duration::from_millis(600)));
    c.agent_unreachable(a, t2, t2 + Duration::from_millis(700));
    assert!(c.agents.is_live(a));
    // `b` is still silent: lost now, long before `lost_after` (3) heartbeats,
    // and its tasks run again on `a`.
    let t3 = t2 + Duration::from_millis(700);
    c.agent_unreachable(b, t2, t3);
    assert!(!c.agents.is_live(b));
    for k in on_a {
        assert!(c.task_ends(a, vec![finished(k)], t3));
    }
    c.schedule(t3);
    let again = launches(&c.take_effects());
    let partitions =
        |keys: Vec<TaskKey>| -> BTreeSet<u32> { keys.into_iter().map(|k| k.partition).collect() };
    assert!(again.iter().all(|(to, _)| *to == a), "{again:?}");
    assert_eq!(partitions(again.into_iter().flat_map(|(_, k)| k).collect()), partitions(on_b));
}

/// The probes among `c`'s effects: agent, address and since when.
fn probes_since(c: &mut Core) -> Vec<(AgentId, String, Instant)> {
    c.take_effects()
        .into_iter()
        .filter_map(|e| match e {
            Effect::Probe { agent, address, since } => Some((agent, address, since)),
            _ => None,
        })
        .collect()
}

/// The probes among `c`'s effects: agent and address.
fn probes(c: &mut Core) -> Vec<(AgentId, String)> {
    probes_since(c).into_iter().map(|(agent, address, _)| (agent, address)).collect()
}

#[test]
fn an_agent_whose_connection_closes_is_probed_at_once_and_lost_if_its_port_refuses() {
    let (mut c, t0, job, on, _, other) = a_driver_on_one_of_two();
    // The driver's agent heartbeat a moment ago; its connection closes: its
    // port is checked now, not after missed heartbeats.
    let t1 = t0 + Duration::from_millis(300);
    assert!(c.heartbeat(on, t1));
    let t2 = t1 + Duration::from_millis(10);
    c.agent_disconnected(on, t2);
    let address = c.agents.get(on).unwrap().address.clone();
    assert_eq!(probes_since(&mut c), vec![(on, address, t2)]);
    // A live agent that reconnected and heartbeat since loses nothing, even
    // if a later check of its port failed.
    let t3 = t2 + Duration::from_millis(5);
    assert!(c.heartbeat(on, t3));
    c.agent_unreachable(on, t2, t3);
    assert!(c.agents.is_live(on));
    // Closed again, and its port refuses: lost at once, 0.3 s after its last
    // heartbeat (lost-after is 3 s), and its driver starts on the other agent.
    let t4 = t3 + Duration::from_millis(10);
    c.agent_disconnected(on, t4);
    assert_eq!(probes(&mut c).len(), 1);
    c.agent_unreachable(on, t4, t4 + Duration::from_millis(2));
    assert!(!c.agents.is_live(on));
    assert_eq!(c.job(job).unwrap().driver_restarts, 1);
    c.schedule(t4 + Duration::from_millis(2));
    let again = launches(&c.take_effects());
    assert!(again.iter().any(|(to, ks)| *to == other && ks.iter().any(TaskKey::is_driver)), "{again:?}");
    // A lost agent, or one the master never knew, is probed no more.
    c.agent_disconnected(on, t4 + Duration::from_millis(3));
    c.agent_disconnected(AgentId { incarnation: Incarnation(1), seq: 9 }, t4);
    assert!(probes(&mut c).is_empty());
    // A launch that does not reach `other` has its port checked too.
    c.launch_failed(other, Vec::new(), "connection refused", t4 + Duration::from_millis(4));
    assert_eq!(probes(&mut c).len(), 1);
}
