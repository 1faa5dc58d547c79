//! Typed dataset handles for the driver: [`Dataset<T>`] and [`PairDataset<K, V>`].
//! The operators composed from the host's primitives are in [`ops`].
//!
//! A dataset is a handle to a lazily computed collection the host keeps; nothing
//! runs until an action (`collect`, `count`, `take`, `save_as_text_file`). Like
//! Spark's transformations, the methods that make a new dataset do not return a
//! `Result`: a failure there (say, the host rejects an argument) is remembered
//! in the handle and reported by the first action on it or on anything derived
//! from it. Handles are `Copy`; use one as often as you like.

use crate::error::{Error, Result};
use crate::function::{FilterFn, FlatMapFn, Function, MapBatchFn, MapFn, OpKind, ReduceFn, Transform};
use crate::host::{self, Fold, ShuffleOp};
use crate::layout::{self, Layout, Pair, Plain};
use crate::param::{Bindable, Param};
use crate::record::Record;
use std::cell::RefCell;

/// Where agents keep a persisted dataset's partitions (Spark's `StorageLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageLevel {
    /// In memory, within the agent's memory budget; what does not fit, or is
    /// evicted to make room, is computed again when next needed.
    MemoryOnly,
    /// In memory while it fits; what does not, or is evicted, goes to the
    /// agent's disk.
    MemoryAndDisk,
    /// On the agent's disk only.
    DiskOnly,
}
use std::fmt;
use std::marker::PhantomData;
use weft_codec::key::Key;

mod ops;
mod sides;

/// The host's id for a dataset, or the error that prevented making it.
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Handle(Inner);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Inner {
    Id(u32),
    /// Index into `FAILURES`.
    Failed(usize),
}

thread_local! {
    /// Errors of transformations, reported by later actions. A driver makes few
    /// datasets, so this is never large.
    static FAILURES: RefCell<Vec<Error>> = const { RefCell::new(Vec::new()) };
}

impl Handle {
    pub(crate) fn new(made: Result<u32>) -> Handle {
        match made {
            Ok(id) => Handle(Inner::Id(id)),
            Err(e) => FAILURES.with(|f| {
                let mut f = f.borrow_mut();
                f.push(e);
                Handle(Inner::Failed(f.len() - 1))
            }),
        }
    }

    /// The host's id, or the remembered error.
    pub(crate) fn id(self) -> Result<u32> {
        match self.0 {
            Inner::Id(id) => Ok(id),
            Inner::Failed(i) => Err(FAILURES
                .with(|f| f.borrow().get(i).cloned())
                .unwrap_or_else(|| Error::InvalidArgument("dataset handle from another run".into()))),
        }
    }

    /// A new dataset made from this one by `make`; a failure propagates.
    fn derive(self, make: impl FnOnce(u32) -> Result<u32>) -> Handle {
        Handle::new(self.id().and_then(make))
    }

    /// A narrow step applying `F`, with its parameter if bound (shipped as a
    /// broadcast value unless it is one already).
    fn narrow<F: Function>(self, param: Option<Param>, keyed: bool) -> Handle {
        self.derive(|id| {
            let param = match (param, F::PARAM) {
                (None, None) => None,
                (None, Some(spec)) => {
                    return Err(Error::InvalidArgument(format!(
                        "`{0}` takes a parameter of type `{1}`: bind one with `{0}.with(&value)`",
                        F::NAME,
                        spec.type_name()
                    )));
                }
                (Some(Param::Value(bytes)), _) => Some(host::driver::broadcast(&bytes)?),
                (Some(Param::Broadcast(id)), _) => Some(id),
            };
            host::driver::narrow_bound(id, F::KIND, name_of::<F>(), param, keyed)
        })
    }

    /// A built-in step (a reserved `weft:` name, no parameter).
    pub(crate) fn named(self, kind: OpKind, function: &str, keyed: bool) -> Handle {
        self.derive(|id| host::driver::narrow_bound(id, kind, function, None, keyed))
    }

