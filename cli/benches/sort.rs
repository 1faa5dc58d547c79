//! Sort of TeraSort-like records: `weft local` (both cores) running
//! `guest-examples/sort` against a single-threaded native Rust sort of the
//! same file, in the same run.
//!
//! `cargo xtask bench-sort [SIZE_MIB] [PARTITIONS]` (defaults 1024 and 8;
//! `WEFT_BENCH_RUNS` runs of each side, default 3, best taken). The records
//! (`records.rs`) are generated once into `target/bench/`. Before any figure is
//! printed, weft's part files, read in partition order, are checked to hold
//! exactly the input's lines with non-decreasing keys, and to equal the native
//! output up to the order of lines with equal keys.
//!
//! The native side is the fastest straightforward single-threaded program for
//! the same result: read the file into memory, find the lines with `memchr`,
//! sort one `u128` per line (the 10-byte key big-endian above the line's
//! index) with `sort_unstable`, and write the lines in that order through a
//! `BufWriter`. It allocates nothing per record.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

mod records;
mod versus;
use records::KEY_BYTES;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn generate(path: &Path, bytes: u64) {
    if std::fs::metadata(path).map(|m| m.len() >= bytes).unwrap_or(false) {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).unwrap());
    records::write_records(&mut f, bytes).unwrap();
    f.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// The lines of `text`, each with its `\n` (one allocation for all of them).
fn lines(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(text.len() / (records::LINE_BYTES - 1) + 1);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', text) {
        out.push(&text[start..=end]);
        start = end + 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// A line's key: its first `KEY_BYTES` bytes (without the `\n`), big-endian,
/// zero-padded when the line is shorter.
fn key(line: &[u8]) -> u128 {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut k = [0u8; 16];
    let n = line.len().min(KEY_BYTES);
    k[..n].copy_from_slice(&line[..n]);
    u128::from_be_bytes(k)
}

/// The native sort of `input` into `output`.
fn native(input: &Path, output: &Path) {
    let text = std::fs::read(input).unwrap();
    let lines = lines(&text);
    // The key fills the top 80 bits, the line's index the low 48.
    let mut order: Vec<u128> = lines.iter().enumerate().map(|(i, l)| key(l) | i as u128).collect();
    order.sort_unstable();
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output).unwrap());
    for o in order {
        let line = lines[(o & ((1 << 48) - 1)) as usize];
        w.write_all(line).unwrap();
        if !line.ends_with(b"\n") {
            w.write_all(b"\n").unwrap();
        }
    }
    w.flush().unwrap();
}

/// weft's part files in partition order, concatenated; there must be `partitions`.
fn weft_output(out: &Path, partitions: u32) -> Vec<u8> {
    assert!(out.join("_SUCCESS").exists(), "no _SUCCESS in {}", out.display());
    let mut parts: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("part-"))
        .collect();
    parts.sort();
    let want: Vec<String> = (0..partitions).map(|p| format!("part-{p:05}")).collect();
    let got: Vec<String> =
        parts.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(got, want, "one part file per partition");
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&std::fs::read(p).unwrap());
    }
    all
}

/// An order-independent hash of the lines of `text` (a sum of line hashes).
fn multiset_hash(lines: &[&[u8]]) -> u64 {
    lines.iter().fold(0u64, |acc, l| acc.wrapping_add(xxhash_rust::xxh3::xxh3_64(l)))
}

/// Check weft's output against the input and the native output (see the module docs).
fn check(input: &Path, native_out: &Path, weft: &[u8]) -> usize {
    let (input, native) = (std::fs::read(input).unwrap(), std::fs::read(native_out).unwrap());
    let (input, native, weft) = (lines(&input), lines(&native), lines(weft));
    assert_eq!(weft.len(), input.len(), "weft wrote {} lines for {} input lines", weft.len(), input.len());
    assert_eq!(native.len(), input.len(), "the native sort lost lines");
    assert_eq!(multiset_hash(&weft), multiset_hash(&input), "weft's lines are not the input's lines");
    assert_eq!(multiset_hash(&native), multiset_hash(&input), "the native sort changed lines");
    for (name, out) in [("weft", &weft), ("native", &native)] {
        if let Some(i) = (1..out.len()).find(|&i| key(out[i - 1]) > key(out[i])) {
            panic!("{name}'s line {i} has a smaller key than the line before it");
        }
    }
    // Same keys in the same order, and within a run of equal keys the same lines.
    let mut i = 0;
    while i < weft.len() {
        let k = key(weft[i]);
        assert_eq!(key(native[i]), k, "line {i}: weft and native keys differ");
        let end = (i..weft.len()).find(|&j| key(weft[j]) != k).unwrap_or(weft.len());
        let (mut a, mut b) = (weft[i..end].to_vec(), native[i..end].to_vec());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "lines {i}..{end} (one key): weft and native lines differ");
        i = end;
    }
    input.len()
}

fn main() {
    let mib: u64 = env_or("WEFT_BENCH_MIB", 1024);
    let partitions: u32 = env_or("WEFT_BENCH_PARTITIONS", 8);
    let dir = root().join("target/bench");
    let input = dir.join(format!("records-{mib}MiB.txt"));
    generate(&input, mib << 20);
    let size = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let wasm = root().join("target/guests/wasm32-wasip2/release/sort.wasm");
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");
    let (native_out, weft_out) = (dir.join("sort-native.txt"), dir.join("sort-out"));

    let mut summary = String::new();
    let partitions_arg = partitions.to_string();
    let (native_times, weft_times) = versus::alternate(
        || native(&input, &native_out),
        || {
            let args = [input.as_os_str(), weft_out.as_os_str(), OsStr::new(&partitions_arg)];
            summary = versus::weft_local(&dir.join("sort-weft"), &wasm, &weft_out, &args);
        },
    );
    let records = check(&input, &native_out, &weft_output(&weft_out, partitions));

    let title = format!("sort of {size:.0} MB ({records} records, {partitions} partitions)");
    versus::print(&title, size, ("native Rust sort, 1 thread", &native_times), &weft_times, "");
    println!("weft's last run:\n{}", summary.trim_end());
}
