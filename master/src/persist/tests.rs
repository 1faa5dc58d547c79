use super::*;
use crate::ledger::{EndLabel, Meter};

fn record(id: JobId) -> JobRecord {
    JobRecord {
        id,
        name: "wc".into(),
        tenant: "alice".into(),
        component: [3; 32],
        args: vec!["in.txt".into(), "out".into()],
        limits: TaskLimits::default(),
        max_task_attempts: 4,
        driver_restarts_allowed: 3,
        deadline: Some(Duration::from_secs(60)),
        working_dir: Some("/home/alice".into()),
        capability: [9; 32],
        fuel_budget: Some(1 << 40),
        phase: JobPhase::Running,
        message: String::new(),
        driver_log: String::new(),
        plan: Plan::new(),
        broadcasts: BTreeMap::from([(0, Data::Inline(vec![1, 2, 3].into()))]),
        splits: BTreeMap::new(),
        range_bounds: BTreeMap::from([(ShuffleId(1), vec![b"m".to_vec()])]),
        actions_run: 2,
        accumulators: BTreeMap::from([("lines".into(), 42)]),
        blocks: vec![[5; 32]],
        driver_attempt: 1,
        driver_restarts: 1,
        acts: BTreeMap::from([(1, StoredAct { asked: [8; 32], answer: Err((10, "aborted".into())) })]),
        outputs: BTreeMap::from([(2, ([4; 32], "file:///tmp/out".into()))]),
    }
}

fn attempt(job: JobId, partition: u32) -> StoredAttempt {
    StoredAttempt {
        job,
        action: 1,
        stage: 0,
        partition,
        attempt: 0,
        agent: Some(AgentId { incarnation: job.incarnation, seq: 2 }),
        end: EndLabel::Finished,
        start_us: 1_000,
        end_us: 2_000,
        memory: 64 << 20,
        meter: Meter { fuel: 77, ..Meter::default() },
    }
}

#[test]
fn what_a_run_wrote_is_read_back_by_the_next_under_a_new_run_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (mut store, first, restored) = StateStore::open(&path).unwrap();
    assert_eq!((restored.runs, restored.jobs.len(), restored.attempts.len()), (0, 0, 0));
    let job = JobId { incarnation: first, seq: 1 };
    let mut r = record(job);
    store
        .write(&Writes { jobs: vec![r.clone()], attempts: vec![attempt(job, 0)], ..Writes::default() })
        .unwrap();
    r.phase = JobPhase::Succeeded;
    r.driver_log = "done".into();
    store
        .write(&Writes { jobs: vec![r.clone()], attempts: vec![attempt(job, 1)], ..Writes::default() })
        .unwrap();
    drop(store);

    let (_store, second, restored) = StateStore::open(&path).unwrap();
    assert_ne!(second, first, "a new run number");
    assert_eq!(restored.runs, 1);
    assert_eq!(restored.jobs, [r], "the job as last written, once");
    assert_eq!(restored.attempts, [attempt(job, 0), attempt(job, 1)], "every record, in order");
}

#[test]
fn a_second_master_on_the_same_store_is_refused_and_a_newer_layout_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (store, _, _) = StateStore::open(&path).unwrap();
    let e = StateStore::open(&path).unwrap_err();
    assert!(e.to_string().contains("another master has it open"), "{e}");
    drop(store);

    let db = Database::create(&path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(META)
        .unwrap()
        .insert("format", postcard::to_allocvec(&(FORMAT + 1)).unwrap().as_slice())
        .unwrap();
    tx.commit().unwrap();
    drop(db);
    let e = StateStore::open(&path).unwrap_err();
    assert!(e.to_string().contains("newer weft"), "{e}");
}

#[test]
fn a_record_that_does_not_decode_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    drop(StateStore::open(&path).unwrap());
    let db = Database::create(&path).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table(JOBS).unwrap().insert(7, [0xff_u8; 3].as_slice()).unwrap();
    tx.commit().unwrap();
    drop(db);
    let e = StateStore::open(&path).unwrap_err();
    assert!(e.to_string().contains("job 7 does not decode"), "{e}");
}

#[test]
fn a_job_read_back_is_the_job_that_was_kept() {
    let job = JobId { incarnation: Incarnation(4), seq: 9 };
    let r = record(job);
    let restored = r.clone().into_job(Arc::default());
    assert!(restored.is_live());
    assert_eq!(restored.driver_attempt, 2, "an attempt number no earlier run used");
    assert_eq!(restored.acts.len(), 1, "answers an earlier weft kept in the record are read");
    let again = JobRecord::of(&restored);
    assert!(again.acts.is_empty(), "answers are kept apart, one entry each");
    assert_eq!(JobRecord { driver_attempt: 1, acts: r.acts.clone(), ..again }, r);
    let ended = JobRecord { phase: JobPhase::Failed, ..r }.into_job(Arc::default());
    assert!(!ended.is_live());
}

