//! The I/O side of the core's decisions towards agents: launching many tasks
//! on an agent in one call, killing attempts, removing a finished job's files.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig};
use weft_core::access::{JobCapability, S3Grants};
use weft_core::ids::{AgentId, DatasetId, JobId};
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::agent_client::AgentClient;
use weft_core::proto::v1::blocks_client::BlocksClient;
use weft_core::proto::v1::{self, KillTasksRequest, LaunchTasksRequest, RemoveJobRequest};
use weft_core::task::{MapTable, TaskDescriptor, TaskKey};

/// The future a [`Launcher`] call returns: `Err` with a message when the call
/// did not reach the agent or the agent refused it.
pub type LaunchFuture<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// Talks to agents: the core's only way out to them.
pub trait Launcher: Send + Sync {
    /// Launch `tasks` on the agent at `address` in one call, installing
    /// `tables`, the jobs' capabilities (`access`) and S3 settings (`s3`)
    /// first; the refusals.
    fn launch(
        &self,
        agent: AgentId,
        address: &str,
        tasks: &[TaskDescriptor],
        tables: &[Arc<MapTable>],
        access: &[(JobId, JobCapability)],
        s3: &[(JobId, Arc<S3Grants>)],
    ) -> LaunchFuture<Vec<v1::Refusal>>;
    /// Kill the attempts `tasks` on that agent (each reports `KILLED` as usual).
    fn kill(&self, agent: AgentId, address: &str, tasks: &[TaskKey]) -> LaunchFuture<()>;
    /// Delete the shuffle files and persisted partitions the agent keeps
    /// for `job` (with `dataset`, only that dataset's persisted partitions).
    fn remove_job(
        &self,
        agent: AgentId,
        address: &str,
        job: JobId,
        dataset: Option<DatasetId>,
    ) -> LaunchFuture<()>;
}

type Client = AgentClient<InterceptedService<Channel, Credentials>>;

/// Talks to agents over gRPC, one lazily connected channel per agent.
pub struct GrpcLauncher {
    credentials: Credentials,
    channels: Mutex<HashMap<AgentId, Channel>>,
    timeout: Duration,
    /// The master's address, where agents fetch components and drivers act.
    advertised: String,
    /// How it reaches `https://` agents.
    tls: Option<ClientTlsConfig>,
}

impl GrpcLauncher {
    /// A launcher presenting `credentials`, giving up on a call after
    /// `timeout`, telling agents the master is at `advertised`.
    pub fn new(credentials: Credentials, timeout: Duration, advertised: String) -> Self {
        Self { credentials, channels: Mutex::new(HashMap::new()), timeout, advertised, tls: None }
    }

    /// Reach `https://` agents trusting `tls`'s CA.
    pub fn with_tls(mut self, tls: Option<ClientTlsConfig>) -> Self {
        self.tls = tls;
        self
    }

    fn channel(&self, agent: AgentId, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = channels.get(&agent) {
            return Ok(c.clone());
        }
        let channel = weft_core::proto::tls::endpoint(address, self.tls.as_ref())
            .map_err(|e| format!("agent {agent} has a bad address `{address}`: {e}"))?
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(agent, channel.clone());
        Ok(channel)
    }

    fn client(&self, agent: AgentId, address: &str) -> Result<Client, String> {
        Ok(AgentClient::with_interceptor(self.channel(agent, address)?, self.credentials.clone())
            .max_encoding_message_size(usize::MAX))
    }
}

