//! Launching tasks on agents over gRPC (their `Agent` service), killing them,
//! and removing a finished job's shuffle files (their `Blocks` service).

use crate::scheduler::{LaunchFuture, Launcher};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use weft_core::ids::AgentId;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::agent_client::AgentClient;
use weft_core::proto::v1::blocks_client::BlocksClient;
use weft_core::proto::v1::{KillTaskRequest, LaunchTaskRequest, RemoveJobRequest, TaskSpec};
use weft_core::task::TaskKey;

type Client = AgentClient<InterceptedService<Channel, Credentials>>;

/// Talks to agents, one lazily connected channel per agent.
pub struct GrpcLauncher {
    credentials: Credentials,
    channels: Mutex<HashMap<AgentId, Channel>>,
    timeout: Duration,
}

impl GrpcLauncher {
    /// A launcher presenting `credentials`, giving up on a launch after `timeout`.
    pub fn new(credentials: Credentials, timeout: Duration) -> Self {
        Self { credentials, channels: Mutex::new(HashMap::new()), timeout }
    }

    fn channel(&self, agent: AgentId, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = channels.get(&agent) {
            return Ok(c.clone());
        }
        let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| format!("agent {agent} has a bad address `{address}`: {e}"))?
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .connect_lazy();
        channels.insert(agent, channel.clone());
        Ok(channel)
    }

    fn client(&self, agent: AgentId, address: &str) -> Result<Client, String> {
        Ok(AgentClient::with_interceptor(self.channel(agent, address)?, self.credentials.clone()))
    }
}

fn failed(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

impl Launcher for GrpcLauncher {
    fn launch(&self, agent: AgentId, address: &str, spec: TaskSpec) -> LaunchFuture {
        let client = self.client(agent, address);
        Box::pin(async move {
            let mut c = client?;
            c.launch_task(LaunchTaskRequest { task: Some(spec) }).await.map(|_| ()).map_err(failed)
        })
    }

    fn kill(&self, agent: AgentId, address: &str, task: &TaskKey) -> LaunchFuture {
        let client = self.client(agent, address);
        let task = Some(task.into());
        Box::pin(async move { client?.kill_task(KillTaskRequest { task }).await.map(|_| ()).map_err(failed) })
    }

    fn remove_shuffles(&self, agent: AgentId, address: &str, scope: &str) -> LaunchFuture {
        let channel = self.channel(agent, address);
        let (credentials, job_id) = (self.credentials.clone(), scope.to_string());
        Box::pin(async move {
            let mut c = BlocksClient::with_interceptor(channel?, credentials);
            c.remove_job(RemoveJobRequest { job_id }).await.map(|_| ()).map_err(failed)
        })
    }
}
