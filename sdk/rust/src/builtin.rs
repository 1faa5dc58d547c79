//! Built-in steps: the type-generic narrow operations (`values()`, `keys()`,
//! `map_values`, `key_by`, ...) that no user function can express once per
//! type, since user functions are exported by name.
//!
//! A built-in step is a `map-batch` step whose function name starts with
//! `weft:` (no Rust function can have that name) and spells the operation and
//! its arguments:
//!
//! | name | input | output |
//! |---|---|---|
//! | `weft:values` | pairs | the values, untouched |
//! | `weft:keys:<schema>` | pairs | the keys, transcoded to records |
//! | `weft:ones` | pairs | each value replaced by `1i64` |
//! | `weft:unit-key` | records | `((), record)` |
//! | `weft:key-self:<schema>` | records | `(record as a key, record)` |
//! | `weft:count-self:<schema>` | records | `(record as a key, 1i64)` |
//! | `weft:unnest:<schema>` | pairs `(k, (a, b))` | `(a as a key, b)` |
//! | `weft:display:<schema>` | records | each record's `Display` text, a `String` |
//! | `weft:display-pairs:<key schema>:<value schema>` | pairs | `key<TAB>value` as `Display` writes them, a `String` |
//! | `weft:map-values:<f>` | pairs | `(k, f(v))` for the `#[weft::map]` function `f` |
//! | `weft:flat-map-values:<f>` | pairs | `(k, w)` for each `w` of the `#[weft::flat_map]` `f(v)` |
//! | `weft:key-by:<schema>:<f>` | records | `(f(r) as a key, r)` for the `#[weft::map]` `f` |
//!
//! `weft:partition:<f>` applies the `#[weft::map_batch]` function `f` once
//! to a task's whole partition: the step holds every batch it gets and
//! returns nothing until the host calls `flush-chain` after the last batch
//! (the host does so for chains with such a step, as for a `combine`).
//! `weft:with-zero:<f>:<hex>` (pairs: `(k, f(zero, v))` for the
//! `#[weft::reduce]` function `f` and the record bytes of `zero` in hex),
//! `weft:tag:<0|1>` (pairs: each value prefixed with its side's byte), and
//! the steps of [`groups`] (`cogroup`, outer joins, `subtract`) and of
//! [`sample`] (`sample`, `repartition`) and [`index`] (`zip_with_index`)
//! follow the same rules.
//!
//! `<schema>` is the key type's [`Schema`] text. Apart from the three that
//! call a user function, these steps only move and transcode bytes, so they
//! are language-neutral: the names are the contract, and a host that runs them
//! itself (without a guest call) needs no change in the SDKs.

mod groups;
mod index;
pub(crate) mod sample;

use crate::dispatch::{CallError, Op};
use crate::function::OpKind;
use crate::registry::{self, Entry, Registration};
use std::cell::RefCell;
use weft_codec::batch::{self, BatchWriter};
use weft_codec::schema::Schema;

/// The prefix that marks a built-in step's name.
pub(crate) const PREFIX: &str = "weft:";

/// The encoding of `1i64` (big-endian, sign bit flipped), the value
/// `weft:ones` and `weft:count-self` write.
const ONE: [u8; 8] = [0x80, 0, 0, 0, 0, 0, 0, 1];

/// Whether `function` names a built-in step.
pub(crate) fn is_builtin(function: &str) -> bool {
    function.starts_with(PREFIX)
}

/// The name of the built-in step `op` with `args` (each appended after a `:`).
pub(crate) fn name(op: &str, args: &[&str]) -> String {
    let mut name = format!("{PREFIX}{op}");
    for arg in args {
        name.push(':');
        name.push_str(arg);
    }
    name
}

/// One call of a built-in step: the operation, its arguments, the input
/// batch and the step's whole name (for errors).
struct Call<'a> {
    op: &'a str,
    args: &'a str,
    input: &'a [u8],
    function: &'a str,
}

