//! The input side: read a task's records and feed them, batch by batch, into
//! the bounded channel the guest job reads from.
//!
//! Reads happen where they belong: object-store reads and shuffle fetches are
//! async and run on the caller's (I/O) runtime; merging and aggregating the
//! fetched blocks is native CPU work and runs on a blocking thread
//! (`spawn_blocking`), which feeds the channel with `blocking_send`. Either way
//! the channel's capacity bounds how far input runs ahead of the guest.
//!
//! Every read, fetch and merge is noted as under way while it runs, so that a
//! deadline passing meanwhile cuts the pump off and names what stalled (see
//! [`deadline`](super::deadline)).
//!
//! When the guest side stops early (a trap, a `take` that has enough), its
//! receiver is gone and the next send fails: the pump stops quietly. When the
//! pump itself fails it sends [`Msg::Abort`] with the end reason, so the guest
//! job ends the attempt with that reason instead of mistaking a truncated input
//! for a complete one.

use super::ExecutorConfig;
use super::deadline::{Clock, Doing};
use super::error::ExecError;
use super::spec::{Aggregate, Input};
use crate::shuffle::{
    BlockFetcher, BlockId, BlockLocation, FetchError, Native, ReadError, ShuffleError, ShuffleReader,
    aggregate,
};
use bytes::Bytes;
use tokio::sync::mpsc::Sender;
use weft_codec::batch::{BatchWriter, pairs};
use weft_core::io::LineReader;
use weft_core::metering::EndReason;

/// What travels from the input to the guest job.
#[derive(Debug)]
pub(super) enum Msg {
    /// The next batch of records (shared: a persisted partition's batches
    /// are handed to the guest without a copy).
    Batch(bytes::Bytes),
    /// The input failed: end the attempt with this reason.
    Abort(EndReason),
}

/// What reading the input cost.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct InputStats {
    /// Bytes fetched from the object store (text) or handed over (records).
    pub input_bytes: u64,
    /// Stored bytes of the shuffle blocks fetched.
    pub shuffle_bytes_read: u64,
    /// The most input bytes held in host memory at once: the records handed
    /// over, the largest text batch, or what a shuffle read holds (blocks in
    /// flight and arrived, the merge's buffers).
    pub held_bytes: u64,
    /// Bytes a shuffle read spilled to disk.
    pub spill_bytes: u64,
}

type Batches = Box<dyn Iterator<Item = Result<Vec<u8>, ShuffleError>> + Send>;

/// Read `input` into `tx` until it is exhausted or the receiver is gone, or
/// until the deadline passes while a read or fetch is under way (noted in
/// `doing`).
pub(super) async fn pump<F: BlockFetcher>(
    input: Input,
    reader: &ShuffleReader<F>,
    config: &ExecutorConfig,
    tx: Sender<Msg>,
    clock: &Clock,
    doing: &Doing,
) -> Result<InputStats, ExecError> {
    let mut stats = InputStats::default();
    let result = clock.bound(doing, feed(input, reader, config, &tx, &mut stats, doing)).await;
    if let Err(e) = &result {
        tracing::debug!(error = %e, "weft.agent.executor.input_failed");
        // The guest may already have stopped; then there is no one to tell.
        let _ = tx.send(Msg::Abort(e.end_reason())).await;
    }
    result.map(|()| stats)
}

async fn feed<F: BlockFetcher>(
    input: Input,
    reader: &ShuffleReader<F>,
    config: &ExecutorConfig,
    tx: &Sender<Msg>,
    stats: &mut InputStats,
    doing: &Doing,
) -> Result<(), ExecError> {
    let target = config.batch_bytes.max(1);
    match input {
        Input::Records(batch) => {
            stats.input_bytes = batch.len() as u64;
            stats.held_bytes = batch.len() as u64;
            if !batch.is_empty() {
                let _ = tx.send(Msg::Batch(batch.into())).await;
            }
            Ok(())
        }
        Input::Batches(batches) => {
            stats.input_bytes = batches.iter().map(|b| b.len() as u64).sum();
            stats.held_bytes = stats.input_bytes;
            for batch in batches {
                if !batch.is_empty() && tx.send(Msg::Batch(batch)).await.is_err() {
                    break;
                }
            }
            Ok(())
        }
        Input::Text { location, split, lines } => {
            let what =
                format!("reading split {}..{} of {}", split.start, split.end, location.uri_of(&split.path));
            let mut lines = LineReader::new(&location, split).with_batch_bytes(target).with_format(lines);
            let result = async {
                loop {
                    let batch = {
                        let _reading = doing.begin(what.as_str());
                        lines.next_batch().await.map_err(ExecError::Input)?
                    };
                    let Some(batch) = batch else { break };
                    stats.held_bytes = stats.held_bytes.max(batch.len() as u64);
                    if tx.send(Msg::Batch(batch.into())).await.is_err() {
                        break;
                    }
                }
                Ok(())
            }
            .await;
            stats.input_bytes = lines.bytes_read();
            result
        }
        Input::Shuffle { blocks, aggregate } => {
            stats.shuffle_bytes_read = stored_bytes(&blocks);
            let what = format!("merging {} fetched shuffle blocks", blocks.len());
            let merged = watched(reader, config, doing, 1).read(blocks).await.map_err(read_failed)?;
            stats.held_bytes = merged.held_bytes();
            stats.spill_bytes = merged.spilled_bytes();
            let batches: Batches = match aggregate {
                // A guest reduce after the merge folds runs of equal keys
                // within a batch: keys stay whole.
                Aggregate::Merge => Box::new(merged),
                // Narrow steps after a sort take records one by one.
                Aggregate::Sorted { ascending: true } => Box::new(merged.cut_anywhere()),
                Aggregate::SumI64 => Box::new(aggregate::sum_i64(merged, target)),
                Aggregate::Fold(fold) => Box::new(aggregate::fold(merged, target, Native::Fold(fold))),
                Aggregate::Group => Box::new(aggregate::group_values(merged, target)),
                Aggregate::Sorted { ascending: false } => Box::new(Descending::new(merged, target)),
            };
            send_blocking(batches, tx.clone(), doing.clone(), what).await
        }
        Input::Join { left, right } => {
            stats.shuffle_bytes_read = stored_bytes(&left) + stored_bytes(&right);
            let what = format!("joining {} fetched shuffle blocks", left.len() + right.len());
            // The two sides share the reader's memory budget.
            let reader = watched(reader, config, doing, 2);
            let (left, right) =
                tokio::try_join!(reader.read(left), reader.read(right)).map_err(read_failed)?;
            stats.held_bytes = left.held_bytes() + right.held_bytes();
            stats.spill_bytes = left.spilled_bytes() + right.spilled_bytes();
            send_blocking(Box::new(aggregate::join(left, right, target)), tx.clone(), doing.clone(), what)
                .await
        }
    }
}

