//! The traits the attribute macros implement for each user function.
//!
//! `#[weft::flat_map] fn split_words(line: String) -> Vec<String>` becomes a unit
//! struct `split_words` with a `call` method (the original function, still
//! usable in native tests and benchmarks) and implementations of [`Function`]
//! (its registered name and [`OpKind`]), [`Transform`] (its input and output
//! [`Layout`]s) and [`FlatMapFn`] (how the dispatcher applies it). The dataset
//! methods are bounded by these traits, so `ds.flat_map(split_words)` only
//! compiles when `ds` holds `String`s.
//!
//! You rarely implement these by hand; the macros do, and they also register the
//! function for dispatch by name.

use crate::layout::Layout;
use crate::record::{Record, RecordError};
use crate::registry::Registration;
use std::fmt;

/// How a function is applied to a batch (mirrors the WIT `op-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// One record in, one record out.
    Map,
    /// One record in, kept or dropped.
    Filter,
    /// One record in, zero or more out.
    FlatMap,
    /// A whole batch in, a whole batch out.
    MapBatch,
    /// Adjacent values of equal keys folded into one.
    Reduce,
    /// The values of each key folded into one, wherever they are in the batch
    /// (a `reduce` function applied as the map-side combiner).
    Combine,
}

impl OpKind {
    /// The attribute that declares a function of this kind.
    pub fn attribute(self) -> &'static str {
        match self {
            OpKind::Map => "#[weft::map]",
            OpKind::Filter => "#[weft::filter]",
            OpKind::FlatMap => "#[weft::flat_map]",
            OpKind::MapBatch => "#[weft::map_batch]",
            OpKind::Reduce | OpKind::Combine => "#[weft::reduce]",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Map => "map",
            OpKind::Filter => "filter",
            OpKind::FlatMap => "flat-map",
            OpKind::MapBatch => "map-batch",
            OpKind::Reduce => "reduce",
            OpKind::Combine => "combine",
        })
    }
}

/// A user function the component exports by name.
pub trait Function: Copy + Default + 'static {
    /// The name the driver and the dispatcher use (by default the function's name).
    const NAME: &'static str;
    /// How the function is applied.
    const KIND: OpKind;

    /// The function's registration: a `static` in the crate that defines the
    /// function. The dataset methods read the name from it, which makes every
    /// job that uses a function link the object file holding its
    /// registration, even when the function comes from another crate.
    #[doc(hidden)]
    fn registration() -> &'static Registration;

    /// The type of the parameter the function takes (bound with
    /// `f.with(&value)`), if it takes one.
    #[doc(hidden)]
    const PARAM: Option<crate::param::ParamSpec> = None;
}

/// A function from records of one layout to records of another.
pub trait Transform: Function {
    /// Records taken.
    type Input: Layout;
    /// Records produced.
    type Output: Layout;
}

/// The record type of a layout: `T` for [`Plain<T>`](crate::Plain), `(K, V)` for
/// [`Pair<K, V>`](crate::Pair).
pub type Item<L> = <L as Layout>::Item;

/// One record's undecoded entries in layout `L`.
pub type Raw<'a, L> = <L as Layout>::Raw<'a>;

/// A `#[weft::map]` function.
pub trait MapFn: Transform {
    /// Apply the function to one record.
    fn apply(&self, record: Item<Self::Input>) -> Result<Item<Self::Output>, UserError>;

    /// Apply the function to one undecoded record. The dispatcher calls this;
    /// functions that borrow their record (`&str`, `&[u8]`) override it to skip
    /// the copy decoding makes.
    #[inline]
    fn apply_raw(&self, raw: Raw<'_, Self::Input>) -> Result<Item<Self::Output>, ApplyError> {
        let record = Self::Input::decode(raw).map_err(ApplyError::Decode)?;
        self.apply(record).map_err(ApplyError::User)
    }
}

/// A `#[weft::filter]` function.
pub trait FilterFn: Transform {
    /// Whether to keep the record.
    fn apply(&self, record: &Item<Self::Input>) -> Result<bool, UserError>;

    /// Whether to keep an undecoded record (see [`MapFn::apply_raw`]).
    #[inline]
    fn apply_raw(&self, raw: Raw<'_, Self::Input>) -> Result<bool, ApplyError> {
        let record = Self::Input::decode(raw).map_err(ApplyError::Decode)?;
        self.apply(&record).map_err(ApplyError::User)
    }
}

/// A `#[weft::flat_map]` function.
pub trait FlatMapFn: Transform {
    /// Apply the function to one record, passing each output to `emit`.
    fn apply<E: FnMut(Item<Self::Output>)>(
        &self,
        record: Item<Self::Input>,
        emit: &mut E,
    ) -> Result<(), UserError>;

    /// Apply the function to one undecoded record (see [`MapFn::apply_raw`]).
    #[inline]
    fn apply_raw<E: FnMut(Item<Self::Output>)>(
        &self,
        raw: Raw<'_, Self::Input>,
        emit: &mut E,
    ) -> Result<(), ApplyError> {
        let record = Self::Input::decode(raw).map_err(ApplyError::Decode)?;
        self.apply(record, emit).map_err(ApplyError::User)
    }
}

/// Why applying a function to an undecoded record failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// The record did not decode.
    Decode(RecordError),
    /// The function returned an error.
    User(UserError),
}

/// A `#[weft::map_batch]` function (`map_partitions` over one batch).
pub trait MapBatchFn: Transform {
    /// Apply the function to all records of a batch, passing each output to `emit`.
    fn apply<E: FnMut(Item<Self::Output>)>(
        &self,
        records: Vec<Item<Self::Input>>,
        emit: &mut E,
    ) -> Result<(), UserError>;
}

/// A `#[weft::reduce]` function: an associative combination of two values.
pub trait ReduceFn: Function {
    /// The values combined.
    type Value: Record;
    /// Combine two values of one key.
    fn apply(&self, a: Self::Value, b: Self::Value) -> Result<Self::Value, UserError>;
}

/// The message of an error a user function returned.
///
/// It becomes the WIT `call-error::user`. Build it from any [`Display`](fmt::Display)
/// error with [`UserError::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError(String);

impl UserError {
    /// Capture `err`'s message.
    pub fn new(err: impl fmt::Display) -> Self {
        UserError(err.to_string())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    pub(crate) fn into_message(self) -> String {
        self.0
    }
}
