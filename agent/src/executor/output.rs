//! The output side: take the chain's output batches from the guest job and
//! put them where the spec says, then publish them only if the attempt
//! succeeded.
//!
//! Output happens in two phases, so a failed attempt never publishes anything:
//!
//! 1. **Drain** ([`drain`]) while the guest runs: shuffle pairs go into the
//!    [`ShuffleWriter`] on a blocking thread (it sorts and spills, synchronous
//!    CPU and file work); text lines go to the committer's task writer on the
//!    I/O runtime; result records are collected and counted. Draining `take`
//!    stops as soon as it has `limit` records: closing the channel tells the
//!    guest job to stop.
//! 2. **Publish** ([`publish`]) after the attempt's verdict is known and only
//!    when it is a success: the shuffle writer merges into its data and index
//!    files (renamed into place, index last), and the text part file is
//!    finished and committed. Otherwise [`discard`] drops the writer (its spill
//!    files are temporary) or aborts the part upload; a shuffle data file of an
//!    earlier, successful attempt of the same map task is left untouched.
//!
//! Both phases note the host work they have under way (writing shuffle
//! output, writing, uploading and committing a part) so that a deadline
//! passing meanwhile ends the attempt as a host failure naming it (see
//! [`deadline`](super::deadline)); a failure names the partition and the
//! output location ("cannot write part 2 to file:///out: …"). The shuffle
//! writer's final merge is never cut off: it runs on a blocking thread that
//! cannot be stopped, and an abandoned merge would still rename its files into
//! place.

use super::ExecutorConfig;
use super::deadline::Doing;
use super::error::ExecError;
use super::spec::{MapCombine, OutputSpec};
use crate::shuffle::{Combiner, MapOutput, ShuffleWriter};
use tokio::sync::mpsc::Receiver;
use weft_codec::batch::{self, BatchWriter};
use weft_core::io::{IoError, OutputCommitter, PartStats, TextPartWriter};
use weft_core::range;

/// What a successful attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A shuffle-map task's data and index files.
    Shuffle(MapOutput),
    /// A result task's records, as one batch (pairs take two entries each).
    Records {
        /// The records.
        batch: Vec<u8>,
        /// How many.
        records: u64,
    },
    /// A committed text part file.
    Text(PartStats),
    /// The number of records (`count`).
    Count(u64),
    /// A shuffle block could not be fetched: the scheduler should recompute
    /// the map output that wrote it, then run this task again.
    FetchFailed {
        /// The lost block.
        block: crate::shuffle::BlockId,
    },
    /// The attempt failed; the report's end reason says why.
    None,
}

/// Output drained but not yet published.
pub(super) enum Drained {
    Shuffle(Box<ShuffleWriter>),
    Records { batch: Vec<u8>, records: u64 },
    Text(Box<PendingPart>),
    Count(u64),
}

/// A part file written but not yet finished and committed.
pub(super) struct PendingPart {
    writer: TextPartWriter,
    committer: OutputCommitter,
    partition: u32,
    attempt: u32,
}

impl PendingPart {
    /// The output location, as the job named it (not the attempt's file).
    fn location(&self) -> String {
        self.committer.location().uri()
    }

    fn cannot_write(&self, source: IoError) -> ExecError {
        ExecError::Output { partition: self.partition, location: self.location(), source: Box::new(source) }
    }
}

