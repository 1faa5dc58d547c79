//! [`ArtifactStore`]: the cluster's content-addressed artifact store on any
//! `object_store` backend.

use std::fmt;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use bytesize::ByteSize;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use super::config::DEFAULT_MAX_ARTIFACT_SIZE;
use super::digest::Digest;
use super::error::ArtifactError;
use super::fetch::{digest_of, read_verified};

/// Default prefix of artifact objects inside the backing store.
pub const DEFAULT_PREFIX: &str = "artifacts";

/// Artifacts stored by digest under `<prefix>/blake3/<hex>` in an [`ObjectStore`].
///
/// Writes are idempotent (the address is the content) and every read is verified: the
/// bytes returned by [`get`](Self::get) hash to the digest that was asked for, or the
/// call fails with [`ArtifactError::DigestMismatch`]. Reads larger than
/// [`max_size`](Self::max_size) fail with [`ArtifactError::TooLarge`] before the body is
/// read. Cloning is cheap (the backend is shared).
#[derive(Clone)]
pub struct ArtifactStore {
    backend: Arc<dyn ObjectStore>,
    prefix: Path,
    max_size: u64,
}

impl fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("backend", &format_args!("{}", self.backend))
            .field("prefix", &self.prefix.as_ref())
            .field("max_size", &self.max_size)
            .finish()
    }
}

impl ArtifactStore {
    /// A store over `backend`, with prefix [`DEFAULT_PREFIX`] and the default size limit.
    pub fn new(backend: Arc<dyn ObjectStore>) -> Self {
        Self { backend, prefix: Path::from(DEFAULT_PREFIX), max_size: DEFAULT_MAX_ARTIFACT_SIZE.as_u64() }
    }

