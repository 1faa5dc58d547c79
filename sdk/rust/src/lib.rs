//! Write weft jobs in Rust.
//!
//! A weft job is one WebAssembly component: the driver code in
//! `#[weft::main]` builds a graph of datasets and runs actions on it, and the
//! host runs the job's *user functions* (`#[weft::map]`, `#[weft::filter]`, ...)
//! over batches of records on the grid's agents, each in its own sandbox. This
//! crate is everything such a component needs; build it for `wasm32-wasip2`.
//!
//! ```no_run
//! # mod job {
//! use weft::prelude::*;
//!
//! #[weft::flat_map]
//! fn split_words(line: &str) -> impl Iterator<Item = String> + '_ {
//!     line.split_whitespace().map(str::to_lowercase)
//! }
//!
//! #[weft::map]
//! fn one(word: String) -> (String, i64) {
//!     (word, 1) // a 2-tuple result makes a pair dataset
//! }
//!
//! #[weft::reduce]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! #[weft::map]
//! fn format((word, n): (String, i64)) -> String {
//!     format!("{word}\t{n}") // a 2-tuple parameter takes pairs
//! }
//!
//! #[weft::main]
//! fn main(ctx: &Context) -> weft::Result<()> {
//!     let args = ctx.args();
//!     let counts = ctx.text_file(&args[0], 4)?.flat_map(split_words).map(one).reduce_by_key(add, 0);
//!     counts.map(format).save_as_text_file(&args[1])?;
//!     for (w, n) in counts.take(10)? {
//!         weft::info!("{w}: {n}");
//!     }
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! with a `Cargo.toml` of
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! weft-sdk = { path = "../weft/sdk/rust" }
//! ```
//!
//! and `cargo build --release --target wasm32-wasip2` makes
//! `target/wasm32-wasip2/release/<crate>.wasm`, a component of the `job` world
//! of `wit/weft.wit`. Build with WebAssembly SIMD
//! (`RUSTFLAGS="-C target-feature=+simd128"`, or `rustflags` under
//! `[target.wasm32-wasip2]` in `.cargo/config.toml`; wasmtime runs it by default):
//! the SDK then decodes and encodes 8-byte numbers (`i64`, `u64`, `f64`) with
//! one byte shuffle instead of about forty instructions, and a job over many
//! of them uses less fuel (a fifth less in logistic regression).
//!
//! The crate's default `allocator` feature makes [`alloc::SmallBlocks`] the
//! component's global allocator: small values freed and made again per record
//! (a `String` per word) are recycled without a call into the C library's
//! allocator. Turn default features off to choose your own.
//!
//! # Core concepts
//!
//! - **[`Context`]**: what `#[weft::main]` receives. It reads the job's
//!   arguments and creates datasets ([`text_file`](Context::text_file) for
//!   UTF-8 text, plain or `.gz`/`.zst`, [`text_file_bytes`](Context::text_file_bytes)
//!   for lines in any other encoding, [`parallelize`](Context::parallelize)),
//!   broadcasts values and reads accumulators. `main` runs once, in the
//!   *driver*; every dataset call goes to the host, which plans and schedules
//!   the work.
//! - **[`Dataset<T>`] and [`PairDataset<K, V>`]**: handles to lazily computed
//!   collections. Transformations (`map`, `filter`, `flat_map`, `map_batch`,
//!   `union`, `cache`/`persist`/`unpersist`, `key_by`, `sort_by`, `distinct`, `count_by_value`,
//!   and on pairs `reduce_by_key`, `count_by_key` and the native `sum_by_key`,
//!   `min_by_key`, `max_by_key` (over `i64` and `f64` values, folded in the
//!   host with no guest call),
//!   `group_by_key`, `sort_by_key`, `join`, `partition_by`, `keys`, `values`,
//!   `map_values`, `flat_map_values`, `cogroup`, the outer joins, `subtract`,
//!   `intersection`, `sample`, `repartition`, `coalesce`, `fold_by_key`,
//!   `zip_with_index`, `map_partitions`, `combine_by_key`,
//!   `aggregate_by_key`, `cartesian`) build the graph;
//!   actions (`collect`, `count`, `take`, `first`, `is_empty`, `reduce`,
//!   `fold`, `aggregate`, `top`, `take_ordered`, `take_sample`, `foreach`,
//!   `foreach_partition`,
//!   `collect_as_map`, `save_as_text_file`) run
//!   it. A pair dataset's keys are encoded so that the host partitions, sorts,
//!   groups and joins them as bytes, without calling back into the guest.
//! - **Built-in steps**: the type-generic operators (`keys`, `values`,
//!   `map_values`, `key_by`, ...) cannot be user functions, which are exported
//!   by name, one per function and not per type; they are steps with reserved
//!   `weft:` names that move and transcode bytes, a key type's shape given by
//!   its [`Schema`](weft_codec::schema::Schema) (`Key::schema`). The
//!   operators built from them, and where they differ from Spark, are listed in
//!   `dataset/ops.rs` and `dataset/sides.rs` (the [`Dataset`] methods say which).
//! - **User functions**: plain Rust functions under an attribute —
//!   [`map`], [`filter`] (`fn(&T) -> bool`), [`flat_map`] (returns any
//!   `IntoIterator`), [`map_batch`] (`Vec<T>` in, an iterable out), [`reduce`]
//!   (`fn(V, V) -> V`). The signature decides the record types, so
//!   `ds.flat_map(split_words)` is type-checked against `ds`. A 2-tuple parameter
//!   or result means *pairs* (see [`Pair`]). Any of them may return
//!   `Result<_, E>` with `E: Display`; an `Err` fails the task with that message.
//!   A map, filter or flat_map may borrow its record instead of owning it:
//!   `&str` reads `String` records and `&[u8]` reads [`Bytes`], straight from
//!   the input batch without a copy.
//!   The attribute turns the function into a unit struct of the same name with
//!   a `call` method, so native tests call `split_words.call(line)`. (A `let`
//!   binding of that name in the same module therefore does not compile; rename
//!   one of them.) A function is registered under its own name; give it another
//!   with `#[weft::map(name = "parse_v2")]`.
//! - **The dispatcher**: the host calls user functions by name through the
//!   component's one exported `dispatcher`, a *chain* of them per batch of
//!   records ([`dispatch`] explains the semantics; [`dispatch::run_chain`] runs
//!   it natively, for tests).
//! - **Records**: the [`Record`] trait encodes one value as the bytes of one
//!   batch entry. The rules are below.
//! - **Bound parameters**: a user function may take one more parameter, by
//!   reference (`fn gradient(p: Point, w: &Weights) -> Vec<f64>`); the driver
//!   binds its value where it builds the dataset: `points.map(gradient.with(&w))`.
//!   The value is shipped once per dataset built and decoded once per task
//!   instance, not per record ([`param`] explains how). A [`Broadcast`] binds
//!   the same way and ships once per job. Bound values replace closures,
//!   which a function called by name cannot have.
//! - **In user functions**: [`accumulator_add`] counts, [`task_info`] says
//!   where the task is, [`info!`], [`warn!`] & co. write to the task's log,
//!   and [`text::words`] splits a line as `split_whitespace` does, faster on
//!   ASCII text.
//!
//! # Iterative jobs
//!
//! A loop in `main` runs one action per iteration, and each iteration binds
//! its own values. Logistic regression, as in the Spark paper (the points
//! parsed once and cached; see `guest-examples/logreg`):
//!
//! ```no_run
//! # mod job {
//! use weft::prelude::*;
//!
//! type Point = (f64, Vec<f64>);
//!
//! #[weft::flat_map]
//! fn parse_point(line: &str) -> Option<Point> {
//!     let mut f = line.split_ascii_whitespace().map(|v| v.parse::<f64>().ok());
//!     Some((f.next()??, f.collect::<Option<Vec<f64>>>()?))
//! }
//!
//! /// One point's share of the gradient at `w` (under one key, to sum them).
//! #[weft::map]
//! fn gradient((y, x): Point, w: &Vec<f64>) -> (u32, Vec<f64>) {
//!     let dot: f64 = w.iter().zip(&x).map(|(w, x)| w * x).sum();
//!     let scale = (1.0 / (1.0 + (-y * dot).exp()) - 1.0) * y;
//!     (0, x.into_iter().map(|x| scale * x).collect())
//! }
//!
//! #[weft::reduce]
//! fn add(a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
//!     a.iter().zip(&b).map(|(a, b)| a + b).collect()
//! }
//!
//! #[weft::main]
//! fn main(ctx: &Context) -> weft::Result<()> {
//!     let points = ctx.text_file("s3://data/points/", 8)?.flat_map(parse_point).cache();
//!     let mut w = vec![0.0; 10];
//!     for _ in 0..10 {
//!         // This iteration's weights, bound to this iteration's dataset.
//!         let sums = points.map(gradient.with(&w)).reduce_by_key(add, 1).collect()?;
//!         for (_, g) in sums {
//!             w.iter_mut().zip(&g).for_each(|(w, g)| *w -= g);
//!         }
//!     }
//!     weft::info!("final w: {w:?}");
//!     Ok(())
//! }
//! # }
//! # fn main() {}
//! ```
//!
//! # Performance
//!
//! A chain's consecutive `map`, `filter` and `flat_map` steps run fused, one
//! record at a time, when each step's output type is the next step's input
//! type: values pass from function to function without being encoded. A
//! `reduce_by_key` folds the map side's pairs in a hash table inside the
//! component and keeps it across batches, so a map task writes about one pair
//! per key. The last step of a fused run is built with what follows it (the
//! encoder, or that hash table) as one monomorphic function: in
//! `flat_map(split).map(one).reduce_by_key(add)`, each word costs one dynamic
//! call (into `one` and the fold, inlined together), and a `String` or
//! byte-vector key is hashed and compared in place, without a copy.
//! `sum_by_key`, `min_by_key` and `max_by_key` over `i64` or `f64` values
//! (and `count_by_key`, a sum of ones) need no user function at all: the
//! host folds the pairs in its shuffle writer and reader.
//! Two habits help further: take `&str` (or `&[u8]`) when a function
//! only reads its record, which skips a copy, and return an iterator from a
//! `flat_map` instead of collecting a `Vec`.
//!
//! # Record encoding
//!
//! A batch is one buffer of entries, each a `u32` little-endian length and that
//! many bytes ([`weft_codec::batch`]). A plain dataset has one entry per record;
//! a pair dataset two, the key (with the order-preserving [`weft_codec::key`]
//! encoding, [`Key`]) and then the value (with [`Record`]). The host reads
//! records too, so these rules are part of its contract:
//!
//! | type | bytes of the entry |
//! |---|---|
//! | `String` | its UTF-8 bytes; a text-file line arrives without its newline, and `save_as_text_file` writes each record's bytes and `\n` |
//! | integers, `f32`, `f64`, `bool`, `char` | the fixed-width key encoding: `i64` is 8 bytes big-endian with the sign bit flipped, which is how the host reads `sum_by_key` values (`i64::from_key_bytes`) |
//! | `usize`, `isize` | as `u64`, `i64` |
//! | `()` | no bytes |
//! | tuples (up to 6) | one framed entry per element: the host builds `join` values `(left, right)` this way |
//! | `Vec<T>` | one framed entry per element: the host builds `group_by_key` values this way |
//! | `Option<T>` | no framed entry for `None`, one for `Some` |
//! | [`Bytes`] | the raw bytes (a `Vec<u8>` is a `Vec<T>`, framed per byte); a `text_file_bytes` line arrives without its newline |
//! | your types | [postcard](https://docs.rs/postcard), through [`Serde<T>`] or [`serde_record!`] |
//!
//! Keys use [`Key`]: integers, floats, `bool`, `char`, `String`, `Vec<u8>`,
//! `Option` and tuples of those. A `String` key is its UTF-8 bytes, like a
//! `String` record.
//!
//! # Registration
//!
//! Each attribute registers its function with [`inventory`](https://docs.rs/inventory):
//! a static entry linked into a list by a constructor in `.init_array`, which
//! `wasm-ld` turns into `__wasm_call_ctors`. The bindings call that once,
//! before the first export runs, so no registration code appears in `main`.
//! User functions may live in library crates too: using one in a dataset
//! method links its registration into the component.
//!
//! # Testing natively
//!
//! The crate builds natively too. User functions are ordinary code
//! (`split_words.call("a b".into())`), [`dispatch::run_chain`] runs a chain over
//! an encoded batch exactly as the component would, and [`testing`] stands in
//! for broadcasts and accumulators. Driver calls need a host and fail with
//! [`Error::NotADriver`].

