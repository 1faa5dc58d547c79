//! `run-chain` semantics, natively.

use crate::{decode_keyed, decode_plain, flush, keyed, plain, run, run_all};
use weft::codec::batch::{BatchWriter, entries};
use weft::dispatch::CallError;
use weft::{OpKind, Record, RecordError};

#[weft::map]
fn d_upper(s: String) -> String {
    s.to_uppercase()
}

#[weft::flat_map]
fn d_words(line: String) -> Vec<String> {
    line.split_whitespace().map(str::to_lowercase).collect()
}

#[weft::map]
fn d_one(word: String) -> (String, i64) {
    (word, 1)
}

#[weft::reduce]
fn d_add(a: i64, b: i64) -> i64 {
    a + b
}

#[weft::map]
fn d_format((word, n): (String, i64)) -> String {
    format!("{word}={n}")
}

#[weft::map]
fn d_parse(s: String) -> Result<i64, std::num::ParseIntError> {
    s.parse()
}

#[weft::reduce]
fn d_checked(a: i64, b: i64) -> Result<i64, String> {
    a.checked_add(b).ok_or_else(|| format!("{a} + {b} overflows"))
}

#[weft::map_batch]
fn d_reverse(mut records: Vec<String>) -> Vec<String> {
    records.reverse();
    records
}

#[weft::filter]
fn d_odd(pair: &(u32, String)) -> bool {
    pair.0 % 2 == 1
}

/// A string record whose decoding trims: re-encoding would change its bytes.
#[derive(Debug, PartialEq)]
struct Trimmed(String);

impl Record for Trimmed {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.0.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        Ok(Trimmed(String::decode(bytes)?.trim().to_string()))
    }
}

#[weft::filter]
fn d_nonblank(t: &Trimmed) -> bool {
    !t.0.is_empty()
}

#[weft::map]
fn d_count_calls(s: String) -> String {
    weft::accumulator_add("d_count_calls", 1);
    s
}

mod again {
    #[weft::map]
    fn d_twice(s: String) -> String {
        s
    }
}

#[weft::map]
fn d_twice(s: String) -> String {
    s
}

