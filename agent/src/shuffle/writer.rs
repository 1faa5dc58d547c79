//! The shuffle writer of one map task: partition, buffer, sort, combine, spill,
//! and merge into one data file and one index file.
//!
//! See the [module docs](super) for the algorithm. The writer is synchronous
//! (it does file I/O and sorting); call it from a blocking thread, not from the
//! I/O runtime.
//!
//! Memory: the sort buffer is spilled as soon as its accounted size passes
//! [`WriterConfig::memory_budget`]; while a run is cut, one partition's batch is
//! built beside it. At the end, a buffer never spilled, of a writer without a
//! combiner, is written straight from the buffer through one output chunk
//! ([`WriterConfig::chunk_bytes`]); otherwise every partition's last batch is
//! built beside the buffer's (kept) allocation, and merging holds one pair per
//! run plus one output chunk.
//!
//! Atomicity: the data and index are written to temporary files in the output
//! directory, then renamed into place: first any old index is removed, then
//! the data file is renamed, the index last. A reader trusts a map output only
//! through its index, whose last offset must equal the data file's length, so
//! a crash of the agent at any point leaves either no index or a complete pair.
//!
//! The files are not synced: map output is recomputable, not durable data
//! (Spark does not sync it either). A lost machine is a lost agent, whose map
//! outputs the master recomputes from lineage; a block that a power cut left
//! torn fails its crc32c and the reader reports a fetch failure, which also
//! leads to recomputation.

use super::block::{BlockEncoder, Checksummed, Compression};
use super::buffer::{SortBuffer, Sorted};
use super::combine::Combiner;
use super::error::ShuffleError;
use super::ids::{MapId, ShuffleId, data_file_name, index_file_name};
use super::index::IndexFile;
use super::merge::{BatchSource, Merge, Pair, PairSource};
use super::partitioner::Partitioner;
use super::spill::{RunSource, SpillRun, SpillWriter};
use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use weft_codec::batch::{BatchWriter, count, pairs};

/// Tuning of a [`ShuffleWriter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// Bytes of buffered pairs (plus per-pair bookkeeping) before a run is
    /// sorted and spilled to disk.
    pub memory_budget: usize,
    /// How blocks are stored in the data file.
    pub compression: Compression,
    /// Size of the chunks the merge (or, with nothing spilled and no
    /// combiner, the sorted buffer) hands to the combiner and the encoder.
    pub chunk_bytes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        // Twice the master's largest text split: a map task over a whole
        // split sorts it in memory (pairs plus their entries) without spilling.
        Self { memory_budget: 128 << 20, compression: Compression::None, chunk_bytes: 1 << 20 }
    }
}

impl WriterConfig {
    /// Set the memory budget in bytes.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Set the block compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Set the merge chunk size in bytes.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }
}

/// What one map task wrote: reported to the scheduler and used to locate blocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOutput {
    /// The data file.
    pub data_path: PathBuf,
    /// Its index.
    pub index_path: PathBuf,
    /// The stored length of each partition's block (0 for an empty partition).
    pub partition_lengths: Vec<u64>,
    /// Pairs in the data file, after combining.
    pub records_written: u64,
    /// Length of the data file.
    pub bytes_written: u64,
    /// Bytes written to spill files along the way.
    pub spill_bytes: u64,
    /// The most bytes its sort buffer (and sum table) held in memory.
    #[serde(default)]
    pub peak_buffer_bytes: u64,
}

/// Writes the shuffle output of one map task.
#[derive(Debug)]
pub struct ShuffleWriter {
    dir: PathBuf,
    shuffle: ShuffleId,
    map: MapId,
    /// The attempt of the map task writing: its files are named by it.
    attempt: u32,
    partitioner: Partitioner,
    config: WriterConfig,
    combiner: Option<Combiner>,
    /// For a native combiner (`SumI64`, a `Fold`): each distinct key's
    /// running fold, a raw 8-byte value, folded as pairs arrive.
    sums: HashMap<Box<[u8]>, u64, FixedState>,
    sums_bytes: usize,
    buffer: SortBuffer,
    runs: Vec<SpillRun>,
    spill_bytes: u64,
    /// The most bytes the buffer or the sum table held.
    peak_buffer: u64,
}

/// Bytes a sum table entry costs besides its key: the sum, the boxed key's
/// pointer and length, and the table's own slack.
const SUM_ENTRY_BYTES: usize = 48;

