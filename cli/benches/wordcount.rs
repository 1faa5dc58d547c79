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

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

mod corpus;
mod versus;

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

fn main() {
    let mib: u64 = std::env::var("WEFT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = root().join("target/bench");
    let input = dir.join(format!("words-{mib}MiB.txt"));
    generate(&input, mib << 20);
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let wasm = root().join("target/guests/wasm32-wasip2/release/wordcount.wasm");
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");
    let out = dir.join("wordcount-out");

    let mut reference = HashMap::new();
    let (native_times, weft_times) = versus::alternate(
        || reference = native(&input),
        || {
            versus::weft_local(&dir.join("weft"), &wasm, &out, &[input.as_os_str(), out.as_os_str()]);
        },
    );

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

    let title = format!("word count over {size:.0} MB ({} distinct words)", reference.len());
    versus::print(&title, size, &native_times, &weft_times, "   (goal >= 1.0x)");
}
