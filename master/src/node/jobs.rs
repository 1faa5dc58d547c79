//! The `Jobs` service clients submit to, watch and kill jobs through.
//!
//! Submitting resolves the job's artifact (any artifact URI), checks it is a
//! WebAssembly component, stores it in the master's artifact store under its
//! digest (agents fetch it from there), and hands the job to the core, which
//! places its driver as a task. The job ends when its driver does. Status,
//! lists and watches read the core's views of jobs; a watch is pushed each
//! change as it happens.

use super::Shared;
use super::core::Command;
use crate::state::{JobPhase, JobSpec, JobView};
use crate::tenants::Client;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};
use weft_core::access::{Access, JobCapability};
use weft_core::artifact::ArtifactUri;
use weft_core::ids::JobId;
use weft_core::limits::TaskLimits;
use weft_core::proto::v1::jobs_server::Jobs;
use weft_core::proto::v1::{self, JobState};
use weft_core::proto::{auth, job_id};

fn status(v: &JobView) -> v1::JobStatus {
    let state = match v.phase {
        JobPhase::Running => JobState::Running,
        JobPhase::Succeeded => JobState::Succeeded,
        JobPhase::Failed => JobState::Failed,
        JobPhase::Killed => JobState::Killed,
    };
    v1::JobStatus {
        job: Some(v.id.into()),
        name: v.name.clone(),
        state: state as i32,
        message: v.message.clone(),
        stages: v
            .stages
            .iter()
            .map(|s| v1::StageStatus {
                action: Some(s.action.into()),
                stage_id: s.progress.stage.0,
                name: format!("action {} {} stage {}", s.action.seq, s.progress.kind, s.progress.stage.0),
                tasks: s.progress.tasks,
                running: s.progress.running,
                finished: s.progress.finished,
                failed: s.progress.failed,
            })
            .collect(),
        totals: Some((&v.totals).into()),
        driver_log: v.driver_log.clone(),
        driver_restarts: v.driver_restarts,
        tenant: v.tenant.clone(),
        fuel_budget: v.fuel_budget.unwrap_or(0),
    }
}

fn requested(job: Option<&v1::JobRef>) -> Result<JobId, Status> {
    job_id(job, "request").map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A job that does not exist, or that the caller may not see (the two are
/// not told apart).
fn no_job(job: JobId) -> Status {
    Status::not_found(format!("no job `{job}`: `weft status` lists your jobs"))
}

impl Shared {
    /// The caller of a client RPC, known by its token.
    pub(super) fn client(&self, md: &tonic::metadata::MetadataMap) -> Result<Client, Status> {
        auth::check_protocol(md, "client")?;
        let Some(token) = auth::bearer(md) else {
            return Err(Status::unauthenticated(
                "the request carries no token: pass --token or set WEFT_TOKEN (a master without configured \
                 tokens printed one when it started)",
            ));
        };
        self.tenants.get().identify(token).cloned().ok_or_else(|| {
            Status::unauthenticated(
                "the master knows no such token: check --token or WEFT_TOKEN (tokens are configured in the \
                 master's tenants file or by its --client-token)",
            )
        })
    }

    /// The view of `id` if `who` may see it.
    pub(super) async fn visible(&self, who: &Client, id: JobId) -> Result<JobView, Status> {
        let view = self.core.call(move |c| c.view(id)).await?;
        view.filter(|v| who.can_see(&v.tenant)).ok_or_else(|| no_job(id))
    }
}

/// Whether `bytes` start like a WebAssembly component (not a core module).
fn check_component(bytes: &[u8]) -> Result<(), Status> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(Status::invalid_argument(
            "the artifact is a core WebAssembly module, not a component: build the job for wasm32-wasip2 with the weft SDK",
        )),
        _ => Err(Status::invalid_argument(
            "the artifact is not WebAssembly: submit the job's .wasm component (build it for wasm32-wasip2)",
        )),
    }
}

fn artifact_status(e: weft_core::artifact::ArtifactError) -> Status {
    weft_core::artifact::remote::status(e)
}

