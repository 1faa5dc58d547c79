//! One accepted attempt, from RUNNING to its end: fetch and load the
//! component, run it (executor task or driver), report.

use super::Shared;
use super::driver_client::GrpcRunner;
use super::launch::{Body, Parsed, TaskBody};
use super::report::{self, host_report};
use crate::blocks::{CacheKey, RemoteFetcher};
use crate::driver::PlanDriver;
use crate::executor::{Executor, Input, OutputSpec, TaskOutcome, TaskSpec};
use crate::sandbox::{Prepared, TaskContext, TaskInfo};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::Instrument;
use weft_core::artifact::{ArtifactError, Digest, RemoteArtifacts};
use weft_core::metering::EndReason;
use weft_core::proto::v1::{self, TaskUpdate};
use weft_core::task::Data;
use weft_core::task::TaskKey;

/// Run `parsed` to its end and report it. A task admitted to the queue
/// (`permit`) first waits for a slot; a kill while it waits ends it KILLED.
/// The slot is released
/// *before* the final update is queued, so a master that launches the next
/// task on hearing of this one's end finds the slot free; the attempt is
/// forgotten after, so shutdown can wait until every end is queued.
pub(crate) async fn run(
    shared: Arc<Shared>,
    parsed: Parsed,
    mut kill: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) {
    let key = parsed.key;
    let span = tracing::info_span!(
        "weft.agent.task",
        action = %key.action,
        stage_id = key.stage.0,
        partition = key.partition,
        attempt = key.attempt,
    );
    async move {
        let started = Instant::now();
        // A queued task waits here for its slots (drivers hold theirs already).
        let slot = match &parsed.body {
            Body::Task(_) => {
                let slots = Arc::clone(&shared.slots);
                tokio::select! {
                    slot = slots.acquire_many_owned(parsed.limits.slots.max(1)) => slot.ok(),
                    _ = kill.wait_for(|k| *k) => None,
                }
            }
            Body::Driver { .. } => None,
        };
        // Then a task waits for its share of the agent's `--memory` (its
        // memory limit and the host buffers its shuffle reads and writes
        // may fill), so that the tasks running at once never exceed it.
        // Drivers run apart, as they have slots of their own: one waiting on
        // its actions must never hold memory its own tasks wait for.
        let memory = match &parsed.body {
            Body::Task(body) if slot.is_some() => {
                let mib = memory_permits(&shared, &parsed.limits, body);
                tokio::select! {
                    m = take_memory(&shared, mib) => m,
                    _ = kill.wait_for(|k| *k) => None,
                }
            }
            _ => None,
        };
        let killed = || report::ended(&key, &host_report(EndReason::Killed, started.elapsed()));
        let update = if matches!(parsed.body, Body::Task(_)) && memory.is_none() {
            killed()
        } else {
            tokio::select! {
                update = attempt(&shared, parsed, kill.clone()) => update,
                // The executor's future is dropped: nothing is published, and
                // the guest stops at its next batch (within its deadline).
                _ = kill.wait_for(|k| *k) => killed(),
            }
        };
        drop(memory);
        drop(slot);
        drop(permit);
        tracing::debug!(state = update.state, "weft.agent.task.end");
        shared.master.update(update);
        // Forgotten only once its end is queued: shutdown waits for this.
        shared.forget(&key);
    }
    .instrument(span)
    .await;
}

