//! The `Agent` gRPC service: the master launches and kills attempts here.

use super::Shared;
use super::launch;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use weft_core::proto::auth;
use weft_core::proto::v1::agent_server::{Agent, AgentServer};
use weft_core::proto::v1::{KillTaskRequest, KillTaskResponse, LaunchTaskRequest, LaunchTaskResponse};
use weft_core::task::TaskKey;

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
}

#[tonic::async_trait]
impl Agent for AgentService {
    /// Accept an attempt: check the caller, parse the spec (a malformed one is
    /// `INVALID_ARGUMENT`), take a slot (none free: `RESOURCE_EXHAUSTED`) and
    /// start it. Progress and the end go to the master as task updates.
    async fn launch_task(
        &self,
        request: Request<LaunchTaskRequest>,
    ) -> Result<Response<LaunchTaskResponse>, Status> {
        let shared = &self.shared;
        auth::check(request.metadata(), &shared.config.cluster_token, "master")?;
        let spec =
            request.into_inner().task.ok_or_else(|| Status::invalid_argument("LaunchTask without a task"))?;
        let parsed = launch::parse(spec, &shared.config, &shared.blocks)?;
        if shared.is_shutting_down() {
            return Err(Status::unavailable("the agent is shutting down"));
        }
        let (slots, what) = match parsed.body {
            launch::Body::Driver { .. } => (&shared.driver_slots, "driver"),
            launch::Body::Task(_) => (&shared.slots, "task"),
        };
        let permit = Arc::clone(slots).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "all {} {what} slots of this agent are busy; launch when one frees",
                shared.config.slots
            ))
        })?;
        let (kill, killed) = watch::channel(false);
        {
            let mut running = shared.running();
            if running.contains_key(&parsed.key) {
                return Err(Status::already_exists(format!("{} is already running here", parsed.key)));
            }
            running.insert(parsed.key.clone(), kill);
        }
        tracing::info!(task = %parsed.key, "weft.agent.launch");
        tokio::spawn(super::task::run(Arc::clone(shared), parsed, killed, permit));
        Ok(Response::new(LaunchTaskResponse {}))
    }

    /// Stop a running attempt; it ends KILLED. `was_running` is false for an
    /// attempt this agent does not run (finished already, or never here).
    async fn kill_task(
        &self,
        request: Request<KillTaskRequest>,
    ) -> Result<Response<KillTaskResponse>, Status> {
        auth::check(request.metadata(), &self.shared.config.cluster_token, "master")?;
        let task =
            request.into_inner().task.ok_or_else(|| Status::invalid_argument("KillTask without a task"))?;
        let key = TaskKey::try_from(&task).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let was_running = match self.shared.running().get(&key) {
            Some(kill) => {
                kill.send_replace(true);
                true
            }
            None => false,
        };
        tracing::info!(task = %key, was_running, "weft.agent.kill");
        Ok(Response::new(KillTaskResponse { was_running }))
    }
}
