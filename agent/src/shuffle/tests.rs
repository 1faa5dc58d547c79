//! End-to-end properties of the shuffle: writer → files → reader → aggregations.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use weft_codec::batch::{BatchWriter, pairs};
use weft_codec::key::{EncodeKey, Key};
use weft_core::fold::Fold;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn batch_of(items: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for (k, v) in items {
        w.push(k);
        w.push(v);
    }
    w.finish()
}

fn unbatch(b: &[u8]) -> Pairs {
    pairs(b).map(|p| p.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_, _>>().unwrap()
}

/// Write `items` as one map task, cutting the input into batches of `per_batch` pairs.
fn write_map(
    dir: &Path,
    map: u32,
    items: &[(Vec<u8>, Vec<u8>)],
    partitioner: &Partitioner,
    config: WriterConfig,
    combiner: Option<Combiner>,
    per_batch: usize,
) -> MapOutput {
    let mut w = ShuffleWriter::new(dir, ShuffleId(1), MapId(map), 0, partitioner.clone(), config);
    if let Some(c) = combiner {
        w = w.with_combiner(c);
    }
    for chunk in items.chunks(per_batch.max(1)) {
        w.write(&batch_of(chunk)).unwrap();
    }
    w.finish().unwrap()
}

fn blocks_of(out: &MapOutput) -> Vec<Pairs> {
    let index = IndexFile::open(&out.index_path, &out.data_path).unwrap();
    (0..index.partitions()).map(|p| unbatch(&read_block(&out.data_path, &index, p).unwrap())).collect()
}

fn pair_strategy(max: usize) -> impl Strategy<Value = Pairs> {
    // Few distinct short keys, so keys repeat and spill runs overlap.
    let key = proptest::collection::vec(0u8..4, 0..3);
    let value = proptest::collection::vec(any::<u8>(), 0..12);
    proptest::collection::vec((key, value), 0..max)
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::None), Just(Compression::Lz4)]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn blocks_partition_sort_and_keep_every_pair(
        items in pair_strategy(300),
        parts in 1u32..7,
        budget in 64usize..1024,
        per_batch in 1usize..40,
        codec in compression(),
        ranged in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let partitioner = if ranged {
            let sample = items.iter().map(|(k, _)| (k.clone(), 1.0)).collect();
            Partitioner::range(weft_core::range::range_bounds(sample, parts), parts, false).unwrap()
        } else {
            Partitioner::hash(parts)
        };
        let config = WriterConfig::default().with_memory_budget(budget).with_compression(codec).with_chunk_bytes(64);
        let out = write_map(dir.path(), 0, &items, &partitioner, config, None, per_batch);
        let blocks = blocks_of(&out);
        prop_assert_eq!(blocks.len() as u32, partitioner.partitions());
        prop_assert_eq!(out.records_written, items.len() as u64);
        prop_assert_eq!(out.bytes_written, std::fs::metadata(&out.data_path).unwrap().len());
        let lengths: u64 = out.partition_lengths.iter().sum();
        prop_assert_eq!(lengths, out.bytes_written);
        if items.len() * 30 > budget * 2 {
            prop_assert!(out.spill_bytes > 0, "a tiny budget spills");
        }
        for (p, block) in blocks.iter().enumerate() {
            prop_assert!(block.windows(2).all(|w| w[0].0 <= w[1].0), "block {} sorted", p);
            for (k, _) in block {
                prop_assert_eq!(partitioner.partition(k), p as u32);
            }
        }
        // Same multiset, and equal keys keep arrival order (stability across spills).
        let mut want: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, v) in &items { want.entry(k.clone()).or_default().push(v.clone()); }
        let mut got: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for (k, v) in blocks.into_iter().flatten() { got.entry(k).or_default().push(v); }
        prop_assert_eq!(got, want);
        // Only the data and index remain: spill and temp files are gone.
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        prop_assert_eq!(names, vec!["shuffle_1_0_0.data".to_string(), "shuffle_1_0_0.index".to_string()]);
    }

    /// A map output written straight from the sort buffer (nothing spilled)
    /// is the one merged from spilled runs: the same bytes uncompressed (lz4
    /// frames depend on how a block was cut into writes, so there the same
    /// blocks), pairs larger than a chunk included.
    #[test]
    fn straight_and_merged_map_outputs_are_the_same_bytes(
        items in pair_strategy(200),
        big in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 100..300), 0..3),
        parts in 1u32..5,
        codec in compression(),
    ) {
        let mut items = items;
        items.extend(big.into_iter().enumerate().map(|(i, v)| (vec![i as u8], v)));
        let written = |budget: usize| {
            let dir = tempfile::tempdir().unwrap();
            let config = WriterConfig::default().with_memory_budget(budget).with_compression(codec).with_chunk_bytes(64);
            let out = write_map(dir.path(), 0, &items, &Partitioner::hash(parts), config, None, 9);
            let files = (std::fs::read(&out.data_path).unwrap(), std::fs::read(&out.index_path).unwrap());
            (out.spill_bytes, out.records_written, (files, blocks_of(&out)))
        };
        let (straight_spilled, straight_records, straight) = written(1 << 20);
        let (merged_spilled, merged_records, merged) = written(64);
        prop_assert_eq!(straight_spilled, 0);
        prop_assert!(items.len() < 3 || merged_spilled > 0, "a 64-byte budget spills");
        prop_assert_eq!(straight_records, merged_records);
        prop_assert!(straight.1 == merged.1, "the blocks differ");
        if codec == Compression::None {
            prop_assert!(straight.0 == merged.0, "the data and index files differ");
        }
    }

    #[test]
    fn sum_combiner_matches_btreemap(
        items in proptest::collection::vec((proptest::collection::vec(0u8..5, 0..2), any::<i64>()), 0..300),
        parts in 1u32..5,
        budget in 64usize..600,
        codec in compression(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let pairs: Pairs = items.iter().map(|(k, v)| (k.clone(), v.to_key_bytes())).collect();
        let config = WriterConfig::default().with_memory_budget(budget).with_compression(codec).with_chunk_bytes(32);
        let out = write_map(dir.path(), 0, &pairs, &Partitioner::hash(parts), config, Some(Combiner::SumI64), 7);
        let mut want: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (k, v) in &items { let e = want.entry(k.clone()).or_default(); *e = e.wrapping_add(*v); }
        let mut got = BTreeMap::new();
        for block in blocks_of(&out) {
            prop_assert!(block.windows(2).all(|w| w[0].0 < w[1].0), "one pair per key per block");
            for (k, v) in block { prop_assert!(got.insert(k, i64::from_key_bytes(&v).unwrap()).is_none()); }
        }
        prop_assert_eq!(out.records_written, want.len() as u64);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn native_folds_match_btreemap(
        items in proptest::collection::vec((proptest::collection::vec(0u8..5, 0..2), -1000i64..1000), 0..300),
        budget in 64usize..600,
    ) {
        // Integers and integer-valued floats: the f64 sum is exact in any order.
        for (fold, float) in [(Fold::Min, false), (Fold::Max, false), (Fold::SumF64, true), (Fold::Min, true), (Fold::Max, true)] {
            let value = |v: i64| if float { (v as f64).to_key_bytes() } else { v.to_key_bytes() };
            let pairs: Pairs = items.iter().map(|(k, v)| (k.clone(), value(*v))).collect();
            let dir = tempfile::tempdir().unwrap();
            let config = WriterConfig::default().with_memory_budget(budget).with_chunk_bytes(32);
            let out = write_map(dir.path(), 0, &pairs, &Partitioner::hash(3), config, Some(Combiner::Fold(fold)), 7);
            let mut want: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for (k, v) in &items {
                let e = want.entry(k.clone()).or_insert(*v);
                *e = match fold { Fold::Min => (*e).min(*v), Fold::Max => (*e).max(*v), Fold::SumF64 => *e };
            }
            if fold == Fold::SumF64 {
                want = BTreeMap::new();
                for (k, v) in &items { *want.entry(k.clone()).or_default() += v; }
            }
            let want: Pairs = want.into_iter().map(|(k, v)| (k, value(v))).collect();
            // Map side: one pair per key per block; reduce side: the blocks folded again.
            let blocks = blocks_of(&out);
            prop_assert!(blocks.iter().all(|b| b.windows(2).all(|w| w[0].0 < w[1].0)));
            let mut got: Pairs = Vec::new();
            for block in &blocks {
                let doubled: Pairs = block.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
                let folded: Pairs = aggregate::fold([Ok::<_, ShuffleError>(batch_of(&doubled))], 64, Native::Fold(fold))
                    .flat_map(|b| unbatch(&b.unwrap()))
                    .collect();
                let twice = |v: &Vec<u8>| (f64::from_key_bytes(v).unwrap() * 2.0).to_key_bytes();
                let expected: Pairs = match fold {
                    Fold::SumF64 => block.iter().map(|(k, v)| (k.clone(), twice(v))).collect(),
                    Fold::Min | Fold::Max => block.clone(),
                };
                prop_assert_eq!(folded, expected);
                got.extend(block.iter().cloned());
            }
            got.sort();
            prop_assert_eq!(got, want, "{:?} over {}", fold, if float { "f64" } else { "i64" });
        }
    }

    #[test]
    fn custom_combiner_sees_keys_in_arrival_order(items in pair_strategy(200), budget in 64usize..400) {
        // "Keep the first value" is only right if runs and merges are stable.
        let first = |batch: Vec<u8>| -> Result<Vec<u8>, std::convert::Infallible> {
            let mut out: Pairs = Vec::new();
            for (k, v) in unbatch(&batch) {
                if out.last().is_none_or(|(lk, _)| *lk != k) { out.push((k, v)); }
            }
            Ok(batch_of(&out))
        };
        let dir = tempfile::tempdir().unwrap();
        let config = WriterConfig::default().with_memory_budget(budget).with_chunk_bytes(16);
        let out = write_map(dir.path(), 0, &items, &Partitioner::hash(3), config, Some(Combiner::custom(first)), 5);
        let mut want: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (k, v) in &items { want.entry(k.clone()).or_insert_with(|| v.clone()); }
        let got: BTreeMap<Vec<u8>, Vec<u8>> = blocks_of(&out).into_iter().flatten().collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn reader_merges_many_maps(
        maps in proptest::collection::vec(pair_strategy(60), 1..12),
        parts in 1u32..4,
        in_flight in 1usize..400,
        target in 1usize..200,
        budget in 2usize..4000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let spill = tempfile::tempdir().unwrap();
        let partitioner = Partitioner::hash(parts);
        let config = WriterConfig::default().with_memory_budget(256).with_compression(Compression::Lz4);
        let outputs: Vec<MapOutput> = maps.iter().enumerate()
            .map(|(m, items)| write_map(dir.path(), m as u32, items, &partitioner, config.clone(), None, 9))
            .collect();
        let reader = ShuffleReader::new(
            LocalFetcher::new(dir.path()),
            ReaderConfig::default()
                .with_max_bytes_in_flight(in_flight)
                .with_max_requests_in_flight(3)
                .with_target_batch_bytes(target)
                .with_memory_budget(budget),
        ).with_spill_dir(spill.path());
        let rt = runtime();
        for r in 0..parts {
            let blocks: Vec<BlockLocation> = outputs.iter().enumerate().map(|(m, o)| BlockLocation {
                block: BlockId::new(ShuffleId(1), MapId(m as u32), 0, ReduceId(r)),
                size: o.partition_lengths[r as usize],
            }).collect();
            let batches: Vec<Vec<u8>> = rt.block_on(reader.read(blocks)).unwrap().collect::<Result<_, _>>().unwrap();
            let mut seen_keys: Vec<Vec<u8>> = Vec::new();
            let mut got: Pairs = Vec::new();
            for b in &batches {
                let ps = unbatch(b);
                // A key never continues into the next batch.
                prop_assert!(seen_keys.last() < ps.first().map(|(k, _)| k));
                seen_keys.extend(ps.iter().map(|(k, _)| k.clone()));
                got.extend(ps);
            }
            prop_assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
            // Ties come out in map order, each map's pairs in arrival order,
            // whichever blocks were spilled.
            let mut want: Pairs = maps.iter().flatten().filter(|(k, _)| partitioner.partition(k) == r).cloned().collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(got, want);
            prop_assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0, "runs are deleted");
        }
    }

    #[test]
    fn aggregations_match_naive_references(
        left in pair_strategy(60),
        right in pair_strategy(60),
        cut in 1usize..10,
        target in 1usize..100,
    ) {
        let sorted = |mut v: Pairs| { v.sort_by(|a, b| a.0.cmp(&b.0)); v };
        let (left, right) = (sorted(left), sorted(right));
        let batches = |v: &Pairs| -> Vec<Result<Vec<u8>, ShuffleError>> { v.chunks(cut).map(|c| Ok(batch_of(c))).collect() };
        let run = |it: Box<dyn Iterator<Item = Result<Vec<u8>, ShuffleError>>>| -> Pairs {
            it.flat_map(|b| unbatch(&b.unwrap())).collect()
        };
        let keys = |v: &Pairs| -> Vec<Vec<u8>> { let mut k: Vec<_> = v.iter().map(|p| p.0.clone()).collect(); k.dedup(); k };
        let frame = |vs: &[&Vec<u8>]| { let mut w = BatchWriter::new(); for v in vs { w.push(v); } w.finish() };

        let mut want_group = Vec::new();
        for k in keys(&left) {
            let vs: Vec<&Vec<u8>> = left.iter().filter(|p| p.0 == k).map(|p| &p.1).collect();
            want_group.push((k, frame(&vs)));
        }
        prop_assert_eq!(run(Box::new(aggregate::group_values(batches(&left), target))), want_group);

        let mut want_join = Vec::new();
        for (lk, lv) in &left {
            for (rk, rv) in &right {
                if lk == rk { want_join.push((lk.clone(), frame(&[lv, rv]))); }
            }
        }
        prop_assert_eq!(run(Box::new(aggregate::join(batches(&left), batches(&right), target))), want_join);

        let mut all_keys = keys(&left);
        all_keys.extend(keys(&right));
        all_keys.sort();
        all_keys.dedup();
        let want_cogroup: Pairs = all_keys.into_iter().map(|k| {
            let ls: Vec<&Vec<u8>> = left.iter().filter(|p| p.0 == k).map(|p| &p.1).collect();
            let rs: Vec<&Vec<u8>> = right.iter().filter(|p| p.0 == k).map(|p| &p.1).collect();
            let v = frame(&[&frame(&ls), &frame(&rs)]);
            (k, v)
        }).collect();
        prop_assert_eq!(run(Box::new(aggregate::cogroup(batches(&left), batches(&right), target))), want_cogroup);

        let nums: Pairs = left.iter().map(|(k, v)| (k.clone(), (v.len() as i64 - 5).to_key_bytes())).collect();
        let mut want_sum: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        for (k, v) in &left { *want_sum.entry(k.clone()).or_default() += v.len() as i64 - 5; }
        let want_sum: Pairs = want_sum.into_iter().map(|(k, s)| (k, s.to_key_bytes())).collect();
        prop_assert_eq!(run(Box::new(aggregate::sum_i64(batches(&nums), target))), want_sum);
    }
}

fn sample_output(dir: &Path, codec: Compression) -> MapOutput {
    let items: Pairs = (0..200i64).map(|i| ((i % 17).to_key_bytes(), i.to_key_bytes())).collect();
    let config = WriterConfig::default().with_memory_budget(512).with_compression(codec);
    write_map(dir, 0, &items, &Partitioner::hash(4), config, None, 10)
}

#[test]
fn flipped_data_byte_is_a_corrupt_block_and_a_fetch_failure() {
    for codec in [Compression::None, Compression::Lz4] {
        let dir = tempfile::tempdir().unwrap();
        let out = sample_output(dir.path(), codec);
        let index = IndexFile::open(&out.index_path, &out.data_path).unwrap();
        let victim = 2u32;
        let at = index.block_range(victim).unwrap().start as usize + 5;
        let mut data = std::fs::read(&out.data_path).unwrap();
        data[at] ^= 0x40;
        std::fs::write(&out.data_path, &data).unwrap();
        match read_block(&out.data_path, &index, victim) {
            Err(ShuffleError::CorruptBlock { path, partition, .. }) => {
                assert_eq!(path, out.data_path);
                assert_eq!(partition, victim);
            }
            other => panic!("expected CorruptBlock, got {other:?}"),
        }
        assert!(read_block(&out.data_path, &index, 1).is_ok(), "other blocks still read");

        let block = BlockId::new(ShuffleId(1), MapId(0), 0, ReduceId(victim));
        let reader = ShuffleReader::new(LocalFetcher::new(dir.path()), ReaderConfig::default());
        let err = runtime().block_on(reader.read(vec![BlockLocation { block, size: 100 }])).unwrap_err();
        let ReadError::FetchFailed { block: failed, reason } = err else {
            panic!("expected FetchFailed, got {err:?}")
        };
        assert_eq!(failed, block);
        assert!(matches!(reason, FetchError::Shuffle(ShuffleError::CorruptBlock { .. })), "{reason:?}");
    }
}

#[test]
fn truncated_or_missing_index_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let out = sample_output(dir.path(), Compression::None);
    let bytes = std::fs::read(&out.index_path).unwrap();
    std::fs::write(&out.index_path, &bytes[..bytes.len() - 3]).unwrap();
    let err = IndexFile::open(&out.index_path, &out.data_path).unwrap_err();
    assert!(
        matches!(err, ShuffleError::CorruptIndex { reason: IndexDefect::Length { .. }, ref path } if *path == out.index_path),
        "{err:?}"
    );
    std::fs::write(&out.index_path, &bytes).unwrap();
    // A data file cut short no longer matches its index.
    let data = std::fs::read(&out.data_path).unwrap();
    std::fs::write(&out.data_path, &data[..data.len() - 1]).unwrap();
    let err = IndexFile::open(&out.index_path, &out.data_path).unwrap_err();
    assert!(
        matches!(err, ShuffleError::CorruptIndex { reason: IndexDefect::DataLength { .. }, .. }),
        "{err:?}"
    );
    std::fs::remove_file(&out.index_path).unwrap();
    let block = BlockId::new(ShuffleId(1), MapId(0), 0, ReduceId(0));
    let err = runtime().block_on(LocalFetcher::new(dir.path()).fetch(&block)).unwrap_err();
    assert!(matches!(err, FetchError::Missing { .. }), "{err:?}");
}

