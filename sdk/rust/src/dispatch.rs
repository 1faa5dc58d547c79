//! The dispatcher: `run-chain` without the WebAssembly around it.
//!
//! The host runs a stage's narrow operations as one *chain* per batch. Each step
//! reads the previous step's output batch and writes a new one:
//!
//! - **map**, **flat-map**, **map-batch**: decode each record with the input
//!   [`Layout`], call the function, encode its results straight into the output
//!   batch ([`BatchWriter::push_with`]), so no per-record buffer is allocated.
//! - **filter**: decode, ask the function, and copy the record's original entries
//!   when it says yes (no re-encoding).
//! - **reduce**: the input is pairs grouped by key bytes, equal keys adjacent
//!   (the host groups them; it need not sort). Each run
//!   of equal key bytes is folded with the function into one pair whose key bytes
//!   are the run's, unchanged. A run of one value is copied without re-encoding.
//!
//! A step may name a **bound parameter** (`Op::param`, a broadcast value of
//! the job): it is fetched and decoded once per instance when the step is
//! resolved, and every function value of that step is made with it (see
//! [`param`]); a value that does not decode fails the chain
//! naming the function and the type.
//!
//! Every step is resolved before any runs, so an unknown name fails fast. This
//! module is plain Rust: the wasm export in `bindings.rs` only converts types,
//! and native tests call [`run_chain`] directly.

use crate::builtin;
use crate::function::{
    ApplyError, FilterFn, FlatMapFn, Function, MapBatchFn, MapFn, OpKind, ReduceFn, Transform,
};
use crate::fuse::{self, Fuse, Pipeline};
use crate::layout::Layout;
use crate::param;
use crate::record::{Record, RecordError};
use crate::registry::{self, Entry};
use rustc_hash::FxBuildHasher;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use weft_codec::batch::{self, BatchWriter};

/// One step of a chain (mirrors the WIT `op`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// How the function is applied.
    pub kind: OpKind,
    /// The registered function's name.
    pub function: String,
    /// The broadcast value bound to the function as its parameter, if any.
    pub param: Option<u64>,
}

impl Op {
    /// A step applying `function` as `kind`, with no parameter.
    pub fn new(kind: OpKind, function: impl Into<String>) -> Self {
        Op { kind, function: function.into(), param: None }
    }

    /// The step that applies user function `F` as what it is (see
    /// [`testing::op`](crate::testing::op) for one with a bound parameter).
    pub fn of<F: Function>(_f: F) -> Self {
        Op::new(F::KIND, F::NAME)
    }
}

/// Why a chain failed (mirrors the WIT `call-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No function of that name and kind is registered.
    #[error("unknown function: {0}")]
    UnknownFunction(String),
    /// The input batch did not decode as the function's record type.
    #[error("decode error: {0}")]
    Decode(String),
    /// The user function returned an error.
    #[error("user function failed: {0}")]
    User(String),
}

/// Names of the user functions this program registers, sorted.
pub fn functions() -> Vec<String> {
    registry::function_names()
}

