//! Operators over two datasets grouped by key (`cogroup`, outer joins,
//! `subtract`, `intersection`), the drawing ones (`sample`, `take_sample`,
//! `repartition`, `coalesce`) and `zip_with_index`.
//!
//! Two sides meet in one shuffle: each side's values are tagged with its
//! side (`weft:tag`), a union joins them and `group_by_key` gathers each
//! key's values, which a [grouped built-in step](crate::builtin) splits back
//! into the SDK's encodings. So, unlike the inner `join` (a host-side merge
//! of two sorted streams), these hold all of one key's values in one record:
//! a key with very many values costs that much memory in one task.
//!
//! Where these differ from Spark: `coalesce` always shuffles (as
//! `repartition`; Spark merges partitions without a shuffle unless asked);
//! `sample` draws per task from a stream seeded by the seed and the
//! partition index, so its output is a function of the seed and the input's
//! partitioning (as Spark's); `take_sample` samples without replacement.

use super::{Dataset, Handle, PairDataset};
use crate::builtin::sample::next;
use crate::error::Result;
use crate::host::{self, ShuffleOp};
use crate::record::{Bytes, Record};
use weft_codec::key::Key;

impl Handle {
    /// Each side's values tagged, both sides grouped by key.
    fn tagged_groups(self, other: Handle, partitions: u32) -> Handle {
        let left = self.builtin("tag", &["0"], true);
        let right = other.builtin("tag", &["1"], true);
        let both = left.derive(|l| host::driver::union(l, right.id()?));
        both.shuffle(ShuffleOp::GroupByKey, partitions)
    }

    fn sample(self, fraction: f64, seed: u64, pairs: bool) -> Handle {
        let (fraction, seed) = (fraction.to_string(), seed.to_string());
        self.builtin("sample", &[&fraction, &seed, if pairs { "1" } else { "0" }], pairs)
    }
}

impl<K: Key + 'static, V: Record + 'static> PairDataset<K, V> {
    /// For each key of either dataset, its values in each, into
    /// `partitions` partitions (0: as many as both have together). All of a
    /// key's values are held in one record, so a key with very many values
    /// costs that much memory in one task (as in Spark).
    pub fn cogroup<W: Record + 'static>(
        &self,
        other: &PairDataset<K, W>,
        partitions: u32,
    ) -> PairDataset<K, (Vec<V>, Vec<W>)> {
        self.grouped("cogroup", other, partitions)
    }

    /// Every `(k, (v, Some(w)))` of equal keys, and `(k, (v, None))` for each
    /// pair of this dataset whose key the other lacks.
    pub fn left_outer_join<W: Record + 'static>(
        &self,
        other: &PairDataset<K, W>,
        partitions: u32,
    ) -> PairDataset<K, (V, Option<W>)> {
        self.grouped("left-outer", other, partitions)
    }

    /// Every `(k, (Some(v), w))` of equal keys, and `(k, (None, w))` for each
    /// pair of the other dataset whose key this one lacks.
    pub fn right_outer_join<W: Record + 'static>(
        &self,
        other: &PairDataset<K, W>,
        partitions: u32,
    ) -> PairDataset<K, (Option<V>, W)> {
        self.grouped("right-outer", other, partitions)
    }

    /// Both outer joins: `None` on whichever side lacks the key.
    pub fn full_outer_join<W: Record + 'static>(
        &self,
        other: &PairDataset<K, W>,
        partitions: u32,
    ) -> PairDataset<K, (Option<V>, Option<W>)> {
        self.grouped("full-outer", other, partitions)
    }

    fn grouped<W, X>(&self, step: &str, other: &PairDataset<K, W>, partitions: u32) -> PairDataset<K, X> {
        let groups = self.handle.tagged_groups(other.handle, partitions);
        PairDataset::from_handle(groups.builtin(step, &[], true))
    }

    /// Each pair kept with probability `fraction`, drawn from a stream
    /// seeded by `seed` and the partition index: the same pairs on every
    /// run over the same input and partitions.
    pub fn sample(&self, fraction: f64, seed: u64) -> Self {
        Self::from_handle(self.handle.sample(fraction, seed, true))
    }
}

