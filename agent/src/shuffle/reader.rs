//! The shuffle reader of one reduce partition: fetch every map task's block
//! concurrently under a byte budget, validate, merge as blocks arrive, and
//! spill past a memory budget.
//!
//! Fetches are issued in the order given, at most
//! [`ReaderConfig::max_requests_in_flight`] at a time, and each first takes as
//! many permits from a byte semaphore as its block is long (its length is known
//! from the map output's [`MapOutput::partition_lengths`](super::MapOutput),
//! which travels through the task's end and the master's map-output table), so
//! the bytes requested and not yet arrived never exceed the in-flight budget:
//! [`ReaderConfig::max_bytes_in_flight`], and at most half of
//! [`ReaderConfig::memory_budget`]. A block larger than the whole budget takes
//! the whole budget and travels alone. The semaphore is fair, so a large
//! block is not starved by small ones behind it.
//!
//! Every block is checked to be a well-formed pair batch sorted by key as it
//! arrives, so a bad block fails the read naming the block, rather than
//! part-way through the reduce.
//!
//! Arrived blocks are held in memory until they pass the rest of the memory
//! budget; then they are merged into one sorted *run* on disk
//! ([`runs`]) and dropped. When too many runs pile up for their read buffers
//! to fit in a quarter of the budget (16), they are merged into one. The reduce
//! partition is then the k-way merge of the runs and the blocks still held,
//! so a partition many times larger than the budget is read with the budget's
//! worth of memory (plus one block, which is the unit of a fetch). Every pair
//! carries its map task as its tag through the runs, so equal keys come out in
//! map order whichever blocks were spilled: the output does not depend on the
//! order blocks arrived in.

use super::error::ShuffleError;
use super::fetch::{BlockFetcher, FetchError};
use super::ids::BlockId;
use super::merge::{BatchSource, Merge, PairSource, Tagged};
use bytes::Bytes;
use bytesize::ByteSize;
use futures::StreamExt;
use runs::{IO_BUFFER, Run};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::sync::Semaphore;
use weft_codec::batch::pairs;

mod runs;

/// One block to read and its stored length (for the in-flight budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockLocation {
    /// The block.
    pub block: BlockId,
    /// Its stored length in bytes.
    pub size: u64,
}

/// Tuning of a [`ShuffleReader`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// Bytes of block requests in flight at once (capped at 4 GiB and at half
    /// the memory budget).
    pub max_bytes_in_flight: usize,
    /// Bytes a reduce partition's read may hold in memory: blocks in flight
    /// and arrived blocks. Past it, arrived blocks are merged into a sorted
    /// run on disk. A join's two sides share it. In TOML, human units
    /// (`"256MiB"`).
    pub memory_budget: ByteSize,
    /// Block requests in flight at once.
    pub max_requests_in_flight: usize,
    /// About how many bytes each merged pair batch holds.
    pub target_batch_bytes: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            max_bytes_in_flight: 48 << 20,
            memory_budget: ByteSize::mib(256),
            max_requests_in_flight: 64,
            target_batch_bytes: 1 << 20,
        }
    }
}

impl ReaderConfig {
    /// Set the in-flight byte budget.
    pub fn with_max_bytes_in_flight(mut self, bytes: usize) -> Self {
        self.max_bytes_in_flight = bytes;
        self
    }

    /// Set the memory budget of one reduce partition's read.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = ByteSize::b(bytes as u64);
        self
    }

    /// Set the in-flight request limit.
    pub fn with_max_requests_in_flight(mut self, n: usize) -> Self {
        self.max_requests_in_flight = n;
        self
    }

    /// Set the merged batch size.
    pub fn with_target_batch_bytes(mut self, bytes: usize) -> Self {
        self.target_batch_bytes = bytes;
        self
    }
}

/// Why a reduce partition could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A block could not be fetched or is invalid: the scheduler recomputes the
    /// map output that wrote it.
    #[error("fetch failed for block {block}: {reason}")]
    FetchFailed {
        /// The block.
        block: BlockId,
        /// Why.
        #[source]
        reason: FetchError,
    },
    /// Spilling or merging runs on local disk failed.
    #[error("spilling the reduce partition failed: {0}")]
    Spill(#[source] ShuffleError),
}

