//! [`ArtifactError`]: everything that can go wrong storing, fetching or caching an
//! artifact, one variant per cause, each message ending in what to do about it.

use std::path::PathBuf;

use super::digest::Digest;
use super::uri::UriError;

/// An artifact could not be stored, resolved, fetched or cached.
///
/// `location` fields name the artifact the way the user wrote it (a URI) or, for the
/// cluster store, as `blake3:<hex>` together with the object path inside the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The artifact URI itself is wrong: unknown scheme, malformed, or a bad digest.
    #[error(transparent)]
    Uri(#[from] UriError),

    /// Nothing is stored at the location.
    #[error(
        "artifact not found at {location}: check the URI, or push the artifact first \
         (`weft artifact push FILE` prints its blake3: URI)"
    )]
    NotFound {
        /// Where the artifact was looked for.
        location: String,
        /// The storage layer's report, when there is one.
        #[source]
        source: Option<object_store::Error>,
    },

    /// The bytes do not hash to the digest they were expected to have.
    #[error(
        "digest mismatch for {location}: expected {expected} but the bytes hash to {actual}; \
         the object was modified or corrupted after it was published, or the expected digest \
         is wrong: re-publish the artifact, or correct the digest in the URI"
    )]
    DigestMismatch {
        /// Where the bytes came from.
        location: String,
        /// The digest the bytes should have had.
        expected: Digest,
        /// The digest of the bytes that were actually read.
        actual: Digest,
    },

    /// The artifact is larger than the configured maximum; it was not read in full.
    #[error(
        "artifact at {location} is at least {size} bytes, more than the limit of {limit} bytes: \
         raise `max_artifact_size` in the configuration, or build a smaller artifact"
    )]
    TooLarge {
        /// Where the artifact is.
        location: String,
        /// Its size as reported by the store, or the bytes read before giving up.
        size: u64,
        /// The configured maximum.
        limit: u64,
    },

    /// The store refused access: missing, wrong or insufficient credentials.
    #[error(
        "access to {location} was denied: check the S3 credentials (`access_key_id`, \
         `secret_access_key`, `session_token`) and the bucket's policy; {source}"
    )]
    AccessDenied {
        /// What was being accessed.
        location: String,
        /// The storage layer's report.
        #[source]
        source: object_store::Error,
    },

    /// The store failed for another reason (network, server error, unsupported request).
    #[error(
        "could not access {location}: {source}; check that the endpoint is reachable and \
         the server healthy, then retry"
    )]
    Storage {
        /// What was being accessed.
        location: String,
        /// The storage layer's report.
        #[source]
        source: object_store::Error,
    },

    /// The S3 configuration cannot produce a client.
    #[error("invalid S3 configuration for bucket `{bucket}`: {source}; fix the `[s3]` section")]
    S3Config {
        /// The bucket the client was for.
        bucket: String,
        /// What the S3 client builder rejected.
        #[source]
        source: object_store::Error,
    },

    /// No S3 credentials are configured, and weft never asks a cloud metadata
    /// endpoint for them.
    #[error(
        "no S3 credentials for bucket `{bucket}`: set `access-key-id` and `secret-access-key` in the `[s3]` \
         section (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or `skip-signature = true` for a public \
         bucket; weft never asks an instance metadata service"
    )]
    S3NoCredentials {
        /// The bucket the client was for.
        bucket: String,
    },

    /// A local file or directory (the cache, a `file://` artifact) could not be used.
    #[error("I/O error on {path}: {source}; check that the path exists, is writable and has space")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's report.
        #[source]
        source: std::io::Error,
    },
}

impl ArtifactError {
    /// Classifies an `object_store` failure at `location`.
    pub(crate) fn from_store(location: impl Into<String>, source: object_store::Error) -> Self {
        let location = location.into();
        match source {
            object_store::Error::NotFound { .. } => Self::NotFound { location, source: Some(source) },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                Self::AccessDenied { location, source }
            }
            source => Self::Storage { location, source },
        }
    }

    /// Wraps an I/O error on a local path.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
