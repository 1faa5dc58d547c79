//! The task executor end to end: real text files, the real sandbox running the
//! wordcount guest, real shuffle files; every result compared with a plain
//! Rust computation over the same text.

use crate::support::{prepared, sandbox};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use weft_agent::executor::CachePut;
use weft_agent::executor::{Aggregate, Input, MapCombine, Output, OutputSpec};
use weft_agent::shuffle::{
    BlockId, BlockLocation, LocalFetcher, MapId, MapOutput, Partitioner, ReduceId, ShuffleId, WriterConfig,
};
use weft_agent::{Executor, ExecutorConfig, TaskOutcome, TaskSpec, WasmPool};
use weft_codec::batch::pairs;
use weft_codec::key::Key;
use weft_core::artifact::S3Config;
use weft_core::ids::DatasetId;
use weft_core::ids::StageId;
use weft_core::io::{DataLocation, IoError, OutputCommitter, TextSplit, plan_text_splits};
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TrapKind};
use weft_core::plan::{Step, StepKind, StorageLevel};

const REDUCES: u32 = 3;
const SHUFFLE: ShuffleId = ShuffleId(7);

fn pool() -> Arc<WasmPool> {
    static POOL: OnceLock<Arc<WasmPool>> = OnceLock::new();
    POOL.get_or_init(|| Arc::new(WasmPool::new(2).unwrap())).clone()
}

fn executor(shuffle_dir: &Path) -> Executor {
    // Small batches and a small sort budget: many guest calls per task, and
    // the shuffle writer spills.
    let config = ExecutorConfig::default()
        .with_batch_bytes(16 << 10)
        .with_writer(WriterConfig::default().with_memory_budget(64 << 10));
    Executor::new(sandbox().0.clone(), pool(), LocalFetcher::new(shuffle_dir)).with_config(config)
}

fn limits() -> TaskLimits {
    TaskLimits::default()
        .with_memory(128 << 20)
        .with_fuel(50_000_000_000)
        .with_deadline(Duration::from_secs(60))
}

fn step(kind: StepKind, function: &str) -> Step {
    Step::new(kind, function)
}

fn spec(component: &str, partition: u32, input: Input, chain: Vec<Step>, output: OutputSpec) -> TaskSpec {
    let input_keyed = matches!(input, Input::Shuffle { .. } | Input::Join { .. });
    TaskSpec {
        job: "job-executor-test".into(),
        stage: StageId(partition),
        partition,
        attempt: 0,
        component: prepared(component),
        limits: limits(),
        broadcasts: Arc::default(),
        input,
        // Of the functions used here, `one` makes pairs and `add` keeps them.
        output_keyed: chain.last().map_or(input_keyed, |s| ["one", "add"].contains(&s.function.as_str())),
        input_keyed,
        chain,
        output,
        cache: Vec::new(),
    }
}

/// A few hundred KB of text: words of a skewed vocabulary in mixed case, with
/// runs of spaces, tabs and blank lines.
fn text() -> String {
    let vocabulary: Vec<String> = (0..700).map(|i| format!("w{}x{}", i * 7919 % 1000, i % 13)).collect();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::new();
    while out.len() < 300 << 10 {
        let words = next() % 14;
        for i in 0..words {
            let r = next();
            // Squaring skews the distribution: a few words are very common.
            let idx = ((r % 1000) * (r % 1000) / 1000) as usize % vocabulary.len();
            let word = &vocabulary[idx];
            if r % 5 == 0 {
                out.push_str(&word.to_uppercase())
            } else {
                out.push_str(word)
            }
            out.push_str(if i + 1 == words {
                ""
            } else if r % 9 == 0 {
                " \t "
            } else {
                " "
            });
        }
        out.push_str(if next() % 7 == 0 { "\r\n" } else { "\n" });
    }
    out
}

fn native_counts(text: &str) -> HashMap<String, i64> {
    let mut counts = HashMap::new();
    for word in text.split_whitespace().map(str::to_lowercase) {
        *counts.entry(word).or_insert(0) += 1;
    }
    counts
}