/// Run `chain` over `input` and return the last step's output (the input itself
/// for an empty chain).
///
/// Consecutive map, filter and flat-map steps whose record types line up run
/// fused, record by record (see the crate docs, "Performance"); the others run
/// a batch at a time.
///
/// A chain that is one such pipeline followed by a `combine` keeps folding
/// across calls: it returns nothing until it holds about
/// [`HELD_COMBINE_BYTES`], then everything it holds; [`flush_chain`] returns
/// the rest after the last batch.
pub fn run_chain(chain: &[Op], input: Vec<u8>) -> Result<Vec<u8>, CallError> {
    if let Some(at) = chain.iter().position(|op| builtin::is_builtin(&op.function)) {
        // Built-in steps run a batch at a time between the user functions' parts.
        let head = if at == 0 { input } else { run_chain(&chain[..at], input)? };
        if builtin::holds(&chain[at].function) {
            // A whole-partition step keeps its input until `flush_chain`.
            builtin::hold(&chain[at], head);
            return Ok(Vec::new());
        }
        let out = builtin::run(&chain[at].function, &head)?;
        return if at + 1 == chain.len() { Ok(out) } else { run_chain(&chain[at + 1..], out) };
    }
    let steps = chain
        .iter()
        .map(|op| {
            let reg = resolve(op)?;
            Ok((op.kind, reg, param::resolve(reg, op.param)?))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(held) = run_held(chain, &steps, &input) {
        return held;
    }
    let mut batch = input;
    let mut rest = steps.as_slice();
    while let Some(&(kind, step, binding)) = rest.first() {
        let capacity = batch.len() + batch.len() / 4;
        let fused = pipeline_at(rest);
        // A combine right behind a pipeline folds its pairs as they come:
        // they are never encoded one by one.
        let combine = match rest.get(fused.len()) {
            Some(&(OpKind::Combine, reg, _)) if !fused.is_empty() => reg.combine,
            _ => None,
        };
        // Fused steps mark which of them runs record by record; put back
        // whatever ran before when the pipeline is done.
        let _current = CurrentFunction::enter(step.name);
        if let Some(combine) = combine
            && let Some(pipeline) = fuse::combining(&fused, combine)
        {
            let mut pipeline = pipeline?;
            pipeline.feed(&batch)?;
            batch = pipeline.finish()?;
            rest = &rest[fused.len() + 1..];
            continue;
        }
        if fused.len() > 1 {
            batch = fuse::run(&fused, &batch, capacity)?;
            rest = &rest[fused.len()..];
            continue;
        }
        let apply = match (kind, step.combine) {
            (OpKind::Combine, Some(combine)) => combine.apply,
            _ => step.apply,
        };
        let mut out = BatchWriter::with_capacity(capacity);
        param::scope(binding, || apply(&batch, &mut out))?;
        batch = out.finish();
        rest = &rest[1..];
    }
    Ok(batch)
}

/// About how many bytes of folded pairs a `combine` chain holds between calls
/// before [`run_chain`] hands them back.
pub const HELD_COMBINE_BYTES: usize = 8 << 20;

thread_local! {
    /// The folds of `combine` chains, kept between calls, by chain.
    static HELD: RefCell<Vec<(Vec<Op>, Pipeline)>> = const { RefCell::new(Vec::new()) };
}

/// A resolved step: how it applies which function, with what parameter.
type Resolved = (OpKind, &'static registry::Registration, param::Binding);

/// The fusable steps at the head of `steps`: map, filter and flat-map steps
/// each feeding the next (empty when the first cannot fuse).
fn pipeline_at(steps: &[Resolved]) -> Vec<Fuse> {
    let mut run: Vec<Fuse> = Vec::new();
    for &(kind, reg, binding) in steps {
        match reg.fuse {
            Some(f) if kind != OpKind::Combine && run.last().is_none_or(|last| last.feeds(&f)) => {
                run.push(f.bound(binding))
            }
            _ => break,
        }
    }
    run
}

/// The folds held for `chain`, taken out of the table.
fn take_held(chain: &[Op]) -> Option<Pipeline> {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        h.iter().position(|(ops, _)| ops == chain).map(|i| h.swap_remove(i).1)
    })
}

/// Run a chain that is one pipeline and a `combine`, keeping its folds;
/// `None` for any other chain.
fn run_held(chain: &[Op], steps: &[Resolved], input: &[u8]) -> Option<Result<Vec<u8>, CallError>> {
    let (&(OpKind::Combine, reduce, _), head) = steps.split_last()? else { return None };
    let fused = pipeline_at(head);
    if fused.is_empty() || fused.len() != head.len() {
        return None;
    }
    let mut pipeline = match take_held(chain) {
        Some(p) => p,
        None => match fuse::combining(&fused, reduce.combine?)? {
            Ok(p) => p,
            Err(e) => return Some(Err(e)),
        },
    };
    let _current = CurrentFunction::enter(head[0].1.name);
    // On an error the folds are dropped: the attempt fails anyway.
    if let Err(e) = pipeline.feed(input) {
        return Some(Err(e));
    }
    if pipeline.held() >= HELD_COMBINE_BYTES {
        return Some(pipeline.finish());
    }
    HELD.with(|h| h.borrow_mut().push((chain.to_vec(), pipeline)));
    Some(Ok(Vec::new()))
}

/// What a `combine` chain still holds (see [`run_chain`]); empty for any
/// other chain, or when it holds nothing.
pub fn flush_chain(chain: &[Op]) -> Result<Vec<u8>, CallError> {
    // A whole-partition step applies its function to all it held, and the
    // rest of the chain runs over the result (and is flushed in turn).
    if let Some(at) = chain.iter().position(|op| builtin::holds(&op.function)) {
        let out = builtin::release(&chain[at])?;
        let rest = &chain[at + 1..];
        if rest.is_empty() {
            return Ok(out);
        }
        let mut out = run_chain(rest, out)?;
        // Batches are entries back to back: two in a row are one batch.
        out.extend(flush_chain(rest)?);
        return Ok(out);
    }
    // A combine is always last: its folds are held for the part after the last built-in step.
    if let Some(at) = chain.iter().rposition(|op| builtin::is_builtin(&op.function)) {
        return flush_chain(&chain[at + 1..]);
    }
    take_held(chain).map_or(Ok(Vec::new()), Pipeline::finish)
}

fn resolve(op: &Op) -> Result<&'static registry::Registration, CallError> {
    // A combine applies a reduce function.
    let wanted = if op.kind == OpKind::Combine { OpKind::Reduce } else { op.kind };
    match registry::lookup(&op.function) {
        Some(Entry::One(reg)) if reg.kind == wanted => Ok(reg),
        Some(Entry::One(reg)) => Err(CallError::UnknownFunction(format!(
            "`{}` is a {} function ({} in {}), not a {}",
            op.function,
            reg.kind,
            reg.kind.attribute(),
            reg.module,
            op.kind
        ))),
        Some(Entry::Ambiguous(modules)) => Err(CallError::UnknownFunction(format!(
            "`{}` is defined more than once (in {}); give one another name with #[weft::{}(name = \"...\")]",
            op.function,
            modules.join(", "),
            op.kind.to_string().replace('-', "_"),
        ))),
        None => Err(CallError::UnknownFunction(format!(
            "no {} function named `{}` in this component",
            op.kind, op.function
        ))),
    }
}

