//! Reduce-side aggregations over merged, sorted pairs, all native.
//!
//! Each takes the merged pair batches of a reduce partition (as
//! [`MergedBatches`](super::MergedBatches) yields them, or any iterator of
//! `Result<batch, ShuffleError>`) and returns pair batches of about `target`
//! bytes. Keys are compared as raw bytes; values are built in the SDK's record
//! encoding, so a guest decodes them with its usual types:
//!
//! | function | output value per key | SDK type |
//! |---|---|---|
//! | [`sum_i64`] | the wrapping sum, 8-byte key-encoded `i64` | `i64` |
//! | [`fold`] | the values folded natively (sum of `f64`, min, max) | `i64`, `f64` |
//! | [`group_values`] | every value, each batch-framed | `Vec<V>` |
//! | [`join`] | one pair per (left, right) combination, `[left, right]` framed | `(L, R)` |
//! | [`cogroup`] | `[framed(left values), framed(right values)]` | `(Vec<L>, Vec<R>)` |
//!
//! Input must be sorted by key; a key that goes backwards is
//! [`ShuffleError::Unsorted`]. A key's pairs may span input batches.

use super::combine::Native;
use super::error::ShuffleError;
use super::merge::{BatchSource, Pair, PairSource};
use std::cmp::Ordering;
use weft_codec::batch::BatchWriter;

/// One key and all its values, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    /// The key bytes.
    pub key: Vec<u8>,
    /// The values of the key.
    pub values: Vec<Vec<u8>>,
}

/// Groups the pairs of a sorted stream of pair batches by key.
#[derive(Debug)]
pub struct KeyGroups<I, B> {
    batches: I,
    current: Option<BatchSource<B>>,
    pending: Option<Pair>,
    last_key: Option<Vec<u8>>,
}

impl<I, B> KeyGroups<I, B>
where
    I: Iterator<Item = Result<B, ShuffleError>>,
    B: AsRef<[u8]>,
{
    /// Group the pairs of `batches`.
    pub fn new(batches: impl IntoIterator<IntoIter = I>) -> Self {
        Self { batches: batches.into_iter(), current: None, pending: None, last_key: None }
    }

    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        loop {
            if let Some(src) = &mut self.current
                && let Some(p) = src.next_pair()?
            {
                return Ok(Some(p));
            }
            match self.batches.next() {
                None => return Ok(None),
                Some(batch) => self.current = Some(BatchSource::new(batch?)),
            }
        }
    }

    /// The next key and its values.
    pub fn next_group(&mut self) -> Result<Option<KeyGroup>, ShuffleError> {
        let Some((key, first)) = self.next_pair()? else { return Ok(None) };
        if self.last_key.as_ref().is_some_and(|l| *l >= key) {
            return Err(ShuffleError::Unsorted);
        }
        let mut values = vec![first];
        while let Some((k, v)) = self.next_pair()? {
            if k != key {
                self.pending = Some((k, v));
                break;
            }
            values.push(v);
        }
        self.last_key = Some(key.clone());
        Ok(Some(KeyGroup { key, values }))
    }
}

impl<I, B> Iterator for KeyGroups<I, B>
where
    I: Iterator<Item = Result<B, ShuffleError>>,
    B: AsRef<[u8]>,
{
    type Item = Result<KeyGroup, ShuffleError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_group().transpose()
    }
}

