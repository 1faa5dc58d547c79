//! Native folds of 8-byte values by key: what `sum_by_key` over `f64`,
//! `min_by_key` and `max_by_key` run in the host, with no guest call.
//!
//! The values are `i64` or `f64` in the SDK's record encoding, which for
//! scalars is the order-preserving key encoding: 8 bytes, big-endian, the
//! sign bit flipped (and for a negative float every bit flipped). So a fold
//! works on the value bytes read as a big-endian `u64`, the *raw* value:
//!
//! - `Min` and `Max` compare raw values, which compare as the numbers do
//!   (`i64` exactly; `f64` in IEEE total order, `-0.0 < 0.0`, NaN above
//!   every number), whether the values are `i64` or `f64`;
//! - `SumF64` decodes both floats, adds them and encodes the sum.
//!
//! The wrapping `i64` sum, which came first, keeps its own variants
//! (`Combiner::SumI64`, `Aggregate::SumI64`); [`sum_i64`] is its raw form.
//! Like the reduce function of `reduce_by_key`, a fold runs map-side (in the
//! shuffle writer's hash table) and again on the reduce side.

use serde::{Deserialize, Serialize};
use weft_codec::key::{f64_from_ordered, ordered_f64};

/// A native fold of the values of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fold {
    /// The sum of `f64` values (IEEE addition, in arrival order per task).
    SumF64,
    /// The least value (`i64` or `f64`).
    Min,
    /// The greatest value (`i64` or `f64`).
    Max,
}

const SIGN: u64 = 1 << 63;

impl Fold {
    /// Fold two raw values into one.
    #[inline]
    pub fn apply(self, a: u64, b: u64) -> u64 {
        match self {
            Fold::SumF64 => ordered_f64(f64_from_ordered(a) + f64_from_ordered(b)),
            Fold::Min => a.min(b),
            Fold::Max => a.max(b),
        }
    }

    /// The operation's name, as the SDK calls it.
    pub fn name(self) -> &'static str {
        match self {
            Fold::SumF64 => "sum_by_key",
            Fold::Min => "min_by_key",
            Fold::Max => "max_by_key",
        }
    }
}

/// The wrapping `i64` sum of two raw values.
#[inline]
pub fn sum_i64(a: u64, b: u64) -> u64 {
    ((a ^ SIGN).wrapping_add(b ^ SIGN)) ^ SIGN
}

/// The raw value of a value's 8 bytes; `None` for another length.
#[inline]
pub fn raw(value: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(value).ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_codec::key::EncodeKey;

    fn r(bytes: Vec<u8>) -> u64 {
        raw(&bytes).unwrap()
    }

    proptest! {
        #[test]
        fn folds_of_raw_values_equal_folds_of_numbers(a: i64, b: i64, x: f64, y: f64) {
            let (ra, rb) = (r(a.to_key_bytes()), r(b.to_key_bytes()));
            prop_assert_eq!(sum_i64(ra, rb), r(a.wrapping_add(b).to_key_bytes()));
            prop_assert_eq!(Fold::Min.apply(ra, rb), r(a.min(b).to_key_bytes()));
            prop_assert_eq!(Fold::Max.apply(ra, rb), r(a.max(b).to_key_bytes()));
            let (rx, ry) = (r(x.to_key_bytes()), r(y.to_key_bytes()));
            let sum = f64_from_ordered(Fold::SumF64.apply(rx, ry));
            prop_assert!(sum.to_bits() == (x + y).to_bits() || (sum.is_nan() && (x + y).is_nan()));
            prop_assert_eq!(f64_from_ordered(Fold::Min.apply(rx, ry)).to_bits(), if x.total_cmp(&y).is_le() { x } else { y }.to_bits());
            prop_assert_eq!(f64_from_ordered(Fold::Max.apply(rx, ry)).to_bits(), if x.total_cmp(&y).is_ge() { x } else { y }.to_bits());
        }
    }

    #[test]
    fn values_of_other_widths_have_no_raw_form() {
        assert_eq!(raw(&[1, 2, 3]), None);
        assert_eq!(raw(&7i64.to_key_bytes()).map(|v| v ^ SIGN), Some(7));
    }
}