fn strings(records: &[&str]) -> Vec<u8> {
    plain(&records.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

#[test]
fn word_count_chain() {
    let input = strings(&["The cat", "", "the  hat  The"]);
    let words = run(&[(OpKind::FlatMap, "d_words"), (OpKind::Map, "d_one")], input).unwrap();
    let mut pairs: Vec<(String, i64)> = decode_keyed(&words);
    assert_eq!(pairs.len(), 5);
    // The host sorts by key bytes between the map side and the reduce.
    pairs.sort();
    let counts = run(&[(OpKind::Reduce, "d_add"), (OpKind::Map, "d_format")], keyed(&pairs)).unwrap();
    assert_eq!(decode_plain::<String>(&counts), ["cat=1", "hat=1", "the=3"]);
}

#[test]
fn empty_chain_and_empty_batch() {
    let input = strings(&["a"]);
    assert_eq!(run(&[], input.clone()).unwrap(), input);
    assert!(run(&[(OpKind::Map, "d_upper"), (OpKind::FlatMap, "d_words")], Vec::new()).unwrap().is_empty());
    assert!(run(&[(OpKind::Reduce, "d_add")], Vec::new()).unwrap().is_empty());
}

#[test]
fn filter_copies_the_original_entries() {
    let input = strings(&["  padded  ", "   ", "x"]);
    let out = run(&[(OpKind::Filter, "d_nonblank")], input).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["  padded  ", "x"]);
}

#[test]
fn filter_on_pairs_copies_both_entries() {
    let input = keyed(&[(1u32, "a".to_string()), (2, "b".to_string()), (3, "c".to_string())]);
    let out = run(&[(OpKind::Filter, "d_odd")], input).unwrap();
    assert_eq!(decode_keyed::<u32, String>(&out), [(1, "a".to_string()), (3, "c".to_string())]);
}

#[test]
fn reduce_folds_adjacent_runs_and_keeps_key_bytes() {
    let input = keyed(&[("a", 1i64), ("a", 2), ("b", 5), ("c", 1), ("c", 1), ("c", 1), ("a", 10)]);
    let out = run(&[(OpKind::Reduce, "d_add")], input).unwrap();
    let got: Vec<(String, i64)> = decode_keyed(&out);
    // Only adjacent equal keys fold: the host sorts before it reduces.
    assert_eq!(got, [("a".into(), 3), ("b".into(), 5), ("c".into(), 3), ("a".into(), 10)]);
    let keys: Vec<&[u8]> = entries(&out).step_by(2).map(Result::unwrap).collect();
    assert_eq!(keys, [&b"a"[..], b"b", b"c", b"a"]);
}

#[test]
fn reduce_passes_a_lone_value_through_unchanged() {
    let mut w = BatchWriter::new();
    w.push(b"k");
    w.push(&7i64.to_record_bytes());
    let input = w.finish();
    assert_eq!(run(&[(OpKind::Reduce, "d_add")], input.clone()).unwrap(), input);
}

#[test]
fn map_batch_sees_the_whole_batch() {
    let out = run(&[(OpKind::MapBatch, "d_reverse")], strings(&["1", "2", "3"])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["3", "2", "1"]);
}

#[test]
fn unknown_and_mismatched_functions() {
    let input = strings(&["a"]);
    let err = run(&[(OpKind::Map, "d_upper"), (OpKind::Map, "no_such_fn")], input.clone()).unwrap_err();
    assert_eq!(
        err,
        CallError::UnknownFunction("no map function named `no_such_fn` in this component".into())
    );
    let err = run(&[(OpKind::Filter, "d_upper")], input.clone()).unwrap_err();
    assert!(matches!(&err, CallError::UnknownFunction(m) if m.contains("is a map function")), "{err}");
    let err = run(&[(OpKind::Map, "d_twice")], input).unwrap_err();
    assert!(
        matches!(&err, CallError::UnknownFunction(m) if m.contains("defined more than once") && m.contains("again")),
        "{err}"
    );
}

#[test]
fn undecodable_input_is_a_decode_error() {
    let mut w = BatchWriter::new();
    w.push(b"fine");
    w.push(b"\xff");
    let err = run(&[(OpKind::Map, "d_upper")], w.finish()).unwrap_err();
    assert_eq!(
        err,
        CallError::Decode(
            "record 1 of the input to map `d_upper`: String: not UTF-8 (valid up to byte 0)".into()
        )
    );

    let err = run(&[(OpKind::Map, "d_upper")], vec![9, 0, 0, 0, b'x']).unwrap_err();
    assert!(matches!(&err, CallError::Decode(m) if m.contains("truncated")), "{err}");

    // A pair function given a plain batch with an odd number of entries.
    let err = run(&[(OpKind::Map, "d_format")], strings(&["a"])).unwrap_err();
    assert!(matches!(&err, CallError::Decode(m) if m.contains("odd number of entries")), "{err}");

    let err = run(&[(OpKind::Reduce, "d_add")], keyed(&[("a", "not an i64".to_string())])).unwrap_err();
    assert!(matches!(&err, CallError::Decode(m) if m.contains("expected 8 bytes")), "{err}");
}

#[test]
fn user_errors_carry_the_message() {
    let err = run(&[(OpKind::Map, "d_parse")], strings(&["1", "x"])).unwrap_err();
    assert_eq!(err, CallError::User("d_parse: invalid digit found in string".into()));
    let err = run(&[(OpKind::Reduce, "d_checked")], keyed(&[("k", i64::MAX), ("k", 1)])).unwrap_err();
    assert_eq!(err, CallError::User(format!("d_checked: {} + 1 overflows", i64::MAX)));
}

#[test]
fn accumulators_from_user_functions() {
    run(&[(OpKind::Map, "d_count_calls")], strings(&["a", "b", "c"])).unwrap();
    assert_eq!(weft::testing::accumulator("d_count_calls"), 3);
}

#[weft::flat_map]
fn d_borrowed_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split_whitespace().map(str::to_lowercase)
}

#[weft::map]
fn d_len(bytes: &[u8]) -> u64 {
    bytes.len() as u64
}

#[weft::filter]
fn d_has_x(line: &str) -> weft::Result<bool> {
    if line == "boom" {
        return Err(weft::Error::msg("boom"));
    }
    Ok(line.contains('x'))
}