impl ShuffleWriter {
    /// A writer for attempt `attempt` of map task `map` of `shuffle`, writing
    /// its files into `dir` under names that hold all three (see
    /// [`BlockId::data_file_name`](super::BlockId::data_file_name)): another
    /// attempt of the same map task writing into `dir` leaves these alone.
    pub fn new(
        dir: impl Into<PathBuf>,
        shuffle: ShuffleId,
        map: MapId,
        attempt: u32,
        partitioner: Partitioner,
        config: WriterConfig,
    ) -> Self {
        Self {
            dir: dir.into(),
            shuffle,
            map,
            attempt,
            partitioner,
            config,
            combiner: None,
            sums: HashMap::default(),
            sums_bytes: 0,
            buffer: SortBuffer::default(),
            runs: Vec::new(),
            spill_bytes: 0,
            peak_buffer: 0,
        }
    }

    /// Combine the values of each key before spilling and writing.
    pub fn with_combiner(mut self, combiner: Combiner) -> Self {
        self.combiner = Some(combiner);
        self
    }

    /// Add one pair batch. A malformed batch is rejected whole, before any of
    /// its pairs are buffered.
    pub fn write(&mut self, batch: &[u8]) -> Result<(), ShuffleError> {
        let entries = count(batch).map_err(|source| ShuffleError::Malformed { source })?;
        if entries % 2 != 0 {
            return Err(ShuffleError::Malformed { source: weft_codec::DecodeError::UnpairedKey { entries } });
        }
        if let Some(native) = self.combiner.as_ref().and_then(Combiner::native) {
            // Check every value first: a bad batch adds nothing.
            for pair in pairs(batch) {
                let (_, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
                native.raw(v)?;
            }
            for pair in pairs(batch) {
                let (k, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
                let v = native.raw(v)?;
                match self.sums.get_mut(k) {
                    Some(acc) => *acc = native.apply(*acc, v),
                    None => {
                        self.sums.insert(k.into(), v);
                        self.sums_bytes += k.len() + SUM_ENTRY_BYTES;
                        self.peak_buffer = self.peak_buffer.max(self.sums_bytes as u64);
                        if self.sums_bytes > self.config.memory_budget {
                            self.spill()?;
                        }
                    }
                }
            }
            return Ok(());
        }
        for pair in pairs(batch) {
            let (k, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
            self.buffer.push(self.partitioner.partition(k), k, v);
            self.peak_buffer = self.peak_buffer.max(self.buffer.bytes() as u64);
            if self.buffer.bytes() > self.config.memory_budget {
                self.spill()?;
            }
        }
        Ok(())
    }

    /// Move the sum table's pairs into the sort buffer.
    fn drain_sums(&mut self) {
        for (k, sum) in self.sums.drain() {
            self.buffer.push(self.partitioner.partition(&k), &k, &sum.to_be_bytes());
        }
        self.sums_bytes = 0;
    }

    /// Sort, combine and write the buffer as a run file.
    fn spill(&mut self) -> Result<(), ShuffleError> {
        self.drain_sums();
        let prefix =
            format!(".shuffle_{}_{}_{}.run{}.", self.shuffle.0, self.map.0, self.attempt, self.runs.len());
        let mut run = SpillWriter::create(&self.dir, &prefix)?;
        let partitions = self.partitioner.partitions();
        self.buffer.drain_sorted(partitions, self.combiner.as_mut(), |_, batch| run.partition(&batch))?;
        let run = run.finish()?;
        self.spill_bytes += run.bytes();
        tracing::debug!(
            shuffle = self.shuffle.0,
            map = self.map.0,
            attempt = self.attempt,
            run = self.runs.len(),
            bytes = run.bytes(),
            "weft.agent.shuffle.spill"
        );
        self.runs.push(run);
        Ok(())
    }

    /// Merge everything written into the map output's data and index files.
    pub fn finish(mut self) -> Result<MapOutput, ShuffleError> {
        self.drain_sums();
        let partitions = self.partitioner.partitions();
        // Nothing spilled and nothing to combine: the sorted pairs go straight
        // from the buffer to the file, through one chunk. Otherwise each
        // partition's batch is built whole, to combine or merge.
        let straight = self.runs.is_empty() && self.combiner.is_none();
        let mut last_run: Vec<Vec<u8>> = Vec::with_capacity(partitions as usize);
        if !straight {
            self.buffer.drain_sorted(partitions, self.combiner.as_mut(), |_, batch| {
                last_run.push(batch);
                Ok(())
            })?;
        }

        let data_tmp = temp_in(&self.dir, ".data")?;
        let tmp_path = data_tmp.path().to_path_buf();
        let mut out = Checksummed::new(BufWriter::with_capacity(256 << 10, data_tmp));
        let mut offsets = vec![0u64];
        let mut checksums = Vec::with_capacity(partitions as usize);
        let mut records = 0u64;
        let mut sorted = if straight { Some(self.buffer.sorted()) } else { None };
        let mut chunk = BatchWriter::with_capacity(if straight { self.config.chunk_bytes } else { 0 });
        let mut last_run = last_run.into_iter();
        for p in 0..partitions {
            let mut block = BlockEncoder::new(self.config.compression, &mut out);
            if let Some(sorted) = sorted.as_mut() {
                let these = sorted.take(p);
                records += these.len() as u64;
                for (k, v) in sorted.pairs(these) {
                    chunk.push(k);
                    chunk.push(v);
                    if chunk.byte_len() >= self.config.chunk_bytes {
                        block.write(chunk.bytes()).map_err(ShuffleError::io(&tmp_path))?;
                        chunk.clear();
                    }
                }
                block.write(chunk.bytes()).map_err(ShuffleError::io(&tmp_path))?;
                chunk.clear();
            } else if self.runs.is_empty() {
                // One run, already sorted and combined: no merge needed.
                let memory = last_run.next().unwrap_or_default();
                records += (count(&memory).map_err(|source| ShuffleError::Malformed { source })? / 2) as u64;
                block.write(&memory).map_err(ShuffleError::io(&tmp_path))?;
            } else {
                let mut sources: Vec<Source> =
                    self.runs.iter().map(|r| r.partition(p).map(Source::Run)).collect::<Result<_, _>>()?;
                sources.push(Source::Memory(BatchSource::new(last_run.next().unwrap_or_default())));
                let mut merge = Merge::new(sources);
                while let Some(mut chunk) = merge.next_chunk(self.config.chunk_bytes)? {
                    if let Some(c) = self.combiner.as_mut() {
                        chunk = c.apply(chunk)?;
                    }
                    records +=
                        (count(&chunk).map_err(|source| ShuffleError::Malformed { source })? / 2) as u64;
                    block.write(&chunk).map_err(ShuffleError::io(&tmp_path))?;
                }
            }
            block.finish().map_err(ShuffleError::io(&tmp_path))?;
            let (end, crc) = out.end_block();
            offsets.push(end);
            checksums.push(crc);
        }
        debug_assert!(sorted.as_ref().is_none_or(Sorted::is_drained), "pairs of a partition past the last");
        drop(sorted);
        let bytes_written = offsets.last().copied().unwrap_or(0);
        let data_tmp = out
            .into_inner()
            .into_inner()
            .map_err(|e| ShuffleError::Io { path: tmp_path.clone(), source: e.into_error() })?;

        let index = IndexFile::new(self.config.compression, offsets, checksums);
        let mut index_tmp = temp_in(&self.dir, ".index")?;
        index_tmp.write_all(&index.encode()).map_err(ShuffleError::io(index_tmp.path()))?;

        let data_path = self.dir.join(data_file_name(self.shuffle, self.map, self.attempt));
        let index_path = self.dir.join(index_file_name(self.shuffle, self.map, self.attempt));
        match std::fs::remove_file(&index_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ShuffleError::io(&index_path)(e));
            }
            _ => {}
        }
        data_tmp.persist(&data_path).map_err(|e| ShuffleError::io(&data_path)(e.error))?;
        index_tmp.persist(&index_path).map_err(|e| ShuffleError::io(&index_path)(e.error))?;

        Ok(MapOutput {
            data_path,
            index_path,
            partition_lengths: index.block_lengths(),
            records_written: records,
            bytes_written,
            spill_bytes: self.spill_bytes,
            peak_buffer_bytes: self.peak_buffer,
        })
    }
}

fn temp_in(dir: &Path, suffix: &str) -> Result<tempfile::NamedTempFile, ShuffleError> {
    tempfile::Builder::new()
        .prefix(".shuffle-")
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(ShuffleError::io(dir))
}

/// A merge input: a spilled run or the last, in-memory one.
enum Source {
    Run(RunSource),
    Memory(BatchSource<Vec<u8>>),
}

impl PairSource for Source {
    fn next_pair(&mut self) -> Result<Option<Pair>, ShuffleError> {
        match self {
            Self::Run(r) => r.next_pair(),
            Self::Memory(m) => m.next_pair(),
        }
    }

    fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<Option<u32>, ShuffleError> {
        match self {
            Self::Run(r) => r.next_into(key, value),
            Self::Memory(m) => m.next_into(key, value),
        }
    }
}
