//! weft's wire formats, shared by the host and every Rust guest.
//!
//! Two formats cross the sandbox boundary and the shuffle:
//!
//! - [`batch`]: a *batch* is one contiguous buffer of length-prefixed entries.
//!   A plain dataset puts one entry per record; a pair dataset puts two, key then
//!   value. One buffer per call keeps the per-record cost of crossing into
//!   WebAssembly at a bounds check and a copy.
//! - [`key`]: an order-preserving encoding of keys (integers, floats, strings,
//!   byte strings, options and tuples). Comparing two encoded keys with `memcmp`
//!   gives the same order as comparing the values, and equal values have equal
//!   bytes, so the host partitions, sorts and groups pairs without the guest.
//!
//! ```
//! use weft_codec::{batch::{BatchWriter, entries}, key::EncodeKey};
//!
//! let mut w = BatchWriter::new();
//! for (word, n) in [("b", 2i64), ("a", 1)] {
//!     w.push(&word.to_key_bytes());
//!     w.push(&n.to_key_bytes());
//! }
//! let buf = w.finish();
//! let parts: Vec<&[u8]> = entries(&buf).collect::<Result<_, _>>().unwrap();
//! assert_eq!(parts.len(), 4);
//! assert!("a".to_key_bytes() < "b".to_key_bytes());
//! assert!((-5i64).to_key_bytes() < 3i64.to_key_bytes());
//! ```
//!
//! - [`schema`]: the shape of a key type, with which the host and generic
//!   SDK steps transcode a value between its key and record encodings.
//!
//! This crate has no dependencies beyond `thiserror`, so it compiles for
//! `wasm32-wasip2` as readily as for the host.

pub mod batch;
pub mod key;
pub mod schema;

/// The name prefix of a whole-partition step (`map_partitions`,
/// `foreach_partition`: `weft:partition:<function>`), for whose input the
/// guest returns nothing until the host calls `flush-chain` (see
/// `wit/weft.wit`, `run-chain`). The SDK names such steps, the host flushes them.
pub const WHOLE_PARTITION: &str = "weft:partition:";

/// A buffer that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends inside an entry or its length prefix.
    #[error("batch truncated at byte {offset}: entry needs {needed} bytes, {available} remain")]
    Truncated {
        /// Where the unfinished entry starts.
        offset: usize,
        /// Bytes the entry (or prefix) needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A pair batch has a key without its value.
    #[error("pair batch has an odd number of entries ({entries})")]
    UnpairedKey {
        /// Entries counted.
        entries: usize,
    },
    /// An encoded key is malformed for the type it is decoded as.
    #[error("key does not decode as {expected}: {reason}")]
    BadKey {
        /// The Rust type asked for.
        expected: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}