#[weft::map]
fn d_checked_str(line: &str) -> Result<String, String> {
    if line.is_empty() { Err("empty".into()) } else { Ok(line.to_uppercase()) }
}

#[test]
fn borrowed_records_skip_the_copy_but_not_the_checks() {
    let out = run(&[(OpKind::FlatMap, "d_borrowed_words")], strings(&["A b", "C"])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["a", "b", "c"]);

    let out =
        run(&[(OpKind::Map, "d_len")], plain(&[weft::Bytes(vec![1, 2, 3]), weft::Bytes(vec![])])).unwrap();
    assert_eq!(decode_plain::<u64>(&out), [3, 0]);

    let out = run(&[(OpKind::Filter, "d_has_x")], strings(&["axe", "bee", "x"])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["axe", "x"]);
    let err = run(&[(OpKind::Filter, "d_has_x")], strings(&["a", "boom"])).unwrap_err();
    assert_eq!(err, CallError::User("d_has_x: boom".into()));

    let mut w = BatchWriter::new();
    w.push(b"\xc3");
    let err = run(&[(OpKind::FlatMap, "d_borrowed_words")], w.finish()).unwrap_err();
    assert!(
        matches!(&err, CallError::Decode(m) if m.contains("record 0") && m.contains("not UTF-8")),
        "{err}"
    );

    let out = run(&[(OpKind::Map, "d_checked_str")], strings(&["a"])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["A"]);
    let err = run(&[(OpKind::Map, "d_checked_str")], strings(&["a", ""])).unwrap_err();
    assert_eq!(err, CallError::User("d_checked_str: empty".into()));
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// After the host's sort, a reduce gives one pair per key: the fold of its values.
        #[test]
        fn reduce_after_sort_is_a_fold_per_key(mut input in proptest::collection::vec((".{0,3}", -1000i64..1000), 0..64)) {
            input.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let out = run(&[(OpKind::Reduce, "d_add")], keyed(&input)).unwrap();
            let mut expected: BTreeMap<Vec<u8>, (String, i64)> = BTreeMap::new();
            for (k, v) in &input {
                expected.entry(k.as_bytes().to_vec()).or_insert((k.clone(), 0)).1 += v;
            }
            let expected: Vec<(String, i64)> = expected.into_values().collect();
            prop_assert_eq!(decode_keyed::<String, i64>(&out), expected);
        }

        /// A map chain never panics on garbage; it fails with a decode error.
        #[test]
        fn garbage_is_a_decode_error(buf in proptest::collection::vec(any::<u8>(), 1..64)) {
            for (kind, name) in [(OpKind::Map, "d_upper"), (OpKind::Reduce, "d_add"), (OpKind::Map, "d_format"), (OpKind::FlatMap, "d_borrowed_words")] {
                match run(&[(kind, name)], buf.clone()) {
                    Ok(_) | Err(CallError::Decode(_)) => {}
                    Err(e) => prop_assert!(false, "{name}: {e}"),
                }
            }
        }
    }
}

#[weft::filter]
fn d_short(word: &str) -> bool {
    word.len() <= 3
}

/// Runs `chain` one step at a time: each step alone, through a whole batch.
fn run_unfused(chain: &[(OpKind, &str)], input: Vec<u8>) -> Result<Vec<u8>, CallError> {
    chain.iter().try_fold(input, |batch, step| run(std::slice::from_ref(step), batch))
}

#[test]
fn fused_steps_give_what_steps_run_one_by_one_give() {
    let chain = [
        (OpKind::Map, "d_upper"),
        (OpKind::FlatMap, "d_words"),
        (OpKind::Filter, "d_short"),
        (OpKind::Map, "d_one"),
        (OpKind::Map, "d_format"),
    ];
    let input = strings(&["the cat sat", "", "on  the mat of doom", "x"]);
    let fused = run(&chain, input.clone()).unwrap();
    assert_eq!(fused, run_unfused(&chain, input).unwrap());
    assert_eq!(decode_plain::<String>(&fused)[..3], ["the=1", "cat=1", "sat=1"]);
}

