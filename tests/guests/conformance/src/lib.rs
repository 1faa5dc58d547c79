//! The SDK conformance job in Rust: the same cases, with the same outputs, as
//! its twins in the other languages (`tests/guests/python/conformance.py`),
//! checked against native references by `cli/tests/all/conformance.rs`.
//!
//! `conformance <case> <uris...>`

use std::hint::black_box;
use weft::prelude::*;

#[weft::flat_map]
fn split_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split_whitespace().map(str::to_lowercase)
}

#[weft::map]
fn key_and_number(line: &str) -> weft::Result<(String, i64)> {
    let (key, number) = line.split_once(',').ok_or_else(|| weft::Error::msg(format!("no comma in {line:?}")))?;
    let number = number.parse().map_err(|e| weft::Error::msg(format!("{number:?}: {e}")))?;
    Ok((key.to_string(), number))
}

#[weft::map]
fn first_word_key(line: &str) -> (String, String) {
    let key = line.split(' ').next().unwrap_or_default();
    (key.to_string(), line.to_string())
}

#[weft::map]
fn join_line((key, (left, right)): (String, (i64, i64))) -> String {
    format!("{key}\t{left}\t{right}")
}

#[weft::map]
fn group_line((key, mut values): (String, Vec<i64>)) -> String {
    values.sort_unstable();
    let values: Vec<String> = values.iter().map(i64::to_string).collect();
    format!("{key}\t{}", values.join(","))
}

#[weft::map]
fn measure(line: String) -> String {
    weft::accumulator_add("lines", 1);
    weft::accumulator_add("bytes", line.len() as i64);
    line
}

#[weft::filter]
fn contains(line: &str, word: &String) -> bool {
    line.contains(word.as_str())
}

#[weft::map]
fn reject_bad(line: String) -> weft::Result<String> {
    if line.contains("BAD") {
        return Err(weft::Error::msg(format!("conformance: bad record {line:?}")));
    }
    Ok(line)
}

#[weft::map]
fn divide(line: String) -> i64 {
    let n = black_box(line.len() as i64);
    let zero = black_box(n - n);
    if zero == 0 {
        panic!("attempt to divide by zero");
    }
    n / zero
}

#[weft::map]
fn spin(line: String) -> String {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
        if black_box(false) {
            return line;
        }
    }
}

#[weft::map]
fn grow(line: String) -> String {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(black_box(vec![1u8; 1 << 20]));
        if black_box(blocks.len()) == usize::MAX {
            return line;
        }
    }
}

#[weft::map]
fn recurse(line: String) -> String {
    format!("{line} {}", deeper(black_box(0)))
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    let frame = black_box([n as u8; 1024]);
    black_box(deeper(black_box(n + 1))) + u64::from(frame[black_box(7)])
}

#[weft::flat_map]
fn huge_output(_line: String) -> impl Iterator<Item = String> {
    (0..1024).map(|_| "x".repeat(1 << 20))
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let Some((case, uris)) = args.split_first() else {
        return Err(weft::Error::msg("usage: conformance <case> <uris...>"));
    };
    let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
    match (case.as_str(), uris.as_slice()) {
        ("wordcount", [src, out]) => {
            ctx.text_file(src, 4)?.flat_map(split_words).count_by_value(3).save_as_text_file(out)?
        }
        ("join", [a, b, out]) => {
            let left = ctx.text_file(a, 2)?.map(key_and_number);
            let right = ctx.text_file(b, 3)?.map(key_and_number);
            left.join(&right, 4).map(join_line).save_as_text_file(out)?
        }
        ("sort", [src, out]) => {
            ctx.text_file(src, 3)?.map(first_word_key).sort_by_key(true, 4).values().save_as_text_file(out)?
        }
        ("group", [src, out]) => {
            ctx.text_file(src, 3)?.map(key_and_number).group_by_key(3).map(group_line).save_as_text_file(out)?
        }
        ("accumulate", [src]) => {
            let n = ctx.text_file(src, 4)?.map(measure).count()?;
            let (lines, bytes) = (ctx.accumulator_value("lines")?, ctx.accumulator_value("bytes")?);
            weft::info!("count={n} lines={lines} bytes={bytes}");
        }
        ("broadcast", [src, out, word]) => {
            let word = word.to_string();
            ctx.text_file(src, 3)?.filter(contains.with(&word)).save_as_text_file(out)?
        }
        ("cache", [src]) => {
            let words = ctx.text_file(src, 4)?.flat_map(split_words).cache();
            let (first, again) = (words.count()?, words.count()?);
            let distinct = words.distinct(2).count()?;
            weft::info!("words={first} again={again} distinct={distinct}");
        }
        ("fail", [src]) => drop(ctx.text_file(src, 2)?.map(reject_bad).count()?),
        ("panic", [src]) => drop(ctx.text_file(src, 2)?.map(divide).count()?),
        ("spin", [src]) => drop(ctx.text_file(src, 2)?.map(spin).count()?),
        ("grow", [src]) => drop(ctx.text_file(src, 2)?.map(grow).count()?),
        ("recurse", [src]) => drop(ctx.text_file(src, 2)?.map(recurse).count()?),
        ("giant", [src]) => drop(ctx.text_file(src, 2)?.flat_map(huge_output).count()?),
        (other, _) => return Err(weft::Error::msg(format!("no case {other:?}, or the wrong number of URIs"))),
    }
    Ok(())
}
