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
//! Between two steps a sink is a `Box<dyn Sink<T>>`; erased, it travels as a
//! `Box<dyn Any>` holding that box, and each link downcasts it back to the one
//! type its function produces. The downcasts happen once per batch, not per
//! record. The last step is built with its encoder or combiner inside it, as
//! one monomorphic sink, so that the compiler can inline the end of the
//! pipeline into it: in `flat_map(split).map(one)` in front of
//! `reduce_by_key(add)`, the only dynamic call per word is the one from
//! `split`'s feed into `one`-and-the-fold. (A one-step pipeline's feed calls
//! its encoder or combiner through one dynamic call per record.)

use crate::dispatch::{CallError, decode_error, framing_error, running, user_error};
use crate::function::{ApplyError, FilterFn, FlatMapFn, Item, MapFn, ReduceFn, Transform};
use crate::layout::Layout;
use crate::param::{Binding, scope};
use crate::record::Record;
use crate::registry::ApplyFn;
use rustc_hash::FxHasher;
use std::any::{Any, TypeId};
use std::hash::Hasher;
use weft_codec::batch::BatchWriter;
use weft_codec::key::Key;

/// Takes the records one step produces.
#[doc(hidden)]
pub trait Sink<T> {
    /// One record.
    fn put(&mut self, item: T) -> Result<(), CallError>;
    /// The batch the pipeline's last step encoded into.
    fn finish(self: Box<Self>) -> BatchWriter;
    /// About how many bytes the pipeline holds (what `finish` would return).
    fn held(&self) -> usize;
}

type SinkBox<T> = Box<dyn Sink<T>>;

impl<T> Sink<T> for SinkBox<T> {
    #[inline]
    fn put(&mut self, item: T) -> Result<(), CallError> {
        (**self).put(item)
    }
    fn finish(self: Box<Self>) -> BatchWriter {
        <dyn Sink<T> as Sink<T>>::finish(*self)
    }
    fn held(&self) -> usize {
        (**self).held()
    }
}

/// Builds one step's sink in front of a next sink of any type (the step's
/// output type), so that the pair can be one monomorphic sink.
#[doc(hidden)]
pub trait Wrap<T> {
    /// The step's sink, passing what it yields to `next`, erased.
    fn wrap<N: Sink<T> + 'static>(next: N) -> Erased;
}

/// A sink of some record type, erased (a boxed [`SinkBox`]).
type Erased = Box<dyn Any>;
/// Builds a sink in front of another, or from an erased reducer; `None` when the types differ.
type WrapFn = fn(Erased) -> Option<Erased>;
/// Feeds a batch through a function into an erased sink.
type FeedFn = fn(&[u8], &mut Erased) -> Result<(), CallError>;

fn erase<T: 'static>(sink: impl Sink<T> + 'static) -> Erased {
    let sink: SinkBox<T> = Box::new(sink);
    Box::new(sink)
}

/// No step: the sink itself (the end of a one-step pipeline, which its
/// feed function drives).
struct Alone;

impl<T: 'static> Wrap<T> for Alone {
    fn wrap<N: Sink<T> + 'static>(next: N) -> Erased {
        erase::<T>(next)
    }
}

