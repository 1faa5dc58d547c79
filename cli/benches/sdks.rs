//! The guest SDKs side by side: word count over the same text through
//! `weft local` with the job written in each language, and what loading each
//! language's component costs.
//!
//! `cargo xtask bench-sdks [SIZE_MIB]` (default 256; `WEFT_BENCH_RUNS` runs of
//! each, default 3, best taken; `WEFT_BENCH_LANGS=c,python,js` picks the
//! languages beside Rust). Prints, per language:
//! - word count's time and its ratio to the Rust guest's (every language's
//!   counts are checked to equal the Rust guest's first);
//! - the component's size; its first load (compiling it, and writing the
//!   agent's on-disk cache) and its cached load (another agent process
//!   reading that cache), as an agent does them;
//! - instantiation of a cached component (pooling allocator, copy-on-write
//!   memory images), and instantiation with a first call (an empty chain),
//!   p50 and p99;
//! - with JavaScript, what its basic operations cost per word inside a
//!   component (`sdk/js/bench/costs.js`, built by xtask into
//!   `target/bench/js-costs.wasm`, over 1 MiB of the same kind of text), as
//!   multiples of the Rust guest's whole word count per word.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use weft_agent::{Chain, Sandbox, SandboxConfig, TaskContext};
use weft_core::artifact::Digest;
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;

mod corpus;
mod versus;

/// Each language's word count component, and its goal as a ratio to Rust's
/// time: Rust, and those of the others `WEFT_BENCH_LANGS` names (comma
/// separated, default all).
fn guests(root: &Path) -> Vec<(&'static str, PathBuf, Option<f64>)> {
    let langs = std::env::var("WEFT_BENCH_LANGS").unwrap_or_default().to_lowercase();
    let all = [
        ("Rust", root.join("target/guests/wasm32-wasip2/release/wordcount.wasm"), None),
        ("C", root.join("target/guests/c/wordcount.wasm"), Some(1.2)),
        ("Python", root.join("target/guests/python/wordcount.wasm"), Some(12.0)),
        ("JS", root.join("target/guests/js/wordcount.wasm"), Some(5.0)),
    ];
    all.into_iter()
        .filter(|(lang, ..)| {
            *lang == "Rust" || langs.is_empty() || langs.split(',').any(|l| l.trim() == lang.to_lowercase())
        })
        .collect()
}

fn main() {
    let mib: u64 = versus::env_or("WEFT_BENCH_MIB", 256);
    let root = versus::root();
    let dir = root.join("target/bench");
    let input = dir.join(format!("words-{mib}MiB.txt"));
    corpus::generate(&input, mib << 20).unwrap();
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let guests = guests(&root);
    for (lang, wasm, _) in &guests {
        assert!(
            wasm.exists(),
            "no {lang} guest at {}: build the guests first: cargo xtask guests",
            wasm.display()
        );
    }

    println!("guest SDKs, {} cores\n", std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("loading a component, as an agent does:");
    for (lang, wasm, _) in &guests {
        loads(lang, wasm);
    }

    // Word count: one untimed run each fills the agent's compile cache, as a
    // long-running agent's would be; then alternating timed runs.
    let cache = dir.join("sdks-weft");
    let out = |lang: &str| dir.join(format!("sdks-out-{}", lang.to_lowercase()));
    // Interpreted guests burn far more fuel per byte than compiled ones: every
    // run gets the cluster's largest per-task fuel, so that no task stops.
    let run = |lang: &str, wasm: &Path| {
        let out = out(lang);
        let fuel = ["--fuel", "10000000000000"];
        versus::weft_local_with(&fuel, &cache, wasm, &out, &[input.as_os_str(), out.as_os_str()]);
    };
    for (lang, wasm, _) in &guests {
        run(lang, wasm);
    }
    let reference = versus::counts(&out("Rust"));
    for (lang, _, _) in &guests[1..] {
        assert_eq!(versus::counts(&out(lang)), reference, "{lang}'s counts differ from the Rust guest's");
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); guests.len()];
    for _ in 0..versus::runs() {
        for ((lang, wasm, _), times) in guests.iter().zip(&mut times) {
            let t = Instant::now();
            run(lang, wasm);
            times.push(t.elapsed());
        }
    }
    println!(
        "\nword count over {size:.0} MB through weft local, best of {} runs (slowest in brackets):",
        versus::runs()
    );
    let best = |t: &[Duration]| t.iter().min().unwrap().as_secs_f64();
    let rust = best(&times[0]);
    for ((lang, _, goal), times) in guests.iter().zip(&times) {
        let t = best(times);
        let worst = times.iter().max().unwrap().as_secs_f64();
        let goal = goal.map_or(String::new(), |g| format!("   (goal <= {g}x)"));
        println!(
            "  {lang:<8}{t:>8.2}s  {:>7.1} MB/s  ({worst:.2}s)  {:>6.2}x Rust's time{goal}",
            size / t,
            t / rust
        );
    }
    let costs = dir.join("js-costs.wasm");
    if guests.iter().any(|(lang, ..)| *lang == "JS") && costs.exists() {
        // Every word of the input, counted once by the Rust guest.
        let words: i64 = reference.values().sum();
        js_costs(&costs, &cache, rust * 1e9 / words as f64);
    }
}