/// A reader over the executor's fetcher that notes every fetch in `doing`,
/// with a `share`-th of the memory budget (one of `share` reads at once).
fn watched<'a, F: BlockFetcher>(
    reader: &'a ShuffleReader<F>,
    config: &ExecutorConfig,
    doing: &'a Doing,
    share: usize,
) -> ShuffleReader<Watched<'a, F>> {
    let tuning = config.reader.clone();
    let budget = usize::try_from(tuning.memory_budget.as_u64()).unwrap_or(usize::MAX) / share.max(1);
    ShuffleReader::new(Watched { fetcher: reader.fetcher(), doing }, tuning.with_memory_budget(budget))
        .with_spill_dir(reader.spill_dir())
}

/// A fetcher noting each fetch as under way while it runs, naming the block
/// and where it comes from.
struct Watched<'a, F> {
    fetcher: &'a F,
    doing: &'a Doing,
}

impl<F: BlockFetcher> BlockFetcher for Watched<'_, F> {
    async fn fetch(&self, block: &BlockId) -> Result<Bytes, FetchError> {
        let what = match self.fetcher.source(block) {
            Some(source) => format!("fetching shuffle block {block} from {source}"),
            None => format!("fetching shuffle block {block}"),
        };
        let _fetching = self.doing.begin(what);
        self.fetcher.fetch(block).await
    }

    fn source(&self, block: &BlockId) -> Option<String> {
        self.fetcher.source(block)
    }
}

fn stored_bytes(blocks: &[BlockLocation]) -> u64 {
    blocks.iter().map(|b| b.size).sum()
}

fn read_failed(e: ReadError) -> ExecError {
    match e {
        ReadError::FetchFailed { block, reason } => ExecError::FetchFailed { block, source: reason },
        ReadError::Spill(e) => ExecError::ShuffleRead(e),
    }
}

/// Drain `batches` into `tx` on a blocking thread: merging and aggregating is
/// CPU work that must not hold up the I/O runtime. Computing each batch is
/// noted in `doing` as `what`; waiting for the guest to take it is not.
async fn send_blocking(
    mut batches: Batches,
    tx: Sender<Msg>,
    doing: Doing,
    what: String,
) -> Result<(), ExecError> {
    tokio::task::spawn_blocking(move || {
        loop {
            let next = {
                let _merging = doing.begin(what.as_str());
                batches.next()
            };
            let Some(batch) = next else { break };
            let batch = batch.map_err(ExecError::ShuffleRead)?;
            if tx.blocking_send(Msg::Batch(batch.into())).is_err() {
                break;
            }
        }
        Ok(())
    })
    .await?
}

/// A reduce partition in descending key order. The merge yields ascending
/// order, so the whole partition is buffered once and handed out backwards.
struct Descending {
    source: Option<crate::shuffle::MergedBatches>,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    target: usize,
}

impl Descending {
    fn new(source: crate::shuffle::MergedBatches, target: usize) -> Self {
        Self { source: Some(source), pairs: Vec::new(), target }
    }

    fn load(&mut self) -> Result<(), ShuffleError> {
        let Some(source) = self.source.take() else { return Ok(()) };
        for batch in source {
            let batch = batch?;
            for pair in pairs(&batch) {
                let (k, v) = pair.map_err(|source| ShuffleError::Malformed { source })?;
                self.pairs.push((k.to_vec(), v.to_vec()));
            }
        }
        Ok(())
    }
}

impl Iterator for Descending {
    type Item = Result<Vec<u8>, ShuffleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(e) = self.load() {
            self.pairs.clear();
            return Some(Err(e));
        }
        let mut out = BatchWriter::new();
        while out.byte_len() < self.target {
            let Some((k, v)) = self.pairs.pop() else { break };
            out.push(&k);
            out.push(&v);
        }
        (!out.is_empty()).then(|| Ok(out.finish()))
    }
}
