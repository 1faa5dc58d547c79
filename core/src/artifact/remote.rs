//! The master-hosted artifact store over gRPC: the `Artifacts` service and its
//! client.
//!
//! The master serves its [`ArtifactStore`] so that agents (and `weft artifact
//! push --master`) need nothing but the master's address. Bytes travel in
//! chunks and are verified on both ends: the server's store re-hashes what it
//! reads, and [`RemoteArtifacts::get`] re-hashes what it received. Every call
//! passes an [`ArtifactGate`] first: who is calling, and whether they may read
//! the artifact they ask for.

use super::{ArtifactError, ArtifactStore, Digest};
use crate::proto::auth::Credentials;
use crate::proto::v1::artifacts_client::ArtifactsClient;
use crate::proto::v1::artifacts_server::{Artifacts, ArtifactsServer};
use crate::proto::v1::{ArtifactChunk, GetRequest, PutResponse};
use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

/// Bytes per chunk on the wire.
pub const CHUNK: usize = 1 << 20;

/// Who calls the `Artifacts` service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A process of the cluster (an agent, for its tasks and drivers): reads
    /// anything.
    Cluster,
    /// A tenant's client: reads what it stored, or anything if `admin`.
    Tenant {
        /// The tenant.
        name: Arc<str>,
        /// Whether it is an admin.
        admin: bool,
    },
}

/// Decides who may use the `Artifacts` service: the server that mounts it
/// knows its tokens and which tenant stored what.
pub trait ArtifactGate: Send + Sync + 'static {
    /// The caller of a request (protocol and token checked), or why not.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` or `FAILED_PRECONDITION`, saying how to fix it.
    fn caller(&self, md: &MetadataMap) -> Result<Caller, Status>;
    /// Whether `caller` may read `digest`.
    fn may_read(&self, caller: &Caller, digest: &Digest) -> bool;
    /// Whether `caller` may make what it stores public (readable by every
    /// tenant).
    ///
    /// # Errors
    /// `PERMISSION_DENIED`, saying why.
    fn may_publish(&self, caller: &Caller) -> Result<(), Status>;
    /// `caller` stored `digest`, for every tenant if `public`.
    fn stored(&self, caller: &Caller, digest: &Digest, public: bool);
}

/// A gate for a store only the cluster uses: the cluster token, nothing else.
#[derive(Debug, Clone)]
pub struct ClusterGate {
    token: String,
}

impl ClusterGate {
    /// Callers must present `token` (the cluster token).
    pub fn new(token: impl Into<String>) -> Self {
        Self { token: token.into() }
    }
}

impl ArtifactGate for ClusterGate {
    fn caller(&self, md: &MetadataMap) -> Result<Caller, Status> {
        crate::proto::auth::check(md, &self.token, "agent")?;
        Ok(Caller::Cluster)
    }

    fn may_read(&self, _: &Caller, _: &Digest) -> bool {
        true
    }

    fn may_publish(&self, _: &Caller) -> Result<(), Status> {
        // Everything here is readable by every caller already.
        Ok(())
    }

    fn stored(&self, _: &Caller, _: &Digest, _: bool) {}
}

/// The `Artifacts` service over a store.
#[derive(Clone)]
pub struct ArtifactService {
    store: ArtifactStore,
    gate: Arc<dyn ArtifactGate>,
}

impl std::fmt::Debug for ArtifactService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactService").field("store", &self.store).finish_non_exhaustive()
    }
}

impl ArtifactService {
    /// Serve `store` to the callers `gate` lets in; the store's size limit
    /// bounds uploads too.
    pub fn new(store: ArtifactStore, gate: Arc<dyn ArtifactGate>) -> Self {
        Self { store, gate }
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
        // Before a byte of the body is read.
        let caller = self.gate.caller(request.metadata())?;
        let mut chunks = request.into_inner();
        let limit = self.store.max_size();
        let mut buf = BytesMut::new();
        let mut public = None;
        while let Some(chunk) = chunks.message().await? {
            // Asked on the first chunk, refused before the rest is read.
            if public.is_none() {
                if chunk.public {
                    self.gate.may_publish(&caller)?;
                }
                public = Some(chunk.public);
            }
            if (buf.len() + chunk.data.len()) as u64 > limit {
                return Err(Status::resource_exhausted(format!(
                    "artifact larger than the store's limit of {limit} bytes (raise max_artifact_size)"
                )));
            }
            buf.extend_from_slice(&chunk.data);
        }
        let size = buf.len() as u64;
        let digest = self.store.put(buf.freeze()).await.map_err(status)?;
        self.gate.stored(&caller, &digest, public.unwrap_or(false));
        Ok(Response::new(PutResponse { digest: digest.to_string(), size }))
    }

    type GetStream = ChunkStream;

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<ChunkStream>, Status> {
        let caller = self.gate.caller(request.metadata())?;
        let digest: Digest = request
            .into_inner()
            .digest
            .parse()
            .map_err(|e| Status::invalid_argument(format!("bad digest: {e}")))?;
        // Another tenant's artifact reads as one that does not exist.
        if !self.gate.may_read(&caller, &digest) {
            return Err(not_yours(&digest));
        }
        let bytes = self.store.get(&digest).await.map_err(status)?;
        let chunks: Vec<Result<ArtifactChunk, Status>> =
            chunks(&bytes).map(|data| Ok(ArtifactChunk { data, public: false })).collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }
}

/// What a tenant hears of an artifact it may not read: the same as of one
/// that does not exist.
pub fn not_yours(digest: &Digest) -> Status {
    Status::not_found(format!(
        "no artifact {digest} of yours: push it (weft artifact push) or submit its file"
    ))
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
    client: ArtifactsClient<InterceptedService<Channel, Credentials>>,
}

impl RemoteArtifacts {
    /// A client over an established channel, presenting `credentials`.
    pub fn new(channel: Channel, credentials: Credentials) -> Self {
        Self {
            client: ArtifactsClient::with_interceptor(channel, credentials)
                .max_decoding_message_size(2 * CHUNK),
        }
    }

    /// Upload `bytes`; returns the digest the server computed, checked against ours.
    pub async fn put(&self, bytes: Bytes) -> Result<Digest, RemoteError> {
        self.put_as(bytes, false).await
    }

    /// Upload `bytes` readable by every tenant (an admin's token only; the
    /// master refuses others with `PERMISSION_DENIED`).
    pub async fn put_public(&self, bytes: Bytes) -> Result<Digest, RemoteError> {
        self.put_as(bytes, true).await
    }

    async fn put_as(&self, bytes: Bytes, public: bool) -> Result<Digest, RemoteError> {
        let ours = Digest::of(&bytes);
        // An empty artifact is still one chunk, so the flag travels.
        let mut parts: Vec<ArtifactChunk> =
            chunks(&bytes).map(|data| ArtifactChunk { data, public }).collect();
        if parts.is_empty() {
            parts.push(ArtifactChunk { data: Bytes::new(), public });
        }
        let stream = futures::stream::iter(parts);
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
