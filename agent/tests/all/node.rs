//! Whole agents over loopback gRPC: a real `Master` service and artifact
//! service, real `AgentNode`s, the real sandbox running guest components, real
//! files. Only the `Driver` service is a stand-in (the master's is tested with
//! the master).

use crate::support::{guest, strings};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use weft_agent::SandboxConfig;
use weft_agent::node::{AgentConfig, AgentHandle, AgentNode, NodeError};
use weft_codec::batch::BatchWriter;
use weft_core::artifact::{ArtifactService, ArtifactStore, RemoteArtifacts, S3Config};
use weft_core::io::{DataLocation, TextSplit, plan_text_splits};
use weft_core::metering::EndReason;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::agent_client::AgentClient;
use weft_core::proto::v1::driver_server::DriverServer;
use weft_core::proto::v1::{self, task_input, task_output};
use weft_core::task::TaskState;
use weft_master::registry::Registry;
use weft_master::service::{MasterEvent, MasterService, TaskEvent};

mod driver;
mod shuffle;

const TOKEN: &str = "cluster-secret";

/// A master (Master + Artifacts + a stand-in Driver service) on loopback.
struct Cluster {
    addr: SocketAddr,
    events: mpsc::Receiver<MasterEvent>,
    driver: Arc<Mutex<Vec<v1::DefineRequest>>>,
    /// How long the stand-in Driver takes per action.
    act_delay: Arc<Mutex<Duration>>,
    /// The RPC timeout of agents started from now on.
    rpc_timeout: Duration,
    stop: Option<oneshot::Sender<()>>,
    dir: tempfile::TempDir,
}

async fn cluster(interval: Duration) -> Cluster {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cluster_on(listener, interval, tempfile::tempdir().unwrap()).await
}

async fn cluster_on(
    listener: tokio::net::TcpListener,
    interval: Duration,
    dir: tempfile::TempDir,
) -> Cluster {
    let registry = Arc::new(Mutex::new(Registry::new(interval, 3)));
    let (tx, events) = mpsc::channel(256);
    let service = MasterService::new(registry, TOKEN, tx);
    tokio::spawn(service.clone().sweep_forever(interval / 2));
    let artifacts = ArtifactService::new(ArtifactStore::local(dir.path().join("artifacts")).unwrap());
    let driver = Arc::new(Mutex::new(Vec::new()));
    let act_delay = Arc::new(Mutex::new(Duration::ZERO));
    let fake = driver::FakeDriver { defined: Arc::clone(&driver), act_delay: Arc::clone(&act_delay) };
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(service.into_server())
            .add_service(artifacts.into_server())
            .add_service(DriverServer::new(fake))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Cluster { addr, events, driver, act_delay, rpc_timeout: Duration::from_secs(5), stop: Some(stop), dir }
}

impl Cluster {
    fn config(&self, name: &str, slots: u32) -> AgentConfig {
        let dir = self.dir.path().join(name);
        AgentConfig::default()
            .with_master(self.addr.to_string())
            .with_listen("127.0.0.1:0".parse().unwrap())
            .with_slots(slots)
            .with_cluster_token(TOKEN)
            .with_work_dir(dir.join("work"))
            .with_cache_dir(dir.join("cache"))
            .with_rpc_timeout(self.rpc_timeout)
            .with_sandbox(SandboxConfig::default().with_max_instances(4))
    }

    async fn agent(&mut self, name: &str, slots: u32) -> AgentHandle {
        let agent = AgentNode::start(self.config(name, slots)).await.unwrap();
        assert!(matches!(self.next().await, MasterEvent::AgentRegistered(_)));
        agent
    }

    /// Push a component to the master's artifact store; its `blake3:` digest.
    async fn push(&self, bytes: Vec<u8>) -> String {
        let channel = Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        RemoteArtifacts::new(channel).put(bytes.into()).await.unwrap().to_string()
    }

    async fn next(&mut self) -> MasterEvent {
        tokio::time::timeout(Duration::from_secs(120), self.events.recv()).await.unwrap().unwrap()
    }

    /// The next task event (agent events in between are skipped).
    async fn task_event(&mut self) -> TaskEvent {
        loop {
            if let MasterEvent::Task(e) = self.next().await {
                return *e;
            }
        }
    }

