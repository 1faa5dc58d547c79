//! The master's scheduler core at cluster scale, driven in-process.
//!
//! `cargo xtask bench-scale` (or `cargo bench -p weft-master --bench scale`)
//! registers 10,000 simulated agents of 8 task slots each with the real
//! [`Core`] and runs actions of 100,000 tasks through it, round by round: the
//! core places ready tasks ([`Core::schedule`]), the launches come out of
//! [`Core::take_effects`], and every agent answers each launch with one batch
//! of `Finished` ends ([`Core::task_ends`], as an agent's `UpdateTasks` does),
//! until the action ends. Only the core's own calls are timed, not the
//! simulated agents' bookkeeping (building the ends, dropping descriptors).
//!
//! Shapes:
//!
//! - `count`: one stage, a count over N empty parallelized partitions (the
//!   descriptor carries no records);
//! - `jobs`: J jobs with one action of N/J such tasks each, run at once;
//! - `text`: a map stage over M text splits into a sum-by-key shuffle read by
//!   R reduce tasks, then a count. Each reduce task's descriptor lists all M
//!   map outputs (an all-to-all shuffle) and each map end reports R block
//!   sizes, so the reduce stage costs O(M) per task: it is timed apart, with
//!   the peak bytes in use while the round's descriptors are out.
//!
//! Every run checks its result (the count of tasks, or of reduce tasks) and
//! that no task was launched twice. Memory per pending task is the growth of
//! the bytes in use (a counting global allocator) from before the action's
//! plan is built until the core holds the action, nothing placed yet,
//! divided by its tasks: the plan, the splits (shared by the job and the
//! action's context, as the master keeps them), the stage graph and the
//! run's per-task state.
//!
//! The native baseline places N tasks with the simplest fast loop: pop a
//! task id from a `Vec`, take the roomiest agent from a `BinaryHeap`, push
//! the id onto that agent's `Vec`; when the slots run out, every agent's
//! tasks end and its slots are free again. `x native` is the ratio of the
//! times per decision.
//!
//! Environment: `WEFT_BENCH_AGENTS` (default 10000), `WEFT_BENCH_SLOTS` (per
//! agent, default 8), `WEFT_BENCH_TASKS` (N, default 100000), `WEFT_BENCH_JOBS`
//! (J, default 10), `WEFT_BENCH_TEXT` (`MxR` shapes, default
//! `100000x100,10000x1000`; `100000x1000` needs about 7 GB), `WEFT_BENCH_RUNS`
//! (best of, default 3), `WEFT_BENCH_MEMORY_TASKS` (sizes whose memory per
//! pending task is measured, default `100000,1000000`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_core::artifact::Digest;
use weft_core::ids::{AgentId, DatasetId, Incarnation, JobId};
use weft_core::io::TextSplit;
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::plan::{Node, Plan, ShuffleKind, Step, StepKind};
use weft_core::task::{Data, TaskKey};
use weft_master::dag::{self, JobGraph};
use weft_master::launch::{JobContext, ResultSink};
use weft_master::state::{
    Core, CoreConfig, Effect, JobOutput, JobSpec, Resources, Sharing, TaskEnd, TenantSharing,
};

/// Counts the bytes in use, on top of the system allocator.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn count_alloc(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            count_alloc(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// The most bytes in use since the last call.
fn take_peak() -> usize {
    PEAK.swap(in_use(), Ordering::Relaxed)
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

fn env_nums(name: &str, default: &str) -> Vec<u64> {
    let v = std::env::var(name).unwrap_or_else(|_| default.to_string());
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| panic!("{name}: {s:?} is not a number")))
        .collect()
}

