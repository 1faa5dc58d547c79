//! Where an agent keeps shuffle files: `<work_dir>/jobs/<job_id>/shuffle/`,
//! under the names the writer gives them (see the [shuffle's
//! files](crate::shuffle#files)).
//!
//! Job ids become path components, so they are checked first (the `Blocks`
//! service makes them from a parsed `JobRef`; the check also guards every
//! other caller): a [`JobId`] is 1 to 128 ASCII letters, digits, `-`, `_` or
//! `.`, and does not start with `.`, so it can never name `..`, an absolute
//! path, another job's directory or a removal tombstone.

use crate::shuffle::{BlockId, Compression, IndexFile, MapId, ShuffleError, ShuffleId, read_stored_block};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest job id accepted, in bytes.
pub const MAX_JOB_ID_LEN: usize = 128;

/// A job's id, checked to be safe as a directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(String);

/// Why a string is not a [`JobId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidJobId {
    /// The empty string.
    #[error("job id is empty")]
    Empty,
    /// Longer than [`MAX_JOB_ID_LEN`].
    #[error("job id has {len} bytes, more than {MAX_JOB_ID_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Starts with `.` (which would allow `.` and `..`).
    #[error("job id starts with '.'")]
    LeadingDot,
    /// Holds a character other than ASCII letters, digits, `-`, `_` and `.`.
    #[error("job id holds {ch:?}; only ASCII letters, digits, '-', '_' and '.' are allowed")]
    Char {
        /// The first such character.
        ch: char,
    },
}

impl JobId {
    /// Check `id` and wrap it.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidJobId> {
        let id = id.into();
        if id.is_empty() {
            return Err(InvalidJobId::Empty);
        }
        if id.len() > MAX_JOB_ID_LEN {
            return Err(InvalidJobId::TooLong { len: id.len() });
        }
        if id.starts_with('.') {
            return Err(InvalidJobId::LeadingDot);
        }
        if let Some(ch) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            return Err(InvalidJobId::Char { ch });
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<weft_core::ids::JobId> for JobId {
    /// A master-given job id (`job-<incarnation>-<n>`) always names a directory.
    fn from(id: weft_core::ids::JobId) -> Self {
        Self(id.to_string())
    }
}

impl FromStr for JobId {
    type Err = InvalidJobId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// Why a block could not be read from, or a job removed from, a [`BlockStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The job, its map output (of the attempt the block names), or the
    /// partition is not on this agent.
    #[error("block {block} of job {job} is not on this agent")]
    NotFound {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockId,
    },
    /// The index or the block's bytes fail their checksums or do not fit together.
    #[error("block {block} of job {job} is corrupt: {source}")]
    Corrupt {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockId,
        /// What the shuffle found.
        #[source]
        source: ShuffleError,
    },
    /// Reading the files failed for another reason.
    #[error("block {block} of job {job} is unreadable: {source}")]
    Unreadable {
        /// The job.
        job: JobId,
        /// The block.
        block: BlockId,
        /// The failure.
        #[source]
        source: ShuffleError,
    },
    /// Deleting a job's directory failed.
    #[error("removing job {job} from {}: {source}", path.display())]
    Remove {
        /// The job.
        job: JobId,
        /// The directory or tombstone being removed.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// One map output's files (of one attempt of its map task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapFiles {
    /// The data file.
    pub data: PathBuf,
    /// Its index.
    pub index: PathBuf,
}

/// A block's stored bytes as the block service sends them: verified against
/// the index checksum, still compressed if the map output is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The stored bytes.
    pub bytes: Vec<u8>,
    /// Their crc32c, from the index (and equal to the bytes' own).
    pub checksum: u32,
    /// How they are encoded.
    pub compression: Compression,
}

/// The shuffle files of every job on this agent, under one work directory.
///
/// Cheap to clone; it holds nothing but the path. All methods do blocking file
/// I/O: call them from a blocking thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockStore {
    work_dir: PathBuf,
}