/// Take every batch from `rx` into the output's sink. `keyed` says whether
/// records are pairs (two entries each).
///
/// Host work (writing shuffle output, uploading text) is noted in `doing`, so
/// a deadline passing meanwhile names it.
pub(super) async fn drain(
    spec: OutputSpec,
    keyed: bool,
    config: &ExecutorConfig,
    mut rx: Receiver<Vec<u8>>,
    doing: &Doing,
) -> Result<Drained, ExecError> {
    match spec {
        OutputSpec::Shuffle { dir, shuffle, map, attempt, partitioner, combiner } => {
            let what = format!("writing shuffle output to {}", dir.display());
            let mut writer =
                ShuffleWriter::new(dir, shuffle, map, attempt, partitioner, config.writer.clone());
            match combiner {
                MapCombine::SumI64 => writer = writer.with_combiner(Combiner::SumI64),
                MapCombine::Fold(fold) => writer = writer.with_combiner(Combiner::Fold(fold)),
                MapCombine::None | MapCombine::Guest(_) => {}
            }
            let doing = doing.clone();
            let writer = tokio::task::spawn_blocking(move || {
                while let Some(batch) = rx.blocking_recv() {
                    let _writing = doing.begin(what.as_str());
                    writer.write(&batch).map_err(ExecError::ShuffleWrite)?;
                }
                Ok::<_, ExecError>(writer)
            })
            .await??;
            Ok(Drained::Shuffle(Box::new(writer)))
        }
        OutputSpec::Result { limit } => {
            let limit = limit.unwrap_or(u64::MAX);
            let mut out = Vec::new();
            let mut records = 0u64;
            while records < limit
                && let Some(batch) = rx.recv().await
            {
                let n = record_count(&batch, keyed)?;
                if records + n <= limit {
                    out.extend_from_slice(&batch);
                    records += n;
                } else {
                    out.extend_from_slice(&first_records(&batch, limit - records, keyed)?);
                    records = limit;
                }
            }
            Ok(Drained::Records { batch: out, records })
        }
        OutputSpec::Text { committer, partition, attempt } => {
            let part = PendingPart {
                writer: committer.task_writer(partition, attempt),
                committer,
                partition,
                attempt,
            };
            let what = format!("writing part {partition} to {}", part.location());
            let mut part = part;
            while let Some(batch) = rx.recv().await {
                let written = {
                    let _writing = doing.begin(what.as_str());
                    part.writer.write_batch(&batch).await
                };
                if let Err(source) = written {
                    drop(rx);
                    let error = part.cannot_write(source);
                    let _ = part.writer.abort().await;
                    return Err(error);
                }
            }
            Ok(Drained::Text(Box::new(part)))
        }
        OutputSpec::KeySample { size, seed } => {
            if !keyed {
                return Err(ExecError::Spec(super::SpecError::SampleOfPlainRecords));
            }
            let (mut sample, mut records) = (Reservoir::new(size, seed), 0u64);
            while let Some(batch) = rx.recv().await {
                for pair in batch::pairs(&batch) {
                    let (key, _) = pair.map_err(ExecError::Malformed)?;
                    sample.offer(key);
                    records += 1;
                }
            }
            let mut out = BatchWriter::new();
            for key in sample.keys {
                out.push(&key);
            }
            Ok(Drained::Records { batch: out.finish(), records })
        }
        OutputSpec::Count => {
            let mut records = 0;
            while let Some(batch) = rx.recv().await {
                records += record_count(&batch, keyed)?;
            }
            Ok(Drained::Count(records))
        }
    }
}

/// Publish the output of a successful attempt, noting the host work in `doing`.
pub(super) async fn publish(drained: Drained, doing: &Doing) -> Result<Output, ExecError> {
    match drained {
        Drained::Shuffle(writer) => {
            // Not noted as under way, so never cut off (see the module docs).
            let output = tokio::task::spawn_blocking(move || writer.finish()).await?;
            Ok(Output::Shuffle(output.map_err(ExecError::ShuffleWrite)?))
        }
        Drained::Records { batch, records } => Ok(Output::Records { batch, records }),
        Drained::Text(part) => {
            let location = part.location();
            let PendingPart { writer, committer, partition, attempt } = *part;
            let stats = {
                let _uploading = doing.begin(format!("uploading part {partition} to {location}"));
                writer.finish().await
            };
            let stats = stats.map_err(|source| ExecError::Output {
                partition,
                location: location.clone(),
                source: Box::new(source),
            })?;
            let _committing = doing.begin(format!("committing part {partition} to {location}"));
            let committed = match committer.commit_task(partition, attempt).await {
                // Another attempt of this task (one its master gave up for
                // lost, and that ran on) committed the partition first: the
                // partition is done, and this attempt finishes with it.
                Err(IoError::CommitDenied { winner, .. }) => {
                    tracing::info!(partition, attempt, %winner, "weft.agent.commit.already_done");
                    committer.settle_denied(partition, attempt).await
                }
                other => other,
            };
            committed.map_err(|source| ExecError::Commit {
                partition,
                location,
                source: Box::new(source),
            })?;
            Ok(Output::Text(stats))
        }
        Drained::Count(n) => Ok(Output::Count(n)),
    }
}