/// A core with `agents` registered agents of `slots` slots each.
fn cluster(agents: u32, slots: u32) -> (Core, Vec<AgentId>, Instant) {
    let config = CoreConfig {
        heartbeat_interval: Duration::from_secs(3600),
        lost_after: 3,
        max_result_size: 2 << 30,
        offer_filter: Duration::from_millis(200),
        hold_timeout: Duration::from_secs(10),
        locality_wait: Duration::from_secs(3),
        speculation: None,
    };
    let mut core = Core::new(Incarnation(0x5ca1e), &config);
    let now = Instant::now();
    let ids = (0..agents)
        .map(|i| {
            let address = format!("10.{}.{}.{}:7071", i >> 16, (i >> 8) & 0xff, i & 0xff);
            core.register_agent(address, Resources { slots, memory: 8 << 30, queue: 0 }, BTreeMap::new(), now)
        })
        .collect();
    (core, ids, now)
}

/// Submit a job and place its driver.
fn submit(core: &mut Core, now: Instant) -> JobId {
    submit_as(core, now, "")
}

/// Submit a job of `tenant` and place its driver.
fn submit_as(core: &mut Core, now: Instant, tenant: &str) -> JobId {
    let job = core.submit_job(JobSpec {
        name: "scale".into(),
        tenant: tenant.into(),
        component: Digest::of(b"scale"),
        args: vec![],
        limits: TaskLimits::default(),
        max_task_attempts: 4,
        driver_restarts: 0,
        deadline: None,
        working_dir: None,
        capability: weft_core::access::JobCapability([1; 32]),
        fuel_budget: None,
        s3: Default::default(),
    });
    core.schedule(now);
    let launched = core.take_effects().iter().filter(|e| matches!(e, Effect::Launch { .. })).count();
    assert_eq!(launched, 1, "the driver is placed");
    job
}

fn context(
    core: &Core,
    job: JobId,
    plan: Plan,
    text: BTreeMap<DatasetId, (String, Arc<[TextSplit]>)>,
) -> JobContext {
    let spec = &core.job(job).unwrap().spec;
    JobContext {
        job,
        component: spec.component,
        limits: spec.limits.clone(),
        broadcasts: Arc::default(),
        plan,
        text,
        sink: ResultSink::Count,
        range_bounds: BTreeMap::new(),
    }
}

/// A count over `n` empty parallelized partitions.
fn count_action(core: &Core, job: JobId, n: usize) -> (JobContext, JobGraph) {
    let mut plan = Plan::new();
    let xs = plan.add(Node::Parallelize { partitions: vec![Data::default(); n] }, false).unwrap();
    let graph = dag::build(&plan, xs, &BTreeMap::new()).unwrap();
    (context(core, job, plan, BTreeMap::new()), graph)
}

/// Word pairs from `n` text splits, summed by key into `reduces` partitions,
/// counted. The splits are also kept on the job, as the master does.
fn text_action(core: &mut Core, job: JobId, n: usize, reduces: u32) -> (JobContext, JobGraph) {
    let uri = "s3://corpus/2026/";
    let mut plan = Plan::new();
    let lines = plan.add(Node::text_file(uri, n as u32), false).unwrap();
    let pairs =
        plan.add(Node::Narrow { parent: lines, step: Step::new(StepKind::FlatMap, "pairs") }, true).unwrap();
    let sums = plan
        .add(Node::Shuffle { parent: pairs, kind: ShuffleKind::SumByKey, partitions: reduces }, true)
        .unwrap();
    let splits: Arc<[TextSplit]> = (0..n as u64)
        .map(|i| TextSplit {
            path: format!("part-{:05}.txt", i / 16).into(),
            start: (i % 16) << 26,
            end: ((i % 16) + 1) << 26,
            file_len: 1 << 30,
        })
        .collect();
    let graph = dag::build(&plan, sums, &[(lines, n as u32)].into()).unwrap();
    core.set_splits(job, lines, Arc::clone(&splits));
    let text = [(lines, (uri.to_string(), splits))].into();
    (context(core, job, plan, text), graph)
}

/// What the simulated agents did, and the core's time for it.
#[derive(Default)]
struct Run {
    decisions: u64,
    rounds: u64,
    schedule: Duration,
    ends: Duration,
    /// Decisions and core time of rounds that launched reduce tasks.
    reduce: (u64, Duration),
    results: Vec<JobOutput>,
}

