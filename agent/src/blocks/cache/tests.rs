use super::*;
use weft_core::ids::Incarnation;

const JOB: JobId = JobId { incarnation: Incarnation(1), seq: 1 };

fn key(dataset: u32, partition: u32) -> CacheKey {
    CacheKey { job: JOB, dataset: DatasetId(dataset), partition }
}

/// Two batches of `mib` MiB together.
fn batches(mib: u64, fill: u8) -> Vec<Bytes> {
    let half = (mib * MIB / 2) as usize;
    vec![Bytes::from(vec![fill; half]), Bytes::from(vec![fill.wrapping_add(1); half])]
}

fn store(budget_mib: usize) -> (tempfile::TempDir, CacheStore, Arc<Semaphore>) {
    let dir = tempfile::tempdir().unwrap();
    let budget = Arc::new(Semaphore::new(budget_mib));
    let store = CacheStore::new(dir.path(), Arc::clone(&budget));
    (dir, store, budget)
}

#[test]
fn memory_partitions_take_permits_from_the_agents_budget_and_give_them_back() {
    let (_dir, store, budget) = store(10);
    let kept = store.put(key(1, 0), StorageLevel::MemoryOnly, batches(3, 7)).unwrap();
    assert_eq!(kept, Some(Kept { bytes: 3 * MIB, memory: true }));
    assert_eq!(budget.available_permits(), 7, "3 MiB held for the partition");
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 7));
    assert_eq!(store.remove(JOB, Some(DatasetId(1))).unwrap(), 1);
    assert_eq!(budget.available_permits(), 10, "unpersisting gives the memory back");
    assert_eq!(store.get(&key(1, 0)).unwrap(), None);
}

#[test]
fn the_least_recently_used_partition_of_another_dataset_is_evicted_first() {
    let (_dir, store, _budget) = store(8);
    store.put(key(1, 0), StorageLevel::MemoryAndDisk, batches(3, 1)).unwrap();
    store.put(key(2, 0), StorageLevel::MemoryOnly, batches(3, 2)).unwrap();
    // Touch dataset 1 so that dataset 2's partition is the oldest.
    store.get(&key(1, 0)).unwrap();
    let kept = store.put(key(3, 0), StorageLevel::MemoryOnly, batches(4, 3)).unwrap();
    assert_eq!(kept, Some(Kept { bytes: 4 * MIB, memory: true }));
    assert_eq!(store.get(&key(2, 0)).unwrap(), None, "MEMORY_ONLY: dropped");
    assert_eq!(store.take_dropped(), [key(2, 0)]);
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 1), "still in memory");
    // Dataset 3 needs room again: dataset 1 goes to disk and is still readable.
    store.put(key(3, 1), StorageLevel::MemoryOnly, batches(4, 4)).unwrap();
    assert!(store.path(&key(1, 0)).exists());
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 1), "read back from disk");
    assert_eq!(store.memory_used(), 8 * MIB);
}

#[test]
fn a_dataset_never_evicts_itself_and_what_does_not_fit_goes_by_its_level() {
    let (_dir, store, _budget) = store(4);
    store.put(key(1, 0), StorageLevel::MemoryOnly, batches(3, 1)).unwrap();
    assert_eq!(store.put(key(1, 1), StorageLevel::MemoryOnly, batches(3, 2)).unwrap(), None);
    assert!(store.get(&key(1, 0)).unwrap().is_some(), "its own partition was not evicted");
    let kept = store.put(key(1, 2), StorageLevel::MemoryAndDisk, batches(3, 3)).unwrap();
    assert_eq!(kept, Some(Kept { bytes: 3 * MIB, memory: false }));
    let kept = store.put(key(5, 0), StorageLevel::DiskOnly, batches(1, 4)).unwrap();
    assert_eq!(kept, Some(Kept { bytes: MIB, memory: false }));
    assert_eq!(store.get(&key(5, 0)).unwrap().unwrap(), batches(1, 4));
}

