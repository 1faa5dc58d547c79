//! The dataset operators of the Rust SDK over one keyed text input, for the
//! host's tests to compare with a native computation.
//!
//! `ops.wasm -- INPUT OUTPUT`: `INPUT` holds `key<TAB>payload` lines. Each
//! operator that makes a dataset saves it under `OUTPUT/<name>` (pairs as
//! `key<TAB>value`); each action prints `<name>: <result>` to the driver's log.
//!
//! | output | computed as |
//! |---|---|
//! | `values`, `keys` | `pairs.values()`, `pairs.keys()` |
//! | `map_values` | `pairs.map_values(len)`, as `key<TAB>len` |
//! | `flat_map_values` | `pairs.flat_map_values(words)`, as `key<TAB>word` |
//! | `count_by_key` | `pairs.count_by_key(3)`, as `key<TAB>n` |
//! | `count_by_value` | the payload lengths' `count_by_value(2)`, as `len<TAB>n` |
//! | `distinct` | `keys.distinct(3)` |
//! | `key_by` | `keys.key_by(initial)`, as `initial<TAB>key` |
//! | `sort_by` | `pairs.values().sort_by(len, true, 3)` |
//! | `lengths`, `halves` | payload lengths (`i64`) and halves (`f64`) saved as they are |
//! | `sum_i64`, `min_i64`, `max_i64` | native folds by key of `±len` (negative for odd lengths) |
//! | `sum_f64`, `min_f64`, `max_f64` | native folds by key of `±len / 4` (negative when `len % 3 == 0`) |
//! | `cogroup`, `left_outer`, `right_outer`, `full_outer` | `left` (even payload lengths, no key ending in 1) with `right` (odd lengths as `len`, no key ending in 2), `-` for `None` |
//! | `subtract`, `intersection` | `left.keys()` against `right.keys()` |
//! | `sample_a`, `sample_b`, `sample_c` | the lengths' `sample(0.3, seed)`, seeds 42, 42, 43 |
//! | `repartition`, `coalesce` | the keys into 5 and 2 partitions |
//! | `zip_with_index` | the keys numbered, as `index<TAB>key` |
//! | `map_partitions` | one `partition<TAB>records` line per partition of the keys |
//! | `fold_by_key` | `±len` folded by key with `add` and zero 1000 |
//! | `cartesian` | the keys' distinct initials × `[1, 2, 3]`, as `initial<TAB>n` |
//! | `aggregate_by_key`, `combine_by_key` | payload lengths summed by key (zero 7), and without zero |
//!
//! Printed: `aggregate` (5 + every payload length), `foreach_partition` (calls and records seen), `take_sample`, `take_sample_again` (10 lengths, seed 5, twice), `reduce`, `fold`, `reduce_empty`, `fold_empty`, `first`,
//! `is_empty`, `is_empty_filtered`, `top`, `take_ordered`, `foreach`,
//! `map <key>=<n>` (from `count_by_key(..).collect_as_map()`).
//!
//! `cli/tests/all/ops.rs` runs it.

use weft::prelude::*;

/// `key<TAB>payload` as a pair (a line without a tab is its own key).
#[weft::map]
fn split_kv(line: String) -> (String, String) {
    match line.split_once('\t') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (line, String::new()),
    }
}

#[weft::map]
fn len(payload: String) -> u64 {
    payload.len() as u64
}

#[weft::map]
fn len_i64(payload: String) -> i64 {
    payload.len() as i64
}

#[weft::map]
fn half(n: i64) -> f64 {
    n as f64 / 2.0
}

/// `(key, payload length)` as an `f64`.
#[weft::map]
fn len_f64((k, v): (String, String)) -> (String, f64) {
    let n = v.len() as f64;
    (k, if v.len().is_multiple_of(3) { -n / 4.0 } else { n / 4.0 })
}

/// `(key, payload length)` as an `i64`, negated for odd lengths.
#[weft::map]
fn len_signed((k, v): (String, String)) -> (String, i64) {
    let n = v.len() as i64;
    (k, if n % 2 == 1 { -n } else { n })
}