    /// RUNNING, then the end, of one attempt.
    async fn run_and_end(&mut self) -> TaskEvent {
        let running = self.task_event().await;
        assert_eq!(running.state, TaskState::Running, "{running:?}");
        let end = self.task_event().await;
        assert_eq!(end.task, running.task);
        end
    }
}

type Client = AgentClient<InterceptedService<Channel, Credentials>>;

async fn client(agent: &AgentHandle) -> Client {
    let channel =
        Channel::from_shared(format!("http://{}", agent.address())).unwrap().connect().await.unwrap();
    AgentClient::with_interceptor(channel, Credentials::new(TOKEN).unwrap())
}

async fn launch(agent: &AgentHandle, spec: v1::TaskSpec) -> Result<(), Status> {
    client(agent).await.launch_task(v1::LaunchTaskRequest { task: Some(spec) }).await.map(|_| ())
}

fn step(kind: v1::StepKind, function: &str) -> v1::Step {
    v1::Step { kind: kind as i32, function: function.into() }
}

fn task(c: &Cluster, job: &str, stage: u32, partition: u32, component: &str) -> v1::TaskSpec {
    v1::TaskSpec {
        task: Some(v1::TaskRef { job_id: job.into(), stage_id: stage, partition, attempt: 0 }),
        component: component.into(),
        artifact_source: c.addr.to_string(),
        limits: Some(v1::TaskLimits {
            fuel: 50_000_000_000,
            memory_bytes: 128 << 20,
            deadline_ms: 60_000,
            ..Default::default()
        }),
        output: Some(v1::TaskOutput { sink: Some(task_output::Sink::Result(v1::ResultOutput { limit: 0 })) }),
        ..Default::default()
    }
}

fn text_input(location: &str, split: &TextSplit) -> Option<v1::TaskInput> {
    Some(v1::TaskInput {
        source: Some(task_input::Source::Text(v1::TextSplit {
            location: location.into(),
            object: split.path.to_string(),
            start: split.start,
            end: split.end,
            file_len: split.file_len,
        })),
    })
}

/// Some text: a skewed vocabulary, mixed case, runs of blanks.
fn text() -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = String::new();
    while out.len() < 60 << 10 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let w = (state % 97) * (state % 97) / 97;
        out.push_str(if state.is_multiple_of(5) { "Word" } else { "word" });
        out.push_str(&w.to_string());
        out.push_str(if state.is_multiple_of(11) {
            "\n"
        } else if state.is_multiple_of(7) {
            " \t "
        } else {
            " "
        });
    }
    out
}

