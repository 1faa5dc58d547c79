//! [`ArtifactCache`]: an agent's local, size-bounded cache of artifacts by digest.
//!
//! Layout: `<dir>/blake3/<hex>` holds one artifact per file; `<dir>/tmp/` holds files
//! being written, each renamed into place once complete and synced, so a crash leaves
//! either the whole artifact or nothing (leftovers in `tmp/` are removed on
//! [`open`](ArtifactCache::open)).
//!
//! Every read hashes the file again: a file whose bytes no longer match its name (disk
//! corruption, a stray write) is deleted and reported as a miss, never returned, and
//! [`get_or_fetch`](ArtifactCache::get_or_fetch) then fetches a good copy. A hit bumps
//! the file's modification time; after each insert, the least recently used files are
//! evicted until the cache fits its budget. Access times are not used because
//! filesystems are commonly mounted `noatime`/`relatime`.

use std::collections::HashMap;
use std::future::Future;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::config::CacheConfig;
use super::digest::Digest;
use super::error::ArtifactError;
use super::fetch::{digest_of, join, verify};

/// A local directory of artifacts keyed by digest, bounded in size, verified on read.
///
/// Several processes must not share one cache directory; within a process, share one
/// `ArtifactCache` (e.g. in an `Arc`) so that concurrent fetches are deduplicated.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    max_size: u64,
    inflight: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl ArtifactCache {
    /// Opens (creating if needed) the cache directory of `config`, and removes
    /// unfinished writes left by an earlier process.
    pub async fn open(config: &CacheConfig) -> Result<Self, ArtifactError> {
        let dir = config.dir.clone();
        let objects = dir.join("blake3");
        let tmp = dir.join("tmp");
        let (o, t) = (objects.clone(), tmp.clone());
        let prepare = tokio::task::spawn_blocking(move || -> Result<(), ArtifactError> {
            std::fs::create_dir_all(&o).map_err(|e| ArtifactError::io(&o, e))?;
            match std::fs::remove_dir_all(&t) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(ArtifactError::io(&t, e)),
            }
            std::fs::create_dir_all(&t).map_err(|e| ArtifactError::io(&t, e))
        });
        join(prepare, &dir.display().to_string()).await??;
        Ok(Self {
            dir,
            objects,
            tmp,
            max_size: config.max_size.as_u64(),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size budget in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The file that holds (or would hold) the artifact with `digest`.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.objects.join(digest.to_hex())
    }

    /// The cached artifact with `digest`, verified, or `None` if it is not cached. A
    /// cached file whose bytes do not hash to `digest` is deleted and reported as
    /// `None`.
    pub async fn get(&self, digest: &Digest) -> Result<Option<Bytes>, ArtifactError> {
        let (path, digest) = (self.path_of(digest), *digest);
        let location = path.display().to_string();
        join(tokio::task::spawn_blocking(move || read_file(&path, digest)), &location).await?
    }

    /// Caches `bytes` as the artifact with `digest` (atomically), then evicts least
    /// recently used artifacts past the budget. Bytes that do not hash to `digest` are
    /// refused with [`ArtifactError::DigestMismatch`]; an artifact larger than the
    /// whole budget is not cached.
    pub async fn insert(&self, digest: &Digest, bytes: Bytes) -> Result<(), ArtifactError> {
        let actual = digest_of(bytes.clone(), "bytes inserted into the artifact cache").await?;
        verify(&format!("bytes inserted into the cache as {digest}"), Some(*digest), actual)?;
        self.write(digest, bytes).await
    }

    /// The artifact with `digest`: from the cache if a verified copy is there, else
    /// from `fetch`, whose result is verified against `digest`, cached and returned.
    ///
    /// Concurrent calls for the same digest run one `fetch`; the others wait for it and
    /// then read the cached copy. If that fetch fails, its caller gets the error and the
    /// next waiter tries its own `fetch`. A failure to write the cache is logged and the
    /// fetched bytes are returned anyway.
    ///
    /// Cancel safety: dropping the future releases the digest, and the next waiter (if
    /// any) fetches instead; no partial file is left in the cache.
    #[tracing::instrument(name = "weft.core.artifact.cache", skip(self, fetch), fields(digest = %digest))]
    pub async fn get_or_fetch<F, Fut>(&self, digest: &Digest, fetch: F) -> Result<Bytes, ArtifactError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, ArtifactError>>,
    {
        if let Some(bytes) = self.get(digest).await? {
            return Ok(bytes);
        }
        let slot = self.slot(digest);
        let _turn = slot.lock.lock().await;
        // Whoever held the turn before us may have cached it.
        if let Some(bytes) = self.get(digest).await? {
            return Ok(bytes);
        }
        tracing::debug!("cache miss, fetching");
        let bytes = fetch().await?;
        let location = format!("bytes fetched for {digest}");
        verify(&location, Some(*digest), digest_of(bytes.clone(), &location).await?)?;
        if let Err(err) = self.write(digest, bytes.clone()).await {
            tracing::warn!(error = %err, "could not cache artifact; using it uncached");
        }
        Ok(bytes)
    }

    /// Removes the artifact with `digest` from the cache, if present.
    pub async fn remove(&self, digest: &Digest) -> Result<(), ArtifactError> {
        let path = self.path_of(digest);
        let location = path.display().to_string();
        join(tokio::task::spawn_blocking(move || remove_file(&path)), &location).await?
    }

    /// Total size in bytes of the cached artifacts.
    pub async fn size_on_disk(&self) -> Result<u64, ArtifactError> {
        let objects = self.objects.clone();
        let location = objects.display().to_string();
        let entries = join(tokio::task::spawn_blocking(move || list(&objects)), &location).await??;
        Ok(entries.iter().map(|entry| entry.len).sum())
    }

    async fn write(&self, digest: &Digest, bytes: Bytes) -> Result<(), ArtifactError> {
        if bytes.len() as u64 > self.max_size {
            tracing::warn!(%digest, size = bytes.len(), budget = self.max_size, "artifact larger than the cache budget; not cached");
            return Ok(());
        }
        let (objects, tmp, path, max_size) =
            (self.objects.clone(), self.tmp.clone(), self.path_of(digest), self.max_size);
        let location = path.display().to_string();
        let task = tokio::task::spawn_blocking(move || {
            write_atomic(&tmp, &path, &bytes)?;
            evict(&objects, max_size, &path)
        });
        join(task, &location).await?
    }

    fn slot(&self, digest: &Digest) -> Slot<'_> {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let lock = Arc::clone(inflight.entry(*digest).or_default());
        Slot { cache: self, digest: *digest, lock }
    }
}

