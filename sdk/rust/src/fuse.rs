//! Fused chains: consecutive per-record steps run record by record, typed.
//!
//! Run one step at a time, a chain `flat_map(split_words) → map(one)` encodes
//! every word into a batch and decodes it again (a UTF-8 check and an
//! allocation each) before `one` sees it. When a step's output type is the next
//! step's input type, the dispatcher instead links the steps into one pipeline,
//! as Spark pipelines the iterators of a stage: the first step decodes each
//! input record, and every value it yields goes straight to the next function,
//! down to the last, whose outputs alone are encoded.
//!
//! Only **map**, **filter** and **flat-map** fuse (a **map-batch** or a
//! **reduce** works on a whole batch). The pipeline is built from type-erased
//! parts every registration carries ([`Fuse`]): whether two steps can be linked
//! is decided by comparing the [`TypeId`]s of their record types, and a step
//! whose types do not line up starts a new pipeline behind an ordinary batch.
//!
//! A **combine** right behind a pipeline (reduce_by_key's map-side combine)
//! becomes its last sink: the pairs the last function yields are folded into
//! a hash table keyed by their key bytes, and only one pair per key is ever
//! encoded ([`combining`]). Such a pipeline can outlive the call: see
//! [`run_chain`](crate::dispatch::run_chain) and `flush-chain`.
//!
//! A sink is a `Box<dyn Sink<T>>`; erased, it travels as a `Box<dyn Any>`
//! holding that box, and each link downcasts it back to the one type its
//! function produces. The downcasts happen once per batch, not per record.

use crate::dispatch::{CallError, decode_error, framing_error, running, user_error};
use crate::function::{ApplyError, FilterFn, FlatMapFn, Item, MapFn, ReduceFn, Transform};
use crate::layout::Layout;
use crate::record::Record;
use crate::registry::ApplyFn;
use rustc_hash::FxBuildHasher;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use weft_codec::batch::BatchWriter;
use weft_codec::key::Key;

/// Takes the records one step produces.
pub(crate) trait Sink<T> {
    /// One record.
    fn put(&mut self, item: T) -> Result<(), CallError>;
    /// The batch the pipeline's last step encoded into.
    fn finish(self: Box<Self>) -> BatchWriter;
    /// About how many bytes the pipeline holds (what `finish` would return).
    fn held(&self) -> usize;
}

type SinkBox<T> = Box<dyn Sink<T>>;

/// A sink of some record type, erased (a boxed [`SinkBox`]).
type Erased = Box<dyn Any>;
/// Builds a sink in front of another, or from an erased reducer; `None` when the types differ.
type WrapFn = fn(Erased) -> Option<Erased>;
/// Feeds a batch through a function into an erased sink.
type FeedFn = fn(&[u8], &mut Erased) -> Result<(), CallError>;

/// The type-erased parts of a per-record function that fusing needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fuse {
    /// The type of a record the function takes.
    pub input: fn() -> TypeId,
    /// The type of a record it produces.
    pub output: fn() -> TypeId,
    /// A sink of the function's output type that encodes into a batch.
    terminal: fn(BatchWriter) -> Erased,
    /// A sink of the function's input type that applies it and passes its
    /// outputs to `next`, a sink of its output type.
    link: WrapFn,
    /// Decode `input`, apply the function to each record and pass its outputs
    /// to the sink (of its output type).
    feed: FeedFn,
    /// Finish a sink of the function's output type.
    finish: fn(Erased) -> Result<BatchWriter, CallError>,
    /// What a sink of the function's output type holds.
    held: fn(&Erased) -> usize,
    /// A sink of the function's output type that folds pairs with a
    /// [`Reducer`] (erased); `None` unless the output is pairs of its value type.
    combining: WrapFn,
}

/// Folds two values of one key: a reduce function, with its errors named.
pub(crate) type Reducer<V> = fn(V, V) -> Result<V, CallError>;

/// How a reduce function runs as a combine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Combine {
    /// Over a batch of pairs in any order.
    pub apply: ApplyFn,
    /// Its [`Reducer`], erased.
    reducer: fn() -> Box<dyn Any>,
}

impl Combine {
    /// The combine of a `#[weft::reduce]` function.
    pub(crate) const fn of<F: ReduceFn>() -> Self
    where
        F::Value: 'static,
    {
        Combine { apply: crate::dispatch::apply_combine::<F>, reducer: reducer::<F> }
    }
}

fn reducer<F: ReduceFn>() -> Box<dyn Any>
where
    F::Value: 'static,
{
    let fold: Reducer<F::Value> = |a, b| {
        running(F::NAME);
        F::default().apply(a, b).map_err(user_error::<F>)
    };
    Box::new(fold)
}

