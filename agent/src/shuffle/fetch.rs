//! Fetching blocks: the [`BlockFetcher`] trait and its local-file implementation.
//!
//! A fetcher turns a [`BlockId`] into the block's pair batch, verified and
//! decompressed. [`LocalFetcher`] reads map outputs from a directory on this
//! agent; the remote fetcher (gRPC to a peer's block service, which sends the
//! stored bytes and the checksum from its index) comes with the grid and plugs in
//! behind the same trait.

use super::error::ShuffleError;
use super::ids::{BlockId, MapId, ShuffleId};
use super::index::{IndexFile, read_block};
use bytes::Bytes;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Why a block could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The map output's files are not there (deleted, or the agent lost its disk).
    #[error("map output missing: {}", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// Reading the map output failed, or its index or block is corrupt.
    #[error(transparent)]
    Shuffle(#[from] ShuffleError),
    /// The fetched bytes are not a pair batch sorted by key.
    #[error("fetched block is not a sorted pair batch: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
    /// A peer's block service did not deliver the block.
    #[error(transparent)]
    Remote(#[from] crate::blocks::RemoteError),
    /// This agent's own copy of the block is missing, corrupt or unreadable.
    #[error(transparent)]
    Local(#[from] crate::blocks::StoreError),
    /// The blocking read was cancelled or panicked.
    #[error("block read task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Fetches one block's pair batch.
///
/// Implementations verify the block's checksum and decompress it. `fetch` is
/// cancel safe when the implementation's I/O is (dropping the future abandons
/// the fetch; nothing is left half-done).
pub trait BlockFetcher: Send + Sync {
    /// The pair batch of `block`.
    fn fetch(&self, block: &BlockId) -> impl Future<Output = Result<Bytes, FetchError>> + Send;

    /// Where `block` comes from (a peer's address, a local directory), for
    /// messages about a fetch that failed or stalled; `None` when unknown.
    fn source(&self, _block: &BlockId) -> Option<String> {
        None
    }
}

/// Parsed indexes by shuffle, map task and attempt.
type IndexCache = HashMap<(ShuffleId, MapId, u32), Arc<IndexFile>>;

/// Reads blocks from map outputs in one local directory, caching parsed
/// indexes. A block is read from the files of the map attempt it names; when
/// they are not there, the fetch fails as [`FetchError::Missing`].
#[derive(Debug, Clone)]
pub struct LocalFetcher {
    dir: PathBuf,
    indexes: Arc<Mutex<IndexCache>>,
}

impl LocalFetcher {
    /// A fetcher for map outputs written into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), indexes: Arc::default() }
    }

    /// Forget the cached index of attempt `attempt` of map task `map` of
    /// `shuffle` (after its output is rewritten or removed).
    pub fn invalidate(&self, shuffle: ShuffleId, map: MapId, attempt: u32) {
        self.indexes.lock().unwrap_or_else(|e| e.into_inner()).remove(&(shuffle, map, attempt));
    }

    fn read(&self, block: BlockId) -> Result<Bytes, FetchError> {
        let data = self.dir.join(block.data_file_name());
        let key = (block.shuffle, block.map, block.attempt);
        let cached = self.indexes.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
        let index = match cached {
            Some(index) => index,
            None => {
                let path = self.dir.join(block.index_file_name());
                for p in [&path, &data] {
                    if !p.exists() {
                        return Err(FetchError::Missing { path: p.clone() });
                    }
                }
                let index = Arc::new(IndexFile::open(&path, &data)?);
                self.indexes.lock().unwrap_or_else(|e| e.into_inner()).insert(key, index.clone());
                index
            }
        };
        Ok(Bytes::from(read_block(&data, &index, block.reduce.0)?))
    }
}

impl BlockFetcher for LocalFetcher {
    async fn fetch(&self, block: &BlockId) -> Result<Bytes, FetchError> {
        let this = self.clone();
        let block = *block;
        tokio::task::spawn_blocking(move || this.read(block)).await?
    }

    fn source(&self, _block: &BlockId) -> Option<String> {
        Some(self.dir.display().to_string())
    }
}