/// The type-erased parts of a per-record function that fusing needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fuse {
    /// The type of a record the function takes.
    pub input: fn() -> TypeId,
    /// The type of a record it produces.
    pub output: fn() -> TypeId,
    /// A sink of the function's output type that encodes into a batch.
    terminal: fn(BatchWriter) -> Erased,
    /// A sink of the function's output type that folds pairs with a
    /// [`Reducer`] (erased); `None` unless the output is pairs of its value type.
    combining: WrapFn,
    /// A sink of the function's input type that applies it and passes its
    /// outputs to `next`, a sink of its output type.
    link: WrapFn,
    /// A sink of the function's input type that applies it and encodes its
    /// outputs, as one sink.
    link_encoding: fn(BatchWriter) -> Erased,
    /// A sink of the function's input type that applies it and folds its
    /// outputs with a [`Reducer`] (erased), as one sink; `None` as for `combining`.
    link_combining: WrapFn,
    /// Decode `input`, apply the function to each record and pass its outputs
    /// to the sink (of its output type).
    feed: FeedFn,
    /// Finish a sink of the function's output type.
    finish: fn(Erased) -> Result<BatchWriter, CallError>,
    /// What a sink of the function's output type holds.
    held: fn(&Erased) -> usize,
    /// The function's parameter in this step (see [`param`](crate::param)).
    binding: Binding,
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
        Self::of::<Mapping<F>, F::Input, F::Output>(feed_map::<F>)
    }

    /// The parts of a `#[weft::filter]` function (its records go out as they came in).
    pub(crate) const fn filter<F: FilterFn>() -> Self {
        Self::of::<Filtering<F>, F::Input, F::Input>(feed_filter::<F>)
    }

    /// The parts of a `#[weft::flat_map]` function.
    pub(crate) const fn flat_map<F: FlatMapFn>() -> Self {
        Self::of::<FlatMapping<F>, F::Input, F::Output>(feed_flat_map::<F>)
    }

    const fn of<W: Wrap<O::Item>, I: Layout, O: Layout>(feed: FeedFn) -> Self {
        Fuse {
            input: TypeId::of::<I::Item>,
            output: TypeId::of::<O::Item>,
            terminal: encoder::<Alone, O>,
            combining: O::combining::<Alone>,
            link: link::<W, O::Item>,
            link_encoding: encoder::<W, O>,
            link_combining: O::combining::<W>,
            feed,
            finish: finish::<O::Item>,
            held: held::<O::Item>,
            binding: None,
        }
    }

    /// These parts in a step whose function has `binding` as its parameter.
    pub(crate) fn bound(self, binding: Binding) -> Self {
        Fuse { binding, ..self }
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
    /// Link `steps` (at least one, each feeding the next, see [`Fuse::feeds`]):
    /// `end` builds the last step's sink with what follows it inside (or,
    /// for a one-step pipeline, what follows it alone).
    fn new(
        steps: &[Fuse],
        end: impl FnOnce(&Fuse, bool) -> Option<Erased>,
    ) -> Option<Result<Self, CallError>> {
        let Some((first, rest)) = steps.split_first() else { return Some(Err(broken("an empty pipeline"))) };
        // Each step's function values are made (`Default`) with its parameter bound.
        let mut sink = match rest.split_last() {
            None => scope(first.binding, || end(first, false))?,
            Some((last, _)) => scope(last.binding, || end(last, true))?,
        };
        for step in rest.iter().rev().skip(1) {
            sink = match scope(step.binding, || (step.link)(sink)) {
                Some(sink) => sink,
                None => return Some(Err(broken("steps whose types do not line up"))),
            };
        }
        Some(Ok(Pipeline { first: *first, sink }))
    }

    /// Run one batch through.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(), CallError> {
        scope(self.first.binding, || (self.first.feed)(input, &mut self.sink))
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
    let out = BatchWriter::with_capacity(capacity);
    let end =
        |last: &Fuse, linked| Some(if linked { (last.link_encoding)(out) } else { (last.terminal)(out) });
    Pipeline::new(steps, end).unwrap_or_else(|| Err(broken("an encoder that cannot be built")))
}

/// `steps` folding their last step's pairs with `combine` as they come;
/// `None` when the last step does not yield pairs of the reduce function's
/// value type.
pub(crate) fn combining(steps: &[Fuse], combine: Combine) -> Option<Result<Pipeline, CallError>> {
    let reducer = (combine.reducer)();
    Pipeline::new(
        steps,
        |last, linked| {
            if linked { (last.link_combining)(reducer) } else { (last.combining)(reducer) }
        },
    )
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

/// `W`'s sink in front of an encoder of layout `L`.
fn encoder<W: Wrap<L::Item>, L: Layout>(out: BatchWriter) -> Erased {
    W::wrap(Encode::<L> { out, _layout: std::marker::PhantomData })
}

/// The last sink of a combined pipeline: pairs folded by key bytes.
struct Combining<K, V> {
    reduce: Reducer<V>,
    key: Vec<u8>,
    /// Each key's fold so far.
    folds: hashbrown::HashTable<Fold<V>>,
    /// Key bytes plus a fixed cost per entry: what [`Sink::held`] reports.
    bytes: usize,
    _key: std::marker::PhantomData<fn(K)>,
}

/// One key's fold.
struct Fold<V> {
    key: Box<[u8]>,
    hash: u64,
    /// When the key first came: the output order.
    order: usize,
    value: Option<V>,
}

/// What one folded key costs besides its bytes: the boxed key, its hash, the
/// order, the value (its own heap parts not counted) and the table's slack.
const FOLD_ENTRY_BYTES: usize = 48;

/// The hash of a key's bytes.
#[inline(always)]
fn key_hash(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// Byte equality, eight bytes at a time and inline: `==` on slices calls the
/// C library's `memcmp`, a byte loop in wasi-libc, once per record.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((a8, a_rest), (b8, b_rest)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    a8.iter().zip(b8).all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && a_rest.iter().zip(b_rest).all(|(x, y)| x == y)
}

impl<K: Key, V: Record> Combining<K, V> {
    /// Start folding a key not seen before (rare: once per distinct key per
    /// task), keeping its bytes; a string key's own buffer is taken over.
    #[cold]
    #[inline(never)]
    fn insert(&mut self, hash: u64, k: K, v: V) {
        let key = if k.key_bytes_in_place().is_some() { k.into_key_bytes() } else { self.key.clone() };
        let order = self.folds.len();
        self.bytes += key.len() + FOLD_ENTRY_BYTES + size_of::<V>();
        let fold = Fold { key: key.into_boxed_slice(), hash, order, value: Some(v) };
        self.folds.insert_unique(hash, fold, |f| f.hash);
    }
}

impl<K: Key, V: Record> Sink<(K, V)> for Combining<K, V> {
    // Always inlined into the step in front, with the rare path kept out.
    #[inline(always)]
    fn put(&mut self, (k, v): (K, V)) -> Result<(), CallError> {
        // A string key is its own bytes: look it up without copying it.
        let bytes = match k.key_bytes_in_place() {
            Some(bytes) => bytes,
            None => {
                self.key.clear();
                k.encode_key(&mut self.key, true);
                self.key.as_slice()
            }
        };
        let hash = key_hash(bytes);
        match self.folds.find_mut(hash, |f| same_bytes(&f.key, bytes)) {
            Some(fold) => {
                let acc = fold.value.take().ok_or_else(|| broken("a combine slot without a value"))?;
                fold.value = Some((self.reduce)(acc, v)?);
            }
            None => self.insert(hash, k, v),
        }
        Ok(())
    }

    fn held(&self) -> usize {
        self.bytes
    }

    fn finish(self: Box<Self>) -> BatchWriter {
        let mut folds: Vec<_> = self.folds.into_iter().collect();
        folds.sort_unstable_by_key(|f| f.order);
        let mut out = BatchWriter::new();
        for fold in folds {
            if let Some(v) = fold.value {
                out.push(&fold.key);
                out.push_with(|o| v.encode(o));
            }
        }
        out
    }
}

/// `W`'s sink in front of a combining sink for pairs of `(K, V)`, if
/// `reducer` folds `V`s.
pub(crate) fn combining_sink<W: Wrap<(K, V)>, K: Key + 'static, V: Record + 'static>(
    reducer: Box<dyn Any>,
) -> Option<Box<dyn Any>> {
    let reduce = *reducer.downcast::<Reducer<V>>().ok()?;
    Some(W::wrap(Combining::<K, V> {
        reduce,
        key: Vec::new(),
        folds: hashbrown::HashTable::new(),
        bytes: 0,
        _key: std::marker::PhantomData,
    }))
}

/// `W`'s sink in front of an erased sink of type `T`.
fn link<W: Wrap<T>, T: 'static>(next: Box<dyn Any>) -> Option<Box<dyn Any>> {
    Some(W::wrap(unerase::<T>(next).ok()?))
}