    /// The `weft:partition` step applying `F` to each whole partition.
    fn whole_partitions<F: MapBatchFn>(self) -> Handle {
        let name = crate::builtin::name("partition", &[name_of::<F>()]);
        self.named(OpKind::MapBatch, &name, F::Output::KEYED)
    }

    fn shuffle(self, op: ShuffleOp<'_>, partitions: u32) -> Handle {
        self.derive(|id| host::driver::shuffle(id, op, partitions))
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Inner::Id(id) => write!(f, "#{id}"),
            Inner::Failed(_) => f.write_str("failed"),
        }
    }
}

/// The dataset a [`Transform`]'s output makes.
fn output_of<B: Bindable>(parent: Handle, f: B) -> Output<B>
where
    B::Function: Transform,
{
    let keyed = <B::Function as Transform>::Output::KEYED;
    <B::Function as Transform>::Output::dataset(parent.narrow::<B::Function>(f.into_param(), keyed))
}

/// The dataset a step applying `B`'s function makes.
type Output<B> = <<<B as Bindable>::Function as Transform>::Output as Layout>::Dataset;

/// `F`'s name, read from its registration (see `Function::registration` for why).
fn name_of<F: Function>() -> &'static str {
    F::registration().name
}

/// A dataset of records of type `T` (one batch entry per record).
///
/// Made by [`Context::text_file`](crate::Context::text_file) (a `Dataset<String>`
/// of lines), [`Context::parallelize`](crate::Context::parallelize) and the
/// transformations. A transformation whose function returns a 2-tuple makes a
/// [`PairDataset`] instead.
pub struct Dataset<T> {
    handle: Handle,
    _records: PhantomData<fn() -> T>,
}

/// A dataset of `(K, V)` pairs: the key in the order-preserving
/// [`Key`] encoding, so the host can partition, sort, group and join on it.
pub struct PairDataset<K, V> {
    handle: Handle,
    _records: PhantomData<fn() -> (K, V)>,
}

macro_rules! handle_impls {
    ($name:ident < $($p:ident),+ >) => {
        impl<$($p),+> Clone for $name<$($p),+> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<$($p),+> Copy for $name<$($p),+> {}
        impl<$($p),+> fmt::Debug for $name<$($p),+> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let types = [$(std::any::type_name::<$p>()),+];
                write!(f, "{}<{}>({:?})", stringify!($name), types.join(", "), self.handle)
            }
        }
        impl<$($p),+> $name<$($p),+> {
            pub(crate) fn from_handle(handle: Handle) -> Self {
                $name { handle, _records: PhantomData }
            }
        }
    };
}
handle_impls!(Dataset<T>);
handle_impls!(PairDataset<K, V>);