#[test]
fn a_partition_that_cannot_fit_evicts_nothing() {
    let (_dir, store, _budget) = store(4);
    store.put(key(1, 0), StorageLevel::MemoryOnly, batches(2, 1)).unwrap();
    assert_eq!(store.put(key(2, 0), StorageLevel::MemoryOnly, batches(6, 2)).unwrap(), None);
    assert!(store.get(&key(1, 0)).unwrap().is_some(), "kept: evicting it would not have made room");
    assert!(store.take_dropped().is_empty());
}

#[test]
fn execution_takes_memory_back_from_storage() {
    let (_dir, store, budget) = store(6);
    store.put(key(1, 0), StorageLevel::MemoryAndDisk, batches(2, 1)).unwrap();
    store.put(key(2, 0), StorageLevel::MemoryOnly, batches(2, 2)).unwrap();
    assert_eq!(budget.available_permits(), 2);
    store.make_room(5).unwrap();
    assert_eq!(budget.available_permits(), 6, "both evicted");
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(2, 1), "on disk now");
    assert_eq!(store.get(&key(2, 0)).unwrap(), None);
}

#[test]
fn a_corrupt_partition_file_is_a_miss_and_is_deleted() {
    let (_dir, store, _budget) = store(4);
    store.put(key(1, 0), StorageLevel::DiskOnly, batches(1, 9)).unwrap();
    let path = store.path(&key(1, 0));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(store.get(&key(1, 0)).unwrap(), None);
    assert!(!path.exists(), "the corrupt file is gone");
    store.put(key(1, 1), StorageLevel::DiskOnly, batches(1, 9)).unwrap();
    std::fs::write(store.path(&key(1, 1)), b"\x05\0\0").unwrap();
    assert_eq!(store.get(&key(1, 1)).unwrap(), None, "a truncated header is corrupt too");
}

#[test]
fn removing_a_job_forgets_memory_and_disk() {
    let (_dir, store, budget) = store(4);
    store.put(key(1, 0), StorageLevel::MemoryOnly, batches(1, 1)).unwrap();
    store.put(key(2, 0), StorageLevel::DiskOnly, batches(1, 2)).unwrap();
    let other = CacheKey { job: JobId { incarnation: Incarnation(1), seq: 2 }, ..key(1, 0) };
    store.put(other, StorageLevel::MemoryOnly, batches(1, 3)).unwrap();
    assert_eq!(store.remove(JOB, None).unwrap(), 2);
    assert!(!store.path(&key(2, 0)).exists());
    assert!(store.get(&other).unwrap().is_some(), "another job's partition stays");
    assert_eq!(budget.available_permits(), 3);
}

mod model {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Put { dataset: u32, partition: u32, kib: u64, level: u8 },
        Get { dataset: u32, partition: u32 },
        MakeRoom { mib: u32 },
        Unpersist { dataset: u32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..3, 0u32..4, 1u64..3000, 0u8..3).prop_map(|(dataset, partition, kib, level)| Op::Put {
                dataset,
                partition,
                kib,
                level
            }),
            (0u32..3, 0u32..4).prop_map(|(dataset, partition)| Op::Get { dataset, partition }),
            (0u32..6).prop_map(|mib| Op::MakeRoom { mib }),
            (0u32..3).prop_map(|dataset| Op::Unpersist { dataset }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever happens, what a read returns is exactly what was put (or
        /// nothing), memory never exceeds the budget, and the permits the store
        /// holds are exactly its bytes rounded up to MiB.
        #[test]
        fn reads_return_what_was_put_and_the_budget_holds(ops in proptest::collection::vec(op(), 1..40)) {
            let (_dir, store, budget) = store(6);
            let mut put: HashMap<(u32, u32), Vec<Bytes>> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put { dataset, partition, kib, level } => {
                        let level = [StorageLevel::MemoryOnly, StorageLevel::MemoryAndDisk, StorageLevel::DiskOnly]
                            [level as usize];
                        let b = vec![Bytes::from(vec![(dataset * 7 + partition) as u8; (kib << 10) as usize])];
                        match store.put(key(dataset, partition), level, b.clone()).unwrap() {
                            Some(_) => { put.insert((dataset, partition), b); }
                            None => { put.remove(&(dataset, partition)); }
                        }
                    }
                    Op::Get { dataset, partition } => {
                        if let Some(got) = store.get(&key(dataset, partition)).unwrap() {
                            prop_assert_eq!(Some(&got), put.get(&(dataset, partition)));
                        }
                    }
                    Op::MakeRoom { mib } => store.make_room(mib).unwrap(),
                    Op::Unpersist { dataset } => {
                        store.remove(JOB, Some(DatasetId(dataset))).unwrap();
                        put.retain(|(d, _), _| *d != dataset);
                        for p in 0..4 {
                            prop_assert_eq!(store.get(&key(dataset, p)).unwrap(), None);
                        }
                    }
                }
                let used = store.memory_used();
                prop_assert!(used <= 6 * MIB, "{} bytes in memory", used);
                let held = 6 - budget.available_permits() as u64;
                prop_assert_eq!(held, used.div_ceil(MIB));
            }
        }
    }
}

