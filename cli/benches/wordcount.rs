//! Word count over a large text file: `weft local` (both cores) against a
//! single-threaded native Rust word count of the same file, in the same run.
//!
//! `cargo xtask bench-wordcount [SIZE_MIB]` (default 1024; `WEFT_BENCH_RUNS`
//! runs of each side, default 3, best taken). The text is generated once into
//! `target/bench/`; the native count and weft's output are checked to agree
//! before any figure is printed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

mod corpus;

fn generate(path: &Path, bytes: u64) {
    if std::fs::metadata(path).map(|m| m.len() >= bytes).unwrap_or(false) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    corpus::write_text(&mut f, bytes).unwrap();
    f.flush().unwrap();
}

fn native(path: &Path) -> HashMap<String, i64> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut counts: HashMap<String, i64> = HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// Runs of each side: the figures are the best of them (noise on a shared
/// machine only ever adds time), with the slowest shown for the spread.
fn runs() -> usize {
    std::env::var("WEFT_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1)
}

/// Run `weft local` word count over `input` into `out`.
fn weft_local(dir: &Path, wasm: &Path, input: &Path, out: &Path) {
    let _ = std::fs::remove_dir_all(out);
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["local", "--dir"])
        .arg(dir.join("weft"))
        .arg(wasm)
        .arg("--")
        .arg(input)
        .arg(out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "weft local failed");
}

fn main() {
    let mib: u64 = std::env::var("WEFT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = root().join("target/bench");
    let input = dir.join(format!("words-{mib}MiB.txt"));
    generate(&input, mib << 20);
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let wasm = root().join("target/guests/wasm32-wasip2/release/wordcount.wasm");
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");
    let out = dir.join("wordcount-out");

    // Turns alternate, so that a slow spell of the machine hits both sides.
    let (mut native_times, mut weft_times) = (Vec::new(), Vec::new());
    let mut reference = HashMap::new();
    for _ in 0..runs() {
        let t = Instant::now();
        reference = native(&input);
        native_times.push(t.elapsed());
        let t = Instant::now();
        weft_local(&dir, &wasm, &input, &out);
        weft_times.push(t.elapsed());
    }

    let mut got: HashMap<String, i64> = HashMap::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("part-") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                let (w, n) = l.rsplit_once('\t').unwrap();
                got.insert(w.to_string(), n.parse().unwrap());
            }
        }
    }
    assert_eq!(got, reference, "weft's counts differ from the native count");

    let rate = |d: std::time::Duration| size / d.as_secs_f64();
    let best = |t: &[std::time::Duration]| *t.iter().min().unwrap();
    let worst = |t: &[std::time::Duration]| *t.iter().max().unwrap();
    let (native_time, weft_time) = (best(&native_times), best(&weft_times));
    println!(
        "word count over {size:.0} MB ({} distinct words), {} cores, best of {} runs (slowest in brackets)",
        reference.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        native_times.len()
    );
    println!(
        "  native Rust, 1 thread   {:>8.2}s  {:>7.1} MB/s   ({:.2}s)",
        native_time.as_secs_f64(),
        rate(native_time),
        worst(&native_times).as_secs_f64()
    );
    println!(
        "  weft local              {:>8.2}s  {:>7.1} MB/s   ({:.2}s)",
        weft_time.as_secs_f64(),
        rate(weft_time),
        worst(&weft_times).as_secs_f64()
    );
    println!("  weft / native speed      {:>7.2}x   (goal >= 1.0x)", rate(weft_time) / rate(native_time));
}
