//! The block manager's store of persisted partitions: [`CacheStore`].
//!
//! A task whose chain computes a persisted dataset hands the batches of its
//! partition to [`CacheStore::put`] once it succeeds. The store keeps them
//! by the dataset's storage level:
//!
//! - **In memory**, as the batches themselves, charged to the agent's one
//!   memory budget: the store holds permits of the same semaphore that
//!   running tasks reserve their memory limits from, rounded up to whole MiB
//!   over everything it keeps. When the budget has no room, the least
//!   recently used partitions of *other* datasets are evicted first (as
//!   Spark's `MemoryStore` never evicts a dataset's blocks to make room for
//!   the same dataset); `MEMORY_AND_DISK` ones move to disk, `MEMORY_ONLY`
//!   ones are dropped and recomputed from lineage when next needed.
//!   Execution may evict too: a task waiting for memory asks
//!   [`make_room`](CacheStore::make_room) first.
//! - **On disk**, under `<work_dir>/jobs/<job>/cache/<dataset>-<partition>`:
//!   each batch as its length, its crc32c and its bytes, written to a
//!   temporary name and renamed, so a partition is on disk whole or not at
//!   all (a new partition is written without the store's lock, so reads of
//!   others do not wait for the disk); a reader that finds a checksum wrong treats the partition as
//!   missing (and deletes it), which makes the task a cache miss.
//! - A `MEMORY_AND_DISK` partition read from disk is **kept in memory too**
//!   when the budget has room for it without evicting anything (unlike
//!   Spark, which evicts for it: two datasets read in turn would then push
//!   each other out on every read). Its file stays, so evicting it again
//!   writes nothing.
//!
//! Job removal (`RemoveJob`) forgets a job's partitions, unpersisting one
//! forgets a dataset's. See `docs/architecture.md` ("Caching") for how the
//! master tracks where partitions are and chooses between reading and
//! computing them.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Semaphore;
use weft_core::ids::{DatasetId, JobId};
use weft_core::plan::StorageLevel;

/// One partition of a persisted dataset of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    /// The job.
    pub job: JobId,
    /// The persisted dataset.
    pub dataset: DatasetId,
    /// Its partition.
    pub partition: u32,
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "partition {} of {} of {}", self.partition, self.dataset, self.job)
    }
}

/// Where [`CacheStore::put`] kept a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// Its bytes.
    pub bytes: u64,
    /// In memory (else on disk).
    pub memory: bool,
}

/// Why a persisted partition could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file of the store could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file on disk failed its checksum or framing.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
}

struct Entry {
    batches: Arc<[Bytes]>,
    bytes: u64,
    level: StorageLevel,
    /// Its place in the LRU order.
    tick: u64,
}

#[derive(Default)]
struct Inner {
    memory: HashMap<CacheKey, Entry>,
    /// Memory entries by last use, oldest first.
    lru: BTreeMap<u64, CacheKey>,
    tick: u64,
    /// Bytes of the memory entries.
    used: u64,
    /// Permits (MiB) of the agent's memory semaphore held for `used`.
    permits: u32,
    /// Partitions on disk, with their bytes and level.
    disk: HashMap<CacheKey, (u64, StorageLevel)>,
    /// Partitions dropped from memory (not kept anywhere) since the last
    /// [`CacheStore::take_dropped`].
    dropped: Vec<CacheKey>,
    /// Partitions [`CacheStore::put`] is writing to disk without the lock,
    /// by the number of their write: one forgotten (or put again) meanwhile
    /// is no longer here, or here with another number, and that write's
    /// file is deleted instead of renamed into place.
    writing: HashMap<CacheKey, u64>,
    /// Writes started so far (numbers the temporary files).
    writes: u64,
}

/// The agent's persisted partitions (how they are kept: this module's docs). Cheap to
/// clone; clones share the store.
#[derive(Clone)]
pub struct CacheStore {
    inner: Arc<Mutex<Inner>>,
    work_dir: PathBuf,
    /// The agent's memory budget, in MiB permits, shared with running tasks.
    budget: Arc<Semaphore>,
}

impl std::fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (used, disk) = (self.memory_used(), self.lock().disk.len());
        f.debug_struct("CacheStore").field("memory_used", &used).field("on_disk", &disk).finish()
    }
}

const MIB: u64 = 1 << 20;