impl Fuse {
    /// The parts of a `#[weft::map]` function.
    pub(crate) const fn map<F: MapFn>() -> Self {
        Self::of::<F::Input, F::Output>(link::<MapSink<F>>, feed_map::<F>)
    }

    /// The parts of a `#[weft::filter]` function (its records go out as they came in).
    pub(crate) const fn filter<F: FilterFn>() -> Self {
        Self::of::<F::Input, F::Input>(link::<FilterSink<F>>, feed_filter::<F>)
    }

    /// The parts of a `#[weft::flat_map]` function.
    pub(crate) const fn flat_map<F: FlatMapFn>() -> Self {
        Self::of::<F::Input, F::Output>(link::<FlatMapSink<F>>, feed_flat_map::<F>)
    }

    const fn of<I: Layout, O: Layout>(link: WrapFn, feed: FeedFn) -> Self {
        Fuse {
            input: TypeId::of::<I::Item>,
            output: TypeId::of::<O::Item>,
            terminal: terminal::<O>,
            link,
            feed,
            finish: finish::<O::Item>,
            held: held::<O::Item>,
            combining: O::combining,
        }
    }

    /// Whether `next` can take this function's outputs directly.
    pub(crate) fn feeds(&self, next: &Fuse) -> bool {
        (self.output)() == (next.input)()
    }
}

/// Fused steps in front of their last sink, ready for batches.
pub(crate) struct Pipeline {
    first: Fuse,
    sink: Erased,
}

impl Pipeline {
    /// Link `steps` (at least one, each feeding the next, see [`Fuse::feeds`])
    /// in front of `sink`, a sink of the last step's output type.
    fn new(steps: &[Fuse], mut sink: Erased) -> Result<Self, CallError> {
        let (first, rest) = steps.split_first().ok_or_else(|| broken("an empty pipeline"))?;
        for step in rest.iter().rev() {
            sink = (step.link)(sink).ok_or_else(|| broken("steps whose types do not line up"))?;
        }
        Ok(Pipeline { first: *first, sink })
    }

    /// Run one batch through.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(), CallError> {
        (self.first.feed)(input, &mut self.sink)
    }

    /// About how many bytes [`finish`](Self::finish) would return.
    pub(crate) fn held(&self) -> usize {
        (self.first.held)(&self.sink)
    }

    /// The batch the last sink built.
    pub(crate) fn finish(self) -> Result<Vec<u8>, CallError> {
        Ok((self.first.finish)(self.sink)?.finish())
    }
}

/// `steps` encoding their last step's outputs into a batch of about `capacity` bytes.
pub(crate) fn encoding(steps: &[Fuse], capacity: usize) -> Result<Pipeline, CallError> {
    let last = steps.last().ok_or_else(|| broken("an empty pipeline"))?;
    Pipeline::new(steps, (last.terminal)(BatchWriter::with_capacity(capacity)))
}

/// `steps` folding their last step's pairs with `combine` as they come;
/// `None` when the last step does not yield pairs of the reduce function's
/// value type.
pub(crate) fn combining(steps: &[Fuse], combine: Combine) -> Option<Result<Pipeline, CallError>> {
    let sink = (steps.last()?.combining)((combine.reducer)())?;
    Some(Pipeline::new(steps, sink))
}

/// Run `steps` over `input`, encoding only the last step's outputs.
pub(crate) fn run(steps: &[Fuse], input: &[u8], capacity: usize) -> Result<Vec<u8>, CallError> {
    let mut pipeline = encoding(steps, capacity)?;
    pipeline.feed(input)?;
    pipeline.finish()
}

fn finish<T: 'static>(sink: Erased) -> Result<BatchWriter, CallError> {
    Ok(unerase::<T>(sink)?.finish())
}

fn held<T: 'static>(sink: &Erased) -> usize {
    sink.downcast_ref::<SinkBox<T>>().map_or(0, |s| s.held())
}

fn unerase_mut<T: 'static>(sink: &mut Erased) -> Result<&mut SinkBox<T>, CallError> {
    sink.downcast_mut::<SinkBox<T>>().ok_or_else(|| broken("a sink of another type"))
}

fn broken(what: &str) -> CallError {
    CallError::Decode(format!("internal error in the weft SDK: fused {what}"))
}

fn unerase<T: 'static>(sink: Box<dyn Any>) -> Result<SinkBox<T>, CallError> {
    sink.downcast::<SinkBox<T>>().map(|b| *b).map_err(|_| broken("a sink of another type"))
}

