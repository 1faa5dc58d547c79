//! The `Driver` service acts only for the job whose capability a call
//! carries: a fake agent (a real `Agent` gRPC service on loopback) receives
//! two jobs' drivers with their capabilities, as a real agent would, and
//! acts for each with its own, with none and with the other's.

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
    ActRequest, KillTasksRequest, KillTasksResponse, LaunchTasksRequest, LaunchTasksResponse,
    RegisterRequest, Resources, SubmitRequest, act_request,
};
use weft_core::proto::{PROTOCOL_VERSION, job_id};
use weft_master::node::{MasterConfig, MasterNode};

const TOKEN: &str = "weft_c_cluster-secret-for-the-driver-tests";
const CLIENT: &str = "weft_t_client-secret-for-the-driver-tests";

/// An agent that takes every launch and keeps the capabilities it was sent.
#[derive(Clone, Default)]
struct FakeAgent {
    capabilities: Arc<Mutex<HashMap<JobId, JobCapability>>>,
}

#[tonic::async_trait]
impl Agent for FakeAgent {
    async fn launch_tasks(
        &self,
        request: Request<LaunchTasksRequest>,
    ) -> Result<Response<LaunchTasksResponse>, Status> {
        for access in request.into_inner().access {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_acts_only_with_its_own_jobs_capability() {
    let dir = tempfile::tempdir().unwrap();
    let m = MasterNode::start(MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cluster_token: TOKEN.into(),
        client_token: CLIENT.into(),
        grants: vec![Grant { root: dir.path().display().to_string(), access: Access::Read, s3: None }],
        data_dir: dir.path().join("master"),
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
    master
        .register(RegisterRequest {
            protocol_version: PROTOCOL_VERSION,
            address: address.to_string(),
            resources: Some(Resources { slots: 4, memory_bytes: 4 << 30, queue: 0 }),
            ..Default::default()
        })
        .await
        .unwrap();

    // Two jobs; their drivers go to the fake agent, with their capabilities.
    // (Bytes that start like a component: the drivers never run.)
    let wasm = dir.path().join("job.wasm");
    std::fs::write(&wasm, [0, b'a', b's', b'm', 0x0d, 0, 1, 0]).unwrap();
    let mut jobs = JobsClient::with_interceptor(channel.clone(), Credentials::new(CLIENT).unwrap());
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let submit = SubmitRequest {
            artifact: format!("file://{}", wasm.display()),
            name: name.into(),
            ..Default::default()
        };
        let job = jobs.submit(submit).await.unwrap().into_inner().job;
        ids.push(job_id(job.as_ref(), "SubmitResponse").unwrap());
    }
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
    m.shutdown().await;
}