#[test]
fn an_ended_attempt_costs_the_store_about_a_hundred_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (mut store, run, _) = StateStore::open(&path).unwrap();
    let job = JobId { incarnation: run, seq: 1 };
    let empty = std::fs::metadata(&path).unwrap().len();
    const N: u32 = 20_000;
    for batch in 0..N / 1000 {
        let attempts = (0..1000)
            .map(|p| StoredAttempt {
                end_us: 1_700_000_000_000_000 + u64::from(p),
                meter: Meter {
                    fuel: 3_000_000 + u64::from(p),
                    wall_us: 40_000,
                    records_in: 10_000,
                    ..Meter::default()
                },
                ..attempt(job, batch * 1000 + p)
            })
            .collect();
        store.write(&Writes { attempts, ..Writes::default() }).unwrap();
    }
    drop(store);
    let per = (std::fs::metadata(&path).unwrap().len() - empty) / u64::from(N);
    println!("{per} bytes per ended attempt");
    assert!(per <= 150, "{per} bytes per attempt");
    let (_, _, restored) = StateStore::open(&path).unwrap();
    assert_eq!(restored.attempts.len(), N as usize);
}

#[test]
fn where_a_live_jobs_map_outputs_and_kept_partitions_are_is_kept_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (mut store, run, _) = StateStore::open(&path).unwrap();
    let job = JobId { incarnation: run, seq: 1 };
    let (a, b) = (AgentId { incarnation: run, seq: 0 }, AgentId { incarnation: run, seq: 1 });
    let at = |agent, attempt, bytes: &[u64]| {
        Some(MapOutput { agent, attempt, sizes: BlockSizes::new(bytes), since: 3 })
    };
    let shuffles =
        MapOutputs::from([(ShuffleId(2), vec![at(a, 0, &[1, 1, 1, 97]), None, at(b, 1, &[5, 5])])]);
    let cached = CacheIndex::from([((DatasetId(4), 1), KeptAt { agent: b, bytes: 10, memory: true })]);
    let record = PlacesRecord::of(job, &shuffles, &cached);
    assert_eq!(record.agents(), BTreeSet::from([a, b]));
    store.write(&Writes { places: vec![(job, Some(record.clone()))], ..Writes::default() }).unwrap();
    drop(store);

    let (mut store, next, restored) = StateStore::open(&path).unwrap();
    assert_eq!(restored.places, std::slice::from_ref(&record));
    // What b held, taken back under its new id: the rest stays.
    let mut left = record;
    let b2 = AgentId { incarnation: next, seq: 0 };
    let (outputs, kept) = left.take_held(b, b2);
    let back = at(b2, 1, &[5, 5]).map(|o| MapOutput { since: 0, ..o });
    assert_eq!(outputs, MapOutputs::from([(ShuffleId(2), vec![None, None, back])]));
    assert_eq!(kept, CacheIndex::from([((DatasetId(4), 1), KeptAt { agent: b2, bytes: 10, memory: true })]));
    assert_eq!(left.agents(), BTreeSet::from([a]));
    assert_eq!(left.shuffles[&ShuffleId(2)][0].as_ref().map(|o| o.exact.clone()), Some(vec![(3, 97)]));
    // The job ended: its record goes.
    store.write(&Writes { places: vec![(job, None)], ..Writes::default() }).unwrap();
    drop(store);
    let (_store, _, restored) = StateStore::open(&path).unwrap();
    assert!(restored.places.is_empty());
}

#[test]
fn answers_are_kept_and_dropped_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let (mut store, run, _) = StateStore::open(&path).unwrap();
    let (job, other) = (JobId { incarnation: run, seq: 1 }, JobId { incarnation: run, seq: 2 });
    let act = |n: u8| StoredAct { asked: [n; 32], answer: Ok(vec![n; 1000]) };
    let keep = |job, number, n| ActWrite::Keep(ActEntry { job, number, act: act(n) });
    for n in 1..=40 {
        let w =
            Writes { jobs: vec![record(job)], acts: vec![keep(job, u32::from(n), n)], ..Writes::default() };
        store.write(&w).unwrap();
    }
    let acts = vec![ActWrite::Drop(job, 1), keep(other, 1, 99), ActWrite::Drop(job, 2)];
    store.write(&Writes { acts, ..Writes::default() }).unwrap();
    drop(store);

    let (_store, _, restored) = StateStore::open(&path).unwrap();
    let kept: Vec<(JobId, u32)> = restored.acts.iter().map(|e| (e.job, e.number)).collect();
    let expected: Vec<(JobId, u32)> = (3..=40).map(|n| (job, n)).chain([(other, 1)]).collect();
    assert_eq!(kept, expected, "the answers not deleted, in order");
    assert_eq!(restored.acts[0].act, act(3));
}
