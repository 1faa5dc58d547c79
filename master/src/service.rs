//! The `Master` gRPC service agents talk to: registration, heartbeats and task
//! updates, each checked for the protocol version and the cluster token.
//!
//! The service owns no scheduling: it keeps the [`Registry`] current and turns
//! what agents report into [`MasterEvent`]s on a channel the scheduler reads —
//! agents registering and being lost, task attempts changing state.

use crate::registry::{Registry, Resources};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use weft_core::ids::{AgentId, ShuffleId};
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::proto::v1::master_server::{Master, MasterServer};
use weft_core::proto::v1::{
    HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse, TaskUpdate, TaskUpdateResponse,
};
use weft_core::proto::{PROTOCOL_VERSION, auth, task_state};
use weft_core::task::{TaskKey, TaskState};

/// What the scheduler learns from agents.
#[derive(Debug, Clone, PartialEq)]
pub enum MasterEvent {
    /// An agent joined (or rejoined under a new id).
    AgentRegistered(AgentId),
    /// An agent stopped heartbeating; its tasks are LOST.
    AgentLost(AgentId),
    /// A task attempt changed state.
    Task(Box<TaskEvent>),
}

/// A task attempt's new state, as its agent reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// The agent running it.
    pub agent: AgentId,
    /// The attempt.
    pub task: TaskKey,
    /// Its new state.
    pub state: TaskState,
    /// How it ended, once it has.
    pub end: Option<EndReason>,
    /// What it consumed.
    pub metering: TaskMetering,
    /// A result task's records (one batch).
    pub result: bytes::Bytes,
    /// A count task's count.
    pub count: u64,
    /// A map task's output bytes per reduce partition.
    pub partition_bytes: Vec<u64>,
    /// For a fetch failure: the map output (shuffle, map partition) that could not be read.
    pub fetch_failed: Option<(ShuffleId, u32)>,
    /// Its bounded log.
    pub log: String,
    /// Its additions to the job's accumulators, by name.
    pub accumulators: BTreeMap<String, i64>,
}

/// The service, sharing its registry with the scheduler.
#[derive(Clone)]
pub struct MasterService {
    registry: Arc<Mutex<Registry>>,
    token: Arc<str>,
    events: mpsc::Sender<MasterEvent>,
}

impl MasterService {
    /// A service over `registry`, requiring `token` (empty: none), sending events to `events`.
    pub fn new(registry: Arc<Mutex<Registry>>, token: &str, events: mpsc::Sender<MasterEvent>) -> Self {
        Self { registry, token: token.into(), events }
    }

    /// The tonic service to mount.
    pub fn into_server(self) -> MasterServer<Self> {
        // Task updates carry result batches (collect, key samples): allow as
        // much as an agent accepts in a launch.
        MasterServer::new(self).max_decoding_message_size(256 << 20)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn emit(&self, event: MasterEvent) {
        if self.events.send(event).await.is_err() {
            tracing::warn!("scheduler gone; dropping an agent event");
        }
    }

    /// Declare silent agents lost every `every`, until the scheduler's channel closes.
    pub async fn sweep_forever(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let lost = self.registry().sweep(Instant::now());
            for id in lost {
                tracing::warn!(agent = %id, "agent missed its heartbeats: LOST");
                if self.events.send(MasterEvent::AgentLost(id)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn versions_match(version: u32) -> Result<(), Status> {
    if version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(Status::failed_precondition(format!(
            "the agent speaks weft protocol {version}, the master {PROTOCOL_VERSION}: run the same weft version on both"
        )))
    }
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let req = request.into_inner();
        versions_match(req.protocol_version)?;
        let r = req.resources.unwrap_or_default();
        if r.slots == 0 {
            return Err(Status::invalid_argument("an agent must offer at least one task slot (--slots)"));
        }
        if req.address.is_empty() {
            return Err(Status::invalid_argument("an agent must give the address its services listen on"));
        }
        let resources = Resources { slots: r.slots, memory: r.memory_bytes };
        let (id, interval) = {
            let mut reg = self.registry();
            let id = reg.register(
                req.address.clone(),
                resources,
                req.attributes.into_iter().collect(),
                Instant::now(),
            );
            (id, reg.interval())
        };
        tracing::info!(agent = %id, address = %req.address, slots = r.slots, "agent registered");
        self.emit(MasterEvent::AgentRegistered(id)).await;
        Ok(Response::new(RegisterResponse {
            agent_id: id.to_string(),
            heartbeat_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let req = request.into_inner();
        versions_match(req.protocol_version)?;
        let Some(id) = parse_agent(&req.agent_id) else {
            return Ok(Response::new(HeartbeatResponse { reregister: true }));
        };
        let reregister = self.registry().heartbeat(id, Instant::now()).is_err();
        Ok(Response::new(HeartbeatResponse { reregister }))
    }

    async fn update_task(
        &self,
        request: Request<TaskUpdate>,
    ) -> Result<Response<TaskUpdateResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let u = request.into_inner();
        let agent = parse_agent(&u.agent_id).ok_or_else(|| Status::invalid_argument("unknown agent id"))?;
        let bad = |e: weft_core::proto::ProtoError| Status::invalid_argument(e.to_string());
        let task = TaskKey::try_from(&u.task.unwrap_or_default()).map_err(bad)?;
        let state = task_state(u.state).map_err(bad)?;
        let fetch_failed = u
            .end
            .as_ref()
            .is_some_and(|e| e.kind == weft_core::proto::v1::EndKind::FetchFailed as i32)
            .then_some((ShuffleId(u.failed_shuffle), u.failed_map));
        let end = match (&u.end, fetch_failed) {
            (Some(e), Some((shuffle, map))) => Some(EndReason::HostError {
                message: format!("could not fetch map output {map} of {shuffle}: {}", e.message),
            }),
            (e, None) => e.as_ref().map(EndReason::try_from).transpose().map_err(bad)?,
            (None, Some(_)) => None,
        };
        if state.is_terminal() && end.is_none() {
            return Err(Status::invalid_argument(format!("{task} ended ({state:?}) without an end reason")));
        }
        let metering = u.metering.as_ref().map(TaskMetering::from).unwrap_or_default();
        let event = TaskEvent {
            agent,
            task,
            state,
            end,
            metering,
            result: u.result,
            count: u.count,
            partition_bytes: u.partition_bytes,
            fetch_failed,
            log: u.log,
            accumulators: u.accumulators.into_iter().collect(),
        };
        self.emit(MasterEvent::Task(Box::new(event))).await;
        Ok(Response::new(TaskUpdateResponse {}))
    }
}

fn parse_agent(s: &str) -> Option<AgentId> {
    s.strip_prefix("agent-")?.parse().ok().map(AgentId)
}
