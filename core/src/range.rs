//! Range bounds for `sort_by_key`, from a weighted sample of key bytes.
//!
//! A sort into several partitions is range-partitioned, as Spark's
//! `RangePartitioner` does: before the sort's map stage runs, the master runs
//! a *sample job* over the dataset being sorted, whose tasks each return a
//! reservoir sample of their keys and how many records they saw. Each sampled
//! key then stands for `records / sample size` records of its task, and
//! [`range_bounds`] cuts the sorted, weighted sample into slices of equal
//! weight. Keys are compared as their order-preserving encoding (see
//! [`weft_codec::key`]), so neither side calls into the guest to compare.

/// Most keys one task returns in a sample, whatever is asked.
pub const MAX_SAMPLE_PER_TASK: u32 = 4096;

/// Longest sampled key: longer keys are cut to this prefix, which still
/// serves as a range bound. With [`MAX_SAMPLE_PER_TASK`], a task's sample
/// stays within 1 MiB.
pub const MAX_SAMPLE_KEY_BYTES: usize = 256;

/// How many keys each of `map_partitions` tasks samples when sorting into
/// `partitions` (Spark's sizes: about 20 keys per output partition in all, at
/// most a million, oversampled three times and spread over the tasks; here
/// also at most [`MAX_SAMPLE_PER_TASK`]).
pub fn sample_size_per_task(partitions: u32, map_partitions: u32) -> u32 {
    let total = (20 * u64::from(partitions)).min(1_000_000);
    let per = (3 * total).div_ceil(u64::from(map_partitions.max(1)));
    u32::try_from(per).unwrap_or(u32::MAX).min(MAX_SAMPLE_PER_TASK)
}

/// Inclusive upper bounds, strictly increasing, that cut the keys of
/// `samples` (each with the number of records it stands for) into about
/// `partitions` ranges of equal weight: partition `i` holds the keys in
/// `(bounds[i-1], bounds[i]]`, the last one every key above the last bound.
///
/// A sample with few distinct keys yields fewer bounds than `partitions - 1`
/// (and the partitions past them stay empty); an empty sample or
/// `partitions <= 1` yields none.
pub fn range_bounds(mut samples: Vec<(Vec<u8>, f64)>, partitions: u32) -> Vec<Vec<u8>> {
    if samples.is_empty() || partitions <= 1 {
        return Vec::new();
    }
    samples.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let total: f64 = samples.iter().map(|(_, w)| w.max(0.0)).sum();
    let step = total / f64::from(partitions);
    let (mut cumulative, mut target) = (0.0, step);
    let mut bounds: Vec<Vec<u8>> = Vec::with_capacity(partitions as usize - 1);
    for (key, weight) in samples {
        if bounds.len() + 1 >= partitions as usize {
            break;
        }
        cumulative += weight.max(0.0);
        if cumulative >= target && bounds.last().is_none_or(|last| *last < key) {
            bounds.push(key);
            target += step;
        }
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use weft_codec::key::EncodeKey;

    fn unweighted(keys: impl IntoIterator<Item = Vec<u8>>) -> Vec<(Vec<u8>, f64)> {
        keys.into_iter().map(|k| (k, 1.0)).collect()
    }

    #[test]
    fn even_sample_cuts_at_quantiles() {
        let sample = unweighted((0..100i64).rev().map(|k| k.to_key_bytes()));
        let b = range_bounds(sample, 4);
        assert_eq!(b, vec![24i64.to_key_bytes(), 49i64.to_key_bytes(), 74i64.to_key_bytes()]);
        assert_eq!(range_bounds(unweighted(vec![b"x".to_vec(); 50]), 8), vec![b"x".to_vec()]);
        assert!(range_bounds(Vec::new(), 8).is_empty());
        assert!(range_bounds(unweighted([b"a".to_vec()]), 1).is_empty());
    }

    #[test]
    fn weights_move_the_bounds() {
        // Keys 0..10 from a task that saw 10 records and keys 10..20 from one
        // that saw 1000: the heavy half holds almost all the weight.
        let mut sample: Vec<(Vec<u8>, f64)> = (0..10i64).map(|k| (k.to_key_bytes(), 1.0)).collect();
        sample.extend((10..20i64).map(|k| (k.to_key_bytes(), 100.0)));
        let b = range_bounds(sample, 2);
        assert_eq!(b, vec![14i64.to_key_bytes()], "half of 1010 records is reached at key 14");
    }

    #[test]
    fn sample_sizes_follow_spark() {
        assert_eq!(sample_size_per_task(4, 8), 30);
        assert_eq!(sample_size_per_task(1, 1), 60);
        assert_eq!(sample_size_per_task(100_000, 1), MAX_SAMPLE_PER_TASK);
        assert_eq!(sample_size_per_task(4, 0), 240);
    }

    proptest! {
        #[test]
        fn bounds_are_sorted_distinct_and_few_enough(
            keys in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..4), 0.0f64..50.0), 0..80),
            parts in 1u32..9,
        ) {
            let b = range_bounds(keys.clone(), parts);
            prop_assert!(b.len() < parts as usize || b.is_empty());
            prop_assert!(b.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
            for bound in &b {
                prop_assert!(keys.iter().any(|(k, _)| k == bound), "every bound is a sampled key");
            }
        }
    }
}