struct Fixture {
    dir: tempfile::TempDir,
    text: String,
    location: DataLocation,
    splits: Vec<TextSplit>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = text();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, &text).unwrap();
        std::fs::create_dir(dir.path().join("shuffle")).unwrap();
        let location = DataLocation::parse(&path.display().to_string(), &S3Config::default()).unwrap();
        let splits = plan_text_splits(&location, 4, 128 << 20).await.unwrap();
        assert!(splits.len() >= 4, "{splits:?}");
        Self { dir, text, location, splits }
    }

    fn shuffle_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("shuffle")
    }

    /// Run one map task per split: words paired with 1, shuffled by hash.
    async fn map_stage(&self, exec: &Executor, combiner: MapCombine) -> Vec<MapOutput> {
        let mut outputs = Vec::new();
        for (i, split) in self.splits.iter().enumerate() {
            let output = OutputSpec::Shuffle {
                dir: self.shuffle_dir(),
                shuffle: SHUFFLE,
                map: MapId(i as u32),
                attempt: 0,
                partitioner: Partitioner::hash(REDUCES),
                combiner: combiner.clone(),
            };
            let input = Input::Text {
                location: self.location.clone(),
                split: split.clone(),
                lines: weft_core::io::LineFormat::Utf8,
            };
            let chain = vec![step(StepKind::FlatMap, "split_words"), step(StepKind::Map, "one")];
            let outcome = exec.execute(spec("wordcount", i as u32, input, chain, output)).await;
            assert_eq!(outcome.report.end, EndReason::Finished, "{}", outcome.report.log);
            assert!(outcome.io.input_bytes >= split.len(), "{:?}", outcome.io);
            let Output::Shuffle(map) = outcome.output else { panic!("{:?}", outcome.output) };
            assert_eq!(outcome.io.shuffle_bytes_written, map.bytes_written);
            // The host held a text batch and the sort buffer at its peak.
            assert!(map.peak_buffer_bytes > 0, "{map:?}");
            assert!(outcome.io.peak_host_memory > map.peak_buffer_bytes, "{:?}", outcome.io);
            outputs.push(map);
        }
        outputs
    }
}

fn blocks(maps: &[MapOutput], reduce: u32) -> Vec<BlockLocation> {
    maps.iter()
        .enumerate()
        .map(|(m, out)| BlockLocation {
            block: BlockId::new(SHUFFLE, MapId(m as u32), 0, ReduceId(reduce)),
            size: out.partition_lengths[reduce as usize],
        })
        .collect()
}

/// The (word, count) pairs of a result batch.
fn decode_counts(batch: &[u8]) -> Vec<(String, i64)> {
    pairs(batch)
        .map(|p| {
            let (k, v) = p.unwrap();
            (String::from_utf8(k.to_vec()).unwrap(), i64::from_key_bytes(v).unwrap())
        })
        .collect()
}

fn records(outcome: &TaskOutcome) -> (Vec<u8>, u64) {
    assert_eq!(outcome.report.end, EndReason::Finished, "{}", outcome.report.log);
    match &outcome.output {
        Output::Records { batch, records } => (batch.clone(), *records),
        other => panic!("expected records, got {other:?}"),
    }
}

