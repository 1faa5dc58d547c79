//! Built-in steps that number records: `zip_with_index` in two passes.
//!
//! | step | input | output |
//! |---|---|---|
//! | `weft:batch-count` | records | one pair per batch: `(partition: u32, records: i64)` |
//! | `weft:zip:<p>=<offset>,...` | records | `(offset of the task's partition + n: u64, record)`, `n` counting the task's records from 0 |
//!
//! The first pass (`batch-count`, summed by key) gives each partition's
//! size; the driver turns the sizes into offsets, which the second pass
//! carries in its name. A partition missing from the list (an empty one)
//! has no records to number.

use super::{Call, unknown};
use crate::dispatch::CallError;
use std::cell::RefCell;
use std::collections::HashMap;
use weft_codec::batch::{self, BatchWriter};
use weft_codec::key::EncodeKey;

thread_local! {
    /// Records numbered so far by each `zip` step, by step name.
    static NUMBERED: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

/// Run the numbering step of `call`; `None` when it is not one.
pub(super) fn run(call: &Call<'_>, out: &mut BatchWriter) -> Option<Result<(), CallError>> {
    let &Call { op, args, input, function } = call;
    let partition = crate::task_info().partition;
    match op {
        "batch-count" => Some(match batch::count(input) {
            Ok(0) => Ok(()),
            Ok(n) => {
                out.push(&partition.to_key_bytes());
                out.push(&(n as i64).to_key_bytes());
                Ok(())
            }
            Err(e) => Err(CallError::Decode(format!("the input of `{function}`: {e}"))),
        }),
        "zip" => {
            let offset = args.split(',').find_map(|entry| {
                let (p, offset) = entry.split_once('=')?;
                (p.parse::<u32>().ok()? == partition).then(|| offset.parse::<u64>().ok())?
            });
            let Some(offset) = offset else {
                return Some(match batch::count(input) {
                    Ok(0) => Ok(()),
                    _ => Err(unknown(function, format!("no offset for partition {partition}"))),
                });
            };
            Some(NUMBERED.with(|n| {
                let mut n = n.borrow_mut();
                let next = n.entry(function.to_string()).or_insert(0);
                for record in batch::entries(input) {
                    let record =
                        record.map_err(|e| CallError::Decode(format!("the input of `{function}`: {e}")))?;
                    out.push(&(offset + *next).to_key_bytes());
                    out.push(record);
                    *next += 1;
                }
                Ok(())
            }))
        }
        _ => None,
    }
}
