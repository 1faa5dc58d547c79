//! Spilled runs: a sorted buffer written to a temporary file.
//!
//! A run file is the run's per-partition pair batches back to back, in
//! partition order, uncompressed (it lives for one task on local disk, and is
//! read once). Only the `partitions + 1` offsets stay in memory. The file is a
//! [`tempfile::NamedTempFile`] in the output directory, so it is deleted when
//! the writer finishes or is dropped, including on error.

use super::error::ShuffleError;
use super::merge::{Pair, PairSource};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;
use weft_codec::batch::PREFIX;

const IO_BUFFER: usize = 64 * 1024;

/// One spilled, sorted run.
#[derive(Debug)]
pub(crate) struct SpillRun {
    file: NamedTempFile,
    offsets: Vec<u64>,
}

/// Writes one run, partition by partition.
pub(crate) struct SpillWriter {
    out: BufWriter<NamedTempFile>,
    path: PathBuf,
    offsets: Vec<u64>,
}

impl SpillWriter {
    /// Start a run file in `dir`.
    pub(crate) fn create(dir: &Path, prefix: &str) -> Result<Self, ShuffleError> {
        let file = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".spill")
            .tempfile_in(dir)
            .map_err(ShuffleError::io(dir))?;
        let path = file.path().to_path_buf();
        Ok(Self { out: BufWriter::with_capacity(IO_BUFFER, file), path, offsets: vec![0] })
    }

    /// Append the next partition's sorted pair batch.
    pub(crate) fn partition(&mut self, batch: &[u8]) -> Result<(), ShuffleError> {
        self.out.write_all(batch).map_err(ShuffleError::io(&self.path))?;
        let end = self.offsets.last().copied().unwrap_or(0) + batch.len() as u64;
        self.offsets.push(end);
        Ok(())
    }

    /// Flush and close the run.
    pub(crate) fn finish(self) -> Result<SpillRun, ShuffleError> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| ShuffleError::Io { path: self.path.clone(), source: e.into_error() })?;
        Ok(SpillRun { file, offsets: self.offsets })
    }
}

impl SpillRun {
    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// A reader of partition `p`'s pairs.
    pub(crate) fn partition(&self, p: u32) -> Result<RunSource, ShuffleError> {
        let path = self.file.path().to_path_buf();
        let (start, end) = match (self.offsets.get(p as usize), self.offsets.get(p as usize + 1)) {
            (Some(&s), Some(&e)) => (s, e),
            _ => (0, 0),
        };
        let mut file = File::open(&path).map_err(ShuffleError::io(&path))?;
        file.seek(SeekFrom::Start(start)).map_err(ShuffleError::io(&path))?;
        Ok(RunSource { input: BufReader::with_capacity(IO_BUFFER, file), remaining: end - start, path })
    }
}

/// The pairs of one partition of a spilled run, read sequentially.
#[derive(Debug)]
pub(crate) struct RunSource {
    input: BufReader<File>,
    remaining: u64,
    path: PathBuf,
}

impl RunSource {
    /// The next entry into `entry`, replacing what it held.
    fn read_entry_into(&mut self, entry: &mut Vec<u8>) -> Result<(), ShuffleError> {
        let mut prefix = [0u8; PREFIX];
        self.input.read_exact(&mut prefix).map_err(ShuffleError::io(&self.path))?;
        let len = u32::from_le_bytes(prefix) as u64;
        let needed = PREFIX as u64 + len;
        if needed > self.remaining {
            return Err(ShuffleError::Malformed {
                source: weft_codec::DecodeError::Truncated {
                    offset: 0,
                    needed: needed as usize,
                    available: self.remaining as usize,
                },
            });
        }
        self.remaining -= needed;
        entry.clear();
        entry.resize(len as usize, 0);
        self.input.read_exact(entry).map_err(ShuffleError::io(&self.path))
    }
}

impl PairSource for RunSource {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        super::merge::fresh_pair(self)
    }

    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.read_entry_into(key)?;
        if self.remaining == 0 {
            return Err(ShuffleError::Malformed {
                source: weft_codec::DecodeError::UnpairedKey { entries: 1 },
            });
        }
        self.read_entry_into(value)?;
        Ok(Some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::batch::BatchWriter;

    #[test]
    fn run_round_trips_per_partition_and_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpillWriter::create(dir.path(), "t").unwrap();
        let mut b = BatchWriter::new();
        b.push(b"k");
        b.push(b"value");
        let one = b.finish();
        w.partition(&[]).unwrap();
        w.partition(&one).unwrap();
        let run = w.finish().unwrap();
        assert_eq!(run.bytes(), one.len() as u64);
        assert!(run.partition(0).unwrap().next_pair().unwrap().is_none());
        let mut src = run.partition(1).unwrap();
        assert_eq!(src.next_pair().unwrap(), Some((b"k".to_vec(), b"value".to_vec())));
        assert!(src.next_pair().unwrap().is_none());
        assert!(run.partition(9).unwrap().next_pair().unwrap().is_none());
        drop((src, run));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
