//! The shuffle reader of one reduce partition: fetch every map task's block
//! concurrently under a byte budget, validate, and k-way merge.
//!
//! Fetches are issued in the order given, at most
//! [`ReaderConfig::max_requests_in_flight`] at a time, and each first takes as
//! many permits from a byte semaphore as its block is long (its length is known
//! from the map output's [`MapOutput::partition_lengths`](super::MapOutput)), so
//! the bytes requested and not yet arrived never exceed
//! [`ReaderConfig::max_bytes_in_flight`]. A block larger than the whole budget
//! takes the whole budget and travels alone. The semaphore is fair, so a large
//! block is not starved by small ones behind it.
//!
//! Arrived blocks are held in memory until the merge consumes them; a reduce
//! partition bigger than memory needs the (future) spilling reader.
//!
//! Every block is checked to be a well-formed pair batch sorted by key before
//! the merge starts, so a bad block fails the read up front, naming the block,
//! rather than part-way through the reduce.

use super::error::ShuffleError;
use super::fetch::{BlockFetcher, FetchError};
use super::ids::BlockId;
use super::merge::{BatchSource, Merge};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use weft_codec::batch::pairs;

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
    /// Bytes of block requests in flight at once (capped at 4 GiB).
    pub max_bytes_in_flight: usize,
    /// Block requests in flight at once.
    pub max_requests_in_flight: usize,
    /// About how many bytes each merged pair batch holds.
    pub target_batch_bytes: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self { max_bytes_in_flight: 48 << 20, max_requests_in_flight: 64, target_batch_bytes: 1 << 20 }
    }
}

impl ReaderConfig {
    /// Set the in-flight byte budget.
    pub fn with_max_bytes_in_flight(mut self, bytes: usize) -> Self {
        self.max_bytes_in_flight = bytes;
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
}

/// Reads reduce partitions through a [`BlockFetcher`].
#[derive(Debug, Clone)]
pub struct ShuffleReader<F> {
    fetcher: F,
    config: ReaderConfig,
}

impl<F: BlockFetcher> ShuffleReader<F> {
    /// A reader fetching through `fetcher`.
    pub fn new(fetcher: F, config: ReaderConfig) -> Self {
        Self { fetcher, config }
    }

    /// The fetcher.
    pub fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// Take the fetcher back.
    pub fn into_fetcher(self) -> F {
        self.fetcher
    }

    /// Fetch and validate `blocks` (one per map task, in map order), and return
    /// their merge.
    ///
    /// Cancel safe: dropping the future abandons the fetches in flight.
    pub async fn read(&self, blocks: Vec<BlockLocation>) -> Result<MergedBatches, ReadError> {
        let budget = self.config.max_bytes_in_flight.clamp(1, u32::MAX as usize);
        let bytes_in_flight = Semaphore::new(budget);
        let mut fetched: Vec<Option<Bytes>> = vec![None; blocks.len()];
        // Owned items: over borrowed ones, rustc cannot prove the future
        // `Send` (higher-ranked lifetimes in the closure, rust-lang/rust#110338).
        let wanted: Vec<(usize, BlockId, u64)> =
            blocks.iter().enumerate().map(|(i, loc)| (i, loc.block, loc.size)).collect();
        let fetches = futures::stream::iter(wanted)
            .map(|(i, block, size)| {
                let bytes_in_flight = &bytes_in_flight;
                async move {
                    let permits = size.clamp(1, budget as u64) as u32;
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
            fetched[i] = Some(bytes);
        }
        let held = fetched.iter().flatten().map(|b| b.len() as u64).sum();
        let sources: Vec<_> = fetched.into_iter().flatten().map(BatchSource::new).collect();
        Ok(MergedBatches { merge: Merge::new(sources), target: self.config.target_batch_bytes.max(1), held })
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
/// target size, cut only between keys.
pub struct MergedBatches {
    merge: Merge<BatchSource<Bytes>>,
    target: usize,
    held: u64,
}

impl MergedBatches {
    /// Bytes of fetched blocks it holds in memory for the merge.
    pub fn held_bytes(&self) -> u64 {
        self.held
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
        self.merge.next_chunk(self.target).transpose()
    }
}
