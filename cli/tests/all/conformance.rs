//! The SDK conformance suite: the same job in every guest language
//! (`tests/guests/conformance` in Rust, `tests/guests/python/conformance.py`,
//! `tests/guests/js/conformance.js`, `tests/guests/c/conformance.c`),
//! each case run on a real cluster (a master and two agents) and its output
//! compared with a native computation. User errors and panics must end as
//! guest errors naming the function and the cause; hostile functions (an
//! endless loop, a memory bomb, unbounded recursion, a giant output) must be
//! contained, and the cluster must go on serving.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cluster::numbers;
use crate::support::{
    c_guest, cluster, counts, guest, js_guest, native_counts, output_lines, python_guest, run, text,
};

/// `weft submit --wait --json` with limits small enough for the hostile
/// cases; whether it succeeded, and the job's status.
fn submit(url: &str, wasm: &Path, args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["submit", wasm.to_str().unwrap(), "--master", url, "--wait", "--json"];
    all.extend_from_slice(&["--task-memory", "256MiB", "--fuel", "5000000000", "--"]);
    all.extend_from_slice(args);
    let o = run(&all);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let status: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&o.stderr)));
    (o.status.success(), status)
}

/// The job must succeed; its driver's log.
fn succeeds(url: &str, wasm: &Path, args: &[&str]) -> String {
    let (ok, status) = submit(url, wasm, args);
    assert!(ok && status["state"] == "succeeded", "{args:?}: {status}");
    status["driver_log"].as_str().unwrap_or_default().to_string()
}

