//! The master-hosted artifact store over gRPC: the `Artifacts` service and its
//! client.
//!
//! The master serves its [`ArtifactStore`] so that agents (and `weft artifact
//! push --master`) need nothing but the master's address. Bytes travel in
//! chunks and are verified on both ends: the server's store re-hashes what it
//! reads, and [`RemoteArtifacts::get`] re-hashes what it received.

use super::{ArtifactError, ArtifactStore, Digest};
use crate::proto::v1::artifacts_client::ArtifactsClient;
use crate::proto::v1::artifacts_server::{Artifacts, ArtifactsServer};
use crate::proto::v1::{ArtifactChunk, GetRequest, PutResponse};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Bytes per chunk on the wire.
pub const CHUNK: usize = 1 << 20;

/// The `Artifacts` service over a store.
#[derive(Clone, Debug)]
pub struct ArtifactService {
    store: ArtifactStore,
}

impl ArtifactService {
    /// Serve `store`; its size limit bounds uploads too.
    pub fn new(store: ArtifactStore) -> Self {
        Self { store }
    }

    /// The tonic service to mount on a server.
    pub fn into_server(self) -> ArtifactsServer<Self> {
        ArtifactsServer::new(self)
    }
}

/// How an artifact error reads as a gRPC status.
pub fn status(err: ArtifactError) -> Status {
    let msg = err.to_string();
    match err {
        ArtifactError::Uri(_) => Status::invalid_argument(msg),
        ArtifactError::NotFound { .. } => Status::not_found(msg),
        ArtifactError::DigestMismatch { .. } => Status::data_loss(msg),
        ArtifactError::TooLarge { .. } => Status::resource_exhausted(msg),
        ArtifactError::AccessDenied { .. } => Status::permission_denied(msg),
        _ => Status::unavailable(msg),
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<ArtifactChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Artifacts for ArtifactService {
    async fn put(&self, request: Request<Streaming<ArtifactChunk>>) -> Result<Response<PutResponse>, Status> {
        let mut chunks = request.into_inner();
        let limit = self.store.max_size();
        let mut buf = BytesMut::new();
        while let Some(chunk) = chunks.message().await? {
            if (buf.len() + chunk.data.len()) as u64 > limit {
                return Err(Status::resource_exhausted(format!(
                    "artifact larger than the store's limit of {limit} bytes (raise max_artifact_size)"
                )));
            }
            buf.extend_from_slice(&chunk.data);
        }
        let size = buf.len() as u64;
        let digest = self.store.put(buf.freeze()).await.map_err(status)?;
        Ok(Response::new(PutResponse { digest: digest.to_string(), size }))
    }

    type GetStream = ChunkStream;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<ChunkStream>, Status> {
        let digest: Digest = request
            .into_inner()
            .digest
            .parse()
            .map_err(|e| Status::invalid_argument(format!("bad digest: {e}")))?;
        let bytes = self.store.get(&digest).await.map_err(status)?;
        let chunks: Vec<Result<ArtifactChunk, Status>> =
            chunks(&bytes).map(|data| Ok(ArtifactChunk { data })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}

fn chunks(bytes: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    (0..bytes.len().div_ceil(CHUNK)).map(move |i| bytes.slice(i * CHUNK..((i + 1) * CHUNK).min(bytes.len())))
}

/// Why a remote artifact operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The server answered with an error.
    #[error("artifact service: {}", .0.message())]
    Status(#[from] Status),
    /// The bytes received do not hash to the digest asked for.
    #[error("artifact service returned bytes of {actual} for {expected}: refusing them")]
    DigestMismatch {
        /// Asked for.
        expected: Digest,
        /// Received.
        actual: Digest,
    },
    /// The server's digest does not parse.
    #[error("artifact service returned a malformed digest `{0}`")]
    BadDigest(String),
}

/// A client of a master's `Artifacts` service.
#[derive(Clone, Debug)]
pub struct RemoteArtifacts {
    client: ArtifactsClient<Channel>,
}

impl RemoteArtifacts {
    /// A client over an established channel.
    pub fn new(channel: Channel) -> Self {
        Self { client: ArtifactsClient::new(channel).max_decoding_message_size(2 * CHUNK) }
    }

    /// Upload `bytes`; returns the digest the server computed, checked against ours.
    pub async fn put(&self, bytes: Bytes) -> Result<Digest, RemoteError> {
        let ours = Digest::of(&bytes);
        let stream =
            futures::stream::iter(chunks(&bytes).map(|data| ArtifactChunk { data }).collect::<Vec<_>>());
        let reply = self.client.clone().put(stream).await?.into_inner();
        let theirs: Digest =
            reply.digest.parse().map_err(|_| RemoteError::BadDigest(reply.digest.clone()))?;
        if theirs != ours {
            return Err(RemoteError::DigestMismatch { expected: ours, actual: theirs });
        }
        Ok(theirs)
    }

    /// Download `digest`, verified.
    pub async fn get(&self, digest: &Digest) -> Result<Bytes, RemoteError> {
        let mut stream =
            self.client.clone().get(GetRequest { digest: digest.to_string() }).await?.into_inner();
        let mut buf = BytesMut::new();
        while let Some(chunk) = stream.message().await? {
            buf.extend_from_slice(&chunk.data);
        }
        let bytes = buf.freeze();
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(RemoteError::DigestMismatch { expected: *digest, actual });
        }
        Ok(bytes)
    }
}
