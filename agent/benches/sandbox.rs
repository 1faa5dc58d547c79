//! Sandbox micro-benchmarks: `cargo xtask bench` (or `cargo bench -p weft-agent`).
//!
//! Prints, for this machine, in one run:
//! - instantiate + first call of a prepared component (pooling allocator, `InstancePre`), p50/p99;
//! - the overhead of one call into the guest with an empty batch, p50/p99;
//! - word splitting in WebAssembly with fuel on vs off (the cost of metering);
//! - the same word-splitting function as WebAssembly vs native Rust (the cost of the sandbox).
//!
//! The native baseline compiles the very source the guest does
//! (`tests/guests/bench/src/words.rs`) and does the same batch decoding and
//! encoding, so the ratio is the sandbox's cost, not two implementations'.
//! Figures are medians of repeated, interleaved runs; the guests come from
//! `cargo xtask guests`. `--quick` runs fewer repetitions on less data.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};
use weft_agent::{Chain, Op, OpKind, Prepared, Sandbox, SandboxConfig, TaskContext};
use weft_core::artifact::Digest;
use weft_core::codec::batch::{BatchWriter, entries};
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;

mod words {
    include!("../../tests/guests/bench/src/words.rs");
}

const LINES_PER_BATCH: usize = 4096;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let guest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests/wasm32-wasip2/release/bench.wasm");
    let bytes = std::fs::read(&guest)
        .unwrap_or_else(|e| panic!("{}: {e}\nbuild the guests first: cargo xtask guests", guest.display()));
    let digest = Digest::of(&bytes);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();

    let metered = Sandbox::new(SandboxConfig::default().with_max_instances(4)).unwrap();
    let unmetered = Sandbox::new(SandboxConfig::default().with_max_instances(4).with_fuel(false)).unwrap();
    let prepared = metered.load(&digest, &bytes).unwrap();
    let prepared_unmetered = unmetered.load(&digest, &bytes).unwrap();

    println!(
        "weft sandbox benchmarks ({} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // 1. Instantiate + first call.
    let identity = chain(OpKind::Map, "identity");
    let empty = BatchWriter::new().finish();
    let n = if quick { 300 } else { 3000 };
    let samples = rt.block_on(async {
        let mut s = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let mut inst = metered.instantiate(&prepared, ctx()).await.unwrap();
            inst.run_chain(&identity, &empty).await.unwrap();
            s.push(t.elapsed());
            inst.finish(EndReason::Finished);
        }
        s
    });
    let (p50, p99) = percentiles(samples);
    println!("instantiate + first call      p50 {:>9}  p99 {:>9}   (target p50 <= 50us)", us(p50), us(p99));

    // 2. Per-call overhead on a live instance.
    let n = if quick { 2000 } else { 20000 };
    let samples = rt.block_on(async {
        let mut inst = metered.instantiate(&prepared, ctx()).await.unwrap();
        let mut s = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            inst.run_chain(&identity, &empty).await.unwrap();
            s.push(t.elapsed());
        }
        s
    });
    let (p50, p99) = percentiles(samples);
    println!("call with an empty batch      p50 {:>9}  p99 {:>9}", us(p50), us(p99));

    // 3 and 4. Word splitting: wasm (fuel on, fuel off) vs native.
    let corpus = corpus(if quick { 4 << 20 } else { 32 << 20 });
    let mb = corpus.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    let split = chain(OpKind::FlatMap, "split_words");
    let reps = if quick { 3 } else { 9 };
    let native_run = || {
        let t = Instant::now();
        let mut words_out = 0;
        for b in &corpus {
            words_out += entries(&native_split(b)).count();
        }
        std::hint::black_box(words_out);
        t.elapsed()
    };
    let wasm_run = |sandbox: &Sandbox, prepared: &Prepared| {
        rt.block_on(async {
            let t = Instant::now();
            let mut inst = sandbox.instantiate(prepared, ctx()).await.unwrap();
            for b in &corpus {
                std::hint::black_box(inst.run_chain(&split, b).await.unwrap());
            }
            t.elapsed()
        })
    };
    // Interleave the three so that drift (frequency, other load) hits each alike.
    let (mut native, mut fuel_on, mut fuel_off) = (Vec::new(), Vec::new(), Vec::new());
    native_run();
    wasm_run(&metered, &prepared);
    wasm_run(&unmetered, &prepared_unmetered);
    for _ in 0..reps {
        native.push(native_run());
        fuel_on.push(wasm_run(&metered, &prepared));
        fuel_off.push(wasm_run(&unmetered, &prepared_unmetered));
    }
    let (native, fuel_on, fuel_off) = (median(native), median(fuel_on), median(fuel_off));
    let rate = |d: Duration| format!("{:>7.1} MB/s", mb / d.as_secs_f64());
    println!("\nsplit_words over {mb:.1} MB of text, batches of {LINES_PER_BATCH} lines:");
    println!("  native Rust                 {:>9}  {}", ms(native), rate(native));
    println!("  wasm, fuel off              {:>9}  {}", ms(fuel_off), rate(fuel_off));
    println!("  wasm, fuel on               {:>9}  {}", ms(fuel_on), rate(fuel_on));
    println!(
        "  fuel metering overhead      {:>8.1}%             (target <= 15%)",
        (fuel_on.as_secs_f64() / fuel_off.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  wasm (fuel on) / native     {:>8.2}x             (target <= 1.5x)",
        fuel_on.as_secs_f64() / native.as_secs_f64()
    );

    // Check the two agree, so the ratio compares equal work.
    let check = rt.block_on(async {
        let mut inst = metered.instantiate(&prepared, ctx()).await.unwrap();
        inst.run_chain(&split, &corpus[0]).await.unwrap()
    });
    assert_eq!(check, native_split(&corpus[0]), "wasm and native split_words disagree");
}

