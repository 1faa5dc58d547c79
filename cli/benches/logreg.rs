//! Logistic regression over generated points: `weft local` (both cores)
//! running `guest-examples/logreg` against a single-threaded native Rust
//! descent over the same file, in the same run.
//!
//! `cargo xtask bench-logreg [POINTS] [ITERATIONS]` (defaults 1,000,000
//! points of 10 features and 10 iterations; `WEFT_BENCH_RUNS` runs of each
//! side, default 3, best taken). The points (`label x1 … x10` lines, labels
//! ±1, features in [-1, 1) shifted towards the label) are generated once into
//! `target/bench/`. Before any figure is printed, weft's final weights are
//! checked against the native ones, each within 1e-6 relative (the sums are
//! taken in another order; see `cli/tests/all/iterative.rs` for why that
//! bound is loose and still catches a lost point).
//!
//! The figures are the Spark paper's: the **first iteration** (which reads and
//! parses the text, and would fill the cache) and the **mean of the later
//! ones** (which, with the points cached, only compute a gradient). weft's
//! come from the job's own log (`iteration i: <s> s`, the driver's wall time
//! around each action); MB/s is the text's size over that time. The total
//! wall time of `weft local` (start, compile, all iterations) is shown too.
//!
//! The native side is the fastest straightforward single-threaded program
//! for the same result: the file read once and parsed into flat vectors (one
//! `f64` label and D features per point, no allocation per point) in its
//! first iteration, and a plain loop over them in every iteration.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

mod versus;

use versus::env_or;

/// Features per point.
const D: usize = 10;

/// Write `points` points to `path` (once).
fn generate(path: &Path, points: u64) {
    versus::generate_once(path, |f| {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut unit = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as f64 / (1u64 << 31) as f64
        };
        for _ in 0..points {
            let y: f64 = if unit() < 0.5 { -1.0 } else { 1.0 };
            write!(f, "{y}").unwrap();
            for _ in 0..D {
                write!(f, " {:.4}", unit() * 2.0 - 1.0 + 0.3 * y).unwrap();
            }
            writeln!(f).unwrap();
        }
    });
}

/// One descent step over flat points: `w -= Σ (σ(y w·x) - 1) y x`.
fn step(labels: &[f64], features: &[f64], w: &mut [f64; D]) {
    let mut g = [0.0f64; D];
    for (y, x) in labels.iter().zip(features.chunks_exact(D)) {
        let dot: f64 = w.iter().zip(x).map(|(w, x)| w * x).sum();
        let scale = (1.0 / (1.0 + (-y * dot).exp()) - 1.0) * y;
        for (g, x) in g.iter_mut().zip(x) {
            *g += scale * x;
        }
    }
    for (w, g) in w.iter_mut().zip(&g) {
        *w -= g;
    }
}

/// The native descent over the points at `input`: the time of each
/// iteration (the first reads and parses the file) and the final weights.
fn native(input: &Path, iterations: u32) -> (Vec<Duration>, [f64; D]) {
    let mut w = [0.0f64; D];
    let started = Instant::now();
    let text = std::fs::read(input).unwrap();
    let mut labels = Vec::with_capacity(text.len() / (8 * D));
    let mut features = Vec::with_capacity(text.len() / 8);
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).unwrap();
        let mut fields = line.split_ascii_whitespace().map(|v| v.parse::<f64>().unwrap());
        labels.push(fields.next().unwrap());
        features.extend(fields);
    }
    assert_eq!(features.len(), labels.len() * D);
    // The first iteration's clock started before the read.
    let (mut times, mut t) = (Vec::new(), started);
    for _ in 0..iterations {
        step(&labels, &features, &mut w);
        times.push(t.elapsed());
        t = Instant::now();
    }
    (times, w)
}

/// The iteration times and final weights in a `weft local` run's output.
fn from_log(stdout: &str) -> (Vec<Duration>, Vec<f64>) {
    let times = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[info] iteration ")?.split_once(": "))
        .map(|(_, t)| Duration::from_secs_f64(t.trim_end_matches(" s").parse().unwrap()))
        .collect();
    let w = stdout
        .lines()
        .find_map(|l| l.strip_prefix("[info] final w: "))
        .unwrap_or_else(|| panic!("no final weights in:\n{stdout}"))
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    (times, w)
}

/// The first iteration and the mean of the later ones.
fn first_and_later(times: &[Duration]) -> (Duration, Duration) {
    let later = &times[1..];
    let mean =
        if later.is_empty() { Duration::ZERO } else { later.iter().sum::<Duration>() / later.len() as u32 };
    (times[0], mean)
}

fn main() {
    let points: u64 = env_or("WEFT_BENCH_POINTS", 1_000_000);
    let iterations: u32 = env_or("WEFT_BENCH_ITERATIONS", 10);
    assert!(iterations >= 2, "at least two iterations: the first, and later ones");
    let (dir, input, mb, wasm) =
        versus::setup(&format!("logreg-{points}.txt"), "logreg", |p| generate(p, points));

    let mut native_runs = Vec::new();
    let mut weft_runs = Vec::new();
    let (mut native_w, mut weft_w) = ([0.0; D], Vec::new());
    let (d, n) = (D.to_string(), iterations.to_string());
    let (native_wall, weft_wall) = versus::alternate(
        || {
            let (times, w) = native(&input, iterations);
            native_runs.push(first_and_later(&times));
            native_w = w;
        },
        || {
            let args = [input.as_os_str(), OsStr::new(&d), OsStr::new(&n), OsStr::new("4")];
            let stdout = versus::weft_local(&dir.join("logreg-weft"), &wasm, &dir.join("logreg-out"), &args);
            let (times, w) = from_log(&stdout);
            assert_eq!(times.len(), iterations as usize, "{stdout}");
            weft_runs.push(first_and_later(&times));
            weft_w = w;
        },
    );
    assert_eq!(weft_w.len(), D);
    for (j, (got, want)) in weft_w.iter().zip(&native_w).enumerate() {
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "w[{j}]: weft {got}, native {want}");
    }

    let best = |runs: &[(Duration, Duration)], pick: fn(&(Duration, Duration)) -> Duration| {
        runs.iter().map(pick).min().unwrap()
    };
    let (nf, nl) = (best(&native_runs, |r| r.0), best(&native_runs, |r| r.1));
    let (wf, wl) = (best(&weft_runs, |r| r.0), best(&weft_runs, |r| r.1));
    let rate = |t: Duration| mb / t.as_secs_f64();
    println!(
        "Logistic regression, {iterations} iterations over {points} points x {D} features ({mb:.0} MB), \
         {} cores, best of {} runs",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        native_runs.len()
    );
    println!("  {:<30}{:>22}{:>28}", "", "first iteration", "later iterations (mean)");
    for (name, first, later) in [("native Rust, 1 thread", nf, nl), ("weft local (logreg.wasm)", wf, wl)] {
        println!(
            "  {name:<30}{:>9.3}s {:>8.1} MB/s   {:>12.4}s {:>9.1} MB/s",
            first.as_secs_f64(),
            rate(first),
            later.as_secs_f64(),
            rate(later)
        );
    }
    println!(
        "  {:<30}{:>9.3}x {:>13}   {:>12.4}x",
        "weft / native speed",
        nf.as_secs_f64() / wf.as_secs_f64(),
        "",
        nl.as_secs_f64() / wl.as_secs_f64()
    );
    let wall = |t: &[Duration]| t.iter().min().unwrap().as_secs_f64();
    println!(
        "  whole run: native {:.2}s, weft local {:.2}s (start, compile and all iterations)",
        wall(&native_wall),
        wall(&weft_wall)
    );
}