/// The last sink: encodes each record with layout `L`.
struct Encode<L: Layout> {
    out: BatchWriter,
    _layout: std::marker::PhantomData<L>,
}

impl<L: Layout> Sink<L::Item> for Encode<L> {
    #[inline]
    fn put(&mut self, item: L::Item) -> Result<(), CallError> {
        L::encode(&item, &mut self.out);
        Ok(())
    }
    fn finish(self: Box<Self>) -> BatchWriter {
        self.out
    }
    fn held(&self) -> usize {
        self.out.len()
    }
}

fn terminal<L: Layout>(out: BatchWriter) -> Erased {
    let sink: SinkBox<L::Item> = Box::new(Encode::<L> { out, _layout: std::marker::PhantomData });
    Box::new(sink)
}

/// The last sink of a combined pipeline: pairs folded by key bytes.
struct Combining<K, V> {
    reduce: Reducer<V>,
    key: Vec<u8>,
    /// Each key's fold so far, and when the key first came (the output order).
    folds: HashMap<Box<[u8]>, (usize, Option<V>), FxBuildHasher>,
    /// Key bytes plus a fixed cost per entry: what [`Sink::held`] reports.
    bytes: usize,
    _key: std::marker::PhantomData<fn(K)>,
}

/// What one folded key costs besides its bytes: the boxed key, the order, the
/// value (its own heap parts not counted) and the table's slack.
const FOLD_ENTRY_BYTES: usize = 48;

impl<K: Key, V: Record> Sink<(K, V)> for Combining<K, V> {
    #[inline]
    fn put(&mut self, (k, v): (K, V)) -> Result<(), CallError> {
        self.key.clear();
        k.encode_key(&mut self.key, true);
        drop(k);
        match self.folds.get_mut(self.key.as_slice()) {
            Some((_, slot)) => {
                let acc = slot.take().ok_or_else(|| broken("a combine slot without a value"))?;
                *slot = Some((self.reduce)(acc, v)?);
            }
            None => {
                let order = self.folds.len();
                self.bytes += self.key.len() + FOLD_ENTRY_BYTES + size_of::<V>();
                self.folds.insert(self.key.as_slice().into(), (order, Some(v)));
            }
        }
        Ok(())
    }

    fn held(&self) -> usize {
        self.bytes
    }

    fn finish(self: Box<Self>) -> BatchWriter {
        let mut folds: Vec<_> = self.folds.into_iter().collect();
        folds.sort_unstable_by_key(|(_, (order, _))| *order);
        let mut out = BatchWriter::new();
        for (key, (_, v)) in folds {
            if let Some(v) = v {
                out.push(&key);
                out.push_with(|o| v.encode(o));
            }
        }
        out
    }
}

/// A combining sink for pairs of `(K, V)`, if `reducer` folds `V`s.
pub(crate) fn combining_sink<K: Key + 'static, V: Record + 'static>(
    reducer: Box<dyn Any>,
) -> Option<Box<dyn Any>> {
    let reduce = *reducer.downcast::<Reducer<V>>().ok()?;
    let sink: SinkBox<(K, V)> = Box::new(Combining::<K, V> {
        reduce,
        key: Vec::new(),
        folds: HashMap::default(),
        bytes: 0,
        _key: std::marker::PhantomData,
    });
    Some(Box::new(sink))
}

/// A sink that applies a function and passes what it yields to the next sink.
trait Linked: Sink<Self::In> + 'static {
    type In: 'static;
    type Out: 'static;
    fn new(next: SinkBox<Self::Out>) -> Self;
}

fn link<S: Linked>(next: Box<dyn Any>) -> Option<Box<dyn Any>> {
    let next = unerase::<S::Out>(next).ok()?;
    let sink: SinkBox<S::In> = Box::new(S::new(next));
    Some(Box::new(sink))
}

struct MapSink<F: MapFn> {
    f: F,
    next: SinkBox<Item<F::Output>>,
}

impl<F: MapFn> Linked for MapSink<F> {
    type In = Item<F::Input>;
    type Out = Item<F::Output>;
    fn new(next: SinkBox<Self::Out>) -> Self {
        MapSink { f: F::default(), next }
    }
}

impl<F: MapFn> Sink<Item<F::Input>> for MapSink<F> {
    #[inline]
    fn put(&mut self, item: Item<F::Input>) -> Result<(), CallError> {
        running(F::NAME);
        let out = self.f.apply(item).map_err(user_error::<F>)?;
        self.next.put(out)
    }
    fn finish(self: Box<Self>) -> BatchWriter {
        self.next.finish()
    }
    fn held(&self) -> usize {
        self.next.held()
    }
}

