//! How an attempt ends when the host, not the guest, holds it up: a peer that
//! never serves its shuffle block, an object store that never answers, an
//! output location that cannot be written. Real gRPC and HTTP peers on
//! loopback, the real sandbox and guests; each verdict is checked against the
//! guest's own deadline, which must stay `Deadline`.

use crate::support::{prepared, sandbox};
use futures::StreamExt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use weft_agent::blocks::{PeerChannels, RemoteFetcher};
use weft_agent::executor::{Aggregate, Input, Output, OutputSpec};
use weft_agent::shuffle::{BlockId, BlockLocation, LocalFetcher, MapId, ReduceId, ShuffleId};
use weft_agent::{Executor, TaskOutcome, TaskSpec, WasmPool};
use weft_codec::batch::BatchWriter;
use weft_core::artifact::S3Config;
use weft_core::ids::StageId;
use weft_core::io::{DataLocation, OutputCommitter, TextSplit};
use weft_core::limits::TaskLimits;
use weft_core::metering::EndReason;
use weft_core::plan::{Step, StepKind};
use weft_core::proto::v1::blocks_server::{Blocks, BlocksServer};
use weft_core::proto::v1::{BlockChunk, FetchBlockRequest, RemoveJobRequest, RemoveJobResponse};

const SHUFFLE: ShuffleId = ShuffleId(2);
/// The task deadline of the stalling tests.
const DEADLINE: Duration = Duration::from_millis(600);
/// How late after its deadline a stalled attempt may end.
const SLACK: Duration = Duration::from_millis(400);

fn pool() -> Arc<WasmPool> {
    static POOL: OnceLock<Arc<WasmPool>> = OnceLock::new();
    POOL.get_or_init(|| Arc::new(WasmPool::new(2).unwrap())).clone()
}

fn spec(component: &str, input: Input, chain: Vec<Step>, output: OutputSpec) -> TaskSpec {
    let input_keyed = matches!(input, Input::Shuffle { .. });
    TaskSpec {
        job: "job-ends".into(),
        stage: StageId(1),
        partition: 2,
        attempt: 0,
        component: prepared(component),
        limits: TaskLimits::default().with_memory(128 << 20).with_deadline(DEADLINE),
        broadcasts: Arc::default(),
        input,
        output_keyed: input_keyed,
        input_keyed,
        chain,
        output,
        cache: Vec::new(),
    }
}

fn step(kind: StepKind, function: &str) -> Step {
    Step::new(kind, function)
}

fn lines(records: &[&str]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for r in records {
        w.push(r.as_bytes());
    }
    w.finish()
}

/// Run `spec`, checking it ended as a retryable host error within its
/// deadline and naming `stalled`.
async fn expect_stall<F: weft_agent::shuffle::BlockFetcher>(
    exec: &Executor<F>,
    spec: TaskSpec,
    stalled: &str,
) {
    let started = Instant::now();
    let outcome = exec.execute(spec).await;
    let took = started.elapsed();
    let end = &outcome.report.end;
    assert!(end.is_retryable(), "a host stall is retried: {end:?}");
    let EndReason::HostError { message } = end else { panic!("{end:?}") };
    let want = format!("the deadline of {DEADLINE:?} passed while {stalled}");
    assert_eq!(message, &want);
    assert_eq!(outcome.output, Output::None);
    assert!(took >= DEADLINE && took < DEADLINE + SLACK, "ended after {took:?}");
}

/// A block service that takes every request and then never finishes it:
/// `Silent` never answers, `Slow` sends the first chunk and stops there.
#[derive(Clone, Copy)]
enum StallingPeer {
    Silent,
    Slow,
}

type ChunkStream = Pin<Box<dyn futures::Stream<Item = Result<BlockChunk, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Blocks for StallingPeer {
    type FetchBlockStream = ChunkStream;

    async fn fetch_block(
        &self,
        _: tonic::Request<FetchBlockRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        match self {
            Self::Silent => std::future::pending().await,
            Self::Slow => {
                let first = BlockChunk {
                    data: bytes::Bytes::from_static(b"\x01\x00\x00\x00k"),
                    checksum: None,
                    compression: 0,
                    length: Some(1 << 20),
                };
                let stream = futures::stream::iter([Ok(first)]).chain(futures::stream::pending());
                Ok(tonic::Response::new(Box::pin(stream)))
            }
        }
    }

    type FetchCachedStream = ChunkStream;

    async fn fetch_cached(
        &self,
        _: tonic::Request<weft_core::proto::v1::FetchCachedRequest>,
    ) -> Result<tonic::Response<ChunkStream>, tonic::Status> {
        std::future::pending().await
    }

    async fn remove_job(
        &self,
        _: tonic::Request<RemoveJobRequest>,
    ) -> Result<tonic::Response<RemoveJobResponse>, tonic::Status> {
        Ok(tonic::Response::new(RemoveJobResponse { removed: false }))
    }
}