async fn attempt(shared: &Arc<Shared>, parsed: Parsed, kill: watch::Receiver<bool>) -> TaskUpdate {
    let started = Instant::now();
    let key = parsed.key;
    let failed = |end: EndReason| report::ended(&key, &host_report(end, started.elapsed()));
    let prepared = match component(shared, &parsed).await {
        Ok(p) => p,
        Err(end) => return failed(end),
    };
    let broadcasts = match resolve_all(shared, &parsed.artifact_source, &parsed.broadcasts).await {
        Ok(b) => Arc::new(b),
        Err(end) => return failed(end),
    };
    let info = TaskInfo {
        job_id: key.action.to_string(),
        stage_id: key.stage.0,
        partition: key.partition,
        attempt: key.attempt,
    };
    match parsed.body {
        Body::Task(body) => {
            let TaskBody {
                mut input,
                chain,
                input_keyed,
                output_keyed,
                output,
                tables,
                records,
                cached,
                cache,
            } = *body;
            if let Some(block) = records {
                match resolve(shared, &parsed.artifact_source, &block).await {
                    Ok(bytes) => input = crate::executor::Input::Records(bytes.to_vec()),
                    Err(end) => return failed(end),
                }
            }
            if let Some(read) = cached {
                match read_cached(shared, key.job(), read).await {
                    Ok(batches) => input = crate::executor::Input::Batches(batches),
                    Err(end) => return failed(end),
                }
            }
            let reads =
                matches!(input, crate::executor::Input::Shuffle { .. } | crate::executor::Input::Join { .. });
            // Map tasks write there, and reduce tasks spill there.
            if reads || matches!(output, OutputSpec::Shuffle { .. }) {
                let (store, job) = (shared.blocks.clone(), parsed.job.clone());
                let made = tokio::task::spawn_blocking(move || store.create_shuffle_dir(&job)).await;
                if let Err(e) = made.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())) {
                    return failed(EndReason::HostError {
                        message: format!("creating the shuffle directory: {e}"),
                    });
                }
            }
            let mut fetcher = RemoteFetcher::new(key.job(), shared.peers.clone())
                .with_timeout(shared.config.fetch_timeout)
                .with_local(shared.advertise.clone(), shared.blocks.clone());
            if let Some(capability) = shared.keys.get(key.job()) {
                fetcher = fetcher.with_key(capability);
            }
            for (shuffle, table) in tables {
                fetcher = fetcher.with_table(shuffle, table);
            }
            let spec = TaskSpec {
                job: key.action.to_string(),
                stage: key.stage,
                partition: key.partition,
                attempt: key.attempt,
                component: prepared,
                limits: parsed.limits,
                broadcasts,
                input,
                chain,
                input_keyed,
                output_keyed,
                output,
                cache,
            };
            let executor = Executor::new(shared.sandbox.clone(), Arc::clone(&shared.pool), fetcher)
                .with_config(shared.config.executor.clone())
                .with_spill_dir(shared.blocks.shuffle_dir(&parsed.job));
            match execute(executor, spec, kill).await {
                Some(mut outcome) => {
                    let kept = keep(shared, key.job(), std::mem::take(&mut outcome.cached)).await;
                    let mut update = report::outcome(&key, &outcome);
                    update.cached = kept;
                    if let Err(end) = store_result(shared, &parsed.artifact_source, &mut update).await {
                        return failed(end);
                    }
                    update
                }
                None => failed(EndReason::Killed),
            }
        }
        Body::Driver { args, master } => {
            let channel = match report::channel(&master, shared.config.rpc_timeout, None, shared.tls.as_ref())
            {
                Ok(c) => c,
                Err(message) => return failed(EndReason::HostError { message }),
            };
            // Actions block for a whole job: no per-call timeout on this channel
            // beyond the task's deadline, which the sandbox enforces.
            let capability = shared.keys.get(key.job());
            let runner = GrpcRunner::new(
                channel,
                shared.credentials.clone(),
                key.job(),
                key.attempt,
                capability,
                kill,
            );
            let ctx = TaskContext {
                info,
                limits: parsed.limits,
                broadcasts,
                driver: Some(Box::new(PlanDriver::new(args, runner))),
            };
            let sandbox = shared.sandbox.clone();
            let report = shared
                .driver_pool
                .run(move || async move {
                    match sandbox.instantiate(&prepared, ctx).await {
                        Ok(mut instance) => {
                            // The end is recorded in the instance either way.
                            let _ = instance.run_main().await;
                            instance.finish(EndReason::Finished)
                        }
                        Err(report) => report,
                    }
                })
                .await
                .unwrap_or_else(|e| {
                    host_report(EndReason::HostError { message: e.to_string() }, started.elapsed())
                });
            report::ended(&key, &report)
        }
    }
}

/// Run `spec` to its end, or until `kill` (`None`), as a task of its own on
/// the I/O runtime (its guest part runs on the pool), so that a panic in the
/// executor ends this attempt as a host error rather than the agent. A kill
/// drops the executor's future: nothing is published.
async fn execute(
    executor: Executor<RemoteFetcher>,
    spec: TaskSpec,
    mut kill: watch::Receiver<bool>,
) -> Option<TaskOutcome> {
    let run = async move {
        tokio::select! {
            outcome = executor.execute(spec) => Some(outcome),
            _ = kill.wait_for(|k| *k) => None,
        }
    };
    tokio::spawn(run).await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "weft.agent.execute.panicked");
        Some(TaskOutcome {
            report: host_report(
                EndReason::HostError { message: format!("the executor failed: {e}") },
                Default::default(),
            ),
            output: crate::executor::Output::None,
            io: Default::default(),
            cached: Vec::new(),
        })
    })
}