impl CacheStore {
    /// A store under `work_dir`, taking its memory from `budget` (MiB permits).
    pub fn new(work_dir: impl Into<PathBuf>, budget: Arc<Semaphore>) -> Self {
        Self { inner: Arc::default(), work_dir: work_dir.into(), budget }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of partitions held in memory.
    pub fn memory_used(&self) -> u64 {
        self.lock().used
    }

    /// Bytes of partitions held on disk.
    pub fn disk_used(&self) -> u64 {
        self.lock().disk.values().map(|(bytes, _)| bytes).sum()
    }

    /// Where `key` lives on disk.
    pub fn path(&self, key: &CacheKey) -> PathBuf {
        self.job_dir(key.job).join(format!("{}-{}", key.dataset.0, key.partition))
    }

    fn job_dir(&self, job: JobId) -> PathBuf {
        self.work_dir.join("jobs").join(job.to_string()).join("cache")
    }

    /// Keep `batches` as `key` at `level`; where, or `None` when a
    /// `MEMORY_ONLY` partition finds no room. Blocking (disk writes).
    pub fn put(
        &self,
        key: CacheKey,
        level: StorageLevel,
        batches: Vec<Bytes>,
    ) -> Result<Option<Kept>, CacheError> {
        let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let mut inner = self.lock();
        self.forget(&mut inner, &key)?;
        if level.uses_memory() && self.reserve(&mut inner, bytes, Some(key.dataset))? {
            keep_in_memory(&mut inner, key, batches.into(), bytes, level);
            return Ok(Some(Kept { bytes, memory: true }));
        }
        if level.uses_disk() {
            // Written without the lock, so that reads of other partitions
            // do not wait for the disk; renamed into place under it.
            inner.writes += 1;
            let write = inner.writes;
            inner.writing.insert(key, write);
            drop(inner);
            let tmp = self.path(&key).with_extension(format!("tmp{write}"));
            let written = self.write_to(&key, &tmp, &batches);
            let mut inner = self.lock();
            let current = inner.writing.get(&key) == Some(&write);
            if current {
                inner.writing.remove(&key);
            }
            written?;
            if !current {
                let _ = std::fs::remove_file(&tmp);
                return Ok(None);
            }
            self.place(&key, &tmp)?;
            inner.disk.insert(key, (bytes, level));
            return Ok(Some(Kept { bytes, memory: false }));
        }
        Ok(None)
    }

    /// The batches of `key`, from memory or disk; `None` when this agent does
    /// not hold it (or its file is corrupt, which then is deleted). Blocking
    /// (disk reads).
    pub fn get(&self, key: &CacheKey) -> Result<Option<Vec<Bytes>>, CacheError> {
        let mut inner = self.lock();
        if let Some(entry) = inner.memory.get(key) {
            let (old, batches) = (entry.tick, entry.batches.to_vec());
            inner.tick += 1;
            let tick = inner.tick;
            inner.lru.remove(&old);
            inner.lru.insert(tick, *key);
            if let Some(e) = inner.memory.get_mut(key) {
                e.tick = tick;
            }
            return Ok(Some(batches));
        }
        if !inner.disk.contains_key(key) {
            return Ok(None);
        }
        drop(inner);
        match read_batches(&self.path(key)) {
            Ok(batches) => {
                self.promote(key, &batches);
                Ok(Some(batches))
            }
            // Forgotten (or put again) while it was read: whatever is kept now.
            Err(CacheError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(self.lock().memory.get(key).map(|e| e.batches.to_vec()))
            }
            Err(e @ CacheError::Corrupt { .. }) => {
                tracing::warn!(%key, error = %e, "weft.agent.cache.corrupt");
                let mut inner = self.lock();
                inner.disk.remove(key);
                let _ = std::fs::remove_file(self.path(key));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Keep `key`, just read from disk, in memory too if its level uses
    /// memory and the budget has room without evicting anything. Its file
    /// stays: evicting it again only drops it from memory.
    fn promote(&self, key: &CacheKey, batches: &[Bytes]) {
        let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let mut inner = self.lock();
        // Not the partition on disk now (it was put again while read): leave it.
        let Some(&(on_disk, level)) = inner.disk.get(key) else { return };
        if on_disk != bytes || !level.uses_memory() || inner.memory.contains_key(key) {
            return;
        }
        if self.take(&mut inner, bytes) {
            keep_in_memory(&mut inner, *key, batches.into(), bytes, level);
            tracing::debug!(%key, bytes, "weft.agent.cache.promoted");
        }
    }

    /// Evict least recently used memory partitions until `mib` permits of the
    /// agent's budget are free (or nothing is left to evict): execution
    /// takes memory back from storage. Blocking (evictions to disk).
    pub fn make_room(&self, mib: u32) -> Result<(), CacheError> {
        let mut inner = self.lock();
        while (self.budget.available_permits() as u64) < u64::from(mib) {
            if !self.evict_one(&mut inner, None)? {
                break;
            }
        }
        Ok(())
    }

    /// Partitions dropped from memory and kept nowhere since the last call.
    pub fn take_dropped(&self) -> Vec<CacheKey> {
        std::mem::take(&mut self.lock().dropped)
    }

    /// The jobs it keeps partitions of (in memory, on disk or being written).
    pub fn jobs(&self) -> std::collections::BTreeSet<JobId> {
        let inner = self.lock();
        inner.memory.keys().chain(inner.disk.keys()).chain(inner.writing.keys()).map(|k| k.job).collect()
    }

    /// Forget every partition of `job` (or only those of `dataset`).
    pub fn remove(&self, job: JobId, dataset: Option<DatasetId>) -> Result<usize, CacheError> {
        let mut inner = self.lock();
        // A set: a partition read back from disk is in memory and on disk.
        let doomed: std::collections::BTreeSet<CacheKey> = inner
            .memory
            .keys()
            .chain(inner.disk.keys())
            .chain(inner.writing.keys())
            .filter(|k| k.job == job && dataset.is_none_or(|d| k.dataset == d))
            .copied()
            .collect();
        for key in &doomed {
            self.forget(&mut inner, key)?;
        }
        Ok(doomed.len())
    }

    /// Drop `key` from memory and disk.
    fn forget(&self, inner: &mut Inner, key: &CacheKey) -> Result<(), CacheError> {
        inner.writing.remove(key);
        if let Some(e) = inner.memory.remove(key) {
            inner.lru.remove(&e.tick);
            inner.used -= e.bytes;
            self.settle(inner);
        }
        if inner.disk.remove(key).is_some() {
            let path = self.path(key);
            std::fs::remove_file(&path).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(CacheError::Io { what: "removing", path, source: e }),
            })?;
        }
        Ok(())
    }

    /// Make room for `bytes` more in memory, evicting other datasets' least
    /// recently used partitions (all of them but `keep`'s); whether it fits.
    /// Nothing is evicted for a partition that would not fit even then.
    fn reserve(&self, inner: &mut Inner, bytes: u64, keep: Option<DatasetId>) -> Result<bool, CacheError> {
        let evictable: u64 =
            inner.memory.iter().filter(|(k, _)| Some(k.dataset) != keep).map(|(_, e)| e.bytes).sum();
        let at_best = (inner.used - evictable + bytes).div_ceil(MIB);
        if at_best > inner.permits as u64 + self.budget.available_permits() as u64 {
            return Ok(false);
        }
        loop {
            if self.take(inner, bytes) {
                return Ok(true);
            }
            if !self.evict_one(inner, keep)? {
                return Ok(false);
            }
        }
    }

    /// Count `bytes` more as used if the budget's free permits cover them
    /// (with those already held); whether they did. Evicts nothing.
    fn take(&self, inner: &mut Inner, bytes: u64) -> bool {
        let want = u32::try_from((inner.used + bytes).div_ceil(MIB)).unwrap_or(u32::MAX);
        let more = want.saturating_sub(inner.permits);
        if more > 0 {
            let Ok(permit) = self.budget.try_acquire_many(more) else { return false };
            permit.forget();
            inner.permits += more;
        }
        inner.used += bytes;
        true
    }

    /// Give back the permits `used` no longer needs.
    fn settle(&self, inner: &mut Inner) {
        let want = u32::try_from(inner.used.div_ceil(MIB)).unwrap_or(u32::MAX);
        if inner.permits > want {
            self.budget.add_permits((inner.permits - want) as usize);
            inner.permits = want;
        }
    }

    /// Evict the least recently used memory partition not of `keep`: to disk
    /// when its level allows, else dropped. Whether one was evicted.
    fn evict_one(&self, inner: &mut Inner, keep: Option<DatasetId>) -> Result<bool, CacheError> {
        let Some((&tick, &key)) = inner.lru.iter().find(|(_, k)| Some(k.dataset) != keep) else {
            return Ok(false);
        };
        inner.lru.remove(&tick);
        let Some(entry) = inner.memory.remove(&key) else { return Ok(true) };
        inner.used -= entry.bytes;
        self.settle(inner);
        let on_disk = inner.disk.contains_key(&key);
        if on_disk {
            // Read back from disk earlier: its file is still there.
            tracing::debug!(%key, bytes = entry.bytes, "weft.agent.cache.evicted_to_its_file");
        } else if entry.level.uses_disk() {
            self.write(&key, &entry.batches)?;
            inner.disk.insert(key, (entry.bytes, entry.level));
            tracing::debug!(%key, bytes = entry.bytes, "weft.agent.cache.evicted_to_disk");
        } else {
            inner.dropped.push(key);
            tracing::debug!(%key, bytes = entry.bytes, "weft.agent.cache.dropped");
        }
        Ok(true)
    }

    /// Write `batches` as `key`'s file, whole or not at all.
    fn write(&self, key: &CacheKey, batches: &[Bytes]) -> Result<(), CacheError> {
        let tmp = self.path(key).with_extension("tmp");
        self.write_to(key, &tmp, batches)?;
        self.place(key, &tmp)
    }

    /// Rename `tmp` to `key`'s file; the temporary file is deleted if that fails.
    fn place(&self, key: &CacheKey, tmp: &Path) -> Result<(), CacheError> {
        let path = self.path(key);
        std::fs::rename(tmp, &path).map_err(|source| {
            let _ = std::fs::remove_file(tmp);
            CacheError::Io { what: "renaming into place", path, source }
        })
    }

    /// Write `batches` to `tmp`, the temporary file of `key`; nothing is left
    /// of it if that fails.
    fn write_to(&self, key: &CacheKey, tmp: &Path, batches: &[Bytes]) -> Result<(), CacheError> {
        let written = self.write_file(key, tmp, batches);
        if written.is_err() {
            let _ = std::fs::remove_file(tmp);
        }
        written
    }

    fn write_file(&self, key: &CacheKey, tmp: &Path, batches: &[Bytes]) -> Result<(), CacheError> {
        let path = self.path(key);
        let io = |what| {
            let path = path.clone();
            move |source| CacheError::Io { what, path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let mut out = std::io::BufWriter::new(std::fs::File::create(tmp).map_err(io("creating"))?);
        for b in batches {
            let len = u32::try_from(b.len())
                .map_err(|_| CacheError::Corrupt { path: path.clone(), reason: "a batch over 4 GiB" })?;
            out.write_all(&len.to_le_bytes()).map_err(io("writing"))?;
            out.write_all(&crc32c::crc32c(b).to_le_bytes()).map_err(io("writing"))?;
            out.write_all(b).map_err(io("writing"))?;
        }
        out.into_inner().map_err(|e| e.into_error()).map_err(io("writing"))?;
        Ok(())
    }
}

/// Keep `key` in memory as the most recently used partition (its `bytes`
/// already counted as used).
fn keep_in_memory(inner: &mut Inner, key: CacheKey, batches: Arc<[Bytes]>, bytes: u64, level: StorageLevel) {
    inner.tick += 1;
    let tick = inner.tick;
    inner.lru.insert(tick, key);
    inner.memory.insert(key, Entry { batches, bytes, level, tick });
}

/// The batches of a partition file, each checked against its crc32c.
fn read_batches(path: &Path) -> Result<Vec<Bytes>, CacheError> {
    let corrupt = |reason| CacheError::Corrupt { path: path.to_path_buf(), reason };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|source| CacheError::Io { what: "reading", path: path.to_path_buf(), source })?;
    let bytes = Bytes::from(bytes);
    let mut batches = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes.get(at..at + 8).ok_or_else(|| corrupt("a truncated batch header"))?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let body = at + 8;
        if bytes.len() - body < len {
            return Err(corrupt("a truncated batch"));
        }
        let batch = bytes.slice(body..body + len);
        if crc32c::crc32c(&batch) != crc {
            return Err(corrupt("a batch fails its checksum"));
        }
        batches.push(batch);
        at = body + len;
    }
    Ok(batches)
}

#[cfg(test)]
mod tests;
