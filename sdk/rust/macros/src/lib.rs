//! Attribute macros of the weft Rust SDK; use them through the `weft` crate
//! (`#[weft::map]`, `#[weft::main]`, ...), whose docs describe them.
//!
//! Each function attribute turns
//!
//! ```text
//! #[weft::flat_map]
//! fn split_words(line: String) -> Vec<String> { ... }
//! ```
//!
//! into a unit struct `split_words` whose `call` method is the original
//! function (taking `self` by value, so lifetime elision in the signature means
//! what it meant for the free function), implementations of `weft::Function`, `weft::Transform` and
//! `weft::FlatMapFn` (the name, the record layouts read off the signature, and
//! how the dispatcher applies it), and an `inventory::submit!` that registers it
//! for dispatch by name. `#[weft::main]` keeps the function and registers a
//! wrapper that converts its result.

use proc_macro::TokenStream;

mod main_fn;
mod signature;
mod user_fn;

use user_fn::Kind;

/// See `weft::map`.
#[proc_macro_attribute]
pub fn map(attr: TokenStream, item: TokenStream) -> TokenStream {
    user_fn::expand(Kind::Map, attr.into(), item.into()).into()
}

/// See `weft::filter`.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    user_fn::expand(Kind::Filter, attr.into(), item.into()).into()
}

/// See `weft::flat_map`.
#[proc_macro_attribute]
pub fn flat_map(attr: TokenStream, item: TokenStream) -> TokenStream {
    user_fn::expand(Kind::FlatMap, attr.into(), item.into()).into()
}

/// See `weft::map_batch`.
#[proc_macro_attribute]
pub fn map_batch(attr: TokenStream, item: TokenStream) -> TokenStream {
    user_fn::expand(Kind::MapBatch, attr.into(), item.into()).into()
}

/// See `weft::reduce`.
#[proc_macro_attribute]
pub fn reduce(attr: TokenStream, item: TokenStream) -> TokenStream {
    user_fn::expand(Kind::Reduce, attr.into(), item.into()).into()
}

/// See `weft::main`.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand(attr.into(), item.into()).into()
}
