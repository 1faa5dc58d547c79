//! The grid's block fetcher: a [`BlockFetcher`] that asks the agent holding a
//! map output for the block over gRPC, or reads it from this agent's own
//! shuffle files when it is here.

use super::service::CHUNK;
use super::store::{BlockStore, JobId};
use crate::shuffle::{BlockFetcher, BlockId, FetchError, MapId, ShuffleId};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic::{Code, Status};
use weft_core::ids::JobId as CoreJobId;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::blocks_client::BlocksClient;

type Client = BlocksClient<InterceptedService<Channel, Credentials>>;
use weft_core::access::JobCapability;
use weft_core::proto::v1::{BlockCompression, FetchBlockRequest, FetchCachedRequest, RemoveJobRequest};
use weft_core::task::MapTable;

/// How long one block fetch may take, connecting included, by default.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a peer may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this much is reserved up front for a block, whatever length the
/// peer announces; larger blocks grow the buffer as their bytes arrive.
const MAX_PREALLOC: u64 = 64 << 20;
/// Compressed blocks up to this size are decompressed in place; larger ones on
/// a blocking thread, so the I/O runtime keeps serving.
const SMALL_BLOCK: usize = 256 << 10;

/// Why a peer's block service did not deliver a block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The fetcher was not told which agent holds this map output.
    #[error("no agent known for map output {map} of {shuffle}")]
    Unlocated {
        /// The shuffle.
        shuffle: ShuffleId,
        /// The map task.
        map: MapId,
    },
    /// The agent's address is not a valid URI.
    #[error("bad agent address `{peer}`: {reason}")]
    BadAddress {
        /// The address.
        peer: String,
        /// What is wrong.
        reason: String,
    },
    /// The agent could not be reached (connection refused, reset, no route).
    #[error("agent {peer} unreachable: {}", status.message())]
    Unreachable {
        /// The agent.
        peer: String,
        /// The transport's status.
        status: Status,
    },
    /// The master declared the agent lost: a fetch from it is not waited for.
    #[error("agent {peer} was declared lost by the master")]
    PeerLost {
        /// The agent.
        peer: String,
    },
    /// The fetch did not complete in time.
    #[error("agent {peer} did not deliver the block within {after:?}")]
    Timeout {
        /// The agent.
        peer: String,
        /// The timeout.
        after: Duration,
    },
    /// The agent does not hold the block (job removed, disk lost, wrong agent).
    #[error("agent {peer}: {}", status.message())]
    NotFound {
        /// The agent.
        peer: String,
        /// Its `NOT_FOUND` status.
        status: Status,
    },
    /// The agent found the block corrupt on its disk.
    #[error("agent {peer}: {}", status.message())]
    DataLoss {
        /// The agent.
        peer: String,
        /// Its `DATA_LOSS` status.
        status: Status,
    },
    /// Any other error status.
    #[error("agent {peer} answered {:?}: {}", status.code(), status.message())]
    Status {
        /// The agent.
        peer: String,
        /// Its status.
        status: Status,
    },
    /// The bytes received do not match the checksum sent with them.
    #[error("block from {peer} has crc32c {got:08x}, the agent says {want:08x}")]
    Checksum {
        /// The agent.
        peer: String,
        /// Of the bytes received.
        got: u32,
        /// Sent by the agent.
        want: u32,
    },
    /// The stream ended before the last chunk, or short of the announced length.
    #[error(
        "block stream from {peer} ended after {received} bytes (announced {expected:?}) without its last chunk"
    )]
    Truncated {
        /// The agent.
        peer: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced on the first chunk.
        expected: Option<u64>,
    },
    /// The chunks break the protocol (data after the last chunk, more bytes
    /// than announced, an unknown compression).
    #[error("block stream from {peer} is malformed: {reason}")]
    Protocol {
        /// The agent.
        peer: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The block's checksum matched but it does not decompress.
    #[error("block from {peer} does not decompress: {reason}")]
    Decompress {
        /// The agent.
        peer: String,
        /// The codec's error.
        reason: String,
    },
}

impl RemoteError {
    fn from_status(peer: &str, status: Status) -> Self {
        let peer = peer.to_owned();
        match status.code() {
            Code::Unavailable => Self::Unreachable { peer, status },
            Code::NotFound => Self::NotFound { peer, status },
            Code::DataLoss => Self::DataLoss { peer, status },
            _ => Self::Status { peer, status },
        }
    }
}

/// One lazily connected channel per peer address, shared by every fetcher of
/// an agent so that all reduce tasks reuse the same HTTP/2 connections.
///
/// Cheap to clone. Channels reconnect on their own after a peer restarts.
#[derive(Debug, Clone)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    connect_timeout: Duration,
    credentials: Credentials,
    tls: Option<ClientTlsConfig>,
    /// The addresses of agents the master declared lost, as its latest
    /// heartbeat answer named them.
    lost: Arc<tokio::sync::watch::Sender<Arc<HashSet<String>>>>,
}

