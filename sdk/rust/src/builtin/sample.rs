//! Built-in steps that draw numbers: `sample` and `repartition`.
//!
//! | step | input | output |
//! |---|---|---|
//! | `weft:sample:<fraction>:<seed>:<pairs>` | records (`<pairs>` 1: pairs) | each record kept with probability `fraction` |
//! | `weft:scatter` | records | `(n, record)` with `n` a `u64` that differs for every record of the task |
//!
//! A task's draws come from one SplitMix64 stream seeded with `seed` and the
//! task's partition index, continued from batch to batch, so a sample is the
//! same on every run of a job over the same input and partitions (Spark's
//! `sample` is deterministic in the same way), and a retried task draws the
//! same records.

use super::{Call, unknown};
use crate::dispatch::CallError;
use std::cell::RefCell;
use std::collections::HashMap;
use weft_codec::batch::{self, BatchWriter};
use weft_codec::key::EncodeKey;

thread_local! {
    /// Each step's stream, by step name, kept across the task's batches.
    static STREAMS: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

/// SplitMix64: the next number of the stream at `state`.
pub(crate) fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Run `draw` with the stream of step `function` (seeded with `seed` and the
/// task's partition on first use).
fn with_stream<T>(function: &str, seed: u64, draw: impl FnOnce(&mut u64) -> T) -> T {
    STREAMS.with(|s| {
        let mut s = s.borrow_mut();
        let state = s.entry(function.to_string()).or_insert_with(|| {
            let mut start = seed ^ (u64::from(crate::task_info().partition) << 32);
            next(&mut start)
        });
        draw(state)
    })
}

/// Run the drawing step `op` over `input`; `None` when `op` is not one.
pub(super) fn run(call: &Call<'_>, out: &mut BatchWriter) -> Option<Result<(), CallError>> {
    let &Call { op, args, input, function } = call;
    let framing = |e| CallError::Decode(format!("the input of `{function}`: {e}"));
    match op {
        "sample" => {
            let mut parts = args.split(':');
            let fraction = parts.next().and_then(|f| f.parse::<f64>().ok());
            let seed = parts.next().and_then(|s| s.parse::<u64>().ok());
            let pairs = parts.next().map(|p| p == "1");
            let (Some(fraction), Some(seed), Some(pairs)) = (fraction, seed, pairs) else {
                return Some(Err(unknown(function, "needs <fraction>:<seed>:<0|1>")));
            };
            // A record is kept when its draw falls below fraction × 2^64.
            let bound = (fraction.clamp(0.0, 1.0) * 2f64.powi(64)) as u128;
            let per_record = if pairs { 2 } else { 1 };
            let entries: Result<Vec<&[u8]>, _> = batch::entries(input).collect();
            let entries = match entries {
                Ok(e) => e,
                Err(e) => return Some(Err(framing(e))),
            };
            with_stream(function, seed, |state| {
                for record in entries.chunks(per_record) {
                    if u128::from(next(state)) < bound {
                        record.iter().for_each(|e| out.push(e));
                    }
                }
            });
            Some(Ok(()))
        }
        "scatter" => Some(with_stream(function, 0, |state| {
            for record in batch::entries(input) {
                out.push(&next(state).to_key_bytes());
                out.push(record.map_err(framing)?);
            }
            Ok(())
        })),
        _ => None,
    }
}