/// A caller's place in line for fetching one digest; the last one out removes the
/// digest's entry.
struct Slot<'a> {
    cache: &'a ArtifactCache,
    digest: Digest,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut inflight = self.cache.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        // Clones are only made under this lock, so the count is exact: the map's
        // reference and ours mean nobody else is waiting.
        if Arc::strong_count(&self.lock) == 2 {
            inflight.remove(&self.digest);
        }
    }
}

/// Reads and verifies one cached file; a corrupt file is deleted and is a miss.
fn read_file(path: &Path, digest: Digest) -> Result<Option<Bytes>, ArtifactError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArtifactError::io(path, e)),
    };
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(|e| ArtifactError::io(path, e))?;
    let actual = Digest::of(&buf);
    if actual != digest {
        tracing::warn!(path = %path.display(), expected = %digest, %actual, "corrupted cache file; evicting it");
        remove_file(path)?;
        return Ok(None);
    }
    // LRU bookkeeping only: a failure here costs eviction order, not correctness.
    if let Err(err) = file.set_modified(SystemTime::now()) {
        tracing::debug!(path = %path.display(), error = %err, "could not bump cache file mtime");
    }
    Ok(Some(Bytes::from(buf)))
}

/// Writes `bytes` to a temporary file in `tmp`, syncs it and renames it to `path`.
fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let mut file = tempfile::Builder::new().tempfile_in(tmp).map_err(|e| ArtifactError::io(tmp, e))?;
    file.write_all(bytes).map_err(|e| ArtifactError::io(file.path(), e))?;
    file.as_file().sync_all().map_err(|e| ArtifactError::io(file.path(), e))?;
    file.persist(path).map_err(|e| ArtifactError::io(path, e.error))?;
    Ok(())
}

fn remove_file(path: &Path) -> Result<(), ArtifactError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArtifactError::io(path, e)),
    }
}

struct Entry {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
}

fn list(objects: &Path) -> Result<Vec<Entry>, ArtifactError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(objects).map_err(|e| ArtifactError::io(objects, e))? {
        let entry = entry.map_err(|e| ArtifactError::io(objects, e))?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // Evicted by a concurrent call since read_dir listed it.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(ArtifactError::io(entry.path(), e)),
        };
        if meta.is_file() {
            let modified = meta.modified().unwrap_or(UNIX_EPOCH);
            entries.push(Entry { path: entry.path(), len: meta.len(), modified });
        }
    }
    Ok(entries)
}

/// Deletes least recently used files until the total fits `max_size`, never `keep`.
fn evict(objects: &Path, max_size: u64, keep: &Path) -> Result<(), ArtifactError> {
    let mut entries = list(objects)?;
    let mut total: u64 = entries.iter().map(|entry| entry.len).sum();
    if total <= max_size {
        return Ok(());
    }
    entries.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.path.cmp(&b.path)));
    for entry in entries {
        if total <= max_size {
            break;
        }
        if entry.path == keep {
            continue;
        }
        remove_file(&entry.path)?;
        total = total.saturating_sub(entry.len);
        tracing::debug!(path = %entry.path.display(), size = entry.len, "evicted from artifact cache");
    }
    Ok(())
}