impl Default for PeerChannels {
    fn default() -> Self {
        Self {
            channels: Arc::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            credentials: Credentials::none(),
            tls: None,
            lost: Arc::new(tokio::sync::watch::Sender::new(Arc::default())),
        }
    }
}

impl PeerChannels {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Present `credentials` (the cluster token) to peers.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Reach `https://` peers trusting `tls`'s CA.
    pub fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    /// Set how long connecting to a peer may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The agents the master declared lost, by address (replacing the set
    /// before): fetches from them under way fail at once with
    /// [`RemoteError::PeerLost`], and new ones are not tried.
    pub fn set_lost(&self, peers: HashSet<String>) {
        self.lost.send_if_modified(|now| {
            let changed = **now != peers;
            if changed {
                *now = Arc::new(peers);
            }
            changed
        });
    }

    /// `peers` are live agents again (the master named them since): they
    /// leave the lost set.
    pub fn found<'a>(&self, peers: impl IntoIterator<Item = &'a str>) {
        let peers: Vec<&str> = peers.into_iter().collect();
        self.lost.send_if_modified(|now| {
            if !peers.iter().any(|p| now.contains(*p)) {
                return false;
            }
            let mut left = (**now).clone();
            for p in &peers {
                left.remove(*p);
            }
            *now = Arc::new(left);
            true
        });
    }

    /// `Err` once (or as soon as) `peer` is declared lost.
    async fn until_lost(&self, peer: &str) -> RemoteError {
        let mut lost = self.lost.subscribe();
        if lost.wait_for(|set| set.contains(peer)).await.is_err() {
            std::future::pending::<()>().await;
        }
        RemoteError::PeerLost { peer: peer.to_owned() }
    }

    /// The channel to `peer` (`host:port`, or a full `http://` URI), created on
    /// first use. Must be called within a tokio runtime.
    pub fn channel(&self, peer: &str) -> Result<Channel, RemoteError> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(peer) {
            return Ok(c.clone());
        }
        let channel = weft_core::proto::tls::endpoint(peer, self.tls.as_ref())
            .map_err(|e| RemoteError::BadAddress { peer: peer.to_owned(), reason: e.to_string() })?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(peer.to_owned(), channel.clone());
        Ok(channel)
    }

    fn client(&self, peer: &str) -> Result<Client, RemoteError> {
        Ok(BlocksClient::with_interceptor(self.channel(peer)?, self.credentials.clone())
            .max_decoding_message_size(2 * CHUNK))
    }

    /// Ask `peer` to delete `job`'s shuffle files and persisted partitions
    /// (with `dataset`, only that dataset's persisted partitions); `true` if
    /// it held any.
    pub async fn remove_job(
        &self,
        peer: &str,
        job: CoreJobId,
        dataset: Option<weft_core::ids::DatasetId>,
    ) -> Result<bool, RemoteError> {
        let request = RemoveJobRequest { job: Some(job.into()), dataset: dataset.map(|d| d.0) };
        let reply =
            self.client(peer)?.remove_job(request).await.map_err(|s| RemoteError::from_status(peer, s))?;
        Ok(reply.into_inner().removed)
    }

    /// The batches of a persisted partition `peer` keeps, each checked
    /// against the checksum sent with it; within `timeout` (and until `peer`
    /// is declared lost), presenting the job's capability `key`.
    pub async fn fetch_cached(
        &self,
        peer: &str,
        key: super::CacheKey,
        capability: Option<&JobCapability>,
        timeout: Duration,
    ) -> Result<Vec<Bytes>, RemoteError> {
        let status = |s| RemoteError::from_status(peer, s);
        let protocol = |reason| RemoteError::Protocol { peer: peer.to_owned(), reason };
        let request = FetchCachedRequest {
            job: Some(key.job.into()),
            dataset: key.dataset.0,
            partition: key.partition,
        };
        let mut request = tonic::Request::new(request);
        if let Some(value) = capability.and_then(|k| k.to_hex().parse().ok()) {
            request.metadata_mut().insert(JobCapability::HEADER, value);
        }
        let mut client = self.client(peer)?;
        let fetch = async {
            let mut stream = client.fetch_cached(request).await.map_err(status)?.into_inner();
            let (mut batches, mut buf) = (Vec::new(), BytesMut::new());
            while let Some(chunk) = stream.message().await.map_err(status)? {
                if chunk.length.is_some() && !buf.is_empty() {
                    return Err(protocol("a batch began before the last one ended"));
                }
                buf.extend_from_slice(&chunk.data);
                if let Some(want) = chunk.checksum {
                    let got = crc32c::crc32c(&buf);
                    if got != want {
                        return Err(RemoteError::Checksum { peer: peer.to_owned(), got, want });
                    }
                    batches.push(buf.split().freeze());
                }
            }
            if !buf.is_empty() {
                let received = buf.len() as u64;
                return Err(RemoteError::Truncated { peer: peer.to_owned(), received, expected: None });
            }
            Ok(batches)
        };
        tokio::select! {
            done = tokio::time::timeout(timeout, fetch) => {
                done.map_err(|_| RemoteError::Timeout { peer: peer.to_owned(), after: timeout })?
            }
            lost = self.until_lost(peer) => Err(lost),
        }
    }
}