/// The methods both dataset kinds share, differing only in the record layout `L`.
macro_rules! common_methods {
    ($layout:ty, $item:ty) => {
        /// Apply a `#[weft::map]` function to every record: `f`, or
        /// `f.with(&value)` for a function with a parameter (see [`crate::param`]).
        pub fn map<B: Bindable>(&self, f: B) -> Output<B>
        where
            B::Function: MapFn<Input = $layout>,
        {
            output_of(self.handle, f)
        }

        /// Keep the records a `#[weft::filter]` function accepts (`f` or `f.with(&value)`).
        pub fn filter<B: Bindable>(&self, f: B) -> Self
        where
            B::Function: FilterFn<Input = $layout>,
        {
            Self::from_handle(self.handle.narrow::<B::Function>(f.into_param(), <$layout>::KEYED))
        }

        /// Apply a `#[weft::flat_map]` function (`f` or `f.with(&value)`) to
        /// every record, keeping all outputs.
        pub fn flat_map<B: Bindable>(&self, f: B) -> Output<B>
        where
            B::Function: FlatMapFn<Input = $layout>,
        {
            output_of(self.handle, f)
        }

        /// Apply a `#[weft::map_batch]` function (`f` or `f.with(&value)`) to
        /// each batch of records (about 1 MiB; a partition is many batches):
        /// for per-partition logic use [`map_partitions`](Self::map_partitions).
        pub fn map_batch<B: Bindable>(&self, f: B) -> Output<B>
        where
            B::Function: MapBatchFn<Input = $layout>,
        {
            output_of(self.handle, f)
        }

        /// Apply a `#[weft::map_batch]` function once to each whole
        /// partition (Spark's `mapPartitions`), an empty one included; inside,
        /// [`task_info`](crate::task_info)`().partition` is the partition's
        /// index. The partition is held in the task's memory until its last
        /// record has arrived.
        pub fn map_partitions<F: MapBatchFn<Input = $layout>>(
            &self,
            _f: F,
        ) -> <F::Output as Layout>::Dataset {
            F::Output::dataset(self.handle.whole_partitions::<F>())
        }

        /// Action: run a `#[weft::map_batch]` function once per whole
        /// partition, in the tasks, for its effects; its outputs are dropped.
        pub fn foreach_partition<F: MapBatchFn<Input = $layout>>(&self, _f: F) -> Result<()> {
            host::driver::count(self.handle.whole_partitions::<F>().id()?).map(drop)
        }

        /// The records of both datasets.
        pub fn union(&self, other: &Self) -> Self {
            let other = other.handle;
            Self::from_handle(self.handle.derive(|a| host::driver::union(a, other.id()?)))
        }

        /// Keep the partitions in the agents' memory once an action computes
        /// them, so later actions read them instead of computing them again
        /// (Spark's `cache()`: [`StorageLevel::MemoryOnly`]). A partition that
        /// does not fit, or is evicted, is computed again from lineage when
        /// next needed; so is one whose agent is lost.
        pub fn cache(&self) -> Self {
            self.persist(StorageLevel::MemoryOnly)
        }

        /// Keep the partitions at `level` once an action computes them.
        pub fn persist(&self, level: StorageLevel) -> Self {
            Self::from_handle(self.handle.derive(|id| host::driver::persist(id, Some(level)).map(|()| id)))
        }

        /// Stop keeping the partitions, and drop those kept (the handle stays
        /// usable: later actions compute the dataset again).
        pub fn unpersist(&self) -> Self {
            Self::from_handle(self.handle.derive(|id| host::driver::persist(id, None).map(|()| id)))
        }

        /// Action: every record, in partition order.
        pub fn collect(&self) -> Result<Vec<$item>> {
            let batch = host::driver::collect(self.handle.id()?)?;
            Ok(layout::decode_all::<$layout>(&batch)?)
        }

        /// Action: the number of records.
        pub fn count(&self) -> Result<u64> {
            host::driver::count(self.handle.id()?)
        }

        /// Action: the first `n` records.
        pub fn take(&self, n: usize) -> Result<Vec<$item>> {
            let batch = host::driver::take(self.handle.id()?, n as u64)?;
            Ok(layout::decode_all::<$layout>(&batch)?)
        }

        /// Action: the first record, `None` when there is none.
        pub fn first(&self) -> Result<Option<$item>> {
            Ok(self.take(1)?.pop())
        }

        /// Action: whether there are no records.
        pub fn is_empty(&self) -> Result<bool> {
            Ok(self.take(1)?.is_empty())
        }

        /// Action: run a `#[weft::map]` function (returning `()`, or
        /// anything: its outputs are dropped) on every record, in the tasks,
        /// for its effects (accumulators, logs).
        pub fn foreach<F: MapFn<Input = $layout>>(&self, _f: F) -> Result<()> {
            let mapped = self.handle.narrow::<F>(None, F::Output::KEYED);
            host::driver::count(mapped.id()?).map(drop)
        }
    };
}

impl<T: Record + 'static> Dataset<T> {
    common_methods!(Plain<T>, T);
}

impl<K: Key + 'static, V: Record + 'static> PairDataset<K, V> {
    common_methods!(Pair<K, V>, (K, V));