/// The bytes of `data`: inline, or a block fetched by digest from the
/// master's artifact store at `source` through the verifying artifact cache
/// (once per agent), and kept in memory for the tasks that follow.
async fn resolve(shared: &Shared, source: &str, data: &Data) -> Result<Bytes, EndReason> {
    let (digest, len) = match data {
        Data::Inline(b) => return Ok(b.clone()),
        Data::Block { digest, len } => (*digest, *len),
    };
    if let Some(b) = shared.data_blocks.get(&digest) {
        return Ok(b);
    }
    let bytes = fetch(shared, source, digest, &format!("the data block {digest} ({len} bytes)")).await?;
    shared.data_blocks.insert(digest, bytes.clone());
    Ok(bytes)
}

async fn resolve_all(
    shared: &Shared,
    source: &str,
    data: &BTreeMap<u64, Data>,
) -> Result<BTreeMap<u64, Bytes>, EndReason> {
    let mut out = BTreeMap::new();
    for (id, d) in data {
        out.insert(*id, resolve(shared, source, d).await?);
    }
    Ok(out)
}

/// A result too large to travel inline goes to the master's artifact store
/// as a block; the update carries its digest.
async fn store_result(shared: &Shared, source: &str, update: &mut TaskUpdate) -> Result<(), EndReason> {
    let Some(v1::data::Kind::Inline(bytes)) = update.result.as_ref().and_then(|r| r.kind.as_ref()) else {
        return Ok(());
    };
    if bytes.len() <= Data::INLINE_MAX {
        return Ok(());
    }
    let (bytes, len) = (bytes.clone(), bytes.len() as u64);
    let channel = shared
        .artifact_sources
        .channel(source)
        .map_err(|e| EndReason::HostError { message: e.to_string() })?;
    let digest = RemoteArtifacts::new(channel, shared.credentials.clone()).put(bytes).await.map_err(|e| {
        EndReason::HostError {
            message: format!("storing a result of {len} bytes in the master's block store at {source}: {e}"),
        }
    })?;
    update.result = Some((&Data::Block { digest, len }).into());
    Ok(())
}

/// The artifact `digest` (`what`, for messages): from the agent's verifying
/// cache, or fetched once from the artifact service at `source`. A fetch that
/// fails is a host error (retryable).
async fn fetch(shared: &Shared, source: &str, digest: Digest, what: &str) -> Result<Bytes, EndReason> {
    let channel = shared
        .artifact_sources
        .channel(source)
        .map_err(|e| EndReason::HostError { message: e.to_string() })?;
    let remote = RemoteArtifacts::new(channel, shared.credentials.clone());
    shared
        .artifacts
        .get_or_fetch(&digest, || async move {
            remote.get(&digest).await.map_err(|e| ArtifactError::Storage {
                location: format!("the artifact service at {source}"),
                source: object_store::Error::Generic { store: "artifacts", source: Box::new(e) },
            })
        })
        .await
        .map_err(|e| EndReason::HostError { message: format!("fetching {what}: {e}") })
}

/// The attempt's component: fetched by digest through the artifact cache
/// (verified), then compiled and linked on a blocking thread. A component
/// that cannot be fetched is a host error (retryable); one the sandbox
/// refuses is the job's own error, with the sandbox's message.
async fn component(shared: &Shared, parsed: &Parsed) -> Result<Arc<Prepared>, EndReason> {
    let digest = parsed.component;
    if let Some(prepared) = shared.sandbox.prepared(&digest) {
        return Ok(prepared);
    }
    let bytes = fetch(shared, &parsed.artifact_source, digest, &format!("the component {digest}")).await?;
    let sandbox = shared.sandbox.clone();
    tokio::task::spawn_blocking(move || sandbox.load(&digest, &bytes))
        .await
        .map_err(|e| EndReason::HostError { message: format!("loading the component: {e}") })?
        .map_err(|e| EndReason::GuestError { message: e.to_string() })
}

