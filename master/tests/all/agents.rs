//! Agents registering and heartbeating against a real `Master` service.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use weft_core::ids::AgentId;
use weft_core::metering::EndReason;
use weft_core::proto::PROTOCOL_VERSION;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::master_client::MasterClient;
use weft_core::proto::v1::{self, HeartbeatRequest, RegisterRequest, Resources, TaskUpdate};
use weft_core::task::TaskState;
use weft_master::registry::Registry;
use weft_master::service::{MasterEvent, MasterService};

const TOKEN: &str = "cluster-secret";

struct Master {
    addr: SocketAddr,
    events: mpsc::Receiver<MasterEvent>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn start(interval: Duration) -> Master {
    let registry = Arc::new(Mutex::new(Registry::new(interval, 3)));
    let (tx, events) = mpsc::channel(64);
    let service = MasterService::new(registry, TOKEN, tx);
    tokio::spawn(service.clone().sweep_forever(interval / 2));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Master { addr, events, _shutdown: stop }
}

type Client = MasterClient<InterceptedService<Channel, Credentials>>;

async fn client(addr: SocketAddr, token: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    MasterClient::with_interceptor(channel, Credentials::new(token).unwrap())
}

fn register_request(slots: u32) -> RegisterRequest {
    RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        address: "127.0.0.1:9999".into(),
        resources: Some(Resources { slots, memory_bytes: 1 << 30 }),
        attributes: HashMap::from([("rack".to_string(), "r1".to_string())]),
        previous_agent_id: String::new(),
    }
}

fn heartbeat(agent_id: &str) -> HeartbeatRequest {
    HeartbeatRequest { protocol_version: PROTOCOL_VERSION, agent_id: agent_id.into(), running: vec![] }
}

#[tokio::test]
async fn an_agent_registers_heartbeats_and_is_lost_when_silent() {
    let mut m = start(Duration::from_millis(100)).await;
    let mut c = client(m.addr, TOKEN).await;
    let reply = c.register(register_request(4)).await.unwrap().into_inner();
    assert_eq!(reply.heartbeat_interval_ms, 100);
    assert_eq!(m.events.recv().await, Some(MasterEvent::AgentRegistered(AgentId(0))));

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let hb = c.heartbeat(heartbeat(&reply.agent_id)).await.unwrap().into_inner();
        assert!(!hb.reregister, "a heartbeating agent stays registered");
    }
    // Silence: lost after three intervals, then told to register again.
    let lost = tokio::time::timeout(Duration::from_secs(2), m.events.recv()).await.unwrap();
    assert_eq!(lost, Some(MasterEvent::AgentLost(AgentId(0))));
    let hb = c.heartbeat(heartbeat(&reply.agent_id)).await.unwrap().into_inner();
    assert!(hb.reregister);
    let again = c.register(register_request(4)).await.unwrap().into_inner();
    assert_ne!(again.agent_id, reply.agent_id, "a returning agent gets a new id");
}

#[tokio::test]
async fn a_wrong_token_or_protocol_is_refused_and_the_master_keeps_serving() {
    let m = start(Duration::from_secs(1)).await;
    let err = client(m.addr, "guess").await.register(register_request(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("--cluster-token"), "{}", err.message());

    let mut c = client(m.addr, TOKEN).await;
    let mut old = register_request(1);
    old.protocol_version = PROTOCOL_VERSION + 1;
    let err = c.register(old).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("same weft version"), "{}", err.message());

    let err = c.register(register_request(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "zero slots");

    assert!(c.register(register_request(2)).await.is_ok(), "the master still serves");
    let hb = c.heartbeat(heartbeat("agent-99")).await.unwrap().into_inner();
    assert!(hb.reregister, "an unknown agent is told to register");
}

#[tokio::test]
async fn task_updates_reach_the_scheduler_as_domain_events() {
    let mut m = start(Duration::from_secs(1)).await;
    let mut c = client(m.addr, TOKEN).await;
    let id = c.register(register_request(1)).await.unwrap().into_inner().agent_id;
    m.events.recv().await;
    let task = v1::TaskRef { job_id: "job-1".into(), stage_id: 0, partition: 2, attempt: 0 };
    let end = EndReason::OutOfFuel { limit: 10 };
    c.update_task(TaskUpdate {
        agent_id: id.clone(),
        task: Some(task.clone()),
        state: v1::TaskState::Failed as i32,
        end: Some((&end).into()),
        log: "out of gas".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let Some(MasterEvent::Task(ev)) = m.events.recv().await else { panic!("no task event") };
    assert_eq!(
        (ev.state, ev.end, ev.task.partition, ev.log.as_str()),
        (TaskState::Failed, Some(end), 2, "out of gas")
    );

    // An ended task must say why.
    let err = c
        .update_task(TaskUpdate {
            agent_id: id,
            task: Some(task),
            state: v1::TaskState::Finished as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}
