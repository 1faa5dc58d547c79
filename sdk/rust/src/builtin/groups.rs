//! Built-in steps over two tagged sides grouped by key: `cogroup`, the outer
//! joins and `subtract`.
//!
//! Both sides become one pair dataset: `weft:tag:0` (left) and `weft:tag:1`
//! (right) prefix each value with its side's byte, a union joins them, and
//! `group_by_key` gathers each key's tagged values into one list. These steps
//! then split a list back into the two sides and write the SDK's encodings:
//!
//! | step | each key's output |
//! |---|---|
//! | `weft:cogroup` | `(k, (Vec<V>, Vec<W>))` |
//! | `weft:left-outer` | `(k, (v, Some(w)))` per pair, `(k, (v, None))` for a `v` without `w` |
//! | `weft:right-outer` | `(k, (Some(v), w))`, `(k, (None, w))` |
//! | `weft:full-outer` | `(k, (Some(v), Some(w)))`, and `None` on whichever side is missing |
//! | `weft:anti:<schema>` | the key as a record, once per left value, if the key has no right value |

use super::{Call, push_transcoded, unknown};
use crate::dispatch::CallError;
use weft_codec::batch::{self, BatchWriter};
use weft_codec::schema::Schema;

/// Prefix every value of a pair batch with `tag`.
pub(super) fn tag(input: &[u8], tag: u8, out: &mut BatchWriter, function: &str) -> Result<(), CallError> {
    for pair in batch::pairs(input) {
        let (k, v) = pair.map_err(|e| framing(function, e))?;
        out.push(k);
        out.push_with(|o| {
            o.push(tag);
            o.extend_from_slice(v);
        });
    }
    Ok(())
}

/// Run the grouped step `op` over `input`; `None` when `op` is not one.
pub(super) fn run(call: &Call<'_>, out: &mut BatchWriter) -> Option<Result<(), CallError>> {
    let &Call { op, args, input, function } = call;
    let schema = match op {
        "anti" => match Schema::parse(args) {
            Ok(s) => Some(s),
            Err(e) => return Some(Err(unknown(function, e))),
        },
        "cogroup" | "left-outer" | "right-outer" | "full-outer" => None,
        _ => return None,
    };
    Some(each_group(input, function, |k, left, right| {
        let option = |v: Option<&[u8]>| v.map_or_else(Vec::new, |v| framed(&[v]));
        let pair = |out: &mut BatchWriter, a: &[u8], b: &[u8]| {
            out.push(k);
            out.push(&framed(&[a, b]));
        };
        match op {
            "cogroup" => pair(out, &framed(&left), &framed(&right)),
            "left-outer" => each_combination(&left, &right, false, true, |v, w| {
                pair(out, v.unwrap_or_default(), &option(w));
            }),
            "right-outer" => each_combination(&left, &right, true, false, |v, w| {
                pair(out, &option(v), w.unwrap_or_default());
            }),
            "full-outer" => each_combination(&left, &right, true, true, |v, w| {
                pair(out, &option(v), &option(w));
            }),
            _ => {
                if let Some(schema) = &schema
                    && right.is_empty()
                {
                    for _ in &left {
                        push_transcoded(out, |o| schema.key_to_record(k, o), function)?;
                    }
                }
            }
        }
        Ok(())
    }))
}

/// Call `f` with each key of a grouped, tagged pair batch and its left and
/// right values.
fn each_group(
    input: &[u8],
    function: &str,
    mut f: impl FnMut(&[u8], Vec<&[u8]>, Vec<&[u8]>) -> Result<(), CallError>,
) -> Result<(), CallError> {
    for pair in batch::pairs(input) {
        let (k, group) = pair.map_err(|e| framing(function, e))?;
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for tagged in batch::entries(group) {
            match tagged.map_err(|e| framing(function, e))?.split_first() {
                Some((0, v)) => left.push(v),
                Some((1, v)) => right.push(v),
                _ => return Err(CallError::Decode(format!("`{function}`: a value without its side's tag"))),
            }
        }
        f(k, left, right)?;
    }
    Ok(())
}

/// Every `(v, w)` combination; with `keep_right` (`keep_left`), a side
/// without values pairs the other's values with `None`.
fn each_combination<'a>(
    left: &[&'a [u8]],
    right: &[&'a [u8]],
    keep_right: bool,
    keep_left: bool,
    mut f: impl FnMut(Option<&'a [u8]>, Option<&'a [u8]>),
) {
    match (left.is_empty(), right.is_empty()) {
        (true, _) if keep_right => right.iter().for_each(|w| f(None, Some(w))),
        (_, true) if keep_left => left.iter().for_each(|v| f(Some(v), None)),
        _ => {
            for v in left {
                for w in right {
                    f(Some(v), Some(w));
                }
            }
        }
    }
}

/// Entries framed one after another (a tuple, a `Vec` or a `Some`).
fn framed(entries: &[&[u8]]) -> Vec<u8> {
    let mut w = BatchWriter::with_capacity(entries.iter().map(|e| e.len() + batch::PREFIX).sum());
    for e in entries {
        w.push(e);
    }
    w.finish()
}

fn framing(function: &str, e: weft_codec::DecodeError) -> CallError {
    CallError::Decode(format!("the input of `{function}`: {e}"))
}
