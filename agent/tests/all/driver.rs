//! A real job's `main` (guest-examples/wordcount) run in the sandbox as a
//! driver: its dataset calls must build the expected plan, its actions reach
//! the runner, results decode on the guest side, and errors come back typed.
//! The runner here answers actions itself (the cluster's runner is tested
//! with the grid); what is under test is the driver contract between the SDK
//! and the host.

use crate::support::{prepared, sandbox};
use std::sync::{Arc, Mutex};
use weft_agent::TaskContext;
use weft_agent::driver::{Action, ActionResult, ActionRunner, PlanDriver, RunnerFuture};
use weft_core::codec::batch::BatchWriter;
use weft_core::codec::key::EncodeKey;
use weft_core::ids::DatasetId;
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;
use weft_core::plan::{Node, Plan, PlanDelta, ShuffleKind, Step, StepKind};
use weft_core::task::Data;

type Seen = Arc<Mutex<Vec<(Plan, DatasetId, Action)>>>;

/// Plays the master: applies each action's plan delta to its own plan (as the
/// master does) and records the plan each action ran over.
struct Recording {
    seen: Seen,
    plan: Plan,
    fail_count: bool,
}

impl ActionRunner for Recording {
    fn put(&mut self, bytes: Vec<u8>) -> RunnerFuture<'_, Data> {
        Box::pin(async move { Ok(Data::from(bytes)) })
    }

    fn run<'a>(
        &'a mut self,
        delta: &'a PlanDelta,
        ds: DatasetId,
        keyed: bool,
        action: Action,
    ) -> RunnerFuture<'a, ActionResult> {
        if let Err(e) = self.plan.apply(delta) {
            return Box::pin(async move { Err(e.to_string()) });
        }
        assert_eq!(self.plan.get(ds).map(|d| d.keyed), Ok(keyed), "the driver's view of {ds}");
        self.seen.lock().unwrap().push((self.plan.clone(), ds, action.clone()));
        let fail = self.fail_count;
        Box::pin(async move {
            Ok(match action {
                Action::Count if fail => return Err("agent-3 was lost three times".into()),
                Action::Count => ActionResult::Count(42),
                Action::Take(_) => {
                    // (count, word) pairs, as the guest's by_count produces them.
                    let mut w = BatchWriter::new();
                    for (n, word) in [(5i64, "the"), (3, "rabbit")] {
                        w.push(&n.to_key_bytes());
                        w.push(word.as_bytes());
                    }
                    ActionResult::Records(w.finish())
                }
                Action::SaveAsTextFile(_) => ActionResult::Saved,
                Action::Collect => ActionResult::Records(Vec::new()),
            })
        })
    }

    fn accumulator(&mut self, _: &str) -> RunnerFuture<'_, i64> {
        Box::pin(async { Ok(0) })
    }
}

fn run_driver(args: &[&str], fail_count: bool) -> (weft_agent::TaskReport, Vec<(Plan, DatasetId, Action)>) {
    let seen = Seen::default();
    let driver = PlanDriver::new(
        args.iter().map(|s| s.to_string()).collect(),
        Recording { seen: seen.clone(), plan: Plan::new(), fail_count },
    );
    let prepared = prepared("wordcount");
    let (sandbox, pool) = sandbox();
    let sandbox = sandbox.clone();
    let fut = pool.run(move || async move {
        let ctx = TaskContext {
            limits: TaskLimits::default().with_memory(64 << 20),
            driver: Some(Box::new(driver)),
            ..Default::default()
        };
        match sandbox.instantiate(&prepared, ctx).await {
            Ok(mut inst) => {
                let _ = inst.run_main().await;
                inst.finish(EndReason::Finished)
            }
            Err(report) => report,
        }
    });
    let report = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(fut).unwrap();
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

fn step(kind: StepKind, f: &str) -> Step {
    Step { kind, function: f.into() }
}

#[test]
fn word_count_main_builds_the_plan_and_runs_its_actions() {
    let (report, seen) = run_driver(&["in.txt", "out/"], false);
    assert_eq!(report.end, EndReason::Finished, "{}", report.log);
    let actions: Vec<&Action> = seen.iter().map(|(_, _, a)| a).collect();
    assert_eq!(actions, [&Action::SaveAsTextFile("out/".into()), &Action::Count, &Action::Take(10)]);

    let plan = &seen.last().unwrap().0;
    let node = |i: u32| plan.get(DatasetId(i)).unwrap();
    assert_eq!(node(0).node, Node::text_file("in.txt", 4));
    assert_eq!(
        node(1).node,
        Node::Narrow { parent: DatasetId(0), step: step(StepKind::FlatMap, "split_words") }
    );
    assert_eq!(node(2).node, Node::Narrow { parent: DatasetId(1), step: step(StepKind::Map, "one") });
    assert!(node(2).keyed, "one returns pairs");
    assert_eq!(
        node(3).node,
        Node::Shuffle {
            parent: DatasetId(2),
            kind: ShuffleKind::ReduceByKey { function: "add".into() },
            partitions: 0
        }
    );
    assert!(node(3).cached, "counts are cached");
    let (_, saved, _) = &seen[0];
    assert_eq!(
        plan.get(*saved).unwrap().node,
        Node::Narrow { parent: DatasetId(3), step: step(StepKind::Map, "format") }
    );
    assert!(!plan.get(*saved).unwrap().keyed);

    // Results decoded by the guest: the count and the top words show in its log.
    assert!(report.log.contains("42 distinct words"), "{}", report.log);
    assert!(report.log.contains("the: 5") && report.log.contains("rabbit: 3"), "{}", report.log);
}

#[test]
fn a_failed_action_reaches_main_as_an_error() {
    let (report, _) = run_driver(&["in.txt", "out/"], true);
    let EndReason::GuestError { message } = &report.end else { panic!("{:?}\n{}", report.end, report.log) };
    assert!(message.contains("agent-3 was lost three times"), "{message}");
}

#[test]
fn bad_arguments_are_the_jobs_own_error() {
    let (report, seen) = run_driver(&["only-one"], false);
    let EndReason::GuestError { message } = &report.end else { panic!("{:?}", report.end) };
    assert!(message.contains("usage: wordcount"), "{message}");
    assert!(seen.is_empty(), "no action ran");
}