thread_local! {
    static CURRENT: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Marks which user function is running, for the panic message.
pub(crate) struct CurrentFunction(Option<&'static str>);

impl CurrentFunction {
    pub(crate) fn enter(name: &'static str) -> Self {
        CurrentFunction(CURRENT.with(|c| c.replace(Some(name))))
    }
}

/// Mark `name` as running, without restoring what ran before: the per-record
/// form for fused pipelines, which set it before every call into user code
/// (one write, where a guard costs a read and two writes).
#[inline]
pub(crate) fn running(name: &'static str) {
    CURRENT.with(|c| c.set(Some(name)));
}

impl Drop for CurrentFunction {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// The user function running on this thread, if any.
pub(crate) fn current_function() -> Option<&'static str> {
    CURRENT.with(Cell::get)
}

pub(crate) fn decode_error<F: Function>(index: usize, err: impl std::fmt::Display) -> CallError {
    CallError::Decode(format!("record {index} of the input to {} `{}`: {err}", F::KIND, F::NAME))
}

pub(crate) fn framing_error<F: Function>(index: usize, err: weft_codec::DecodeError) -> CallError {
    decode_error::<F>(index, RecordError::Codec { type_name: "batch", source: err })
}

pub(crate) fn user_error<F: Function>(err: crate::function::UserError) -> CallError {
    CallError::User(format!("{}: {}", F::NAME, err.into_message()))
}

/// Read the records of `input` one at a time, undecoded.
#[inline]
fn for_each_raw<F: Transform>(
    input: &[u8],
    mut each: impl FnMut(<F::Input as Layout>::Raw<'_>) -> Result<(), ApplyError>,
) -> Result<(), CallError> {
    for (index, raw) in F::Input::reader(input).enumerate() {
        let raw = raw.map_err(|e| framing_error::<F>(index, e))?;
        each(raw).map_err(|e| match e {
            ApplyError::Decode(e) => decode_error::<F>(index, e),
            ApplyError::User(e) => user_error::<F>(e),
        })?;
    }
    Ok(())
}

pub(crate) fn apply_map<F: MapFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    for_each_raw::<F>(input, |raw| {
        F::Output::encode(&f.apply_raw(raw)?, out);
        Ok(())
    })
}

pub(crate) fn apply_filter<F: FilterFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    for_each_raw::<F>(input, |raw| {
        if f.apply_raw(raw)? {
            F::Input::copy(raw, out);
        }
        Ok(())
    })
}

pub(crate) fn apply_flat_map<F: FlatMapFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    for_each_raw::<F>(input, |raw| f.apply_raw(raw, &mut |item| F::Output::encode(&item, out)))
}

