//! The `Driver` service acts only for the job whose capability a call
//! carries: a fake agent (a real `Agent` gRPC service on loopback) receives
//! two jobs' drivers with their capabilities, as a real agent would, and
//! acts for each with its own, with none and with the other's. Numbered
//! actions are idempotent: the same number asked again (as by a driver
//! started again) joins the running action, then gets its kept answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use weft_core::access::{Access, Grant, JobCapability};
use weft_core::ids::JobId;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::agent_server::{Agent, AgentServer};
use weft_core::proto::v1::driver_client::DriverClient;
use weft_core::proto::v1::jobs_client::JobsClient;
use weft_core::proto::v1::master_client::MasterClient;
use weft_core::proto::v1::{
    ActRequest, AgentRef, KillTasksRequest, KillTasksResponse, LaunchTasksRequest, LaunchTasksResponse,
    RegisterRequest, Resources, SubmitRequest, TaskRef, TaskUpdate, TaskUpdates, act_request,
};
use weft_core::proto::{PROTOCOL_VERSION, job_id};
use weft_master::node::{MasterConfig, MasterHandle, MasterNode};

const TOKEN: &str = "weft_c_cluster-secret-for-the-driver-tests";
const CLIENT: &str = "weft_t_client-secret-for-the-driver-tests";

/// An agent that takes every launch and keeps the capabilities it was sent.
#[derive(Clone, Default)]
struct FakeAgent {
    capabilities: Arc<Mutex<HashMap<JobId, JobCapability>>>,
    /// Every task it was sent, drivers included.
    launched: Arc<Mutex<Vec<TaskRef>>>,
}

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn launch_tasks(
        &self,
        request: Request<LaunchTasksRequest>,
    ) -> Result<Response<LaunchTasksResponse>, Status> {
        let request = request.into_inner();
        self.launched.lock().unwrap().extend(request.tasks.iter().filter_map(|t| t.task));
        for access in request.access {
            let job = job_id(access.job.as_ref(), "JobAccess").unwrap();
            let key = JobCapability::from_bytes(&access.capability).unwrap();
            self.capabilities.lock().unwrap().insert(job, key);
        }
        Ok(Response::new(LaunchTasksResponse { refused: vec![] }))
    }

    async fn kill_tasks(&self, _: Request<KillTasksRequest>) -> Result<Response<KillTasksResponse>, Status> {
        Ok(Response::new(KillTasksResponse { killed: 0 }))
    }
}

type Driver = DriverClient<InterceptedService<Channel, Credentials>>;

/// `Act` reading an accumulator of `job` (no tasks run), presenting `key`.
async fn act(driver: &mut Driver, job: JobId, key: Option<JobCapability>) -> Result<i64, Status> {
    let mut request = Request::new(ActRequest {
        job: Some(job.into()),
        action: Some(act_request::Action::Accumulator("n".into())),
        ..Default::default()
    });
    if let Some(key) = key {
        request.metadata_mut().insert(JobCapability::HEADER, key.to_hex().parse().unwrap());
    }
    Ok(driver.act(request).await?.into_inner().accumulator)
}

/// A master under `dir` and a fake agent of 4 slots registered with it: the
/// master, a channel to it, the agent and its id.
async fn cluster(dir: &std::path::Path) -> (MasterHandle, Channel, FakeAgent, Option<AgentRef>) {
    let m = MasterNode::start(MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cluster_token: TOKEN.into(),
        client_token: CLIENT.into(),
        grants: vec![Grant { root: dir.display().to_string(), access: Access::Read, s3: None }],
        data_dir: dir.join("master"),
        // The fake agent does not heartbeat.
        heartbeat_interval: Duration::from_secs(30),
        ..Default::default()
    })
    .await
    .unwrap();

    let agent = FakeAgent::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AgentServer::new(agent.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(m.url()).unwrap().connect().await.unwrap();
    let mut master = MasterClient::with_interceptor(channel.clone(), Credentials::new(TOKEN).unwrap());
    let registered = master
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            address: address.to_string(),
            resources: Some(Resources { slots: 4, memory_bytes: 4 << 30, queue: 0 }),
            ..Default::default()
        })
        .await
        .unwrap();
    (m, channel, agent, registered.into_inner().agent_id)
}

