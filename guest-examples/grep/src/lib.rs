//! grep: the lines of the input that contain a pattern.
//!
//! `weft run grep.wasm -- <pattern> <input-uri> <output-uri>` writes the
//! matching lines under the output URI and logs how many there are, out of how
//! many lines scanned.
//!
//! User functions capture nothing from the driver, so the pattern reaches the
//! filter as its bound parameter (`matches.with(pattern)`). The lines scanned
//! are counted with an accumulator, which the master sums over the tasks that
//! finished.

use weft::prelude::*;

/// The accumulator counting the lines `matches` looked at.
const SCANNED: &str = "lines scanned";

/// Whether the line contains the pattern.
#[weft::filter]
fn matches(line: &str, pattern: &String) -> bool {
    weft::accumulator_add(SCANNED, 1);
    line.contains(pattern.as_str())
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [pattern, input, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: grep <pattern> <input-uri> <output-uri>"));
    };
    let lines = ctx.text_file(input, 4)?.filter(matches.with(pattern)).cache();
    lines.save_as_text_file(output)?;
    // Read before the next action: as in Spark, an accumulator added to in a
    // transformation counts again whenever a later action recomputes it.
    let scanned = ctx.accumulator_value(SCANNED)?;
    weft::info!("{} of {scanned} lines contain {pattern:?}", lines.count()?);
    Ok(())
}
