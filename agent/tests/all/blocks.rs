//! The block service and the remote fetcher over real gRPC on loopback, with
//! real shuffle files written by `ShuffleWriter`: two "agents" (two services,
//! two work directories), reduce partitions read across both, and every way a
//! fetch can fail turning into `FetchFailed` for the right block.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tonic::Code;
use weft_agent::blocks::{
    BlockService, BlockStore, CHUNK, CacheKey, CacheStore, JobKeys, PeerChannels, RemoteError, RemoteFetcher,
    StoreError, serve_blocks,
};
use weft_agent::shuffle::{
    BlockFetcher, BlockId, BlockLocation, Compression, FetchError, MapId, MapOutput, Partitioner, ReadError,
    ReaderConfig, ReduceId, ShuffleId, ShuffleReader, ShuffleWriter, WriterConfig,
};
use weft_codec::batch::{BatchWriter, pairs};
use weft_core::access::JobCapability;
use weft_core::ids::{DatasetId, Incarnation, JobId};
use weft_core::plan::StorageLevel;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::blocks_client::BlocksClient;
use weft_core::proto::v1::blocks_server::{Blocks, BlocksServer};
use weft_core::proto::v1::{
    BlockChunk, FetchBlockRequest, FetchCachedRequest, JobRef, RemoveJobRequest, RemoveJobResponse,
};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

const SHUFFLE: ShuffleId = ShuffleId(1);

/// The cluster token the test agents' block services take.
const TOKEN: &str = "weft_c_blocks-tests-cluster-token";

/// Channels to peers, presenting the cluster token.
fn peers() -> PeerChannels {
    PeerChannels::new().with_credentials(Credentials::new(TOKEN).unwrap())
}
const PARTS: u32 = 4;