/// A job's task limits: each field it sets (0 takes the cluster's default),
/// none over the cluster's maximum.
fn limits(
    asked: Option<&v1::TaskLimits>,
    default: &TaskLimits,
    max: &TaskLimits,
) -> Result<TaskLimits, Status> {
    let asked = asked.cloned().unwrap_or_default();
    let pick = |v: u64, d: u64| if v == 0 { d } else { v };
    let l = TaskLimits {
        fuel: pick(asked.fuel, default.fuel),
        memory: bytesize::ByteSize::b(pick(asked.memory_bytes, default.memory.as_u64())),
        deadline: Duration::from_millis(pick(asked.deadline_ms, millis(default.deadline))),
        log: bytesize::ByteSize::b(pick(asked.log_bytes, default.log.as_u64())),
        output_per_call: bytesize::ByteSize::b(pick(
            asked.output_per_call_bytes,
            default.output_per_call.as_u64(),
        )),
        slots: if asked.slots == 0 { default.slots } else { asked.slots },
    };
    let over = |what: &str, flag: &str, asked: String, max: String| {
        Err(Status::invalid_argument(format!(
            "{what} {asked} is over this cluster's maximum of {max}: ask for at most that ({flag})"
        )))
    };
    if l.fuel > max.fuel {
        return over("task fuel", "--fuel", l.fuel.to_string(), max.fuel.to_string());
    }
    if l.memory > max.memory {
        return over("task memory", "--task-memory", l.memory.to_string(), max.memory.to_string());
    }
    if l.slots > max.slots {
        return over("task slots", "--task-slots", l.slots.to_string(), max.slots.to_string());
    }
    if l.deadline > max.deadline {
        let f = |d: Duration| humantime::format_duration(d).to_string();
        return over("task deadline", "--task-deadline", f(l.deadline), f(max.deadline));
    }
    if l.log > max.log {
        return over("task log", "the job's log limit", l.log.to_string(), max.log.to_string());
    }
    if l.output_per_call > max.output_per_call {
        let (a, m) = (l.output_per_call.to_string(), max.output_per_call.to_string());
        return over("output per call", "the job's output limit", a, m);
    }
    Ok(l)
}

/// The most driver restarts a job may ask for.
const MAX_DRIVER_RESTARTS: u32 = 100;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

type StatusStream = Pin<Box<dyn futures::Stream<Item = Result<v1::JobStatus, Status>> + Send>>;
type UsageStream = Pin<Box<dyn futures::Stream<Item = Result<v1::UsageRow, Status>> + Send>>;

