//! The driver task's [`ActionRunner`]: a client of the master's `Driver`
//! service.
//!
//! The master owns the job's plan; the driver
//! ([`PlanDriver`](crate::driver::PlanDriver)) keeps only what it needs to
//! check new datasets, and each `Act` carries the part of the plan the master
//! has not seen yet (new datasets, cache marks, broadcast values): one round
//! trip per action, blocking until its job ends. Parallelized partitions and
//! broadcast values over 64 KiB go to the master's artifact store first
//! ([`put`](ActionRunner::put)); result parts held there are fetched back.
//!
//! The guest calls the runner from a [`WasmPool`](crate::WasmPool) thread; the
//! RPCs themselves run on the agent's I/O runtime (spawned on its handle), so
//! the pool threads never drive network I/O. A kill (or the agent's shutdown)
//! makes a pending call return an error at once, which ends the guest's `main`.

use crate::driver::{Action, ActionResult, ActionRunner, RunnerFuture};
use std::future::Future;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::access::JobCapability;
use weft_core::artifact::RemoteArtifacts;
use weft_core::codec::batch::{BatchWriter, entries};
use weft_core::ids::{DatasetId, JobId};
use weft_core::plan::PlanDelta;
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::driver_client::DriverClient;
use weft_core::proto::v1::{self, act_request};
use weft_core::task::Data;

type Client = DriverClient<InterceptedService<Channel, Credentials>>;

/// An [`ActionRunner`] over the master's `Driver` service for one job.
pub(crate) struct GrpcRunner {
    client: Client,
    /// The master's artifact store: parallelized partitions and broadcast
    /// values too large to travel inline go there, results come from there.
    blocks: RemoteArtifacts,
    job: JobId,
    /// The job's capability, presented with every call (the master acts
    /// only for the job whose capability a call carries).
    capability: Option<tonic::metadata::AsciiMetadataValue>,
    /// The driver's attempt number, presented with every action: the master
    /// refuses an attempt it replaced.
    attempt: tonic::metadata::AsciiMetadataValue,
    io: Handle,
    killed: watch::Receiver<bool>,
    /// Actions asked so far (accumulator reads count): each is sent with its
    /// number, so that a driver started again after its agent was lost
    /// adopts what this run's actions did (see the master's `Driver` service).
    acts: u32,
}

impl GrpcRunner {
    /// A runner for `job` over `channel`, presenting its `capability` (as
    /// the master sent it with the job's tasks; without it the master
    /// refuses every action). Call within the I/O runtime; a `true` on
    /// `killed` fails pending and later calls.
    pub(crate) fn new(
        channel: Channel,
        credentials: Credentials,
        job: JobId,
        attempt: u32,
        capability: Option<JobCapability>,
        killed: watch::Receiver<bool>,
    ) -> Self {
        Self {
            blocks: RemoteArtifacts::new(channel.clone(), credentials.clone()),
            client: DriverClient::with_interceptor(channel, credentials),
            job,
            capability: capability.and_then(|c| c.to_hex().parse().ok()),
            attempt: attempt.into(),
            io: Handle::current(),
            killed,
            acts: 0,
        }
    }

    /// Run `call` on the I/O runtime, unless the task is killed first.
    async fn call<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, Status>> + Send + 'static,
    ) -> Result<T, String> {
        let mut killed = self.killed.clone();
        let task = self.io.spawn(call);
        let abort = task.abort_handle();
        tokio::select! {
            joined = task => match joined {
                Ok(r) => r.map_err(|s| s.message().to_owned()),
                Err(e) => Err(format!("driver call failed: {e}")),
            },
            _ = killed.wait_for(|k| *k) => {
                abort.abort();
                Err("the driver task was killed".into())
            }
        }
    }

    /// One batch of the result parts' records, the first `limit` whole
    /// records (pairs when `keyed`) for a take; parts held as blocks are
    /// fetched (verified) from the master's store.
    async fn gather(&self, parts: Vec<v1::Data>, limit: Option<u64>, keyed: bool) -> Result<Vec<u8>, String> {
        let per = if keyed { 2 } else { 1 };
        let limit =
            limit.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(per));
        let mut out = BatchWriter::new();
        let mut entries_taken = 0usize;
        for part in parts {
            if entries_taken >= limit {
                break;
            }
            let bytes = match Data::try_from(part).map_err(|e| e.to_string())? {
                Data::Inline(b) => b,
                Data::Block { digest, .. } => {
                    let blocks = self.blocks.clone();
                    self.call(async move {
                        blocks.get(&digest).await.map_err(|e| Status::unavailable(e.to_string()))
                    })
                    .await
                    .map_err(|e| format!("fetching a result block: {e}"))?
                }
            };
            for e in entries(&bytes) {
                if entries_taken >= limit {
                    break;
                }
                out.push(e.map_err(|e| format!("a task returned a malformed batch: {e}"))?);
                entries_taken += 1;
            }
        }
        Ok(out.finish())
    }

    async fn act(
        &mut self,
        dataset: u32,
        action: act_request::Action,
        plan: Option<v1::PlanDelta>,
    ) -> Result<v1::ActResponse, String> {
        let mut client = self.client.clone();
        self.acts += 1;
        let mut request = tonic::Request::new(v1::ActRequest {
            job: Some(self.job.into()),
            dataset,
            action: Some(action),
            plan,
            seq: self.acts,
        });
        if let Some(capability) = &self.capability {
            request.metadata_mut().insert(JobCapability::HEADER, capability.clone());
        }
        request.metadata_mut().insert(weft_core::proto::DRIVER_ATTEMPT_HEADER, self.attempt.clone());
        self.call(async move { Ok(client.act(request).await?.into_inner()) }).await
    }
}

impl ActionRunner for GrpcRunner {
    fn run<'a>(
        &'a mut self,
        delta: &'a PlanDelta,
        dataset: DatasetId,
        keyed: bool,
        action: Action,
    ) -> RunnerFuture<'a, ActionResult> {
        Box::pin(async move {
            let proto = match &action {
                Action::Collect => act_request::Action::Collect(true),
                Action::Count => act_request::Action::Count(0),
                Action::Take(n) => act_request::Action::Take(*n),
                Action::SaveAsTextFile(uri) => act_request::Action::SaveAsTextFile(uri.clone()),
            };
            let reply = self.act(dataset.0, proto, Some(delta.into())).await?;
            Ok(match action {
                Action::Collect => ActionResult::Records(self.gather(reply.records, None, keyed).await?),
                Action::Take(n) => ActionResult::Records(self.gather(reply.records, Some(n), keyed).await?),
                Action::Count => ActionResult::Count(reply.count),
                Action::SaveAsTextFile(_) => ActionResult::Saved,
            })
        })
    }

    fn put(&mut self, bytes: Vec<u8>) -> RunnerFuture<'_, Data> {
        Box::pin(async move {
            if bytes.len() <= Data::INLINE_MAX {
                return Ok(Data::Inline(bytes.into()));
            }
            let len = bytes.len() as u64;
            let blocks = self.blocks.clone();
            let digest = self
                .call(async move {
                    blocks.put(bytes.into()).await.map_err(|e| Status::unavailable(e.to_string()))
                })
                .await
                .map_err(|e| format!("storing {len} bytes in the master's block store: {e}"))?;
            Ok(Data::Block { digest, len })
        })
    }

    fn accumulator(&mut self, name: &str) -> RunnerFuture<'_, i64> {
        let action = act_request::Action::Accumulator(name.to_owned());
        Box::pin(async move { Ok(self.act(0, action, None).await?.accumulator) })
    }
}