/// Two attempts of one map task on one agent (a lost agent's attempt that
/// ran on beside its replacement, or a speculative copy placed there) write
/// their own files, and a reader reads the attempt its block names, whichever
/// finished last; an attempt that wrote nothing is a missing map output.
#[test]
fn two_attempts_of_a_map_task_write_their_own_files_and_a_reader_reads_the_one_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let write = |attempt: u32, value: &[u8]| {
        let mut w = ShuffleWriter::new(
            dir.path(),
            ShuffleId(1),
            MapId(0),
            attempt,
            Partitioner::hash(1),
            WriterConfig::default(),
        );
        w.write(&batch_of(&[(b"k".to_vec(), value.to_vec())])).unwrap();
        w.finish().unwrap()
    };
    // The replacement (attempt 1) finishes first; the original (attempt 0)
    // runs on and finishes after it, with blocks of another length.
    let replacement = write(1, b"attempt 1");
    let original = write(0, b"attempt 0, which ran on");
    assert_ne!(replacement.data_path, original.data_path);
    assert_ne!(replacement.index_path, original.index_path);
    assert_ne!(replacement.partition_lengths, original.partition_lengths);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["shuffle_1_0_0.data", "shuffle_1_0_0.index", "shuffle_1_0_1.data", "shuffle_1_0_1.index"]
    );

    // One fetcher, its index cache shared by both reads.
    let fetcher = LocalFetcher::new(dir.path());
    let rt = runtime();
    let read = |attempt: u32, out: &MapOutput| {
        let block = BlockId::new(ShuffleId(1), MapId(0), attempt, ReduceId(0));
        let reader = ShuffleReader::new(fetcher.clone(), ReaderConfig::default());
        let merged = rt.block_on(reader.read(vec![BlockLocation { block, size: out.partition_lengths[0] }]));
        merged.map(|m| m.flat_map(|b| unbatch(&b.unwrap())).collect::<Pairs>())
    };
    assert_eq!(read(0, &original).unwrap(), [(b"k".to_vec(), b"attempt 0, which ran on".to_vec())]);
    assert_eq!(read(1, &replacement).unwrap(), [(b"k".to_vec(), b"attempt 1".to_vec())]);

    let never = BlockId::new(ShuffleId(1), MapId(0), 2, ReduceId(0));
    match read(2, &replacement) {
        Err(ReadError::FetchFailed { block, reason: FetchError::Missing { path } }) => {
            assert_eq!(block, never);
            assert!(path.ends_with("shuffle_1_0_2.index"), "{}", path.display());
        }
        other => panic!("expected a missing map output, got {other:?}"),
    }
}

