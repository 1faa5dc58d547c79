//! The operators built from the host's primitives: [built-in
//! steps](crate::builtin) for the type-generic narrow operations, composed
//! with the shuffles and actions the host runs.
//!
//! | operator | made of |
//! |---|---|
//! | `values`, `keys`, `map_values`, `flat_map_values`, `key_by` | one built-in step |
//! | `count_by_key` | `weft:ones`, then the host's native `sum_by_key` (combined map-side) |
//! | `count_by_value` | `weft:count-self`, then native `sum_by_key` |
//! | `distinct` | `count_by_value`, then `keys` |
//! | `reduce`, `fold` | `weft:unit-key`, then `reduce_by_key` into one partition (combined map-side), collected |
//! | `sort_by` | `key_by`, `sort_by_key`, `values` |
//! | `top`, `take_ordered` | `weft:key-self`, `sort_by_key`, `take`, `values` |
//! | `first`, `is_empty` | `take(1)` |
//! | `foreach` | `map` with a function returning `()`, then `count` |
//! | `save_as_text_file` | `weft:display` (not for `String`), or for pairs `weft:display-pairs` (`key<TAB>value`), then the host's text output |
//! | `fold_by_key` | `reduce_by_key`, then `weft:with-zero` (the zero's record bytes in the step's name) |
//! | `combine_by_key`, `aggregate_by_key`, `aggregate` | `map_values`/`map`, then `reduce_by_key`, `fold_by_key`, `fold` |
//! | `cartesian` | `weft:unit-key` on both sides, `join` into one partition, `weft:unnest` |
//!
//! Where these differ from Spark: `reduce` of an empty dataset is `None`
//! (Spark throws); `fold` applies `zero` once, to the reduced value on the
//! driver (Spark applies it once per partition and once more on the driver),
//! so the two agree exactly when `zero` is an identity of the function, which
//! Spark requires anyway; `count_by_key` and `count_by_value` are
//! transformations giving a pair dataset (Spark's actions return a map:
//! follow with [`collect_as_map`](PairDataset::collect_as_map)).

use super::{Dataset, Handle, PairDataset, name_of};
use crate::builtin;
use crate::error::{Error, Result};
use crate::function::{FlatMapFn, MapFn, OpKind, ReduceFn};
use crate::host::ShuffleOp;
use crate::layout::Plain;
use crate::record::Record;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use weft_codec::key::Key;
use weft_codec::schema::Schema;

impl Handle {
    /// The dataset a built-in step `op` with `args` makes from this one.
    pub(super) fn builtin(self, op: &str, args: &[&str], keyed: bool) -> Handle {
        self.named(OpKind::MapBatch, &builtin::name(op, args), keyed)
    }

    /// As [`builtin`](Self::builtin), with `K`'s schema text as the first argument.
    pub(super) fn with_schema<K: Key>(
        self,
        op: &str,
        operation: &'static str,
        args: &[&str],
        keyed: bool,
    ) -> Handle {
        match K::schema() {
            Some(schema) => {
                let schema = schema.to_string();
                let all: Vec<&str> = std::iter::once(schema.as_str()).chain(args.iter().copied()).collect();
                self.builtin(op, &all, keyed)
            }
            None => Handle::new(Err(no_schema::<K>(operation))),
        }
    }
}

fn no_schema<K>(operation: &'static str) -> Error {
    Error::NoKeySchema { operation, type_name: std::any::type_name::<K>() }
}

impl<K: Key + 'static, V: Record + 'static> PairDataset<K, V> {
    /// The values, dropping the keys.
    pub fn values(&self) -> Dataset<V> {
        Dataset::from_handle(self.handle.builtin("values", &[], false))
    }

    /// The keys, dropping the values.
    pub fn keys(&self) -> Dataset<K>
    where
        K: Record,
    {
        Dataset::from_handle(self.handle.with_schema::<K>("keys", "keys", &[], false))
    }

    /// Apply a `#[weft::map]` function to every value, keeping the keys.
    pub fn map_values<F, W>(&self, _f: F) -> PairDataset<K, W>
    where
        F: MapFn<Input = Plain<V>, Output = Plain<W>>,
        W: Record + 'static,
    {
        PairDataset::from_handle(self.handle.builtin("map-values", &[name_of::<F>()], true))
    }

    /// Apply a `#[weft::flat_map]` function to every value; each output
    /// becomes a pair with the input's key.
    pub fn flat_map_values<F, W>(&self, _f: F) -> PairDataset<K, W>
    where
        F: FlatMapFn<Input = Plain<V>, Output = Plain<W>>,
        W: Record + 'static,
    {
        PairDataset::from_handle(self.handle.builtin("flat-map-values", &[name_of::<F>()], true))
    }

