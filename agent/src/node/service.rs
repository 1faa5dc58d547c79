//! The `Agent` gRPC service: the master launches and kills attempts here, many
//! in one call.

use super::Shared;
use super::launch::{self, Origin};
use std::sync::Arc;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use weft_core::access::{JobCapability, S3Grant, S3Grants};
use weft_core::ids::Incarnation;
use weft_core::proto::auth;
use weft_core::proto::v1::agent_server::{Agent, AgentServer};
use weft_core::proto::v1::{
    KillTasksRequest, KillTasksResponse, LaunchTasksRequest, LaunchTasksResponse, Refusal, RefusalKind,
    TaskDescriptor,
};
use weft_core::task::{self, MapTable, TaskKey};

/// The `Agent` service of one node.
#[derive(Clone)]
pub(crate) struct AgentService {
    shared: Arc<Shared>,
}

impl AgentService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn into_server(self) -> AgentServer<Self> {
        AgentServer::new(self).max_decoding_message_size(256 << 20)
    }

    /// Start one attempt, or say why not.
    fn launch(
        &self,
        proto: TaskDescriptor,
        origin: &Origin<'_>,
        run: Incarnation,
    ) -> Result<(), (RefusalKind, String)> {
        let shared = &self.shared;
        let invalid = |e: String| (RefusalKind::Invalid, e);
        let descriptor = task::TaskDescriptor::try_from(proto).map_err(|e| invalid(e.to_string()))?;
        let parsed =
            launch::parse(descriptor, origin, &shared.config, &shared.blocks, &shared.tables, &shared.own)
                .map_err(|e| {
                    let kind = match e {
                        launch::LaunchError::Stale { .. } => RefusalKind::Stale,
                        _ => RefusalKind::Invalid,
                    };
                    (kind, e.to_string())
                })?;
        if shared.is_shutting_down() {
            return Err((RefusalKind::Stopping, "the agent is shutting down".into()));
        }
        // A task is admitted if its slots' worth of slots or queue places is
        // free, and waits for its slots; a driver needs a driver slot at once.
        let (admission, what, capacity, n) = match parsed.body {
            launch::Body::Driver { .. } => (&shared.driver_slots, "driver slots", shared.config.slots, 1),
            launch::Body::Task(_) => (
                &shared.admitted,
                "task slots and queue places",
                shared.config.slots + shared.config.queue_depth(),
                parsed.limits.slots.max(1),
            ),
        };
        if n > shared.config.slots {
            let message = format!("the task holds {n} slots; this agent has {}", shared.config.slots);
            return Err((RefusalKind::Invalid, message));
        }
        let permit = Arc::clone(admission).try_acquire_many_owned(n).map_err(|_| {
            let message = format!("all {capacity} {what} of this agent are taken; launch when one frees");
            (RefusalKind::Busy, message)
        })?;
        let (kill, killed) = watch::channel(false);
        {
            let mut running = shared.running();
            if running.contains_key(&parsed.key) {
                return Err((RefusalKind::Duplicate, format!("{} is already running here", parsed.key)));
            }
            running.insert(parsed.key, (kill, run));
        }
        tracing::debug!(task = %parsed.key, "weft.agent.launch");
        tokio::spawn(super::task::run(Arc::clone(shared), parsed, killed, permit));
        Ok(())
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    /// Accept attempts: check the caller, then for each task convert and parse
    /// its descriptor (a malformed one is refused as invalid), take a slot
    /// (none free: refused as busy) and start it. Their ends go to the master
    /// as task updates.
    async fn launch_tasks(
        &self,
        request: Request<LaunchTasksRequest>,
    ) -> Result<Response<LaunchTasksResponse>, Status> {
        auth::check(request.metadata(), &self.shared.config.cluster_token, "master")?;
        let req = request.into_inner();
        // Tables first: the tasks of this call may read them. One that does
        // not convert fails the whole call (the master retries it, backing off).
        for table in req.tables {
            let table = MapTable::try_from(table)
                .map_err(|e| Status::invalid_argument(format!("a map-output table: {e}")))?;
            // The master names only live agents in a table: one it lost
            // lately that registered again there is a peer again, whatever
            // this agent's last heartbeat answer said.
            self.shared.peers.found(table.addresses.iter().map(|a| &**a));
            self.shared.tables.install(table);
        }
        for access in req.access {
            let job = weft_core::proto::job_id(access.job.as_ref(), "JobAccess")
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let key = JobCapability::from_bytes(&access.capability)
                .ok_or_else(|| Status::invalid_argument("a job capability is not 32 bytes"))?;
            self.shared.keys.install(job, key);
            if !access.s3.is_empty() {
                let grants = access
                    .s3
                    .iter()
                    .map(S3Grant::try_from)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Status::invalid_argument(format!("a job's S3 settings: {e}")))?;
                self.shared.keys.install_s3(job, S3Grants::new(grants));
            }
        }
        let origin = Origin {
            artifact_source: &req.artifact_source,
            master: &req.master,
            keys: Some(&self.shared.keys),
        };
        let run = Incarnation(req.master_run);
        // A master that no longer leads (paused past its lease, say) may
        // still send what it had decided: only the run this agent is
        // registered with launches here.
        let registered = self.shared.master.agent_id().map(|id| id.incarnation);
        let stale = run.0 != 0 && registered.is_some_and(|r| r != run);
        let mut refused = Vec::new();
        for proto in req.tasks {
            let task = proto.task;
            let launched = if stale {
                Err((
                    RefusalKind::Stale,
                    format!(
                        "launched by master run {run}; this agent serves run {}",
                        registered.unwrap_or(run)
                    ),
                ))
            } else {
                self.launch(proto, &origin, run)
            };
            if let Err((kind, message)) = launched {
                tracing::debug!(?task, %message, "weft.agent.launch.refused");
                refused.push(Refusal { task, kind: kind as i32, message, free_slots: 0 });
            }
        }
        let free = u32::try_from(self.shared.slots.available_permits()).unwrap_or(u32::MAX);
        for r in &mut refused {
            r.free_slots = free;
        }
        Ok(Response::new(LaunchTasksResponse { refused }))
    }

    /// Stop running attempts; each ends KILLED. Attempts this agent does not
    /// run (finished already, or never here) are skipped.
    async fn kill_tasks(
        &self,
        request: Request<KillTasksRequest>,
    ) -> Result<Response<KillTasksResponse>, Status> {
        auth::check(request.metadata(), &self.shared.config.cluster_token, "master")?;
        let mut killed = 0;
        for task in request.into_inner().tasks {
            let key = TaskKey::try_from(&task).map_err(|e| Status::invalid_argument(e.to_string()))?;
            if let Some((kill, _)) = self.shared.running().get(&key) {
                kill.send_replace(true);
                killed += 1;
                tracing::info!(task = %key, "weft.agent.kill");
            }
        }
        Ok(Response::new(KillTasksResponse { killed }))
    }
}