/// Builds [`MapSink`]s.
struct Mapping<F>(std::marker::PhantomData<F>);
/// Builds [`FilterSink`]s.
struct Filtering<F>(std::marker::PhantomData<F>);
/// Builds [`FlatMapSink`]s.
struct FlatMapping<F>(std::marker::PhantomData<F>);

impl<F: MapFn> Wrap<Item<F::Output>> for Mapping<F> {
    fn wrap<N: Sink<Item<F::Output>> + 'static>(next: N) -> Erased {
        erase::<Item<F::Input>>(MapSink { f: F::default(), next })
    }
}

impl<F: FilterFn> Wrap<Item<F::Input>> for Filtering<F> {
    fn wrap<N: Sink<Item<F::Input>> + 'static>(next: N) -> Erased {
        erase::<Item<F::Input>>(FilterSink { f: F::default(), next })
    }
}

impl<F: FlatMapFn> Wrap<Item<F::Output>> for FlatMapping<F> {
    fn wrap<N: Sink<Item<F::Output>> + 'static>(next: N) -> Erased {
        erase::<Item<F::Input>>(FlatMapSink { f: F::default(), next })
    }
}

/// A step's sink ends and measures what follows it: `finish` and `held`
/// forward to its `next` sink.
macro_rules! forward_to_next {
    () => {
        fn finish(self: Box<Self>) -> BatchWriter {
            Box::new(self.next).finish()
        }
        fn held(&self) -> usize {
            self.next.held()
        }
    };
}

struct MapSink<F, N> {
    f: F,
    next: N,
}

impl<F: MapFn, N: Sink<Item<F::Output>>> Sink<Item<F::Input>> for MapSink<F, N> {
    #[inline]
    fn put(&mut self, item: Item<F::Input>) -> Result<(), CallError> {
        running(F::NAME);
        let out = self.f.apply(item).map_err(user_error::<F>)?;
        self.next.put(out)
    }
    forward_to_next!();
}

struct FilterSink<F, N> {
    f: F,
    next: N,
}

impl<F: FilterFn, N: Sink<Item<F::Input>>> Sink<Item<F::Input>> for FilterSink<F, N> {
    #[inline]
    fn put(&mut self, item: Item<F::Input>) -> Result<(), CallError> {
        running(F::NAME);
        let keep = self.f.apply(&item).map_err(user_error::<F>)?;
        if keep { self.next.put(item) } else { Ok(()) }
    }
    forward_to_next!();
}

struct FlatMapSink<F, N> {
    f: F,
    next: N,
}

impl<F: FlatMapFn, N: Sink<Item<F::Output>>> Sink<Item<F::Input>> for FlatMapSink<F, N> {
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
    forward_to_next!();
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