/// Reads reduce partitions through a [`BlockFetcher`].
#[derive(Debug, Clone)]
pub struct ShuffleReader<F> {
    fetcher: F,
    config: ReaderConfig,
    spill_dir: PathBuf,
}

impl<F: BlockFetcher> ShuffleReader<F> {
    /// A reader fetching through `fetcher`, spilling into the system's
    /// temporary directory.
    pub fn new(fetcher: F, config: ReaderConfig) -> Self {
        Self { fetcher, config, spill_dir: std::env::temp_dir() }
    }

    /// Spill runs into `dir` (which must exist).
    pub fn with_spill_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spill_dir = dir.into();
        self
    }

    /// Where runs are spilled.
    pub fn spill_dir(&self) -> &Path {
        &self.spill_dir
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// Take the fetcher back.
    pub fn into_fetcher(self) -> F {
        self.fetcher
    }

    /// Fetch and validate `blocks` (one per map task, in map order), merging
    /// and spilling them as they arrive, and return their merge.
    ///
    /// Cancel safe: dropping the future abandons the fetches in flight and
    /// deletes the runs spilled so far.
    pub async fn read(&self, blocks: Vec<BlockLocation>) -> Result<MergedBatches, ReadError> {
        let budget = usize::try_from(self.config.memory_budget.as_u64()).unwrap_or(usize::MAX).max(2);
        let in_flight = self.config.max_bytes_in_flight.min(budget / 2).clamp(1, u32::MAX as usize);
        let target = self.config.target_batch_bytes.max(1);
        let mut arrived = Arrived::new(budget, in_flight, target, self.spill_dir.clone());
        let bytes_in_flight = Semaphore::new(in_flight);
        // Owned items: over borrowed ones, rustc cannot prove the future
        // `Send` (higher-ranked lifetimes in the closure, rust-lang/rust#110338).
        let wanted: Vec<(usize, BlockId, u64)> =
            blocks.iter().enumerate().map(|(i, loc)| (i, loc.block, loc.size)).collect();
        let fetches = futures::stream::iter(wanted)
            .map(|(i, block, size)| {
                let bytes_in_flight = &bytes_in_flight;
                async move {
                    let permits = size.clamp(1, in_flight as u64) as u32;
                    // Never closed, so acquiring cannot fail.
                    let _permit = bytes_in_flight.acquire_many(permits).await.ok();
                    (i, self.fetcher.fetch(&block).await)
                }
            })
            .buffer_unordered(self.config.max_requests_in_flight.max(1));
        futures::pin_mut!(fetches);
        while let Some((i, result)) = fetches.next().await {
            let block = blocks[i].block;
            let bytes = result.map_err(|reason| ReadError::FetchFailed { block, reason })?;
            validate(&bytes).map_err(|reason| ReadError::FetchFailed { block, reason })?;
            let requested = in_flight - bytes_in_flight.available_permits();
            arrived.hold(i as u32, bytes, requested as u64).await?;
        }
        arrived.into_merge(target)
    }
}

/// Runs are merged into one past this many.
const MAX_RUNS: usize = 16;

/// The blocks of one read that arrived: held in memory, or spilled in runs.
struct Arrived {
    held: Vec<(u32, Bytes)>,
    held_bytes: u64,
    /// Held past this, the blocks are spilled.
    hold_limit: u64,
    runs: Vec<Run>,
    /// The read and write buffer of each run.
    buffer: usize,
    dir: PathBuf,
    peak: u64,
    spilled: u64,
}

impl Arrived {
    /// Room for a read of `budget` bytes, `in_flight` of them for fetches
    /// and `target` for the merged batch out: what is left after the runs'
    /// buffers is for arrived blocks.
    fn new(budget: usize, in_flight: usize, target: usize, dir: PathBuf) -> Self {
        let buffer = (budget / 4 / (MAX_RUNS + 2)).clamp(4 << 10, IO_BUFFER);
        let reserved = in_flight + (MAX_RUNS + 2) * buffer + target;
        Self {
            held: Vec::new(),
            held_bytes: 0,
            hold_limit: budget.saturating_sub(reserved).max(budget / 4).max(1) as u64,
            runs: Vec::new(),
            buffer,
            dir,
            peak: 0,
            spilled: 0,
        }
    }