#[test]
fn a_fused_step_reports_its_own_errors_and_accumulators() {
    let err = run(&[(OpKind::Map, "d_upper"), (OpKind::Map, "d_parse")], strings(&["1", "x"])).unwrap_err();
    assert_eq!(err, CallError::User("d_parse: invalid digit found in string".into()));
    let err = run(&[(OpKind::FlatMap, "d_words"), (OpKind::Filter, "d_has_x")], strings(&["x", "BOOM"]))
        .unwrap_err();
    assert_eq!(err, CallError::User("d_has_x: boom".into()));
    let mut w = BatchWriter::new();
    w.push(b"ok");
    w.push(b"\xff");
    let err = run(&[(OpKind::FlatMap, "d_words"), (OpKind::Map, "d_one")], w.finish()).unwrap_err();
    assert!(
        matches!(&err, CallError::Decode(m) if m.contains("record 1") && m.contains("`d_words`")),
        "{err}"
    );

    let before = weft::testing::accumulator("d_count_calls");
    run(&[(OpKind::FlatMap, "d_words"), (OpKind::Map, "d_count_calls")], strings(&["a b", "c"])).unwrap();
    assert_eq!(weft::testing::accumulator("d_count_calls") - before, 3);
}

#[test]
fn steps_whose_types_differ_meet_through_a_batch() {
    // `d_upper` yields a String, `d_len` takes Bytes: not fused, but a String's
    // encoding reads as Bytes, so the chain still runs.
    let out = run(&[(OpKind::Map, "d_upper"), (OpKind::Map, "d_len")], strings(&["ab", ""])).unwrap();
    assert_eq!(decode_plain::<u64>(&out), [2, 0]);
    // A map-batch in the middle splits the chain in two pipelines.
    let chain = [(OpKind::Map, "d_upper"), (OpKind::MapBatch, "d_reverse"), (OpKind::FlatMap, "d_words")];
    let out = run(&chain, strings(&["a b", "c"])).unwrap();
    assert_eq!(decode_plain::<String>(&out), ["c", "a", "b"]);
}

#[test]
fn combine_folds_each_key_wherever_it_is() {
    let input = keyed(&[("b", 1i64), ("a", 2), ("b", 3), ("c", 7), ("a", 4)]);
    let out = run(&[(OpKind::Combine, "d_add")], input).unwrap();
    assert_eq!(decode_keyed::<String, i64>(&out), [("b".into(), 4), ("a".into(), 6), ("c".into(), 7)]);
    // A key seen once keeps its value's bytes.
    let mut w = BatchWriter::new();
    w.push(b"k");
    w.push(&7i64.to_record_bytes());
    let lone = w.finish();
    assert_eq!(run(&[(OpKind::Combine, "d_add")], lone.clone()).unwrap(), lone);

    let err =
        run(&[(OpKind::Combine, "d_checked")], keyed(&[("k", i64::MAX), ("j", 0), ("k", 1)])).unwrap_err();
    assert_eq!(err, CallError::User(format!("d_checked: {} + 1 overflows", i64::MAX)));
    let err = run(&[(OpKind::Combine, "d_upper")], keyed(&[("k", 1i64)])).unwrap_err();
    assert!(matches!(&err, CallError::UnknownFunction(m) if m.contains("is a map function")), "{err}");
}

#[test]
fn a_combine_behind_a_pipeline_folds_pairs_as_they_come_and_across_batches() {
    let chain = [(OpKind::FlatMap, "d_words"), (OpKind::Map, "d_one"), (OpKind::Combine, "d_add")];
    let batches = vec![strings(&["the cat", ""]), strings(&["The hat the end"]), strings(&["cat"])];
    for b in &batches {
        assert_eq!(run(&chain, b.clone()).unwrap(), Vec::<u8>::new(), "the folds are held between calls");
    }
    let held = flush(&chain).unwrap();
    let expected: Vec<(String, i64)> =
        [("the", 3), ("cat", 2), ("hat", 1), ("end", 1)].iter().map(|(w, n)| (w.to_string(), *n)).collect();
    assert_eq!(decode_keyed::<String, i64>(&held), expected, "one pair per key over every batch");
    assert_eq!(flush(&chain).unwrap(), Vec::<u8>::new(), "a flush forgets what it returned");

    // The same as step by step (a combine alone folds within its one batch).
    let all = strings(&["the cat", "", "The hat the end", "cat"]);
    assert_eq!(run_all(&chain, vec![all.clone()]).unwrap(), run_unfused(&chain, all).unwrap());

    // Errors of the fold inside the pipeline carry the reduce function's name.
    let chain = [(OpKind::Map, "d_parse_pair"), (OpKind::Combine, "d_checked")];
    let err = run_all(&chain, vec![strings(&[&i64::MAX.to_string()]), strings(&["1"])]).unwrap_err();
    assert_eq!(err, CallError::User(format!("d_checked: {} + 1 overflows", i64::MAX)));
    assert_eq!(flush(&chain).unwrap(), Vec::<u8>::new(), "a failed fold holds nothing");

    // Values of another type than the reduce function's: not fused, and the
    // batch-at-a-time combine reports what does not decode.
    let chain = [(OpKind::Map, "d_pair_text"), (OpKind::Combine, "d_add")];
    let err = run(&chain, strings(&["a"])).unwrap_err();
    assert!(
        matches!(&err, CallError::Decode(m) if m.contains("`d_add`") && m.contains("expected 8 bytes")),
        "{err}"
    );
}

