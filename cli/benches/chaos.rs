//! `cargo xtask chaos [RUNS] [SEED] [ONLY]`: RUNS (default 14) seeded fault
//! runs of the chaos suite (`chaos/suite.rs`), only those ONLY names if
//! given (`"sort slowed"`), a line each and a summary; exits non-zero if any
//! output was wrong or any job failed.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "chaos/suite.rs"]
mod chaos_suite;
mod procs;

fn main() {
    let runs: usize = std::env::var("WEFT_CHAOS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(14);
    let seed: u64 = std::env::var("WEFT_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let only = std::env::var("WEFT_CHAOS_ONLY").unwrap_or_default();
    let plan = chaos_suite::seeded_plan_of(runs, seed, &only);
    if plan.is_empty() {
        eprintln!(
            "chaos: no job and fault match `{only}` (jobs: wordcount, sort, iterative; faults: a part of their names, e.g. slowed, fetch, leader)"
        );
        std::process::exit(2);
    }
    let picked = if only.is_empty() { String::new() } else { format!(" of `{only}`") };
    println!("chaos: {runs} fault runs{picked} and {} failure-free ones, seed {seed}", plan.len() - runs);
    let results = chaos_suite::run(&plan, seed, chaos_suite::Scale::Bench);
    let (wrong, failed) = chaos_suite::summarize(&results);
    if wrong + failed > 0 {
        std::process::exit(1);
    }
}