/// One agent's block service on a loopback port with its own work directory.
struct Agent {
    addr: SocketAddr,
    store: BlockStore,
    /// Its persisted partitions (64 MiB of memory).
    cache: CacheStore,
    /// The capabilities of the jobs it serves.
    keys: JobKeys,
    dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = BlockStore::new(dir.path());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let keys = JobKeys::default();
        let cache = CacheStore::new(dir.path(), std::sync::Arc::new(tokio::sync::Semaphore::new(64)));
        let service =
            BlockService::new(store.clone(), TOKEN).with_keys(keys.clone()).with_cache(cache.clone());
        let server = tokio::spawn(async move {
            serve_blocks(listener, service, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self { addr, store, cache, keys, dir, shutdown: Some(tx), server: Some(server) }
    }

    fn peer(&self) -> String {
        self.addr.to_string()
    }

    /// Shut the server down and wait until it has stopped.
    async fn stop(&mut self) {
        drop(self.shutdown.take());
        if let Some(server) = self.server.take() {
            tokio::time::timeout(Duration::from_secs(20), server).await.expect("server stops").unwrap();
        }
    }
}

fn job(seq: u32) -> JobId {
    JobId { incarnation: Incarnation(0xb10c), seq }
}

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

/// A map task's input: `n` pairs over 37 repeating keys, deterministic per map.
fn records(map: u32, n: usize) -> Pairs {
    (0..n)
        .map(|i| {
            let x = (i as u64 * 2_654_435_761 + u64::from(map) * 97) % 1_000_003;
            (format!("key-{:02}", x % 37).into_bytes(), format!("m{map}-r{i}").into_bytes())
        })
        .collect()
}

/// Run a map task to completion on its own thread (the "task"), writing into
/// `job`'s shuffle directory of `store`; nothing of the writer survives it.
fn run_map(store: &BlockStore, job: &JobId, map: u32, items: Pairs, config: WriterConfig) -> MapOutput {
    run_map_attempt(store, job, map, 0, items, config)
}

/// [`run_map`] as attempt `attempt` of the map task.
fn run_map_attempt(
    store: &BlockStore,
    job: &JobId,
    map: u32,
    attempt: u32,
    items: Pairs,
    config: WriterConfig,
) -> MapOutput {
    let dir = store.create_shuffle_dir(&(*job).into()).unwrap();
    std::thread::spawn(move || {
        let mut w = ShuffleWriter::new(dir, SHUFFLE, MapId(map), attempt, Partitioner::hash(PARTS), config);
        for chunk in items.chunks(50) {
            w.write(&batch_of(chunk)).unwrap();
        }
        w.finish().unwrap()
    })
    .join()
    .unwrap()
}

fn locations(outputs: &[(u32, MapOutput)], reduce: u32) -> Vec<BlockLocation> {
    outputs
        .iter()
        .map(|(map, out)| BlockLocation {
            block: BlockId::new(SHUFFLE, MapId(*map), 0, ReduceId(reduce)),
            size: out.partition_lengths[reduce as usize],
        })
        .collect()
}

async fn read_partition(
    reader: &ShuffleReader<RemoteFetcher>,
    outputs: &[(u32, MapOutput)],
    reduce: u32,
) -> Result<Pairs, ReadError> {
    read_blocks(reader, locations(outputs, reduce)).await
}

async fn read_blocks(
    reader: &ShuffleReader<RemoteFetcher>,
    blocks: Vec<BlockLocation>,
) -> Result<Pairs, ReadError> {
    let merged = reader.read(blocks).await?;
    Ok(merged.flat_map(|b| unbatch(&b.unwrap())).collect())
}

/// The one capability of every test job.
const KEY: JobCapability = JobCapability([9; 32]);

/// A fetcher of `job`'s map outputs `placed` on agents, which learn the
/// job's capability as if they had run its tasks.
fn fetcher(job: &JobId, peers: &PeerChannels, placed: &[(u32, &Agent)]) -> RemoteFetcher {
    placed.iter().fold(RemoteFetcher::new(*job, peers.clone()).with_key(KEY), |f, (map, agent)| {
        agent.keys.install(*job, KEY);
        f.with_map_output(SHUFFLE, MapId(*map), agent.peer())
    })
}

fn expect_fetch_failed(result: Result<Pairs, ReadError>, block: BlockId) -> RemoteError {
    match result {
        Err(ReadError::FetchFailed { block: b, reason: FetchError::Remote(e) }) => {
            assert_eq!(b, block, "names the failed block");
            e
        }
        other => panic!("expected FetchFailed for {block}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_partitions_read_across_two_agents_equal_an_in_memory_shuffle() {
    let (a, b) = (Agent::start().await, Agent::start().await);
    let j = job(1);
    let partitioner = Partitioner::hash(PARTS);
    let mut outputs = Vec::new();
    let mut placed = Vec::new();
    let mut all: Vec<Pairs> = Vec::new();
    for map in 0..6u32 {
        let agent = if map < 3 { &a } else { &b };
        // Odd maps compress; map 4 spills many runs under a tiny budget.
        let codec = if map % 2 == 1 { Compression::Lz4 } else { Compression::None };
        let budget = if map == 4 { 2 << 10 } else { 64 << 20 };
        let items = records(map, 400 + 150 * map as usize);
        all.push(items.clone());
        let config = WriterConfig::default().with_compression(codec).with_memory_budget(budget);
        outputs.push((map, run_map(&agent.store, &j, map, items, config)));
        placed.push((map, agent));
    }
    let peers = peers();
    let reader = ShuffleReader::new(
        fetcher(&j, &peers, &placed),
        ReaderConfig::default().with_max_bytes_in_flight(4 << 10).with_target_batch_bytes(1 << 10),
    );
    let mut total = 0;
    for reduce in 0..PARTS {
        let got = read_partition(&reader, &outputs, reduce).await.unwrap();
        // In memory: every map's pairs of this partition, in map then arrival
        // order, stably sorted by key (ties stay in map order, as the merge keeps them).
        let mut want: Pairs =
            all.iter().flatten().filter(|(k, _)| partitioner.partition(k) == reduce).cloned().collect();
        want.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(got, want, "partition {reduce}");
        total += got.len();
    }
    assert_eq!(total, all.iter().map(Vec::len).sum::<usize>(), "every pair read once");
    let by_key: BTreeMap<_, usize> = all.iter().flatten().fold(BTreeMap::new(), |mut m, (k, _)| {
        *m.entry(k.clone()).or_default() += 1;
        m
    });
    assert_eq!(by_key.len(), 37);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_served_after_the_task_and_everything_else_is_gone() {
    let a = Agent::start().await;
    let j = job(2);
    let outputs = {
        // The task: a writer with its own store handle, run to completion and dropped.
        let task_store = BlockStore::new(a.dir.path());
        let config = WriterConfig::default().with_compression(Compression::Lz4);
        let out = run_map(&task_store, &j, 0, records(0, 2000), config);
        vec![(0, out)]
    };
    // Large blocks too: one value over several chunks, uncompressed.
    let big: Pairs = vec![(b"big".to_vec(), (0..3_000_000u32).map(|i| (i % 251) as u8).collect())];
    let big_out = run_map(&a.store, &j, 1, big.clone(), WriterConfig::default());
    let big_part = Partitioner::hash(PARTS).partition(b"big");
    assert!(big_out.partition_lengths[big_part as usize] > 2 * weft_agent::blocks::CHUNK as u64);

    // A fresh reader with fresh channels, as a reduce task on another agent would have.
    let reader = ShuffleReader::new(fetcher(&j, &peers(), &[(0, &a), (1, &a)]), ReaderConfig::default());
    let mut n = 0;
    for reduce in 0..PARTS {
        n += read_partition(&reader, &outputs, reduce).await.unwrap().len();
    }
    assert_eq!(n, 2000);
    let got = read_partition(&reader, &[(1, big_out)], big_part).await.unwrap();
    assert_eq!(got, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_block_fails_the_fetch_naming_it() {
    let (a, b) = (Agent::start().await, Agent::start().await);
    let j = job(3);
    let outputs = vec![
        (0, run_map(&a.store, &j, 0, records(0, 500), WriterConfig::default())),
        (
            1,
            run_map(
                &b.store,
                &j,
                1,
                records(1, 500),
                WriterConfig::default().with_compression(Compression::Lz4),
            ),
        ),
    ];
    // Flip one byte inside block (map 1, reduce 2) on agent b.
    let out = &outputs[1].1;
    let start: u64 = out.partition_lengths[..2].iter().sum();
    assert!(out.partition_lengths[2] > 0);
    let mut data = std::fs::read(&out.data_path).unwrap();
    data[(start + out.partition_lengths[2] / 2) as usize] ^= 0x40;
    std::fs::write(&out.data_path, data).unwrap();

    let reader = ShuffleReader::new(fetcher(&j, &peers(), &[(0, &a), (1, &b)]), ReaderConfig::default());
    let bad = BlockId::new(SHUFFLE, MapId(1), 0, ReduceId(2));
    match expect_fetch_failed(read_partition(&reader, &outputs, 2).await, bad) {
        RemoteError::DataLoss { peer, status } => {
            assert_eq!(peer, b.peer());
            assert!(status.message().contains("shuffle_1_1_0_2"), "{}", status.message());
        }
        other => panic!("{other:?}"),
    }
    // The other partitions of the same map output are intact and still served.
    for reduce in [0, 1, 3] {
        read_partition(&reader, &outputs, reduce).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_job_is_served_no_more() {
    let a = Agent::start().await;
    let (j, other) = (job(4), job(5));
    let outputs = vec![(0, run_map(&a.store, &j, 0, records(0, 300), WriterConfig::default()))];
    let kept = vec![(0, run_map(&a.store, &other, 0, records(0, 300), WriterConfig::default()))];
    let peers = peers();
    let reader = ShuffleReader::new(fetcher(&j, &peers, &[(0, &a)]), ReaderConfig::default());
    read_partition(&reader, &outputs, 0).await.unwrap();

    assert!(peers.remove_job(&a.peer(), j, None).await.unwrap());
    assert!(!a.store.job_dir(&j.into()).exists());
    assert!(!peers.remove_job(&a.peer(), j, None).await.unwrap(), "a second removal finds nothing");
    let block = BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(0));
    // Its capability went with it: the agent serves nothing of it any more.
    match expect_fetch_failed(read_partition(&reader, &outputs, 0).await, block) {
        RemoteError::Status { status, .. } if status.code() == Code::PermissionDenied => {
            assert!(status.message().contains(&j.to_string()), "{}", status.message());
        }
        other => panic!("{other:?}"),
    }
    // Other jobs on the same agent are untouched.
    let reader = ShuffleReader::new(fetcher(&other, &peers, &[(0, &a)]), ReaderConfig::default());
    read_partition(&reader, &kept, 0).await.unwrap();
    // A map output the fetcher was never told about fails too, without a request.
    let unknown = BlockLocation { block: BlockId::new(SHUFFLE, MapId(9), 0, ReduceId(0)), size: 1 };
    match reader.read(vec![unknown]).await {
        Err(ReadError::FetchFailed { reason: FetchError::Remote(RemoteError::Unlocated { .. }), .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_fails_fetches_within_the_timeout() {
    let mut a = Agent::start().await;
    let j = job(6);
    let outputs = vec![(0, run_map(&a.store, &j, 0, records(0, 300), WriterConfig::default()))];
    let timeout = Duration::from_secs(3);
    let reader =
        ShuffleReader::new(fetcher(&j, &peers(), &[(0, &a)]).with_timeout(timeout), ReaderConfig::default());
    read_partition(&reader, &outputs, 0).await.unwrap();
    a.stop().await;

    let started = Instant::now();
    let err = expect_fetch_failed(
        read_partition(&reader, &outputs, 1).await,
        BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(1)),
    );
    // Connection refused is reported at once, not after the timeout.
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert!(
        matches!(
            err,
            RemoteError::Unreachable { .. } | RemoteError::Timeout { .. } | RemoteError::Status { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_answers_times_out() {
    // Accepts TCP connections (the kernel does) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let j = job(7);
    let timeout = Duration::from_millis(500);
    let reader = ShuffleReader::new(
        RemoteFetcher::new(j, peers())
            .with_map_output(SHUFFLE, MapId(0), silent.local_addr().unwrap().to_string())
            .with_timeout(timeout),
        ReaderConfig::default(),
    );
    let block = BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(0));
    let started = Instant::now();
    let result = reader.read(vec![BlockLocation { block, size: 10 }]).await;
    let elapsed = started.elapsed();
    match result {
        Err(ReadError::FetchFailed {
            block: b,
            reason: FetchError::Remote(RemoteError::Timeout { after, .. }),
        }) => {
            assert_eq!((b, after), (block, timeout));
        }
        other => panic!("{other:?}"),
    }
    assert!(elapsed >= timeout && elapsed < timeout + Duration::from_secs(2), "took {elapsed:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_job_refs_are_refused_and_touch_nothing() {
    let a = Agent::start().await;
    let j = job(8);
    run_map(&a.store, &j, 0, records(0, 10), WriterConfig::default());
    let channel = peers().channel(&a.peer()).unwrap();
    let mut raw = BlocksClient::with_interceptor(channel, Credentials::new(TOKEN).unwrap());
    // A job is a typed reference, parsed once: no string reaches the file
    // system. No reference, or one of no master run, is INVALID_ARGUMENT.
    for bad in [None, Some(JobRef { incarnation: 0, seq: 8 })] {
        let fetch = FetchBlockRequest { job: bad, shuffle: 1, map: 0, attempt: 0, reduce: 0 };
        let st = raw.fetch_block(fetch).await.err().unwrap_or_else(|| panic!("fetch {bad:?} accepted"));
        assert_eq!(st.code(), Code::InvalidArgument, "fetch {bad:?}: {}", st.message());
        assert!(st.message().contains("job") || st.message().contains("incarnation"), "{}", st.message());
        let st = raw.remove_job(RemoveJobRequest { job: bad, dataset: None }).await.unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "remove {bad:?}: {}", st.message());
    }
    assert!(a.store.job_dir(&j.into()).exists());
    // Without the job's capability nothing is served, not even an answer
    // whether a block exists.
    let req = FetchBlockRequest { job: Some(j.into()), shuffle: 1, map: 0, attempt: 0, reduce: 0 };
    assert_eq!(raw.fetch_block(req).await.unwrap_err().code(), Code::PermissionDenied);
    a.keys.install(j, KEY);
    let with_key = |req: FetchBlockRequest, key: JobCapability| {
        let mut req = tonic::Request::new(req);
        req.metadata_mut().insert(JobCapability::HEADER, key.to_hex().parse().unwrap());
        req
    };
    let req = FetchBlockRequest { job: Some(j.into()), shuffle: 1, map: 0, attempt: 0, reduce: 0 };
    let st = raw.fetch_block(with_key(req, JobCapability([8; 32]))).await.unwrap_err();
    assert_eq!(st.code(), Code::PermissionDenied, "another job's capability");
    assert!(raw.fetch_block(with_key(req, KEY)).await.is_ok(), "its own");
    // An unknown map or a partition past the end is NOT_FOUND, naming the block.
    for (map, reduce) in [(5, 0), (0, PARTS)] {
        let req = FetchBlockRequest { job: Some(j.into()), shuffle: 1, map, attempt: 0, reduce };
        let st = raw.fetch_block(with_key(req, KEY)).await.unwrap_err();
        assert_eq!(st.code(), Code::NotFound, "{}", st.message());
        assert!(st.message().contains(&format!("shuffle_1_{map}_0_{reduce}")), "{}", st.message());
    }
}

/// A peer that answers every fetch with the same, deliberately wrong, chunks.
#[derive(Clone)]
struct LyingPeer(Vec<BlockChunk>);

type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<BlockChunk, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Blocks for LyingPeer {
    type FetchBlockStream = ChunkStream;

    async fn fetch_block(
        &self,
        _: tonic::Request<FetchBlockRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(self.0.clone().into_iter().map(Ok)))))
    }

    type FetchCachedStream = ChunkStream;

    async fn fetch_cached(
        &self,
        _: tonic::Request<FetchCachedRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        Ok(tonic::Response::new(Box::pin(futures::stream::iter(self.0.clone().into_iter().map(Ok)))))
    }

    async fn remove_job(
        &self,
        _: tonic::Request<RemoveJobRequest>,
    ) -> Result<tonic::Response<RemoveJobResponse>, tonic::Status> {
        Ok(tonic::Response::new(RemoveJobResponse { removed: false }))
    }
}

async fn lying_peer(chunks: Vec<BlockChunk>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BlocksServer::new(LyingPeer(chunks)))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = rx.await;
            }),
    );
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_peer_sends_is_verified() {
    let block_bytes = batch_of(&[(b"k".to_vec(), b"v".to_vec())]);
    let crc = crc32c::crc32c(&block_bytes);
    let chunk = |data: &[u8], length: Option<u64>, checksum: Option<u32>, compression: i32| BlockChunk {
        data: bytes::Bytes::copy_from_slice(data),
        checksum,
        compression,
        length,
    };
    let len = Some(block_bytes.len() as u64);
    let (head, tail) = block_bytes.split_at(3);
    let cases: Vec<(&str, Vec<BlockChunk>)> = vec![
        ("honest", vec![chunk(head, len, None, 0), chunk(tail, None, Some(crc), 0)]),
        ("bad checksum", vec![chunk(&block_bytes, len, Some(crc ^ 1), 0)]),
        ("no last chunk", vec![chunk(head, len, None, 0)]),
        ("short of the length", vec![chunk(head, len, Some(crc32c::crc32c(head)), 0)]),
        ("more than announced", vec![chunk(&block_bytes, Some(2), Some(crc), 0)]),
        ("chunk after the last", vec![chunk(head, len, Some(crc), 0), chunk(tail, None, None, 0)]),
        ("unknown compression", vec![chunk(&block_bytes, len, Some(crc), 9)]),
        ("not lz4", vec![chunk(&block_bytes, len, Some(crc), 1)]),
    ];
    let block = BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(0));
    for (name, chunks) in cases {
        let (addr, _stop) = lying_peer(chunks).await;
        let fetcher = RemoteFetcher::new(job(9), peers())
            .with_map_output(SHUFFLE, MapId(0), addr.to_string())
            .with_timeout(Duration::from_secs(5));
        let result = fetcher.fetch_block(&block).await;
        match (name, result) {
            ("honest", Ok(bytes)) => assert_eq!(bytes, block_bytes),
            ("bad checksum", Err(RemoteError::Checksum { got, want, .. })) => {
                assert_eq!((got, want), (crc, crc ^ 1))
            }
            ("no last chunk", Err(RemoteError::Truncated { received: 3, .. })) => {}
            ("short of the length", Err(RemoteError::Truncated { received: 3, expected, .. })) => {
                assert_eq!(expected, len);
            }
            (
                "more than announced" | "chunk after the last" | "unknown compression",
                Err(RemoteError::Protocol { .. }),
            ) => {}
            ("not lz4", Err(RemoteError::Decompress { .. })) => {}
            (name, other) => panic!("{name}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_the_cluster_token_neither_fetch_nor_remove() {
    let a = Agent::start().await;
    let j = job(10);
    run_map(&a.store, &j, 0, records(0, 10), WriterConfig::default());
    for token in ["", "weft_c_another-clusters-token-xyz"] {
        let channel = PeerChannels::new().channel(&a.peer()).unwrap();
        let mut raw = BlocksClient::with_interceptor(channel, Credentials::new(token).unwrap());
        let fetch =
            FetchBlockRequest { job: Some(j.into()), shuffle: SHUFFLE.0, map: 0, attempt: 0, reduce: 0 };
        let st = raw.fetch_block(fetch).await.expect_err("a fetch without the token");
        assert_eq!(st.code(), Code::Unauthenticated, "{}", st.message());
        let st = raw.remove_job(RemoveJobRequest { job: Some(j.into()), dataset: None }).await.unwrap_err();
        assert_eq!(st.code(), Code::Unauthenticated, "{}", st.message());
    }
    assert!(a.store.job_dir(&j.into()).exists(), "the job's files stay");
}

/// Map outputs on the reader's own agent are read from its files, with no
/// request to its block service (stopped here), and give the same pairs as
/// the service; a corrupt or missing local block is a typed fetch failure
/// naming the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_on_the_readers_own_agent_are_read_from_its_files() {
    let (mut a, b) = (Agent::start().await, Agent::start().await);
    let j = job(9);
    let lz4 = WriterConfig::default().with_compression(Compression::Lz4);
    let outputs = vec![
        (0, run_map(&a.store, &j, 0, records(0, 500), lz4)),
        (1, run_map(&b.store, &j, 1, records(1, 500), WriterConfig::default())),
    ];
    let remote = ShuffleReader::new(fetcher(&j, &peers(), &[(0, &a), (1, &b)]), ReaderConfig::default());
    let mut want = Vec::new();
    for reduce in 0..PARTS {
        want.push(read_partition(&remote, &outputs, reduce).await.unwrap());
    }
    a.stop().await;
    let local = fetcher(&j, &peers(), &[(0, &a), (1, &b)]).with_local(a.peer(), a.store.clone());
    let here = BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(2));
    assert!(local.source(&here).unwrap().contains("this agent's files"), "{:?}", local.source(&here));
    assert_eq!(local.source(&BlockId::new(SHUFFLE, MapId(1), 0, ReduceId(2))), Some(b.peer()));
    let local = ShuffleReader::new(local, ReaderConfig::default());
    for reduce in 0..PARTS {
        assert_eq!(read_partition(&local, &outputs, reduce).await.unwrap(), want[reduce as usize]);
    }

    // Flip one byte inside block (map 0, reduce 2) on a.
    let out = &outputs[0].1;
    let start: u64 = out.partition_lengths[..2].iter().sum();
    let mut data = std::fs::read(&out.data_path).unwrap();
    data[(start + out.partition_lengths[2] / 2) as usize] ^= 0x40;
    std::fs::write(&out.data_path, data).unwrap();
    match read_partition(&local, &outputs, 2).await {
        Err(ReadError::FetchFailed { block, reason: FetchError::Local(StoreError::Corrupt { .. }) }) => {
            assert_eq!(block, here)
        }
        other => panic!("expected a corrupt local block, got {other:?}"),
    }
    std::fs::remove_file(&out.index_path).unwrap();
    match read_partition(&local, &outputs, 0).await {
        Err(ReadError::FetchFailed { block, reason: FetchError::Local(StoreError::NotFound { .. }) }) => {
            assert_eq!(block, BlockId::new(SHUFFLE, MapId(0), 0, ReduceId(0)))
        }
        other => panic!("expected a missing local block, got {other:?}"),
    }
}

/// Two attempts of map 0 wrote their outputs on one agent: a reader naming
/// an attempt gets that attempt's blocks, through the agent's block service
/// or from its own files, and one naming an attempt that wrote nothing there
/// fails its fetch as a missing map output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_map_task_is_served_from_its_own_files() {
    let a = Agent::start().await;
    let j = job(13);
    // Attempt 0's pairs are valued `m0-…`, attempt 1's `m7-…`.
    let first = run_map_attempt(&a.store, &j, 0, 0, records(0, 500), WriterConfig::default());
    let lz4 = WriterConfig::default().with_compression(Compression::Lz4);
    let second = run_map_attempt(&a.store, &j, 0, 1, records(7, 300), lz4);
    let at = |attempt: u32, out: &MapOutput, reduce: u32| BlockLocation {
        block: BlockId::new(SHUFFLE, MapId(0), attempt, ReduceId(reduce)),
        size: out.partition_lengths[reduce as usize],
    };
    let remote = ShuffleReader::new(fetcher(&j, &peers(), &[(0, &a)]), ReaderConfig::default());
    let local = ShuffleReader::new(
        fetcher(&j, &peers(), &[(0, &a)]).with_local(a.peer(), a.store.clone()),
        ReaderConfig::default(),
    );
    for (attempt, out, prefix, n) in [(0, &first, "m0-", 500), (1, &second, "m7-", 300)] {
        for reader in [&remote, &local] {
            let mut values = Vec::new();
            for reduce in 0..PARTS {
                let got = read_blocks(reader, vec![at(attempt, out, reduce)]).await.unwrap();
                values.extend(got.into_iter().map(|(_, v)| v));
            }
            assert_eq!(values.len(), n, "attempt {attempt}");
            assert!(values.iter().all(|v| v.starts_with(prefix.as_bytes())), "attempt {attempt}'s own pairs");
        }
    }

    let never = at(2, &second, 0);
    match expect_fetch_failed(read_blocks(&remote, vec![never]).await, never.block) {
        RemoteError::NotFound { peer, status } => {
            assert_eq!(peer, a.peer());
            assert!(status.message().contains("shuffle_1_0_2_0"), "{}", status.message());
        }
        other => panic!("expected a missing block, got {other:?}"),
    }
    match read_blocks(&local, vec![never]).await {
        Err(ReadError::FetchFailed { block, reason: FetchError::Local(StoreError::NotFound { .. }) }) => {
            assert_eq!(block, never.block)
        }
        other => panic!("expected a missing local block, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_partition_is_served_to_its_jobs_tasks_only_whole_and_verified() {
    let a = Agent::start().await;
    let j = job(12);
    let key = CacheKey { job: j, dataset: DatasetId(3), partition: 1 };
    // A batch longer than a chunk travels in several.
    let batches = vec![bytes::Bytes::from_static(b"first"), bytes::Bytes::from(vec![7u8; 2 * CHUNK + 5])];
    a.cache.put(key, StorageLevel::MemoryAndDisk, batches.clone()).unwrap();
    let peers = peers();
    let peer = a.peer();
    let fetch = |key, capability| peers.fetch_cached(&peer, key, capability, Duration::from_secs(10));

    match fetch(key, None).await {
        Err(RemoteError::Status { status, .. }) if status.code() == Code::PermissionDenied => {}
        other => panic!("without the job's capability: {other:?}"),
    }
    a.keys.install(j, KEY);
    assert_eq!(fetch(key, Some(&KEY)).await.unwrap(), batches);
    let missing = CacheKey { partition: 2, ..key };
    assert!(matches!(fetch(missing, Some(&KEY)).await, Err(RemoteError::NotFound { .. })));

    // Unpersisting the dataset drops it; the job's other data stays.
    let other = CacheKey { dataset: DatasetId(4), ..key };
    a.cache.put(other, StorageLevel::DiskOnly, batches.clone()).unwrap();
    assert!(peers.remove_job(&a.peer(), j, Some(DatasetId(3))).await.unwrap());
    assert!(matches!(fetch(key, Some(&KEY)).await, Err(RemoteError::NotFound { .. })));
    assert_eq!(fetch(other, Some(&KEY)).await.unwrap(), batches);

    // A peer whose bytes do not match the checksum it sends is caught.
    let lie = BlockChunk {
        data: bytes::Bytes::from_static(b"abc"),
        checksum: Some(crc32c::crc32c(b"abd")),
        compression: 0,
        length: Some(3),
    };
    let (addr, _stop) = lying_peer(vec![lie]).await;
    let got = peers.fetch_cached(&addr.to_string(), key, Some(&KEY), Duration::from_secs(10)).await;
    assert!(matches!(got, Err(RemoteError::Checksum { .. })), "{got:?}");
}