    /// A store in the local directory `dir` (created if missing): the default backend,
    /// e.g. the master's data directory. Artifacts land in `dir/artifacts/blake3/<hex>`.
    pub fn local(dir: impl AsRef<FsPath>) -> Result<Self, ArtifactError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError::io(dir, source))?;
        let backend = LocalFileSystem::new_with_prefix(dir)
            .map_err(|source| ArtifactError::from_store(dir.display().to_string(), source))?;
        Ok(Self::new(Arc::new(backend)))
    }

    /// Sets the prefix under which objects are stored (`""` for the store's root).
    /// Its segments are taken as they are, `/`-separated.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = Path::from_iter(prefix.split('/').filter(|s| !s.is_empty()));
        self
    }

    /// Sets the largest artifact that [`put`](Self::put) accepts and
    /// [`get`](Self::get) reads.
    pub fn with_max_size(mut self, max_size: ByteSize) -> Self {
        self.max_size = max_size.as_u64();
        self
    }

    /// The largest artifact accepted, in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The backing object store.
    pub fn backend(&self) -> &Arc<dyn ObjectStore> {
        &self.backend
    }

    /// Where the artifact with `digest` is (or would be) stored in the backend:
    /// `<prefix>/blake3/<hex>`.
    pub fn path_of(&self, digest: &Digest) -> Path {
        self.prefix.child("blake3").child(digest.to_hex())
    }

    /// Stores `bytes` and returns their digest.
    ///
    /// Idempotent: if an object of the same size already sits at the digest's path, it
    /// is left alone (a differently sized one, i.e. a damaged copy, is overwritten).
    /// Backends write atomically, so a reader never sees a partial artifact.
    #[tracing::instrument(name = "weft.core.artifact.put", skip_all, fields(size = bytes.len()))]
    pub async fn put(&self, bytes: Bytes) -> Result<Digest, ArtifactError> {
        let size = bytes.len() as u64;
        if size > self.max_size {
            return Err(ArtifactError::TooLarge {
                location: "the artifact to store".into(),
                size,
                limit: self.max_size,
            });
        }
        let digest = digest_of(bytes.clone(), "the artifact to store").await?;
        let path = self.path_of(&digest);
        let location = self.location(&digest, &path);
        match self.backend.head(&path).await {
            Ok(meta) if meta.size == size => {
                tracing::debug!(%digest, "artifact already stored");
                return Ok(digest);
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(ArtifactError::from_store(location, source)),
        }
        self.backend
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(|source| ArtifactError::from_store(location, source))?;
        tracing::debug!(%digest, "artifact stored");
        Ok(digest)
    }

    /// Reads the artifact with `digest`, verified: the bytes hash to `digest`, or this
    /// fails with [`ArtifactError::DigestMismatch`] naming both digests. A missing
    /// artifact is [`ArtifactError::NotFound`]; one over the size limit is
    /// [`ArtifactError::TooLarge`] and is not read.
    #[tracing::instrument(name = "weft.core.artifact.get", skip(self), fields(digest = %digest))]
    pub async fn get(&self, digest: &Digest) -> Result<Bytes, ArtifactError> {
        let path = self.path_of(digest);
        let location = self.location(digest, &path);
        let (_, bytes) =
            read_verified(&*self.backend, &path, &location, self.max_size, Some(*digest)).await?;
        Ok(bytes)
    }

    /// Whether an artifact with `digest` is stored (its bytes are not checked).
    pub async fn exists(&self, digest: &Digest) -> Result<bool, ArtifactError> {
        let path = self.path_of(digest);
        match self.backend.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(ArtifactError::from_store(self.location(digest, &path), source)),
        }
    }

    /// Removes the artifact with `digest`; removing a missing artifact succeeds.
    pub async fn delete(&self, digest: &Digest) -> Result<(), ArtifactError> {
        let path = self.path_of(digest);
        match self.backend.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(ArtifactError::from_store(self.location(digest, &path), source)),
        }
    }

    fn location(&self, digest: &Digest, path: &Path) -> String {
        format!("{digest} (object `{path}` in {})", self.backend)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn store() -> ArtifactStore {
        ArtifactStore::new(Arc::new(InMemory::new()))
    }

    #[tokio::test]
    async fn round_trip_and_layout() {
        let store = store().with_prefix("p/q/");
        let digest = store.put(Bytes::from_static(b"component")).await.unwrap();
        assert_eq!(digest, Digest::of(b"component"));
        assert_eq!(store.path_of(&digest).as_ref(), format!("p/q/blake3/{}", digest.to_hex()));
        assert_eq!(store.get(&digest).await.unwrap(), Bytes::from_static(b"component"));
        assert!(store.exists(&digest).await.unwrap());
        // Idempotent.
        assert_eq!(store.put(Bytes::from_static(b"component")).await.unwrap(), digest);
        store.delete(&digest).await.unwrap();
        store.delete(&digest).await.unwrap();
        assert!(!store.exists(&digest).await.unwrap());
        assert!(matches!(store.get(&digest).await, Err(ArtifactError::NotFound { .. })));
    }

    #[tokio::test]
    async fn empty_prefix_stores_at_the_root() {
        let store = store().with_prefix("");
        let digest = Digest::of(b"");
        assert_eq!(store.path_of(&digest).as_ref(), format!("blake3/{}", digest.to_hex()));
        assert_eq!(store.put(Bytes::new()).await.unwrap(), digest);
        assert_eq!(store.get(&digest).await.unwrap(), Bytes::new());
    }

    #[tokio::test]
    async fn tampered_object_is_refused_and_repaired_by_put() {
        let store = store();
        let digest = store.put(Bytes::from_static(b"good")).await.unwrap();
        let path = store.path_of(&digest);
        store.backend().put(&path, PutPayload::from_static(b"evil!")).await.unwrap();
        match store.get(&digest).await {
            Err(ArtifactError::DigestMismatch { expected, actual, .. }) => {
                assert_eq!(expected, digest);
                assert_eq!(actual, Digest::of(b"evil!"));
            }
            other => panic!("{other:?}"),
        }
        // Different size: put overwrites the damaged copy.
        store.put(Bytes::from_static(b"good")).await.unwrap();
        assert_eq!(store.get(&digest).await.unwrap(), Bytes::from_static(b"good"));
    }

    #[tokio::test]
    async fn size_limit_applies_to_put_and_get() {
        let big = Bytes::from(vec![7u8; 100]);
        let unlimited = store();
        let digest = unlimited.put(big.clone()).await.unwrap();
        let limited = unlimited.clone().with_max_size(ByteSize::b(99));
        assert!(matches!(
            limited.get(&digest).await,
            Err(ArtifactError::TooLarge { size: 100, limit: 99, .. })
        ));
        assert!(matches!(limited.put(big).await, Err(ArtifactError::TooLarge { .. })));
    }
}