/// Submit a job named `name` to the master on `channel`; its component is
/// bytes under `dir` that start like one (its driver never runs).
async fn submit(channel: &Channel, dir: &std::path::Path, name: &str) -> JobId {
    let wasm = dir.join("job.wasm");
    std::fs::write(&wasm, [0, b'a', b's', b'm', 0x0d, 0, 1, 0]).unwrap();
    let mut jobs = JobsClient::with_interceptor(channel.clone(), Credentials::new(CLIENT).unwrap());
    let submit = SubmitRequest {
        artifact: format!("file://{}", wasm.display()),
        name: name.into(),
        ..Default::default()
    };
    job_id(jobs.submit(submit).await.unwrap().into_inner().job.as_ref(), "SubmitResponse").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_acts_only_with_its_own_jobs_capability() {
    let dir = tempfile::tempdir().unwrap();
    let (m, channel, agent, _) = cluster(dir.path()).await;
    // Two jobs; their drivers go to the fake agent, with their capabilities.
    let ids = [submit(&channel, dir.path(), "first").await, submit(&channel, dir.path(), "second").await];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agent.capabilities.lock().unwrap().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the drivers were not launched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = |j: JobId| agent.capabilities.lock().unwrap()[&j];
    let (a, b) = (ids[0], ids[1]);
    assert_ne!(key(a), key(b), "each job has its own capability");

    let mut driver = DriverClient::with_interceptor(channel, Credentials::new(TOKEN).unwrap());
    assert_eq!(act(&mut driver, a, Some(key(a))).await.unwrap(), 0, "its own capability");
    assert_eq!(act(&mut driver, b, Some(key(b))).await.unwrap(), 0);
    let none = act(&mut driver, b, None).await.unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{}", none.message());
    assert!(none.message().contains(JobCapability::HEADER), "{}", none.message());
    let other = act(&mut driver, b, Some(key(a))).await.unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "another job's: {}", other.message());
    assert!(other.message().contains(&b.to_string()), "{}", other.message());
    // A job that does not exist reads as one whose capability is wrong.
    let unknown = JobId { seq: 99, ..a };
    let err = act(&mut driver, unknown, Some(key(a))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{}", err.message());
    // The cluster token is still needed: a capability alone is not enough.
    let channel = Channel::from_shared(m.url()).unwrap().connect().await.unwrap();
    let mut anonymous = DriverClient::with_interceptor(channel, Credentials::none());
    let err = act(&mut anonymous, a, Some(key(a))).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
    // Only the driver attempt the master runs acts: attempt 0 is, an
    // attempt that names another number (one it replaced) is refused.
    let named = |attempt: &str| {
        let mut request = Request::new(ActRequest {
            job: Some(a.into()),
            action: Some(act_request::Action::Accumulator("n".into())),
            ..Default::default()
        });
        request.metadata_mut().insert(JobCapability::HEADER, key(a).to_hex().parse().unwrap());
        request.metadata_mut().insert(weft_core::proto::DRIVER_ATTEMPT_HEADER, attempt.parse().unwrap());
        request
    };
    assert_eq!(driver.act(named("0")).await.unwrap().into_inner().accumulator, 0);
    let stale = driver.act(named("1")).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{}", stale.message());
    assert!(stale.message().contains("replaced by attempt 0"), "{}", stale.message());
    let garbled = driver.act(named("x")).await.unwrap_err();
    assert_eq!(garbled.code(), Code::InvalidArgument, "{}", garbled.message());
    m.shutdown().await;
}

/// `Act` number `seq` of `job`: a count of `dataset`, sending `plan`.
fn count_request(
    job: JobId,
    key: JobCapability,
    seq: u32,
    plan: &weft_core::plan::PlanDelta,
) -> Request<ActRequest> {
    let mut request = Request::new(ActRequest {
        job: Some(job.into()),
        dataset: 0,
        plan: Some(plan.into()),
        action: Some(act_request::Action::Count(0)),
        seq,
    });
    request.metadata_mut().insert(JobCapability::HEADER, key.to_hex().parse().unwrap());
    request
}

/// The tasks (not drivers) sent to `agent` so far.
fn tasks(agent: &FakeAgent) -> Vec<TaskRef> {
    let launched = agent.launched.lock().unwrap();
    launched.iter().filter(|t| t.stage != weft_core::task::DRIVER_STAGE.0).copied().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numbered_action_asked_again_joins_the_running_one_and_then_gets_its_kept_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (m, channel, agent, agent_id) = cluster(dir.path()).await;
    let job = submit(&channel, dir.path(), "counted").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while agent.capabilities.lock().unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the driver was not launched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = agent.capabilities.lock().unwrap()[&job];

    // A count of two parallelized partitions, asked as action 1; the driver
    // asking is lost (its call dropped) while the tasks run.
    let mut draft = weft_core::plan::PlanDraft::new();
    let parts = vec![weft_core::task::Data::Inline(vec![1].into()); 2];
    draft.add(weft_core::plan::Node::Parallelize { partitions: parts }, false).unwrap();
    let plan = draft.delta();
    let driver = DriverClient::with_interceptor(channel.clone(), Credentials::new(TOKEN).unwrap());
    let mut first = driver.clone();
    let lost = tokio::spawn(async move { first.act(count_request(job, key, 1, &plan)).await });
    while tasks(&agent).len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "the count's tasks were not launched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lost.abort();
    // The driver started again asks its action 1 again, with its whole plan:
    // it joins the running action (no task is launched again), which ends
    // when the agent reports its tasks.
    let plan = draft.delta();
    let mut second = driver.clone();
    let again = tokio::spawn(async move { second.act(count_request(job, key, 1, &plan)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!again.is_finished(), "answered before its tasks ended");
    let ran = tasks(&agent);
    assert_eq!(ran.len(), 2, "no task launched again: {ran:?}");
    let updates = ran
        .iter()
        .zip([3, 4])
        .map(|(task, count)| TaskUpdate {
            task: Some(*task),
            state: weft_core::proto::v1::TaskState::Finished as i32,
            end: Some((&weft_core::metering::EndReason::Finished).into()),
            count,
            ..Default::default()
        })
        .collect();
    let mut master = MasterClient::with_interceptor(channel.clone(), Credentials::new(TOKEN).unwrap());
    master.update_tasks(TaskUpdates { agent_id, updates }).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), again).await.unwrap().unwrap().unwrap();
    assert_eq!(answer.into_inner().count, 7);
    // Asked once more, it is answered from the job's state at once.
    let plan = draft.delta();
    let kept = driver.clone().act(count_request(job, key, 1, &plan)).await.unwrap().into_inner();
    assert_eq!(kept.count, 7);
    assert_eq!(tasks(&agent).len(), 2, "nothing ran again");
    // The same number asking for something else runs it.
    let mut other = count_request(job, key, 1, &plan);
    other.get_mut().action = Some(act_request::Action::Take(1));
    let mut third = driver.clone();
    let different = tokio::spawn(async move { third.act(other).await });
    while tasks(&agent).len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "a different action 1 did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Stopping with a driver's call open (its action never ends) takes the grace.
    let stopping = tokio::time::Instant::now();
    m.shutdown().await;
    assert!(stopping.elapsed() < weft_master::node::SHUTDOWN_GRACE + Duration::from_secs(2));
    different.abort();
}