/// The job must fail; its message.
fn fails(url: &str, wasm: &Path, args: &[&str]) -> String {
    let (ok, status) = submit(url, wasm, args);
    assert!(!ok && status["state"] == "failed", "{args:?}: {status}");
    status["message"].as_str().unwrap().to_string()
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// `key,number` lines over `keys` keys.
fn keyed_numbers(seed: u64, lines: usize, keys: u64) -> Vec<(String, i64)> {
    let mut r = numbers(seed);
    (0..lines)
        .map(|_| (format!("k{}", r.next().unwrap() % keys), (r.next().unwrap() % 1000) as i64))
        .collect()
}

fn write_pairs(path: &Path, pairs: &[(String, i64)]) {
    std::fs::write(path, pairs.iter().map(|(k, v)| format!("{k},{v}\n")).collect::<String>()).unwrap();
}

fn conforms(wasm: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();
    let (_master, url, mut agents) = cluster(d, 2);

    // Word count.
    let body = text(1 << 20);
    std::fs::write(d.join("text.txt"), &body).unwrap();
    succeeds(&url, wasm, &["wordcount", &path("text.txt"), &path("wc")]);
    assert_eq!(counts(&output_lines(&d.join("wc"))), native_counts(&body), "word count");

    // A join of two keyed files.
    let (left, right) = (keyed_numbers(1, 3000, 400), keyed_numbers(2, 2000, 500));
    write_pairs(&d.join("left.txt"), &left);
    write_pairs(&d.join("right.txt"), &right);
    succeeds(&url, wasm, &["join", &path("left.txt"), &path("right.txt"), &path("joined")]);
    let mut native = Vec::new();
    for (k, l) in &left {
        for (_, r) in right.iter().filter(|(k2, _)| k2 == k) {
            native.push(format!("{k}\t{l}\t{r}"));
        }
    }
    assert!(native.len() > 1000, "the join has work to do");
    assert_eq!(sorted(output_lines(&d.join("joined"))), sorted(native), "join");

    // A sort into four partitions: the part files in order are the sorted lines.
    let mut r = numbers(3);
    let mut keys: Vec<u64> = (0..5000).map(|_| r.next().unwrap() % 1_000_000_000).collect();
    keys.sort_unstable();
    keys.dedup();
    let lines: Vec<String> =
        keys.iter().rev().enumerate().map(|(i, k)| format!("{k} payload {i} of the record")).collect();
    std::fs::write(d.join("unsorted.txt"), lines.iter().map(|l| format!("{l}\n")).collect::<String>())
        .unwrap();
    succeeds(&url, wasm, &["sort", &path("unsorted.txt"), &path("sorted")]);
    let mut native = lines.clone();
    native.sort_by(|a, b| a.split(' ').next().cmp(&b.split(' ').next()));
    assert_eq!(output_lines(&d.join("sorted")), native, "sort");

    // Group by key.
    succeeds(&url, wasm, &["group", &path("left.txt"), &path("grouped")]);
    let mut groups: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (k, v) in &left {
        groups.entry(k).or_default().push(*v);
    }
    let native: Vec<String> = groups
        .iter_mut()
        .map(|(k, vs)| {
            vs.sort_unstable();
            format!("{k}\t{}", vs.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        })
        .collect();
    assert_eq!(sorted(output_lines(&d.join("grouped"))), native, "group by key");

    // Accumulators, summed over the tasks by the master.
    let log = succeeds(&url, wasm, &["accumulate", &path("text.txt")]);
    let (n, bytes) = (body.lines().count(), body.lines().map(str::len).sum::<usize>());
    assert!(log.contains(&format!("count={n} lines={n} bytes={bytes}")), "accumulators: {log}");

    // A bound parameter (shipped as a broadcast value).
    succeeds(&url, wasm, &["broadcast", &path("text.txt"), &path("grep"), "and"]);
    let native: Vec<String> = body.lines().filter(|l| l.contains("and")).map(str::to_string).collect();
    assert!(!native.is_empty());
    assert_eq!(sorted(output_lines(&d.join("grep"))), sorted(native), "bound parameter");

    // A cached dataset, counted twice, and its distinct records.
    let log = succeeds(&url, wasm, &["cache", &path("text.txt")]);
    let native = native_counts(&body);
    let words: i64 = native.values().sum();
    assert!(log.contains(&format!("words={words} again={words} distinct={}", native.len())), "cache: {log}");

    // A user error and a panic (an exception): guest errors naming the
    // function and the cause.
    let bad = format!("{}the BAD line\n{}", &body[..5000], &body[5000..10_000]);
    std::fs::write(d.join("bad.txt"), bad).unwrap();
    let message = fails(&url, wasm, &["fail", &path("bad.txt")]);
    assert!(message.contains("reject_bad") && message.contains("conformance: bad record"), "{message}");
    assert!(message.contains("the BAD line"), "the record is named: {message}");
    let message = fails(&url, wasm, &["panic", &path("bad.txt")]);
    assert!(message.contains("divide") && message.contains("by zero"), "{message}");

    // Hostile functions, contained by the sandbox's limits.
    let small = path("small.txt");
    std::fs::write(&small, "one line\nanother line\n").unwrap();
    let message = fails(&url, wasm, &["spin", &small]);
    assert!(message.contains("out of fuel"), "endless loop: {message}");
    let message = fails(&url, wasm, &["grow", &small]);
    assert!(message.contains("memory limit of 256.0 MiB"), "memory bomb: {message}");
    let message = fails(&url, wasm, &["recurse", &small]);
    // Rust and C overflow their stacks, CPython's frames fill its heap, and
    // SpiderMonkey throws its own "too much recursion" first: each contained.
    assert!(
        ["stack overflow", "memory limit of 256.0 MiB", "too much recursion"]
            .iter()
            .any(|m| message.contains(m)),
        "unbounded recursion: {message}"
    );
    let message = fails(&url, wasm, &["giant", &small]);
    assert!(
        message.contains("memory limit of 256.0 MiB") || message.contains("output limit"),
        "giant output: {message}"
    );

    // The agents survived all of it and serve the next job.
    for a in &mut agents {
        assert!(a.wait(std::time::Duration::ZERO).is_none(), "an agent exited");
    }
    succeeds(&url, wasm, &["wordcount", &path("small.txt"), &path("wc-after")]);
    assert_eq!(counts(&output_lines(&d.join("wc-after"))), native_counts("one line\nanother line\n"));
}

#[test]
fn the_rust_sdk_conforms() {
    conforms(&guest("conformance"));
}

#[test]
fn the_python_sdk_conforms() {
    conforms(&python_guest("conformance"));
}

#[test]
fn the_javascript_sdk_conforms() {
    conforms(&js_guest("conformance"));
}

#[test]
fn the_c_sdk_conforms() {
    conforms(&c_guest("conformance"));
}

/// The C SDK's driver checks each step against its dataset's shape and keeps
/// the first error, which fails the job when `main` returns.
#[test]
fn the_c_sdk_fails_a_job_with_its_first_driver_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "a line\n").unwrap();
    let wasm = c_guest("conformance");
    let o = run(&[
        "local",
        "--dir",
        dir.path().to_str().unwrap(),
        wasm.to_str().unwrap(),
        "--",
        "misuse",
        input.to_str().unwrap(),
    ]);
    let all = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{all}");
    assert!(
        all.contains("weft_map(count_line): `count_line` takes pairs, and dataset 0 holds records"),
        "{all}"
    );
}