#[test]
fn malformed_input_is_rejected_whole_and_abandoned_writer_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ShuffleWriter::new(
        dir.path(),
        ShuffleId(1),
        MapId(0),
        0,
        Partitioner::hash(2),
        WriterConfig::default().with_memory_budget(64),
    );
    let good = batch_of(&[(b"k".to_vec(), b"v".to_vec())]);
    let mut odd = BatchWriter::new();
    odd.push(b"k");
    assert!(matches!(w.write(&odd.finish()), Err(ShuffleError::Malformed { .. })));
    assert!(matches!(w.write(&good[..good.len() - 1]), Err(ShuffleError::Malformed { .. })));
    for _ in 0..50 {
        w.write(&good).unwrap();
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().count() > 0, "spilled");
    drop(w); // a crashed task: no finish
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn empty_map_output_reads_as_empty_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let out = write_map(dir.path(), 0, &[], &Partitioner::hash(3), WriterConfig::default(), None, 1);
    assert_eq!(out.partition_lengths, vec![0, 0, 0]);
    assert_eq!(out.records_written, 0);
    assert!(blocks_of(&out).iter().all(Vec::is_empty));
}

/// A fetcher serving blocks from memory, tracking the bytes in flight, and
/// failing one block.
struct TestFetcher {
    blocks: HashMap<BlockId, Vec<u8>>,
    fail: Option<BlockId>,
    in_flight: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl BlockFetcher for TestFetcher {
    async fn fetch(&self, block: &BlockId) -> Result<bytes::Bytes, FetchError> {
        use std::sync::atomic::Ordering::SeqCst;
        let data = self.blocks.get(block).cloned().unwrap_or_default();
        let now = self.in_flight.fetch_add(data.len(), SeqCst) + data.len();
        self.peak.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        self.in_flight.fetch_sub(data.len(), SeqCst);
        if self.fail == Some(*block) {
            return Err(FetchError::Missing { path: "agent gone".into() });
        }
        Ok(data.into())
    }
}

#[test]
fn reader_bounds_bytes_in_flight_and_names_the_failed_block() {
    let block = |m: u32| BlockId::new(ShuffleId(9), MapId(m), 0, ReduceId(0));
    let blocks: HashMap<BlockId, Vec<u8>> = (0..40u32)
        .map(|m| {
            let items: Pairs = (0..(m % 7 + 1)).map(|i| (vec![i as u8], m.to_key_bytes())).collect();
            (block(m), batch_of(&items))
        })
        .collect();
    let locations: Vec<BlockLocation> =
        (0..40).map(|m| BlockLocation { block: block(m), size: blocks[&block(m)].len() as u64 }).collect();
    let biggest = locations.iter().map(|l| l.size as usize).max().unwrap();
    let budget = biggest * 3;
    let fetcher = TestFetcher { blocks, fail: None, in_flight: 0.into(), peak: 0.into() };
    let reader = ShuffleReader::new(fetcher, ReaderConfig::default().with_max_bytes_in_flight(budget));
    let rt = runtime();
    let merged: Vec<Vec<u8>> =
        rt.block_on(reader.read(locations.clone())).unwrap().collect::<Result<_, _>>().unwrap();
    let total: usize = merged.iter().map(|b| unbatch(b).len()).sum();
    assert_eq!(total, (0..40u32).map(|m| (m % 7 + 1) as usize).sum::<usize>());
    let peak = reader.fetcher().peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!(peak <= budget, "peak {peak} > budget {budget}");
    assert!(peak > biggest, "fetches overlapped (peak {peak})");

    let mut failing = reader.into_fetcher();
    failing.fail = Some(block(17));
    let reader = ShuffleReader::new(failing, ReaderConfig::default().with_max_bytes_in_flight(budget));
    match rt.block_on(reader.read(locations)) {
        Err(ReadError::FetchFailed { block: b, reason: FetchError::Missing { .. } }) => {
            assert_eq!(b, block(17))
        }
        other => panic!("expected FetchFailed, got {other:?}"),
    }
}

#[test]
fn a_sum_batch_with_a_bad_value_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ShuffleWriter::new(
        dir.path(),
        ShuffleId(1),
        MapId(0),
        0,
        Partitioner::hash(1),
        WriterConfig::default(),
    )
    .with_combiner(Combiner::SumI64);
    w.write(&batch_of(&[(b"a".to_vec(), 1i64.to_key_bytes())])).unwrap();
    let bad = batch_of(&[(b"a".to_vec(), 5i64.to_key_bytes()), (b"b".to_vec(), b"xyz".to_vec())]);
    assert!(matches!(w.write(&bad), Err(ShuffleError::NotI64 { len: 3 })));
    let out = w.finish().unwrap();
    assert_eq!(blocks_of(&out), [vec![(b"a".to_vec(), 1i64.to_key_bytes())]]);
}

