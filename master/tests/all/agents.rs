//! Agents registering, heartbeating and reporting to a real master over gRPC.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::ids::{AgentId, Incarnation};
use weft_core::metering::EndReason;
use weft_core::proto::PROTOCOL_VERSION;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::master_client::MasterClient;
use weft_core::proto::v1::{self, HeartbeatRequest, RegisterRequest, Resources, TaskUpdate, TaskUpdates};
use weft_master::node::{MasterConfig, MasterHandle, MasterNode};

const TOKEN: &str = "weft_c_cluster-secret-for-the-tests";

async fn start(interval: Duration, dir: &std::path::Path) -> MasterHandle {
    let config = MasterConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        cluster_token: TOKEN.into(),
        data_dir: dir.to_path_buf(),
        heartbeat_interval: interval,
        lost_after: 3,
        ..Default::default()
    };
    MasterNode::start(config).await.unwrap()
}

type Client = MasterClient<InterceptedService<Channel, Credentials>>;

async fn client(addr: SocketAddr, token: &str) -> Client {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    MasterClient::with_interceptor(channel, Credentials::new(token).unwrap())
}

fn register_request(slots: u32) -> RegisterRequest {
    RegisterRequest {
        protocol_version: PROTOCOL_VERSION,
        address: "127.0.0.1:9".into(),
        resources: Some(Resources { slots, memory_bytes: 1 << 30, queue: 0 }),
        attributes: HashMap::from([("rack".to_string(), "r1".to_string())]),
        previous_agent_id: None,
        reservations: vec![],
    }
}

fn heartbeat(agent_id: Option<v1::AgentRef>) -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        agent_id,
        running: vec![],
        memory: None,
        dropped: vec![],
    }
}

#[tokio::test]
async fn an_agent_registers_heartbeats_and_is_lost_when_silent() {
    let dir = tempfile::tempdir().unwrap();
    let m = start(Duration::from_millis(100), dir.path()).await;
    let mut c = client(m.address, TOKEN).await;
    let reply = c.register(register_request(4)).await.unwrap().into_inner();
    assert_eq!(reply.heartbeat_interval_ms, 100);
    let id = AgentId::try_from(reply.agent_id.as_ref().unwrap()).unwrap();
    assert_eq!(id.incarnation, m.incarnation, "the id carries the master's run");

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        let hb = c.heartbeat(heartbeat(reply.agent_id)).await.unwrap().into_inner();
        assert!(!hb.reregister, "a heartbeating agent stays registered");
    }
    // Silence: lost after three intervals, then told to register again.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let hb = c.heartbeat(heartbeat(reply.agent_id)).await.unwrap().into_inner();
    assert!(hb.reregister, "a lost agent must register again");
    let again = c.register(register_request(4)).await.unwrap().into_inner();
    assert_ne!(again.agent_id, reply.agent_id, "a returning agent gets a new id");
    m.shutdown().await;
}

#[tokio::test]
async fn an_id_from_another_master_run_is_told_to_register() {
    let dir = tempfile::tempdir().unwrap();
    let m = start(Duration::from_secs(1), dir.path()).await;
    let mut c = client(m.address, TOKEN).await;
    let mine = c.register(register_request(1)).await.unwrap().into_inner().agent_id.unwrap();
    // The same number, handed out by an earlier run of the master.
    let earlier = Incarnation(m.incarnation.0.wrapping_add(1).max(1));
    let stale = v1::AgentRef { incarnation: earlier.0, seq: mine.seq };
    assert!(c.heartbeat(heartbeat(Some(stale))).await.unwrap().into_inner().reregister);
    assert!(c.heartbeat(heartbeat(None)).await.unwrap().into_inner().reregister, "no id at all");
    let updates = TaskUpdates { agent_id: Some(stale), updates: vec![] };
    assert!(c.update_tasks(updates).await.unwrap().into_inner().reregister, "its updates are not taken");
    assert!(!c.heartbeat(heartbeat(Some(mine))).await.unwrap().into_inner().reregister);
    m.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_protocol_or_update_is_refused_and_the_master_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let m = start(Duration::from_secs(1), dir.path()).await;
    let err = client(m.address, "guess").await.register(register_request(1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("--cluster-token"), "{}", err.message());

    let mut c = client(m.address, TOKEN).await;
    let mut old = register_request(1);
    old.protocol_version = PROTOCOL_VERSION + 1;
    let err = c.register(old).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("same weft version"), "{}", err.message());
    let err = c.register(register_request(0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "zero slots");

    // An ended task must say why, in a well-formed update.
    let id = c.register(register_request(2)).await.unwrap().into_inner().agent_id;
    let no_end = TaskUpdate { task: Some(v1::TaskRef::default()), ..Default::default() };
    let err = c.update_tasks(TaskUpdates { agent_id: id, updates: vec![no_end] }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // An end for a task the master never launched is taken and ignored.
    let job = v1::JobRef { incarnation: m.incarnation.0, seq: 99 };
    let unknown = TaskUpdate {
        task: Some(v1::TaskRef {
            action: Some(v1::ActionRef { job: Some(job), seq: 1 }),
            ..Default::default()
        }),
        end: Some((&EndReason::OutOfFuel { limit: 1 }).into()),
        ..Default::default()
    };
    let reply = c.update_tasks(TaskUpdates { agent_id: id, updates: vec![unknown] }).await.unwrap();
    assert!(!reply.into_inner().reregister);
    assert!(c.register(register_request(2)).await.is_ok(), "the master still serves");
    m.shutdown().await;
}
