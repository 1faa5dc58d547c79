//! The `Blocks` gRPC service: a peer's window onto this agent's [`BlockStore`].

use super::cache::{CacheKey, CacheStore};
use super::keys::JobKeys;
use super::store::{BlockStore, JobId, StoreError, StoredBlock};
use super::tables::MapTables;
use crate::shuffle::{BlockId, Compression, MapId, ReduceId, ShuffleId};
use bytes::Bytes;
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use weft_core::access::JobCapability;
use weft_core::ids::JobId as CoreJobId;
use weft_core::proto::auth;
use weft_core::proto::v1::blocks_server::{Blocks, BlocksServer};
use weft_core::proto::v1::{
    BlockChunk, BlockCompression, FetchBlockRequest, FetchCachedRequest, RemoveJobRequest, RemoveJobResponse,
};

/// Bytes per chunk on the wire.
pub const CHUNK: usize = 1 << 20;

/// The `Blocks` service over a [`BlockStore`].
///
/// It knows nothing of tasks: a map output is served from the moment its
/// index is renamed into place until `RemoveJob`, whether or not the task that
/// wrote it is still running (external shuffle service semantics).
#[derive(Debug, Clone)]
pub struct BlockService {
    store: BlockStore,
    tables: MapTables,
    keys: JobKeys,
    token: Arc<str>,
    /// Persisted partitions, when the agent keeps any.
    cache: Option<CacheStore>,
}

impl BlockService {
    /// Serve the blocks in `store` to callers presenting the cluster `token`
    /// (peers fetching, the master removing a job).
    pub fn new(store: BlockStore, token: &str) -> Self {
        Self {
            store,
            tables: MapTables::default(),
            keys: JobKeys::default(),
            token: token.into(),
            cache: None,
        }
    }

    /// Serve the persisted partitions in `cache` too (and forget them with
    /// their job).
    pub fn with_cache(mut self, cache: CacheStore) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Check the job capability a fetch presents against the one this agent
    /// learned with the job's tasks.
    fn check_capability(&self, metadata: &tonic::metadata::MetadataMap, id: CoreJobId) -> Result<(), Status> {
        let presented = metadata.get(JobCapability::HEADER).and_then(|v| v.to_str().ok());
        match (self.keys.get(id), presented) {
            (Some(key), Some(given)) if key.matches_hex(given) => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "blocks of job {id} are served only to its own tasks (with its capability)"
            ))),
        }
    }

    /// Serve a job's blocks only to fetches presenting its capability in `keys`.
    pub fn with_keys(mut self, keys: JobKeys) -> Self {
        self.keys = keys;
        self
    }

    /// Drop a job's map-output tables from `tables` when the job is removed.
    pub fn with_tables(mut self, tables: MapTables) -> Self {
        self.tables = tables;
        self
    }

    /// The tonic service to mount on a server.
    pub fn into_server(self) -> BlocksServer<Self> {
        BlocksServer::new(self)
    }
}

/// How a store error reads as a gRPC status: `NOT_FOUND` for a missing block,
/// `DATA_LOSS` for a corrupt one, `INTERNAL` for other read failures.
pub fn status(err: &StoreError) -> Status {
    let msg = err.to_string();
    match err {
        StoreError::NotFound { .. } => Status::not_found(msg),
        StoreError::Corrupt { .. } => Status::data_loss(msg),
        _ => Status::internal(msg),
    }
}