/// Fetches one job's blocks from the agents holding its map outputs.
///
/// Built per reduce task from the map output locations the scheduler reports
/// (which agent ran each map task); channels come from a shared
/// [`PeerChannels`]. Each fetch (request and whole stream) runs under one
/// timeout. What arrives is checked against the crc32c the peer sent, then
/// lz4-decompressed if the peer says the block is, so the reader gets the
/// block's pair batch. Every failure is a [`FetchError::Remote`], which the
/// [`ShuffleReader`](crate::shuffle::ShuffleReader) reports as `FetchFailed`
/// for that block.
#[derive(Debug, Clone)]
pub struct RemoteFetcher {
    job: CoreJobId,
    /// The job's directory name, for messages.
    dir: JobId,
    peers: PeerChannels,
    locations: Arc<HashMap<(ShuffleId, MapId), String>>,
    /// Map-output tables, by shuffle: where most locations come from.
    tables: Arc<HashMap<ShuffleId, Arc<MapTable>>>,
    /// The job's capability, presented with every fetch.
    key: Option<JobCapability>,
    timeout: Duration,
    /// This agent's address and shuffle files: map outputs located there
    /// are read from disk, not through its own block service.
    local: Option<(Arc<str>, BlockStore)>,
}

impl RemoteFetcher {
    /// A fetcher for `job`'s blocks over `peers`, knowing no locations yet.
    pub fn new(job: CoreJobId, peers: PeerChannels) -> Self {
        Self {
            job,
            dir: JobId::from(job),
            peers,
            locations: Arc::default(),
            tables: Arc::default(),
            key: None,
            timeout: DEFAULT_FETCH_TIMEOUT,
            local: None,
        }
    }

    /// Read the map outputs located at `address` (this agent's own) from
    /// `store` directly, with the same checks as the block service makes.
    pub fn with_local(mut self, address: impl Into<Arc<str>>, store: BlockStore) -> Self {
        self.local = Some((address.into(), store));
        self
    }

    /// This agent's own files, if the map output of `block` is here.
    fn local_store(&self, block: &BlockId) -> Option<&BlockStore> {
        let (address, store) = self.local.as_ref()?;
        (self.location(block.shuffle, block.map)? == &**address).then_some(store)
    }

