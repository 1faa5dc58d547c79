//! Persisted datasets as a job sees them: parse once, act many times.
//!
//! `cache.wasm -- LEVEL INPUT ACTIONS [UNPERSIST_AFTER [OUTPUT]]`:
//!
//! 1. parses every line of `INPUT` (4 partitions) into `(first word, 1)`,
//!    adding 1 to the `parsed` accumulator per line;
//! 2. persists the pairs at `LEVEL` (`memory`, `memory-and-disk`, `disk` or
//!    `none`);
//! 3. runs `ACTIONS` actions, each summing the pairs by key (a shuffle that
//!    reads the persisted partitions), and prints after each
//!    `action I: keys K total T parsed P`;
//! 4. with `UNPERSIST_AFTER`, unpersists the pairs after that many actions
//!    (0: never);
//! 5. with `OUTPUT`, writes the sums by key there as text (`word<TAB>count`,
//!    4 partitions), from the persisted pairs.
//!
//! A persisted dataset is parsed once, so `parsed` stays at the number of
//! lines; unpersisted, each action parses again. `cli/tests/all/cache.rs`
//! runs it.

use weft::prelude::*;

/// A line's first word (empty for a blank line) and a count of one.
#[weft::map]
fn parse(line: &str) -> (String, i64) {
    weft::accumulator_add("parsed", 1);
    (line.split_whitespace().next().unwrap_or_default().to_string(), 1)
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let usage = "usage: cache <memory|memory-and-disk|disk|none> <input-uri> <actions> [unpersist-after [output-uri]]";
    let (level, input, actions) = match args.as_slice() {
        [level, input, actions, ..] => (level, input, actions),
        _ => return Err(weft::Error::msg(usage)),
    };
    let actions: u32 = actions.parse().map_err(|_| weft::Error::msg(usage))?;
    let unpersist_after: Option<u32> = args.get(3).and_then(|a| a.parse().ok());
    let pairs = ctx.text_file(input, 4)?.map(parse);
    let pairs = match level.as_str() {
        "memory" => pairs.cache(),
        "memory-and-disk" => pairs.persist(StorageLevel::MemoryAndDisk),
        "disk" => pairs.persist(StorageLevel::DiskOnly),
        "none" => pairs,
        _ => return Err(weft::Error::msg(usage)),
    };
    for i in 1..=actions {
        let counts = pairs.sum_by_key(2).collect()?;
        let total: i64 = counts.iter().map(|(_, n)| n).sum();
        let parsed = ctx.accumulator_value("parsed")?;
        println!("action {i}: keys {} total {total} parsed {parsed}", counts.len());
        if unpersist_after == Some(i) {
            pairs.unpersist();
        }
    }
    if let Some(output) = args.get(4) {
        pairs.sum_by_key(4).save_as_text_file(output)?;
    }
    Ok(())
}
