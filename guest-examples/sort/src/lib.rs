//! Sort: the lines of the input ordered by their first 10 bytes (TeraSort's key).
//!
//! `weft run sort.wasm -- <input-uri> <output-uri> [partitions]` writes the
//! lines, each unchanged, under the output URI in `partitions` part files
//! (default 8): reading `part-00000`, `part-00001`, … in turn gives the lines in
//! ascending key order. Lines with equal keys come in no particular order; a
//! line shorter than the key is a key of its own.
//!
//! The host range-partitions and sorts the keys as bytes (after a sample job
//! that picks the ranges); the guest only splits each line into key and rest,
//! and joins them back.

use weft::prelude::*;

/// Bytes of a line that make its key.
const KEY_BYTES: usize = 10;

/// Partitions of the output when the arguments name none.
const DEFAULT_PARTITIONS: u32 = 8;

/// A line as (its first `KEY_BYTES` bytes, the rest), cut at a character
/// boundary at or before byte `KEY_BYTES` so that both halves stay text.
#[weft::map]
fn key_line(line: &str) -> (String, String) {
    let mut cut = KEY_BYTES.min(line.len());
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    let (key, rest) = line.split_at(cut);
    (key.to_owned(), rest.to_owned())
}

/// The line again: its key and its rest.
#[weft::map]
fn join_line((mut key, rest): (String, String)) -> String {
    key.push_str(&rest);
    key
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let (input, output, partitions) = match args.as_slice() {
        [input, output] => (input, output, DEFAULT_PARTITIONS),
        [input, output, p] => match p.parse::<u32>() {
            Ok(p) if p > 0 => (input, output, p),
            _ => return Err(weft::Error::msg(format!("partitions must be a positive number, not {p:?}"))),
        },
        _ => return Err(weft::Error::msg("usage: sort <input-uri> <output-uri> [partitions]")),
    };
    let sorted = ctx.text_file(input, partitions)?.map(key_line).sort_by_key(true, partitions);
    sorted.map(join_line).save_as_text_file(output)?;
    weft::info!("sorted {input} into {partitions} partitions under {output}");
    Ok(())
}