/// Whether secrets may be sent to an agent at `address`: over TLS
/// (`https://`), or to a loopback address (the same machine).
pub(crate) fn secret_safe(address: &str) -> bool {
    if address.starts_with("https://") {
        return true;
    }
    let rest = address.strip_prefix("http://").unwrap_or(address);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn failed(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

impl Launcher for GrpcLauncher {
    fn launch(
        &self,
        agent: AgentId,
        address: &str,
        tasks: &[TaskDescriptor],
        tables: &[Arc<MapTable>],
        access: &[(JobId, JobCapability)],
        s3: &[(JobId, Arc<S3Grants>)],
    ) -> LaunchFuture<Vec<v1::Refusal>> {
        let client = self.client(agent, address);
        // Credentials travel only where nobody else can read them: over TLS
        // or to this machine. Tasks that would need them elsewhere are
        // refused here, saying how to fix it.
        let (s3, mut refused) = if s3.is_empty() || secret_safe(address) {
            (s3, Vec::new())
        } else {
            let held: Vec<JobId> = s3.iter().map(|(j, _)| *j).collect();
            let refused = tasks
                .iter()
                .filter(|t| !t.key.is_driver() && held.contains(&t.key.job()))
                .map(|t| v1::Refusal {
                    task: Some((&t.key).into()),
                    kind: v1::RefusalKind::Invalid as i32,
                    message: format!(
                        "job {} reads or writes S3 with its tenant's credentials, which are sent only over \
                         TLS or to an agent on a loopback address, and agent {agent} at {address} is \
                         neither: serve TLS (start the master and the agents with --tls-cert, --tls-key and \
                         --tls-ca)",
                        t.key.job()
                    ),
                    free_slots: 0,
                })
                .collect();
            (&[][..], refused)
        };
        let sent = |t: &&TaskDescriptor| !refused.iter().any(|r| r.task == Some((&t.key).into()));
        let request = LaunchTasksRequest {
            artifact_source: self.advertised.clone(),
            master: self.advertised.clone(),
            master_run: agent.incarnation.0,
            tasks: tasks.iter().filter(sent).map(Into::into).collect(),
            tables: tables.iter().map(|t| (&**t).into()).collect(),
            access: access
                .iter()
                .map(|(job, cap)| v1::JobAccess {
                    job: Some((*job).into()),
                    capability: cap.0.to_vec().into(),
                    s3: s3
                        .iter()
                        .filter(|(j, _)| j == job)
                        .flat_map(|(_, grants)| grants.iter().map(Into::into))
                        .collect(),
                })
                .collect(),
        };
        Box::pin(async move {
            if request.tasks.is_empty() {
                return Ok(refused);
            }
            let reply = client?.launch_tasks(request).await.map_err(failed)?;
            refused.extend(reply.into_inner().refused);
            Ok(refused)
        })
    }

    fn kill(&self, agent: AgentId, address: &str, tasks: &[TaskKey]) -> LaunchFuture<()> {
        let client = self.client(agent, address);
        let tasks = tasks.iter().map(Into::into).collect();
        Box::pin(
            async move { client?.kill_tasks(KillTasksRequest { tasks }).await.map(|_| ()).map_err(failed) },
        )
    }

    fn remove_job(
        &self,
        agent: AgentId,
        address: &str,
        job: JobId,
        dataset: Option<DatasetId>,
    ) -> LaunchFuture<()> {
        let channel = self.channel(agent, address);
        let credentials = self.credentials.clone();
        let request = RemoveJobRequest { job: Some(job.into()), dataset: dataset.map(|d| d.0) };
        Box::pin(async move {
            let mut c = BlocksClient::with_interceptor(channel?, credentials);
            c.remove_job(request).await.map(|_| ()).map_err(failed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::secret_safe;

    #[test]
    fn secrets_go_only_over_tls_or_to_loopback() {
        for safe in [
            "https://agent.example.org:7071",
            "127.0.0.1:7071",
            "http://127.0.0.2:1",
            "[::1]:7071",
            "http://localhost:9",
        ] {
            assert!(secret_safe(safe), "{safe}");
        }
        for unsafe_ in [
            "10.0.0.5:7071",
            "http://agent.example.org:7071",
            "http://[2001:db8::1]:7071",
            "127.0.0.1.example.org:1",
        ] {
            assert!(!secret_safe(unsafe_), "{unsafe_}");
        }
    }
}
