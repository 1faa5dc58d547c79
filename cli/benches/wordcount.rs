//! Word count over a large text file: `weft local` (both cores) against a
//! fair single-threaded native Rust word count of the same file, in the same
//! run: the file read once, words as byte slices of it, FxHash, and an
//! allocation only for each new distinct word (see [`native`]).
//!
//! `cargo xtask bench-wordcount [SIZE_MIB]` (default 1024; `WEFT_BENCH_RUNS`
//! runs of each side, default 3, best taken). The text is generated once into
//! `target/bench/`; the native count and weft's output are checked to agree
//! before any figure is printed. With `WEFT_BENCH_TLS=1` it also runs the job
//! on a master and two agent processes, plain and with TLS on every endpoint,
//! and prints what TLS costs.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

mod corpus;
mod procs;
mod versus;

/// What the baseline is, as printed.
const NATIVE: &str = "native Rust, 1 thread (byte slices, FxHash)";

/// The bytes `char::is_whitespace` accepts among ASCII: what `split_whitespace`
/// splits on in an ASCII line (`u8::is_ascii_whitespace` lacks `\x0b`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// The word count the job computes (`split_whitespace`, `to_lowercase`), as
/// the fastest straightforward single-threaded Rust does it: the file read
/// once; in 1 MiB chunks cut at a newline, an ASCII chunk is split on bytes
/// and each word lowercased into one reused buffer, so only a new distinct
/// word allocates; a chunk with other bytes goes through `str` line by line
/// (the corpus has none, but the result stays the job's for any UTF-8 text).
fn native(path: &Path) -> FxHashMap<Box<[u8]>, i64> {
    let text = std::fs::read(path).unwrap();
    let mut counts: FxHashMap<Box<[u8]>, i64> = FxHashMap::default();
    let mut add = |word: &[u8]| match counts.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.into(), 1);
        }
    };
    let mut lower = Vec::new();
    let mut rest = &text[..];
    while !rest.is_empty() {
        let cut = match memchr::memrchr(b'\n', &rest[..rest.len().min(1 << 20)]) {
            Some(i) => i + 1,
            None => memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1),
        };
        let (chunk, tail) = rest.split_at(cut);
        rest = tail;
        if chunk.is_ascii() {
            for word in chunk.split(|&b| is_space(b)).filter(|w| !w.is_empty()) {
                lower.clear();
                lower.extend(word.iter().map(u8::to_ascii_lowercase));
                add(&lower);
            }
        } else {
            for word in std::str::from_utf8(chunk).unwrap().split_whitespace() {
                add(word.to_lowercase().as_bytes());
            }
        }
    }
    counts
}

fn main() {
    let mib: u64 = std::env::var("WEFT_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let dir = root().join("target/bench");
    let input = dir.join(format!("words-{mib}MiB.txt"));
    corpus::generate(&input, mib << 20).unwrap();
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let wasm = root().join("target/guests/wasm32-wasip2/release/wordcount.wasm");
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");
    let out = dir.join("wordcount-out");

    let mut counted = FxHashMap::default();
    let (native_times, weft_times) = versus::alternate(
        || counted = native(&input),
        || {
            versus::weft_local(&dir.join("weft"), &wasm, &out, &[input.as_os_str(), out.as_os_str()]);
        },
    );

    let reference: HashMap<String, i64> =
        counted.into_iter().map(|(w, n)| (String::from_utf8(w.into()).unwrap(), n)).collect();
    assert_eq!(versus::counts(&out), reference, "weft's counts differ from the native count");

    let title = format!("word count over {size:.0} MB ({} distinct words)", reference.len());
    versus::print(&title, size, (NATIVE, &native_times), &weft_times, "   (goal >= 0.75x)");

    // What TLS costs: the same job on a master and two agent processes,
    // plain and with TLS on every endpoint, in alternating runs.
    if std::env::var("WEFT_BENCH_TLS").is_ok_and(|v| v == "1") {
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..versus::runs() {
            for (tls, times) in [false, true].into_iter().zip(&mut times) {
                let files = tempfile::tempdir_in(&dir).unwrap();
                times.push(on_cluster(files.path(), &dir, &wasm, &input, &out, tls));
                assert_eq!(
                    versus::counts(&out),
                    reference,
                    "weft's counts on a cluster differ from the native count"
                );
            }
        }
        let best = |t: &[std::time::Duration]| t.iter().min().unwrap().as_secs_f64();
        let (plain, tls) = (best(&times[0]), best(&times[1]));
        println!("  cluster, 2 agents        {plain:>9.2}s  {:>7.1} MB/s", size / plain);
        println!("  cluster, 2 agents, TLS   {tls:>9.2}s  {:>7.1} MB/s", size / tls);
        println!("  TLS costs               {:>+8.1}%   (goal <= 5%)", (tls / plain - 1.0) * 100.0);
    }
}

/// Word count of `input` into `out` by `weft submit --wait` to a master and
/// two agents of one slot each (files under `files`, data under `data`),
/// every endpoint TLS when `tls`; the time `weft submit` took.
fn on_cluster(
    files: &Path,
    data: &Path,
    wasm: &Path,
    input: &Path,
    out: &Path,
    tls: bool,
) -> std::time::Duration {
    let _ = std::fs::remove_dir_all(out);
    let flags = if tls { procs::tls_flags(files) } else { Vec::new() };
    let grant = format!("{}=read-write", data.display());
    let (_procs, url) = procs::cluster(files, 1, &flags, &["--grant", &grant], &[]).unwrap();
    let mut submit = procs::weft();
    submit.args(["submit", "--master", &url, "--wait"]);
    if let Some(ca) = flags.iter().position(|f| f == "--tls-ca") {
        submit.args(&flags[ca..ca + 2]);
    }
    submit.arg(wasm).arg("--").arg(input).arg(out);
    let t = std::time::Instant::now();
    let o = submit.output().unwrap();
    let took = t.elapsed();
    assert!(o.status.success(), "weft submit failed: {}", String::from_utf8_lossy(&o.stderr));
    took
}
