//! What the weft-against-native benchmarks share: the alternating runs, the
//! `weft local` run, and the printed comparison of the best times.

#![allow(clippy::unwrap_used, dead_code, missing_docs)]
use std::ffi::OsStr;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What an example's benchmark runs on: `target/bench/`, the input
/// `<input>` there (made by `generate` unless it exists), its size in MB, and
/// the built guest `<guest>.wasm`.
pub fn setup(input: &str, guest: &str, generate: impl FnOnce(&Path)) -> (PathBuf, PathBuf, f64, PathBuf) {
    let dir = root().join("target/bench");
    let input = dir.join(input);
    generate(&input);
    let mb = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    let wasm = root().join(format!("target/guests/wasm32-wasip2/release/{guest}.wasm"));
    assert!(wasm.exists(), "build the guests first: cargo xtask guests");
    (dir, input, mb, wasm)
}

/// Generate `path` with `fill` unless it exists: written beside it and
/// renamed into place, so an interrupted run leaves no half file.
pub fn generate_once(path: &Path, fill: impl FnOnce(&mut BufWriter<std::fs::File>)) {
    if path.exists() {
        return;
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut f = BufWriter::new(std::fs::File::create(&tmp).unwrap());
    fill(&mut f);
    f.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Runs of each side (`WEFT_BENCH_RUNS`, default 3): the figures are the best
/// of them (noise on a shared machine only ever adds time), with the slowest
/// shown for the spread.
pub fn runs() -> usize {
    std::env::var("WEFT_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1)
}

/// Time `native` and `weft` [`runs`] times each, in alternating turns, so
/// that a slow spell of the machine hits both sides.
pub fn alternate(mut native: impl FnMut(), mut weft: impl FnMut()) -> (Vec<Duration>, Vec<Duration>) {
    let (mut native_times, mut weft_times) = (Vec::new(), Vec::new());
    for _ in 0..runs() {
        let t = Instant::now();
        native();
        native_times.push(t.elapsed());
        let t = Instant::now();
        weft();
        weft_times.push(t.elapsed());
    }
    (native_times, weft_times)
}

/// Run `weft local` on `wasm` with `args` (after `--`), its files in `dir`,
/// writing into `out` (emptied first); its stdout.
pub fn weft_local(dir: &Path, wasm: &Path, out: &Path, args: &[&OsStr]) -> String {
    weft_local_with(&[], dir, wasm, out, args)
}

/// [`weft_local`] with more `weft local` flags.
pub fn weft_local_with(flags: &[&str], dir: &Path, wasm: &Path, out: &Path, args: &[&OsStr]) -> String {
    let _ = std::fs::remove_dir_all(out);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .arg("local")
        .args(flags)
        .arg("--dir")
        .arg(dir)
        .arg(wasm)
        .arg("--")
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "weft local failed:\n{stdout}");
    stdout
}

/// The word counts in the part files of `out` (a committed output directory).
pub fn counts(out: &Path) -> std::collections::HashMap<String, i64> {
    assert!(out.join("_SUCCESS").exists(), "{} is not a committed output", out.display());
    let mut got = std::collections::HashMap::new();
    for entry in std::fs::read_dir(out).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("part-") {
            for l in std::fs::read_to_string(&p).unwrap().lines() {
                let (w, n) = l.rsplit_once('\t').unwrap();
                got.insert(w.to_string(), n.parse().unwrap());
            }
        }
    }
    got
}

/// Print `title`, then the best (and slowest) times and rates of both sides
/// over `mb` megabytes (the native side named by its label), and their ratio
/// followed by `note`.
pub fn print(title: &str, mb: f64, (label, native): (&str, &[Duration]), weft: &[Duration], note: &str) {
    let rate = |d: Duration| mb / d.as_secs_f64();
    let best = |t: &[Duration]| *t.iter().min().unwrap();
    let worst = |t: &[Duration]| *t.iter().max().unwrap();
    let (native_time, weft_time) = (best(native), best(weft));
    println!(
        "{title}, {} cores, best of {} runs (slowest in brackets)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        native.len()
    );
    let width = label.len().max(22);
    for (name, time, all) in [(label, native_time, native), ("weft local", weft_time, weft)] {
        println!(
            "  {name:<width$}{:>9.2}s  {:>7.1} MB/s   ({:.2}s)",
            time.as_secs_f64(),
            rate(time),
            worst(all).as_secs_f64()
        );
    }
    println!("  {:<width$}{:>9.2}x{note}", "weft / native speed", rate(weft_time) / rate(native_time));
}
