//! What the attribute macros make of each signature shape.

use weft::prelude::*;
use weft::{Function, OpKind, Pair, Plain, Transform};

/// Documented functions keep their docs.
#[weft::flat_map]
pub fn split_words(line: String) -> Vec<String> {
    line.split_whitespace().map(str::to_lowercase).collect()
}

#[weft::map]
fn one(word: String) -> (String, i64) {
    (word, 1)
}

#[weft::reduce]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[weft::map]
fn format((word, n): (String, i64)) -> String {
    format!("{word}\t{n}")
}

#[weft::filter]
fn is_long(word: &str) -> bool {
    word.len() > 3
}

#[weft::filter]
fn frequent(pair: &(String, i64)) -> bool {
    pair.1 > 1
}

#[weft::flat_map]
fn chars(s: String) -> impl Iterator<Item = char> {
    s.chars().collect::<Vec<_>>().into_iter()
}

#[weft::flat_map]
fn maybe_number(s: String) -> Option<i64> {
    s.trim().parse().ok()
}

#[weft::map]
fn parse(s: String) -> Result<i64, std::num::ParseIntError> {
    s.trim().parse()
}

#[weft::flat_map]
fn fallible_pairs(s: String) -> weft::Result<Vec<(String, u8)>> {
    if s.is_empty() {
        return Err(weft::Error::msg("empty line"));
    }
    Ok(s.bytes().map(|b| (s.clone(), b)).collect())
}

#[weft::map_batch]
fn sort_batch(mut words: Vec<String>) -> Vec<String> {
    words.sort();
    words
}

#[weft::map_batch]
fn count_batch(pairs: Vec<(String, i64)>) -> impl Iterator<Item = (String, i64)> {
    let n = pairs.len() as i64;
    std::iter::once(("records".to_string(), n))
}

#[weft::reduce]
fn checked_add(a: i64, b: i64) -> Result<i64, &'static str> {
    a.checked_add(b).ok_or("overflow")
}

#[weft::flat_map]
fn borrowed(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(',').map(str::to_string)
}

#[weft::map]
fn first_byte(b: &[u8]) -> Option<u8> {
    b.first().copied()
}

#[weft::map(name = "renamed")]
fn original(s: String) -> String {
    s
}

#[test]
fn functions_stay_callable() {
    assert_eq!(split_words.call("A b".into()), ["a", "b"]);
    assert_eq!(one.call("x".into()), ("x".to_string(), 1));
    assert_eq!(add.call(2, 3), 5);
    assert_eq!(format.call(("x".into(), 2)), "x\t2");
    assert!(is_long.call("long!"));
    assert!(!frequent.call(&("x".to_string(), 1)));
    assert_eq!(chars.call("ab".into()).collect::<String>(), "ab");
    assert!(parse.call("x".into()).is_err());
    assert_eq!(checked_add.call(i64::MAX, 1), Err("overflow"));
    assert_eq!(first_byte.call(b"xy"), Some(b'x'));
    assert_eq!(borrowed.call("a,b").count(), 2);
}

#[test]
fn names_and_kinds() {
    assert_eq!(split_words::NAME, "split_words");
    assert_eq!(split_words::KIND, OpKind::FlatMap);
    assert_eq!(original::NAME, "renamed");
    assert_eq!(<add as Function>::KIND, OpKind::Reduce);
    assert_eq!(<is_long as Function>::KIND, OpKind::Filter);
    assert_eq!(<sort_batch as Function>::KIND, OpKind::MapBatch);
}

/// `T` and `U` are the same type (checked at compile time).
fn same<T, U>()
where
    T: Is<U>,
{
}
trait Is<T> {}
impl<T> Is<T> for T {}

#[test]
fn layouts_follow_the_signature() {
    same::<<one as Transform>::Input, Plain<String>>();
    same::<<one as Transform>::Output, Pair<String, i64>>();
    same::<<format as Transform>::Input, Pair<String, i64>>();
    same::<<frequent as Transform>::Input, Pair<String, i64>>();
    same::<<is_long as Transform>::Input, Plain<String>>();
    same::<<first_byte as Transform>::Input, Plain<weft::Bytes>>();
    same::<<first_byte as Transform>::Output, Plain<Option<u8>>>();
    same::<<chars as Transform>::Output, Plain<char>>();
    same::<<maybe_number as Transform>::Output, Plain<i64>>();
    same::<<parse as Transform>::Output, Plain<i64>>();
    same::<<fallible_pairs as Transform>::Output, Pair<String, u8>>();
    same::<<count_batch as Transform>::Input, Pair<String, i64>>();
}

#[test]
fn registered_for_dispatch() {
    let names = weft::dispatch::functions();
    for n in ["split_words", "one", "add", "format", "is_long", "chars", "renamed", "sort_batch"] {
        assert!(names.iter().any(|x| x == n), "{n} not in {names:?}");
    }
    assert!(!names.iter().any(|x| x == "original"));
}

/// The datasets the transformations make are typed by the functions (this test
/// is mostly that it compiles); natively every driver call is `NotADriver`.
#[allow(dead_code)]
fn word_count(ctx: &Context) -> weft::Result<()> {
    let lines: Dataset<String> = ctx.text_file("in", 4)?;
    let words: Dataset<String> = lines.flat_map(split_words).filter(is_long);
    let counts: PairDataset<String, i64> = words.map(one).reduce_by_key(add, 0);
    let _: PairDataset<String, i64> = words.map(one).sum_by_key(0).filter(frequent);
    let _: PairDataset<String, Vec<i64>> = counts.group_by_key(2);
    let _: PairDataset<String, (i64, i64)> = counts.join(&counts, 0);
    let _: Dataset<char> = words.flat_map(chars);
    let _: PairDataset<String, i64> = counts.map_batch(count_batch);
    counts.map(format).save_as_text_file("out")?;
    let _: Vec<(String, i64)> = counts.sort_by_key(false, 1).take(10)?;
    Ok(())
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    word_count(ctx)
}