/// Reduce every partition with `aggregate` and `chain`, and check every count.
async fn reduce_and_compare(
    fx: &Fixture,
    exec: &Executor,
    maps: &[MapOutput],
    aggregate: Aggregate,
    chain: Vec<Step>,
) {
    let mut got = HashMap::new();
    for r in 0..REDUCES {
        let input = Input::Shuffle { blocks: blocks(maps, r), aggregate };
        let outcome = exec
            .execute(spec("wordcount", r, input, chain.clone(), OutputSpec::Result { limit: None }))
            .await;
        let (batch, n) = records(&outcome);
        let counts = decode_counts(&batch);
        assert_eq!(counts.len() as u64, n);
        assert!(
            counts.windows(2).all(|w| w[0].0 < w[1].0),
            "a reduce partition comes out sorted, one per key"
        );
        assert!(outcome.io.shuffle_bytes_read > 0);
        // The host held the fetched blocks for the merge, and the results.
        assert!(outcome.io.peak_host_memory > batch.len() as u64, "{:?}", outcome.io);
        for (word, count) in counts {
            assert!(got.insert(word, count).is_none(), "a word in two partitions");
        }
    }
    assert_eq!(got, native_counts(&fx.text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_with_guest_combine_and_guest_reduce() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let maps = fx.map_stage(&exec, MapCombine::Guest("add".into())).await;
    let words: usize = fx.text.split_whitespace().count();
    let written: u64 = maps.iter().map(|m| m.records_written).sum();
    assert!(written < words as u64 / 2, "the guest combine folds pairs map-side: {written} of {words}");
    // The guest keeps its folds across batches: one pair per word and map task.
    let distinct = native_counts(&fx.text).len() as u64;
    assert!(written <= distinct * maps.len() as u64, "{written} pairs for {distinct} words");
    reduce_and_compare(&fx, &exec, &maps, Aggregate::Merge, vec![step(StepKind::Reduce, "add")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_with_native_sum_and_no_guest_reduce() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let maps = fx.map_stage(&exec, MapCombine::SumI64).await;
    reduce_and_compare(&fx, &exec, &maps, Aggregate::SumI64, vec![]).await;

    // Count: distinct words over all partitions; take: a prefix of the sorted partition.
    let expected = native_counts(&fx.text);
    let mut distinct = 0;
    for r in 0..REDUCES {
        let input = Input::Shuffle { blocks: blocks(&maps, r), aggregate: Aggregate::SumI64 };
        let outcome = exec.execute(spec("wordcount", r, input, vec![], OutputSpec::Count)).await;
        assert_eq!(outcome.report.end, EndReason::Finished);
        let Output::Count(n) = outcome.output else { panic!("{:?}", outcome.output) };
        distinct += n;
    }
    assert_eq!(distinct, expected.len() as u64);

    let input = Input::Shuffle { blocks: blocks(&maps, 1), aggregate: Aggregate::SumI64 };
    let all =
        exec.execute(spec("wordcount", 1, input.clone(), vec![], OutputSpec::Result { limit: None })).await;
    let all = decode_counts(&records(&all).0);
    let take = exec.execute(spec("wordcount", 1, input, vec![], OutputSpec::Result { limit: Some(5) })).await;
    let (batch, n) = records(&take);
    assert_eq!(n, 5);
    let taken = decode_counts(&batch);
    assert_eq!(taken, all[..5]);
    assert!(taken.iter().all(|(w, c)| expected[w] == *c));

    // Join the shuffle with itself: one (count, count) per word; and the
    // partition sorted descending is the ascending one backwards (one pair per
    // map output and word, as no aggregation folds them).
    let input = Input::Join { left: blocks(&maps, 1), right: blocks(&maps, 1) };
    let joined = exec.execute(spec("wordcount", 1, input, vec![], OutputSpec::Result { limit: None })).await;
    let mut sums: HashMap<String, (i64, i64)> = HashMap::new();
    for pair in pairs(&records(&joined).0) {
        let (k, v) = pair.unwrap();
        let sides: Vec<&[u8]> = weft_codec::batch::entries(v).map(Result::unwrap).collect();
        let entry = sums.entry(String::from_utf8(k.to_vec()).unwrap()).or_default();
        entry.0 += i64::from_key_bytes(sides[0]).unwrap();
        entry.1 += i64::from_key_bytes(sides[1]).unwrap();
    }
    let per_map: usize = maps.len();
    for (word, count) in &all {
        // Every left pair meets every right pair of the word.
        let (l, r) = sums[word];
        assert_eq!(l, r);
        assert!(l >= *count && l <= *count * per_map as i64, "{word}: {l} vs {count}");
    }
    let sorted =
        |ascending| Input::Shuffle { blocks: blocks(&maps, 2), aggregate: Aggregate::Sorted { ascending } };
    let up =
        exec.execute(spec("wordcount", 2, sorted(true), vec![], OutputSpec::Result { limit: None })).await;
    let down =
        exec.execute(spec("wordcount", 2, sorted(false), vec![], OutputSpec::Result { limit: None })).await;
    let mut up = decode_counts(&records(&up).0);
    up.reverse();
    let down = decode_counts(&records(&down).0);
    assert_eq!(up.iter().map(|p| &p.0).collect::<Vec<_>>(), down.iter().map(|p| &p.0).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_is_committed_and_reads_back_as_the_counts() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let maps = fx.map_stage(&exec, MapCombine::Guest("add".into())).await;
    let out = fx.dir.path().join("out");
    let committer =
        OutputCommitter::new(DataLocation::parse(&out.display().to_string(), &S3Config::default()).unwrap());
    committer.setup_job().await.unwrap();
    for r in 0..REDUCES {
        let input = Input::Shuffle { blocks: blocks(&maps, r), aggregate: Aggregate::Merge };
        let chain = vec![step(StepKind::Reduce, "add"), step(StepKind::Map, "format")];
        let output = OutputSpec::Text { committer: committer.clone(), partition: r, attempt: 0 };
        let outcome = exec.execute(spec("wordcount", r, input, chain, output)).await;
        assert_eq!(outcome.report.end, EndReason::Finished, "{}", outcome.report.log);
        let Output::Text(part) = outcome.output else { panic!("{:?}", outcome.output) };
        assert_eq!(outcome.io.output_bytes, part.bytes);
    }
    committer.commit_job(REDUCES).await.unwrap();
    assert!(out.join("_SUCCESS").exists());
    let mut got = HashMap::new();
    for r in 0..REDUCES {
        let part = std::fs::read_to_string(out.join(format!("part-{r:05}"))).unwrap();
        for line in part.lines() {
            let (word, n) = line.split_once('\t').unwrap();
            got.insert(word.to_string(), n.parse::<i64>().unwrap());
        }
    }
    assert_eq!(got, native_counts(&fx.text));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_guest_ends_with_its_trap_and_commits_nothing() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let out = fx.dir.path().join("out");
    let committer =
        OutputCommitter::new(DataLocation::parse(&out.display().to_string(), &S3Config::default()).unwrap());
    committer.setup_job().await.unwrap();
    let input = Input::Text {
        location: fx.location.clone(),
        split: fx.splits[0].clone(),
        lines: weft_core::io::LineFormat::Utf8,
    };
    let output = OutputSpec::Text { committer: committer.clone(), partition: 0, attempt: 0 };
    let outcome = exec.execute(spec("hostile", 0, input, vec![step(StepKind::Map, "panic")], output)).await;
    assert!(
        matches!(&outcome.report.end, EndReason::GuestTrap { kind: TrapKind::Panic, .. }),
        "{:?}",
        outcome.report.end
    );
    assert_eq!(outcome.output, Output::None);
    assert!(outcome.report.metering.calls >= 1);
    // No part file was finished, so there is nothing to commit.
    assert!(committer.commit_task(0, 0).await.is_err());
    let err = committer.commit_job(1).await.unwrap_err();
    assert!(matches!(&err, IoError::IncompleteOutput { missing, .. } if missing == &[0]), "{err:?}");
    assert!(!out.exists(), "nothing published, no _SUCCESS, the location rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_input_file_is_a_host_error_naming_it() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let split = fx.splits[1].clone();
    std::fs::remove_file(fx.dir.path().join("in.txt")).unwrap();
    let input = Input::Text { location: fx.location.clone(), split, lines: weft_core::io::LineFormat::Utf8 };
    let chain = vec![step(StepKind::FlatMap, "split_words")];
    let outcome = exec.execute(spec("wordcount", 0, input, chain, OutputSpec::Count)).await;
    let EndReason::HostError { message } = &outcome.report.end else { panic!("{:?}", outcome.report.end) };
    assert!(message.contains("in.txt"), "{message}");
    assert_eq!(outcome.output, Output::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_map_output_is_a_fetch_failure_naming_the_block() {
    let fx = Fixture::new().await;
    let exec = executor(&fx.shuffle_dir());
    let maps = fx.map_stage(&exec, MapCombine::SumI64).await;
    std::fs::remove_file(&maps[1].data_path).unwrap();
    let input = Input::Shuffle { blocks: blocks(&maps, 0), aggregate: Aggregate::SumI64 };
    let outcome = exec.execute(spec("wordcount", 0, input, vec![], OutputSpec::Count)).await;
    let lost = BlockId::new(SHUFFLE, MapId(1), 0, ReduceId(0));
    assert_eq!(outcome.output, Output::FetchFailed { block: lost });
    let EndReason::HostError { message } = &outcome.report.end else { panic!("{:?}", outcome.report.end) };
    assert!(message.contains(&lost.to_string()), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_input_and_an_empty_chain_pass_through() {
    let exec = executor(Path::new("/nonexistent"));
    let mut batch = weft_codec::batch::BatchWriter::new();
    let words = ["b", "a", "b"];
    for w in words {
        batch.push(w.as_bytes());
    }
    let input = Input::Records(batch.finish());
    let chain = vec![step(StepKind::Map, "one")];
    let outcome =
        exec.execute(spec("wordcount", 0, input.clone(), chain, OutputSpec::Result { limit: None })).await;
    let (batch, n) = records(&outcome);
    assert_eq!(n, 3);
    let got: BTreeMap<_, _> = decode_counts(&batch).into_iter().collect();
    assert_eq!(got, BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 1)]));
    let mut plain = spec("wordcount", 0, input, vec![], OutputSpec::Count);
    plain.output_keyed = false;
    let outcome = exec.execute(plain).await;
    assert_eq!(outcome.output, Output::Count(3));
    assert_eq!(outcome.report.metering.records_in, 3);
}

/// Persisted datasets along a chain: the input itself, the words and the
/// pairs are each kept, batch for batch as the chain computed them, while
/// the output is what it would be without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batches_of_persisted_datasets_along_the_chain_are_kept() {
    let exec = executor(Path::new("/nonexistent"));
    let mut batch = weft_codec::batch::BatchWriter::new();
    for line in ["b a", "", "A c b"] {
        batch.push(line.as_bytes());
    }
    let input = batch.finish();
    let chain = vec![step(StepKind::FlatMap, "split_words"), step(StepKind::Map, "one")];
    let put = |dataset, after, keyed| CachePut {
        dataset: DatasetId(dataset),
        partition: 0,
        after,
        level: StorageLevel::MemoryOnly,
        keyed,
    };
    let mut s =
        spec("wordcount", 0, Input::Records(input.clone()), chain, OutputSpec::Result { limit: None });
    // Out of order on purpose: the executor cuts the chain in step order.
    s.cache = vec![put(7, 2, true), put(5, 0, false), put(6, 1, false)];
    let outcome = exec.execute(s).await;
    let (out, n) = records(&outcome);
    assert_eq!(n, 5);
    let kept: Vec<(u32, Vec<u8>)> = outcome
        .cached
        .iter()
        .map(|(p, b)| (p.dataset.0, b.iter().flat_map(|b| b.to_vec()).collect()))
        .collect();
    let mut words = weft_codec::batch::BatchWriter::new();
    for w in ["b", "a", "a", "c", "b"] {
        words.push(w.as_bytes());
    }
    assert_eq!(kept, [(7, out.clone()), (5, input), (6, words.finish())], "in the spec's order");

    // A failed attempt keeps nothing.
    let mut s = spec(
        "wordcount",
        0,
        Input::Records(b"\x01\0\0\0\xff".to_vec()),
        vec![step(StepKind::FlatMap, "split_words")],
        OutputSpec::Count,
    );
    s.cache = vec![put(6, 1, false)];
    let outcome = exec.execute(s).await;
    assert!(!outcome.report.end.is_success(), "{:?}", outcome.report.end);
    assert!(outcome.cached.is_empty());
}

/// A whole-partition step holds every batch until the input ends; a
/// persisted dataset after it is kept from what the flush hands back, and
/// one before it from the batches as they came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_dataset_after_a_whole_partition_step_is_kept_from_its_flush() {
    let exec = executor(Path::new("/nonexistent"));
    let batch = |words: &[&str]| {
        let mut b = weft_codec::batch::BatchWriter::new();
        for w in words {
            b.push(w.as_bytes());
        }
        bytes::Bytes::from(b.finish())
    };
    let input = Input::Batches(vec![batch(&["a", "b"]), batch(&["c"])]);
    let chain = vec![step(StepKind::MapBatch, "weft:partition:partition_size")];
    let put = |dataset, after| CachePut {
        dataset: DatasetId(dataset),
        partition: 3,
        after,
        level: StorageLevel::MemoryAndDisk,
        keyed: false,
    };
    let mut s = spec("ops", 3, input, chain, OutputSpec::Result { limit: None });
    s.cache = vec![put(1, 0), put(2, 1)];
    let outcome = exec.execute(s).await;
    let (out, n) = records(&outcome);
    assert_eq!((out.clone(), n), (batch(&["3\t3"]).to_vec(), 1), "one call over the whole partition");
    let kept: Vec<Vec<u8>> =
        outcome.cached.iter().map(|(_, b)| b.iter().flat_map(|b| b.to_vec()).collect()).collect();
    assert_eq!(kept, [batch(&["a", "b", "c"]).to_vec(), out]);
}