pub mod alloc;
#[cfg(target_arch = "wasm32")]
mod bindings;
mod builtin;
#[cfg(doctest)]
mod compile_fail;
mod context;
mod dataset;
pub mod dispatch;
mod error;
mod function;
mod fuse;
mod host;
mod layout;
pub mod log;
mod panic;
pub mod param;
pub mod record;
mod registry;
mod task;
pub mod text;

pub use context::{Broadcast, Context};
pub use dataset::{Dataset, Number, PairDataset, StorageLevel};
pub use error::{Error, Result};
pub use function::{
    ApplyError, FilterFn, FlatMapFn, Function, Item, MapBatchFn, MapFn, OpKind, Raw, ReduceFn, Transform,
    UserError,
};
#[cfg(not(target_arch = "wasm32"))]
pub use host::testing;
pub use layout::{Layout, Pair, Plain};
pub use param::{Bindable, Bound, IntoParam};
pub use record::{Bytes, Record, RecordError, Serde};
pub use task::{TaskInfo, accumulator_add, task_info};
pub use weft_codec as codec;
pub use weft_codec::key::{EncodeKey, Key};

/// Declares a `#[weft::map]` function: one record in, one out.
///
/// `fn(T) -> U`, or `-> Result<U, E>` with `E: Display`. A parameter of type
/// `(K, V)` takes pairs; a result of type `(K, V)` makes pairs.
///
/// ```
/// #[weft::map]
/// fn one(word: String) -> (String, i64) { (word, 1) }
/// assert_eq!(one.call("a".into()), ("a".to_string(), 1));
/// ```
pub use weft_sdk_macros::map;

