//! The `Driver` service: a driver task's actions.
//!
//! The master owns each job's plan. The agent running a job's `main` sends
//! each action (`Act`) with the part of the plan the master has not seen (new
//! datasets, cache marks, broadcast values): one round trip per action. An
//! action becomes a job over the plan: text inputs are
//! split, the stage graph built, text output set up for an atomic commit, the
//! job handed to the scheduler, and the caller answered when it ends.
//!
//! Every call carries the cluster token and the capability of the job it
//! names (`weft-job-capability`, which only the agents running the job's
//! tasks were sent), so an agent, or a bug in one, can act only for the
//! jobs it runs.
//!
//! Actions are numbered in their driver's run, and idempotent: an action
//! runs apart from the call that asked for it, and its answer is kept in the
//! job's state, so a driver started again after its agent was lost (whose
//! actions count from 1 again) gets the answer of an action that ended, or
//! joins one still running, instead of running it again. See
//! `docs/architecture.md` (supervised drivers).

use super::Shared;
use crate::dag;
use crate::dag::{PartitionerSpec, StageKind};
use crate::launch::{JobContext, ResultSink};
use crate::state::{ActRecord, JobOutput, JobResult};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::{Mutex, watch};
use tonic::{Request, Response, Status};
use weft_core::access::{Access, JobCapability};
use weft_core::codec::batch::entries;
use weft_core::ids::{DatasetId, JobId};
use weft_core::io::{DataLocation, OutputCommitter, plan_text_splits_in_waves};
use weft_core::plan::{Node, PlanDelta};
use weft_core::proto::v1::driver_server::Driver;
use weft_core::proto::v1::{self, act_request};
use weft_core::proto::{auth, job_id};
use weft_core::range;
use weft_core::task::Data;

/// Largest text split, whatever the partition count asked for.
const MAX_SPLIT_BYTES: u64 = 64 << 20;

fn bad(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn requested(job: Option<&v1::JobRef>) -> Result<JobId, Status> {
    job_id(job, "request").map_err(bad)
}

/// How a numbered action ends: its answer or its error.
type Answer = Option<Result<v1::ActResponse, Status>>;

/// The numbered actions running now, by job and number: what each asks (see
/// [`ActRecord::asked`]) and where its answer will be.
#[derive(Clone, Default)]
pub(crate) struct RunningActs(Arc<Mutex<HashMap<(JobId, u32), Running>>>);

/// A running action: what it asks, and where its answer will be.
type Running = ([u8; 32], watch::Receiver<Answer>);

/// A digest of what an action asks: its dataset and kind (with its
/// argument). The plan part it carries is left out: a restarted driver
/// sends the whole plan with its first action.
fn asked(dataset: u32, action: &act_request::Action) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&dataset.to_le_bytes());
    h.update(&v1::ActRequest { action: Some(action.clone()), ..Default::default() }.encode_to_vec());
    *h.finalize().as_bytes()
}

fn record(asked: [u8; 32], answer: &Result<v1::ActResponse, Status>) -> ActRecord {
    let answer = match answer {
        Ok(reply) => Ok(reply.encode_to_vec()),
        Err(status) => Err((status.code() as i32, status.message().to_owned())),
    };
    ActRecord { asked, answer }
}

fn replay(record: &ActRecord) -> Result<v1::ActResponse, Status> {
    match &record.answer {
        Ok(bytes) => v1::ActResponse::decode(bytes.as_slice())
            .map_err(|e| Status::internal(format!("a kept action answer does not decode: {e}"))),
        Err((code, message)) => Err(Status::new(tonic::Code::from_i32(*code), message.clone())),
    }
}

