//! [`Resolver`]: turns an [`ArtifactUri`] into verified bytes.
//!
//! Every source is read through `object_store`: `blake3:` URIs from the cluster's
//! [`ArtifactStore`], `file://` through a root [`LocalFileSystem`], `s3://` through an
//! S3 client per bucket (built once from [`S3Config`](super::S3Config) and kept), and
//! `http(s)://` through an `HttpStore` aimed at the exact URL, all HTTP stores sharing
//! one connection pool. Whatever the source, the returned digest is computed from the
//! returned bytes, and an expected digest in the URI must match it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use object_store::client::{HttpClient, HttpConnector, ReqwestConnector};
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore};
use url::Url;

use super::config::ResolverConfig;
use super::digest::Digest;
use super::error::ArtifactError;
use super::fetch::read_verified;
use super::store::ArtifactStore;
use super::uri::{ArtifactUri, UriError};

/// Fetches artifacts named by [`ArtifactUri`]s and verifies them.
///
/// Cheap to share behind an `Arc`; clients are built lazily and reused.
#[derive(Debug)]
pub struct Resolver {
    store: ArtifactStore,
    config: ResolverConfig,
    local: LocalFileSystem,
    s3: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    http: Mutex<Option<HttpClient>>,
}

impl Resolver {
    /// A resolver reading `blake3:` URIs from `store` and everything else as
    /// `config` says. `config.max_artifact_size` bounds every source, the store
    /// included (it replaces the store's own limit).
    pub fn new(store: ArtifactStore, config: ResolverConfig) -> Self {
        let store = store.with_max_size(config.max_artifact_size);
        Self {
            store,
            config,
            local: LocalFileSystem::new(),
            s3: Mutex::new(HashMap::new()),
            http: Mutex::new(None),
        }
    }

    /// The store that `blake3:` URIs are read from.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// Fetches the artifact at `uri` and returns its digest (always computed from the
    /// bytes) and bytes.
    ///
    /// Fails with [`ArtifactError::DigestMismatch`] if the URI pins a digest the bytes
    /// do not have, [`ArtifactError::NotFound`] if nothing is there,
    /// [`ArtifactError::TooLarge`] past `max_artifact_size` (checked before the body is
    /// read), [`ArtifactError::AccessDenied`] or [`ArtifactError::Storage`] if the
    /// source refuses or fails.
    ///
    /// Cancel safety: dropping the future abandons the request; nothing is left behind.
    #[tracing::instrument(name = "weft.core.artifact.resolve", skip(self), fields(uri = %uri))]
    pub async fn resolve(&self, uri: &ArtifactUri) -> Result<(Digest, Bytes), ArtifactError> {
        let limit = self.config.max_artifact_size.as_u64();
        let location = uri.to_string();
        match uri {
            ArtifactUri::Blake3(digest) => Ok((*digest, self.store.get(digest).await?)),
            ArtifactUri::File { path, expected } => {
                let object = Path::from_absolute_path(path)
                    .map_err(|err| malformed(&location, format!("unusable file path: {err}")))?;
                read_verified(&self.local, &object, &location, limit, *expected).await
            }
            ArtifactUri::S3 { bucket, key, expected } => {
                let object =
                    Path::parse(key).map_err(|err| malformed(&location, format!("invalid S3 key: {err}")))?;
                let backend = self.s3_store(bucket)?;
                read_verified(&*backend, &object, &location, limit, *expected).await
            }
            ArtifactUri::Http { url, expected } => {
                let backend = self.http_store(url, &location)?;
                // The store's base URL is the artifact's URL: the empty path GETs it as
                // is, query string included.
                read_verified(&backend, &Path::default(), &location, limit, *expected).await
            }
        }
    }

    /// [`resolve`](Self::resolve), but an `s3://` URI is read with `s3`'s
    /// settings when given (a tenant's grant's own credentials; the client
    /// is not kept) instead of the resolver's.
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    pub async fn resolve_with_s3(
        &self,
        uri: &ArtifactUri,
        s3: Option<&super::S3Config>,
    ) -> Result<(Digest, Bytes), ArtifactError> {
        match (uri, s3) {
            (ArtifactUri::S3 { bucket, key, expected }, Some(config)) => {
                let location = uri.to_string();
                let object =
                    Path::parse(key).map_err(|err| malformed(&location, format!("invalid S3 key: {err}")))?;
                let backend = config.build_store_with(
                    bucket,
                    self.config.client_options(),
                    self.config.retry_config(),
                )?;
                let limit = self.config.max_artifact_size.as_u64();
                read_verified(&backend, &object, &location, limit, *expected).await
            }
            _ => self.resolve(uri).await,
        }
    }

    /// Parses `uri` and [`resolve`](Self::resolve)s it.
    pub async fn resolve_str(&self, uri: &str) -> Result<(Digest, Bytes), ArtifactError> {
        self.resolve(&uri.parse()?).await
    }

    fn s3_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, ArtifactError> {
        let mut stores = self.s3.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = stores.get(bucket) {
            return Ok(Arc::clone(store));
        }
        let store: Arc<dyn ObjectStore> = Arc::new(self.config.s3.build_store_with(
            bucket,
            self.config.client_options(),
            self.config.retry_config(),
        )?);
        stores.insert(bucket.to_owned(), Arc::clone(&store));
        Ok(store)
    }

    fn http_store(&self, url: &Url, location: &str) -> Result<object_store::http::HttpStore, ArtifactError> {
        let options = self.config.client_options().with_allow_http(true);
        let client = {
            let mut shared = self.http.lock().unwrap_or_else(PoisonError::into_inner);
            match &*shared {
                Some(client) => client.clone(),
                None => {
                    let client = ReqwestConnector::default()
                        .connect(&options)
                        .map_err(|source| ArtifactError::from_store(location, source))?;
                    *shared = Some(client.clone());
                    client
                }
            }
        };
        HttpBuilder::new()
            .with_url(url.as_str())
            .with_client_options(options)
            .with_retry(self.config.retry_config())
            .with_http_connector(SharedClient(client))
            .build()
            .map_err(|source| ArtifactError::from_store(location, source))
    }
}

fn malformed(uri: &str, reason: String) -> ArtifactError {
    ArtifactError::Uri(UriError::Malformed { uri: uri.to_owned(), reason })
}

/// Hands every `HttpStore` the same client, so they share one connection pool.
#[derive(Debug)]
struct SharedClient(HttpClient);

impl HttpConnector for SharedClient {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(self.0.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn blake3_uris_come_from_the_store() {
        let store = ArtifactStore::new(Arc::new(InMemory::new()));
        let digest = store.put(Bytes::from_static(b"wasm")).await.unwrap();
        let resolver = Resolver::new(store, ResolverConfig::default());
        let (got, bytes) = resolver.resolve(&ArtifactUri::Blake3(digest)).await.unwrap();
        assert_eq!((got, bytes), (digest, Bytes::from_static(b"wasm")));
        let missing = ArtifactUri::Blake3(Digest::of(b"other"));
        assert!(matches!(resolver.resolve(&missing).await, Err(ArtifactError::NotFound { .. })));
        assert!(matches!(
            resolver.resolve_str("gs://b/k").await,
            Err(ArtifactError::Uri(UriError::UnknownScheme { .. }))
        ));
    }
}
