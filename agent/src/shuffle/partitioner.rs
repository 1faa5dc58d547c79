//! Which reduce partition a key belongs to.
//!
//! Both partitioners look only at the encoded key bytes, so the host never calls
//! the guest to partition.
//!
//! - **Hash**: `xxh3_64(key, seed 0) % partitions`. XXH3 is specified and frozen
//!   (the `xxhash-rust` crate implements the reference algorithm), so the same
//!   key lands in the same partition in every process, on every platform and in
//!   every weft version. That matters: two shuffles joined with each other must
//!   agree on placement, and a recomputed map output must match the blocks its
//!   siblings already wrote.
//! - **Range**: sorted, strictly increasing *inclusive* upper bounds (from
//!   [`weft_core::range::range_bounds`]); range `i` holds keys in
//!   `(bounds[i-1], bounds[i]]` and range `bounds.len()` every key above the last
//!   bound. Ascending, range `i` is partition `i`; descending, it is partition
//!   `partitions - 1 - i`. Either way, reading the partitions in order gives the
//!   keys in the sort's order, which is `sort_by_key`. A sample with few
//!   distinct keys has fewer bounds than partitions: the partitions past them
//!   stay empty.

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// Maps a key's bytes to a reduce partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partitioner {
    /// `xxh3_64(key) % partitions`.
    Hash {
        /// Number of reduce partitions (at least 1; 0 is treated as 1).
        partitions: u32,
    },
    /// Inclusive upper bounds on raw key bytes, sorted and strictly increasing.
    Range {
        /// The bounds (fewer than `partitions`).
        bounds: Vec<Vec<u8>>,
        /// Number of reduce partitions.
        partitions: u32,
        /// Whether the largest keys go to partition 0.
        descending: bool,
    },
}

impl Partitioner {
    /// A hash partitioner over `partitions` partitions.
    pub fn hash(partitions: u32) -> Self {
        Self::Hash { partitions }
    }

    /// A range partitioner over `partitions` partitions (at least
    /// `bounds.len() + 1`: more bounds than that are an error); `bounds` are
    /// sorted and de-duplicated here.
    pub fn range(mut bounds: Vec<Vec<u8>>, partitions: u32, descending: bool) -> Result<Self, TooManyBounds> {
        bounds.sort_unstable();
        bounds.dedup();
        if bounds.len() >= partitions as usize {
            return Err(TooManyBounds { bounds: bounds.len(), partitions });
        }
        Ok(Self::Range { bounds, partitions, descending })
    }

    /// How many partitions keys are spread over.
    pub fn partitions(&self) -> u32 {
        match self {
            Self::Hash { partitions } => (*partitions).max(1),
            Self::Range { partitions, .. } => (*partitions).max(1),
        }
    }

    /// The partition of `key`, in `0..self.partitions()`.
    #[inline]
    pub fn partition(&self, key: &[u8]) -> u32 {
        match self {
            Self::Hash { partitions } => (xxh3_64(key) % u64::from((*partitions).max(1))) as u32,
            Self::Range { bounds, partitions, descending } => {
                let last = (*partitions).max(1) - 1;
                let i =
                    u32::try_from(bounds.partition_point(|b| b.as_slice() < key)).unwrap_or(last).min(last);
                if *descending { last - i } else { i }
            }
        }
    }
}

/// Range partitioning asked for more bounds than it has partitions to cut.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{bounds} range bounds cannot cut keys into {partitions} partitions")]
pub struct TooManyBounds {
    /// Distinct bounds given.
    pub bounds: usize,
    /// Partitions asked for.
    pub partitions: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_codec::key::EncodeKey;

    #[test]
    fn hash_is_stable_across_versions() {
        // Pinned values: changing them breaks every stored shuffle and join.
        assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2);
        let p = Partitioner::hash(16);
        let got: Vec<u32> = ["", "a", "hello", "weft"].iter().map(|k| p.partition(k.as_bytes())).collect();
        assert_eq!(got, [2, 15, 13, 2]);
        assert_eq!(Partitioner::hash(0).partitions(), 1);
        assert_eq!(Partitioner::hash(0).partition(b"x"), 0);
    }

    fn range(bounds: Vec<Vec<u8>>, partitions: u32, descending: bool) -> Partitioner {
        Partitioner::range(bounds, partitions, descending).unwrap()
    }

    fn bounds_of(keys: &[Vec<u8>], parts: u32) -> Vec<Vec<u8>> {
        weft_core::range::range_bounds(keys.iter().map(|k| (k.clone(), 1.0)).collect(), parts)
    }

    #[test]
    fn range_bounds_are_inclusive() {
        let p = range(vec![10i64.to_key_bytes(), 20i64.to_key_bytes()], 3, false);
        assert_eq!(p.partitions(), 3);
        let part = |k: i64| p.partition(&k.to_key_bytes());
        assert_eq!([part(-5), part(10), part(11), part(20), part(21)], [0, 0, 1, 1, 2]);
    }

    #[test]
    fn descending_ranges_put_the_largest_keys_first() {
        let p = range(vec![10i64.to_key_bytes(), 20i64.to_key_bytes()], 3, true);
        let part = |k: i64| p.partition(&k.to_key_bytes());
        assert_eq!([part(-5), part(10), part(11), part(20), part(21)], [2, 2, 1, 1, 0]);
    }

    #[test]
    fn fewer_bounds_than_partitions_leave_the_last_partitions_empty() {
        let p = range(vec![b"m".to_vec()], 4, false);
        assert_eq!(p.partitions(), 4);
        assert_eq!([p.partition(b"a"), p.partition(b"m"), p.partition(b"z")], [0, 0, 1]);
        let d = range(vec![b"m".to_vec()], 4, true);
        assert_eq!([d.partition(b"a"), d.partition(b"z")], [3, 2]);
        assert_eq!(range(Vec::new(), 2, false).partition(b"anything"), 0);
        assert_eq!(
            Partitioner::range(vec![b"a".to_vec(), b"b".to_vec()], 2, false),
            Err(TooManyBounds { bounds: 2, partitions: 2 })
        );
    }

    proptest! {
        #[test]
        fn partition_in_range_and_range_order(
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 1..60),
            parts in 1u32..9,
            descending: bool,
        ) {
            let h = Partitioner::hash(parts);
            for k in &keys { prop_assert!(h.partition(k) < parts); }
            let r = range(bounds_of(&keys, parts), parts, descending);
            prop_assert_eq!(r.partitions(), parts);
            let mut sorted = keys.clone();
            sorted.sort();
            if descending { sorted.reverse(); }
            let ps: Vec<u32> = sorted.iter().map(|k| r.partition(k)).collect();
            prop_assert!(ps.windows(2).all(|w| w[0] <= w[1]), "partitions follow the sort's order");
            prop_assert!(ps.iter().all(|&p| p < r.partitions()));
        }
    }
}
