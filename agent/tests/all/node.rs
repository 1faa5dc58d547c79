//! Whole agents over loopback gRPC: a recording stand-in `Master` service, the
//! real artifact service, real `AgentNode`s, the real sandbox running guest
//! components, real files. The `Master` and `Driver` services are stand-ins
//! (the master's own are tested with the master): they check what a real
//! master checks and record what agents tell them.

use crate::support::{guest, strings};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use weft_agent::SandboxConfig;
use weft_agent::node::{AgentConfig, AgentHandle, AgentNode, NodeError};
use weft_codec::batch::BatchWriter;
use weft_core::artifact::{ArtifactService, ArtifactStore, Digest, RemoteArtifacts, S3Config};
use weft_core::ids::{ActionId, AgentId, Incarnation, JobId, StageId};
use weft_core::io::{DataLocation, TextSplit, plan_text_splits};
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::plan::{Step, StepKind};
use weft_core::proto::auth::{self, Credentials};
use weft_core::proto::task_state;
use weft_core::proto::v1::agent_client::AgentClient;
use weft_core::proto::v1::driver_server::DriverServer;
use weft_core::proto::v1::master_server::{Master, MasterServer};
use weft_core::proto::v1::{self, RefusalKind};
use weft_core::task::{
    Data, MapTable, TaskBody, TaskDescriptor, TaskInput, TaskKey, TaskOutput, TaskState, TaskWork,
    TextSplitRef,
};

mod driver;
mod shuffle;

const TOKEN: &str = "weft_c_agent-tests-cluster-secret";
/// Silent intervals after which the stand-in master declares an agent lost.
const LOST_AFTER: u32 = 3;

/// What the stand-in master learns from agents.
#[derive(Debug)]
enum MasterEvent {
    /// An agent registered (or registered again, under a new id).
    AgentRegistered(AgentId),
    /// An agent stopped heartbeating.
    AgentLost(AgentId),
    /// A task attempt ended.
    Task(Box<TaskEvent>),
}

/// One task update, as its agent sent it.
#[derive(Debug)]
struct TaskEvent {
    agent: AgentId,
    task: TaskKey,
    state: TaskState,
    end: Option<EndReason>,
    metering: TaskMetering,
    result: Bytes,
    count: u64,
    partition_bytes: Vec<u64>,
    log: String,
}

/// The agents the stand-in master counts: each live one's last heartbeat.
struct Agents {
    incarnation: Incarnation,
    next: u32,
    live: HashMap<AgentId, Instant>,
}

/// A `Master` service that records what agents send, as events.
#[derive(Clone)]
struct RecordingMaster {
    agents: Arc<Mutex<Agents>>,
    interval: Duration,
    events: mpsc::Sender<MasterEvent>,
    /// Batches holding an update of more encoded bytes are refused whole
    /// (`OUT_OF_RANGE`), as a master with a smaller message limit would.
    max_update: Arc<std::sync::atomic::AtomicUsize>,
}

impl RecordingMaster {
    /// Declare agents silent for [`LOST_AFTER`] intervals lost (they must
    /// register again), checking every half interval, until the events' reader is gone.
    async fn sweep_forever(self) {
        let mut tick = tokio::time::interval(self.interval / 2);
        while !self.events.is_closed() {
            tick.tick().await;
            let lost: Vec<AgentId> = {
                let mut agents = self.agents.lock().unwrap();
                let now = Instant::now();
                let silent: Vec<AgentId> = agents
                    .live
                    .iter()
                    .filter(|(_, seen)| now.duration_since(**seen) > self.interval * LOST_AFTER)
                    .map(|(id, _)| *id)
                    .collect();
                for id in &silent {
                    agents.live.remove(id);
                }
                silent
            };
            for id in lost {
                let _ = self.events.send(MasterEvent::AgentLost(id)).await;
            }
        }
    }

    /// Whether `id` names a live agent; a heartbeat from it counts.
    fn seen(&self, id: Option<&v1::AgentRef>) -> bool {
        let Some(id) = id.and_then(|r| AgentId::try_from(r).ok()) else { return false };
        match self.agents.lock().unwrap().live.get_mut(&id) {
            Some(seen) => {
                *seen = Instant::now();
                true
            }
            None => false,
        }
    }
}

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