impl<T: Record + 'static> Dataset<T> {
    /// Each record kept with probability `fraction`, drawn from a stream
    /// seeded by `seed` and the partition index: the same records on every
    /// run over the same input and partitions.
    pub fn sample(&self, fraction: f64, seed: u64) -> Self {
        Self::from_handle(self.handle.sample(fraction, seed, false))
    }

    /// Action: `n` records drawn without replacement (all of them when there
    /// are fewer), in an order drawn from `seed`.
    pub fn take_sample(&self, n: usize, seed: u64) -> Result<Vec<T>> {
        let count = self.count()? as f64;
        let mut stream = seed;
        const PASSES: u64 = 10;
        let mut attempt = 0;
        let mut drawn = loop {
            // Oversample, as Spark does, so that one pass almost always
            // suffices; the last pass takes every record.
            let last = attempt + 1 == PASSES;
            let fraction = match last {
                true => 1.0,
                false => ((n as f64 * 1.2 + 10.0) * (attempt + 1) as f64 / count.max(1.0)).min(1.0),
            };
            let drawn = self.sample(fraction, seed.wrapping_add(attempt)).collect()?;
            if drawn.len() >= n || fraction >= 1.0 {
                break drawn;
            }
            attempt += 1;
        };
        // Fisher–Yates, then the first n.
        for i in (1..drawn.len()).rev() {
            drawn.swap(i, (next(&mut stream) % (i as u64 + 1)) as usize);
        }
        drawn.truncate(n);
        Ok(drawn)
    }

    /// Pairs `(index, record)`, the index counting from 0 in partition order
    /// (Spark's `zipWithIndex`, with the index as the key). Like Spark's, it
    /// first runs a job that counts each partition's records.
    pub fn zip_with_index(&self) -> Result<PairDataset<u64, T>> {
        let counted = PairDataset::<u32, i64>::from_handle(self.handle.builtin("batch-count", &[], true));
        let mut sizes = counted.sum_by_key(1).collect()?;
        sizes.sort_unstable();
        let mut offset = 0i64;
        let mut offsets = Vec::with_capacity(sizes.len());
        for (partition, size) in sizes {
            offsets.push(format!("{partition}={offset}"));
            offset += size;
        }
        Ok(PairDataset::from_handle(self.handle.builtin("zip", &[&offsets.join(",")], true)))
    }

    /// The records spread evenly over `partitions` partitions (a shuffle).
    pub fn repartition(&self, partitions: u32) -> Self {
        let scattered = PairDataset::<u64, Bytes>::from_handle(self.handle.builtin("scatter", &[], true));
        Self::from_handle(scattered.partition_by(partitions).handle.builtin("values", &[], false))
    }

    /// Into `partitions` partitions; unlike Spark's, always with a shuffle
    /// (as [`repartition`](Self::repartition)).
    pub fn coalesce(&self, partitions: u32) -> Self {
        self.repartition(partitions)
    }
}

impl<T: Key + Record + 'static> Dataset<T> {
    /// The records of this dataset whose value the other lacks (duplicates
    /// kept), into `partitions` partitions (0: as many as both together).
    pub fn subtract(&self, other: &Dataset<T>, partitions: u32) -> Dataset<T> {
        let side = |d: &Dataset<T>| d.handle.with_schema::<T>("key-self", "subtract", &[], true);
        let groups = side(self).tagged_groups(side(other), partitions);
        Dataset::from_handle(groups.with_schema::<T>("anti", "subtract", &[], false))
    }

    /// The records in both datasets, each once, into `partitions` partitions.
    pub fn intersection(&self, other: &Dataset<T>, partitions: u32) -> Dataset<T> {
        self.count_by_value(partitions).join(&other.count_by_value(partitions), partitions).keys()
    }
}