#[test]
fn a_held_combine_hands_its_pairs_back_when_it_holds_enough() {
    let chain = [(OpKind::Map, "d_one"), (OpKind::Combine, "d_add")];
    // Distinct keys of 32 bytes: about 90 bytes each held, so 8 MiB is ~95k keys.
    let words: Vec<String> = (0..150_000).map(|i| format!("{i:032}")).collect();
    let refs: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut total = 0;
    let mut handed_back = 0;
    for batch in refs.chunks(10_000) {
        let out = run(&chain, strings(batch)).unwrap();
        if !out.is_empty() {
            handed_back += 1;
        }
        total += decode_keyed::<String, i64>(&out).len();
    }
    total += decode_keyed::<String, i64>(&flush(&chain).unwrap()).len();
    assert_eq!(handed_back, 1, "the folds come back once they pass the bound");
    assert_eq!(total, words.len(), "every key exactly once");
}

/// Every number under one key.
#[weft::map]
fn d_parse_pair(s: String) -> Result<(String, i64), std::num::ParseIntError> {
    Ok(("n".to_string(), s.parse()?))
}

/// A pair whose value is text.
#[weft::map]
fn d_pair_text(s: String) -> (String, String) {
    (s.clone(), s)
}

/// A line's length, keyed by how many words it has (an integer key).
#[weft::map]
fn d_words_len(line: String) -> (i64, i64) {
    (line.split_whitespace().count() as i64, line.len() as i64)
}

/// A line keyed by (its first word, its length): a composite key.
#[weft::map]
fn d_first_word(line: String) -> ((String, u8), i64) {
    let first = line.split_whitespace().next().unwrap_or("").to_string();
    ((first, line.len().min(255) as u8), 1)
}

#[test]
fn fused_combines_fold_integer_composite_and_long_keys_as_step_by_step() {
    // Keys of 0 to 40 bytes: the inline compare's eight-byte chunks and tails.
    let lines: Vec<String> = (0..200)
        .map(|i| format!("{} w{} end", "x".repeat(i % 41), i % 7))
        .chain(["".to_string(), "a".to_string(), "a".to_string()])
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let input = strings(&refs);
    for chain in [
        [(OpKind::Map, "d_words_len"), (OpKind::Combine, "d_add")],
        [(OpKind::Map, "d_first_word"), (OpKind::Combine, "d_add")],
    ] {
        let fused = run_all(&chain, vec![input.clone()]).unwrap();
        assert_eq!(fused, run_unfused(&chain, input.clone()).unwrap(), "{chain:?}");
        assert!(!fused.is_empty());
    }
    // Long string keys: every repeat of a key folds into one pair.
    let chain = [(OpKind::FlatMap, "d_words"), (OpKind::Map, "d_one"), (OpKind::Combine, "d_add")];
    let held = run_all(&chain, vec![input]).unwrap();
    let folded = decode_keyed::<String, i64>(&held);
    let long = "x".repeat(40);
    assert_eq!(folded.iter().find(|(k, _)| *k == long).map(|(_, n)| *n), Some(4), "{} x 40", 200 / 41);
    assert_eq!(folded.iter().find(|(k, _)| k == "end").map(|(_, n)| *n), Some(200));
}