    /// Set the timeout of each block fetch.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Record that map task `map` of `shuffle` is served by the agent at `peer`.
    pub fn with_map_output(mut self, shuffle: ShuffleId, map: MapId, peer: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.locations).insert((shuffle, map), peer.into());
        self
    }

    /// Present `key`, the job's capability, with every fetch.
    pub fn with_key(mut self, key: JobCapability) -> Self {
        self.key = Some(key);
        self
    }

    /// Take the locations of `shuffle`'s map outputs from `table`.
    pub fn with_table(mut self, shuffle: ShuffleId, table: Arc<MapTable>) -> Self {
        Arc::make_mut(&mut self.tables).insert(shuffle, table);
        self
    }

    /// The job whose blocks this fetcher reads.
    pub fn job(&self) -> CoreJobId {
        self.job
    }

    /// The agent serving map task `map` of `shuffle`, if known.
    pub fn location(&self, shuffle: ShuffleId, map: MapId) -> Option<&str> {
        match self.locations.get(&(shuffle, map)) {
            Some(peer) => Some(peer),
            None => self.tables.get(&shuffle)?.address(map.0).map(|a| &**a),
        }
    }

    /// Fetch `block` from the agent holding it: verified and decompressed.
    ///
    /// Cancel safe: dropping the future cancels the request.
    pub async fn fetch_block(&self, block: &BlockId) -> Result<Bytes, RemoteError> {
        let peer = self
            .location(block.shuffle, block.map)
            .ok_or(RemoteError::Unlocated { shuffle: block.shuffle, map: block.map })?;
        let client = self.peers.client(peer)?;
        let fetch = tokio::time::timeout(self.timeout, self.stream_block(client, peer, block));
        let (stored, checksum, compression) = tokio::select! {
            done = fetch => done.map_err(|_| RemoteError::Timeout { peer: peer.to_owned(), after: self.timeout })??,
            lost = self.peers.until_lost(peer) => return Err(lost),
        };
        let got = crc32c::crc32c(&stored);
        if got != checksum {
            return Err(RemoteError::Checksum { peer: peer.to_owned(), got, want: checksum });
        }
        match compression {
            BlockCompression::None => Ok(stored),
            BlockCompression::Lz4 if stored.is_empty() => Ok(stored),
            BlockCompression::Lz4 => {
                let small = stored.len() <= SMALL_BLOCK;
                let owner = peer.to_owned();
                let decode = move || {
                    let mut out = Vec::with_capacity(stored.len() * 2);
                    lz4_flex::frame::FrameDecoder::new(&stored[..])
                        .read_to_end(&mut out)
                        .map(|_| Bytes::from(out))
                        .map_err(|e| RemoteError::Decompress { peer: owner, reason: e.to_string() })
                };
                if small {
                    decode()
                } else {
                    // Large blocks decompress off the I/O runtime.
                    tokio::task::spawn_blocking(decode).await.map_err(|e| RemoteError::Decompress {
                        peer: peer.to_owned(),
                        reason: format!("decompression task failed: {e}"),
                    })?
                }
            }
        }
    }

    /// Request `block` and collect its chunks: the stored bytes, the checksum
    /// and compression from the last chunk.
    async fn stream_block(
        &self,
        mut client: Client,
        peer: &str,
        block: &BlockId,
    ) -> Result<(Bytes, u32, BlockCompression), RemoteError> {
        let status = |s| RemoteError::from_status(peer, s);
        let protocol = |reason| RemoteError::Protocol { peer: peer.to_owned(), reason };
        let request = FetchBlockRequest {
            job: Some(self.job.into()),
            shuffle: block.shuffle.0,
            map: block.map.0,
            attempt: block.attempt,
            reduce: block.reduce.0,
        };
        let mut request = tonic::Request::new(request);
        if let Some(key) = &self.key
            && let Ok(value) = key.to_hex().parse()
        {
            request.metadata_mut().insert(JobCapability::HEADER, value);
        }
        let mut stream = client.fetch_block(request).await.map_err(status)?.into_inner();
        let mut buf = BytesMut::new();
        let mut expected: Option<u64> = None;
        let mut last: Option<(u32, BlockCompression)> = None;
        while let Some(chunk) = stream.message().await.map_err(status)? {
            if last.is_some() {
                return Err(protocol("a chunk after the last one"));
            }
            if let Some(len) = chunk.length {
                if expected.is_some() || !buf.is_empty() {
                    return Err(protocol("a length on a chunk other than the first"));
                }
                expected = Some(len);
                buf.reserve(len.min(MAX_PREALLOC) as usize);
            }
            buf.extend_from_slice(&chunk.data);
            if expected.is_some_and(|e| buf.len() as u64 > e) {
                return Err(protocol("more bytes than announced"));
            }
            if let Some(checksum) = chunk.checksum {
                let compression = BlockCompression::try_from(chunk.compression)
                    .map_err(|_| protocol("an unknown compression"))?;
                last = Some((checksum, compression));
            }
        }
        let received = buf.len() as u64;
        match last {
            Some((checksum, compression)) if expected.is_none_or(|e| e == received) => {
                Ok((buf.freeze(), checksum, compression))
            }
            _ => Err(RemoteError::Truncated { peer: peer.to_owned(), received, expected }),
        }
    }
}

impl BlockFetcher for RemoteFetcher {
    async fn fetch(&self, block: &BlockId) -> Result<Bytes, FetchError> {
        if let Some(store) = self.local_store(block) {
            let (store, dir, id) = (store.clone(), self.dir.clone(), *block);
            let read = tokio::task::spawn_blocking(move || store.read_block(&dir, id)).await?;
            return read.map(Bytes::from).map_err(|e| {
                tracing::warn!(job_id = %self.dir, %block, error = %e, "weft.agent.blocks.local_fetch");
                e.into()
            });
        }
        self.fetch_block(block).await.map_err(|e| {
            tracing::warn!(job_id = %self.dir, %block, error = %e, "weft.agent.blocks.remote_fetch");
            e.into()
        })
    }

    fn source(&self, block: &BlockId) -> Option<String> {
        match self.local_store(block) {
            Some(store) => Some(format!("this agent's files in {}", store.shuffle_dir(&self.dir).display())),
            None => self.location(block.shuffle, block.map).map(str::to_owned),
        }
    }
}
