//! The one read path every source goes through: a size-bounded GET from an
//! `ObjectStore`, hashed, and compared with the expected digest when there is one.

use std::io::Read;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetResultPayload, ObjectStore};

use super::digest::Digest;
use super::error::ArtifactError;

/// Payloads at least this large are hashed on the blocking pool, not on the I/O thread.
const HASH_OFF_THREAD: usize = 1 << 20;

/// Reads the object at `path`, refusing more than `limit` bytes, and returns its digest
/// and bytes. With `expected`, a different digest is [`ArtifactError::DigestMismatch`].
///
/// The size reported by the store is checked before the body is read; the body is
/// still counted while it streams, so a server that under-reports cannot push more
/// than `limit + 1` bytes into memory. `location` names the object in errors.
pub(crate) async fn read_verified(
    store: &dyn ObjectStore,
    path: &Path,
    location: &str,
    limit: u64,
    expected: Option<Digest>,
) -> Result<(Digest, Bytes), ArtifactError> {
    let result = store
        .get_opts(path, GetOptions::default())
        .await
        .map_err(|source| ArtifactError::from_store(location, source))?;
    let size = result.meta.size;
    let too_large = |size| ArtifactError::TooLarge { location: location.to_owned(), size, limit };
    if size > limit {
        return Err(too_large(size));
    }
    let capacity = usize::try_from(size).unwrap_or(0);
    let (digest, bytes) = match result.payload {
        GetResultPayload::File(file, file_path) => {
            // One blocking read instead of object_store's stream of 8 KiB chunks.
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = Vec::with_capacity(capacity);
                file.take(limit.saturating_add(1))
                    .read_to_end(&mut buf)
                    .map_err(|source| ArtifactError::io(&file_path, source))?;
                let digest = Digest::of(&buf);
                Ok::<_, ArtifactError>((digest, Bytes::from(buf)))
            });
            let (digest, bytes) = join(read, location).await??;
            if bytes.len() as u64 > limit {
                return Err(too_large(bytes.len() as u64));
            }
            (digest, bytes)
        }
        GetResultPayload::Stream(mut stream) => {
            let mut buf = BytesMut::with_capacity(capacity);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|source| ArtifactError::from_store(location, source))?;
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > limit {
                    return Err(too_large(buf.len() as u64));
                }
            }
            let bytes = buf.freeze();
            (digest_of(bytes.clone(), location).await?, bytes)
        }
    };
    verify(location, expected, digest)?;
    Ok((digest, bytes))
}

/// Hashes `bytes`, on the blocking pool when they are large.
pub(crate) async fn digest_of(bytes: Bytes, location: &str) -> Result<Digest, ArtifactError> {
    if bytes.len() < HASH_OFF_THREAD {
        return Ok(Digest::of(&bytes));
    }
    join(tokio::task::spawn_blocking(move || Digest::of(&bytes)), location).await
}

/// `Err(DigestMismatch)` when `expected` is set and differs from `actual`.
pub(crate) fn verify(location: &str, expected: Option<Digest>, actual: Digest) -> Result<(), ArtifactError> {
    match expected {
        Some(expected) if expected != actual => {
            Err(ArtifactError::DigestMismatch { location: location.to_owned(), expected, actual })
        }
        _ => Ok(()),
    }
}

/// Awaits a blocking task; a panic in it surfaces as an I/O error on `location`.
pub(crate) async fn join<T>(task: tokio::task::JoinHandle<T>, location: &str) -> Result<T, ArtifactError> {
    task.await.map_err(|err| ArtifactError::io(location, std::io::Error::other(err)))
}
