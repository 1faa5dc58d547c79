//! The job table and the `Jobs` service clients submit to.
//!
//! Submitting resolves the job's artifact (any artifact URI), checks it is a
//! WebAssembly component, stores it in the master's artifact store under its
//! digest (agents fetch it from there), and starts the job's driver as a task.
//! The job ends when its driver does.

use super::Shared;
use super::core::Command;
use crate::scheduler::DriverEnd;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::oneshot;
use tonic::{Request, Response, Status};
use weft_core::artifact::{ArtifactUri, Digest};
use weft_core::limits::TaskLimits;
use weft_core::metering::{EndReason, TaskMetering};
use weft_core::plan::Plan;
use weft_core::proto::auth;
use weft_core::proto::v1::jobs_server::Jobs;
use weft_core::proto::v1::{self, JobState};

/// One submitted job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// Its id, `job-N`.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// Who submitted it.
    pub tenant: String,
    /// Its component.
    pub component: Digest,
    /// Where it is.
    pub state: JobState,
    /// Why it failed, when it did.
    pub message: String,
    /// The driver's log, once it ended.
    pub driver_log: String,
    /// Every task's metering, rolled up.
    pub totals: TaskMetering,
    /// The datasets its driver defined.
    pub plan: Plan,
    /// Its broadcast values, by id.
    pub broadcasts: Vec<Vec<u8>>,
    /// Its tasks' limits.
    pub limits: TaskLimits,
    /// Jobs run so far for its actions (and its sorts' sample jobs): the
    /// last number given, see `job-N.<number>`.
    pub jobs_run: u32,
    /// The splits of each text dataset, planned by the first action that read
    /// it: later actions read the same partitions, so their map outputs can be
    /// reused (and the input is listed once).
    pub splits: BTreeMap<weft_core::ids::DatasetId, Vec<weft_core::io::TextSplit>>,
    /// The range bounds of its sorts into several partitions, by shuffle,
    /// sampled by the first action that needed them: later actions use the
    /// same bounds, so the sorts' map outputs can be reused too.
    pub range_bounds: BTreeMap<weft_core::ids::ShuffleId, Vec<Vec<u8>>>,
}

/// All jobs, by id.
#[derive(Debug, Default)]
pub struct JobTable {
    next: u64,
    jobs: BTreeMap<String, JobRecord>,
}

impl JobTable {
    /// Add a job; returns its id.
    pub fn add(&mut self, name: String, tenant: String, component: Digest, limits: TaskLimits) -> String {
        self.next += 1;
        let id = format!("job-{}", self.next);
        let record = JobRecord {
            id: id.clone(),
            name,
            tenant,
            component,
            state: JobState::Running,
            message: String::new(),
            driver_log: String::new(),
            totals: TaskMetering::default(),
            plan: Plan::new(),
            broadcasts: Vec::new(),
            limits,
            jobs_run: 0,
            splits: BTreeMap::new(),
            range_bounds: BTreeMap::new(),
        };
        self.jobs.insert(id.clone(), record);
        id
    }

    /// The job `id`.
    pub fn get(&self, id: &str) -> Option<&JobRecord> {
        self.jobs.get(id)
    }