impl Shared {
    /// Whether the request presents `job`'s capability (in constant time). A
    /// job that does not exist is refused as another job's capability is, so
    /// a caller learns nothing of which jobs exist.
    async fn check_capability(&self, md: &tonic::metadata::MetadataMap, job: JobId) -> Result<(), Status> {
        let Some(given) = md.get(JobCapability::HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned)
        else {
            return Err(Status::unauthenticated(format!(
                "the driver call for job {job} carries no `{}`: only a driver launched by this master may act",
                JobCapability::HEADER
            )));
        };
        let held = self.core.call(move |c| c.job(job).map(|j| j.spec.capability)).await?;
        match held {
            Some(key) if key.matches_hex(&given) => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "the capability presented is not job {job}'s: a driver acts only for its own job"
            ))),
        }
    }

    /// Refuse the calls of a driver attempt the master replaced (its agent
    /// was lost, a new attempt started elsewhere, and it came back before
    /// it was stopped): only one run of a job's driver acts. A call naming
    /// no attempt (an older agent) is let through.
    async fn check_attempt(&self, md: &tonic::metadata::MetadataMap, job: JobId) -> Result<(), Status> {
        let Some(given) = md.get(weft_core::proto::DRIVER_ATTEMPT_HEADER) else { return Ok(()) };
        let given: u32 =
            given.to_str().ok().and_then(|v| v.parse().ok()).ok_or_else(|| {
                bad(format!("`{}` is not a number", weft_core::proto::DRIVER_ATTEMPT_HEADER))
            })?;
        let current = self.core.call(move |c| c.job(job).map(|j| j.driver_attempt)).await?;
        match current {
            Some(current) if current != given => Err(Status::failed_precondition(format!(
                "driver attempt {given} of job {job} was replaced by attempt {current} (its agent was lost): it may not act"
            ))),
            _ => Ok(()),
        }
    }

    /// Action number `seq` of `job`'s driver: the answer of the action of that
    /// number an earlier run of the driver asked for the same, or joined
    /// while it runs, or else run now, apart from this call (a driver lost
    /// while it waits leaves it running for the driver that replaces it).
    async fn numbered(
        &self,
        job: JobId,
        seq: u32,
        dataset: u32,
        action: act_request::Action,
    ) -> Result<v1::ActResponse, Status> {
        let asked = asked(dataset, &action);
        let mut answer = {
            let mut running = self.acts.0.lock().await;
            match running.get(&(job, seq)) {
                Some((a, answer)) if *a == asked => answer.clone(),
                _ => {
                    let kept = self.core.call(move |c| c.act_record(job, seq).cloned()).await?;
                    match kept {
                        Some(record) if record.asked == asked => {
                            tracing::info!(%job, seq, "a restarted driver's action adopts the earlier run's answer");
                            return replay(&record);
                        }
                        Some(_) => tracing::warn!(
                            %job, seq,
                            "a restarted driver asked its action {seq} for something else than its earlier run did: it runs"
                        ),
                        None => {}
                    }
                    let (tx, rx) = watch::channel(None);
                    running.insert((job, seq), (asked, rx.clone()));
                    let (shared, acts) = (self.clone(), self.acts.clone());
                    tokio::spawn(async move {
                        use futures::FutureExt;
                        let performed = std::panic::AssertUnwindSafe(shared.perform(
                            job,
                            Some((seq, asked)),
                            dataset,
                            action,
                        ))
                        .catch_unwind()
                        .await;
                        let answer = match performed {
                            Ok(answer) => {
                                let kept = record(asked, &answer);
                                // Answered once kept: a driver restarted after a
                                // master restart gets this answer, not a second run.
                                let _ = shared.core.call_kept(move |c| c.record_act(job, seq, kept)).await;
                                answer
                            }
                            // A bug of the master's: this call fails, nothing
                            // is kept, and the number is free to run again.
                            Err(panic) => {
                                let why = panic
                                    .downcast_ref::<String>()
                                    .map(String::as_str)
                                    .or_else(|| panic.downcast_ref::<&str>().copied())
                                    .unwrap_or("a panic");
                                tracing::error!(%job, seq, %why, "weft.master.action.panicked");
                                Err(Status::internal(format!(
                                    "the master failed while running this action: {why}"
                                )))
                            }
                        };
                        tx.send_replace(Some(answer));
                        // Unless a driver asking something else under this
                        // number has replaced the entry meanwhile.
                        let mut running = acts.0.lock().await;
                        if running.get(&(job, seq)).is_some_and(|(a, _)| *a == asked) {
                            running.remove(&(job, seq));
                        }
                    });
                    rx
                }
            }
        };
        let ended = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Status::unavailable("the master is stopping"))?;
        ended.clone().unwrap_or_else(|| Err(Status::internal("an action ended without an answer")))
    }

    /// Run one job of an action (or of a sort's sample) to its end. The outer
    /// error is the master's own; the inner one is how the job failed.
    async fn run_job(&self, ctx: JobContext, graph: dag::JobGraph) -> Result<JobResult, Status> {
        Ok(self.core.run_action(ctx, graph).await?.1)
    }

    /// Range bounds for sorting the keys of dataset `sample` into `partitions`:
    /// a job whose tasks each return a reservoir sample of their keys, each
    /// key weighted by the records it stands for (as Spark's `RangePartitioner`).
    async fn sample_bounds(
        &self,
        ctx: &JobContext,
        sample: DatasetId,
        partitions: u32,
        splits: &BTreeMap<DatasetId, u32>,
    ) -> Result<Vec<Vec<u8>>, Status> {
        let graph = dag::build(&ctx.plan, sample, splits).map_err(bad)?;
        let tasks = graph.result_stage().map_or(1, |s| s.tasks.len());
        let size = range::sample_size_per_task(partitions, u32::try_from(tasks).unwrap_or(u32::MAX));
        let job = JobContext { sink: ResultSink::KeySample(size), ..ctx.clone() };
        let samples = match self.run_job(job, graph).await? {
            Ok(JobOutput::Samples(samples)) => samples,
            Ok(_) => return Err(Status::internal("a sample job returned something else")),
            Err(message) => return Err(Status::aborted(format!("sampling the keys to sort: {message}"))),
        };
        let mut weighted = Vec::new();
        for (records, keys) in samples {
            let keys = match keys {
                Data::Inline(b) => b,
                Data::Block { digest, .. } => self
                    .resolver
                    .store()
                    .get(&digest)
                    .await
                    .map_err(|e| Status::internal(format!("reading a key sample block: {e}")))?,
            };
            let keys = entries(&keys)
                .map(|k| k.map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::internal(format!("a sample task returned a malformed batch: {e}")))?;
            let weight = records as f64 / keys.len().max(1) as f64;
            weighted.extend(keys.into_iter().map(|k| (k, weight)));
        }
        Ok(range::range_bounds(weighted, partitions))
    }
}

