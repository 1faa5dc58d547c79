//! The host imports, typed: the only code that talks to the WIT bindings'
//! imports (`host/wasm.rs`), with a native stand-in (`host/native.rs`) so that
//! user functions, the dispatcher and the docs build and run outside a weft host.
//!
//! Everything above this module uses weft's own types (`OpKind`, `Level`,
//! `Error`, ...); conversions to and from the generated types happen here.

/// A wide transformation (mirrors the WIT `shuffle-op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShuffleOp<'a> {
    ReduceByKey(&'a str),
    SumByKey,
    GroupByKey,
    SortByKey(bool),
    PartitionBy,
    FoldByKey(Fold),
}

/// A native fold of 8-byte values by key (mirrors the WIT `fold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fold {
    SumF64,
    Min,
    Max,
}

#[cfg(target_arch = "wasm32")]
mod wasm;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::testing;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;