/// Run the built-in step named `function` over `input`.
pub(crate) fn run(function: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
    let spec = function.strip_prefix(PREFIX).unwrap_or(function);
    let (op, args) = spec.split_once(':').unwrap_or((spec, ""));
    let mut out = BatchWriter::with_capacity(input.len() + input.len() / 4);
    let framing = |e| CallError::Decode(format!("the input of `{function}`: {e}"));
    let schema = || Schema::parse(args).map_err(|e| unknown(function, e));
    let pairs = || batch::pairs(input).map(|p| p.map_err(framing));
    let records = || batch::entries(input).map(|r| r.map_err(framing));
    match op {
        "values" => {
            for pair in pairs() {
                out.push(pair?.1);
            }
        }
        "keys" => {
            let schema = schema()?;
            for pair in pairs() {
                let k = pair?.0;
                push_transcoded(&mut out, |o| schema.key_to_record(k, o), function)?;
            }
        }
        "ones" => {
            for pair in pairs() {
                out.push(pair?.0);
                out.push(&ONE);
            }
        }
        "unit-key" => {
            for record in records() {
                out.push(&[]);
                out.push(record?);
            }
        }
        "key-self" | "count-self" => {
            let schema = schema()?;
            for record in records() {
                let record = record?;
                push_transcoded(&mut out, |o| schema.record_to_key(record, o), function)?;
                out.push(if op == "key-self" { record } else { &ONE });
            }
        }
        "unnest" => {
            // (k, (a, b)) to (a as a key, b): a join's values made pairs.
            let schema = schema()?;
            for pair in pairs() {
                let mut parts = batch::entries(pair?.1);
                let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(CallError::Decode(format!("`{function}`: a value that is not a pair")));
                };
                let (a, b) = (a.map_err(framing)?, b.map_err(framing)?);
                push_transcoded(&mut out, |o| schema.record_to_key(a, o), function)?;
                out.push(b);
            }
        }
        "display" => {
            let schema = schema()?;
            for record in records() {
                let record = record?;
                push_transcoded(&mut out, |o| schema.display(record, o), function)?;
            }
        }
        "display-pairs" => {
            let (k, v) = args.split_once(':').unwrap_or((args, ""));
            let parse = |text| Schema::parse(text).map_err(|e| unknown(function, e));
            let (k, v) = (parse(k)?, parse(v)?);
            let mut key = Vec::new();
            for pair in pairs() {
                let (kb, vb) = pair?;
                push_transcoded(
                    &mut out,
                    |o| {
                        key.clear();
                        k.key_to_record(kb, &mut key)?;
                        k.display(&key, o)?;
                        o.push(b'\t');
                        v.display(vb, o)
                    },
                    function,
                )?;
            }
        }
        "map-values" => {
            let f = user(args, OpKind::Map, function)?;
            let (keys, values) = split_pairs(input).map_err(framing)?;
            let mut mapped = BatchWriter::with_capacity(values.byte_len());
            (f.apply)(&values.finish(), &mut mapped)?;
            let mapped = mapped.finish();
            for (k, w) in keys.into_iter().zip(batch::entries(&mapped)) {
                out.push(k);
                out.push(w.map_err(framing)?);
            }
        }
        "flat-map-values" => {
            let f = user(args, OpKind::FlatMap, function)?;
            let mut one = BatchWriter::new();
            let mut outputs = BatchWriter::new();
            for pair in batch::pairs(input) {
                let (k, v) = pair.map_err(framing)?;
                one.push(v);
                (f.apply)(&one.take(), &mut outputs)?;
                for w in batch::entries(&outputs.take()) {
                    out.push(k);
                    out.push(w.map_err(framing)?);
                }
            }
        }
        "key-by" => {
            let (schema_text, f) = args.split_once(':').unwrap_or((args, ""));
            let schema = Schema::parse(schema_text).map_err(|e| unknown(function, e))?;
            let f = user(f, OpKind::Map, function)?;
            let mut keys = BatchWriter::with_capacity(input.len() / 2);
            (f.apply)(input, &mut keys)?;
            let keys = keys.finish();
            for (record, key) in batch::entries(input).zip(batch::entries(&keys)) {
                let key = key.map_err(framing)?;
                push_transcoded(&mut out, |o| schema.record_to_key(key, o), function)?;
                out.push(record.map_err(framing)?);
            }
        }
        "with-zero" => {
            // `f(zero, v)` for each pair: the reduce function folds each key's
            // run of two, the zero first.
            let (name, zero) = args.split_once(':').unwrap_or((args, ""));
            let f = user(name, OpKind::Reduce, function)?;
            let zero = hex(zero).ok_or_else(|| unknown(function, "the zero value is not hex"))?;
            let mut runs = BatchWriter::with_capacity(2 * input.len());
            for pair in pairs() {
                let (k, v) = pair?;
                runs.push(k);
                runs.push(&zero);
                runs.push(k);
                runs.push(v);
            }
            (f.apply)(&runs.finish(), &mut out)?;
        }
        "tag" => groups::tag(input, if args == "1" { 1 } else { 0 }, &mut out, function)?,
        _ => match groups::run(&Call { op, args, input, function }, &mut out)
            .or_else(|| sample::run(&Call { op, args, input, function }, &mut out))
            .or_else(|| index::run(&Call { op, args, input, function }, &mut out))
        {
            Some(done) => done?,
            None => return Err(unknown(function, "no such built-in step")),
        },
    }
    Ok(out.finish())
}