#[tonic::async_trait]
impl Driver for Shared {
    async fn act(&self, request: Request<v1::ActRequest>) -> Result<Response<v1::ActResponse>, Status> {
        auth::check(request.metadata(), &self.config.cluster_token, "driver")?;
        let job = requested(request.get_ref().job.as_ref())?;
        self.check_capability(request.metadata(), job).await?;
        self.check_attempt(request.metadata(), job).await?;
        let req = request.into_inner();
        let action = req.action.ok_or_else(|| bad("an action is required"))?;
        // The plan's new part travels with the action: one round trip.
        if let Some(delta) = req.plan {
            let delta = PlanDelta::try_from(delta).map_err(bad)?;
            self.core.call(move |c| c.apply_plan(job, delta)).await?.map_err(bad)?;
        }
        let reply = match req.seq {
            0 => self.perform(job, None, req.dataset, action).await?,
            seq => self.numbered(job, seq, req.dataset, action).await?,
        };
        Ok(Response::new(reply))
    }
}

impl Shared {
    /// What an earlier master run left at the output of a numbered action
    /// it set up (the same number, asking the same, at the same URI): `true`
    /// when the output was committed in full (the action is done); otherwise
    /// what it left is cleared, so that the action runs again from an empty
    /// output.
    async fn resume_output(
        &self,
        c: &OutputCommitter,
        job: JobId,
        numbered: Option<(u32, [u8; 32])>,
        uri: &str,
    ) -> Result<bool, Status> {
        let Some((seq, asked)) = numbered else { return Ok(false) };
        let claim = self.core.call(move |c| c.output_claim(job, seq).cloned()).await?;
        if claim.is_none_or(|(a, u)| a != asked || u != uri) {
            return Ok(false);
        }
        let failed =
            |e: weft_core::io::IoError| Status::unavailable(format!("resuming the output at {uri}: {e}"));
        if c.is_committed().await.map_err(failed)? {
            tracing::info!(%job, seq, %uri, "an earlier master run committed this action's output");
            return Ok(true);
        }
        tracing::info!(%job, seq, %uri, "clearing what an earlier master run left of this action's output");
        c.abort_job().await.map_err(failed)?;
        Ok(false)
    }