pub(crate) fn apply_map_batch<F: MapBatchFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    let mut records = Vec::new();
    for_each_raw::<F>(input, |raw| {
        records.push(F::Input::decode(raw).map_err(ApplyError::Decode)?);
        Ok(())
    })?;
    f.apply(records, &mut |item| F::Output::encode(&item, out)).map_err(user_error::<F>)
}

/// One run of equal keys, folded so far.
struct Run<'a, V> {
    key: &'a [u8],
    /// The run's only value's original bytes, while it has only one.
    single: Option<&'a [u8]>,
    acc: V,
}

pub(crate) fn apply_reduce<F: ReduceFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    let mut run: Option<Run<'_, F::Value>> = None;
    for (index, pair) in batch::pairs(input).enumerate() {
        let (key, bytes) = pair.map_err(|e| framing_error::<F>(index, e))?;
        let value = F::Value::decode(bytes).map_err(|e| decode_error::<F>(index, e))?;
        run = Some(match run.take() {
            Some(r) if r.key == key => {
                let acc = f.apply(r.acc, value).map_err(user_error::<F>)?;
                Run { key, single: None, acc }
            }
            Some(r) => {
                emit_run(r, out);
                Run { key, single: Some(bytes), acc: value }
            }
            None => Run { key, single: Some(bytes), acc: value },
        });
    }
    if let Some(r) = run {
        emit_run(r, out);
    }
    Ok(())
}

/// The values of each key of `input` (pairs in any order) folded into one
/// pair, keys in order of first appearance with their bytes unchanged; a key
/// seen once keeps its value's bytes too.
pub(crate) fn apply_combine<F: ReduceFn>(input: &[u8], out: &mut BatchWriter) -> Result<(), CallError> {
    let f = F::default();
    let mut slots: HashMap<&[u8], usize, FxBuildHasher> = HashMap::default();
    let mut runs: Vec<Run<'_, Option<F::Value>>> = Vec::new();
    for (index, pair) in batch::pairs(input).enumerate() {
        let (key, bytes) = pair.map_err(|e| framing_error::<F>(index, e))?;
        let value = F::Value::decode(bytes).map_err(|e| decode_error::<F>(index, e))?;
        match slots.get(key) {
            Some(&i) => {
                let run = &mut runs[i];
                let acc =
                    run.acc.take().ok_or_else(|| CallError::User(format!("{}: folded twice", F::NAME)))?;
                run.acc = Some(f.apply(acc, value).map_err(user_error::<F>)?);
                run.single = None;
            }
            None => {
                slots.insert(key, runs.len());
                runs.push(Run { key, single: Some(bytes), acc: Some(value) });
            }
        }
    }
    for run in runs {
        out.push(run.key);
        match (run.single, run.acc) {
            (Some(bytes), _) => out.push(bytes),
            (None, Some(acc)) => out.push_with(|o| acc.encode(o)),
            (None, None) => {}
        }
    }
    Ok(())
}

/// Write a run's pair: its key bytes unchanged, then the folded value (copied
/// when the run had one value, so a lone pair passes through byte for byte).
fn emit_run<V: Record>(run: Run<'_, V>, out: &mut BatchWriter) {
    out.push(run.key);
    match run.single {
        Some(bytes) => out.push(bytes),
        None => out.push_with(|o| run.acc.encode(o)),
    }
}