    /// Combine the values of each key with a `#[weft::reduce]` function, into
    /// `partitions` partitions (0: as many as this dataset has). The function
    /// runs map-side before the shuffle as well as after it, so it must be
    /// associative and commutative.
    pub fn reduce_by_key<F: ReduceFn<Value = V>>(&self, _f: F, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::ReduceByKey(name_of::<F>()), partitions))
    }

    /// All values of each key, in no particular order.
    pub fn group_by_key(&self, partitions: u32) -> PairDataset<K, Vec<V>> {
        PairDataset::from_handle(self.handle.shuffle(ShuffleOp::GroupByKey, partitions))
    }

    /// Totally ordered by key (the order of `K`, since keys compare as bytes).
    ///
    /// Into more than one partition, the keys are range-partitioned: the first
    /// action that needs the sort runs a sample job over this dataset first
    /// (as Spark's `RangePartitioner` does), so partition 0 holds the first
    /// keys of the order, partition 1 the next, and so on.
    pub fn sort_by_key(&self, ascending: bool, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::SortByKey(ascending), partitions))
    }

    /// Redistributed by key hash into `partitions` partitions.
    pub fn partition_by(&self, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::PartitionBy, partitions))
    }

    /// Inner join on equal keys: one `(k, (v, w))` per matching pair of records.
    pub fn join<W: Record + 'static>(
        &self,
        other: &PairDataset<K, W>,
        partitions: u32,
    ) -> PairDataset<K, (V, W)> {
        let other = other.handle;
        PairDataset::from_handle(self.handle.derive(|l| host::driver::join(l, other.id()?, partitions)))
    }
}

impl<K: Key + 'static> PairDataset<K, i64> {
    /// Sum the values of each key (wrapping), natively in the host (no
    /// guest calls), combined map-side.
    pub fn sum_by_key(&self, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::SumByKey, partitions))
    }
}

impl<K: Key + 'static> PairDataset<K, f64> {
    /// Sum the values of each key, natively in the host (no guest calls),
    /// combined map-side. Floating-point addition is not associative, so the
    /// last bits may differ from run to run.
    pub fn sum_by_key(&self, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::FoldByKey(Fold::SumF64), partitions))
    }
}

impl<K: Key + 'static, V: Number + 'static> PairDataset<K, V> {
    /// The least value of each key, natively in the host (no guest calls),
    /// combined map-side. `f64` values compare in IEEE total order
    /// (`-0.0 < 0.0`; NaN above every number).
    pub fn min_by_key(&self, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::FoldByKey(Fold::Min), partitions))
    }

    /// The greatest value of each key, as [`min_by_key`](Self::min_by_key).
    pub fn max_by_key(&self, partitions: u32) -> Self {
        Self::from_handle(self.handle.shuffle(ShuffleOp::FoldByKey(Fold::Max), partitions))
    }
}

/// The value types the host folds natively (`sum_by_key`, `min_by_key`,
/// `max_by_key`): `i64` and `f64`, whose record bytes are their 8-byte
/// order-preserving key encoding.
pub trait Number: Record + sealed::Sealed {}
impl Number for i64 {}
impl Number for f64 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i64 {}
    impl Sealed for f64 {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_transformation_is_reported_by_the_first_action() {
        let source: Dataset<String> = Dataset::from_handle(Handle::new(Ok(7)));
        assert_eq!(source.handle.id(), Ok(7));
        // Natively every driver call fails, so the narrow step records the error...
        let mapped = source.union(&source);
        assert_eq!(mapped.handle.id(), Err(Error::NotADriver));
        // ...which every dataset derived from it reports, without another host call.
        let failed =
            Dataset::<String>::from_handle(Handle::new(Err(Error::InvalidArgument("bad uri".into()))));
        let derived = failed.union(&source).cache();
        assert_eq!(derived.count(), Err(Error::InvalidArgument("bad uri".into())));
        assert_eq!(source.union(&failed).collect(), Err(Error::InvalidArgument("bad uri".into())));
        assert_eq!(format!("{failed:?}"), "Dataset<alloc::string::String>(failed)");
    }
}
