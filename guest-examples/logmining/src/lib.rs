//! Log mining, as in the Spark talk: load the error messages of a log once,
//! then search them for several patterns.
//!
//! `weft run logmining.wasm -- <logs-uri> <pattern>…` keeps the lines that
//! start with `ERROR`, takes their message (the third tab-separated field),
//! caches the messages, and counts those containing each pattern. It logs
//! `errors: N` and then `<pattern>: N` for each pattern.
//!
//! One `contains` filter serves every pattern: the pattern is its bound
//! parameter (`messages.filter(contains.with(pattern))`), not a closure.

use weft::prelude::*;

/// Whether the line is an error.
#[weft::filter]
fn is_error(line: &str) -> bool {
    line.starts_with("ERROR")
}

/// The message: the third tab-separated field (a line with fewer has none).
#[weft::flat_map]
fn message(line: &str) -> Option<String> {
    line.split('\t').nth(2).map(str::to_string)
}

/// Whether the message contains the pattern.
#[weft::filter]
fn contains(text: &str, pattern: &String) -> bool {
    text.contains(pattern.as_str())
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [logs, patterns @ ..] = args.as_slice() else {
        return Err(weft::Error::msg("usage: logmining <logs-uri> <pattern>..."));
    };
    let messages = ctx.text_file(logs, 4)?.filter(is_error).flat_map(message).cache();
    weft::info!("errors: {}", messages.count()?);
    for pattern in patterns {
        weft::info!("{pattern}: {}", messages.filter(contains.with(pattern)).count()?);
    }
    Ok(())
}
