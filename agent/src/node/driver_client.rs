//! The driver task's [`ActionRunner`]: a client of the master's `Driver`
//! service.
//!
//! The plan lives in the agent ([`PlanDriver`](crate::driver::PlanDriver));
//! the master learns it incrementally. Before each action the runner sends,
//! with `Define`, what the master has not seen yet, in order: new datasets
//! (ids count from 0 in definition order on both sides, and the runner checks
//! the master returns the same ids), newly cached datasets, new broadcast
//! values. Then `Act` runs the action and blocks until its job ends.
//!
//! The guest calls the runner from a [`WasmPool`](crate::WasmPool) thread; the
//! RPCs themselves run on the agent's I/O runtime (spawned on its handle), so
//! the pool threads never drive network I/O. A kill (or the agent's shutdown)
//! makes a pending call return an error at once, which ends the guest's `main`.

use crate::driver::{Action, ActionResult, ActionRunner, RunnerFuture};
use std::collections::BTreeSet;
use std::future::Future;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use weft_core::artifact::RemoteArtifacts;
use weft_core::codec::batch::{BatchWriter, entries};
use weft_core::ids::{DatasetId, JobId};
use weft_core::plan::{Node, Plan, ShuffleKind};
use weft_core::proto::auth::Credentials;
use weft_core::proto::v1::driver_client::DriverClient;
use weft_core::proto::v1::{self, act_request, define_request};
use weft_core::task::Data;

type Client = DriverClient<InterceptedService<Channel, Credentials>>;

/// An [`ActionRunner`] over the master's `Driver` service for one job.
pub(crate) struct GrpcRunner {
    client: Client,
    /// The master's artifact store: parallelized partitions and broadcast
    /// values too large to travel inline go there, results come from there.
    blocks: RemoteArtifacts,
    job: JobId,
    io: Handle,
    killed: watch::Receiver<bool>,
    /// Datasets, cache marks and broadcasts the master has acknowledged.
    defined: u32,
    cached: BTreeSet<u32>,
    broadcasts: usize,
}

impl GrpcRunner {
    /// A runner for `job` over `channel`. Call within the I/O runtime; a
    /// `true` on `killed` fails pending and later calls.
    pub(crate) fn new(
        channel: Channel,
        credentials: Credentials,
        job: JobId,
        killed: watch::Receiver<bool>,
    ) -> Self {
        Self {
            blocks: RemoteArtifacts::new(channel.clone()),
            client: DriverClient::with_interceptor(channel, credentials),
            job,
            io: Handle::current(),
            killed,
            defined: 0,
            cached: BTreeSet::new(),
            broadcasts: 0,
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

    async fn define(&self, node: define_request::Node, expected: u64) -> Result<(), String> {
        let mut client = self.client.clone();
        let request = v1::DefineRequest { job: Some(self.job.into()), node: Some(node) };
        let id = self.call(async move { Ok(client.define(request).await?.into_inner().id) }).await?;
        if id == expected {
            Ok(())
        } else {
            Err(format!("the master numbered a definition {id}, the driver {expected}: plans out of step"))
        }
    }

    /// Send what the master has not seen of `plan` and `broadcasts`.
    async fn sync(&mut self, plan: &Plan, broadcasts: &[Data]) -> Result<(), String> {
        for id in self.defined..plan.len() as u32 {
            let dataset = plan.get(DatasetId(id)).map_err(|e| e.to_string())?;
            self.define(node(&dataset.node, dataset.keyed), u64::from(id)).await?;
            self.defined = id + 1;
        }
        for id in 0..self.defined {
            let cached = plan.get(DatasetId(id)).is_ok_and(|d| d.cached);
            if cached && !self.cached.contains(&id) {
                self.define(define_request::Node::Cache(id), u64::from(id)).await?;
                self.cached.insert(id);
            }
        }
        for (i, value) in broadcasts.iter().enumerate().skip(self.broadcasts) {
            self.define(define_request::Node::Broadcast(value.into()), i as u64).await?;
            self.broadcasts = i + 1;
        }
        Ok(())
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

    async fn act(&self, dataset: u32, action: act_request::Action) -> Result<v1::ActResponse, String> {
        let mut client = self.client.clone();
        let request = v1::ActRequest { job: Some(self.job.into()), dataset, action: Some(action) };
        self.call(async move { Ok(client.act(request).await?.into_inner()) }).await
    }
}

impl ActionRunner for GrpcRunner {
    fn run<'a>(
        &'a mut self,
        plan: &'a Plan,
        dataset: DatasetId,
        action: Action,
        broadcasts: &'a [Data],
    ) -> RunnerFuture<'a, ActionResult> {
        Box::pin(async move {
            self.sync(plan, broadcasts).await?;
            let proto = match &action {
                Action::Collect => act_request::Action::Collect(true),
                Action::Count => act_request::Action::Count(0),
                Action::Take(n) => act_request::Action::Take(*n),
                Action::SaveAsTextFile(uri) => act_request::Action::SaveAsTextFile(uri.clone()),
            };
            let reply = self.act(dataset.0, proto).await?;
            let keyed = plan.get(dataset).is_ok_and(|d| d.keyed);
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
        Box::pin(async move { Ok(self.act(0, action).await?.accumulator) })
    }
}

/// A plan node as its `Define` message.
pub(crate) fn node(node: &Node, keyed: bool) -> define_request::Node {
    use define_request::Node as D;
    match node {
        Node::TextFile { uri, min_partitions } => {
            D::TextFile(v1::TextFileNode { uri: uri.clone(), min_partitions: *min_partitions })
        }
        Node::Parallelize { partitions } => D::Parallelize(v1::ParallelizeNode {
            partitions: partitions.iter().map(Into::into).collect(),
            keyed,
        }),
        Node::Narrow { parent, step } => {
            D::Narrow(v1::NarrowNode { parent: parent.0, step: Some(step.into()), keyed })
        }
        Node::Shuffle { parent, kind, partitions } => {
            let (kind, function) = match kind {
                ShuffleKind::ReduceByKey { function } => (v1::ShuffleKind::ReduceByKey, function.clone()),
                ShuffleKind::SumByKey => (v1::ShuffleKind::SumByKey, String::new()),
                ShuffleKind::GroupByKey => (v1::ShuffleKind::GroupByKey, String::new()),
                ShuffleKind::SortByKey { ascending: true } => (v1::ShuffleKind::SortAscending, String::new()),
                ShuffleKind::SortByKey { ascending: false } => {
                    (v1::ShuffleKind::SortDescending, String::new())
                }
                ShuffleKind::PartitionBy => (v1::ShuffleKind::PartitionBy, String::new()),
            };
            D::Shuffle(v1::ShuffleNode {
                parent: parent.0,
                kind: kind as i32,
                function,
                partitions: *partitions,
            })
        }
        Node::Join { left, right, partitions } => {
            D::Join(v1::JoinNode { left: left.0, right: right.0, partitions: *partitions })
        }
        Node::Union { a, b } => D::Union(v1::UnionNode { a: a.0, b: b.0 }),
    }
}
