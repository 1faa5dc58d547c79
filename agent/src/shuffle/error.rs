//! Errors of writing and reading shuffle files.

use super::combine::BoxError;
use std::path::PathBuf;
use weft_codec::DecodeError;

/// What went wrong writing a map output or reading a block from disk.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShuffleError {
    /// An input batch is not a well-formed pair batch.
    #[error("input is not a pair batch: {source}")]
    Malformed {
        /// What the codec found.
        #[source]
        source: DecodeError,
    },
    /// A file could not be created, written, read or renamed.
    #[error("shuffle i/o on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The caller's combine function failed.
    #[error("combine function failed: {source}")]
    Combine {
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// A combine step returned something other than one pair per key in key order.
    #[error("combine output is invalid: {reason}")]
    CombineOutput {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Pairs that should be sorted by key are not (a spilled run or a fetched
    /// block read back out of order).
    #[error("pairs are not sorted by key")]
    Unsorted,
    /// `SumI64` met a value that is not an 8-byte `i64`.
    #[error("sum_i64: value of {len} bytes is not an i64")]
    NotI64 {
        /// The value's length.
        len: usize,
    },
    /// A native fold (`sum_by_key` over `f64`, `min_by_key`, `max_by_key`)
    /// met a value that is not 8 bytes.
    #[error("{fold}: value of {len} bytes is not an i64 or f64")]
    NotEightBytes {
        /// The operation.
        fold: &'static str,
        /// The value's length.
        len: usize,
    },
    /// The index file does not parse or does not fit its data file.
    #[error("corrupt shuffle index {}: {reason}", path.display())]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        reason: super::index::IndexDefect,
    },
    /// A block's bytes do not match its checksum, or do not decompress.
    #[error("corrupt block: partition {partition} of {}: {reason}", path.display())]
    CorruptBlock {
        /// The data file.
        path: PathBuf,
        /// The reduce partition whose block is corrupt.
        partition: u32,
        /// What is wrong (checksum mismatch, bad compression).
        reason: String,
    },
    /// A partition number past the index's partition count.
    #[error("partition {partition} out of range: the map output has {partitions} partitions")]
    NoSuchPartition {
        /// The partition asked for.
        partition: u32,
        /// How many there are.
        partitions: u32,
    },
}

impl ShuffleError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
