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
use weft_core::fold::{self, Fold};

/// A boxed error from a caller's combine function.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

type CombineFn = dyn FnMut(Vec<u8>) -> Result<Vec<u8>, BoxError> + Send;

/// How a map task combines the values of one key.
pub enum Combiner {
    /// Values are `i64` in the key encoding (8 bytes); they are added with
    /// wrapping arithmetic, natively.
    SumI64,
    /// A native fold of 8-byte values ([`weft_core::fold`]).
    Fold(Fold),
    /// A caller-supplied function, e.g. the guest's `reduce` run in the sandbox.
    Custom(Box<CombineFn>),
}

/// A native fold of raw 8-byte values (see [`weft_core::fold`]): the
/// wrapping `i64` sum or one of the [`Fold`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// Wrapping `i64` sum.
    SumI64,
    /// A fold.
    Fold(Fold),
}

impl Native {
    /// Fold two raw values.
    #[inline]
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            Native::SumI64 => fold::sum_i64(a, b),
            Native::Fold(f) => f.apply(a, b),
        }
    }

    /// The raw value of one value's bytes.
    #[inline]
    pub fn raw(self, value: &[u8]) -> Result<u64, ShuffleError> {
        fold::raw(value).ok_or(match self {
            Native::SumI64 => ShuffleError::NotI64 { len: value.len() },
            Native::Fold(f) => ShuffleError::NotEightBytes { fold: f.name(), len: value.len() },
        })
    }
}

impl std::fmt::Debug for Combiner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SumI64 => f.write_str("SumI64"),
            Self::Fold(fold) => write!(f, "Fold({fold:?})"),
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

    /// The native fold this combiner runs, if it is native.
    pub(crate) fn native(&self) -> Option<Native> {
        match self {
            Self::SumI64 => Some(Native::SumI64),
            Self::Fold(f) => Some(Native::Fold(*f)),
            Self::Custom(_) => None,
        }
    }

    /// Combine one sorted pair batch into one pair per key.
    pub(crate) fn apply(&mut self, batch: Vec<u8>) -> Result<Vec<u8>, ShuffleError> {
        if batch.is_empty() {
            return Ok(batch);
        }
        match self {
            Self::SumI64 => fold_adjacent(&batch, Native::SumI64),
            Self::Fold(f) => fold_adjacent(&batch, Native::Fold(*f)),
            Self::Custom(f) => {
                let out = f(batch).map_err(|source| ShuffleError::Combine { source })?;
                check_one_per_key(&out)?;
                Ok(out)
            }
        }
    }
}

/// Fold the values of runs of equal adjacent keys natively.
pub(crate) fn fold_adjacent(batch: &[u8], native: Native) -> Result<Vec<u8>, ShuffleError> {
    let mut out = BatchWriter::with_capacity(batch.len() / 2);
    let mut current: Option<(&[u8], u64)> = None;
    for pair in pairs(batch) {
        let (k, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
        let v = native.raw(v)?;
        match &mut current {
            Some((key, acc)) if *key == k => *acc = native.apply(*acc, v),
            _ => {
                if let Some((key, acc)) = current.replace((k, v)) {
                    out.push(key);
                    out.push(&acc.to_be_bytes());
                }
            }
        }
    }
    if let Some((key, acc)) = current {
        out.push(key);
        out.push(&acc.to_be_bytes());
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
    use weft_codec::key::EncodeKey;

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
    fn folds_keep_one_pair_per_key_and_name_a_bad_value() {
        let out = Combiner::Fold(Fold::Max).apply(batch(&[("a", -1), ("a", -7), ("b", 3)])).unwrap();
        assert_eq!(out, batch(&[("a", -1), ("b", 3)]));
        let mut w = BatchWriter::new();
        w.push(b"a");
        w.push(b"abc");
        let err = Combiner::Fold(Fold::Min).apply(w.finish()).unwrap_err();
        assert!(matches!(err, ShuffleError::NotEightBytes { fold: "min_by_key", len: 3 }), "{err}");
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
