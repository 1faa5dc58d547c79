//! Launching tasks on agents over gRPC.

use crate::scheduler::{LaunchFuture, Launcher};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use weft_core::ids::AgentId;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::agent_client::AgentClient;
use weft_core::proto::v1::{KillTaskRequest, LaunchTaskRequest, TaskRef, TaskSpec};

type Client = AgentClient<InterceptedService<Channel, Credentials>>;

/// Sends tasks to agents' `Agent` service, one lazily connected channel per agent.
pub struct GrpcLauncher {
    credentials: Credentials,
    clients: Mutex<HashMap<AgentId, Client>>,
    timeout: Duration,
}

impl GrpcLauncher {
    /// A launcher presenting `credentials`, giving up on a launch after `timeout`.
    pub fn new(credentials: Credentials, timeout: Duration) -> Self {
        Self { credentials, clients: Mutex::new(HashMap::new()), timeout }
    }

    fn client(&self, agent: AgentId, address: &str) -> Result<Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(&agent) {
            return Ok(c.clone());
        }
        let uri = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
        let channel = Endpoint::from_shared(uri)
            .map_err(|e| format!("agent {agent} has a bad address `{address}`: {e}"))?
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .connect_lazy();
        let client = AgentClient::with_interceptor(channel, self.credentials.clone());
        clients.insert(agent, client.clone());
        Ok(client)
    }

    /// Ask an agent to kill a task attempt.
    pub async fn kill(&self, agent: AgentId, address: &str, task: TaskRef) -> Result<bool, String> {
        let mut c = self.client(agent, address)?;
        c.kill_task(KillTaskRequest { task: Some(task) })
            .await
            .map(|r| r.into_inner().was_running)
            .map_err(|s| s.message().to_string())
    }
}

impl Launcher for GrpcLauncher {
    fn launch(&self, agent: AgentId, address: &str, spec: TaskSpec) -> LaunchFuture {
        let client = self.client(agent, address);
        Box::pin(async move {
            let mut c = client?;
            c.launch_task(LaunchTaskRequest { task: Some(spec) })
                .await
                .map(|_| ())
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        })
    }
}
