//! Word count: every word of the input with its number of occurrences.
//!
//! `weft run wordcount.wasm -- <input-uri> <output-uri>` writes `word<TAB>count`
//! lines under the output URI and logs the ten most frequent words.

use weft::prelude::*;

/// The lowercased words of a line (borrowing the line: no copy of it is
/// made). `weft::text::words` splits as `str::split_whitespace` does, a byte
/// at a time on an ASCII line. An ASCII word is lowercased byte by byte, as
/// one copy; `to_lowercase` (Unicode's rules, a char at a time) only runs on
/// the others.
#[weft::flat_map]
fn split_words(line: &str) -> impl Iterator<Item = String> + '_ {
    weft::text::words(line).map(|word| if word.is_ascii() { word.to_ascii_lowercase() } else { word.to_lowercase() })
}

/// A word, counted once.
#[weft::map]
fn one(word: String) -> (String, i64) {
    (word, 1)
}

/// Sums the counts. `sum_by_key(0)` would sum them natively in the host with
/// no user function, but is slower here: this guest combine folds the pairs
/// inside the component, so about one pair per word and task crosses the
/// sandbox boundary, where a native sum receives every `(word, 1)`.
#[weft::reduce]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// One output line.
#[weft::map]
fn format((word, n): (String, i64)) -> String {
    format!("{word}\t{n}")
}

/// Key by count, to sort by it.
#[weft::map]
fn by_count((word, n): (String, i64)) -> (i64, String) {
    (n, word)
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [input, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: wordcount <input-uri> <output-uri>"));
    };
    let counts = ctx.text_file(input, 4)?.flat_map(split_words).map(one).reduce_by_key(add, 0).cache();
    counts.map(format).save_as_text_file(output)?;
    weft::info!("{} distinct words", counts.count()?);
    // Sorted into 4 ranges of counts (sampled first), largest first.
    for (n, word) in counts.map(by_count).sort_by_key(false, 4).take(10)? {
        weft::info!("{word}: {n}");
    }
    Ok(())
}
