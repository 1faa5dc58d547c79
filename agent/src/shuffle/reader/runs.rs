//! The reader's spilled runs: merged blocks of one reduce partition on disk.
//!
//! A run is a temporary file of records `[u32 key length][key][u32 tag]
//! [u32 value length][value]` (little-endian), sorted by key and then tag,
//! where the tag is the map task the pair came from, so that merging runs
//! with each other and with blocks still in memory gives the same order as
//! merging all blocks at once. Runs are uncompressed (they live for one task
//! on local disk and are read once) and deleted when dropped, including on
//! error: the file is a [`tempfile::NamedTempFile`], and a [`RunSource`]
//! owns it while the merge reads it.

use super::super::error::ShuffleError;
use super::super::merge::{Merge, Pair, PairSource};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// The largest read (and write) buffer of one run.
pub(crate) const IO_BUFFER: usize = 64 * 1024;

/// One spilled, sorted run.
#[derive(Debug)]
pub(crate) struct Run {
    file: NamedTempFile,
    bytes: u64,
}

impl Run {
    /// Bytes on disk.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Read the run from its start through a `buffer`-byte buffer; the
    /// source deletes the file when dropped.
    pub(crate) fn open(self, buffer: usize) -> Result<RunSource, ShuffleError> {
        let path = self.file.path().to_path_buf();
        let input = self.file.reopen().map_err(ShuffleError::io(&path))?;
        Ok(RunSource {
            input: BufReader::with_capacity(buffer, input),
            remaining: self.bytes,
            path,
            _file: self.file,
        })
    }
}

/// Merge `sources` by (key, tag) into one run in `dir`, written through a
/// `buffer`-byte buffer.
pub(crate) fn spill<S: PairSource>(dir: &Path, sources: Vec<S>, buffer: usize) -> Result<Run, ShuffleError> {
    let file = tempfile::Builder::new()
        .prefix("reduce-")
        .suffix(".spill")
        .tempfile_in(dir)
        .map_err(ShuffleError::io(dir))?;
    let path = file.path().to_path_buf();
    let mut out = BufWriter::with_capacity(buffer, file);
    let mut bytes = 0u64;
    let mut merge = Merge::new(sources);
    while let Some(((key, value), tag)) = merge.next_tagged()? {
        for part in [
            &(key.len() as u32).to_le_bytes()[..],
            &key,
            &tag.to_le_bytes(),
            &(value.len() as u32).to_le_bytes(),
            &value,
        ] {
            out.write_all(part).map_err(ShuffleError::io(&path))?;
            bytes += part.len() as u64;
        }
    }
    let file = out.into_inner().map_err(|e| ShuffleError::Io { path, source: e.into_error() })?;
    Ok(Run { file, bytes })
}

/// The pairs of a run, read sequentially with their tags.
#[derive(Debug)]
pub(crate) struct RunSource {
    input: BufReader<File>,
    remaining: u64,
    path: PathBuf,
    _file: NamedTempFile,
}

impl RunSource {
    fn read_u32(&mut self) -> Result<u32, ShuffleError> {
        let mut word = [0u8; 4];
        self.take(4)?;
        self.input.read_exact(&mut word).map_err(ShuffleError::io(&self.path))?;
        Ok(u32::from_le_bytes(word))
    }

    fn read_entry(&mut self) -> Result<Vec<u8>, ShuffleError> {
        let len = self.read_u32()?;
        self.take(u64::from(len))?;
        let mut entry = vec![0u8; len as usize];
        self.input.read_exact(&mut entry).map_err(ShuffleError::io(&self.path))?;
        Ok(entry)
    }

    /// Account for `n` more bytes read; a run shorter than its records say is
    /// malformed.
    fn take(&mut self, n: u64) -> Result<(), ShuffleError> {
        self.remaining = self.remaining.checked_sub(n).ok_or(ShuffleError::Malformed {
            source: weft_codec::DecodeError::Truncated {
                offset: 0,
                needed: n as usize,
                available: self.remaining as usize,
            },
        })?;
        Ok(())
    }
}

impl PairSource for RunSource {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        Ok(self.next_tagged()?.map(|(pair, _)| pair))
    }

    fn next_tagged(&mut self) -> Result<Option<(Pair, u32)>, ShuffleError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let key = self.read_entry()?;
        let tag = self.read_u32()?;
        let value = self.read_entry()?;
        Ok(Some(((key, value), tag)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::merge::{BatchSource, Tagged};
    use super::*;
    use weft_codec::batch::BatchWriter;

    fn block(items: &[(&str, &str)], tag: u32) -> Tagged<BatchSource<Vec<u8>>> {
        let mut w = BatchWriter::new();
        for (k, v) in items {
            w.push(k.as_bytes());
            w.push(v.as_bytes());
        }
        Tagged { source: BatchSource::new(w.finish()), tag }
    }

    fn drain(mut s: impl PairSource) -> Vec<(String, String, u32)> {
        let mut out = Vec::new();
        while let Some(((k, v), t)) = s.next_tagged().unwrap() {
            out.push((String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap(), t));
        }
        out
    }

    #[test]
    fn runs_keep_tags_merge_in_tag_order_and_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // Maps 2 and 0 spilled together, map 1 later: equal keys come out in map order.
        let sources = vec![block(&[("a", "2"), ("b", "2")], 2), block(&[("b", "0")], 0)];
        let run = spill(dir.path(), sources, 16).unwrap();
        assert!(run.bytes() > 0);
        let later = block(&[("a", "1"), ("b", "1"), ("c", "1")], 1);
        let merged = Merge::new(vec![
            Box::new(run.open(16).unwrap()) as Box<dyn PairSource>,
            Box::new(later) as Box<dyn PairSource>,
        ]);
        let got = drain(merged);
        let want = [("a", "1", 1), ("a", "2", 2), ("b", "0", 0), ("b", "1", 1), ("b", "2", 2), ("c", "1", 1)];
        let want: Vec<_> = want.iter().map(|(k, v, t)| (k.to_string(), v.to_string(), *t)).collect();
        assert_eq!(got, want);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the run file is gone");
    }

    #[test]
    fn a_truncated_run_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = spill(dir.path(), vec![block(&[("key", "value")], 0)], IO_BUFFER).unwrap();
        run.bytes += 3;
        let mut source = run.open(IO_BUFFER).unwrap();
        assert!(source.next_tagged().unwrap().is_some());
        assert!(matches!(
            source.next_tagged(),
            Err(ShuffleError::Malformed { .. } | ShuffleError::Io { .. })
        ));
    }
}
