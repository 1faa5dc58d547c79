//! Every operator of the Rust SDK (the `ops` test guest) on a master and two
//! agents, each compared with the same computation done natively.
//!
//! The input has skewed keys (half the lines share one key), an empty key,
//! keys outside ASCII and one payload of 1.5 MiB, larger than a batch (1 MiB)
//! and than a text split, so the splits inside it are empty partitions.

use crate::support::{cluster, guest, output_lines, submit_log};
use std::collections::BTreeMap;

/// A deterministic stream of numbers (xorshift).
fn numbers(mut x: u64) -> impl Iterator<Item = u64> {
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

/// The input's `(key, payload)` pairs, in file order.
fn input() -> Vec<(String, String)> {
    let mut r = numbers(0x5eed);
    let mut pairs = Vec::new();
    for i in 0..3000u64 {
        let key = match r.next().unwrap() % 10 {
            0..=4 => "hot".to_string(),
            5 => format!("é{}", r.next().unwrap() % 7),
            6 if i % 50 == 0 => String::new(),
            _ => format!("k{}", r.next().unwrap() % 200),
        };
        let words = r.next().unwrap() % 6;
        let payload: Vec<String> = (0..words).map(|_| format!("w{}", r.next().unwrap() % 500)).collect();
        pairs.push((key, payload.join(" ")));
        if i == 1500 {
            let big: Vec<String> = (0..250_000).map(|n| format!("b{n}")).collect();
            let big = big.join(" ");
            assert!(big.len() > 3 << 19, "larger than a batch");
            pairs.push(("big".to_string(), big));
        }
    }
    pairs
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

#[test]
fn every_operator_on_a_master_and_two_agents_equals_a_native_computation() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = input();
    let body: String = pairs.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
    let file = dir.path().join("pairs.txt");
    std::fs::write(&file, body).unwrap();
    let out = dir.path().join("out");

    let (_master, url, _agents) = cluster(dir.path(), 2);
    let stdout = submit_log(&url, &guest("ops"), &[file.to_str().unwrap(), out.to_str().unwrap()]);
    let saved = |name: &str| sorted(output_lines(&out.join(name)));
    let printed = |name: &str| {
        let prefix = format!("{name}: ");
        let line = stdout.lines().find_map(|l| l.strip_prefix(&prefix));
        line.unwrap_or_else(|| panic!("no `{prefix}` in:\n{stdout}")).to_string()
    };

    // Narrow operators: the same records, as multisets.
    let each = |f: &dyn Fn(&(String, String)) -> String| sorted(pairs.iter().map(f).collect());
    assert_eq!(saved("values"), each(&|(_, v)| v.clone()));
    assert_eq!(saved("keys"), each(&|(k, _)| k.clone()));
    assert_eq!(saved("map_values"), each(&|(k, v)| format!("{k}\t{}", v.len())));
    assert_eq!(saved("key_by"), each(&|(k, _)| format!("{}\t{k}", k.chars().next().unwrap_or('-'))));
    assert_eq!(saved("lengths"), each(&|(_, v)| v.len().to_string()));
    assert_eq!(saved("halves"), each(&|(_, v)| (v.len() as f64 / 2.0).to_string()));
    let words: Vec<String> = pairs
        .iter()
        .flat_map(|(k, v)| v.split(' ').filter(|w| !w.is_empty()).map(move |w| format!("{k}\t{w}")))
        .collect();
    assert!(words.len() > 200_000);
    assert_eq!(saved("flat_map_values"), sorted(words));

    // Aggregations by key, counted natively in the host.
    let mut by_key: BTreeMap<&str, i64> = BTreeMap::new();
    let mut by_len: BTreeMap<usize, i64> = BTreeMap::new();
    for (k, v) in &pairs {
        *by_key.entry(k).or_default() += 1;
        *by_len.entry(v.len()).or_default() += 1;
    }
    assert!(by_key["hot"] > 1000, "skewed");
    let lines = |m: Vec<String>| sorted(m);
    assert_eq!(saved("count_by_key"), lines(by_key.iter().map(|(k, n)| format!("{k}\t{n}")).collect()));
    assert_eq!(saved("count_by_value"), lines(by_len.iter().map(|(l, n)| format!("{l}\t{n}")).collect()));
    assert_eq!(saved("distinct"), lines(by_key.keys().map(|k| k.to_string()).collect()));
    let map: Vec<String> =
        stdout.lines().filter_map(|l| l.strip_prefix("map ")).map(str::to_string).collect();
    assert_eq!(map, by_key.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>());

    // Native folds by key, of i64 and f64 values.
    let signed = |v: &String| if v.len() % 2 == 1 { -(v.len() as i64) } else { v.len() as i64 };
    let quarter =
        |v: &String| if v.len().is_multiple_of(3) { -(v.len() as f64) / 4.0 } else { v.len() as f64 / 4.0 };
    let mut folds: BTreeMap<&str, [i64; 3]> = BTreeMap::new();
    let mut float_folds: BTreeMap<&str, [f64; 3]> = BTreeMap::new();
    for (k, v) in &pairs {
        let (s, q) = (signed(v), quarter(v));
        // Each fold starts from a key's first value, as the host's does (and
        // Spark's reduceByKey): a sum of -0.0 alone stays -0.0.
        match (folds.get_mut(k.as_str()), float_folds.get_mut(k.as_str())) {
            (Some(e), Some(f)) => {
                *e = [e[0] + s, e[1].min(s), e[2].max(s)];
                *f = [f[0] + q, f[1].min(q), f[2].max(q)];
            }
            _ => {
                folds.insert(k, [s; 3]);
                float_folds.insert(k, [q; 3]);
            }
        }
    }
    for (i, name) in ["sum", "min", "max"].into_iter().enumerate() {
        let want = |f: &dyn Fn(&[i64; 3], &[f64; 3]) -> String| -> Vec<String> {
            sorted(folds.iter().map(|(k, v)| format!("{k}\t{}", f(v, &float_folds[k]))).collect())
        };
        assert_eq!(saved(&format!("{name}_i64")), want(&|v, _| v[i].to_string()), "{name} of i64");
        // Quarters are exact in binary: the float sum is the same in any order.
        assert_eq!(saved(&format!("{name}_f64")), want(&|_, f| f[i].to_string()), "{name} of f64");
    }

    // Two sides grouped by key, as natively joined.
    let joinable = |k: &str| !k.is_empty() && k != "hot" && k != "big";
    let left: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(k, v)| joinable(k) && v.len() % 2 == 0 && !k.ends_with('1'))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let right: Vec<(&str, usize)> = pairs
        .iter()
        .filter(|(k, v)| joinable(k) && v.len() % 2 == 1 && !k.ends_with('2'))
        .map(|(k, v)| (k.as_str(), v.len()))
        .collect();
    let mut sides: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for (k, v) in &left {
        sides.entry(k).or_default().0.push(v.to_string());
    }
    for (k, w) in &right {
        sides.entry(k).or_default().1.push(w.to_string());
    }
    assert!(sides.values().any(|(l, r)| l.is_empty() != r.is_empty()), "keys on one side only");
    let (mut cogroup, mut left_outer, mut right_outer, mut full_outer) = (vec![], vec![], vec![], vec![]);
    let (mut subtract, mut intersection) = (vec![], vec![]);
    for (k, (l, r)) in &mut sides {
        l.sort();
        r.sort();
        cogroup.push(format!("{k}\t{}\t{}", l.join(","), r.join(",")));
        let maybe = |side: &[String]| -> Vec<String> {
            if side.is_empty() { vec!["-".to_string()] } else { side.to_vec() }
        };
        for v in l.iter() {
            for w in maybe(r) {
                left_outer.push(format!("{k}\t{v}\t{w}"));
            }
        }
        for w in r.iter() {
            for v in maybe(l) {
                right_outer.push(format!("{k}\t{v}\t{w}"));
            }
        }
        for v in maybe(l) {
            for w in maybe(r) {
                full_outer.push(format!("{k}\t{v}\t{w}"));
            }
        }
        if r.is_empty() {
            subtract.extend(l.iter().map(|_| k.to_string()));
        } else if !l.is_empty() {
            intersection.push(k.to_string());
        }
    }
    assert_eq!(saved("cogroup"), sorted(cogroup));
    assert_eq!(saved("left_outer"), sorted(left_outer));
    assert_eq!(saved("right_outer"), sorted(right_outer));
    assert_eq!(saved("full_outer"), sorted(full_outer));
    assert_eq!(saved("subtract"), sorted(subtract));
    assert_eq!(saved("intersection"), sorted(intersection));

    // Samples: a seeded subset of the lengths, the same for the same seed.
    let sample = |name: &str| output_lines(&out.join(name));
    let (a, b, c) = (sample("sample_a"), sample("sample_b"), sample("sample_c"));
    assert_eq!(a, b, "the same seed draws the same records");
    assert_ne!(a, c, "another seed draws others");
    let expected = pairs.len() as f64 * 0.3;
    assert!((a.len() as f64 - expected).abs() < expected * 0.15, "{} drawn of {}", a.len(), pairs.len());
    let mut left_over = each(&|(_, v)| v.len().to_string());
    for drawn in sorted(a) {
        let at = left_over.binary_search(&drawn).unwrap_or_else(|_| panic!("{drawn} is not an input length"));
        left_over.remove(at);
    }
    let drawn: Vec<usize> = printed("take_sample").split(',').map(|n| n.parse().unwrap()).collect();
    assert_eq!(drawn.len(), 10);
    // Without replacement: ten distinct records' lengths, a sub-multiset of the input's.
    let mut left_over = each(&|(_, v)| v.len().to_string());
    for n in drawn {
        let at = left_over.binary_search(&n.to_string()).unwrap_or_else(|_| panic!("{n}: not left to draw"));
        left_over.remove(at);
    }
    assert_eq!(printed("take_sample"), printed("take_sample_again"));

    // Whole partitions: each seen once, with its index, empty ones included
    // (the splits inside the 1.5 MiB line hold no line).
    let sizes: Vec<(u32, usize)> = output_lines(&out.join("map_partitions"))
        .iter()
        .map(|l| l.split_once('\t').map(|(p, n)| (p.parse().unwrap(), n.parse().unwrap())).unwrap())
        .collect();
    let indices: Vec<u32> = sizes.iter().map(|(p, _)| *p).collect();
    assert_eq!(indices, (0..sizes.len() as u32).collect::<Vec<_>>(), "one line per partition, in order");
    assert_eq!(sizes.iter().map(|(_, n)| n).sum::<usize>(), pairs.len());
    assert!(sizes.iter().any(|(_, n)| *n == 0), "an empty partition is seen too: {sizes:?}");
    assert_eq!(printed("foreach_partition"), format!("{} {}", sizes.len(), pairs.len()));

    // The two-function aggregations, and a cartesian product.
    let mut lengths_by_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (k, v) in &pairs {
        *lengths_by_key.entry(k).or_default() += v.len();
    }
    let by_key =
        |zero: usize| sorted(lengths_by_key.iter().map(|(k, n)| format!("{k}\t{}", zero + n)).collect());
    assert_eq!(saved("aggregate_by_key"), by_key(7), "zero folded in once per key");
    assert_eq!(saved("combine_by_key"), by_key(0));
    let total: usize = pairs.iter().map(|(_, v)| v.len()).sum();
    assert_eq!(printed("aggregate"), (5 + total).to_string());
    let mut initials: Vec<char> = pairs.iter().map(|(k, _)| k.chars().next().unwrap_or('-')).collect();
    initials.sort_unstable();
    initials.dedup();
    let product = initials.iter().flat_map(|c| (1..=3).map(move |n| format!("{c}\t{n}"))).collect();
    assert_eq!(saved("cartesian"), sorted(product));

    // Numbered in partition order, which for text is the file's order.
    let numbered: Vec<String> = pairs.iter().enumerate().map(|(i, (k, _))| format!("{i}\t{k}")).collect();
    assert_eq!(saved("zip_with_index"), sorted(numbered));
    let folded = folds.iter().map(|(k, v)| format!("{k}\t{}", 1000 + v[0])).collect();
    assert_eq!(saved("fold_by_key"), sorted(folded), "the zero folded in once per key");

    // Repartitioned: the same keys, over the partitions asked for.
    for (name, n) in [("repartition", 5), ("coalesce", 2)] {
        assert_eq!(saved(name), each(&|(k, _)| k.clone()), "{name}");
        let parts = std::fs::read_dir(out.join(name)).unwrap();
        let parts = parts.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-"));
        assert_eq!(parts.count(), n, "{name}");
    }

    // A sort by payload length: the part files in order hold the payloads by length.
    let by_length = output_lines(&out.join("sort_by"));
    assert!(by_length.windows(2).all(|w| w[0].len() <= w[1].len()), "not ordered by length");
    assert_eq!(sorted(by_length), each(&|(_, v)| v.clone()));

    // Actions.
    let mut lengths: Vec<i64> = pairs.iter().map(|(_, v)| v.len() as i64).collect();
    let sum: i64 = lengths.iter().sum();
    assert_eq!(printed("reduce"), sum.to_string());
    assert_eq!(printed("fold"), (1000 + sum).to_string());
    assert_eq!(printed("reduce_empty"), "none");
    assert_eq!(printed("fold_empty"), "1000");
    assert_eq!(printed("first"), pairs[0].0);
    assert_eq!(printed("is_empty"), "false");
    assert_eq!(printed("is_empty_filtered"), "true");
    lengths.sort_unstable();
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    assert_eq!(printed("take_ordered"), list(&lengths[..5]));
    lengths.reverse();
    assert_eq!(printed("top"), list(&lengths[..5]));
    assert_eq!(printed("foreach"), pairs.len().to_string(), "the function ran once per record");
}