    /// Run `action` on `dataset` of `job` (its plan up to date) to its end;
    /// `numbered`: the driver's number for it and what it asks.
    async fn perform(
        &self,
        job: JobId,
        numbered: Option<(u32, [u8; 32])>,
        dataset: u32,
        action: act_request::Action,
    ) -> Result<v1::ActResponse, Status> {
        if let act_request::Action::Accumulator(name) = action {
            let value = self.core.call(move |c| c.accumulator(job, &name)).await?;
            let accumulator = value.ok_or_else(|| Status::not_found(format!("no job `{job}`")))?;
            return Ok(v1::ActResponse { accumulator, ..Default::default() });
        }
        let setup = self
            .core
            .call(move |c| {
                let j = c.job(job)?;
                let slots = c.agents.capacity();
                Some((
                    j.plan.clone(),
                    j.broadcasts.clone(),
                    j.spec.limits.clone(),
                    j.spec.component,
                    j.range_bounds.clone(),
                    j.splits.clone(),
                    slots,
                    j.spec.working_dir.clone(),
                    j.spec.tenant.clone(),
                    std::sync::Arc::clone(&j.spec.s3),
                ))
            })
            .await?;
        let (plan, broadcasts, limits, component, range_bounds, planned, slots, working_dir, tenant, s3) =
            setup.ok_or_else(|| Status::not_found(format!("no job `{job}`")))?;
        // Relative local paths mean the submitter's directory; tasks get
        // absolute URIs. Every location is one the job's tenant is granted
        // (the tenants in force now). An s3:// location under a grant with
        // its own S3 settings is reached with them (as the job's tasks do),
        // any other with the cluster's.
        let policy = self.tenants.get().policy(&tenant);
        let locate = |uri: &str, want: Access| {
            let settings = s3.for_uri(uri, want).unwrap_or(&self.config.s3);
            let loc = DataLocation::parse_in(uri, working_dir.as_deref(), settings).map_err(bad)?;
            policy.check(&loc, want).map_err(|e| Status::permission_denied(e.to_string()))?;
            Ok::<_, Status>(loc)
        };
        let target = DatasetId(dataset);
        plan.get(target).map_err(bad)?;

        // Split the text inputs this action reads (not every input of the
        // plan), once per job: later actions read the same splits. Splits are
        // rounded to whole waves of the cluster's task slots.
        let mut text = BTreeMap::new();
        let mut splits_per = BTreeMap::new();
        for ds in plan.lineage(target).map_err(bad)? {
            if let Ok(d) = plan.get(ds)
                && let Node::TextFile { uri, min_partitions, .. } = &d.node
            {
                let loc = locate(uri, Access::Read)?;
                let splits = match planned.get(&ds) {
                    Some(splits) => splits.clone(),
                    None => {
                        let splits = plan_text_splits_in_waves(
                            &loc,
                            *min_partitions as usize,
                            MAX_SPLIT_BYTES,
                            slots as usize,
                        )
                        .await
                        .map_err(|e| Status::failed_precondition(e.to_string()))?;
                        let splits: std::sync::Arc<[_]> = splits.into();
                        let kept = std::sync::Arc::clone(&splits);
                        self.core.call(move |c| c.set_splits(job, ds, kept)).await?;
                        splits
                    }
                };
                splits_per.insert(ds, splits.len() as u32);
                text.insert(ds, (loc.to_uri(), splits));
            }
        }
        let graph = dag::build(&plan, target, &splits_per).map_err(bad)?;
        let mut ctx = JobContext {
            job,
            component,
            limits,
            broadcasts,
            plan,
            text,
            sink: ResultSink::Count,
            range_bounds,
        };
        let committer = match &action {
            act_request::Action::Collect(_) => {
                ctx.sink = ResultSink::Records { limit: None };
                None
            }
            act_request::Action::Take(n) => {
                ctx.sink = ResultSink::Records { limit: Some(*n) };
                None
            }
            act_request::Action::Count(_) => None,
            act_request::Action::SaveAsTextFile(uri) => {
                let c = OutputCommitter::new(locate(uri, Access::Write)?);
                let uri = c.location().to_uri();
                if self.resume_output(&c, job, numbered, &uri).await? {
                    return Ok(v1::ActResponse::default());
                }
                c.setup_job().await.map_err(|e| Status::failed_precondition(e.to_string()))?;
                if let Some((seq, asked)) = numbered {
                    // Kept before any task writes there.
                    let uri = uri.clone();
                    self.core.call_kept(move |c| c.claim_output(job, seq, asked, uri)).await?;
                }
                ctx.sink = ResultSink::Text(uri);
                Some(c)
            }
            act_request::Action::Accumulator(_) => {
                return Err(Status::internal("an accumulator read reached job planning"));
            }
        };
        // A sort into several partitions needs its range bounds first: sample
        // the keys of the dataset it sorts, once per job (later actions reuse
        // the bounds, and with them the sort's map outputs). Stages come after
        // the stages they read, so an inner sort is sampled before an outer one.
        // The action's own set-up (above) is checked first: a bad output URI
        // costs no sample job.
        for stage in &graph.stages {
            if let StageKind::ShuffleMap {
                shuffle,
                partitions,
                partitioner: PartitionerSpec::RangeFromSample { sample, .. },
                ..
            } = &stage.kind
                && *partitions > 1
                && !ctx.range_bounds.contains_key(shuffle)
            {
                let bounds = match self.sample_bounds(&ctx, *sample, *partitions, &splits_per).await {
                    Ok(bounds) => bounds,
                    Err(status) => {
                        if let Some(c) = committer {
                            let _ = c.abort_job().await;
                        }
                        return Err(status);
                    }
                };
                let (shuffle, kept) = (*shuffle, bounds.clone());
                self.core.call(move |c| c.set_range_bounds(job, shuffle, kept)).await?;
                ctx.range_bounds.insert(shuffle, bounds);
            }
        }
        let output = match self.run_job(ctx, graph).await? {
            Ok(ok) => ok,
            Err(message) => {
                if let Some(c) = committer {
                    let _ = c.abort_job().await;
                }
                return Err(Status::aborted(message));
            }
        };
        let mut response = v1::ActResponse::default();
        match output {
            JobOutput::Count(n) => response.count = n,
            // The driver reads whole records from the parts (up to a take's limit).
            JobOutput::Records(parts) => response.records = parts.iter().map(Into::into).collect(),
            JobOutput::Written(parts) => {
                if let Some(c) = committer
                    && let Err(e) = c.commit_job(parts).await
                {
                    let _ = c.abort_job().await; // publishes nothing of a failed commit
                    return Err(Status::aborted(format!("committing the output: {e}")));
                }
            }
            JobOutput::Samples(_) => return Err(Status::internal("an action's job returned key samples")),
        }
        Ok(response)
    }
}