#[test]
fn a_memory_and_disk_partition_read_from_disk_is_kept_in_memory_too_when_there_is_room() {
    let (_dir, store, budget) = store(8);
    store.put(key(1, 0), StorageLevel::MemoryAndDisk, batches(3, 1)).unwrap();
    store.put(key(2, 0), StorageLevel::MemoryOnly, batches(6, 2)).unwrap();
    assert!(store.path(&key(1, 0)).exists(), "evicted to disk to make room");
    // No room: read from disk, and it stays there (nothing is evicted for it).
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 1));
    assert_eq!((store.memory_used(), store.disk_used()), (6 * MIB, 3 * MIB));
    assert!(store.get(&key(2, 0)).unwrap().is_some(), "not evicted for the read");

    store.remove(JOB, Some(DatasetId(2))).unwrap();
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 1));
    assert_eq!((store.memory_used(), store.disk_used()), (3 * MIB, 3 * MIB), "in memory, its file kept");
    assert_eq!(budget.available_permits(), 5);
    // Read from memory now: the file can go bad without the read noticing.
    std::fs::write(store.path(&key(1, 0)), b"not a partition").unwrap();
    assert_eq!(store.get(&key(1, 0)).unwrap().unwrap(), batches(3, 1));
    // Evicted again, it is not written again: its (now bad) file is what is left.
    store.put(key(2, 1), StorageLevel::MemoryOnly, batches(6, 5)).unwrap();
    assert_eq!(store.memory_used(), 6 * MIB);
    assert_eq!(std::fs::read(store.path(&key(1, 0))).unwrap(), b"not a partition");
    assert_eq!(store.get(&key(1, 0)).unwrap(), None, "a corrupt file is a miss");

    // DISK_ONLY stays on disk.
    store.put(key(3, 0), StorageLevel::DiskOnly, batches(1, 3)).unwrap();
    assert_eq!(store.get(&key(3, 0)).unwrap().unwrap(), batches(1, 3));
    assert_eq!((store.memory_used(), store.disk_used()), (6 * MIB, MIB));
}

#[test]
fn disk_writes_racing_removals_keep_whole_partitions_or_nothing_and_leave_no_temporary_files() {
    let (dir, store, _budget) = store(0);
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let store = store.clone();
            s.spawn(move || {
                for round in 0..20u32 {
                    let k = key(t % 2 + 1, round % 3);
                    store.put(k, StorageLevel::DiskOnly, batches(1, (t + round) as u8)).unwrap();
                    if round % 4 == t % 4 {
                        store.remove(JOB, Some(k.dataset)).unwrap();
                    }
                    // A partition removed while it is read is a miss, not an error.
                    if let Some(got) = store.get(&k).unwrap() {
                        assert_eq!(got.len(), 2, "a partition is read whole");
                        assert!(got.iter().all(|b| b.len() == (MIB / 2) as usize));
                    }
                }
            });
        }
    });
    let files: Vec<_> = walk(dir.path());
    assert!(files.iter().all(|p| p.extension().is_none()), "no temporary file is left: {files:?}");
    // What the store says it keeps on disk is exactly what is there.
    assert_eq!(store.disk_used(), files.len() as u64 * MIB);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}
