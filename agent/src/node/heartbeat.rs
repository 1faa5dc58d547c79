//! The heartbeat loop: tell the master the agent is alive and what it runs,
//! every interval the master asked for; register again when told to.
//!
//! A registration with a master of another run (it restarted: the new id's
//! incarnation differs) also kills every attempt of that earlier run, drivers
//! included. No master will ever take their ends (the new one never heard of
//! them), and each holds a slot the new master counts as free: left running,
//! they would make its launches refused until they ended by themselves.
//!
//! After every registration (at start, after a restart too, and again after
//! the master lost the agent), what the agent keeps of jobs that are not live
//! is forgotten once their attempts have ended: their files
//! (`<work>/jobs/<job>`), persisted partitions, map-output tables and
//! capabilities. Those jobs ended while the agent was away or down, or with
//! an earlier master run, and no one will ask it to remove them.

use super::Shared;
use super::report::Registered;
use crate::blocks::forget_job;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use weft_core::ids::{Incarnation, JobId};

/// Heartbeat every `interval` until the shutdown signal. A failed heartbeat is
/// logged and the next one tried on time (the master declares the agent lost
/// only after several missed intervals); `reregister` registers again, and the
/// master's new interval applies from then on; when it is another master run,
/// the earlier run's attempts are killed and its jobs' files removed.
///
/// Cancel safe: it holds no state worth keeping between beats.
pub(crate) async fn run(shared: Arc<Shared>, mut interval: Duration, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.recv() => return,
        }
        let beat = async {
            // Best effort: a drop the master misses shows as a cache miss,
            // and the partition is computed then.
            let dropped = shared
                .cache
                .take_dropped()
                .into_iter()
                .map(|k| weft_core::proto::v1::DroppedPartition {
                    job: Some(k.job.into()),
                    dataset: k.dataset.0,
                    partition: k.partition,
                })
                .collect();
            // What runs here, and what ended here but has not reached the
            // master yet: its reconciliation waits for those ends.
            let mut running = shared.running_refs();
            let listed: std::collections::HashSet<_> = running.iter().copied().collect();
            running.extend(shared.master.unsent().into_iter().filter(|t| !listed.contains(t)));
            let answer = shared.master.heartbeat(running, memory(&shared), dropped).await;
            if let Ok(answer) = &answer {
                // Fetches from agents the master lost fail now, not at their timeout.
                shared.peers.set_lost(answer.lost_peers.iter().cloned().collect());
            }
            match answer.map(|a| a.reregister) {
                Ok(false) => None,
                Ok(true) => {
                    let before = shared.master.agent_id();
                    tracing::warn!(agent_id = ?before, "weft.agent.reregister");
                    match shared.master.register().await {
                        Ok(registered) => {
                            let run = registered.newest.incarnation;
                            if before.map(|id| id.incarnation) != Some(run) {
                                kill_other_runs(&shared, run);
                            }
                            let interval = registered.interval;
                            tokio::spawn(forget_ended(Arc::clone(&shared), registered));
                            Some(interval)
                        }
                        Err(status) => {
                            tracing::warn!(%status, "weft.agent.reregister.failed");
                            None
                        }
                    }
                }
                Err(status) => {
                    tracing::warn!(%status, "weft.agent.heartbeat.failed");
                    None
                }
            }
        };
        tokio::select! {
            new = beat => if let Some(new) = new { interval = new },
            _ = shutdown.recv() => return,
        }
    }
}

/// The agent's memory now: its budget, the memory limits running tasks hold
/// against it, and the process's resident set (now and at its peak, from
/// `/proc/self/status`; zero where there is none).
fn memory(shared: &Shared) -> weft_core::proto::v1::AgentMemory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |k| k << 10)
    };
    weft_core::proto::v1::AgentMemory {
        budget_bytes: shared.config.memory.as_u64(),
        held_bytes: shared.memory_held(),
        resident_bytes: kib("VmRSS:"),
        peak_resident_bytes: kib("VmHWM:"),
        cached_memory_bytes: shared.cache.memory_used(),
        cached_disk_bytes: shared.cache.disk_used(),
    }
}

/// Kill every attempt launched by a master run other than `run`.
fn kill_other_runs(shared: &Shared, run: Incarnation) {
    for (key, (kill, by)) in shared.running().iter() {
        if *by != run {
            tracing::warn!(task = %key, master_run = %run, "weft.agent.stale_attempt.kill");
            kill.send_replace(true);
        }
    }
}

/// How long killed attempts of ended jobs may take to end before what is
/// kept for those jobs is removed anyway.
const STALE_GRACE: Duration = Duration::from_secs(30);

/// Once no attempt of a job `registered` names ended is left (they are
/// killed: the other runs' by [`kill_other_runs`], the master's own by its
/// reconciliation), forget what the agent keeps of every ended job.
pub(crate) async fn forget_ended(shared: Arc<Shared>, registered: Registered) {
    let stale = |shared: &Shared| shared.running().keys().any(|k| registered.ended(k.job()));
    let deadline = Instant::now() + STALE_GRACE;
    while stale(&shared) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Registered since with another master run: its jobs are not these.
    let run = registered.newest.incarnation;
    if shared.master.agent_id().map(|id| id.incarnation) != Some(run) {
        tracing::info!(master_run = %run, "weft.agent.ended_job.skipped: registered with another master run since");
        return;
    }
    let removed = tokio::task::spawn_blocking(move || {
        let dir = shared.blocks.work_dir().join("jobs");
        let mut jobs = shared.cache.jobs();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            jobs.extend(entry.file_name().to_str().and_then(|n| n.parse::<JobId>().ok()));
        }
        let mut removed = Vec::new();
        for job in jobs.into_iter().filter(|j| registered.ended(*j)) {
            match forget_job(&shared.blocks, &shared.tables, Some(&shared.cache), &shared.keys, job) {
                Ok(_) => removed.push(job),
                Err(e) => tracing::warn!(error = %e, job_id = %job, "weft.agent.ended_job.remove_failed"),
            }
        }
        removed
    })
    .await;
    for job in removed.unwrap_or_default() {
        tracing::info!(job_id = %job, "weft.agent.ended_job.removed");
    }
}