    /// The number of pairs of each key, into `partitions` partitions (0: as
    /// many as this dataset has), counted natively in the host. A
    /// transformation, where Spark's `countByKey` is an action returning a
    /// map: follow with [`collect_as_map`](Self::collect_as_map) for that.
    pub fn count_by_key(&self, partitions: u32) -> PairDataset<K, i64> {
        let ones = self.handle.builtin("ones", &[], true);
        PairDataset::from_handle(ones.shuffle(ShuffleOp::SumByKey, partitions))
    }

    /// The values of each key folded with a `#[weft::reduce]` function,
    /// then `f(zero, folded)`, into `partitions` partitions (0: as many as
    /// this dataset has).
    ///
    /// Unlike Spark, which folds `zero` in once per key and partition,
    /// `zero` is folded in once per key: the results agree when `zero` is an
    /// identity of `f`. `zero` travels in the plan, as its record bytes.
    pub fn fold_by_key<F: ReduceFn<Value = V>>(&self, zero: V, f: F, partitions: u32) -> Self {
        let reduced = self.reduce_by_key(f, partitions);
        let zero = builtin::to_hex(&zero.to_record_bytes());
        Self::from_handle(reduced.handle.builtin("with-zero", &[name_of::<F>(), &zero], true))
    }

    /// Each key's values turned into combiners by a `#[weft::map]` function
    /// and merged by a `#[weft::reduce]` one, into `partitions` partitions.
    ///
    /// Spark's `combineByKey` takes a third function, `mergeValue(c, v)`;
    /// here it is always `merge(c, create(v))` (no user-function kind takes
    /// two record types yet), which is what most uses of it compute.
    pub fn combine_by_key<C, M>(&self, create: C, merge: M, partitions: u32) -> PairDataset<K, M::Value>
    where
        C: MapFn<Input = Plain<V>, Output = Plain<M::Value>>,
        M: ReduceFn,
        M::Value: 'static,
    {
        self.map_values(create).reduce_by_key(merge, partitions)
    }

    /// Each key's values turned by a `#[weft::map]` function and folded by
    /// a `#[weft::reduce]` one with `zero` ([`fold_by_key`](Self::fold_by_key)),
    /// into `partitions` partitions.
    ///
    /// Spark's `aggregateByKey` takes `seqOp(u, v)`; here it is always
    /// `comb(u, to(v))`, for the same reason as in
    /// [`combine_by_key`](Self::combine_by_key).
    pub fn aggregate_by_key<T, F>(
        &self,
        zero: F::Value,
        to: T,
        comb: F,
        partitions: u32,
    ) -> PairDataset<K, F::Value>
    where
        T: MapFn<Input = Plain<V>, Output = Plain<F::Value>>,
        F: ReduceFn,
        F::Value: 'static,
    {
        self.map_values(to).fold_by_key(zero, comb, partitions)
    }

    /// Action: the pairs as a map; of several pairs with one key, the last
    /// collected wins (as Spark's `collectAsMap`).
    pub fn collect_as_map(&self) -> Result<HashMap<K, V>>
    where
        K: Eq + Hash,
    {
        Ok(self.collect()?.into_iter().collect())
    }
}

impl<T: Record + 'static> Dataset<T> {
    /// Pairs `(f(record), record)` for a `#[weft::map]` function `f`.
    pub fn key_by<F, K>(&self, _f: F) -> PairDataset<K, T>
    where
        F: MapFn<Input = Plain<T>, Output = Plain<K>>,
        K: Key + Record + 'static,
    {
        PairDataset::from_handle(self.handle.with_schema::<K>("key-by", "key_by", &[name_of::<F>()], true))
    }

    /// The records ordered by `f(record)` for a `#[weft::map]` function `f`,
    /// into `partitions` partitions (0: as many as this dataset has), as
    /// [`sort_by_key`](PairDataset::sort_by_key).
    pub fn sort_by<F, K>(&self, f: F, ascending: bool, partitions: u32) -> Dataset<T>
    where
        F: MapFn<Input = Plain<T>, Output = Plain<K>>,
        K: Key + Record + 'static,
    {
        self.key_by(f).sort_by_key(ascending, partitions).values()
    }

    /// Action: the records combined with a `#[weft::reduce]` function (which
    /// must be associative and commutative: it runs in every task first, then
    /// over the tasks' results); `None` for an empty dataset (where Spark
    /// throws).
    pub fn reduce<F: ReduceFn<Value = T>>(&self, _f: F) -> Result<Option<T>> {
        let keyed = self.handle.builtin("unit-key", &[], true);
        let one = keyed.shuffle(ShuffleOp::ReduceByKey(name_of::<F>()), 1);
        let mut reduced = PairDataset::<(), T>::from_handle(one).collect()?;
        Ok(reduced.pop().map(|((), v)| v))
    }

    /// Action: `f(zero, reduce(f))`, or `zero` for an empty dataset.
    ///
    /// Unlike Spark, which applies `zero` once per partition and once more
    /// on the driver, `zero` is applied once, on the driver: the results
    /// agree when `zero` is an identity of `f` (which Spark requires for a
    /// well-defined result anyway).
    pub fn fold<F: ReduceFn<Value = T>>(&self, zero: T, f: F) -> Result<T> {
        match self.reduce(f)? {
            None => Ok(zero),
            Some(v) => f.apply(zero, v).map_err(|e| Error::Job(e.message().to_string())),
        }
    }
}