fn ctx() -> TaskContext {
    let limits = TaskLimits::default()
        .with_fuel(u64::MAX / 2)
        .with_memory(1 << 30)
        .with_deadline(Duration::from_secs(600));
    TaskContext { limits, ..Default::default() }
}

fn chain(kind: OpKind, function: &str) -> Chain {
    Chain {
        ops: vec![Op { kind, function: function.into(), param: None }],
        input_keyed: false,
        output_keyed: false,
    }
}

/// The native baseline: decode each line, split it, encode the words.
fn native_split(batch: &[u8]) -> Vec<u8> {
    let mut out = BatchWriter::with_capacity(batch.len() + batch.len() / 2);
    for line in entries(batch) {
        let line = std::str::from_utf8(line.unwrap()).unwrap();
        for w in words::split_words(line) {
            out.push(w.as_bytes());
        }
    }
    out.finish()
}

/// Deterministic English-like text: words from a Zipf-ish vocabulary, mixed case.
fn corpus(bytes: usize) -> Vec<Vec<u8>> {
    const VOCAB: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "Spark",
        "Mesos",
        "shuffle",
        "partition",
        "WebAssembly",
        "sandbox",
        "agent",
        "master",
        "dataset",
        "resilient",
        "distributed",
        "scheduler",
        "offer",
        "fairness",
        "dominant",
        "resource",
        "lineage",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut batches, mut total) = (Vec::new(), 0);
    while total < bytes {
        let mut w = BatchWriter::new();
        for _ in 0..LINES_PER_BATCH {
            let mut line = String::new();
            for i in 0..(8 + next() % 8) {
                let r = next();
                let idx = ((r % 1000) * (r % 1000) / 1000 * VOCAB.len() as u64 / 1000) as usize;
                if i > 0 {
                    line.push(' ');
                }
                line.push_str(VOCAB[idx.min(VOCAB.len() - 1)]);
            }
            w.push(line.as_bytes());
        }
        total += w.byte_len();
        batches.push(w.finish());
    }
    batches
}

fn median(mut s: Vec<Duration>) -> Duration {
    s.sort();
    s[s.len() / 2]
}

fn percentiles(mut s: Vec<Duration>) -> (Duration, Duration) {
    s.sort();
    (s[s.len() / 2], s[(s.len() * 99 / 100).min(s.len() - 1)])
}

fn us(d: Duration) -> String {
    format!("{:.1}us", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1e3)
}