impl Run {
    fn core(&self) -> Duration {
        self.schedule + self.ends
    }
}

fn finished(key: TaskKey, partition_bytes: &[u64]) -> TaskEnd {
    TaskEnd {
        key,
        end: EndReason::Finished,
        metering: TaskMetering { fuel: 1000, records_out: 1, ..Default::default() },
        result: Data::default(),
        count: 1,
        partition_bytes: partition_bytes.to_vec(),
        log: String::new(),
        accumulators: BTreeMap::new(),
        cached: Vec::new(),
    }
}

/// Run every running action to its end: place, launch, answer, repeat.
/// `reduce_stage` is the stage whose rounds are also timed apart;
/// `partition_bytes` what each finished map task reports.
fn drive(
    core: &mut Core,
    now: Instant,
    actions: usize,
    reduce_stage: Option<u32>,
    partition_bytes: &[u64],
) -> Run {
    let mut run = Run::default();
    let mut seen: BTreeMap<(u32, u32, u32), Vec<bool>> = BTreeMap::new();
    while run.results.len() < actions {
        let t = Instant::now();
        core.schedule(now);
        let effects = core.take_effects();
        let took = t.elapsed();
        run.schedule += took;
        run.rounds += 1;
        let mut replies = Vec::new();
        let mut in_reduce = 0;
        for e in effects {
            match e {
                Effect::Launch { agent, tasks, .. } => {
                    run.decisions += tasks.len() as u64;
                    let ends: Vec<TaskEnd> = tasks
                        .iter()
                        .map(|d| {
                            let k = d.key;
                            let s = seen.entry((k.action.job.seq, k.action.seq, k.stage.0)).or_default();
                            if s.len() <= k.partition as usize {
                                s.resize(k.partition as usize + 1, false);
                            }
                            assert!(!std::mem::replace(&mut s[k.partition as usize], true), "{k} twice");
                            if Some(k.stage.0) == reduce_stage {
                                in_reduce += 1;
                            }
                            let is_map = reduce_stage.is_some_and(|r| k.stage.0 < r);
                            finished(k, if is_map { partition_bytes } else { &[] })
                        })
                        .collect();
                    replies.push((agent, ends));
                }
                Effect::ActionEnded { result, .. } => run.results.push(result.expect("the action succeeds")),
                _ => {}
            }
        }
        if replies.is_empty() {
            assert_eq!(run.results.len(), actions, "a round placed nothing before every action ended");
            break;
        }
        let t = Instant::now();
        for (agent, ends) in replies {
            assert!(core.task_ends(agent, ends, now));
        }
        let ended = t.elapsed();
        run.ends += ended;
        if in_reduce > 0 {
            run.reduce.0 += in_reduce;
            run.reduce.1 += took + ended;
        }
        for e in core.take_effects() {
            if let Effect::ActionEnded { result, .. } = e {
                run.results.push(result.expect("the action succeeds"));
            }
        }
    }
    run
}

/// The native baseline: `tasks` placements on `agents` agents of `slots` slots.
fn native(agents: u32, slots: u32, tasks: u32) -> (Duration, u64) {
    let t = Instant::now();
    let mut pending: Vec<u32> = (0..tasks).rev().collect();
    let mut placed: Vec<Vec<u32>> = vec![Vec::new(); agents as usize];
    let mut heap: BinaryHeap<(u32, Reverse<u32>)> = (0..agents).map(|a| (slots, Reverse(a))).collect();
    let mut decisions = 0u64;
    while !pending.is_empty() {
        while let Some(task) = pending.pop() {
            let Some((free, Reverse(a))) = heap.pop() else {
                pending.push(task);
                break;
            };
            placed[a as usize].push(task);
            decisions += 1;
            if free > 1 {
                heap.push((free - 1, Reverse(a)));
            }
        }
        // The round's tasks end: every agent's slots are free again.
        heap.clear();
        for (a, on) in placed.iter_mut().enumerate() {
            on.clear();
            heap.push((slots, Reverse(a as u32)));
        }
    }
    (t.elapsed(), std::hint::black_box(decisions))
}

