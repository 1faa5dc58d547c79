//! PageRank over a generated web graph: `weft local` (both cores) running
//! `guest-examples/pagerank` against a single-threaded native Rust PageRank
//! of the same edge list, in the same run.
//!
//! `cargo xtask bench-pagerank [PAGES] [ITERATIONS]` (defaults 200,000 pages
//! and 10 iterations; `WEFT_BENCH_RUNS` runs of each side, default 3, best
//! taken). The edge list (`p<from>\tp<to>` lines, about five links a page,
//! popular pages skewed towards low numbers, some pages linking nowhere) is
//! generated once into `target/bench/`. Before any figure is printed, weft's
//! ranks are checked to rank the same pages as the native ones, each within
//! 1e-9 (the sums are taken in another order).
//!
//! The semantics are the Spark example's: every page with links starts at
//! rank 1; each iteration joins the links with the ranks (a page without
//! links drops out), sends each rank in equal shares along the links and
//! ranks every page that received something at `0.15 + 0.85 × received`.
//!
//! The native side is the fastest straightforward single-threaded program for
//! that result: read the file once, give each page name an index through an
//! FxHash map of byte slices (no allocation per edge), build the links as
//! compressed rows, iterate over plain `f64` vectors, and write `page\trank`
//! lines through a `BufWriter`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rustc_hash::FxHashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

mod versus;

use versus::env_or;

/// Write the edge list of a graph of `pages` pages to `path` (once).
fn generate(path: &Path, pages: u64) {
    versus::generate_once(path, |f| {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        for p in 0..pages {
            for _ in 0..next() % 11 {
                // A quarter of the links go to the first tenth of the pages.
                let to = if next() % 4 == 0 { next() % (pages / 10).max(1) } else { next() % pages };
                writeln!(f, "p{p}\tp{to}").unwrap();
            }
        }
    });
}

/// The index of page `name`, given one if it has none yet.
fn intern<'a>(name: &'a [u8], index: &mut FxHashMap<&'a [u8], u32>, names: &mut Vec<&'a [u8]>) -> u32 {
    if let Some(&i) = index.get(name) {
        return i;
    }
    let i = names.len() as u32;
    index.insert(name, i);
    names.push(name);
    i
}

/// The native PageRank of the edge list at `input`, written to `output`.
fn native(input: &Path, output: &Path, iterations: u32) {
    let text = std::fs::read(input).unwrap();
    let mut index: FxHashMap<&[u8], u32> = FxHashMap::default();
    let mut names: Vec<&[u8]> = Vec::new();
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(text.len() / 14);
    let mut line_start = 0;
    for end in memchr::memchr_iter(b'\n', &text) {
        let line = &text[line_start..end];
        line_start = end + 1;
        let Some(tab) = memchr::memchr(b'\t', line) else { continue };
        let a = intern(&line[..tab], &mut index, &mut names);
        let b = intern(&line[tab + 1..], &mut index, &mut names);
        edges.push((a, b));
    }
    let n = names.len();
    // Compressed rows: the links of page p are targets[start[p]..start[p + 1]].
    let mut start = vec![0u32; n + 1];
    for &(a, _) in &edges {
        start[a as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut targets = vec![0u32; edges.len()];
    for &(a, b) in &edges {
        targets[fill[a as usize] as usize] = b;
        fill[a as usize] += 1;
    }
    let links = |p: usize| &targets[start[p] as usize..start[p + 1] as usize];
    let mut rank: Vec<f64> = (0..n).map(|p| if links(p).is_empty() { f64::NAN } else { 1.0 }).collect();
    let mut received = vec![0.0f64; n];
    let mut got = vec![false; n];
    for _ in 0..iterations {
        received.iter_mut().for_each(|r| *r = 0.0);
        got.iter_mut().for_each(|g| *g = false);
        for (p, &r) in rank.iter().enumerate() {
            let to = links(p);
            if to.is_empty() || r.is_nan() {
                continue;
            }
            let share = r / to.len() as f64;
            for &t in to {
                received[t as usize] += share;
                got[t as usize] = true;
            }
        }
        for ((r, &sum), &g) in rank.iter_mut().zip(&received).zip(&got) {
            *r = if g { 0.15 + 0.85 * sum } else { f64::NAN };
        }
    }
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(output).unwrap());
    for (p, r) in rank.iter().enumerate().filter(|(_, r)| !r.is_nan()) {
        w.write_all(names[p]).unwrap();
        writeln!(w, "\t{r}").unwrap();
    }
    w.flush().unwrap();
}

/// `page\trank` lines of `text`.
fn ranks(text: &str) -> FxHashMap<&str, f64> {
    text.lines()
        .map(|l| {
            let (p, r) = l.split_once('\t').unwrap();
            (p, r.parse().unwrap())
        })
        .collect()
}

/// weft's ranks equal the native ones within 1e-9; the number of pages ranked.
fn check(native_out: &Path, weft_out: &Path) -> usize {
    assert!(weft_out.join("_SUCCESS").exists(), "no _SUCCESS in {}", weft_out.display());
    let native_text = std::fs::read_to_string(native_out).unwrap();
    let native = ranks(&native_text);
    let mut weft_text = String::new();
    for e in std::fs::read_dir(weft_out).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("part-") {
            weft_text.push_str(&std::fs::read_to_string(p).unwrap());
        }
    }
    let weft = ranks(&weft_text);
    assert_eq!(weft.len(), native.len(), "weft ranked {} pages, native {}", weft.len(), native.len());
    for (page, r) in &weft {
        let want = native.get(page).unwrap_or_else(|| panic!("weft ranked {page}, native did not"));
        assert!((r - want).abs() <= 1e-9 * want.abs().max(1.0), "{page}: weft {r}, native {want}");
    }
    weft.len()
}

fn main() {
    let pages: u64 = env_or("WEFT_BENCH_PAGES", 200_000);
    let iterations: u32 = env_or("WEFT_BENCH_ITERATIONS", 10);
    let (dir, input, size, wasm) =
        versus::setup(&format!("pagerank-{pages}.txt"), "pagerank", |p| generate(p, pages));
    let (native_out, weft_out) = (dir.join("pagerank-native.txt"), dir.join("pagerank-out"));

    let mut summary = String::new();
    let iterations_arg = iterations.to_string();
    let (native_times, weft_times) = versus::alternate(
        || native(&input, &native_out, iterations),
        || {
            let args = [input.as_os_str(), OsStr::new(&iterations_arg), weft_out.as_os_str()];
            summary = versus::weft_local(&dir.join("pagerank-weft"), &wasm, &weft_out, &args);
        },
    );
    let ranked = check(&native_out, &weft_out);
    let edges = std::fs::read(&input).unwrap().iter().filter(|&&b| b == b'\n').count();
    let title = format!(
        "PageRank, {iterations} iterations over {pages} pages and {edges} links ({size:.0} MB), {ranked} ranked"
    );
    versus::print(&title, size, ("native Rust PageRank, 1 thread", &native_times), &weft_times, "");
    println!("weft's last run:\n{}", summary.trim_end());
}
