//! The `Master` gRPC service agents talk to: registration, heartbeats and
//! batched task updates, each checked for the protocol version and the
//! cluster token, and handed to the core as commands.

use crate::node::connections::Peer;
use crate::node::core::{Command, CoreHandle};
use crate::state::{Resources, TaskEnd};
use std::time::Instant;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};
use weft_core::ids::{AgentId, DatasetId, JobId};
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::proto::v1::master_server::{Master, MasterServer};
use weft_core::proto::v1::{
    self, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse, TaskUpdates,
    TaskUpdatesResponse,
};
use weft_core::proto::{PROTOCOL_VERSION, ProtoError, auth};
use weft_core::task::{Data, TaskKey};

/// The service, in front of the core.
#[derive(Clone)]
pub(crate) struct MasterService {
    core: CoreHandle,
    token: std::sync::Arc<str>,
}

impl MasterService {
    pub(crate) fn new(core: CoreHandle, token: &str) -> Self {
        Self { core, token: token.into() }
    }

    /// The tonic service to mount.
    pub(crate) fn into_server(self) -> MasterServer<Self> {
        // Task updates carry result batches (collect, key samples).
        MasterServer::new(self).max_decoding_message_size(1 << 30)
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

/// One update as the core reads it.
fn task_end(u: v1::TaskUpdate) -> Result<TaskEnd, ProtoError> {
    let key =
        TaskKey::try_from(&u.task.ok_or(ProtoError::Missing { message: "TaskUpdate", field: "task" })?)?;
    let end =
        EndReason::try_from(&u.end.ok_or(ProtoError::Missing { message: "TaskUpdate", field: "end" })?)?;
    Ok(TaskEnd {
        key,
        end,
        metering: u.metering.as_ref().map(TaskMetering::from).unwrap_or_default(),
        result: u.result.map(Data::try_from).transpose()?.unwrap_or_default(),
        count: u.count,
        partition_bytes: u.partition_bytes,
        log: u.log,
        accumulators: u.accumulators.into_iter().collect(),
        cached: u
            .cached
            .iter()
            .map(|c| (weft_core::ids::DatasetId(c.dataset), c.partition, c.bytes, c.memory))
            .collect(),
    })
}

/// The agent a request names, if it names a valid one.
fn agent_of(r: Option<&v1::AgentRef>) -> Option<AgentId> {
    AgentId::try_from(r?).ok()
}

#[tonic::async_trait]
impl Master for MasterService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let peer = Peer::of(&request).cloned();
        let req = request.into_inner();
        versions_match(req.protocol_version)?;
        let r = req.resources.unwrap_or_default();
        if r.slots == 0 {
            return Err(Status::invalid_argument("an agent must offer at least one task slot (--slots)"));
        }
        if req.address.is_empty() {
            return Err(Status::invalid_argument("an agent must give the address its services listen on"));
        }
        let resources = Resources { slots: r.slots, memory: r.memory_bytes, queue: r.queue };
        let attributes = req.attributes.into_iter().collect();
        let address = req.address;
        let reservations = req
            .reservations
            .into_iter()
            .map(|r| (r.role, crate::free::Demand { places: r.slots, memory: r.memory_bytes }))
            .collect();
        // An id of another master run names no live agent here, only what an
        // agent had under it before this master restarted.
        let previous = req.previous_agent_id.as_ref().and_then(|p| AgentId::try_from(p).ok());
        let (id, interval, (live, newest)) = self
            .core
            .call(move |c| {
                let now = Instant::now();
                if let Some(previous) = previous {
                    c.agent_replaced(previous, now);
                }
                let id = c.register_agent_reserving(address, resources, attributes, reservations, now)?;
                if let Some(previous) = previous {
                    c.agent_returned(previous, id);
                }
                Ok::<_, String>((id, c.agents.interval(), c.live_jobs()))
            })
            .await?
            .map_err(|e| Status::invalid_argument(format!("the agent's --reserve: {e}")))?;
        if let Some(peer) = peer {
            tracing::debug!(agent = %id, from = ?peer.remote_addr(), "the agent's connection is watched");
            peer.carries(id);
        }
        Ok(Response::new(RegisterResponse {
            agent_id: Some(id.into()),
            heartbeat_interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            live_jobs: live.into_iter().map(Into::into).collect(),
            newest_job: newest,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let peer = Peer::of(&request).cloned();
        let req = request.into_inner();
        versions_match(req.protocol_version)?;
        // An id the master never gave (another master run's, or none) is
        // told to register again, never taken for the agent holding it now.
        let Some(id) = agent_of(req.agent_id.as_ref()) else {
            return Ok(Response::new(HeartbeatResponse { reregister: true, lost_peers: Vec::new() }));
        };
        let memory = req.memory.map(|m| crate::state::AgentMemory {
            held: m.held_bytes,
            resident: m.resident_bytes,
            peak_resident: m.peak_resident_bytes,
            cached_memory: m.cached_memory_bytes,
            cached_disk: m.cached_disk_bytes,
        });
        let dropped: Vec<(JobId, DatasetId, u32)> = req
            .dropped
            .iter()
            .filter_map(|d| {
                let job = weft_core::proto::job_id(d.job.as_ref(), "DroppedPartition").ok()?;
                Some((job, DatasetId(d.dataset), d.partition))
            })
            .collect();
        // What the agent runs, for reconciliation; a reference that is not
        // a task's is no attempt of this master's.
        let running: Vec<TaskKey> = req.running.iter().filter_map(|r| TaskKey::try_from(r).ok()).collect();
        let (known, lost_peers) = self
            .core
            .call(move |c| {
                let now = Instant::now();
                let known = c.heartbeat_running(id, &running, now);
                if let Some(m) = memory.filter(|_| known) {
                    c.agent_memory(id, m);
                }
                if known {
                    c.forget_cached(id, &dropped);
                }
                (known, c.lost_peers(now))
            })
            .await?;
        // The connection's end is news of the agent (see `connections`).
        if let Some(peer) = peer.filter(|_| known) {
            peer.carries(id);
        }
        Ok(Response::new(HeartbeatResponse { reregister: !known, lost_peers }))
    }

    async fn update_tasks(
        &self,
        request: Request<TaskUpdates>,
    ) -> Result<Response<TaskUpdatesResponse>, Status> {
        auth::check(request.metadata(), &self.token, "agent")?;
        let req = request.into_inner();
        let Some(agent) = agent_of(req.agent_id.as_ref()) else {
            return Ok(Response::new(TaskUpdatesResponse { reregister: true }));
        };
        let ends = req
            .updates
            .into_iter()
            .map(task_end)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (reply, known) = oneshot::channel();
        self.core.send(Command::TaskEnds { agent, ends, reply }).await?;
        let known = known.await.map_err(|_| Status::unavailable("the master is shutting down"))?;
        Ok(Response::new(TaskUpdatesResponse { reregister: !known }))
    }
}