/// Throw away the output of a failed attempt.
pub(super) async fn discard(drained: Drained) {
    if let Drained::Text(part) = drained
        && let Err(e) = part.writer.abort().await
    {
        tracing::warn!(error = %e, "weft.agent.executor.abort_part_failed");
    }
}

/// A uniform sample of the keys offered (Vitter's algorithm R), bounded in
/// size whatever the spec asks: at most [`range::MAX_SAMPLE_PER_TASK`] keys,
/// each cut to [`range::MAX_SAMPLE_KEY_BYTES`] (a prefix of a key is still a
/// fine range bound), so the result always fits in one task update.
struct Reservoir {
    size: usize,
    seen: u64,
    keys: Vec<Vec<u8>>,
    rng: fastrand::Rng,
}

impl Reservoir {
    fn new(size: u32, seed: u64) -> Self {
        let size = size.min(range::MAX_SAMPLE_PER_TASK) as usize;
        Self { size, seen: 0, keys: Vec::new(), rng: fastrand::Rng::with_seed(seed) }
    }

    fn offer(&mut self, key: &[u8]) {
        let key = &key[..key.len().min(range::MAX_SAMPLE_KEY_BYTES)];
        if self.keys.len() < self.size {
            self.keys.push(key.to_vec());
        } else if let Ok(at) = usize::try_from(self.rng.u64(0..=self.seen))
            && let Some(slot) = self.keys.get_mut(at)
        {
            slot.clear();
            slot.extend_from_slice(key);
        }
        self.seen += 1;
    }
}

/// Records in a batch.
fn record_count(batch: &[u8], keyed: bool) -> Result<u64, ExecError> {
    let entries = batch::count(batch).map_err(ExecError::Malformed)?;
    if keyed && entries % 2 == 1 {
        return Err(ExecError::Malformed(weft_codec::DecodeError::UnpairedKey { entries }));
    }
    Ok((if keyed { entries / 2 } else { entries }) as u64)
}

/// The first `n` records of a batch.
fn first_records(batch: &[u8], n: u64, keyed: bool) -> Result<Vec<u8>, ExecError> {
    let per_record = if keyed { 2 } else { 1 };
    let take = usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(per_record);
    let mut out = BatchWriter::new();
    for entry in batch::entries(batch).take(take) {
        out.push(entry.map_err(ExecError::Malformed)?);
    }
    Ok(out.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_reservoir_keeps_a_uniform_sample_of_its_size() {
        let mut hits = [0u32; 100];
        for seed in 0..400 {
            let mut r = Reservoir::new(10, seed);
            for k in 0..100u8 {
                r.offer(&[k]);
            }
            assert_eq!(r.keys.len(), 10);
            let mut distinct = r.keys.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 10, "no key twice");
            for k in &r.keys {
                hits[k[0] as usize] += 1;
            }
        }
        // Each key is kept with probability 1/10: 40 times in 400 runs on average.
        assert!(hits.iter().all(|&h| (10..=80).contains(&h)), "{hits:?}");
        let mut few = Reservoir::new(10, 0);
        few.offer(b"a");
        assert_eq!(few.keys, [b"a".to_vec()]);
        // Bounded whatever is asked: long keys are cut, the count capped.
        let mut big = Reservoir::new(u32::MAX, 0);
        for i in 0..range::MAX_SAMPLE_PER_TASK + 10 {
            big.offer(&vec![(i % 251) as u8; 1000]);
        }
        assert_eq!(big.keys.len(), range::MAX_SAMPLE_PER_TASK as usize);
        assert!(big.keys.iter().all(|k| k.len() == range::MAX_SAMPLE_KEY_BYTES));
    }

    #[test]
    fn first_records_counts_pairs_as_one() {
        let mut w = BatchWriter::new();
        for e in ["k1", "v1", "k2", "v2", "k3", "v3"] {
            w.push(e.as_bytes());
        }
        let batch = w.finish();
        assert_eq!(record_count(&batch, true).unwrap(), 3);
        assert_eq!(record_count(&batch, false).unwrap(), 6);
        let two = first_records(&batch, 2, true).unwrap();
        assert_eq!(record_count(&two, true).unwrap(), 2);
        assert_eq!(&batch[..two.len()], &two[..]);
        assert!(record_count(&batch[..batch.len() - 3], false).is_err());
    }
}