#[tonic::async_trait]
impl Jobs for Shared {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        let who = self.client(request.metadata())?;
        let req = request.into_inner();
        // Checked first: a refused submission costs no fetch.
        let limits = limits(req.limits.as_ref(), &self.config.task_limits, &self.config.max_task_limits)?;
        let uri = ArtifactUri::parse(&req.artifact).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The master fetches a remote or local artifact only where the
        // caller's tenant may read (an s3:// one with the grant's credentials,
        // if it has its own).
        let policy = self.tenants.get().policy(&who.tenant);
        if let Some(url) = uri.source_url() {
            policy.check_url(&url).map_err(|e| Status::permission_denied(e.to_string()))?;
        }
        let s3 = match &uri {
            ArtifactUri::S3 { bucket, key, .. } => policy.s3().for_object(bucket, key, Access::Read),
            _ => None,
        };
        // A component by digest is one this tenant stored, a public one, or
        // an admin's pick.
        if let ArtifactUri::Blake3(d) = &uri
            && !who.admin
            && !self.owners.has(d, &who.tenant)
        {
            return Err(weft_core::artifact::remote::not_yours(d));
        }
        let (digest, bytes) = {
            let _fetching = match uri {
                ArtifactUri::Blake3(_) => None,
                _ => Some(self.fetches.acquire().await.map_err(|_| Status::unavailable("shutting down"))?),
            };
            self.resolver.resolve_with_s3(&uri, s3).await.map_err(artifact_status)?
        };
        check_component(&bytes)?;
        if !matches!(uri, ArtifactUri::Blake3(_)) {
            self.resolver.store().put(bytes).await.map_err(artifact_status)?;
            self.owners.add(digest, &who.tenant);
        }
        if let Some(n) = req.driver_restarts.filter(|n| *n > MAX_DRIVER_RESTARTS) {
            return Err(Status::invalid_argument(format!(
                "--driver-restarts {n} is over the most a job may ask, {MAX_DRIVER_RESTARTS}"
            )));
        }
        let spec = JobSpec {
            name: if req.name.is_empty() { req.artifact.clone() } else { req.name.clone() },
            tenant: who.tenant.to_string(),
            component: digest,
            args: req.args.clone(),
            limits,
            max_task_attempts: match req.max_task_attempts {
                0 => self.config.max_task_attempts,
                n => n,
            },
            driver_restarts: req.driver_restarts.unwrap_or(self.config.driver_restarts),
            deadline: match req.job_deadline_ms {
                0 => self.config.job_deadline,
                ms => Some(Duration::from_millis(ms)),
            },
            working_dir: (!req.working_dir.is_empty()).then(|| req.working_dir.clone().into()),
            capability: JobCapability::fresh().map_err(|e| Status::internal(e.to_string()))?,
            fuel_budget: (req.fuel_budget > 0).then_some(req.fuel_budget),
            s3: std::sync::Arc::new(policy.s3().clone()),
        };
        // A tenant over its fuel quota submits nothing until its window resets.
        // Answered once the state store keeps it: an accepted job survives a restart.
        let id = self
            .core
            .call_kept(move |c| match c.fuel_quota_over(&spec.tenant, std::time::Instant::now()) {
                Some(over) => Err(Status::resource_exhausted(over.to_string())),
                None => Ok(c.submit_job(spec)),
            })
            .await??;
        tracing::info!(job = %id, tenant = %who.tenant, component = %digest, "job submitted");
        Ok(Response::new(v1::SubmitResponse { job: Some(id.into()), component: digest.to_string() }))
    }

    async fn status(&self, request: Request<v1::StatusRequest>) -> Result<Response<v1::JobStatus>, Status> {
        let who = self.client(request.metadata())?;
        let id = requested(request.get_ref().job.as_ref())?;
        Ok(Response::new(status(&self.visible(&who, id).await?)))
    }

    type WatchStream = StatusStream;

    async fn watch(&self, request: Request<v1::StatusRequest>) -> Result<Response<StatusStream>, Status> {
        let who = self.client(request.metadata())?;
        let id = requested(request.get_ref().job.as_ref())?;
        self.visible(&who, id).await?;
        let (reply, rx) = oneshot::channel();
        self.core.send(Command::Watch { job: id, reply }).await?;
        let rx = rx
            .await
            .map_err(|_| Status::unavailable("the master is shutting down"))?
            .ok_or_else(|| no_job(id))?;
        // Every change, the last one (the job's end) included.
        let stream = futures::stream::unfold((rx, false), |(mut rx, done)| async move {
            if done {
                return None;
            }
            let view = rx.borrow_and_update().clone();
            let ended = view.phase != JobPhase::Running;
            if !ended && rx.changed().await.is_err() {
                // The master dropped the watch: its last view is final.
                let last = rx.borrow().clone();
                return Some((Ok(status(&last)), (rx, true)));
            }
            Some((Ok(status(&view)), (rx, ended)))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn kill(&self, request: Request<v1::KillRequest>) -> Result<Response<v1::KillResponse>, Status> {
        let who = self.client(request.metadata())?;
        let id = requested(request.get_ref().job.as_ref())?;
        let may = move |c: &crate::state::Core| c.job(id).is_some_and(|j| who.can_see(&j.spec.tenant));
        let (known, killed) =
            self.core.call(move |c| if may(c) { (true, c.kill(id)) } else { (false, false) }).await?;
        if !known {
            return Err(no_job(id));
        }
        tracing::info!(job = %id, killed, "job kill requested");
        Ok(Response::new(v1::KillResponse {}))
    }

    async fn list(&self, request: Request<v1::ListRequest>) -> Result<Response<v1::ListResponse>, Status> {
        let who = self.client(request.metadata())?;
        let views = self
            .core
            .call(move |c| {
                c.jobs()
                    .into_iter()
                    .filter_map(|j| c.view(j))
                    .filter(|v| who.can_see(&v.tenant))
                    .collect::<Vec<_>>()
            })
            .await?;
        Ok(Response::new(v1::ListResponse { jobs: views.iter().map(status).collect() }))
    }

    async fn tenants(
        &self,
        request: Request<v1::TenantsRequest>,
    ) -> Result<Response<v1::TenantsResponse>, Status> {
        self.tenants_view(request).await
    }

    async fn agents(
        &self,
        request: Request<v1::AgentsRequest>,
    ) -> Result<Response<v1::AgentsResponse>, Status> {
        self.agents_view(request).await
    }

    async fn reserve(
        &self,
        request: Request<v1::ReserveRequest>,
    ) -> Result<Response<v1::ReserveResponse>, Status> {
        self.reserve_rpc(request).await
    }

    async fn unreserve(
        &self,
        request: Request<v1::UnreserveRequest>,
    ) -> Result<Response<v1::ReserveResponse>, Status> {
        self.unreserve_rpc(request).await
    }

    type UsageStream = UsageStream;

    async fn usage(&self, request: Request<v1::UsageRequest>) -> Result<Response<UsageStream>, Status> {
        let who = self.client(request.metadata())?;
        let rows = self.usage_rows(&who, request.into_inner()).await?;
        Ok(Response::new(Box::pin(futures::stream::iter(rows.into_iter().map(Ok)))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_core_modules_and_garbage_are_told_apart() {
        assert!(check_component(&[0, b'a', b's', b'm', 0x0d, 0, 1, 0, 9]).is_ok());
        let core = check_component(&[0, b'a', b's', b'm', 1, 0, 0, 0]).unwrap_err();
        assert!(core.message().contains("core WebAssembly module"));
        assert!(check_component(b"#!/bin/sh\n").unwrap_err().message().contains("not WebAssembly"));
        assert!(check_component(b"").is_err());
    }
}
