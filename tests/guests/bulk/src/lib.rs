//! Driver traffic of any size: records, broadcast values and results far
//! larger than one control message, moved as blocks and checked in the driver.
//!
//! `bulk.wasm -- MODE MIB`:
//!
//! | mode | what moves |
//! |---|---|
//! | `collect` | `MIB` MiB of 1 KiB records parallelized into 8 partitions, through an identity map, collected back |
//! | `take` | the same, but `take` of the first half of the records |
//! | `broadcast` | a `MIB` MiB broadcast value, read by 8 tasks that each return its length and checksum |
//!
//! The driver checks every record (or the broadcast's length and checksum in
//! every task) against what it sent and fails the job on any difference, then
//! logs the action's duration:
//!
//! ```text
//! [info] bulk: mode=collect mib=64 bytes=67108864 action_s=0.812345
//! ```

use std::time::Instant;
use weft::prelude::*;

/// Bytes per record.
const RECORD: usize = 1024;

/// Record `i`: its number, then filler, `RECORD` bytes in all.
fn record(i: u64) -> String {
    let mut s = format!("{i:016}");
    let fill = (b'a' + (i % 26) as u8) as char;
    s.extend(std::iter::repeat_n(fill, RECORD - s.len()));
    s
}

/// A checksum the driver and the tasks compute alike.
fn checksum(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// The record as it came.
#[weft::map]
pub fn same(record: String) -> String {
    record
}

/// The broadcast value's length and checksum, as seen by this task.
#[weft::map]
pub fn probe(_task: u64, value: &String) -> String {
    format!("{}:{}", value.len(), checksum(value))
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let (mode, mib) = match args.as_slice() {
        [mode, mib] => (mode.as_str(), mib.parse::<u64>().map_err(|e| weft::Error::msg(format!("MIB: {e}")))?),
        _ => return Err(weft::Error::msg("usage: bulk.wasm -- collect|take|broadcast MIB")),
    };
    let bytes = mib << 20;
    let n = bytes / RECORD as u64;
    let started;
    match mode {
        "collect" | "take" => {
            let records = ctx.parallelize((0..n).map(record), 8)?.map(same);
            started = Instant::now();
            let want = if mode == "take" { n / 2 } else { n };
            let back = if mode == "take" { records.take(want as usize)? } else { records.collect()? };
            if back.len() as u64 != want {
                return Err(weft::Error::msg(format!("{mode} returned {} records, not {want}", back.len())));
            }
            if let Some(i) = (0..want).find(|i| back[*i as usize] != record(*i)) {
                return Err(weft::Error::msg(format!("{mode}: record {i} came back changed")));
            }
        }
        "broadcast" => {
            let value: String = (0..bytes).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let expected = format!("{}:{}", value.len(), checksum(&value));
            let big = ctx.broadcast(&value)?;
            started = Instant::now();
            let seen = ctx.parallelize(0..8u64, 8)?.map(probe.with(&big)).collect()?;
            if seen.len() != 8 || seen.iter().any(|s| *s != expected) {
                return Err(weft::Error::msg(format!("tasks saw {seen:?}, not {expected}")));
            }
        }
        other => return Err(weft::Error::msg(format!("unknown mode {other:?}: use collect, take or broadcast"))),
    }
    weft::info!("bulk: mode={mode} mib={mib} bytes={bytes} action_s={:.6}", started.elapsed().as_secs_f64());
    Ok(())
}
