//! The content-addressed artifact store: how weft stores, names, fetches and caches the
//! WebAssembly components that carry user code.
//!
//! An *artifact* is an immutable blob of bytes (a job's component, a broadcast file)
//! whose identity is its blake3 [`Digest`], written `blake3:<64 lowercase hex>`. weft
//! never runs bytes it has not verified against that digest.
//!
//! # Core concepts
//!
//! - [`Digest`]: the blake3 content address; its text form is the only one accepted.
//! - [`ArtifactStore`]: the cluster's store, on any [`object_store::ObjectStore`] (a
//!   local directory by default, e.g. the master's data dir; S3; HTTP; in memory in
//!   tests). Artifacts live under `<prefix>/blake3/<hex>`. [`put`](ArtifactStore::put)
//!   is idempotent; [`get`](ArtifactStore::get) always re-hashes what it read.
//! - [`ArtifactUri`]: where an artifact comes from, optionally pinning the digest it
//!   must have (syntax below).
//! - [`Resolver`]: fetches any [`ArtifactUri`] through `object_store` and returns
//!   `(digest, bytes)`, the digest always computed from the bytes.
//! - [`ArtifactCache`]: an agent's local cache directory keyed by digest, bounded in
//!   size, verified on every read, with deduplicated concurrent fetches
//!   ([`get_or_fetch`](ArtifactCache::get_or_fetch)).
//! - [`ArtifactService`] / [`RemoteArtifacts`]: the master's store served over gRPC,
//!   the default place agents fetch components from; verified on both ends.
//!
//! # URIs
//!
//! | URI | read from | expected digest |
//! |---|---|---|
//! | `blake3:<hex>` | the cluster's [`ArtifactStore`] | the digest itself |
//! | `file:///abs/path` | the local filesystem (absolute path, three slashes) | optional `#blake3:<hex>` |
//! | `s3://bucket/key` | S3 or an S3-compatible server, per [`S3Config`] | optional `#blake3:<hex>` |
//! | `http://host/path?query`, `https://…` | an HTTP GET of exactly that URL | optional `#blake3:<hex>` |
//!
//! The fragment `#blake3:<hex>` is the *expected digest*: fragments are not sent to
//! servers, so it fits any URL, presigned ones included. Paths and keys are
//! percent-decoded (`%23` is a literal `#`). `gs://` and `az://` are not supported yet;
//! like any other scheme they fail with [`UriError::UnknownScheme`].
//!
//! # Verification guarantees
//!
//! - [`ArtifactStore::get`] returns bytes that hash to the requested digest, or
//!   [`ArtifactError::DigestMismatch`] naming the expected and the actual digest.
//! - [`Resolver::resolve`] returns the digest computed from the returned bytes; when the
//!   URI pins a digest, a different one is a [`ArtifactError::DigestMismatch`].
//! - [`ArtifactCache`] hashes every file it reads; a corrupt file is deleted and
//!   fetched again, never returned. Files appear atomically (temp file + rename).
//! - Artifacts above the configured size ([`ResolverConfig::max_artifact_size`],
//!   [`ArtifactStore::with_max_size`]) fail with [`ArtifactError::TooLarge`], judged by
//!   the size the store reports before the body is read, and enforced while reading.
//!
//! Each failure is its own [`ArtifactError`] variant whose message says what to fix.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use weft_core::artifact::{ArtifactError, ArtifactStore, ArtifactUri, Resolver, ResolverConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = tempfile::tempdir()?;
//! let store = ArtifactStore::local(data_dir.path())?;
//!
//! // Store a component; its digest is its address.
//! let digest = store.put(Bytes::from_static(b"\0asm component bytes")).await?;
//! assert!(digest.to_string().starts_with("blake3:"));
//! assert_eq!(store.get(&digest).await?, Bytes::from_static(b"\0asm component bytes"));
//!
//! // Resolve URIs: from the store by digest, or from a file with a pinned digest.
//! let resolver = Resolver::new(store, ResolverConfig::default());
//! let (same, _bytes) = resolver.resolve(&ArtifactUri::Blake3(digest)).await?;
//! assert_eq!(same, digest);
//!
//! let file = data_dir.path().join("job.wasm");
//! std::fs::write(&file, b"other bytes")?;
//! let uri: ArtifactUri = format!("file://{}#{digest}", file.display()).parse()?;
//! match resolver.resolve(&uri).await {
//!     Err(ArtifactError::DigestMismatch { expected, .. }) => assert_eq!(expected, digest),
//!     other => panic!("expected a digest mismatch, got {other:?}"),
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
pub mod config;
pub mod digest;
mod error;
mod fetch;
pub mod remote;
mod resolver;
mod store;
pub mod uri;

pub use cache::ArtifactCache;
pub use config::{CacheConfig, ResolverConfig, S3Config};
pub use digest::{Digest, DigestParseError};
pub use error::ArtifactError;
pub use remote::{ArtifactGate, ArtifactService, Caller, ClusterGate, RemoteArtifacts, RemoteError};
pub use resolver::Resolver;
pub use store::{ArtifactStore, DEFAULT_PREFIX};
pub use uri::{ArtifactUri, UriError};