    /// Hold the block of map `map`, `requested` bytes still being fetched;
    /// spill what is held once it passes the limit.
    async fn hold(&mut self, map: u32, bytes: Bytes, requested: u64) -> Result<(), ReadError> {
        self.held_bytes += bytes.len() as u64;
        self.held.push((map, bytes));
        self.peak = self.peak.max(self.held_bytes + requested + self.buffers());
        if self.held_bytes > self.hold_limit {
            let blocks = std::mem::take(&mut self.held);
            self.held_bytes = 0;
            let sources =
                blocks.into_iter().map(|(tag, b)| Tagged { source: BatchSource::new(b), tag }).collect();
            let run = self.spill(sources).await?;
            self.spilled += run.bytes();
            self.runs.push(run);
        }
        if self.runs.len() > MAX_RUNS {
            let runs = std::mem::take(&mut self.runs);
            let sources = runs
                .into_iter()
                .map(|run| run.open(self.buffer))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ReadError::Spill)?;
            let run = self.spill(sources).await?;
            self.spilled += run.bytes();
            self.runs.push(run);
        }
        Ok(())
    }

    /// Merge `sources` into a run on a blocking thread.
    async fn spill<S: PairSource + Send + 'static>(&self, sources: Vec<S>) -> Result<Run, ReadError> {
        let (dir, buffer) = (self.dir.clone(), self.buffer);
        tokio::task::spawn_blocking(move || runs::spill(&dir, sources, buffer))
            .await
            .map_err(|e| {
                ReadError::Spill(ShuffleError::Io {
                    path: self.dir.clone(),
                    source: std::io::Error::other(e),
                })
            })?
            .map_err(ReadError::Spill)
    }

    /// The read buffers of the runs, and the write buffer of the next.
    fn buffers(&self) -> u64 {
        ((self.runs.len() + 1) * self.buffer) as u64
    }

    fn into_merge(self, target: usize) -> Result<MergedBatches, ReadError> {
        let peak = self.peak.max(self.held_bytes + self.buffers() + target as u64);
        let mut sources: Vec<Box<dyn PairSource + Send>> =
            Vec::with_capacity(self.runs.len() + self.held.len());
        for run in self.runs {
            sources.push(Box::new(run.open(self.buffer).map_err(ReadError::Spill)?));
        }
        for (tag, bytes) in self.held {
            sources.push(Box::new(Tagged { source: BatchSource::new(bytes), tag }));
        }
        Ok(MergedBatches {
            merge: Merge::new(sources),
            target,
            whole_keys: true,
            peak,
            spilled: self.spilled,
        })
    }
}

/// Check that `bytes` is a pair batch sorted by key.
fn validate(bytes: &[u8]) -> Result<(), FetchError> {
    let mut last: Option<&[u8]> = None;
    for pair in pairs(bytes) {
        let (k, _) = pair.map_err(|e| FetchError::Invalid { reason: e.to_string() })?;
        if last.is_some_and(|l| l > k) {
            return Err(FetchError::Invalid { reason: "keys out of order".into() });
        }
        last = Some(k);
    }
    Ok(())
}

/// The merged pairs of one reduce partition, as pair batches of about the
/// target size, cut only between keys (unless [`cut_anywhere`](Self::cut_anywhere)).
pub struct MergedBatches {
    merge: Merge<Box<dyn PairSource + Send>>,
    target: usize,
    whole_keys: bool,
    peak: u64,
    spilled: u64,
}

impl MergedBatches {
    /// The most bytes the read held in memory: blocks requested and arrived,
    /// and the merge's read buffers and output batch.
    pub fn held_bytes(&self) -> u64 {
        self.peak
    }

    /// Bytes the read wrote to spilled runs (merged runs counted again).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled
    }

    /// Cut batches at the target size even inside a key, for a consumer
    /// that takes pairs one by one (a sorted partition's narrow steps): a
    /// key with more pairs than fit in memory (a skewed key) then streams
    /// through instead of making one batch.
    pub fn cut_anywhere(mut self) -> Self {
        self.whole_keys = false;
        self
    }
}

impl std::fmt::Debug for MergedBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergedBatches").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Iterator for MergedBatches {
    type Item = Result<Vec<u8>, ShuffleError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.merge.next_batch(self.target, self.whole_keys).transpose()
    }
}
