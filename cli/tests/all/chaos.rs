//! A small fixed set of the chaos suite (`cli/benches/chaos/suite.rs`, run
//! at any size by `cargo xtask chaos`): a real master (three on a real etcd
//! for the leader's fault) and three agents per run, one failure-free run of
//! each job as the reference (checked against a native computation), then
//! one run per fault below; every output must equal its job's reference
//! byte for byte, and every job must succeed.

#[path = "../../benches/chaos/suite.rs"]
mod chaos_suite;
#[path = "../../benches/procs.rs"]
mod procs;

use chaos_suite::{Fault, Job};

#[test]
fn a_seeded_set_of_faults_leaves_every_output_exact() {
    let plan = [
        (Job::WordCount, Fault::None),
        (Job::Sort, Fault::None),
        (Job::Iterative, Fault::None),
        (Job::WordCount, Fault::AgentKilledInFetch),
        (Job::WordCount, Fault::ShuffleFileCorrupted),
        (Job::Iterative, Fault::CachedBlockCorrupted),
        (Job::Iterative, Fault::DriversAgentKilled),
        (Job::Sort, Fault::LeaderKilled),
    ];
    let results = chaos_suite::run(&plan, 11, chaos_suite::Scale::Ci);
    let (wrong, failed) = chaos_suite::summarize(&results);
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.wrong || r.failed.is_some())
        .map(|r| format!("{:?} with {:?}: {}", r.job, r.fault, r.failed.as_deref().unwrap_or("wrong output")))
        .collect();
    assert_eq!((wrong, failed), (0, 0), "{bad:#?}");
    for r in &results {
        if r.fault == Fault::LeaderKilled {
            assert!(
                r.serving_again.is_some(),
                "the leader's kill was not followed by another master serving"
            );
        }
    }
}

/// A run's baseline is the faster of its job's nearest warm failure-free
/// runs before and after it: never a job's cold first run when there is
/// another, never another job's, never the run itself; and the plan puts a
/// control run of each job after every ten fault runs and after the last.
#[test]
fn each_run_is_measured_against_the_failure_free_runs_next_to_it() {
    let ran = |job, fault, secs: f64| chaos_suite::Ran {
        job,
        fault,
        wall: std::time::Duration::from_secs_f64(secs),
        serving_again: None,
        again: 0,
        failed: None,
        wrong: false,
        output: Vec::new(),
    };
    let (w, s) = (Job::WordCount, Job::Sort);
    let results = [
        ran(w, Fault::None, 20.0),                // cold: no one's baseline
        ran(w, Fault::None, 8.0),                 // 1
        ran(s, Fault::None, 5.0),                 // 2: the only sort run
        ran(w, Fault::AgentKilledInMap, 11.0),    // 3
        ran(w, Fault::None, 9.0),                 // 4
        ran(w, Fault::AgentKilledInReduce, 12.0), // 5: after the last control
        ran(s, Fault::ShuffleFileCorrupted, 6.0), // 6
    ];
    let b = chaos_suite::baselines(&results);
    assert_eq!(b, [Some(8.0), Some(9.0), None, Some(8.0), Some(8.0), Some(9.0), Some(5.0)]);

    let plan = chaos_suite::seeded_plan(25, 3);
    let free = |p: &[(Job, Fault)]| p.iter().filter(|(_, f)| *f == Fault::None).count();
    assert_eq!(plan.len(), 6 + 25 + 3 * 3);
    assert_eq!(free(&plan[..6]), 6);
    // Ten fault runs, three controls, ten, three, the last five, three.
    for (faults, controls) in [(6..16, 16..19), (19..29, 29..32), (32..37, 37..40)] {
        assert_eq!(free(&plan[faults]), 0, "{plan:?}");
        assert_eq!(free(&plan[controls]), 3, "{plan:?}");
    }
}

/// A plan of only the runs named: the job and fault asked for, and
/// failure-free runs of that job only; a name matching nothing, no plan.
#[test]
fn a_focused_plan_holds_only_the_runs_it_names() {
    let plan = chaos_suite::seeded_plan_of(12, 1, "sort slowed");
    let faults: Vec<_> = plan.iter().filter(|(_, f)| *f != Fault::None).collect();
    assert_eq!(faults.len(), 12);
    assert!(
        plan.iter().all(|(j, f)| *j == Job::Sort && matches!(f, Fault::None | Fault::AgentSlowed)),
        "{plan:?}"
    );
    assert_eq!(plan.len(), 2 + 12 + 2, "{plan:?}");
    assert!(
        chaos_suite::seeded_plan_of(5, 1, "wordcount cached").is_empty(),
        "cached blocks are the iterative job's"
    );
    assert_eq!(chaos_suite::seeded_plan_of(7, 4, ""), chaos_suite::seeded_plan(7, 4));
}