/// Run the JavaScript cost probe over 1 MiB of text and print each
/// operation's cost per word beside `rust_ns`, the Rust guest's whole word
/// count per word.
fn js_costs(wasm: &Path, cache: &Path, rust_ns: f64) {
    let text = cache.with_file_name("words-1MiB.txt");
    corpus::generate(&text, 1 << 20).unwrap();
    let fuel = ["--fuel", "10000000000000"];
    let log = versus::weft_local_with(&fuel, cache, wasm, &cache.join("unused"), &[text.as_os_str()]);
    println!(
        "
JavaScript inside a component, per word (the Rust guest's whole word count: {rust_ns:.0} ns per word):"
    );
    let mut lines = 0;
    for line in log.lines() {
        let Some((_, rest)) = line.split_once("cost\t") else { continue };
        let (what, ns) = rest.split_once('\t').unwrap();
        let ns: f64 = ns.trim().parse().unwrap();
        println!("  {what:<36}{ns:>7.0} ns  {:>6.1}x", ns / rust_ns);
        lines += 1;
    }
    assert!(lines > 0, "the cost probe printed no costs:\n{log}");
}

/// Print `wasm`'s size, first and cached load times, and instantiation p50/p99.
fn loads(lang: &str, wasm: &Path) {
    let bytes = std::fs::read(wasm).unwrap();
    let digest = Digest::of(&bytes);
    let cache = tempfile::tempdir().unwrap();
    let config = || SandboxConfig::default().with_cache_dir(cache.path()).with_max_instances(4);
    let t = Instant::now();
    Sandbox::new(config()).unwrap().load(&digest, &bytes).unwrap();
    let first = t.elapsed();
    let sandbox = Sandbox::new(config()).unwrap();
    let t = Instant::now();
    let prepared = sandbox.load(&digest, &bytes).unwrap();
    let cached = t.elapsed();

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let empty = Chain { ops: Vec::new(), input_keyed: false, output_keyed: false };
    let ctx = || {
        let limits = TaskLimits::default()
            .with_fuel(u64::MAX / 2)
            .with_memory(1 << 30)
            .with_deadline(Duration::from_secs(60));
        TaskContext { limits, ..Default::default() }
    };
    let (mut instantiate, mut called) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..versus::env_or("WEFT_BENCH_INSTANCES", 300) {
            let t = Instant::now();
            let mut inst = sandbox.instantiate(&prepared, ctx()).await.unwrap();
            instantiate.push(t.elapsed());
            inst.run_chain(&empty, &[]).await.unwrap();
            called.push(t.elapsed());
            inst.finish(EndReason::Finished);
        }
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let percentiles = |mut s: Vec<Duration>| {
        s.sort();
        format!("p50 {:>6.3}ms p99 {:>6.3}ms", ms(s[s.len() / 2]), ms(s[s.len() * 99 / 100]))
    };
    println!(
        "  {lang:<8}{:>6.1} MB   first load {:>7.0}ms   cached load {:>5.1}ms   instantiate {}{}   + first call {}",
        bytes.len() as f64 / 1e6,
        ms(first),
        ms(cached),
        percentiles(instantiate),
        if lang == "Rust" { "" } else { " (goal p50 <= 1ms)" },
        percentiles(called),
    );
}