/// A text file and its splits.
async fn input(dir: &Path, min_partitions: usize) -> (String, String, Vec<TextSplit>) {
    let text = text();
    let path = dir.join("in.txt");
    std::fs::write(&path, &text).unwrap();
    let location = path.display().to_string();
    let parsed = DataLocation::parse(&location, &S3Config::default()).unwrap();
    let splits = plan_text_splits(&parsed, min_partitions, 128 << 20).await.unwrap();
    (text, location, splits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registers_heartbeats_and_stops_cleanly() {
    let mut c = cluster(Duration::from_millis(100)).await;
    let agent = c.agent("a", 2).await;
    assert!(agent.agent_id().starts_with("agent-"), "{agent:?}");
    // Ten intervals: a heartbeating agent is never lost.
    let quiet = tokio::time::timeout(Duration::from_secs(1), c.events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");

    let addr = agent.local_addr();
    agent.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the server stopped");
    assert!(matches!(c.next().await, MasterEvent::AgentLost(_)), "heartbeats stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_is_registered_with_again() {
    let mut c = cluster(Duration::from_millis(100)).await;
    let agent = c.agent("a", 1).await;
    let first = agent.agent_id();
    let (addr, dir) = (c.addr, std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap()));
    c.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new master on the same address knows nothing: heartbeats say reregister.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut again = cluster_on(listener, Duration::from_millis(100), dir).await;
    assert!(matches!(again.next().await, MasterEvent::AgentRegistered(_)));
    assert!(agent.agent_id().starts_with("agent-"), "{first} → {}", agent.agent_id());
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_token_fails_start_and_the_master_keeps_serving() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let err = AgentNode::start(c.config("bad", 1).with_cluster_token("guess")).await.unwrap_err();
    let NodeError::Register { status, .. } = &err else { panic!("{err}") };
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(err.to_string().contains("--cluster-token"), "{err}");
    let agent = c.agent("good", 1).await;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_split_through_split_words_returns_the_words() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 2).await;
    let wordcount = c.push(guest("wordcount")).await;
    let (text, location, splits) = input(c.dir.path(), 3).await;
    let mut words = Vec::new();
    for (i, split) in splits.iter().enumerate() {
        let mut spec = task(&c, "job-words", 0, i as u32, &wordcount);
        spec.input = text_input(&location, split);
        spec.chain = vec![step(v1::StepKind::FlatMap, "split_words")];
        launch(&agent, spec).await.unwrap();
        let end = c.run_and_end().await;
        assert_eq!(
            (end.state, end.end.clone()),
            (TaskState::Finished, Some(EndReason::Finished)),
            "{}",
            end.log
        );
        assert_eq!(end.count as usize, strings(&end.result).len());
        words.extend(strings(&end.result));
    }
    let native: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    assert_eq!(words, native);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_component_fails_its_task_and_the_agent_serves_on() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let junk = c.push((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()).await;
    let mut spec = task(&c, "job-junk", 0, 0, &junk);
    spec.input = Some(v1::TaskInput { source: Some(task_input::Source::Records(lines(&["a b"]).into())) });
    launch(&agent, spec).await.unwrap();
    let end = c.run_and_end().await;
    assert_eq!(end.state, TaskState::Failed);
    let Some(EndReason::GuestError { message }) = &end.end else { panic!("{:?}", end.end) };
    assert!(message.contains("not a valid WebAssembly component"), "{message}");

    let wordcount = c.push(guest("wordcount")).await;
    let mut spec = task(&c, "job-junk", 0, 1, &wordcount);
    spec.input = Some(v1::TaskInput { source: Some(task_input::Source::Records(lines(&["a B"]).into())) });
    spec.chain = vec![step(v1::StepKind::FlatMap, "split_words")];
    launch(&agent, spec).await.unwrap();
    let end = c.run_and_end().await;
    assert_eq!((end.state, strings(&end.result)), (TaskState::Finished, vec!["a".into(), "b".into()]));
    agent.shutdown().await.unwrap();
}

fn lines(lines: &[&str]) -> Vec<u8> {
    let mut w = BatchWriter::new();
    for l in lines {
        w.push(l.as_bytes());
    }
    w.finish()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_beyond_the_slots_are_refused_and_a_kill_frees_the_slot() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let hostile = c.push(guest("hostile")).await;
    let mut base = task(&c, "job-slots", 0, 0, &hostile);
    base.input = Some(v1::TaskInput { source: Some(task_input::Source::Records(lines(&["zz"]).into())) });
    base.chain = vec![step(v1::StepKind::Map, "sleep")];
    base.limits.as_mut().unwrap().deadline_ms = 3_000;
    let sleeping = |partition: u32| {
        let mut spec = base.clone();
        spec.task.as_mut().unwrap().partition = partition;
        spec
    };
    launch(&agent, sleeping(0)).await.unwrap();
    let err = launch(&agent, sleeping(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    assert_eq!(c.task_event().await.state, TaskState::Running);

    let task = sleeping(0).task;
    let killed = client(&agent).await.kill_task(v1::KillTaskRequest { task: task.clone() }).await.unwrap();
    assert!(killed.into_inner().was_running);
    let end = c.task_event().await;
    assert_eq!((end.state, end.end), (TaskState::Killed, Some(EndReason::Killed)));
    let again = client(&agent).await.kill_task(v1::KillTaskRequest { task }).await.unwrap();
    assert!(!again.into_inner().was_running, "already ended");

    launch(&agent, sleeping(1)).await.unwrap();
    assert_eq!(c.task_event().await.state, TaskState::Running);
    agent.shutdown().await.unwrap();
    let end = c.task_event().await;
    assert_eq!(end.state, TaskState::Killed, "shutdown kills running attempts");
}