struct FilterSink<F: FilterFn> {
    f: F,
    next: SinkBox<Item<F::Input>>,
}

impl<F: FilterFn> Linked for FilterSink<F> {
    type In = Item<F::Input>;
    type Out = Item<F::Input>;
    fn new(next: SinkBox<Self::Out>) -> Self {
        FilterSink { f: F::default(), next }
    }
}

impl<F: FilterFn> Sink<Item<F::Input>> for FilterSink<F> {
    #[inline]
    fn put(&mut self, item: Item<F::Input>) -> Result<(), CallError> {
        running(F::NAME);
        let keep = self.f.apply(&item).map_err(user_error::<F>)?;
        if keep { self.next.put(item) } else { Ok(()) }
    }
    fn finish(self: Box<Self>) -> BatchWriter {
        self.next.finish()
    }
    fn held(&self) -> usize {
        self.next.held()
    }
}

struct FlatMapSink<F: FlatMapFn> {
    f: F,
    next: SinkBox<Item<F::Output>>,
}

impl<F: FlatMapFn> Linked for FlatMapSink<F> {
    type In = Item<F::Input>;
    type Out = Item<F::Output>;
    fn new(next: SinkBox<Self::Out>) -> Self {
        FlatMapSink { f: F::default(), next }
    }
}

impl<F: FlatMapFn> Sink<Item<F::Input>> for FlatMapSink<F> {
    #[inline]
    fn put(&mut self, item: Item<F::Input>) -> Result<(), CallError> {
        running(F::NAME);
        let next = &mut self.next;
        let mut failed = None;
        self.f
            .apply(item, &mut |out| {
                if failed.is_none()
                    && let Err(e) = next.put(out)
                {
                    failed = Some(e);
                }
                // Back in this function's code.
                running(F::NAME);
            })
            .map_err(user_error::<F>)?;
        failed.map_or(Ok(()), Err)
    }
    fn finish(self: Box<Self>) -> BatchWriter {
        self.next.finish()
    }
    fn held(&self) -> usize {
        self.next.held()
    }
}

/// Read the records of `input` one at a time, undecoded, with their index.
#[inline]
fn each_raw<F: Transform>(
    input: &[u8],
    mut each: impl FnMut(usize, <F::Input as Layout>::Raw<'_>) -> Result<(), CallError>,
) -> Result<(), CallError> {
    for (index, raw) in F::Input::reader(input).enumerate() {
        each(index, raw.map_err(|e| framing_error::<F>(index, e))?)?;
    }
    Ok(())
}

fn applied<F: Transform>(index: usize, e: ApplyError) -> CallError {
    match e {
        ApplyError::Decode(e) => decode_error::<F>(index, e),
        ApplyError::User(e) => user_error::<F>(e),
    }
}

fn feed_map<F: MapFn>(input: &[u8], sink: &mut Erased) -> Result<(), CallError> {
    let sink = unerase_mut::<Item<F::Output>>(sink)?;
    let f = F::default();
    each_raw::<F>(input, |index, raw| {
        running(F::NAME);
        let out = f.apply_raw(raw).map_err(|e| applied::<F>(index, e))?;
        sink.put(out)
    })
}

fn feed_filter<F: FilterFn>(input: &[u8], sink: &mut Erased) -> Result<(), CallError> {
    let sink = unerase_mut::<Item<F::Input>>(sink)?;
    let f = F::default();
    each_raw::<F>(input, |index, raw| {
        // The kept record goes on decoded, so decode it once, before asking.
        let item = F::Input::decode(raw).map_err(|e| decode_error::<F>(index, e))?;
        running(F::NAME);
        let keep = f.apply(&item).map_err(user_error::<F>)?;
        if keep { sink.put(item) } else { Ok(()) }
    })
}

fn feed_flat_map<F: FlatMapFn>(input: &[u8], sink: &mut Erased) -> Result<(), CallError> {
    let sink = unerase_mut::<Item<F::Output>>(sink)?;
    let f = F::default();
    each_raw::<F>(input, |index, raw| {
        running(F::NAME);
        let mut failed = None;
        f.apply_raw(raw, &mut |out| {
            if failed.is_none()
                && let Err(e) = sink.put(out)
            {
                failed = Some(e);
            }
            running(F::NAME);
        })
        .map_err(|e| applied::<F>(index, e))?;
        failed.map_or(Ok(()), Err)
    })
}