#[weft::flat_map]
fn words(payload: String) -> Vec<String> {
    payload.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect()
}

#[weft::map]
fn initial(key: String) -> char {
    key.chars().next().unwrap_or('-')
}

#[weft::reduce]
fn add(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}

#[weft::filter]
fn none(_n: &i64) -> bool {
    false
}

#[weft::map]
#[allow(clippy::unused_unit)]
fn seen(_pair: (String, String)) -> () {
    accumulator_add("seen", 1);
}

/// Keys on either side of the two-sided operators: not the skewed `hot`,
/// the 1.5 MiB `big` or the empty key (whose combinations would be huge).
fn joinable(k: &str) -> bool {
    !k.is_empty() && k != "hot" && k != "big"
}

/// The left side: even payload lengths, no key ending in 1.
#[weft::filter]
fn left_side((k, v): &(String, String)) -> bool {
    joinable(k) && v.len() % 2 == 0 && !k.ends_with('1')
}

/// The right side: odd payload lengths, no key ending in 2.
#[weft::filter]
fn right_side((k, v): &(String, String)) -> bool {
    joinable(k) && v.len() % 2 == 1 && !k.ends_with('2')
}

fn sorted_list<T: ToString>(items: &[T]) -> String {
    let mut items: Vec<String> = items.iter().map(T::to_string).collect();
    items.sort();
    items.join(",")
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("-".to_string(), T::to_string)
}

#[weft::map]
fn show_cogroup((k, (vs, ws)): (String, (Vec<String>, Vec<u64>))) -> String {
    format!("{k}\t{}\t{}", sorted_list(&vs), sorted_list(&ws))
}

#[weft::map]
fn show_left((k, (v, w)): (String, (String, Option<u64>))) -> String {
    format!("{k}\t{v}\t{}", or_dash(&w))
}

#[weft::map]
fn show_right((k, (v, w)): (String, (Option<String>, u64))) -> String {
    format!("{k}\t{}\t{w}", or_dash(&v))
}

#[weft::map]
fn show_full((k, (v, w)): (String, (Option<String>, Option<u64>))) -> String {
    format!("{k}\t{}\t{}", or_dash(&v), or_dash(&w))
}

/// One line per whole partition: its index and how many records it has.
#[weft::map_batch]
fn partition_size(keys: Vec<String>) -> Vec<String> {
    vec![format!("{}\t{}", weft::task_info().partition, keys.len())]
}