fn per(d: Duration, n: u64) -> f64 {
    d.as_secs_f64() / n.max(1) as f64
}

fn report(name: &str, tasks: u64, run: &Run, native_per: f64) {
    let core = per(run.core(), run.decisions);
    println!(
        "{name:<36} tasks {tasks:>9}  rounds {:>4}  decisions {:>9}  {:>10.0} decisions/s  {:>7.2} µs/decision \
         (schedule {:.2} s, ends {:.2} s)  x native {:.1}",
        run.rounds,
        run.decisions,
        1.0 / core,
        core * 1e6,
        run.schedule.as_secs_f64(),
        run.ends.as_secs_f64(),
        core / native_per,
    );
}

fn memory(agents: u32, slots: u32, sizes: &[u64], jobs: u64) {
    for &n in sizes {
        let (mut core, _, now) = cluster(agents, slots);
        let job = submit(&mut core, now);
        let before = in_use();
        let (ctx, graph) = count_action(&core, job, n as usize);
        core.run_action(ctx, graph);
        let grown = in_use().saturating_sub(before);
        println!("memory: count of {n:>9} pending tasks: {:>6.0} B/task", grown as f64 / n as f64);

        let (mut core, _, now) = cluster(agents, slots);
        let job = submit(&mut core, now);
        let before = in_use();
        let (ctx, graph) = text_action(&mut core, job, n as usize, 100);
        core.run_action(ctx, graph);
        let grown = in_use().saturating_sub(before);
        println!(
            "memory: text of {n:>9} map + 100 reduce pending tasks: {:>6.0} B/task",
            grown as f64 / (n + 100) as f64
        );

        let (mut core, _, now) = cluster(agents, slots);
        let ids: Vec<JobId> = (0..jobs).map(|_| submit(&mut core, now)).collect();
        let before = in_use();
        for job in ids {
            let (ctx, graph) = count_action(&core, job, (n / jobs) as usize);
            core.run_action(ctx, graph);
        }
        let grown = in_use().saturating_sub(before);
        println!(
            "memory: {jobs} counts of {:>8} pending tasks: {:>6.0} B/task",
            n / jobs,
            grown as f64 / (n / jobs * jobs) as f64
        );
    }
}

/// The run with the least core time of `runs`.
fn best(runs: u64, mut f: impl FnMut() -> Run) -> Run {
    (0..runs.max(1)).map(|_| f()).min_by_key(Run::core).unwrap()
}