/// `mib` permits of the agent's memory, taken back from persisted partitions
/// where running tasks do not hold enough: evict, then wait. A partition
/// kept meanwhile may take what was evicted, so the wait is bounded and the
/// eviction tried again.
async fn take_memory(shared: &Arc<Shared>, mib: u32) -> Option<OwnedSemaphorePermit> {
    const RETRY: std::time::Duration = std::time::Duration::from_millis(100);
    loop {
        if (shared.memory.available_permits() as u64) < u64::from(mib) {
            let cache = shared.cache.clone();
            let evicted = tokio::task::spawn_blocking(move || cache.make_room(mib)).await;
            if let Ok(Err(e)) = evicted {
                tracing::warn!(error = %e, "weft.agent.cache.evict_failed");
            }
        }
        let acquire = Arc::clone(&shared.memory).acquire_many_owned(mib);
        if let Ok(permit) = tokio::time::timeout(RETRY, acquire).await {
            return permit.ok();
        }
    }
}

/// The agent's memory a task with `limits` holds while it runs, in MiB: its
/// memory limit as the sandbox caps it, plus the budgets of the host buffers
/// its input and output may fill (a shuffle read's merge, a shuffle write's
/// sort buffer), never above the agent's `--memory`, rounded up.
fn memory_permits(shared: &Shared, limits: &weft_core::limits::TaskLimits, body: &TaskBody) -> u32 {
    let executor = &shared.config.executor;
    let reads = matches!(body.input, Input::Shuffle { .. } | Input::Join { .. });
    let writes = matches!(body.output, OutputSpec::Shuffle { .. });
    let host = if reads { executor.reader.memory_budget.as_u64() } else { 0 }
        + if writes { executor.writer.memory_budget as u64 } else { 0 };
    let guest = limits.memory.as_u64().min(shared.sandbox.config().max_limits.memory.as_u64());
    let total = (guest + host).min(shared.config.memory.as_u64());
    u32::try_from(total.div_ceil(1 << 20)).unwrap_or(u32::MAX).max(1)
}

/// The key's [`TaskRef`](weft_core::proto::v1::TaskRef), for heartbeats.
pub(crate) fn task_ref(key: &TaskKey) -> weft_core::proto::v1::TaskRef {
    key.into()
}

/// The batches of a persisted partition: from this agent's store, or from
/// the peer keeping it. A partition that is not there (evicted, its agent
/// gone, its file corrupt) ends the attempt as a cache miss, and the master
/// computes it from lineage instead.
async fn read_cached(
    shared: &Arc<Shared>,
    job: weft_core::ids::JobId,
    read: weft_core::task::CachedRead,
) -> Result<Vec<Bytes>, EndReason> {
    let key = CacheKey { job, dataset: read.dataset, partition: read.partition };
    let miss =
        |message: String| EndReason::CacheMiss { dataset: read.dataset, partition: read.partition, message };
    let found = match &read.address {
        Some(peer) if **peer != *shared.advertise => {
            let capability = shared.keys.get(job);
            shared
                .peers
                .fetch_cached(peer, key, capability.as_ref(), shared.config.fetch_timeout)
                .await
                .map(Some)
                .map_err(|e| e.to_string())
        }
        _ => {
            let cache = shared.cache.clone();
            tokio::task::spawn_blocking(move || cache.get(&key))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
        }
    };
    match found {
        Ok(Some(batches)) => Ok(batches),
        Ok(None) => Err(miss("not kept on this agent (evicted or never kept)".into())),
        Err(message) => Err(miss(message)),
    }
}

/// Keep the persisted partitions an attempt computed; what was kept, for
/// the master. A partition that finds no room is not reported (it is
/// computed again when next needed).
async fn keep(
    shared: &Arc<Shared>,
    job: weft_core::ids::JobId,
    computed: Vec<(weft_core::task::CachePut, Vec<Bytes>)>,
) -> Vec<v1::CachedBlock> {
    if computed.is_empty() {
        return Vec::new();
    }
    let cache = shared.cache.clone();
    let kept = tokio::task::spawn_blocking(move || {
        let mut kept = Vec::new();
        for (put, batches) in computed {
            let key = CacheKey { job, dataset: put.dataset, partition: put.partition };
            match cache.put(key, put.level, batches) {
                Ok(Some(k)) => kept.push(v1::CachedBlock {
                    dataset: put.dataset.0,
                    partition: put.partition,
                    bytes: k.bytes,
                    memory: k.memory,
                }),
                Ok(None) => tracing::debug!(%key, "weft.agent.cache.no_room"),
                Err(e) => tracing::warn!(%key, error = %e, "weft.agent.cache.put_failed"),
            }
        }
        kept
    })
    .await;
    kept.unwrap_or_default()
}