/// The Python SDK's other operators (`tests/guests/python/ops.py`), each
/// against a native computation: cogroup and the outer joins, the `by_key`
/// folds, subtract, intersection, cartesian, repartition, zip_with_index,
/// sample, and the actions built from them.
#[test]
fn the_python_sdks_other_operators_match_native_results() {
    other_operators_match_native(&python_guest("ops"));
}

/// The same operators in the JavaScript SDK (`tests/guests/js/ops.js`, the
/// same outputs).
#[test]
fn the_javascript_sdks_other_operators_match_native_results() {
    other_operators_match_native(&js_guest("ops"));
}

fn other_operators_match_native(wasm: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = |name: &str| d.join(name).to_str().unwrap().to_string();
    let (left, right) = (keyed_numbers(11, 300, 40), keyed_numbers(12, 200, 60));
    let right: Vec<(String, i64)> =
        right.into_iter().filter(|(k, _)| k[1..].parse::<u64>().unwrap() >= 20).collect();
    write_pairs(&d.join("left.txt"), &left);
    write_pairs(&d.join("right.txt"), &right);
    let vocab = ["the", "and", "fox", "dog", "cat", "a", "b", "nothing"];
    let mut r = numbers(13);
    let lines: Vec<String> = (0..300)
        .map(|i| {
            let mut l: Vec<&str> = (0..5).map(|_| vocab[(r.next().unwrap() % 8) as usize]).collect();
            let tag = format!("line{i}");
            l.push(&tag);
            l.join(" ")
        })
        .collect();
    std::fs::write(d.join("words.txt"), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let words: Vec<&str> = lines.iter().flat_map(|l| l.split(' ')).collect();
    let (_master, url, _agents) = cluster(d, 2);
    let log =
        succeeds(&url, wasm, &[&path("left.txt"), &path("right.txt"), &path("words.txt"), &path("out")]);
    let out = |name: &str| sorted(output_lines(&d.join("out").join(name)));

    let group = |pairs: &[(String, i64)]| {
        let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (k, v) in pairs {
            m.entry(k.clone()).or_default().push(*v);
        }
        m.values_mut().for_each(|v| v.sort_unstable());
        m
    };
    let (l, rt) = (group(&left), group(&right));
    let keys: std::collections::BTreeSet<&String> = l.keys().chain(rt.keys()).collect();
    let csv = |v: Option<&Vec<i64>>| {
        v.map_or(String::new(), |v| v.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
    };
    let cogroup: Vec<String> =
        keys.iter().map(|k| format!("{k}\t{}\t{}", csv(l.get(*k)), csv(rt.get(*k)))).collect();
    assert_eq!(out("cogroup"), sorted(cogroup), "cogroup");

    let outer = |keep_left: bool, keep_right: bool| {
        let mut lines = Vec::new();
        for k in &keys {
            let none = vec![];
            let (ls, rs) = (l.get(*k).unwrap_or(&none), rt.get(*k).unwrap_or(&none));
            if (ls.is_empty() && !keep_right) || (rs.is_empty() && !keep_left) {
                continue;
            }
            let show = |v: &[i64]| {
                if v.is_empty() { vec!["-".to_string()] } else { v.iter().map(i64::to_string).collect() }
            };
            for a in show(ls) {
                for b in show(rs) {
                    lines.push(format!("{k}\t{a}\t{b}"));
                }
            }
        }
        sorted(lines)
    };
    assert_eq!(out("left"), outer(true, false), "left outer join");
    assert_eq!(out("right"), outer(false, true), "right outer join");
    assert_eq!(out("full"), outer(true, true), "full outer join");

    let sums: Vec<String> = l.iter().map(|(k, v)| format!("{k}\t{}", v.iter().sum::<i64>())).collect();
    assert_eq!(out("fold_by_key"), sorted(sums), "fold_by_key");
    let doubled: Vec<String> = l.iter().map(|(k, v)| format!("{k}\t{}", 2 * v.iter().sum::<i64>())).collect();
    assert_eq!(out("aggregate_by_key"), sorted(doubled), "aggregate_by_key");
    let lists: Vec<String> = l.iter().map(|(k, v)| format!("{k}\t{}", csv(Some(v)))).collect();
    assert_eq!(out("combine_by_key"), sorted(lists), "combine_by_key");

    let other = ["the", "and", "nothing-like-it"];
    let subtract: Vec<String> = words.iter().filter(|w| !other.contains(w)).map(|w| w.to_string()).collect();
    assert_eq!(out("subtract"), sorted(subtract), "subtract keeps duplicates");
    assert_eq!(out("intersection"), vec!["and".to_string(), "the".to_string()], "intersection");
    let cartesian: Vec<String> =
        ["a", "b", "c"].iter().flat_map(|a| ["x", "y"].iter().map(move |b| format!("{a}\t{b}"))).collect();
    assert_eq!(out("cartesian"), cartesian, "cartesian");

    assert_eq!(out("repartition"), sorted(lines.clone()), "repartition keeps every record");
    let parts = std::fs::read_dir(d.join("out/repartition"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-"))
        .count();
    assert_eq!(parts, 3, "into three partitions");
    let indexed: Vec<String> = lines.iter().enumerate().map(|(i, l)| format!("{i}\t{l}")).collect();
    assert_eq!(
        output_lines(&d.join("out/zip_with_index")),
        indexed,
        "zip_with_index counts in partition order"
    );

    let sample = out("sample");
    assert_eq!(sample, out("sample-again"), "a sample is the same on every run");
    assert!((100..=200).contains(&sample.len()), "about half: {}", sample.len());
    assert!(sample.iter().all(|s| lines.contains(s)), "a sample holds only records");

    let total: usize = words.iter().map(|w| w.len()).sum();
    let distinct: std::collections::BTreeSet<&&str> = words.iter().collect();
    let mut ordered = words.clone();
    ordered.sort_unstable();
    let top: Vec<&str> = ordered.iter().rev().take(3).copied().collect();
    for want in [
        format!("fold={total}"),
        format!("aggregate={total}"),
        format!("reduce={total}"),
        format!("distinct={}", distinct.len()),
        format!("top={}", top.join(",")),
        format!("take_ordered={}", ordered[..3].join(",")),
        "is_empty=false,true".to_string(),
        format!("collect_as_map={}", l.len()),
        format!("foreach={}", words.len()),
    ] {
        assert!(log.contains(&want), "`{want}` in\n{log}");
    }
    let drawn: Vec<&str> = log
        .lines()
        .find_map(|l| l.strip_prefix("[info] take_sample="))
        .unwrap_or_else(|| panic!("{log}"))
        .split('|')
        .collect();
    let unique: std::collections::BTreeSet<&&str> = drawn.iter().collect();
    assert_eq!((drawn.len(), unique.len()), (5, 5), "five records, without replacement: {drawn:?}");
    assert!(drawn.iter().all(|s| lines.iter().any(|l| l == s)), "{drawn:?}");
}