/// Declares a `#[weft::filter]` function: `fn(&T) -> bool` (or `Result<bool, E>`).
/// `&str` takes `String` records; `&(K, V)` takes pairs.
///
/// ```
/// #[weft::filter]
/// fn long(word: &str) -> bool { word.len() > 3 }
/// assert!(long.call("weft!"));
/// ```
pub use weft_sdk_macros::filter;

/// Declares a `#[weft::flat_map]` function: one record in, any `IntoIterator`
/// of records out (a `Vec`, an `Option`, `impl Iterator<Item = U>`, ...).
///
/// ```
/// #[weft::flat_map]
/// fn chars(s: String) -> impl Iterator<Item = char> { s.chars().collect::<Vec<_>>().into_iter() }
/// assert_eq!(chars.call("ab".into()).count(), 2);
/// ```
pub use weft_sdk_macros::flat_map;

/// Declares a `#[weft::map_batch]` function: all records of a batch in (a
/// `Vec<T>`), any `IntoIterator` out. Spark's `mapPartitions`, one batch at a time.
///
/// ```
/// #[weft::map_batch]
/// fn dedup(mut words: Vec<String>) -> Vec<String> { words.sort(); words.dedup(); words }
/// ```
pub use weft_sdk_macros::map_batch;

/// Declares a `#[weft::reduce]` function: `fn(V, V) -> V`, associative and
/// commutative, for [`PairDataset::reduce_by_key`].
///
/// ```
/// #[weft::reduce]
/// fn max(a: u32, b: u32) -> u32 { a.max(b) }
/// ```
pub use weft_sdk_macros::reduce;

