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
