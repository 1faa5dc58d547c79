//! Text input as the host reads it, saved for the host's tests to compare.
//!
//! `lines.wasm -- MODE INPUT OUTPUT`:
//!
//! | mode | source | each output line |
//! |---|---|---|
//! | `text` | `ctx.text_file(INPUT, 2)` | the line as it is (the job fails on input that is not UTF-8) |
//! | `bytes` | `ctx.text_file_bytes(INPUT, 2)` | the line's bytes as lowercase hex |
//!
//! `cli/tests/all/text_input.rs` runs it.

use weft::prelude::*;

/// A line of bytes as lowercase hex (an empty line stays empty).
#[weft::map]
fn hex(line: &[u8]) -> String {
    line.iter().map(|b| format!("{b:02x}")).collect()
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [mode, input, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: lines <text|bytes> <input-uri> <output-uri>"));
    };
    match mode.as_str() {
        "text" => ctx.text_file(input, 2)?.save_as_text_file(output),
        "bytes" => ctx.text_file_bytes(input, 2)?.map(hex).save_as_text_file(output),
        other => Err(weft::Error::msg(format!("unknown mode {other:?}: use `text` or `bytes`"))),
    }
}