/// The keys of a pair batch, and its values as a plain batch.
fn split_pairs(input: &[u8]) -> Result<(Vec<&[u8]>, BatchWriter), weft_codec::DecodeError> {
    let mut keys = Vec::new();
    let mut values = BatchWriter::with_capacity(input.len());
    for pair in batch::pairs(input) {
        let (k, v) = pair?;
        keys.push(k);
        values.push(v);
    }
    Ok((keys, values))
}

/// Push one entry that `write` makes, failing the step if it cannot.
fn push_transcoded(
    out: &mut BatchWriter,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), weft_codec::schema::SchemaError>,
    function: &str,
) -> Result<(), CallError> {
    let mut result = Ok(());
    out.push_with(|o| result = write(o));
    result.map_err(|e| CallError::Decode(format!("`{function}`: {e}")))
}

/// Bytes as lowercase hex, and back.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits.chunks(2).map(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 16).ok()).collect()
}

/// The registered user function `name` of kind `kind`, which `function` calls.
fn user(name: &str, kind: OpKind, function: &str) -> Result<&'static Registration, CallError> {
    match registry::lookup(name) {
        Some(Entry::One(reg)) if reg.kind == kind => Ok(reg),
        _ => Err(unknown(function, format!("it needs a {} function named `{name}`", kind.attribute()))),
    }
}

fn unknown(function: &str, why: impl std::fmt::Display) -> CallError {
    CallError::UnknownFunction(format!("built-in step `{function}`: {why}"))
}

thread_local! {
    /// The input held by whole-partition steps, by step name. (Run-chain
    /// calls may reach a step through a shorter chain than flush-chain's,
    /// as built-in steps split chains; a task runs one chain, and a step
    /// named twice in it holds only once the first has released.)
    static PARTITIONS: RefCell<Vec<(String, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
}

/// Whether `function` names a whole-partition step (`weft:partition:<f>`),
/// which holds its input until the task's last batch.
pub(crate) fn holds(function: &str) -> bool {
    function.starts_with(weft_codec::WHOLE_PARTITION)
}

/// Keep `batch` for the whole-partition step `step`.
pub(crate) fn hold(step: &Op, batch: Vec<u8>) {
    PARTITIONS.with(|p| {
        let mut p = p.borrow_mut();
        match p.iter_mut().find(|(name, _)| *name == step.function) {
            Some((_, held)) => held.extend_from_slice(&batch),
            None => p.push((step.function.clone(), batch)),
        }
    });
}

/// Apply the whole-partition step `step` to everything it held (once, even
/// to an empty partition), and forget it.
pub(crate) fn release(step: &Op) -> Result<Vec<u8>, CallError> {
    let held = PARTITIONS.with(|p| {
        let mut p = p.borrow_mut();
        p.iter().position(|(name, _)| *name == step.function).map(|i| p.swap_remove(i).1)
    });
    let name = step.function.strip_prefix(weft_codec::WHOLE_PARTITION).unwrap_or_default();
    let f = user(name, OpKind::MapBatch, &step.function)?;
    let held = held.unwrap_or_default();
    let mut out = BatchWriter::with_capacity(held.len());
    (f.apply)(&held, &mut out)?;
    Ok(out.finish())
}