/// The job a request names (one parse of its `JobRef`), and its directory.
fn requested(
    job: Option<&weft_core::proto::v1::JobRef>,
    message: &'static str,
) -> Result<(CoreJobId, JobId), Status> {
    let id = weft_core::proto::job_id(job, message).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok((id, JobId::from(id)))
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<BlockChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Blocks for BlockService {
    type FetchBlockStream = ChunkStream;

    async fn fetch_block(
        &self,
        request: Request<FetchBlockRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        auth::check(request.metadata(), &self.token, "peer")?;
        let (id, job) = requested(request.get_ref().job.as_ref(), "FetchBlockRequest")?;
        self.check_capability(request.metadata(), id)?;
        let r = request.into_inner();
        let block = BlockId::new(ShuffleId(r.shuffle), MapId(r.map), r.attempt, ReduceId(r.reduce));
        let store = self.store.clone();
        let read_job = job.clone();
        let stored = tokio::task::spawn_blocking(move || store.read_stored(&read_job, block))
            .await
            .map_err(|e| Status::internal(format!("block read task failed: {e}")))?;
        let stored = stored.map_err(|e| {
            tracing::warn!(job_id = %job, %block, error = %e, "weft.agent.blocks.fetch");
            status(&e)
        })?;
        tracing::debug!(job_id = %job, %block, bytes = stored.bytes.len(), "weft.agent.blocks.fetch");
        let chunks = to_chunks(stored).into_iter().map(Ok).collect::<Vec<_>>();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    type FetchCachedStream = ChunkStream;

    async fn fetch_cached(
        &self,
        request: Request<FetchCachedRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        auth::check(request.metadata(), &self.token, "peer")?;
        let (id, _) = requested(request.get_ref().job.as_ref(), "FetchCachedRequest")?;
        self.check_capability(request.metadata(), id)?;
        let r = request.into_inner();
        let key = CacheKey { job: id, dataset: weft_core::ids::DatasetId(r.dataset), partition: r.partition };
        let cache = self.cache.clone().ok_or_else(|| Status::not_found(format!("{key} is not kept here")))?;
        let batches = tokio::task::spawn_blocking(move || cache.get(&key))
            .await
            .map_err(|e| Status::internal(format!("cache read task failed: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("{key} is not kept here")))?;
        // Each batch as a block of its own: its chunks, its checksum last.
        let chunks: Vec<Result<BlockChunk, Status>> = batches
            .into_iter()
            .flat_map(|b| {
                let checksum = crc32c::crc32c(&b);
                chunks_of(b, checksum, Compression::None)
            })
            .map(Ok)
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn remove_job(
        &self,
        request: Request<RemoveJobRequest>,
    ) -> Result<Response<RemoveJobResponse>, Status> {
        auth::check(request.metadata(), &self.token, "master")?;
        let r = request.into_inner();
        let (id, job) = requested(r.job.as_ref(), "RemoveJobRequest")?;
        if let Some(dataset) = r.dataset {
            // Unpersist: only that dataset's partitions.
            let cache = self.cache.clone();
            let dataset = weft_core::ids::DatasetId(dataset);
            let removed = tokio::task::spawn_blocking(move || cache.map(|c| c.remove(id, Some(dataset))))
                .await
                .map_err(|e| Status::internal(format!("remove task failed: {e}")))?
                .transpose()
                .map_err(|e| Status::internal(e.to_string()))?
                .unwrap_or(0);
            tracing::info!(job_id = %job, %dataset, removed, "weft.agent.cache.unpersist");
            return Ok(Response::new(RemoveJobResponse { removed: removed > 0 }));
        }
        let (store, tables, cache, keys) =
            (self.store.clone(), self.tables.clone(), self.cache.clone(), self.keys.clone());
        let removed =
            tokio::task::spawn_blocking(move || forget_job(&store, &tables, cache.as_ref(), &keys, id))
                .await
                .map_err(|e| Status::internal(format!("remove task failed: {e}")))?
                .map_err(|e| status(&e))?;
        tracing::info!(job_id = %job, removed, "weft.agent.blocks.remove_job");
        Ok(Response::new(RemoveJobResponse { removed }))
    }
}

/// Forget everything an agent keeps for job `id`: its persisted partitions,
/// map-output tables, capability and files (`<work>/jobs/<job>`). Blocking
/// (disk). Whether its directory existed.
///
/// # Errors
/// Its directory could not be removed.
pub fn forget_job(
    store: &BlockStore,
    tables: &MapTables,
    cache: Option<&CacheStore>,
    keys: &JobKeys,
    id: CoreJobId,
) -> Result<bool, StoreError> {
    if let Some(Err(e)) = cache.map(|c| c.remove(id, None)) {
        tracing::warn!(error = %e, job_id = %id, "weft.agent.cache.remove_failed");
    }
    let job = JobId::from(id);
    tables.remove_job(job.as_str());
    keys.remove(id);
    store.remove_job(&job)
}

/// Cut a stored block into chunks of at most [`CHUNK`] bytes: the first
/// carries the length, the last the checksum and compression (one chunk for a
/// block of at most `CHUNK` bytes, including an empty one).
pub(crate) fn to_chunks(stored: StoredBlock) -> Vec<BlockChunk> {
    chunks_of(Bytes::from(stored.bytes), stored.checksum, stored.compression)
}

/// [`to_chunks`] of bytes already shared (a persisted batch), not copied.
fn chunks_of(bytes: Bytes, checksum: u32, compression: Compression) -> Vec<BlockChunk> {
    let n = bytes.len().div_ceil(CHUNK).max(1);
    (0..n)
        .map(|i| {
            let last = i + 1 == n;
            BlockChunk {
                data: bytes.slice(i * CHUNK..((i + 1) * CHUNK).min(bytes.len())),
                checksum: last.then_some(checksum),
                compression: if last { to_proto(compression) as i32 } else { 0 },
                length: (i == 0).then_some(bytes.len() as u64),
            }
        })
        .collect()
}

pub(crate) fn to_proto(c: Compression) -> BlockCompression {
    match c {
        Compression::None => BlockCompression::None,
        Compression::Lz4 => BlockCompression::Lz4,
    }
}

/// Serve `service` on `listener` until `shutdown`
/// completes, then stop accepting and return once open requests finish.
///
/// `shutdown` is typically the agent's one broadcast shutdown signal, e.g.
/// `async move { let _ = rx.recv().await; }`.
pub async fn serve_blocks(
    listener: TcpListener,
    service: BlockService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, work_dir = %service.store.work_dir().display(), "weft.agent.blocks.serve");
    tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(len: usize) -> StoredBlock {
        StoredBlock { bytes: vec![7; len], checksum: 42, compression: Compression::Lz4 }
    }

    #[test]
    fn chunks_carry_length_first_and_checksum_last() {
        for (len, n) in [(0, 1), (1, 1), (CHUNK, 1), (CHUNK + 1, 2), (3 * CHUNK, 3)] {
            let chunks = to_chunks(stored(len));
            assert_eq!(chunks.len(), n, "len {len}");
            assert_eq!(chunks.iter().map(|c| c.data.len()).sum::<usize>(), len);
            assert_eq!(chunks[0].length, Some(len as u64));
            assert!(chunks[1..].iter().all(|c| c.length.is_none()));
            let (last, rest) = chunks.split_last().unwrap();
            assert_eq!(last.checksum, Some(42));
            assert_eq!(last.compression(), BlockCompression::Lz4);
            assert!(rest.iter().all(|c| c.checksum.is_none()));
        }
    }
}