/// Counts its calls: once per partition.
#[weft::map_batch]
fn partition_seen(keys: Vec<String>) -> Vec<u8> {
    accumulator_add("partitions", 1);
    accumulator_add("partition_records", keys.len() as i64);
    Vec::new()
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [input, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: ops <input-uri> <output-uri>"));
    };
    let out = |name: &str| format!("{output}/{name}");
    let pairs = ctx.text_file(input, 4)?.map(split_kv);
    let keys = pairs.keys();
    let lengths = pairs.values().map(len_i64);

    pairs.values().save_as_text_file(&out("values"))?;
    keys.save_as_text_file(&out("keys"))?;
    pairs.map_values(len).save_as_text_file(&out("map_values"))?;
    pairs.flat_map_values(words).save_as_text_file(&out("flat_map_values"))?;
    pairs.count_by_key(3).save_as_text_file(&out("count_by_key"))?;
    pairs.values().map(len).count_by_value(2).save_as_text_file(&out("count_by_value"))?;
    keys.distinct(3).save_as_text_file(&out("distinct"))?;
    keys.key_by(initial).save_as_text_file(&out("key_by"))?;
    pairs.values().sort_by(len, true, 3).save_as_text_file(&out("sort_by"))?;
    lengths.save_as_text_file(&out("lengths"))?;
    let signed = pairs.map(len_signed);
    let quarters = pairs.map(len_f64);
    signed.sum_by_key(2).save_as_text_file(&out("sum_i64"))?;
    signed.min_by_key(2).save_as_text_file(&out("min_i64"))?;
    signed.max_by_key(0).save_as_text_file(&out("max_i64"))?;
    quarters.sum_by_key(2).save_as_text_file(&out("sum_f64"))?;
    quarters.min_by_key(3).save_as_text_file(&out("min_f64"))?;
    quarters.max_by_key(1).save_as_text_file(&out("max_f64"))?;
    lengths.map(half).save_as_text_file(&out("halves"))?;

    let left = pairs.filter(left_side);
    let right = pairs.filter(right_side).map_values(len);
    left.cogroup(&right, 3).map(show_cogroup).save_as_text_file(&out("cogroup"))?;
    left.left_outer_join(&right, 2).map(show_left).save_as_text_file(&out("left_outer"))?;
    left.right_outer_join(&right, 0).map(show_right).save_as_text_file(&out("right_outer"))?;
    left.full_outer_join(&right, 3).map(show_full).save_as_text_file(&out("full_outer"))?;
    left.keys().subtract(&right.keys(), 2).save_as_text_file(&out("subtract"))?;
    left.keys().intersection(&right.keys(), 2).save_as_text_file(&out("intersection"))?;
    lengths.sample(0.3, 42).save_as_text_file(&out("sample_a"))?;
    lengths.sample(0.3, 42).save_as_text_file(&out("sample_b"))?;
    lengths.sample(0.3, 43).save_as_text_file(&out("sample_c"))?;
    keys.repartition(5).save_as_text_file(&out("repartition"))?;
    keys.map_partitions(partition_size).save_as_text_file(&out("map_partitions"))?;
    keys.foreach_partition(partition_seen)?;
    let calls = (ctx.accumulator_value("partitions")?, ctx.accumulator_value("partition_records")?);
    println!("foreach_partition: {} {}", calls.0, calls.1);
    let small = ctx.parallelize([1i64, 2, 3], 2)?;
    let initials = keys.map(initial).distinct(2);
    initials.cartesian(&small).save_as_text_file(&out("cartesian"))?;
    pairs.aggregate_by_key(7, len_i64, add, 2).save_as_text_file(&out("aggregate_by_key"))?;
    pairs.combine_by_key(len_i64, add, 3).save_as_text_file(&out("combine_by_key"))?;
    println!("aggregate: {}", pairs.values().aggregate(5, len_i64, add)?);
    keys.zip_with_index()?.save_as_text_file(&out("zip_with_index"))?;
    signed.fold_by_key(1000, add, 2).save_as_text_file(&out("fold_by_key"))?;
    keys.coalesce(2).save_as_text_file(&out("coalesce"))?;
    let drawn = |seed| -> weft::Result<String> {
        Ok(lengths.take_sample(10, seed)?.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
    };
    println!("take_sample: {}", drawn(5)?);
    println!("take_sample_again: {}", drawn(5)?);

    let show = |v: Option<i64>| v.map_or("none".to_string(), |v| v.to_string());
    println!("reduce: {}", show(lengths.reduce(add)?));
    println!("fold: {}", lengths.fold(1000, add)?);
    let empty = lengths.filter(none);
    println!("reduce_empty: {}", show(empty.reduce(add)?));
    println!("fold_empty: {}", empty.fold(1000, add)?);
    println!("first: {}", keys.first()?.unwrap_or_default());
    println!("is_empty: {}", pairs.is_empty()?);
    println!("is_empty_filtered: {}", empty.is_empty()?);
    let list = |v: Vec<i64>| v.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    println!("top: {}", list(lengths.top(5)?));
    println!("take_ordered: {}", list(lengths.take_ordered(5)?));
    pairs.foreach(seen)?;
    println!("foreach: {}", ctx.accumulator_value("seen")?);
    let mut map: Vec<(String, i64)> = pairs.count_by_key(0).collect_as_map()?.into_iter().collect();
    map.sort();
    for (k, n) in map {
        println!("map {k}={n}");
    }
    Ok(())
}