/// Declares the job's driver: `fn main(ctx: &Context) -> Result<(), E>` with
/// `E: Display` (or returning nothing). A component has exactly one.
pub use weft_sdk_macros::main;

/// The names most jobs use: `use weft::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Broadcast, Bytes, Context, Dataset, EncodeKey, Key, PairDataset, Record, Serde, StorageLevel,
        accumulator_add, task_info,
    };
}

/// Support for the macros' expansions. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::param::{ParamSpec, binding, unbound};
    pub use crate::record::{borrow_str, postcard_decode, postcard_encode};
    pub use crate::registry::{MainRegistration, Registered, Registration};
    pub use inventory;

    /// What a `#[weft::main]` may return.
    #[diagnostic::on_unimplemented(
        message = "#[weft::main] returns `()` or `Result<(), E>` with `E: Display`, not `{Self}`",
        label = "the job's result"
    )]
    pub trait MainResult {
        /// The error message, if any.
        fn into_main_result(self) -> Result<(), String>;
    }

    impl MainResult for () {
        fn into_main_result(self) -> Result<(), String> {
            Ok(())
        }
    }

    impl<E: std::fmt::Display> MainResult for Result<(), E> {
        fn into_main_result(self) -> Result<(), String> {
            self.map_err(|e| e.to_string())
        }
    }
}