/// Call `step` (which appends one key's output and returns `false` at the end)
/// until each batch holds at least `target` bytes.
fn batched(
    target: usize,
    mut step: impl FnMut(&mut BatchWriter) -> Result<bool, ShuffleError>,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>> {
    let mut done = false;
    std::iter::from_fn(move || {
        let mut out = BatchWriter::new();
        while !done && out.byte_len() < target.max(1) {
            match step(&mut out) {
                Ok(true) => {}
                Ok(false) => done = true,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        }
        (!out.is_empty()).then(|| Ok(out.finish()))
    })
}

fn framed(values: &[Vec<u8>]) -> Vec<u8> {
    let mut w = BatchWriter::with_capacity(values.iter().map(|v| v.len() + 4).sum());
    for v in values {
        w.push(v);
    }
    w.finish()
}

/// One pair per key: the wrapping sum of its `i64` values.
pub fn sum_i64<I, B>(
    batches: impl IntoIterator<IntoIter = I>,
    target: usize,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    I: Iterator<Item = Result<B, ShuffleError>>,
    B: AsRef<[u8]>,
{
    fold(batches, target, Native::SumI64)
}

/// One pair per key: its values folded natively (the wrapping `i64` sum, or
/// a [`Fold`](weft_core::fold::Fold)).
pub fn fold<I, B>(
    batches: impl IntoIterator<IntoIter = I>,
    target: usize,
    native: Native,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    I: Iterator<Item = Result<B, ShuffleError>>,
    B: AsRef<[u8]>,
{
    let mut groups = KeyGroups::new(batches);
    batched(target, move |out| {
        let Some(g) = groups.next_group()? else { return Ok(false) };
        let mut values = g.values.iter().map(|v| native.raw(v));
        let Some(first) = values.next() else { return Ok(true) };
        let acc = values.try_fold(first?, |acc, v| Ok::<_, ShuffleError>(native.apply(acc, v?)))?;
        out.push(&g.key);
        out.push(&acc.to_be_bytes());
        Ok(true)
    })
}

/// One pair per key whose value frames all its values (the SDK's `Vec<V>`).
pub fn group_values<I, B>(
    batches: impl IntoIterator<IntoIter = I>,
    target: usize,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    I: Iterator<Item = Result<B, ShuffleError>>,
    B: AsRef<[u8]>,
{
    let mut groups = KeyGroups::new(batches);
    batched(target, move |out| {
        let Some(g) = groups.next_group()? else { return Ok(false) };
        out.push(&g.key);
        out.push(&framed(&g.values));
        Ok(true)
    })
}

/// Walk two grouped streams in key order, calling `emit` with each key and its
/// groups on either side; `emit` returns whether it wrote anything.
fn zip_groups<L, LB, R, RB>(
    left: impl IntoIterator<IntoIter = L>,
    right: impl IntoIterator<IntoIter = R>,
    target: usize,
    mut emit: impl FnMut(&mut BatchWriter, &[u8], &[Vec<u8>], &[Vec<u8>]),
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    L: Iterator<Item = Result<LB, ShuffleError>>,
    LB: AsRef<[u8]>,
    R: Iterator<Item = Result<RB, ShuffleError>>,
    RB: AsRef<[u8]>,
{
    let mut left = KeyGroups::new(left);
    let mut right = KeyGroups::new(right);
    let (mut l, mut r): (Option<KeyGroup>, Option<KeyGroup>) = (None, None);
    let mut started = false;
    batched(target, move |out| {
        if !started {
            l = left.next_group()?;
            r = right.next_group()?;
            started = true;
        }
        let order = match (&l, &r) {
            (None, None) => return Ok(false),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.key.cmp(&b.key),
        };
        match (order, l.take(), r.take()) {
            (Ordering::Less, Some(a), keep) => {
                emit(out, &a.key, &a.values, &[]);
                l = left.next_group()?;
                r = keep;
            }
            (Ordering::Greater, keep, Some(b)) => {
                emit(out, &b.key, &[], &b.values);
                r = right.next_group()?;
                l = keep;
            }
            (_, Some(a), Some(b)) => {
                emit(out, &a.key, &a.values, &b.values);
                l = left.next_group()?;
                r = right.next_group()?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Inner join: for each key on both sides, one pair per (left, right)
/// combination, valued `[left, right]` batch-framed (the SDK's `(L, R)`).
pub fn join<L, LB, R, RB>(
    left: impl IntoIterator<IntoIter = L>,
    right: impl IntoIterator<IntoIter = R>,
    target: usize,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    L: Iterator<Item = Result<LB, ShuffleError>>,
    LB: AsRef<[u8]>,
    R: Iterator<Item = Result<RB, ShuffleError>>,
    RB: AsRef<[u8]>,
{
    zip_groups(left, right, target, |out, key, ls, rs| {
        for a in ls {
            for b in rs {
                out.push(key);
                let mut pair = BatchWriter::with_capacity(a.len() + b.len() + 8);
                pair.push(a);
                pair.push(b);
                out.push(&pair.finish());
            }
        }
    })
}

/// Cogroup: one pair per key on either side, valued
/// `[framed(left values), framed(right values)]` (the SDK's `(Vec<L>, Vec<R>)`).
pub fn cogroup<L, LB, R, RB>(
    left: impl IntoIterator<IntoIter = L>,
    right: impl IntoIterator<IntoIter = R>,
    target: usize,
) -> impl Iterator<Item = Result<Vec<u8>, ShuffleError>>
where
    L: Iterator<Item = Result<LB, ShuffleError>>,
    LB: AsRef<[u8]>,
    R: Iterator<Item = Result<RB, ShuffleError>>,
    RB: AsRef<[u8]>,
{
    zip_groups(left, right, target, |out, key, ls, rs| {
        out.push(key);
        out.push(&framed(&[framed(ls), framed(rs)]));
    })
}
