//! The sort-based shuffle: how a map task's pairs reach the reduce tasks.
//!
//! A wide operation (`reduce_by_key`, `group_by_key`, `join`, `sort_by_key`)
//! splits a job into stages. Every map task of the upstream stage writes its
//! output pairs, cut into one *block* per reduce partition; every reduce task of
//! the downstream stage fetches its block from every map task and merges them.
//! This module is that data plane, all native host code: keys are compared as
//! raw bytes, which the [order-preserving key encoding](weft_codec::key) makes
//! equal to comparing the keys themselves, so no guest call is needed to
//! partition, sort or group.
//!
//! # Map side
//!
//! 1. **Partition** ([`Partitioner`]). Each pair goes to the reduce partition its
//!    key names: `xxh3_64(key) % partitions` for a hash shuffle, or a binary
//!    search over sorted upper bounds for a range shuffle (`sort_by_key`, bounds
//!    taken from a sample by the master with [`weft_core::range::range_bounds`]).
//! 2. **Buffer and sort** ([`ShuffleWriter::write`]). Pairs are copied into one
//!    arena with a small fixed-size entry per record. When the arena plus entries
//!    pass the memory budget, the entries are sorted by (partition, key) with a
//!    stable sort, so equal keys keep their arrival order. With the `SumI64`
//!    combiner, pairs are instead folded as they arrive into a hash table keyed
//!    by key bytes (Spark's map-side aggregation map), and only its distinct
//!    keys are buffered and sorted when it spills or the task ends.
//! 3. **Combine** ([`Combiner`]). When the operation allows it, each partition's
//!    sorted run is reduced to one pair per key before it leaves memory: natively
//!    for `SumI64`, or by a caller-supplied function (the guest's `reduce`).
//! 4. **Spill**. The sorted (combined) run goes to a temporary file, one pair batch
//!    per partition back to back; only the partition offsets stay in memory.
//! 5. **Merge** ([`ShuffleWriter::finish`]). For each partition in turn, the spilled
//!    runs and the last in-memory run are k-way merged by key (ties go to the
//!    older run, which keeps the sort stable), combined again chunk by chunk, and
//!    streamed into one data file, optionally lz4-compressed, with a crc32c per
//!    block. An index file records where each block starts and its checksum.
//!    Both are written to temporary names and renamed into place, index last, so
//!    a crash never leaves a pair that looks valid.
//!
//! One data file and one index per map output (not one file per reduce partition)
//! keeps the file count at `maps`, not `maps × reduces`, and lets the block
//! service serve any block with one seek.
//!
//! # Reduce side
//!
//! 6. **Fetch** ([`ShuffleReader`], [`BlockFetcher`]). A reduce task fetches its
//!    block from every map output concurrently: from this agent's own files
//!    when the map output is here, else from the agent holding it. A
//!    semaphore holds the bytes of requests in flight under a budget (block
//!    sizes come from the map outputs, through the master's map-output
//!    table), so a reducer with thousands of map inputs does not ask for them
//!    all at once. Checksums are verified where the stored bytes are read
//!    ([`read_block`]); the reader then checks that every block is a
//!    well-formed pair batch sorted by key as it arrives. Any failure is a
//!    typed [`ReadError::FetchFailed`] naming the block, which tells the
//!    scheduler to recompute that map output from lineage rather than retry
//!    the reduce task.
//! 7. **Merge and spill** ([`MergedBatches`]). Arrived blocks are held until
//!    they pass the reader's memory budget, then merged into a sorted run on
//!    disk; the runs and the blocks still held are k-way merged into pair
//!    batches of about a target size, cut only between keys (or anywhere,
//!    for a sorted partition whose steps take records one by one), so a
//!    reduce partition many times the budget is read within it.
//! 8. **Aggregate** ([`aggregate`]). `sum_i64`, `group_values`, `join` and
//!    `cogroup` run natively over the merged pairs. `sort_by_key` needs nothing
//!    more: a range partition whose blocks are merged is already sorted.
//!
//! # Files
//!
//! A map output is one data file and one index in its job's shuffle
//! directory, `shuffle_<shuffle>_<map>_<attempt>.data` and `.index`: named by
//! the attempt of the map task that wrote them (the `#N` of its task key), so
//! two attempts of one map task on one agent never share a file. A
//! [`BlockId`] names the attempt whose block it is, and a fetch reads that
//! attempt's files or fails as a missing map output.
//!
//! See [`index`] for the byte layout of the index file and the checksum and
//! compression rules; the data file is nothing but the blocks back to back.
//! `docs/architecture.md` (Shuffle) says how the master picks the attempt a
//! reader fetches.

pub mod aggregate;
mod block;
mod buffer;
mod combine;
mod error;
mod fetch;
mod ids;
pub mod index;
mod merge;
mod partitioner;
mod reader;
mod spill;
mod writer;

#[cfg(test)]
mod tests;

pub use block::Compression;
pub(crate) use block::decode as decode_block;
pub use combine::{BoxError, Combiner, Native};
pub use error::ShuffleError;
pub use fetch::{BlockFetcher, FetchError, LocalFetcher};
pub use ids::{BlockId, MapId, ReduceId, ShuffleId};
pub use index::{IndexDefect, IndexFile, read_block, read_stored_block};
pub use merge::{Merge, PairSource};
pub use partitioner::{Partitioner, TooManyBounds};
pub use reader::{BlockLocation, MergedBatches, ReadError, ReaderConfig, ShuffleReader};
pub use writer::{MapOutput, ShuffleWriter, WriterConfig};
