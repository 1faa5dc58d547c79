//! `cargo xtask chaos [RUNS] [SEED]`: RUNS (default 14) seeded fault runs of the
//! chaos suite (`chaos/suite.rs`), a line each and a summary; exits
//! non-zero if any output was wrong or any job failed.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "chaos/suite.rs"]
mod chaos_suite;
mod procs;

fn main() {
    let runs: usize = std::env::var("WEFT_CHAOS_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(14);
    let seed: u64 = std::env::var("WEFT_CHAOS_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    println!("chaos: {runs} fault runs after 6 failure-free ones, seed {seed}");
    let results = chaos_suite::run(&chaos_suite::seeded_plan(runs, seed), seed, chaos_suite::Scale::Bench);
    let (wrong, failed) = chaos_suite::summarize(&results);
    if wrong + failed > 0 {
        std::process::exit(1);
    }
}