fn main() {
    let agents = env_num("WEFT_BENCH_AGENTS", 10_000) as u32;
    let slots = env_num("WEFT_BENCH_SLOTS", 8) as u32;
    let tasks = env_num("WEFT_BENCH_TASKS", 100_000);
    let jobs = env_num("WEFT_BENCH_JOBS", 10);
    let runs = env_num("WEFT_BENCH_RUNS", 3);
    println!(
        "{agents} agents x {slots} slots = {} slots; the core's time only, best of {runs}",
        agents * slots
    );

    // A few milliseconds each: best of ten times as many.
    let native_per = (0..runs.max(1) * 10)
        .map(|_| {
            let (t, d) = native(agents, slots, tasks as u32);
            per(t, d)
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "{:<36} tasks {tasks:>9}  {:>10.0} decisions/s  {:>7.3} µs/decision",
        "native baseline",
        1.0 / native_per,
        native_per * 1e6
    );

    // One stage.
    let run = best(runs, || {
        let (mut core, _, now) = cluster(agents, slots);
        let job = submit(&mut core, now);
        let (ctx, graph) = count_action(&core, job, tasks as usize);
        core.run_action(ctx, graph);
        let run = drive(&mut core, now, 1, None, &[]);
        assert_eq!(run.results, [JobOutput::Count(tasks)], "every task counted once");
        assert_eq!(run.decisions, tasks);
        run
    });
    report("count", tasks, &run, native_per);

    // Several jobs at once.
    let run = best(runs, || {
        let (mut core, _, now) = cluster(agents, slots);
        let ids: Vec<JobId> = (0..jobs).map(|_| submit(&mut core, now)).collect();
        for job in ids {
            let (ctx, graph) = count_action(&core, job, (tasks / jobs) as usize);
            core.run_action(ctx, graph);
        }
        let run = drive(&mut core, now, jobs as usize, None, &[]);
        assert!(run.results.iter().all(|r| *r == JobOutput::Count(tasks / jobs)), "{:?}", run.results);
        run
    });
    report(&format!("{jobs} counts at once"), tasks / jobs * jobs, &run, native_per);

    // Many tenants, one job each, weights 1 to 3: weighted DRF between them.
    let tenants = env_num("WEFT_BENCH_TENANTS", 100);
    let run = best(runs, || {
        let (mut core, _, now) = cluster(agents, slots);
        let sharing = Sharing {
            tenants: (0..tenants)
                .map(|t| {
                    (format!("t{t}"), TenantSharing { weight: (1 + t % 3) as f64, ..Default::default() })
                })
                .collect(),
            ..Default::default()
        };
        core.configure(sharing);
        let ids: Vec<JobId> = (0..tenants).map(|t| submit_as(&mut core, now, &format!("t{t}"))).collect();
        for job in ids {
            let (ctx, graph) = count_action(&core, job, (tasks / tenants) as usize);
            core.run_action(ctx, graph);
        }
        let run = drive(&mut core, now, tenants as usize, None, &[]);
        assert!(run.results.iter().all(|r| *r == JobOutput::Count(tasks / tenants)), "{:?}", run.results);
        run
    });
    report(&format!("{tenants} tenants, a count each"), tasks / tenants * tenants, &run, native_per);

    // Two stages, an all-to-all shuffle.
    for shape in std::env::var("WEFT_BENCH_TEXT").as_deref().unwrap_or("100000x100,10000x1000").split(',') {
        let Some((maps, reduces)) = shape.trim().split_once('x') else { continue };
        let (maps, reduces): (u64, u32) = (maps.parse().unwrap(), reduces.parse().unwrap());
        let partition_bytes: Vec<u64> = (0..u64::from(reduces)).map(|r| 1000 + r).collect();
        let (mut held, mut peak) = (0, 0);
        let run = best(runs, || {
            let (mut core, _, now) = cluster(agents, slots);
            let job = submit(&mut core, now);
            let (ctx, graph) = text_action(&mut core, job, maps as usize, reduces);
            core.run_action(ctx, graph);
            let before = in_use();
            take_peak();
            let run = drive(&mut core, now, 1, Some(1), &partition_bytes);
            held = in_use().saturating_sub(before);
            peak = take_peak().saturating_sub(before);
            assert_eq!(run.results, [JobOutput::Count(u64::from(reduces))], "every reduce task counted once");
            assert_eq!(run.decisions, maps + u64::from(reduces));
            run
        });
        report(
            &format!("text, {maps} maps x {reduces} reduces"),
            maps + u64::from(reduces),
            &run,
            native_per,
        );
        let (rd, rt) = run.reduce;
        let (md, mt) = (run.decisions - rd, run.core() - rt);
        println!(
            "    map stage {:>10.0} decisions/s {:>7.2} µs/decision; reduce stage ({maps} map outputs each) \
             {:>8.0} decisions/s {:>9.2} µs/decision; peak {:.0} MB, map outputs held after {:.0} MB",
            1.0 / per(mt, md),
            per(mt, md) * 1e6,
            1.0 / per(rt, rd),
            per(rt, rd) * 1e6,
            peak as f64 / 1e6,
            held as f64 / 1e6,
        );
    }

    memory(agents, slots, &env_nums("WEFT_BENCH_MEMORY_TASKS", "100000,1000000"), jobs);
}
