//! Map-side combine: reduce a sorted run to one pair per key before it is
//! spilled or written, so a `reduce_by_key` shuffles one pair per key per map
//! task instead of every pair.
//!
//! A combine step always receives a pair batch sorted by key, equal keys
//! adjacent, and must return one pair per key in the same order. The writer
//! calls it on each sorted run before spilling and again on each merged chunk
//! (chunks are cut only between keys, so a key is never split across two calls).
//! Its output is checked: a malformed batch, a repeated key or a key out of order
//! is a [`ShuffleError::CombineOutput`], never a silently unsorted block.

use super::error::ShuffleError;
use weft_codec::batch::{BatchWriter, pairs};
use weft_codec::key::{EncodeKey, Key};

/// A boxed error from a caller's combine function.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

type CombineFn = dyn FnMut(Vec<u8>) -> Result<Vec<u8>, BoxError> + Send;

/// How a map task combines the values of one key.
pub enum Combiner {
    /// Values are `i64` in the key encoding (8 bytes); they are added with
    /// wrapping arithmetic, natively.
    SumI64,
    /// A caller-supplied function, e.g. the guest's `reduce` run in the sandbox.
    Custom(Box<CombineFn>),
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SumI64 => f.write_str("SumI64"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Combiner {
    /// Wrap a combine function that takes and returns a pair batch.
    pub fn custom<F, E>(mut f: F) -> Self
    where
        F: FnMut(Vec<u8>) -> Result<Vec<u8>, E> + Send + 'static,
        E: Into<BoxError>,
    {
        Self::Custom(Box::new(move |batch| f(batch).map_err(Into::into)))
    }

    /// Combine one sorted pair batch into one pair per key.
    pub(crate) fn apply(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, ShuffleError> {
        if batch.is_empty() {
            return Ok(batch);
        }
        match self {
            Self::SumI64 => sum_adjacent(&batch),
            Self::Custom(f) => {
                let out = f(batch).map_err(|source| ShuffleError::Combine { source })?;
                check_one_per_key(&out)?;
                Ok(out)
            }
        }
    }
}

/// Decode an `i64` value (8 bytes, key encoding).
pub(crate) fn decode_i64(value: &[u8]) -> Result<i64, ShuffleError> {
    if value.len() != 8 {
        return Err(ShuffleError::NotI64 { len: value.len() });
    }
    i64::from_key_bytes(value).map_err(|_| ShuffleError::NotI64 { len: value.len() })
}

/// Fold runs of equal adjacent keys by wrapping `i64` addition.
pub(crate) fn sum_adjacent(batch: &[u8]) -> Result<Vec<u8>, ShuffleError> {
    let mut out = BatchWriter::with_capacity(batch.len() / 2);
    let mut current: Option<(&[u8], i64)> = None;
    for pair in pairs(batch) {
        let (k, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
        let v = decode_i64(v)?;
        match &mut current {
            Some((key, sum)) if *key == k => *sum = sum.wrapping_add(v),
            _ => {
                if let Some((key, sum)) = current.replace((k, v)) {
                    out.push(key);
                    out.push(&sum.to_key_bytes());
                }
            }
        }
    }
    if let Some((key, sum)) = current {
        out.push(key);
        out.push(&sum.to_key_bytes());
    }
    Ok(out.finish())
}

/// Check that `batch` is a pair batch whose keys strictly increase.
pub(crate) fn check_one_per_key(batch: &[u8]) -> Result<(), ShuffleError> {
    let mut last: Option<&[u8]> = None;
    for pair in pairs(batch) {
        let (k, _) = pair.map_err(|_| ShuffleError::CombineOutput { reason: "not a pair batch" })?;
        if last.is_some_and(|l| l >= k) {
            return Err(ShuffleError::CombineOutput { reason: "keys not strictly increasing" });
        }
        last = Some(k);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[(&str, i64)]) -> Vec<u8> {
        let mut w = BatchWriter::new();
        for (k, v) in items {
            w.push(k.as_bytes());
            w.push(&v.to_key_bytes());
        }
        w.finish()
    }

    #[test]
    fn sum_folds_adjacent_keys_and_wraps() {
        let out = Combiner::SumI64.apply(batch(&[("a", 1), ("a", 2), ("b", i64::MAX), ("b", 1)])).unwrap();
        assert_eq!(out, batch(&[("a", 3), ("b", i64::MIN)]));
        let err = Combiner::SumI64.apply(batch(&[("a", 1)])[..12].to_vec());
        assert!(matches!(err, Err(ShuffleError::Malformed { .. })));
        let mut w = BatchWriter::new();
        w.push(b"a");
        w.push(b"abc");
        assert!(matches!(Combiner::SumI64.apply(w.finish()), Err(ShuffleError::NotI64 { len: 3 })));
    }

    #[test]
    fn custom_output_is_checked() {
        let mut identity = Combiner::custom(|b: Vec<u8>| Ok::<_, std::io::Error>(b));
        let err = identity.apply(batch(&[("a", 1), ("a", 2)]));
        assert!(matches!(err, Err(ShuffleError::CombineOutput { .. })));
        assert!(identity.apply(batch(&[("a", 1), ("b", 2)])).is_ok());
        let mut failing = Combiner::custom(|_| Err::<Vec<u8>, _>("guest trapped"));
        let err = failing.apply(batch(&[("a", 1)])).unwrap_err();
        assert!(err.to_string().contains("guest trapped"), "{err}");
    }
}
