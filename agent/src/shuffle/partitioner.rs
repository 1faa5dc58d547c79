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
//! - **Range**: sorted, strictly increasing *inclusive* upper bounds; partition
//!   `i` holds keys in `(bounds[i-1], bounds[i]]` and the last partition every key
//!   above the last bound, so there are `bounds.len() + 1` partitions. Reading the
//!   partitions in order gives the keys in order, which is `sort_by_key`.

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
        /// The bounds; `bounds.len() + 1` partitions.
        bounds: Vec<Vec<u8>>,
    },
}

impl Partitioner {
    /// A hash partitioner over `partitions` partitions.
    pub fn hash(partitions: u32) -> Self {
        Self::Hash { partitions }
    }

    /// A range partitioner; `bounds` are sorted and de-duplicated here.
    pub fn range(mut bounds: Vec<Vec<u8>>) -> Self {
        bounds.sort_unstable();
        bounds.dedup();
        Self::Range { bounds }
    }

    /// How many partitions keys are spread over.
    pub fn partitions(&self) -> u32 {
        match self {
            Self::Hash { partitions } => (*partitions).max(1),
            Self::Range { bounds } => u32::try_from(bounds.len()).unwrap_or(u32::MAX - 1) + 1,
        }
    }

    /// The partition of `key`, in `0..self.partitions()`.
    #[inline]
    pub fn partition(&self, key: &[u8]) -> u32 {
        match self {
            Self::Hash { partitions } => (xxh3_64(key) % u64::from((*partitions).max(1))) as u32,
            Self::Range { bounds } => {
                let i = bounds.partition_point(|b| b.as_slice() < key);
                u32::try_from(i).unwrap_or(u32::MAX - 1)
            }
        }
    }
}

/// Range bounds for about `partitions` equal-sized partitions, from a sample of
/// keys (for `sort_by_key`).
///
/// The sample is sorted and cut at its `partitions - 1` evenly spaced quantiles;
/// duplicate bounds are dropped, so a sample with few distinct keys yields fewer
/// bounds (and the partitioner fewer partitions) than asked for. An empty sample
/// or `partitions <= 1` yields no bounds: one partition.
pub fn range_bounds(mut sample: Vec<Vec<u8>>, partitions: u32) -> Vec<Vec<u8>> {
    if sample.is_empty() || partitions <= 1 {
        return Vec::new();
    }
    sample.sort_unstable();
    let n = sample.len();
    let parts = partitions as usize;
    let mut bounds: Vec<Vec<u8>> = Vec::with_capacity(parts - 1);
    for i in 1..parts {
        // The last key of the i-th slice of the sorted sample.
        let at = (i * n).div_ceil(parts).saturating_sub(1);
        let Some(candidate) = sample.get(at) else { break };
        if bounds.last().is_none_or(|last| last < candidate) {
            bounds.push(candidate.clone());
        }
    }
    bounds
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

    #[test]
    fn range_bounds_are_inclusive() {
        let p = Partitioner::range(vec![10i64.to_key_bytes(), 20i64.to_key_bytes()]);
        assert_eq!(p.partitions(), 3);
        let part = |k: i64| p.partition(&k.to_key_bytes());
        assert_eq!([part(-5), part(10), part(11), part(20), part(21)], [0, 0, 1, 1, 2]);
    }

    #[test]
    fn bounds_from_sample() {
        let sample: Vec<Vec<u8>> = (0..100i64).rev().map(|k| k.to_key_bytes()).collect();
        let b = range_bounds(sample, 4);
        assert_eq!(b, vec![24i64.to_key_bytes(), 49i64.to_key_bytes(), 74i64.to_key_bytes()]);
        assert!(range_bounds(vec![b"x".to_vec(); 50], 8) == vec![b"x".to_vec()]);
        assert!(range_bounds(Vec::new(), 8).is_empty());
    }

    proptest! {
        #[test]
        fn partition_in_range_and_range_order(
            keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 1..60),
            parts in 1u32..9,
        ) {
            let h = Partitioner::hash(parts);
            for k in &keys { prop_assert!(h.partition(k) < parts); }
            let r = Partitioner::range(range_bounds(keys.clone(), parts));
            prop_assert!(r.partitions() <= parts);
            let mut sorted = keys.clone();
            sorted.sort();
            let ps: Vec<u32> = sorted.iter().map(|k| r.partition(k)).collect();
            prop_assert!(ps.windows(2).all(|w| w[0] <= w[1]), "range partitions follow key order");
            prop_assert!(ps.iter().all(|&p| p < r.partitions()));
        }
    }
}