    /// The job `id`, to change.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut JobRecord> {
        self.jobs.get_mut(id)
    }

    fn status(r: &JobRecord, board: &crate::scheduler::ProgressBoard) -> v1::JobStatus {
        // The stages of the job's latest action (`job-N.<action>`).
        let stages = {
            let board = board.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let prefix = format!("{}.", r.id);
            board
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&prefix).and_then(|n| n.parse::<u32>().ok()).map(|n| (n, v))
                })
                .max_by_key(|(n, _)| *n)
                .map(|(n, stages)| {
                    stages
                        .iter()
                        .map(|p| v1::StageStatus {
                            stage_id: p.stage.0,
                            name: format!("action {n} {} stage {}", p.kind, p.stage.0),
                            tasks: p.tasks,
                            running: p.running,
                            finished: p.finished,
                            failed: p.failed,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        v1::JobStatus {
            job_id: r.id.clone(),
            state: r.state as i32,
            message: r.message.clone(),
            stages,
            totals: Some((&r.totals).into()),
            driver_log: r.driver_log.clone(),
        }
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

type StatusStream = Pin<Box<dyn futures::Stream<Item = Result<v1::JobStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Jobs for Shared {
    async fn submit(
        &self,
        request: Request<v1::SubmitRequest>,
    ) -> Result<Response<v1::SubmitResponse>, Status> {
        auth::check(request.metadata(), &self.config.client_token, "client")?;
        let req = request.into_inner();
        let uri = ArtifactUri::parse(&req.artifact).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (digest, bytes) = self.resolver.resolve(&uri).await.map_err(artifact_status)?;
        check_component(&bytes)?;
        if !matches!(uri, ArtifactUri::Blake3(_)) {
            self.resolver.store().put(bytes).await.map_err(artifact_status)?;
        }
        let limits = match req.limits.as_ref() {
            Some(l) if l.fuel > 0 && l.memory_bytes > 0 && l.deadline_ms > 0 => TaskLimits::from(l),
            _ => self.config.task_limits.clone(),
        };
        let name = if req.name.is_empty() { req.artifact.clone() } else { req.name.clone() };
        let id = self.lock_jobs().add(name, req.tenant.clone(), digest, limits.clone());
        tracing::info!(job = %id, component = %digest, "job submitted");

        let spec = v1::TaskSpec {
            component: digest.to_string(),
            artifact_source: self.advertised.clone(),
            limits: Some((&limits).into()),
            driver: Some(v1::DriverSpec { args: req.args.clone(), master: self.advertised.clone() }),
            ..Default::default()
        };
        let (reply, ended) = oneshot::channel();
        self.core
            .send(Command::Driver { job: id.clone(), spec: Box::new(spec), reply })
            .await
            .map_err(|_| Status::unavailable("the master is shutting down"))?;
        let shared = self.clone();
        let job = id.clone();
        tokio::spawn(async move {
            let end = ended.await.unwrap_or(DriverEnd {
                end: EndReason::HostError { message: "the master stopped".into() },
                log: String::new(),
                metering: TaskMetering::default(),
            });
            let mut jobs = shared.lock_jobs();
            if let Some(r) = jobs.get_mut(&job)
                && r.state == JobState::Running
            {
                r.totals.add(&end.metering);
                r.driver_log = end.log;
                if end.end == EndReason::Finished {
                    r.state = JobState::Succeeded;
                } else {
                    r.state = JobState::Failed;
                    r.message = end.end.to_string();
                }
                tracing::info!(job = %job, state = ?r.state, "job ended");
            }
        });
        Ok(Response::new(v1::SubmitResponse { job_id: id, component: digest.to_string() }))
    }

    async fn status(&self, request: Request<v1::StatusRequest>) -> Result<Response<v1::JobStatus>, Status> {
        auth::check(request.metadata(), &self.config.client_token, "client")?;
        let id = request.into_inner().job_id;
        let jobs = self.lock_jobs();
        let r = jobs
            .get(&id)
            .ok_or_else(|| Status::not_found(format!("no job `{id}`: `weft status` lists the jobs")))?;
        Ok(Response::new(JobTable::status(r, &self.board)))
    }

    type WatchStream = StatusStream;

    async fn watch(&self, request: Request<v1::StatusRequest>) -> Result<Response<StatusStream>, Status> {
        auth::check(request.metadata(), &self.config.client_token, "client")?;
        let id = request.into_inner().job_id;
        if self.lock_jobs().get(&id).is_none() {
            return Err(Status::not_found(format!("no job `{id}`")));
        }
        let shared = self.clone();
        let stream = futures::stream::unfold(
            (shared, id, None::<v1::JobStatus>, false),
            |(s, id, last, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let now = s.lock_jobs().get(&id).map(|r| JobTable::status(r, &s.board))?;
                    if last.as_ref() != Some(&now) {
                        let ended = now.state != JobState::Running as i32;
                        return Some((Ok(now.clone()), (s, id, Some(now), ended)));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn kill(&self, request: Request<v1::KillRequest>) -> Result<Response<v1::KillResponse>, Status> {
        auth::check(request.metadata(), &self.config.client_token, "client")?;
        let id = request.into_inner().job_id;
        {
            let mut jobs = self.lock_jobs();
            let r = jobs.get_mut(&id).ok_or_else(|| Status::not_found(format!("no job `{id}`")))?;
            if r.state != JobState::Running {
                return Ok(Response::new(v1::KillResponse {}));
            }
            r.state = JobState::Killed;
            r.message = "killed on request".into();
        }
        // Stop the driver and every attempt of the job's actions.
        let (reply, killed) = oneshot::channel();
        self.core
            .send(Command::Kill(id.clone(), reply))
            .await
            .map_err(|_| Status::unavailable("the master is shutting down"))?;
        let had_driver = killed.await.unwrap_or(false);
        tracing::info!(job = %id, had_driver, "job killed");
        Ok(Response::new(v1::KillResponse {}))
    }

    async fn list(&self, request: Request<v1::ListRequest>) -> Result<Response<v1::ListResponse>, Status> {
        auth::check(request.metadata(), &self.config.client_token, "client")?;
        let jobs = self.lock_jobs();
        Ok(Response::new(v1::ListResponse {
            jobs: jobs.jobs.values().map(|r| JobTable::status(r, &self.board)).collect(),
        }))
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