impl BlockStore {
    /// The store under `work_dir` (created lazily, job by job).
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        Self { work_dir: work_dir.into() }
    }

    /// The agent's work directory.
    pub fn work_dir(&self) -> &Path {
        &self.work_dir
    }

    /// `<work_dir>/jobs/<job>`: everything the agent keeps for a job.
    pub fn job_dir(&self, job: &JobId) -> PathBuf {
        self.work_dir.join("jobs").join(job.as_str())
    }

    /// `<work_dir>/jobs/<job>/shuffle`: where the job's map tasks write.
    pub fn shuffle_dir(&self, job: &JobId) -> PathBuf {
        self.job_dir(job).join("shuffle")
    }

    /// Create the job's shuffle directory if needed and return it (the
    /// directory to give a [`ShuffleWriter`](crate::shuffle::ShuffleWriter)).
    pub fn create_shuffle_dir(&self, job: &JobId) -> std::io::Result<PathBuf> {
        let dir = self.shuffle_dir(job);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The data and index files attempt `attempt` of map task `map` of
    /// `shuffle` in `job` writes.
    pub fn map_files(&self, job: &JobId, shuffle: ShuffleId, map: MapId, attempt: u32) -> MapFiles {
        let dir = self.shuffle_dir(job);
        let block = BlockId::new(shuffle, map, attempt, 0.into());
        MapFiles { data: dir.join(block.data_file_name()), index: dir.join(block.index_file_name()) }
    }

    /// Read `block`'s stored bytes, from the files of the map attempt it
    /// names, and verify them against the index checksum.
    ///
    /// The index is parsed on every call (it is 12 bytes per partition), so a
    /// rewritten or removed map output is never served from a stale cache.
    pub fn read_stored(&self, job: &JobId, block: BlockId) -> Result<StoredBlock, StoreError> {
        let files = self.map_files(job, block.shuffle, block.map, block.attempt);
        let classify = classify(job, block);
        let index = IndexFile::open(&files.index, &files.data).map_err(&classify)?;
        let bytes = read_stored_block(&files.data, &index, block.reduce.0).map_err(&classify)?;
        let checksum = index.checksum(block.reduce.0).unwrap_or_default();
        Ok(StoredBlock { bytes, checksum, compression: index.compression() })
    }

    /// Read `block` as its pair batch: its stored bytes verified as
    /// [`read_stored`](Self::read_stored) does, then decompressed. This is
    /// how a reduce task reads the blocks its own agent holds.
    pub fn read_block(&self, job: &JobId, block: BlockId) -> Result<Vec<u8>, StoreError> {
        let stored = self.read_stored(job, block)?;
        let data = self.map_files(job, block.shuffle, block.map, block.attempt).data;
        crate::shuffle::decode_block(stored.compression, stored.bytes, &data, block.reduce.0)
            .map_err(classify(job, block))
    }

    /// Delete everything the agent keeps for `job`; `false` if there was nothing.
    ///
    /// The job's directory is first renamed to a tombstone (a name no job id
    /// can take), so a fetch that starts after this returns sees `NotFound`
    /// rather than a half-deleted map output; fetches already reading hold
    /// their open files and finish.
    pub fn remove_job(&self, job: &JobId) -> Result<bool, StoreError> {
        static TOMBSTONES: AtomicU64 = AtomicU64::new(0);
        let dir = self.job_dir(job);
        let n = TOMBSTONES.fetch_add(1, Ordering::Relaxed);
        let tomb = self.work_dir.join("jobs").join(format!(".removing-{}-{}-{n}", job, std::process::id()));
        let err = |path: &Path| {
            let (job, path) = (job.clone(), path.to_path_buf());
            move |source| StoreError::Remove { job, path, source }
        };
        match std::fs::rename(&dir, &tomb) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            r => r.map_err(err(&dir))?,
        }
        std::fs::remove_dir_all(&tomb).map_err(err(&tomb))?;
        Ok(true)
    }
}

/// How a shuffle error reading `block` of `job` is reported.
fn classify(job: &JobId, block: BlockId) -> impl Fn(ShuffleError) -> StoreError + '_ {
    move |source: ShuffleError| match &source {
        ShuffleError::Io { source: io, .. } if io.kind() == std::io::ErrorKind::NotFound => {
            StoreError::NotFound { job: job.clone(), block }
        }
        ShuffleError::NoSuchPartition { .. } => StoreError::NotFound { job: job.clone(), block },
        ShuffleError::CorruptIndex { .. } | ShuffleError::CorruptBlock { .. } => {
            StoreError::Corrupt { job: job.clone(), block, source }
        }
        _ => StoreError::Unreadable { job: job.clone(), block, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_cannot_escape_the_jobs_directory() {
        for ok in ["job-1", "a", "J_2.retry", &"x".repeat(MAX_JOB_ID_LEN)] {
            assert_eq!(JobId::new(ok).unwrap().as_str(), ok);
        }
        assert_eq!(JobId::new(""), Err(InvalidJobId::Empty));
        assert_eq!(JobId::new(".."), Err(InvalidJobId::LeadingDot));
        assert_eq!(JobId::new("."), Err(InvalidJobId::LeadingDot));
        assert_eq!(JobId::new("../etc"), Err(InvalidJobId::LeadingDot));
        assert_eq!(JobId::new("a/../b"), Err(InvalidJobId::Char { ch: '/' }));
        assert_eq!(JobId::new("/abs"), Err(InvalidJobId::Char { ch: '/' }));
        assert_eq!(JobId::new("a\\b"), Err(InvalidJobId::Char { ch: '\\' }));
        assert_eq!(JobId::new("a\0"), Err(InvalidJobId::Char { ch: '\0' }));
        assert_eq!(JobId::new("é"), Err(InvalidJobId::Char { ch: 'é' }));
        assert!(matches!(JobId::new("x".repeat(MAX_JOB_ID_LEN + 1)), Err(InvalidJobId::TooLong { .. })));
    }

    #[test]
    fn layout_and_removal() {
        let work = tempfile::tempdir().unwrap();
        let store = BlockStore::new(work.path());
        let job: JobId = "job-7".parse().unwrap();
        assert_eq!(store.shuffle_dir(&job), work.path().join("jobs/job-7/shuffle"));
        let files = store.map_files(&job, ShuffleId(2), MapId(5), 1);
        assert_eq!(files.data, work.path().join("jobs/job-7/shuffle/shuffle_2_5_1.data"));
        assert_eq!(files.index, work.path().join("jobs/job-7/shuffle/shuffle_2_5_1.index"));
        let block = BlockId::new(ShuffleId(2), MapId(5), 1, 0.into());
        assert!(matches!(store.read_stored(&job, block), Err(StoreError::NotFound { .. })));

        store.create_shuffle_dir(&job).unwrap();
        std::fs::write(&files.data, b"x").unwrap();
        assert!(store.remove_job(&job).unwrap());
        assert!(!store.job_dir(&job).exists());
        assert!(!store.remove_job(&job).unwrap(), "nothing left to remove");
        let left: Vec<_> = std::fs::read_dir(work.path().join("jobs")).unwrap().collect();
        assert!(left.is_empty(), "no tombstone left behind: {left:?}");
    }
}