#[tonic::async_trait]
impl Master for RecordingMaster {
    async fn register(
        &self,
        request: Request<v1::RegisterRequest>,
    ) -> Result<Response<v1::RegisterResponse>, Status> {
        auth::check(request.metadata(), TOKEN, "agent")?;
        let id = {
            let mut agents = self.agents.lock().unwrap();
            let id = AgentId { incarnation: agents.incarnation, seq: agents.next };
            agents.next += 1;
            agents.live.insert(id, Instant::now());
            id
        };
        self.events.send(MasterEvent::AgentRegistered(id)).await.unwrap();
        Ok(Response::new(v1::RegisterResponse {
            agent_id: Some(id.into()),
            heartbeat_interval_ms: self.interval.as_millis() as u64,
            // No job of this run is said to have ended: its jobs are kept.
            live_jobs: Vec::new(),
            newest_job: 0,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<v1::HeartbeatRequest>,
    ) -> Result<Response<v1::HeartbeatResponse>, Status> {
        auth::check(request.metadata(), TOKEN, "agent")?;
        let known = self.seen(request.get_ref().agent_id.as_ref());
        Ok(Response::new(v1::HeartbeatResponse { reregister: !known, lost_peers: Vec::new() }))
    }

    async fn update_tasks(
        &self,
        request: Request<v1::TaskUpdates>,
    ) -> Result<Response<v1::TaskUpdatesResponse>, Status> {
        auth::check(request.metadata(), TOKEN, "agent")?;
        let updates = request.into_inner();
        let max = self.max_update.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(large) = updates.updates.iter().map(prost::Message::encoded_len).find(|&n| n > max) {
            return Err(Status::out_of_range(format!("an update of {large} bytes passes the {max} allowed")));
        }
        // As the real master: updates from an agent it does not count are not taken.
        if !self.seen(updates.agent_id.as_ref()) {
            return Ok(Response::new(v1::TaskUpdatesResponse { reregister: true }));
        }
        let agent = AgentId::try_from(updates.agent_id.as_ref().unwrap()).unwrap();
        for u in updates.updates {
            let event = TaskEvent {
                agent,
                task: TaskKey::try_from(u.task.as_ref().ok_or_else(|| bad("an update without its task"))?)
                    .map_err(bad)?,
                state: task_state(u.state).map_err(bad)?,
                end: u.end.as_ref().map(EndReason::try_from).transpose().map_err(bad)?,
                metering: u.metering.as_ref().map(TaskMetering::from).unwrap_or_default(),
                result: match u.result.map(Data::try_from).transpose().map_err(bad)? {
                    Some(Data::Inline(b)) => b,
                    Some(Data::Block { digest, .. }) => {
                        return Err(bad(format!("a result block {digest} where inline bytes were expected")));
                    }
                    None => Bytes::new(),
                },
                count: u.count,
                partition_bytes: u.partition_bytes,
                log: u.log,
            };
            self.events.send(MasterEvent::Task(Box::new(event))).await.unwrap();
        }
        Ok(Response::new(v1::TaskUpdatesResponse { reregister: false }))
    }
}

/// A master (the recording Master, Artifacts, a stand-in Driver service) on loopback.
struct Cluster {
    addr: SocketAddr,
    events: mpsc::Receiver<MasterEvent>,
    driver: Arc<Mutex<Vec<v1::ActRequest>>>,
    /// How long the stand-in Driver takes per action.
    act_delay: Arc<Mutex<Duration>>,
    /// The largest update the stand-in Master takes.
    max_update: Arc<std::sync::atomic::AtomicUsize>,
    /// The RPC timeout of agents started from now on.
    rpc_timeout: Duration,
    stop: Option<oneshot::Sender<()>>,
    dir: tempfile::TempDir,
}

async fn cluster(interval: Duration) -> Cluster {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    cluster_on(listener, interval, Incarnation(1), tempfile::tempdir().unwrap()).await
}

/// A master run numbered `incarnation` (its agents' ids carry it) on `listener`.
async fn cluster_on(
    listener: tokio::net::TcpListener,
    interval: Duration,
    incarnation: Incarnation,
    dir: tempfile::TempDir,
) -> Cluster {
    let (tx, events) = mpsc::channel(256);
    let agents = Agents { incarnation, next: 0, live: HashMap::new() };
    let max_update = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let master = RecordingMaster {
        agents: Arc::new(Mutex::new(agents)),
        interval,
        events: tx,
        max_update: Arc::clone(&max_update),
    };
    tokio::spawn(master.clone().sweep_forever());
    let artifacts = ArtifactService::new(
        ArtifactStore::local(dir.path().join("artifacts")).unwrap(),
        Arc::new(weft_core::artifact::ClusterGate::new(TOKEN)),
    );
    let driver = Arc::new(Mutex::new(Vec::new()));
    let act_delay = Arc::new(Mutex::new(Duration::ZERO));
    let fake = driver::FakeDriver { acts: Arc::clone(&driver), act_delay: Arc::clone(&act_delay) };
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(MasterServer::new(master).max_decoding_message_size(256 << 20))
            .add_service(artifacts.into_server())
            .add_service(DriverServer::new(fake))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Cluster {
        addr,
        events,
        driver,
        act_delay,
        max_update,
        rpc_timeout: Duration::from_secs(5),
        stop: Some(stop),
        dir,
    }
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
        let MasterEvent::AgentRegistered(id) = self.next().await else { panic!("no registration") };
        assert_eq!(agent.agent_id(), Some(id), "the agent keeps the id it was given");
        agent
    }

    /// Push a component to the master's artifact store; its digest.
    async fn push(&self, bytes: Vec<u8>) -> Digest {
        let channel = Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap();
        RemoteArtifacts::new(channel, Credentials::new(TOKEN).unwrap()).put(bytes.into()).await.unwrap()
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

    /// The next task event: an attempt's end, the only update agents send.
    async fn end(&mut self) -> TaskEvent {
        let end = self.task_event().await;
        assert!(end.state.is_terminal() && end.end.is_some(), "only ends are reported: {end:?}");
        end
    }

    /// Launch `task` on `agent` as this master does; `Err` when the agent refused it.
    async fn launch(&self, agent: &AgentHandle, task: &TaskDescriptor) -> Result<(), v1::Refusal> {
        self.launch_reading(agent, task, &[]).await
    }

    /// Launch `task` with the map-output `tables` it reads.
    async fn launch_reading(
        &self,
        agent: &AgentHandle,
        task: &TaskDescriptor,
        tables: &[MapTable],
    ) -> Result<(), v1::Refusal> {
        let address = self.addr.to_string();
        launch_with(agent, &address, &address, task, tables).await
    }
}

type Client = AgentClient<InterceptedService<Channel, Credentials>>;

async fn client(agent: &AgentHandle) -> Client {
    let channel =
        Channel::from_shared(format!("http://{}", agent.address())).unwrap().connect().await.unwrap();
    AgentClient::with_interceptor(channel, Credentials::new(TOKEN).unwrap())
}

/// Launch `task` alone, naming the master's Artifacts and Driver services
/// (empty: the agent's configured master); `Err` when it was refused.
async fn launch_with(
    agent: &AgentHandle,
    artifact_source: &str,
    master: &str,
    task: &TaskDescriptor,
    tables: &[MapTable],
) -> Result<(), v1::Refusal> {
    let request = v1::LaunchTasksRequest {
        artifact_source: artifact_source.into(),
        master: master.into(),
        tasks: vec![v1::TaskDescriptor::from(task)],
        tables: tables.iter().map(Into::into).collect(),
        // The job's capability, as a master sends it with the job's tasks.
        access: vec![v1::JobAccess {
            job: Some(task.key.job().into()),
            capability: vec![5; 32].into(),
            s3: vec![],
        }],
        master_run: task.key.job().incarnation.0,
    };
    let mut refused = client(agent).await.launch_tasks(request).await.unwrap().into_inner().refused;
    assert!(refused.len() <= 1, "{refused:?}");
    match refused.pop() {
        None => Ok(()),
        Some(r) => {
            assert_eq!(r.task, Some((&task.key).into()), "the refusal names the task");
            Err(r)
        }
    }
}

/// Kill `task` on `agent`; how many attempts were running.
async fn kill(agent: &AgentHandle, task: &TaskKey) -> u32 {
    let request = v1::KillTasksRequest { tasks: vec![task.into()] };
    client(agent).await.kill_tasks(request).await.unwrap().into_inner().killed
}

/// Job `seq` of the (stand-in) master's first run.
fn job(seq: u32) -> JobId {
    JobId { incarnation: Incarnation(1), seq }
}

/// Attempt 0 of a task of `job`'s first action: no input yet, its records
/// back to the master.
fn task(job: JobId, stage: u32, partition: u32, component: Digest) -> TaskDescriptor {
    TaskDescriptor {
        key: TaskKey { action: ActionId { job, seq: 1 }, stage: StageId(stage), partition, attempt: 0 },
        component,
        limits: TaskLimits::default()
            .with_fuel(50_000_000_000)
            .with_memory(128 << 20)
            .with_deadline(Duration::from_secs(60)),
        broadcasts: Default::default(),
        body: TaskBody::Work(Box::new(TaskWork {
            input: TaskInput::Records(Bytes::new().into()),
            chain: Arc::from([]),
            input_keyed: false,
            output_keyed: false,
            output: TaskOutput::Records { limit: None },
            cache: Vec::new(),
        })),
    }
}

/// The work of a non-driver task, to fill in.
fn work(task: &mut TaskDescriptor) -> &mut TaskWork {
    match &mut task.body {
        TaskBody::Work(w) => w,
        TaskBody::Driver(_) => panic!("a driver task has no work"),
    }
}

fn step(kind: StepKind, function: &str) -> Step {
    Step::new(kind, function)
}

fn text_input(location: &str, split: &TextSplit) -> TaskInput {
    TaskInput::Text(TextSplitRef {
        location: location.into(),
        object: split.path.to_string(),
        start: split.start,
        end: split.end,
        file_len: split.file_len,
        lines: weft_core::io::LineFormat::Utf8,
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
    let id = agent.agent_id().unwrap();
    assert_eq!(id, AgentId { incarnation: Incarnation(1), seq: 0 });
    // Ten intervals: a heartbeating agent is never lost.
    let quiet = tokio::time::timeout(Duration::from_secs(1), c.events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");

    let addr = agent.local_addr();
    agent.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the server stopped");
    let lost = c.next().await;
    assert!(matches!(lost, MasterEvent::AgentLost(l) if l == id), "heartbeats stopped: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_is_registered_with_again() {
    let mut c = cluster(Duration::from_millis(100)).await;
    let agent = c.agent("a", 1).await;
    let first = agent.agent_id().unwrap();
    let (addr, dir) = (c.addr, std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap()));
    c.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A new master run on the same address knows nothing: heartbeats say reregister.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut again = cluster_on(listener, Duration::from_millis(100), Incarnation(2), dir).await;
    let MasterEvent::AgentRegistered(second) = again.next().await else { panic!("no registration") };
    assert_eq!(second, AgentId { incarnation: Incarnation(2), seq: 0 }, "after {first}");
    // The event goes out before the reply reaches the agent: give it a moment.
    let asked = Instant::now();
    while agent.agent_id() != Some(second) {
        assert!(asked.elapsed() < Duration::from_secs(10), "the agent kept {:?}", agent.agent_id());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
        let mut t = task(job(1), 0, i as u32, wordcount);
        work(&mut t).input = text_input(&location, split);
        work(&mut t).chain = Arc::from([step(StepKind::FlatMap, "split_words")]);
        c.launch(&agent, &t).await.unwrap();
        let end = c.end().await;
        assert_eq!(end.task, t.key);
        assert_eq!(
            (end.state, end.end.clone()),
            (TaskState::Finished, Some(EndReason::Finished)),
            "{}",
            end.log
        );
        assert_eq!(end.count as usize, strings(&end.result).len());
        assert!(end.metering.fuel > 0, "{:?}", end.metering);
        words.extend(strings(&end.result));
    }
    let native: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    assert_eq!(words, native);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_the_master_refuses_as_it_is_is_replaced_by_a_small_failed_one() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 2).await;
    let wordcount = c.push(guest("wordcount")).await;
    let (_text, location, splits) = input(c.dir.path(), 3).await;
    // A split's words make an inline result far larger than 1 KiB.
    c.max_update.store(1024, std::sync::atomic::Ordering::Relaxed);
    let mut t = task(job(1), 0, 0, wordcount);
    work(&mut t).input = text_input(&location, &splits[0]);
    work(&mut t).chain = Arc::from([step(StepKind::FlatMap, "split_words")]);
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!((end.task, end.state), (t.key, TaskState::Failed));
    let Some(EndReason::HostError { message }) = &end.end else { panic!("{end:?}") };
    assert!(
        message.contains("could not be delivered to the master")
            && message.contains("passes the 1024 allowed"),
        "{message}"
    );
    assert!(end.result.is_empty());

    // Small ends still go as they are.
    c.max_update.store(usize::MAX, std::sync::atomic::Ordering::Relaxed);
    let mut t = task(job(1), 0, 1, wordcount);
    work(&mut t).input = text_input(&location, &splits[0]);
    work(&mut t).chain = Arc::from([step(StepKind::FlatMap, "split_words")]);
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!((end.task, end.state), (t.key, TaskState::Finished), "{}", end.log);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_component_fails_its_task_and_the_agent_serves_on() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = c.agent("a", 1).await;
    let junk = c.push((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect()).await;
    let mut t = task(job(2), 0, 0, junk);
    work(&mut t).input = TaskInput::Records(lines(&["a b"]).into());
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
    assert_eq!(end.state, TaskState::Failed);
    let Some(EndReason::GuestError { message }) = &end.end else { panic!("{:?}", end.end) };
    assert!(message.contains("not a valid WebAssembly component"), "{message}");

    let wordcount = c.push(guest("wordcount")).await;
    let mut t = task(job(2), 0, 1, wordcount);
    work(&mut t).input = TaskInput::Records(lines(&["a B"]).into());
    work(&mut t).chain = Arc::from([step(StepKind::FlatMap, "split_words")]);
    c.launch(&agent, &t).await.unwrap();
    let end = c.end().await;
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

/// Wait until `agent` runs an attempt.
async fn until_running(agent: &AgentHandle) {
    let started = Instant::now();
    while agent.running_tasks() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no attempt started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_runs_at_once_never_asks_for_more_memory_than_the_agent_offers() {
    let mut c = cluster(Duration::from_secs(1)).await;
    // Two slots, but memory for one task of 200 MiB at a time.
    let agent = AgentNode::start(c.config("a", 2).with_memory(bytesize::ByteSize::mib(300))).await.unwrap();
    assert!(matches!(c.next().await, MasterEvent::AgentRegistered(_)));
    let hostile = c.push(guest("hostile")).await;
    const DEADLINE: Duration = Duration::from_millis(1500);
    let sleeping = |partition: u32| {
        let mut t = task(job(4), 0, partition, hostile);
        work(&mut t).input = TaskInput::Records(lines(&["zz"]).into());
        work(&mut t).chain = Arc::from([step(StepKind::Map, "sleep")]);
        t.limits = t.limits.clone().with_memory(200 << 20).with_deadline(DEADLINE);
        t
    };
    let launched = Instant::now();
    c.launch(&agent, &sleeping(0)).await.unwrap();
    c.launch(&agent, &sleeping(1)).await.unwrap();
    // Each sleeps past its deadline. With memory for one, the second starts
    // only when the first has ended: the two run one after the other.
    let mut ended = Vec::new();
    for _ in 0..2 {
        let end = c.end().await;
        assert_eq!(end.end, Some(EndReason::Deadline { limit: DEADLINE }), "{end:?}");
        ended.push((end.task.partition, launched.elapsed()));
    }
    let last = ended.iter().map(|(_, at)| *at).max().unwrap();
    assert!(last >= DEADLINE * 2, "both ran at once: {ended:?}");
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_beyond_the_slots_and_queue_are_refused_and_a_kill_frees_the_place() {
    let mut c = cluster(Duration::from_secs(1)).await;
    let agent = AgentNode::start(c.config("a", 1).with_queue(1)).await.unwrap();
    assert!(matches!(c.next().await, MasterEvent::AgentRegistered(_)));
    let hostile = c.push(guest("hostile")).await;
    let mut base = task(job(3), 0, 0, hostile);
    work(&mut base).input = TaskInput::Records(lines(&["zz"]).into());
    work(&mut base).chain = Arc::from([step(StepKind::Map, "sleep")]);
    base.limits.deadline = Duration::from_secs(3);
    let sleeping = |partition: u32| {
        let mut t = base.clone();
        t.key.partition = partition;
        t
    };
    // One slot and one place in the queue: the second task waits, the third is refused.
    c.launch(&agent, &sleeping(0)).await.unwrap();
    c.launch(&agent, &sleeping(1)).await.unwrap();
    let refusal = c.launch(&agent, &sleeping(2)).await.unwrap_err();
    assert_eq!((refusal.kind(), refusal.free_slots), (RefusalKind::Busy, 0), "{refusal:?}");
    assert!(refusal.message.contains("are taken"), "{}", refusal.message);
    until_running(&agent).await;

    // A queued task killed while it waits ends KILLED without having run.
    let queued = sleeping(1).key;
    assert_eq!(kill(&agent, &queued).await, 1, "it was waiting here");
    let end = c.end().await;
    assert_eq!((end.task, end.state, end.end), (queued, TaskState::Killed, Some(EndReason::Killed)));
    assert_eq!(end.metering.fuel, 0, "it never ran");

    let key = sleeping(0).key;
    assert_eq!(kill(&agent, &key).await, 1, "it was running");
    let end = c.end().await;
    assert_eq!((end.task, end.state, end.end), (key, TaskState::Killed, Some(EndReason::Killed)));
    assert_eq!(kill(&agent, &key).await, 0, "already ended");

    c.launch(&agent, &sleeping(2)).await.unwrap();
    until_running(&agent).await;
    agent.shutdown().await.unwrap();
    let end = c.end().await;
    assert_eq!(
        (end.task, end.state),
        (sleeping(2).key, TaskState::Killed),
        "shutdown kills running attempts"
    );
}