impl<T: Record + 'static> Dataset<T> {
    /// Action: the records turned by a `#[weft::map]` function and folded by
    /// a `#[weft::reduce]` one with `zero` (as [`fold`](Self::fold); Spark's
    /// `seqOp(u, t)` is `comb(u, to(t))` here, as in
    /// [`PairDataset::aggregate_by_key`]).
    pub fn aggregate<M, F>(&self, zero: F::Value, to: M, comb: F) -> Result<F::Value>
    where
        M: MapFn<Input = Plain<T>, Output = Plain<F::Value>>,
        F: ReduceFn,
        F::Value: 'static,
    {
        self.map(to).fold(zero, comb)
    }
}

impl<T: Key + Record + 'static> Dataset<T> {
    /// Every pair `(t, u)` of a record `t` of this dataset and `u` of the
    /// other. All the pairs are made in one task (both sides keyed by `()`
    /// and joined), so keep one side small.
    pub fn cartesian<U: Record + 'static>(&self, other: &Dataset<U>) -> PairDataset<T, U> {
        let left = PairDataset::<(), T>::from_handle(self.handle.builtin("unit-key", &[], true));
        let right = PairDataset::<(), U>::from_handle(other.handle.builtin("unit-key", &[], true));
        let joined = left.join(&right, 1).handle;
        PairDataset::from_handle(joined.with_schema::<T>("unnest", "cartesian", &[], true))
    }

    /// The number of times each record occurs, into `partitions` partitions
    /// (0: as many as this dataset has), counted natively in the host.
    pub fn count_by_value(&self, partitions: u32) -> PairDataset<T, i64> {
        let ones = self.handle.with_schema::<T>("count-self", "count_by_value", &[], true);
        PairDataset::from_handle(ones.shuffle(ShuffleOp::SumByKey, partitions))
    }

    /// Each record once, into `partitions` partitions (0: as many as this
    /// dataset has), in no particular order.
    pub fn distinct(&self, partitions: u32) -> Dataset<T> {
        self.count_by_value(partitions).keys()
    }

    /// Action: the `n` largest records, largest first.
    pub fn top(&self, n: usize) -> Result<Vec<T>> {
        self.ordered(n, false)
    }

    /// Action: the `n` smallest records, smallest first.
    pub fn take_ordered(&self, n: usize) -> Result<Vec<T>> {
        self.ordered(n, true)
    }

    fn ordered(&self, n: usize, ascending: bool) -> Result<Vec<T>> {
        let keyed = self.handle.with_schema::<T>("key-self", "top", &[], true);
        PairDataset::<T, T>::from_handle(keyed).sort_by_key(ascending, 0).values().take(n)
    }
}

impl<T: Key + Record + fmt::Display + 'static> Dataset<T> {
    /// Action: write each record as one line (its `Display` text and `\n`)
    /// under `uri`, committed atomically.
    pub fn save_as_text_file(&self, uri: &str) -> Result<()> {
        let lines = match T::schema() {
            // A `String` record is its line already.
            Some(Schema::Str) => self.handle,
            _ => self.handle.with_schema::<T>("display", "save_as_text_file", &[], false),
        };
        crate::host::driver::save_as_text_file(lines.id()?, uri)
    }
}

impl<K, V> PairDataset<K, V>
where
    K: Key + fmt::Display + 'static,
    V: Key + Record + fmt::Display + 'static,
{
    /// Action: write each pair as one line, `key<TAB>value` as `Display`
    /// writes them, under `uri`, committed atomically.
    pub fn save_as_text_file(&self, uri: &str) -> Result<()> {
        let lines = match V::schema() {
            Some(v) => {
                self.handle.with_schema::<K>("display-pairs", "save_as_text_file", &[&v.to_string()], false)
            }
            None => Handle::new(Err(no_schema::<V>("save_as_text_file"))),
        };
        crate::host::driver::save_as_text_file(lines.id()?, uri)
    }
}