async fn stalling_peer(peer: StallingPeer) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BlocksServer::new(peer))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = rx.await;
            }),
    );
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reduce_task_held_up_by_its_peer_is_a_host_error_naming_the_stall() {
    for peer in [StallingPeer::Silent, StallingPeer::Slow] {
        let (addr, _stop) = stalling_peer(peer).await;
        // The fetch's own timeout is far off: the task's deadline comes first.
        let fetcher = RemoteFetcher::new("job-00000001-1".parse().unwrap(), PeerChannels::new())
            .with_map_output(SHUFFLE, MapId(3), addr.to_string())
            .with_timeout(Duration::from_secs(60));
        let exec = Executor::new(sandbox().0.clone(), pool(), fetcher);
        let block = BlockId::new(SHUFFLE, MapId(3), 0, ReduceId(1));
        let input = Input::Shuffle {
            blocks: vec![BlockLocation { block, size: 1 << 20 }],
            aggregate: Aggregate::Merge,
        };
        let chain = vec![step(StepKind::Reduce, "add")];
        let stalled = format!("fetching shuffle block {block} from {addr}");
        expect_stall(&exec, spec("wordcount", input, chain, OutputSpec::Count), &stalled).await;
    }
}

/// An S3 endpoint on loopback that accepts connections and never answers.
fn silent_s3() -> (std::net::TcpListener, S3Config) {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = S3Config {
        endpoint: Some(format!("http://{}", silent.local_addr().unwrap())),
        region: Some("us-east-1".into()),
        access_key_id: Some("weft".into()),
        secret_access_key: Some("weft-secret".into()),
        allow_http: true,
        from_env: false,
        ..S3Config::default()
    };
    (silent, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_never_answers_stalls_reads_and_commits_as_host_errors() {
    let (_silent, s3) = silent_s3();
    let exec = Executor::new(sandbox().0.clone(), pool(), LocalFetcher::new("/nonexistent"));

    let input = DataLocation::parse("s3://bucket/in.txt", &s3).unwrap();
    let split = TextSplit { path: "in.txt".into(), start: 0, end: 4096, file_len: 8192 };
    let text = Input::Text { location: input, split, lines: weft_core::io::LineFormat::Utf8 };
    let chain = vec![step(StepKind::FlatMap, "split_words")];
    let stalled = "reading split 0..4096 of s3://bucket/in.txt";
    expect_stall(&exec, spec("wordcount", text, chain, OutputSpec::Count), stalled).await;

    // The guest finishes; the part's upload never does.
    let out = OutputCommitter::new(DataLocation::parse("s3://bucket/out", &s3).unwrap());
    let output = OutputSpec::Text { committer: out, partition: 2, attempt: 0 };
    let records = Input::Records(lines(&["a line", "another"]));
    let chain = vec![step(StepKind::Map, "echo")];
    expect_stall(&exec, spec("hostile", records, chain, output), "uploading part 2 to s3://bucket/out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The guard only takes turns between tests; nothing in this runtime contends for it.
#[allow(clippy::await_holding_lock)]
async fn the_guests_own_time_past_the_deadline_stays_a_deadline() {
    // Spinning in its own code, or asleep in a host call it made. A turn
    // with the hostile tests: the spinning would make their timings late.
    let _turn = crate::hostile::turn();
    let exec = Executor::new(sandbox().0.clone(), pool(), LocalFetcher::new("/nonexistent"));
    for function in ["spin", "sleep"] {
        let records = Input::Records(lines(&["x"]));
        let started = Instant::now();
        let outcome: TaskOutcome = exec
            .execute(spec("hostile", records, vec![step(StepKind::Map, function)], OutputSpec::Count))
            .await;
        let took = started.elapsed();
        assert_eq!(outcome.report.end, EndReason::Deadline { limit: DEADLINE }, "{function}");
        assert!(!outcome.report.end.is_retryable());
        assert!(took >= DEADLINE && took < DEADLINE + SLACK, "{function}: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_location_that_cannot_be_written_is_named_with_the_failure() {
    // A regular file where the output directory should be: no one, root
    // included, can create a directory below it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocker"), b"not a directory").unwrap();
    let out = dir.path().join("blocker/out");
    let location = DataLocation::parse(&out.display().to_string(), &S3Config::default()).unwrap();
    let uri = location.uri();
    assert_eq!(uri, format!("file://{}", out.display()));
    let exec = Executor::new(sandbox().0.clone(), pool(), LocalFetcher::new("/nonexistent"));
    let output = OutputSpec::Text { committer: OutputCommitter::new(location), partition: 2, attempt: 0 };
    let records = Input::Records(lines(&["a line", "another"]));
    let outcome = exec.execute(spec("hostile", records, vec![step(StepKind::Map, "echo")], output)).await;
    let end = &outcome.report.end;
    assert!(end.is_retryable(), "{end:?}");
    let EndReason::HostError { message } = end else { panic!("{end:?}") };
    assert!(message.starts_with(&format!("cannot write part 2 to {uri}: ")), "{message}");
    assert!(message.contains("Not a directory"), "names what failed: {message}");
    assert_eq!(outcome.output, Output::None);
    assert!(!out.exists());
}