/// A reduce partition 8× the reader's memory budget: read within the budget
/// (plus one block, the unit of a fetch), spilled and merged, in the same
/// order as a read that holds everything.
#[test]
fn a_partition_many_times_the_budget_is_read_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let spill = tempfile::tempdir().unwrap();
    let partitioner = Partitioner::hash(1);
    let outputs: Vec<MapOutput> = (0..64u32)
        .map(|m| {
            let items: Pairs = (0..1000u32)
                .map(|i| ((i.wrapping_mul(2_654_435_761) % 5000).to_key_bytes(), vec![m as u8; 60]))
                .collect();
            write_map(dir.path(), m, &items, &partitioner, WriterConfig::default(), None, 100)
        })
        .collect();
    let blocks: Vec<BlockLocation> = outputs
        .iter()
        .enumerate()
        .map(|(m, o)| BlockLocation {
            block: BlockId::new(ShuffleId(1), MapId(m as u32), 0, ReduceId(0)),
            size: o.partition_lengths[0],
        })
        .collect();
    let total: u64 = blocks.iter().map(|b| b.size).sum();
    let largest = blocks.iter().map(|b| b.size).max().unwrap();
    let budget = (total / 8) as usize;
    let rt = runtime();
    let read = |config: ReaderConfig| {
        let reader =
            ShuffleReader::new(LocalFetcher::new(dir.path()), config.with_target_batch_bytes(16 << 10))
                .with_spill_dir(spill.path());
        let merged = rt.block_on(reader.read(blocks.clone())).unwrap();
        let (peak, spilled) = (merged.held_bytes(), merged.spilled_bytes());
        let pairs: Pairs = merged.flat_map(|b| unbatch(&b.unwrap())).collect();
        (pairs, peak, spilled)
    };
    let (all, held, none) = read(ReaderConfig::default().with_memory_budget(1 << 30));
    assert_eq!((all.len(), none), (64_000, 0));
    assert!(held >= total, "a read within budget holds every block: {held} < {total}");
    let (got, peak, spilled) = read(ReaderConfig::default().with_memory_budget(budget));
    assert!(got == all, "the spilled read gives the same pairs in the same order");
    assert!(spilled >= total, "every block went through a run: {spilled} < {total}");
    assert!(peak <= budget as u64 + largest, "peak {peak} > budget {budget} + a block {largest}");
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0, "runs are deleted");
}
